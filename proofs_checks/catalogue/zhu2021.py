"""[Z21] Zhu et al., NeurIPS 2021: the CE UFM with a regularized bias (``zhu2021.ce-ufm``), shipped as a loss
variant of the plain cross-entropy (the reduced problem is derived from the SymPy loss)."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import DPS, etf_prediction, mutant, num
from ncverify.proofs_checks.variants import LossVariant, logsumexp, variant_theorem
from ncverify.theory.prediction import Prediction

Z21 = ("[Z21] Zhu, Ding, Zhou, Li, You, Sulam, Qu. \"A Geometric Analysis of Neural Collapse with Unconstrained "
       "Features\", NeurIPS 2021, arXiv 2105.02375")


def ce_loss(z, y: int, K: int):
    """CE(z, y) = log sum_c exp(z_c) - z_y (z: K x 1 SymPy matrix of logits, y: class index 0..K-1)."""
    return logsumexp(list(z)) - z[y]


CE = LossVariant("ce-etf", loss="ce", sympy_loss=ce_loss, description="cross-entropy log sum_c e^{z_c} - z_y")


def closed_margin(K: int, p_other: mp.mpf) -> mp.mpf:
    """The margin a with softmax probability p_other for every wrong class: e^{-a}/(1 + (K-1)e^{-a}) = p_other
    (0 when K p_other >= 1: W = H = 0)."""
    return mp.log((1 - (K - 1) * p_other) / p_other) if K * p_other < 1 else mp.mpf(0)


def etf_with_probability(inst: Instance, s: mp.mpf) -> Prediction:
    """The CE simplex-ETF point (M = 1) whose wrong classes have probability s, with the CE objective
    log(1 + (K-1) e^{-a}) + (K-1) sqrt(lambda_W lambda_H) a sqrt(n)."""
    with mp.workdps(DPS):
        K, n = inst.K, inst.n
        a = closed_margin(K, s)
        f = mp.log(1 + (K - 1) * mp.e ** (-a)) + (K - 1) * mp.sqrt(num(inst.lam_w[0]) * num(inst.lam_h)) * a * mp.sqrt(n)
        return etf_prediction(inst, a, f, notes=["claim: NC1, W and the class means a simplex ETF, self-duality "
                                                 "h_k = sqrt(lambda_W/(n lambda_H)) w_k, b = 0"])


def zhu_ce_ufm(inst: Instance) -> Prediction:
    """[Z21] CE UFM (M = 1), bias with lambda_b > 0: simplex ETF, self-duality, b = 0; with
    s = sqrt(n lambda_W lambda_H), K s < 1 gives true-class probability 1 - (K-1) s (each other class s),
    otherwise W = H = 0."""
    with mp.workdps(DPS):
        return etf_with_probability(inst, mp.sqrt(inst.n * num(inst.lam_w[0]) * num(inst.lam_h)))


CE_UFM = variant_theorem(
    CE, id="zhu2021.ce-ufm", title="CE UFM with regularized bias: simplex ETF, zero bias, closed-form scale",
    source=Z21 + ", Theorem 3.1 (global minimizers)",
    provenance="recalled statement; closed-form scale (true-class probability 1 - (K-1) s, s = sqrt(n lambda_W "
               "lambda_H)) as in ../shared/THEOREMS.md",
    claim=zhu_ce_ufm, bias=True, lam_b=(1e-3, 1e-2, 0.1, 1.0), param_values=[()],
    examples=(Instance.create(classes=3, per_class=2, width=3, lam_w=1e-2, lam_h=1e-2, loss="ce", bias=True,
                              lam_b=1e-2),))

THEOREMS = [CE_UFM]


def _s_with_N(inst: Instance, p: Prediction) -> Prediction:
    with mp.workdps(DPS):
        return etf_with_probability(inst, mp.sqrt(inst.N * num(inst.lam_w[0]) * num(inst.lam_h)))


MUTANTS = [mutant(CE_UFM, "s-with-N", "s = sqrt(N lambda_W lambda_H) (total instead of per-class count)", _s_with_N)]
