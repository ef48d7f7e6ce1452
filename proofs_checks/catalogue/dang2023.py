"""[P1] Dang, Tran, Osher, Tran-The, Ho, Nguyen, ICML 2023 (deep linear UFM): statements, claims as stated,
mutants, assumptions, domains and recorded verdicts of ``dang2023.mse-deep``, ``dang2023.mse-deep-bias`` and
``dang2023.ce-deep``. The claims are the paper's rules, right or wrong, computed in mpmath (``statement.DPS``)."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.ce_lift import ell_of
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import (CE_NORMALIZATION, DPS, MSE_NORMALIZATION, Expected, Theorem, assumptions, domain,
                                     etf_prediction, exact, minimize_on_halfline, mutant, num, positive_real_roots,
                                     scalar, with_bias, with_geometry, with_objective_scaled, with_singular_values)
from ncverify.theory.prediction import GramTarget, Prediction, SingularValues

P1 = "[P1] Dang, Tran, Osher, Tran-The, Ho, Nguyen, ICML 2023, arXiv 2301.00437"


# ---------------------------------------------------------------------------------------------
# the paper's rules
def dang_root_rule(n_k: int, b: mp.mpf, M: int, rule: str = "largest") -> mp.mpf:
    """x_k of [P1]: the largest positive real root of b/n_k = M x^{M-1} / (1 + x^M)^2, or 0 if none.

    The equation is cleared of denominators: b (1 + x^M)^2 - M n_k x^{M-1} = 0 (degree 2M).
    ``rule`` = "largest" is the paper's rule ("smallest" is what one mutant uses).
    """
    coeffs = [mp.mpf(0)] * (2 * M + 1)  # index = power
    coeffs[2 * M] += b
    coeffs[M] += 2 * b
    coeffs[0] += b
    coeffs[M - 1] -= M * mp.mpf(n_k)
    roots = positive_real_roots(list(reversed(coeffs)))
    if not roots:
        return mp.mpf(0)
    return roots[-1] if rule == "largest" else roots[0]


def paper_b(inst: Instance) -> mp.mpf:
    """[P1]'s constant b = M N (N lambda_H prod_j lambda_Wj)^{1/M}."""
    with mp.workdps(DPS):
        M, N = inst.depth, inst.N
        return M * N * (N * num(inst.lam_h) * mp.fprod(num(v) for v in inst.lam_w)) ** (mp.mpf(1) / M)


def gof_prediction(inst: Instance, b: mp.mpf, rule: str = "largest") -> Prediction:
    """[P1]'s bias-free MSE minimizer from the constant b: x_k by the root rule, sigma_k^2 = N lambda_H x_k^M,
    GOF (OF when balanced) geometry at every layer.

    Symbols: M = inst.depth, N = inst.N, n_k = inst.counts[k], lambda_{W_j} = inst.lam_w[j-1], lambda_H = inst.lam_h.
    """
    with mp.workdps(DPS):
        M, N = inst.depth, inst.N
        lam = [num(v) for v in inst.lam_w]
        lam_h = num(inst.lam_h)
        lbar = mp.fprod(lam) ** (mp.mpf(1) / M)
        xs = [dang_root_rule(n_k, b, M, rule) for n_k in inst.counts]
        sig2 = [N * lam_h * x ** M for x in xs]
        sig = [mp.sqrt(s) for s in sig2]
        layers = [[mp.sqrt(lbar * s ** (mp.mpf(2) / M) / lam[j]) for s in sig] for j in range(M)]
        mean_norms = [s / (s2 + N * lam_h) for s, s2 in zip(sig, sig2)]
        out_sv = [mp.sqrt(n_k) * x ** M / (1 + x ** M) for n_k, x in zip(inst.counts, xs)]
        f_star = sum(n_k / (1 + x ** M) + b * x for n_k, x in zip(inst.counts, xs)) / (2 * N)
        kind = "OF" if inst.balanced else "GOF"
        return Prediction(
            family="mse-deep", instance=inst.as_dict(), objective=exact(f_star),
            scalars={"x": [exact(x) for x in xs], "b": [exact(b)]},
            singular_values=SingularValues([exact(s) for s in sig], [[exact(v) for v in row] for row in layers],
                                           [exact(v) for v in out_sv]),
            gram_targets={"WWT": GramTarget(kind, [exact(v) for v in sig2]),
                          "HbarTHbar": GramTarget(kind, [exact(v ** 2) for v in mean_norms])},
            class_mean_norms=[exact(v) for v in mean_norms],
            collapsed_classes=[k for k, x in enumerate(xs) if x == 0],
            notes=["claim: NC1 at every layer", f"root rule: the {rule} positive real root, or 0 if none"])


def dang_mse_deep(inst: Instance) -> Prediction:
    """[P1] deep linear bias-free MSE: per-class x_k (largest positive root, else 0), sigma_k^2 = N lambda_H x_k^M."""
    return gof_prediction(inst, paper_b(inst))


def dang_mse_deep_bias(inst: Instance) -> Prediction:
    """[P1] deep linear MSE with an unregularized last-layer bias, balanced: b* = 1/K, simplex ETF, the K-1
    nonzero modes as in the bias-free rule with n = inst.n."""
    with mp.workdps(DPS):
        base = dang_mse_deep(inst)
        K, N, M = inst.K, inst.N, inst.depth
        x, b = scalar(base, "x"), scalar(base, "b")
        sig2 = N * num(inst.lam_h) * x ** M
        f_star = (K - 1) * (inst.n / (1 + x ** M) + b * x) / (2 * N)
        sv = [mp.sqrt(sig2)] * (K - 1) + [mp.mpf(0)]
        lam = [num(v) for v in inst.lam_w]
        lbar = mp.fprod(lam) ** (mp.mpf(1) / M)
        layers = [[mp.sqrt(lbar * s ** (mp.mpf(2) / M) / lam[j]) for s in sv] for j in range(M)]
        return Prediction(
            family="mse-deep-bias", instance=inst.as_dict(), objective=exact(f_star),
            scalars={"x": [exact(x)], "b": [exact(b)]},
            singular_values=SingularValues([exact(s) for s in sv], [[exact(v) for v in r] for r in layers]),
            gram_targets={"WWT": GramTarget("ETF", [exact(sig2 * (1 - mp.mpf(1) / K))] * K),
                          "HbarTHbar": GramTarget("ETF")},
            bias=[exact(mp.mpf(1) / K)] * K, collapsed_classes=list(range(K)) if x == 0 else [],
            notes=["claim: global feature mean 0 at every layer, NC1"])


def ce_margin_objective(a: mp.mpf, K: int, n: int, M: int, lt: mp.mpf) -> mp.mpf:
    """[P1]'s g(a) = log(1 + (K-1) e^{-a}) + ((M+1)/2) (K-1) lt (a sqrt n)^{2/(M+1)}."""
    return mp.log(1 + (K - 1) * mp.e ** (-a)) + mp.mpf(M + 1) / 2 * (K - 1) * lt * (a * mp.sqrt(n)) ** (mp.mpf(2) / (M + 1))


def dang_ce_deep(inst: Instance) -> Prediction:
    """[P1] deep linear CE, balanced: simplex ETF logits a (e_k - 1/K 1), a = argmin_{a>=0} g(a), zero bias.

    lt = (lambda_H prod_j lambda_{W_j})^{1/(M+1)}. For M = 1 the claim is closed form: with
    s = sqrt(n lambda_W lambda_H), K s < 1 gives true-class probability 1 - (K-1) s, else W = H = 0.
    """
    with mp.workdps(DPS):
        K, n, M = inst.K, inst.n, inst.depth
        lam = [num(v) for v in inst.lam_w]
        lt = (num(inst.lam_h) * mp.fprod(lam)) ** (mp.mpf(1) / (M + 1))
        if M == 1:
            s = mp.sqrt(n * lam[0] * num(inst.lam_h))
            # p_other = s  <=>  e^{-a} / (1 + (K-1) e^{-a}) = s  <=>  a = log((1 - (K-1) s) / s)
            a = mp.log((1 - (K - 1) * s) / s) if K * s < 1 else mp.mpf(0)
        else:
            a = minimize_on_halfline(lambda t: ce_margin_objective(t, K, n, M, lt), upper=mp.mpf(60))
        return etf_prediction(inst, a, ce_margin_objective(a, K, n, M, lt), family="ce-deep-etf",
                              notes=["claim: NC1 at every layer, self-duality W^T proportional to centered class means, "
                                     "zero bias"])


def dang_root_rule_fails(inst: Instance) -> bool:
    """Where [P1]'s "largest positive root, else 0" rule is not the global minimizer of the per-class
    problem: for M >= 2 some class has positive stationary points whose objective exceeds the value at 0."""
    if inst.depth < 2:
        return False
    with mp.workdps(DPS):
        M, b = inst.depth, paper_b(inst)
        for n_k in inst.counts:
            x = dang_root_rule(n_k, b, M)
            if x > 0 and n_k / (1 + x ** M) + b * x > n_k:
                return True
    return False


# ---------------------------------------------------------------------------------------------
# statements
MSE_DEEP = Theorem(
    id="dang2023.mse-deep", title="Deep linear bias-free MSE: OF (balanced) / GOF (imbalanced) at every layer",
    source=P1 + ", main MSE results (balanced: OF; imbalanced: GOF)",
    provenance="closed-form rule as the authors' released code computes the targets of its figures",
    family="mse-deep", objective=MSE_NORMALIZATION,
    assumptions=("M >= 1", "d >= K", "all lambdas > 0", "no bias"),
    validator=assumptions("dang2023.mse-deep", loss="mse"),
    strategy=domain("mse-deep"), claim=dang_mse_deep, shape_claims=("nc1",),
    expected=Expected(
        "refuted", counterexample="--counts 100,4 --width 2 --depth 2 --lam-w 0.0104 --lam-h 0.0104",
        region="depth M >= 2 and some class k whose per-class problem has positive stationary points "
               "but whose global minimizer is 0: between the existence threshold and the global threshold "
               "(for M = 2: 1/2 < b/n_k <= 9/(8 sqrt 3)); the largest-root rule then predicts a nonzero "
               "class where the global minimizer collapses it",
        refutes=dang_root_rule_fails),
    examples=(Instance.create([4, 2, 1], width=3, depth=1, lam_w=2e-2, lam_h=2e-2),
              Instance.create([3, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2),
              # the recorded counterexample: class 2 lies between the M = 2 thresholds
              Instance.create([100, 4], width=2, depth=2, lam_w=0.0104, lam_h=0.0104)),
)

MSE_DEEP_BIAS = Theorem(
    id="dang2023.mse-deep-bias", defaults={"bias": True},
    title="Deep linear MSE with unregularized bias, balanced: simplex ETF, b* = 1/K",
    source=P1 + ", MSE with last-layer bias (balanced)", provenance="paper statement",
    family="mse-deep-bias", objective=MSE_NORMALIZATION,
    assumptions=("M >= 1", "d >= K", "balanced", "bias, unregularized"),
    validator=assumptions("dang2023.mse-deep-bias", loss="mse", balanced=True, bias=True, lam_b="zero"),
    strategy=domain("mse-deep-bias", balanced=True, bias=True), claim=dang_mse_deep_bias,
    shape_claims=("nc1",),
    expected=Expected("refuted", counterexample="--counts 1,1 --width 2 --depth 2 --lam-w 0.1 --lam-h 0.789062 --bias",
                      region="as dang2023.mse-deep: M >= 2 between the existence and global thresholds",
                      refutes=dang_root_rule_fails),
    examples=(Instance.create(classes=3, per_class=3, width=3, depth=1, lam_w=1e-2, lam_h=1e-2, bias=True),),
)

def etf_not_global(inst: Instance) -> bool:
    """Where the ETF claim is false: the global selection of ``theory.ce_codes`` at the instance's
    ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) is a geometry other than the simplex ETF (and not total collapse,
    where the claim's margin is 0 as well). With a bias (lambda_b > 0) these points with b = 0 still beat the ETF
    claim, but a class-dependent bias can beat it elsewhere too (family ce-deep), so there it is a subset."""
    from ncverify.theory import ce_codes

    if not inst.balanced or inst.K < 3 or inst.depth < 2:
        return False
    ell = ell_of(inst)
    name = ce_codes.recorded_winner(inst.K, inst.depth, ell)  # the recorded table, else the selection at ell
    if name is not None:
        return name not in ("total collapse", ce_codes.etf_code(inst.K).name())
    win, _ = ce_codes.best_geometry(inst.K, inst.depth, ell, 25)
    return win is not None and not win.code.is_etf


CE_DEEP = Theorem(
    id="dang2023.ce-deep", defaults={"loss": "ce"},
    title="Deep linear CE, balanced: simplex ETF, self-duality, zero bias",
    source=P1 + ", CE result (balanced)", provenance="paper statement; M = 1 closed form via s = sqrt(n lambda_W lambda_H)",
    family="ce-deep", objective=CE_NORMALIZATION,
    assumptions=("M >= 1", "d >= K", "balanced", "lambda_b > 0 if a bias is used"),
    validator=assumptions("dang2023.ce-deep", loss="ce", balanced=True, bias=None, lam_b="positive"),
    # K <= 8: the recorded phase table's range. Off it (K >= 9) a ce-deep derivation re-selects over every code (2 to
    # 15 s each), which the default run cannot afford while shrinking; the statement's K >= 9 is not searched
    strategy=domain("ce-deep", losses=("ce",), balanced=True, K=(2, 8)),
    claim=dang_ce_deep, shape_claims=("nc1", "self_duality"),
    expected=Expected(
        "refuted", counterexample="--classes 4 --per-class 2 --width 4 --depth 3 --lam-w 0.002 --lam-h 0.002",
        region="depth M >= 2 wherever another logit geometry beats the simplex ETF (theory.ce_codes, recorded in "
               "theory/golden/ce_phase.json for ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) in [1e-8, 10]): K = 3 "
               "between the ETF's end (ell 0.1735 at M = 2 ... 0.0816 at M = 6) and collapse (an antipodal pair and a "
               "dead class); K = 4, M = 2 for ell > 0.01176049807928839 (a square of class-mean logits); K = 5, M = 2 "
               "for ell > 1.2357e-4; K = 4, 5 at M >= 3 and K >= 6 at M >= 2 at every recorded ell below collapse. "
               "M = 1 (convex) is an ETF everywhere below collapse",
        refutes=etf_not_global),
    examples=(Instance.create(classes=3, per_class=2, width=3, depth=1, lam_w=1e-2, lam_h=1e-2, loss="ce"),
              # the recorded counterexample: a square (cross-polytope on 4) of logits at 0.0372818 < ETF 0.0404879
              Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=2e-3, lam_h=2e-3, loss="ce")),
)

THEOREMS = [MSE_DEEP, MSE_DEEP_BIAS, CE_DEEP]


# ---------------------------------------------------------------------------------------------
# seeded wrong claims: transforms of the faithful predictions
def _b_off(inst: Instance, p: Prediction) -> Prediction:
    return gof_prediction(inst, scalar(p, "b") * mp.mpf("1.01"))


def _wrong_exponent(inst: Instance, p: Prediction) -> Prediction:
    with mp.workdps(DPS):
        N, lam_h, M = inst.N, num(inst.lam_h), inst.depth
        sig2 = [N * lam_h * e.value ** (M + 1) for e in p.scalars["x"]]
        out = with_singular_values(p, weights_product=[exact(mp.sqrt(s)) for s in sig2])
        return out.with_(gram_targets={**p.gram_targets, "WWT": GramTarget(p.gram_targets["WWT"].kind,
                                                                             [exact(s) for s in sig2])})


def _smallest_root(inst: Instance, p: Prediction) -> Prediction:
    return gof_prediction(inst, scalar(p, "b"), rule="smallest")


def _margin_off(inst: Instance, p: Prediction) -> Prediction:
    with mp.workdps(DPS):
        K, n, M = inst.K, inst.n, inst.depth
        lt = (num(inst.lam_h) * mp.fprod(num(v) for v in inst.lam_w)) ** (mp.mpf(1) / (M + 1))
        a = scalar(p, "a") * mp.mpf("1.05")
        return etf_prediction(inst, a, ce_margin_objective(a, K, n, M, lt), family="ce-deep-etf")


MUTANTS = [
    mutant(MSE_DEEP, "b+1%", "the constant b off by 1%", _b_off),
    mutant(MSE_DEEP, "exponent", "sigma_k^2 = N lambda_H x_k^(M+1) (wrong exponent) in W and W W^T", _wrong_exponent),
    mutant(MSE_DEEP, "smallest-root", "the smallest positive root instead of the largest", _smallest_root,
           examples=(Instance.create([6, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2),)),
    mutant(MSE_DEEP, "1/N", "f* normalized with 1/N instead of 1/(2N)", lambda inst, p: with_objective_scaled(p, 2)),
    mutant(MSE_DEEP_BIAS, "bias0", "b* = 0 instead of 1/K", lambda inst, p: with_bias(p, 0)),
    mutant(MSE_DEEP_BIAS, "OF", "orthogonal frame instead of simplex ETF", lambda inst, p: with_geometry(p, "OF")),
    mutant(CE_DEEP, "a*1.05", "the margin a (true-class logit gap) off by 5%", _margin_off),
    mutant(CE_DEEP, "OF", "orthogonal frame instead of simplex ETF", lambda inst, p: with_geometry(p, "OF")),
]
