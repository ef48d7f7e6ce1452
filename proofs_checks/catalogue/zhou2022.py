"""[Z22] Zhou et al., ICML 2022: the MSE UFM with a regularized bias (``zhou2022.mse-ufm-bias``). The paper text
was not at hand: the claim is the natural conjecture "NC1, W W^T and the centered class means a simplex ETF
with the scale of the unregularized-bias result, b* = 1/(K (1 + lambda_b)) 1". The theory family
``mse-bias-regularized`` finds where it fails: the mean label mode enters Z (and W) once
gamma = lambda_b/(1 + lambda_b) > c = K sqrt(n lambda_W lambda_H), i.e. lambda_b > c/(1 - c)."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import DPS, Expected, Theorem, assumptions, domain, exact, mutant, num, with_bias
from ncverify.theory.prediction import GramTarget, Prediction, SingularValues

Z22 = ("[Z22] Zhou, Li, Ding, You, Qu, Zhu. \"On the Optimization Landscape of Neural Collapse under MSE Loss: "
       "Global Optimality with Unconstrained Features\", ICML 2022, arXiv 2203.01238")


def zhou_mse_ufm_bias(inst: Instance) -> Prediction:
    """Natural conjecture for [Z22]'s MSE UFM with a regularized bias (M = 1, balanced): NC1; with
    c = K sqrt(n lambda_H lambda_W) and rho = (1 - c) sqrt(lambda_W/(n lambda_H)) (c < 1, else 0):
    centered class means with Gram rho (I - 11^T/K), W W^T = (n lambda_H/lambda_W) rho (I - 11^T/K) (simplex
    ETF), b* = 1/(K (1 + lambda_b)) 1, f* = ((K-1)(2c - c^2) + gamma)/(2K) with gamma = lambda_b/(1 + lambda_b)
    (c >= 1: ((K-1) + gamma)/(2K))."""
    with mp.workdps(DPS):
        K, n = inst.K, inst.n
        lw, lh, lb = num(inst.lam_w[0]), num(inst.lam_h), num(inst.lam_b)
        c = K * mp.sqrt(n * lh * lw)
        gam = lb / (1 + lb)
        rho = (1 - c) * mp.sqrt(lw / (n * lh)) if c < 1 else mp.mpf(0)
        f = ((K - 1) * (2 * c - c ** 2 if c < 1 else 1) + gam) / (2 * K)
        sig = mp.sqrt(n * lh / lw * rho)
        P = 1 - mp.mpf(1) / K
        sv = [exact(sig)] * (K - 1) + [exact(0)]
        return Prediction(
            family="mse-bias-regularized", instance=inst.as_dict(), objective=exact(f),
            scalars={"c": [exact(c)], "rho": [exact(rho)]},
            singular_values=SingularValues(sv, [sv], [exact(mp.sqrt(n) * (1 - c) if c < 1 else 0)] * (K - 1) + [exact(0)]),
            gram_targets={"WWT": GramTarget("ETF", [exact(sig ** 2 * P)] * K),
                          "HbarTHbar": GramTarget("ETF", [exact(rho * P)] * K)},
            class_mean_norms=[exact(mp.sqrt(rho * P))] * K, bias=[exact(1 / (K * (1 + lb)))] * K,
            collapsed_classes=list(range(K)) if c >= 1 else [],
            notes=["natural conjecture: NC1, simplex ETF (W W^T and centered class means), b* = 1/(K(1 + lambda_b)) 1"])


def zhou_mean_mode_active(inst: Instance) -> bool:
    """Where the derivation puts a nonzero mean mode in Z (W W^T not a simplex ETF): M = 1,
    gamma = lambda_b/(1 + lambda_b) > c = K sqrt(n lambda_W lambda_H) (which needs c < 1)."""
    with mp.workdps(DPS):
        lb = num(inst.lam_b)
        c = inst.K * mp.sqrt(inst.n * num(inst.lam_w[0]) * num(inst.lam_h))
        return bool(lb / (1 + lb) > c)


SMALL = dict(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2)

MSE_UFM_BIAS = Theorem(
    id="zhou2022.mse-ufm-bias", defaults={"bias": True},
    title="MSE UFM with regularized bias: simplex ETF with b* = 1/(K(1 + lambda_b)) (natural conjecture)",
    source=Z22 + ", MSE UFM with a bias penalty lambda_b/2 ||b||^2",
    provenance="the paper text was not at hand: the claim is the natural conjecture (the unregularized-bias "
               "result with the bias shrunk by the penalty); the derivation (family mse-bias-regularized) is the "
               "suite's own",
    family="mse-bias-regularized",
    objective="MSE: 1/(2N) ||W H + b 1^T - Y||_F^2 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2",
    assumptions=("M = 1", "balanced", "d >= K", "bias with lambda_b > 0"),
    validator=assumptions("zhou2022.mse-ufm-bias", loss="mse", balanced=True, depths=(1,), bias=True, lam_b="positive"),
    strategy=domain("mse-bias-regularized", balanced=True, depths=(1,), bias=True,
                    lam_b_range=(1e-3, 10.0), aim=("lam_b",), ratios=(0.5, 0.9, 1.1, 2.0)),
    claim=zhou_mse_ufm_bias, shape_claims=("nc1",),
    expected=Expected(
        "refuted", counterexample="--loss mse --counts 1,1 --width 2 --depth 1 --lam-w 0.001 --lam-h 0.001 --bias --lam-b 1.0",
        region="lambda_b > lambda_b* = c/(1 - c) with c = K sqrt(n lambda_W lambda_H) < 1 (equivalently "
               "gamma = lambda_b/(1 + lambda_b) > c): the mean label mode enters Z, W gains the singular value "
               "sigma_m along 1_K (W W^T = sigma_c^2 (I - 11^T/K) + sigma_m^2 11^T/K is not a simplex ETF), "
               "b* = (1 - w_m)/(K(1 + lambda_b)) with w_m = 1 - c/gamma, and f* is lower than the ETF value. "
               "Below lambda_b* the conjecture holds",
        refutes=zhou_mean_mode_active),
    examples=(Instance.create(**SMALL, bias=True, lam_b=0.02),  # c = 0.0424 -> lambda_b* = 0.0443: ETF
              Instance.create(**SMALL, bias=True, lam_b=0.5)),  # above the boundary: mean mode active
)

THEOREMS = [MSE_UFM_BIAS]

MUTANTS = [
    mutant(MSE_UFM_BIAS, "bias-1/K", "b* = 1/K 1 (the unregularized-bias value, shrinkage ignored)",
           lambda inst, p: with_bias(p, mp.mpf(1) / inst.K),
           examples=(Instance.create(**SMALL, bias=True, lam_b=0.02),)),
]
