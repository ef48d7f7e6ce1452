"""Shipped loss variants (issue 6): their SymPy losses, their claims as stated, theorems and mutants.

* ``zhu2021.ce-ufm``      -- plain CE UFM (M = 1) with a bias, lambda_b > 0 ([Z21]): simplex ETF, zero bias,
  true-class probability 1 - (K-1) s with s = sqrt(n lambda_W lambda_H) when K s < 1, else W = H = 0.
* ``ce-label-smoothing``  -- CE against (1 - delta) e_y + delta/K 1 (``--loss ce-ls:DELTA``), plain UFM,
  balanced; the natural conjecture: simplex ETF with the derived scale. Written out by hand for M = 1:
  every other class gets probability s' = delta/K + s, the true class 1 - (K-1) s', when K s' < 1.
* ``ce-focal``            -- focal loss -(1 - p_y)^gamma log p_y (``--loss focal:GAMMA``), plain UFM,
  balanced; the natural conjecture: simplex ETF whose margin minimizes the reduced problem.
* ``zhou2022.mse-ufm-bias`` -- plain MSE UFM with a regularized bias, lambda_b > 0 ([Z22]); the claim is the
  natural conjecture "NC1, W W^T and the centered class means a simplex ETF with the scale of the
  unregularized-bias result, b* = 1/(K (1 + lambda_b)) 1" (the full paper text was not at hand).
  The theory engine's derivation (``theory.variants``) finds where it fails: the mean label mode enters Z
  (and W) once gamma = lambda_b/(1 + lambda_b) > c = K sqrt(n lambda_W lambda_H), i.e. lambda_b > c/(1 - c).

Each claim function takes keyword arguments that exist only to build the seeded wrong claims (mutants).
"""
from __future__ import annotations

import functools
from typing import Sequence

import mpmath as mp
import sympy as sp
from hypothesis import strategies as st

from numerics.problem import Instance, InstanceError
from proofs_checks.variants import (CLAIM_DPS, LossVariant, Param, etf_claim, etf_prediction, logsumexp,
                                    margin_objective, softmax, variant_theorem)
from theory.prediction import Exact, Prediction
from theory.variants import MSE_BIAS_REG

Z21 = ("[Z21] Zhu, Ding, Zhou, Li, You, Sulam, Qu. \"A Geometric Analysis of Neural Collapse with Unconstrained "
       "Features\", NeurIPS 2021, arXiv 2105.02375")
Z22 = ("[Z22] Zhou, Li, Ding, You, Qu, Zhu. \"On the Optimization Landscape of Neural Collapse under MSE Loss: "
       "Global Optimality with Unconstrained Features\", ICML 2022, arXiv 2203.01238")


# ---------------------------------------------------------------------------------------------
# the losses, once, in SymPy (z: K x 1 Matrix of logits, y: class index 0..K-1)
def ce_loss(z: sp.Matrix, y: int, K: int) -> sp.Expr:
    """CE(z, y) = log sum_c exp(z_c) - z_y."""
    return logsumexp(list(z)) - z[y]


def label_smoothing_loss(z: sp.Matrix, y: int, K: int, delta: sp.Expr) -> sp.Expr:
    """-sum_c t_c log softmax(z)_c with t = (1 - delta) e_y + (delta/K) 1."""
    lse = logsumexp(list(z))
    return sp.Add(*[-((1 - delta) * (1 if c == y else 0) + delta / K) * (z[c] - lse) for c in range(K)])


def focal_loss(z: sp.Matrix, y: int, K: int, gamma: sp.Expr) -> sp.Expr:
    """-(1 - p_y)^gamma log p_y with p = softmax(z), log p_y = z_y - log sum_c exp(z_c)."""
    return -(1 - softmax(list(z), y)) ** gamma * (z[y] - logsumexp(list(z)))


CE = LossVariant("ce-etf", loss="ce", sympy_loss=ce_loss, description="cross-entropy log sum_c e^{z_c} - z_y")
LABEL_SMOOTHING = LossVariant(
    "ce-label-smoothing", loss="ce-ls", sympy_loss=label_smoothing_loss,
    params=(Param("delta", lambda v: 0.0 <= v < 1.0, "label smoothing delta must be in [0, 1)", example=0.1),),
    description="CE against smoothed labels (1 - delta) e_y + delta/K 1")
FOCAL = LossVariant(
    "ce-focal", loss="focal", sympy_loss=focal_loss,
    params=(Param("gamma", lambda v: v >= 0.0, "focal loss gamma must be >= 0", example=2.0),),
    description="focal loss -(1 - p_y)^gamma log p_y")
SHIPPED = (CE, LABEL_SMOOTHING, FOCAL)


def _num(v) -> mp.mpf:
    return mp.mpf(v) if isinstance(v, int) else mp.mpf(repr(float(v)))


def _closed_margin(K: int, p_other: mp.mpf) -> mp.mpf:
    """The margin a with softmax probability p_other for every wrong class: e^{-a}/(1 + (K-1)e^{-a}) = p_other."""
    return mp.log((1 - (K - 1) * p_other) / p_other) if K * p_other < 1 else mp.mpf(0)


# ---------------------------------------------------------------------------------------------
# claims
def zhu_ce_ufm(inst: Instance, *, s_count: str = "n") -> Prediction:
    """[Z21] CE UFM (M = 1), bias with lambda_b > 0: simplex ETF, self-duality, b = 0; with
    s = sqrt(n lambda_W lambda_H), K s < 1 gives true-class probability 1 - (K-1) s (each other class s),
    otherwise W = H = 0. ``s_count="N"`` (mutant) uses the total sample count N instead of n."""
    mp.mp.dps = CLAIM_DPS
    K, n = inst.K, inst.n
    lw, lh = _num(inst.lam_w[0]), _num(inst.lam_h)
    s = mp.sqrt((n if s_count == "n" else inst.N) * lw * lh)
    a = _closed_margin(K, s)
    f = mp.log(1 + (K - 1) * mp.e ** (-a)) + (K - 1) * mp.sqrt(lw * lh) * a * mp.sqrt(n)
    return etf_prediction(inst, a, f, notes=["claim: NC1, W and the class means a simplex ETF, self-duality "
                                             "h_k = sqrt(lambda_W/(n lambda_H)) w_k, b = 0"])


def label_smoothing_claim(inst: Instance, *, smoothing_in_scale: bool = True) -> Prediction:
    """Natural conjecture for CE with label smoothing (M = 1): simplex ETF with every wrong class at
    probability s' = delta/K + sqrt(n lambda_W lambda_H) (true class 1 - (K-1) s'), W = H = 0 when K s' >= 1.
    ``smoothing_in_scale=False`` (mutant) drops delta/K from s' (the plain-CE scale)."""
    mp.mp.dps = CLAIM_DPS
    K, n = inst.K, inst.n
    delta = _num(LABEL_SMOOTHING.param_values(inst)["delta"])
    lw, lh = _num(inst.lam_w[0]), _num(inst.lam_h)
    s = mp.sqrt(n * lw * lh) + (delta / K if smoothing_in_scale else 0)
    a = _closed_margin(K, s)
    g = margin_objective(LABEL_SMOOTHING, inst)
    return etf_prediction(inst, a, g(a), notes=["natural conjecture: simplex ETF, self-duality; wrong-class "
                                                "probability delta/K + sqrt(n lambda_W lambda_H)"])


def _ce_margin(inst: Instance) -> mp.mpf:
    """The plain-CE margin (M = 1) used by the focal mutant: gamma ignored."""
    return _closed_margin(inst.K, mp.sqrt(inst.n * _num(inst.lam_w[0]) * _num(inst.lam_h)))


focal_claim = etf_claim(FOCAL, statement="natural conjecture: the focal-loss minimizer is the simplex ETF (NC1, "
                                         "self-duality) with the margin minimizing the reduced problem")


def zhou_mse_ufm_bias(inst: Instance, *, shrink_bias: bool = True) -> Prediction:
    """Natural conjecture for [Z22]'s MSE UFM with a regularized bias (M = 1, balanced): NC1; with
    c = K sqrt(n lambda_H lambda_W) and rho = (1 - c) sqrt(lambda_W/(n lambda_H)) (c < 1, else 0):
    centered class means with Gram rho (I - 11^T/K), W W^T = (n lambda_H/lambda_W) rho (I - 11^T/K) (simplex
    ETF), b* = 1/(K (1 + lambda_b)) 1, f* = ((K-1)(2c - c^2) + gamma)/(2K) with gamma = lambda_b/(1 + lambda_b)
    (c >= 1: ((K-1) + gamma)/(2K)). ``shrink_bias=False`` (mutant): b* = 1/K 1."""
    mp.mp.dps = CLAIM_DPS
    K, n = inst.K, inst.n
    lw, lh, lb = _num(inst.lam_w[0]), _num(inst.lam_h), _num(inst.lam_b)
    c = K * mp.sqrt(n * lh * lw)
    gam = lb / (1 + lb)
    rho = (1 - c) * mp.sqrt(lw / (n * lh)) if c < 1 else mp.mpf(0)
    f = ((K - 1) * (2 * c - c ** 2 if c < 1 else 1) + gam) / (2 * K)
    sig = mp.sqrt(n * lh / lw * rho)
    P = 1 - mp.mpf(1) / K
    b = 1 / (K * (1 + lb)) if shrink_bias else mp.mpf(1) / K
    X = lambda v: Exact(mp.mpf(v))  # noqa: E731
    return Prediction(
        family=MSE_BIAS_REG, instance=inst.as_dict(), objective=X(f), scalars={"c": [X(c)], "rho": [X(rho)]},
        singular_values={"weights_product": [X(sig)] * (K - 1) + [X(0)], "layers": [[X(sig)] * (K - 1) + [X(0)]],
                         "output": [X(mp.sqrt(n) * (1 - c) if c < 1 else 0)] * (K - 1) + [X(0)]},
        gram_targets={"WWT": {"kind": "ETF", "diag": [X(sig ** 2 * P)] * K},
                      "HbarTHbar": {"kind": "ETF", "diag": [X(rho * P)] * K}},
        class_mean_norms=[X(mp.sqrt(rho * P))] * K, bias=[X(b)] * K,
        collapsed_classes=list(range(K)) if c >= 1 else [],
        notes=["natural conjecture: NC1, simplex ETF (W W^T and centered class means), b* = 1/(K(1 + lambda_b)) 1"])


def zhou_mean_mode_active(inst: Instance) -> bool:
    """Where the derivation puts a nonzero mean mode in Z (W W^T not a simplex ETF): M = 1,
    gamma = lambda_b/(1 + lambda_b) > c = K sqrt(n lambda_W lambda_H) (which needs c < 1)."""
    mp.mp.dps = CLAIM_DPS
    lb = _num(inst.lam_b)
    c = inst.K * mp.sqrt(inst.n * _num(inst.lam_w[0]) * _num(inst.lam_h))
    return bool(lb / (1 + lb) > c)


def zhou_lambda_b_star(inst: Instance) -> float:
    """lambda_b* = c/(1 - c) (inf when c >= 1)."""
    c = inst.K * mp.sqrt(inst.n * _num(inst.lam_w[0]) * _num(inst.lam_h))
    return float(c / (1 - c)) if c < 1 else float("inf")


@st.composite
def zhou_instances(draw) -> Instance:
    """Balanced M = 1 MSE instances with a regularized bias; lambda_b either log-uniform in [1e-3, 10] or at
    ratios 0.5 .. 2 of the derived lambda_b* (both sides of the ETF boundary)."""
    from proofs_checks.catalogue import log_uniform

    k = draw(st.integers(2, 3))
    n = draw(st.integers(1, 4))
    lw, lh = draw(log_uniform(1e-3, 1e-1)), draw(log_uniform(1e-3, 1e-1))
    base = Instance.create([n] * k, width=k + draw(st.integers(0, 1)), lam_w=lw, lam_h=lh, bias=True, lam_b=1.0)
    star = zhou_lambda_b_star(base)
    if star < float("inf") and draw(st.booleans()):
        lb = float(f"{star * draw(st.sampled_from([0.5, 0.9, 1.1, 2.0])):.6g}")
    else:
        lb = draw(log_uniform(1e-3, 10.0))
    return base.with_(lam_b=lb)


def _zhou_validator(inst: Instance) -> None:
    tid = "zhou2022.mse-ufm-bias"
    if inst.loss != "mse":
        raise InstanceError(f"{tid} is about the MSE loss, got --loss {inst.loss}")
    if inst.activation is not None:
        raise InstanceError(f"{tid} is the plain UFM: no --activation, got {inst.activation}")
    if inst.depth != 1:
        raise InstanceError(f"{tid} is the plain UFM: needs depth M = 1, got {inst.depth}")
    if not inst.bias or inst.lam_b <= 0:
        raise InstanceError(f"{tid} needs a regularized bias: --bias --lam-b LAMBDA_B with lambda_b > 0, got "
                            f"bias = {inst.bias}, lambda_b = {inst.lam_b}")
    if not inst.balanced:
        raise InstanceError(f"{tid} needs balanced classes, got counts {list(inst.counts)}")
    inst.require_width_at_least_classes(tid)


# ---------------------------------------------------------------------------------------------
# theorems and mutants
def theorems() -> list:
    """The shipped variant theorems (appended to ``catalogue.THEOREMS``)."""
    from proofs_checks.catalogue import Expected, Theorem

    small = dict(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2)
    return [
        variant_theorem(
            CE, id="zhu2021.ce-ufm", title="CE UFM with regularized bias: simplex ETF, zero bias, closed-form scale",
            source=Z21 + ", Theorem 3.1 (global minimizers)",
            provenance="recalled statement; closed-form scale (true-class probability 1 - (K-1) s, s = sqrt(n lambda_W "
                       "lambda_H)) as in ../shared/THEOREMS.md",
            claim=zhu_ce_ufm, bias=True, lam_b=(1e-3, 1e-2, 0.1, 1.0), param_values=[()],
            examples=(Instance.create(**small, loss="ce", bias=True, lam_b=1e-2),)),
        variant_theorem(
            LABEL_SMOOTHING, id="ce-label-smoothing", title="CE with label smoothing, plain UFM: simplex ETF, "
            "wrong-class probability delta/K + sqrt(n lambda_W lambda_H)",
            source="natural conjecture (no literature statement encoded); loss: Szegedy et al. 2016 label smoothing",
            provenance="conjecture written for this suite: the ETF with the scale derived by hand for M = 1",
            claim=label_smoothing_claim, param_values=[(0.1,), (0.0,), (0.05,), (0.3,)],
            examples=(Instance.create(**small, loss="ce-ls:0.1"),)),
        variant_theorem(
            FOCAL, id="ce-focal", title="Focal loss, plain UFM: simplex ETF with the margin of the reduced problem",
            source="natural conjecture (no literature statement encoded); loss: Lin et al. 2017 focal loss",
            provenance="conjecture: ETF with the margin that minimizes g(a) on the ETF (claim-side 1-D minimization)",
            claim=focal_claim, param_values=[(2.0,), (0.5,), (1.0,), (3.0,)],
            examples=(Instance.create(**small, loss="focal:2"),)),
        Theorem(
            id="zhou2022.mse-ufm-bias", defaults={"bias": True},
            title="MSE UFM with regularized bias: simplex ETF with b* = 1/(K(1 + lambda_b)) (natural conjecture)",
            source=Z22 + ", MSE UFM with a bias penalty lambda_b/2 ||b||^2",
            provenance="the paper text was not at hand: the claim is the natural conjecture (the unregularized-bias "
                       "result with the bias shrunk by the penalty); the derivation (theory.variants) is the suite's own",
            family=MSE_BIAS_REG,
            objective="MSE: 1/(2N) ||W H + b 1^T - Y||_F^2 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2",
            assumptions=("M = 1", "balanced", "d >= K", "bias with lambda_b > 0"),
            validator=_zhou_validator, strategy=lambda: zhou_instances(), claim=zhou_mse_ufm_bias,
            shape_claims=("nc1",),
            expected=Expected(
                "refuted", counterexample="--loss mse --counts 1,1 --width 2 --depth 1 --lam-w 0.001 --lam-h 0.001 --bias --lam-b 1.0",
                region="lambda_b > lambda_b* = c/(1 - c) with c = K sqrt(n lambda_W lambda_H) < 1 (equivalently "
                       "gamma = lambda_b/(1 + lambda_b) > c): the mean label mode enters Z, W gains the singular value "
                       "sigma_m along 1_K (W W^T = sigma_c^2 (I - 11^T/K) + sigma_m^2 11^T/K is not a simplex ETF), "
                       "b* = (1 - w_m)/(K(1 + lambda_b)) with w_m = 1 - c/gamma, and f* is lower than the ETF value. "
                       "Below lambda_b* the conjecture holds",
                refutes=zhou_mean_mode_active),
            examples=(Instance.create(**small, bias=True, lam_b=0.02),  # c = 0.0424 -> lambda_b* = 0.0443: ETF
                      Instance.create(**small, bias=True, lam_b=0.5)),  # above the boundary: mean mode active
        ),
    ]


def mutants() -> list:
    """One seeded wrong claim per shipped variant (appended to ``catalogue.MUTANTS``)."""
    from proofs_checks.catalogue import _mutant

    return [
        _mutant("zhu2021.ce-ufm", "s-with-N", "s = sqrt(N lambda_W lambda_H) (total instead of per-class count)",
                functools.partial(zhu_ce_ufm, s_count="N")),
        _mutant("ce-label-smoothing", "plain-CE-scale", "the wrong-class probability without delta/K (plain-CE scale)",
                functools.partial(label_smoothing_claim, smoothing_in_scale=False)),
        _mutant("ce-focal", "CE-margin", "the plain-CE margin (gamma ignored in the scale)",
                etf_claim(FOCAL, margin=_ce_margin, statement="mutant: the CE margin")),
        _mutant("zhou2022.mse-ufm-bias", "bias-1/K", "b* = 1/K 1 (the unregularized-bias value, shrinkage ignored)",
                functools.partial(zhou_mse_ufm_bias, shrink_bias=False),
                examples=(Instance.create(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2, bias=True, lam_b=0.02),)),
    ]


def variant_ids() -> Sequence[str]:
    return ("zhu2021.ce-ufm", "ce-label-smoothing", "ce-focal", "zhou2022.mse-ufm-bias")
