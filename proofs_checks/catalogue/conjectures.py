"""Conjectures written for this suite (no literature statement encoded): CE with label smoothing
(``ce-label-smoothing``, ``--loss ce-ls:DELTA``) and the focal loss (``ce-focal``, ``--loss focal:GAMMA``) on the
plain UFM, balanced -- the natural conjecture "simplex ETF with the derived scale"."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.catalogue.zhu2021 import closed_margin
from ncverify.proofs_checks.statement import DPS, etf_prediction, mutant, num
from ncverify.proofs_checks.variants import LossVariant, Param, etf_claim, logsumexp, margin_objective, softmax, variant_theorem
from ncverify.theory.prediction import Prediction


def label_smoothing_loss(z, y: int, K: int, delta):
    """-sum_c t_c log softmax(z)_c with t = (1 - delta) e_y + (delta/K) 1."""
    import sympy as sp

    lse = logsumexp(list(z))
    return sp.Add(*[-((1 - delta) * (1 if c == y else 0) + delta / K) * (z[c] - lse) for c in range(K)])


def focal_loss(z, y: int, K: int, gamma):
    """-(1 - p_y)^gamma log p_y with p = softmax(z), log p_y = z_y - log sum_c exp(z_c)."""
    return -(1 - softmax(list(z), y)) ** gamma * (z[y] - logsumexp(list(z)))


LABEL_SMOOTHING = LossVariant(
    "ce-label-smoothing", loss="ce-ls", sympy_loss=label_smoothing_loss,
    params=(Param("delta", lambda v: 0.0 <= v < 1.0, "label smoothing delta must be in [0, 1)", example=0.1),),
    description="CE against smoothed labels (1 - delta) e_y + delta/K 1")
FOCAL = LossVariant(
    "ce-focal", loss="focal", sympy_loss=focal_loss,
    params=(Param("gamma", lambda v: v >= 0.0, "focal loss gamma must be >= 0", example=2.0),),
    description="focal loss -(1 - p_y)^gamma log p_y")


def smoothed_etf(inst: Instance, s: mp.mpf) -> Prediction:
    """The label-smoothing ETF point (M = 1) whose wrong classes have probability s, objective from the loss."""
    with mp.workdps(DPS):
        a = closed_margin(inst.K, s)
        g = margin_objective(LABEL_SMOOTHING, inst)
        return etf_prediction(inst, a, g(a), notes=["natural conjecture: simplex ETF, self-duality; wrong-class "
                                                    "probability delta/K + sqrt(n lambda_W lambda_H)"])


def label_smoothing_claim(inst: Instance) -> Prediction:
    """Natural conjecture for CE with label smoothing (M = 1): simplex ETF with every wrong class at
    probability s' = delta/K + sqrt(n lambda_W lambda_H) (true class 1 - (K-1) s'), W = H = 0 when K s' >= 1."""
    with mp.workdps(DPS):
        delta = num(LABEL_SMOOTHING.param_values(inst)["delta"])
        return smoothed_etf(inst, mp.sqrt(inst.n * num(inst.lam_w[0]) * num(inst.lam_h)) + delta / inst.K)


focal_claim = etf_claim(FOCAL, statement="natural conjecture: the focal-loss minimizer is the simplex ETF (NC1, "
                                         "self-duality) with the margin minimizing the reduced problem")

LS = variant_theorem(
    LABEL_SMOOTHING, id="ce-label-smoothing", title="CE with label smoothing, plain UFM: simplex ETF, "
    "wrong-class probability delta/K + sqrt(n lambda_W lambda_H)",
    source="natural conjecture (no literature statement encoded); loss: Szegedy et al. 2016 label smoothing",
    provenance="conjecture written for this suite: the ETF with the scale derived by hand for M = 1",
    claim=label_smoothing_claim, param_values=[(0.1,), (0.0,), (0.05,), (0.3,)],
    examples=(Instance.create(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2, loss="ce-ls:0.1"),))
FOCAL_THM = variant_theorem(
    FOCAL, id="ce-focal", title="Focal loss, plain UFM: simplex ETF with the margin of the reduced problem",
    source="natural conjecture (no literature statement encoded); loss: Lin et al. 2017 focal loss",
    provenance="conjecture: ETF with the margin that minimizes g(a) on the ETF (claim-side 1-D minimization)",
    claim=focal_claim, param_values=[(2.0,), (0.5,), (1.0,), (3.0,)],
    examples=(Instance.create(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2, loss="focal:2"),))

THEOREMS = [LS, FOCAL_THM]


def _plain_ce_scale(inst: Instance, p: Prediction) -> Prediction:
    with mp.workdps(DPS):
        return smoothed_etf(inst, mp.sqrt(inst.n * num(inst.lam_w[0]) * num(inst.lam_h)))


def _ce_margin(inst: Instance, p: Prediction) -> Prediction:
    with mp.workdps(DPS):
        a = closed_margin(inst.K, mp.sqrt(inst.n * num(inst.lam_w[0]) * num(inst.lam_h)))
        return etf_prediction(inst, a, margin_objective(FOCAL, inst)(a), notes=["mutant: the CE margin"])


MUTANTS = [
    mutant(LS, "plain-CE-scale", "the wrong-class probability without delta/K (plain-CE scale)", _plain_ce_scale),
    mutant(FOCAL_THM, "CE-margin", "the plain-CE margin (gamma ignored in the scale)", _ce_margin),
]
