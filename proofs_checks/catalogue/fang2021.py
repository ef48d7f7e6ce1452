"""[F21] Fang, He, Long, Su 2021: the layer-peeled model (``fang2021.lpm``), balanced (simplex ETF with a
closed-form minimal loss) and imbalanced (minority collapse). The model is a constrained convex program in the
class-mean logits once the factorization is eliminated (p >= K); its numerics are the convex oracle's. In the
instance, --lam-w carries E_W and --lam-h carries E_H."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import InvalidInstanceError
from ncverify.proofs_checks.statement import (DPS, LPM_NORMALIZATION, Expected, Theorem, assumptions, exact, mutant,
                                              num)
from ncverify.theory.prediction import GramTarget, Prediction

F21 = ("[F21] Fang, He, Long, Su. \"Exploring Deep Neural Networks via Layer-Peeled Model: Minority Collapse in "
       "Imbalanced Training\", PNAS 2021, arXiv 2101.12699")
TID = "fang2021.lpm"
#: the minority-collapse ratio R* = n_A/n_B for K_A = K_B = 2, E_W = E_H = 1, as the research notes measured it ([D])
R_STAR_NOTES = mp.mpf("3.3805")

_base = assumptions(TID, loss="ce", depths=(1,), bias=False)


def groups(inst: Instance) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(majority, minority) 0-based classes of a two-group instance, None when balanced."""
    sizes = sorted(set(inst.counts))
    if len(sizes) == 1:
        return None
    return (tuple(k for k, c in enumerate(inst.counts) if c == sizes[1]),
            tuple(k for k, c in enumerate(inst.counts) if c == sizes[0]))


def validate(inst: Instance) -> None:
    """The LPM (M = 1, no bias, d >= K), balanced or two groups with K_A = K_B = 2 classes and E_W = E_H = 1 (the
    setting whose minority-collapse ratio the statement gives)."""
    _base(inst)
    g = groups(inst)
    if g is None:
        return
    if len(set(inst.counts)) != 2 or len(g[0]) != 2 or len(g[1]) != 2:
        raise InvalidInstanceError(f"{TID}: imbalanced instances must have two groups of two classes (K_A = K_B = 2), "
                                   f"got counts {list(inst.counts)}")
    if inst.lam_w[0] != 1.0 or inst.lam_h != 1.0:
        raise InvalidInstanceError(f"{TID}: the imbalanced statement is for E_W = E_H = 1 (--lam-w 1 --lam-h 1), got "
                                   f"E_W = {inst.lam_w[0]}, E_H = {inst.lam_h}")


def etf_prediction(inst: Instance, c_factor: mp.mpf = mp.mpf(1)) -> Prediction:
    """Balanced LPM [F21]: simplex ETF, h_k = sqrt(E_H/E_W) w_k, ||w_k||^2 = E_W, minimal loss
    log(1 + (K-1) exp(-K sqrt(E_W E_H)/(K-1))); class-mean logits c (I - 11^T/K), c = K sqrt(E_W E_H)/(K-1).
    ``c_factor`` exists for a mutant."""
    with mp.workdps(DPS):
        K = inst.K
        E_W, E_H = num(inst.lam_w[0]), num(inst.lam_h)
        c = K * mp.sqrt(E_W * E_H) / (K - 1) * c_factor
        f = mp.log(1 + (K - 1) * mp.e ** (-c))
        Z = [[c * ((1 if i == j else 0) - mp.mpf(1) / K) for j in range(K)] for i in range(K)]
        return Prediction(
            family="layer-peeled", instance=inst.as_dict(), objective=exact(f),
            gram_targets={"WWT": GramTarget("ETF", [exact(E_W)] * K), "HbarTHbar": GramTarget("ETF", [exact(E_H)] * K),
                          "WHbar": GramTarget("ETF", [exact(c * (1 - mp.mpf(1) / K))] * K, matrix=Z)},
            rows_equal=[], notes=["claim: simplex ETF, h_k = sqrt(E_H/E_W) w_k, f* = log(1 + (K-1) e^(-c))"])


def collapse_prediction(inst: Instance, r_star: mp.mpf = R_STAR_NOTES) -> Prediction:
    """Imbalanced LPM (K_A = K_B = 2, E_W = E_H = 1): the minority classifiers coincide iff R = n_A/n_B >= R*
    ([P] as R -> infinity; [D] exactly from R* = 3.3805). No minimal value is stated."""
    major, minor = groups(inst)
    R = mp.mpf(max(inst.counts)) / min(inst.counts)
    return Prediction(family="layer-peeled", instance=inst.as_dict(), objective=None,
                      rows_equal=[(minor, bool(R >= r_star))],
                      notes=[f"claim: minority collapse iff R = n_A/n_B >= R* = {mp.nstr(r_star, 6)}"])


def fang_lpm(inst: Instance) -> Prediction:
    """[F21] the layer-peeled model: balanced -> ``etf_prediction``; two groups -> ``collapse_prediction``."""
    return etf_prediction(inst) if inst.balanced else collapse_prediction(inst)


def minority_collapse_ratio(k_a: int = 2, k_b: int = 2, e_w: float = 1.0, e_h: float = 1.0, lo: float = 1.0,
                            hi: float = 20.0, tol: float = 1e-6) -> dict:
    """R* located by bisection on the class-level convex program (weights n_A/N, n_B/N with R = n_A/n_B real): at
    each R the program is solved free and with the minority rows tied; "collapsed" when the tied program's certified
    interval reaches the free one's (``verify.convex_model``'s rule). Returns the bracket and every evaluation."""
    from ncverify.numerics import convex

    rho = (k_a + k_b) * (e_w * e_h) ** 0.5
    minor = list(range(k_a, k_a + k_b))
    evals = []

    def collapsed(R: float) -> bool:
        counts = [R] * k_a + [1.0] * k_b
        free = convex.layer_peeled(counts, rho)
        tied = convex.layer_peeled(counts, rho, tied=[minor])
        cost = convex.tying_cost(free, tied)
        out = cost <= 0
        evals.append({"R": R, "collapsed": out, "tying_costs": cost, "gap": max(free.gap, tied.gap)})
        return out

    if collapsed(lo) or not collapsed(hi):
        return {"bracket": None, "evaluations": evals}
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if collapsed(mid):
            hi = mid
        else:
            lo = mid
    return {"bracket": [lo, hi], "evaluations": evals}


def lpm_strategy():
    """Balanced instances (K 2..10, n 1..30, E_W, E_H log-uniform over [0.1, 10]) and two-group instances
    [n_A, n_A, n_B, n_B] with E_W = E_H = 1 and R = n_A/n_B drawn around the stated R* (both sides)."""
    from hypothesis import strategies as st

    from ncverify.proofs_checks.statement import log_uniform

    @st.composite
    def balanced(draw) -> Instance:
        k = draw(st.integers(2, 10))
        return Instance.create(classes=k, per_class=draw(st.integers(1, 30)), width=k + draw(st.integers(0, 2)),
                               lam_w=draw(log_uniform(0.1, 10.0)), lam_h=draw(log_uniform(0.1, 10.0)), loss="ce")

    @st.composite
    def two_groups(draw) -> Instance:
        n_b = draw(st.integers(1, 12))
        ratio = draw(st.sampled_from([1.5, 2.0, 3.0, 3.3, 3.5, 4.0, 6.0, 10.0]))
        n_a = max(n_b + 1, round(ratio * n_b))
        return Instance.create([n_a, n_a, n_b, n_b], width=4 + draw(st.integers(0, 2)), lam_w=1.0, lam_h=1.0,
                               loss="ce")

    return st.one_of(balanced(), two_groups())


EXAMPLES = (Instance.create(classes=4, per_class=3, width=4, loss="ce", lam_w=1.0, lam_h=1.0),
            Instance.create(classes=3, per_class=5, width=3, loss="ce", lam_w=0.5, lam_h=2.0),
            Instance.create([3, 3, 1, 1], width=4, loss="ce", lam_w=1.0, lam_h=1.0),  # R = 3 < R*: distinct
            Instance.create([7, 7, 2, 2], width=4, loss="ce", lam_w=1.0, lam_h=1.0))  # R = 3.5 > R*: collapsed

LPM = Theorem(
    id=TID, defaults={"loss": "ce"}, model="layer-peeled",
    title="Layer-peeled model: simplex ETF with a closed-form minimal loss (balanced); minority collapse at a finite "
          "imbalance ratio (two groups)",
    source=F21 + ", balanced ETF theorem and minority collapse",
    provenance="[P] balanced ETF and its minimal loss; [P] minority collapse as R -> infinity; [D] exact collapse from "
               "R* = 3.3805 (K_A = K_B = 2, E_W = E_H = 1), the research notes' measurement, re-located here by "
               "bisection on the certified convex program",
    family="layer-peeled", objective=LPM_NORMALIZATION,
    assumptions=("M = 1", "no bias", "d >= K (the paper's p >= K)", "balanced, or two groups of two classes with "
                 "E_W = E_H = 1", "--lam-w = E_W, --lam-h = E_H"),
    validator=validate, strategy=lpm_strategy, claim=fang_lpm,
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [LPM]

MUTANTS = [
    mutant(LPM, "margin-K", "the ETF margin K sqrt(E_W E_H) instead of K sqrt(E_W E_H)/(K-1)",
           lambda inst, p: etf_prediction(inst, mp.mpf(inst.K - 1)) if inst.balanced else p,
           examples=(EXAMPLES[0],)),
    mutant(LPM, "per-sample-energy", "the feature budget read per sample (no 1/n_k): margin larger by sqrt(n)",
           lambda inst, p: etf_prediction(inst, mp.sqrt(inst.counts[0])) if inst.balanced else p,
           examples=(EXAMPLES[0],)),
    mutant(LPM, "collapse-at-2", "minority collapse from R = 2", lambda inst, p: p if inst.balanced else
           collapse_prediction(inst, mp.mpf(2)), examples=(EXAMPLES[2],)),
]
