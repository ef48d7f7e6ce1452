"""[L24] Liu et al. 2024: deep linear MSE UFM with an unregularized last-layer bias and imbalanced classes
(``liu2024.mse-deep-bias-imbalanced``). The paper states that the minimizers are governed by the singular values of
the centered class-level target Yhat = (I_K - (1/N) n 1_K^T) D, D = diag(sqrt n_k) (n = the vector of counts);
the per-singular-value decoupling and its global selection are the research notes' derivation ([D] in
../shared/THEOREMS.md). The claim below computes exactly that, in mpmath, independently of the theory family
``mse-deep-bias`` that it is compared with."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import (DPS, MSE_NORMALIZATION, Expected, Theorem, assumptions, domain, exact,
                                              mode_minimizer, mode_value, mutant, num, with_bias)
from ncverify.theory.prediction import Prediction, SingularValues

L24 = ("[L24] Liu et al., \"Neural collapse in deep linear networks with bias and imbalanced data\" (deep linear "
       "MSE UFM with an unregularized bias), arXiv 2411.17278")


def centered_target_singular_values(counts: tuple[int, ...]) -> list[mp.mpf]:
    """The singular values s_1 >= ... >= s_K of Yhat = (I_K - n 1_K^T/N) D, D = diag(sqrt n_k): the square roots
    of the eigenvalues of Yhat Yhat^T = diag(n) - n n^T/N (one of them is 0, eigenvector 1_K)."""
    N = sum(counts)
    K = len(counts)
    G = mp.matrix(K, K)
    for k in range(K):
        for j in range(K):
            G[k, j] = (counts[k] if k == j else 0) - mp.mpf(counts[k]) * counts[j] / N
    ev = mp.eigsy(G, eigvals_only=True)
    return sorted((mp.sqrt(max(e, 0)) for e in ev), reverse=True)


def liu_prediction(inst: Instance, rule: str = "global", centered: bool = True) -> Prediction:
    """The claim: Z = W_M...W_1 H has the singular vectors of Yhat and singular values s_i* = argmin g_i (global
    selection between 0 and the stationary roots; for M >= 2 s_i* jumps from 0 to a positive root), b* = n/N
    (so that Z 1 = 0), balanced factors: W_j has singular values sqrt(L/lambda_Wj) t_i, H sqrt(L/lambda_H) t_i with
    t_i = (s_i*)^(1/(M+1)), L = (lambda_H prod_j lambda_Wj)^(1/(M+1)); f* = sum_i g_i(s_i*).

    Symbols: n_k = inst.counts[k-1], N = inst.N, M = inst.depth, lambda_Wj = inst.lam_w[j-1], lambda_H = inst.lam_h.
    ``rule``/``centered`` exist for the mutants only (largest root; singular values of D instead of Yhat)."""
    with mp.workdps(DPS):
        M, N = inst.depth, inst.N
        lam = [num(v) for v in inst.lam_w]
        lam_h = num(inst.lam_h)
        L = (lam_h * mp.fprod(lam)) ** (mp.mpf(1) / (M + 1))
        targets = centered_target_singular_values(inst.counts) if centered else \
            sorted((mp.sqrt(c) for c in inst.counts), reverse=True)
        s_star = [mode_minimizer(s_i, N, M, L, rule) for s_i in targets]
        t = [s ** (mp.mpf(1) / (M + 1)) for s in s_star]
        layers = [[mp.sqrt(L / lam[j]) * ti for ti in t] for j in range(M)]
        w_sv = [mp.fprod(layers[j][i] for j in range(M)) for i in range(len(t))]
        feats = [mp.sqrt(L / lam_h) * ti for ti in t]
        f_star = mp.fsum(mode_value(s, s_i, N, M, L) for s, s_i in zip(s_star, targets))
        bias = [mp.mpf(c) / N for c in inst.counts]
        return Prediction(
            family="mse-deep-bias", instance=inst.as_dict(), objective=exact(f_star),
            scalars={"s_target": [exact(s) for s in targets], "s": [exact(s) for s in s_star]},
            singular_values=SingularValues([exact(v) for v in w_sv], [[exact(v) for v in r] for r in layers],
                                           [exact(v) for v in s_star], [exact(v) for v in feats]),
            bias=[exact(b) for b in bias],
            notes=["claim: per singular value s_i of Yhat = (I - n 1^T/N) D, s_i* = global argmin of "
                   "(1/(2N))(s_i - s)^2 + ((M+1)/2) L s^(2/(M+1)); b* = n/N; NC1"])


def liu_mse_deep_bias_imbalanced(inst: Instance) -> Prediction:
    """[L24] deep linear MSE with an unregularized bias, imbalanced (see ``liu_prediction``)."""
    return liu_prediction(inst)


def largest_root_differs(inst: Instance) -> bool:
    """Where a largest-root rule differs from the global selection: M >= 2 and some singular value of Yhat whose
    per-mode problem has positive stationary points but its global minimizer at 0 (the jump's hysteresis band)."""
    if inst.depth < 2:
        return False
    with mp.workdps(DPS):
        M, N = inst.depth, inst.N
        L = (num(inst.lam_h) * mp.fprod(num(v) for v in inst.lam_w)) ** (mp.mpf(1) / (M + 1))
        return any(mode_minimizer(s, N, M, L, "largest") != mode_minimizer(s, N, M, L)
                   for s in centered_target_singular_values(inst.counts) if s > 0)


EXAMPLES = (Instance.create([6, 3, 1], width=3, depth=1, lam_w=1e-2, lam_h=1e-2, bias=True),
            Instance.create([8, 4, 2], width=3, depth=2, lam_w=2e-2, lam_h=2e-2, bias=True),
            Instance.create([20, 5, 5, 1], width=4, depth=3, lam_w=5e-3, lam_h=5e-3, bias=True))

MSE_DEEP_BIAS_IMBALANCED = Theorem(
    id="liu2024.mse-deep-bias-imbalanced", defaults={"bias": True},
    title="Deep linear MSE with unregularized bias, imbalanced: decoupled per singular value of the centered "
          "class-level target, global selection (a jump for M >= 2), b* = n/N",
    source=L24 + ", main result (minimizers governed by the singular values of Yhat)",
    provenance="[P] the role of Yhat's singular values; [D] the per-singular-value problem g(s) and its global "
               "(not largest-root) selection, from ../shared/THEOREMS.md (research notes, not read in the paper)",
    family="mse-deep-bias", objective=MSE_NORMALIZATION,
    assumptions=("M >= 1", "d >= K", "any counts (imbalanced allowed)", "bias, unregularized (lambda_b = 0)"),
    validator=assumptions("liu2024.mse-deep-bias-imbalanced", loss="mse", bias=True, lam_b="zero"),
    strategy=domain("mse-deep-bias", bias=True, K=(2, 8), n_max=(2, 100)),
    claim=liu_mse_deep_bias_imbalanced, shape_claims=("nc1",),
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [MSE_DEEP_BIAS_IMBALANCED]

MUTANTS = [
    mutant(MSE_DEEP_BIAS_IMBALANCED, "largest-root",
           "the largest stationary root of each mode instead of the global selection (misses the jump)",
           lambda inst, p: liu_prediction(inst, rule="largest"),
           examples=(Instance.create([9, 3], width=2, depth=2, lam_w=0.1, lam_h=0.1, bias=True),)),
    mutant(MSE_DEEP_BIAS_IMBALANCED, "uncentered",
           "the singular values sqrt(n_k) of D instead of those of the centered target Yhat",
           lambda inst, p: liu_prediction(inst, centered=False)),
    mutant(MSE_DEEP_BIAS_IMBALANCED, "bias-1/K", "b* = 1/K 1 (the balanced value) instead of n/N",
           lambda inst, p: with_bias(p, mp.mpf(1) / inst.K)),
]
