"""[A24] Andriopoulos et al. 2024: neural regression collapse (``andriopoulos2024.regression-collapse``): the MSE
UFM with real-valued targets (t outputs), without a bias. The claim in this suite's normalization (research notes,
[D] in ../shared/THEOREMS.md): W W^T = sqrt(N lambda_H/lambda_W) (Sigma^(1/2) - sqrt(N lambda_W lambda_H) I)_+ with
Sigma = (1/N) Y Y^T, the targets' second-moment matrix. Instances take t = K outputs and targets shared within K
groups of samples (``--targets gauss:SEED``: Y = T E with a Gaussian K x K prototype matrix T), which reaches every
positive semidefinite Sigma = T D T^T/N."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import InvalidInstanceError
from ncverify.proofs_checks.statement import (DPS, MSE_NORMALIZATION, Expected, Theorem, assumptions, domain, exact,
                                              mutant, num)
from ncverify.theory.prediction import GramTarget, Prediction, SingularValues

A24 = ("[A24] Andriopoulos, Dong, Guo, Zhao, Ross. \"The Prevalence of Neural Collapse in Neural Multivariate "
       "Regression\", NeurIPS 2024, arXiv 2409.04180")
TID = "andriopoulos2024.regression-collapse"

_base = assumptions(TID, loss="mse", depths=(1,), bias=False)


def validate(inst: Instance) -> None:
    """The plain MSE UFM (M = 1, no bias, d >= K) with real-valued targets (--targets)."""
    _base(inst)
    if inst.targets is None:
        raise InvalidInstanceError(f"{TID} is about real-valued targets: give --targets gauss:SEED")


def second_moment(inst: Instance) -> mp.matrix:
    """Sigma = (1/N) Y Y^T = (1/N) T D T^T (T: the instance's target prototypes, D = diag(n_k))."""
    T = mp.matrix([[mp.mpf(x) for x in row] for row in inst.target_prototypes()])
    return T * mp.diag([mp.mpf(c) for c in inst.counts]) * T.T / inst.N


def regression_prediction(inst: Instance, power: int = 1, scaled: bool = True, with_n: bool = True) -> Prediction:
    """The claim: W W^T = sqrt(N lambda_H/lambda_W) (Sigma^(1/2) - sqrt(N lambda_W lambda_H) I)_+ (eigenvalues
    clipped at 0). ``power``/``scaled``/``with_n`` exist for the mutants (Sigma instead of its square root, the
    factor dropped, the threshold without N)."""
    with mp.workdps(DPS):
        N, K = inst.N, inst.K
        lw, lh = num(inst.lam_w[0]), num(inst.lam_h)
        ev, Q = mp.eigsy(second_moment(inst))
        root = [max(ev[i], 0) ** (mp.mpf(1) / 2 if power == 1 else 1) for i in range(K)]
        thr = mp.sqrt((N if with_n else 1) * lw * lh)
        factor = mp.sqrt(N * lh / lw) if scaled else mp.mpf(1)
        e = [factor * max(r - thr, 0) for r in root]
        G = Q * mp.diag(e) * Q.T
        rows = [[+G[i, j] for j in range(K)] for i in range(K)]
        return Prediction(
            family="mse-regression", instance=inst.as_dict(), objective=None,
            singular_values=SingularValues(sorted((exact(mp.sqrt(x)) for x in e), key=lambda v: -v.value)),
            gram_targets={"WWT": GramTarget("general", [exact(rows[k][k]) for k in range(K)], matrix=rows)},
            notes=["claim: W W^T = sqrt(N lambda_H/lambda_W)(Sigma^(1/2) - sqrt(N lambda_W lambda_H) I)_+, "
                   "Sigma = Y Y^T/N"])


def andriopoulos_regression_collapse(inst: Instance) -> Prediction:
    """[A24] (see ``regression_prediction``)."""
    return regression_prediction(inst)


EXAMPLES = (Instance.create([5, 3, 2], width=3, lam_w=1e-2, lam_h=1e-2, targets="gauss:1"),
            Instance.create([10, 10, 4, 1], width=5, lam_w=3e-3, lam_h=2e-2, targets="gauss:7"),
            Instance.create([20, 5, 5], width=3, lam_w=0.1, lam_h=0.05, targets="gauss:3"))  # a mode cut to 0

REGRESSION_COLLAPSE = Theorem(
    id=TID, defaults={"loss": "mse"},
    title="Neural regression collapse: W W^T = sqrt(N lambda_H/lambda_W)(Sigma^(1/2) - sqrt(N lambda_W lambda_H) I)_+",
    source=A24 + ", the UFM analysis of neural regression collapse",
    provenance="[D] the closed form in this suite's normalization from ../shared/THEOREMS.md (research notes, checked "
               "there to 3e-8 at t = 3, N = 40); the paper states it in its own parametrization, not read here",
    family="mse-regression", objective=MSE_NORMALIZATION.replace("Y", "Y (real-valued targets)", 1),
    assumptions=("M = 1", "no bias", "d >= t = K outputs", "targets shared within K groups (--targets gauss:SEED)"),
    validator=validate,
    strategy=domain("mse-regression", depths=(1,), K=(2, 8), n_max=(1, 40), extra_width=3, per_layer=False,
                    targets=True, lam=(1e-4, 1.0)),
    claim=andriopoulos_regression_collapse,
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [REGRESSION_COLLAPSE]

MUTANTS = [
    mutant(REGRESSION_COLLAPSE, "sigma", "Sigma instead of Sigma^(1/2)",
           lambda inst, p: regression_prediction(inst, power=2)),
    mutant(REGRESSION_COLLAPSE, "no-factor", "the factor sqrt(N lambda_H/lambda_W) dropped",
           lambda inst, p: regression_prediction(inst, scaled=False)),
    mutant(REGRESSION_COLLAPSE, "threshold-without-N", "the threshold sqrt(lambda_W lambda_H) without N",
           lambda inst, p: regression_prediction(inst, with_n=False)),
]
