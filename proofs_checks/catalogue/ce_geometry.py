"""Deep linear cross-entropy beyond the simplex ETF: the corrected conjecture ``ce-deep-etf-boundary`` (written for
this suite after ``dang2023.ce-deep`` was refuted) and its mutants.

Statement: for the balanced deep linear CE UFM (no bias, d >= K, depth M, any lambdas), the simplex ETF is the
global minimizer iff ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) lies in the ETF region of (K, M) recorded in
theory/golden/ce_phase.json (the certified crossings of ``theory.ce_codes``); elsewhere below total collapse the
global minimizer is the recorded competitor (a square, polygon, cross-polytope, antiprism, bipyramid, ...) with the
value and singular values of its code. The claim reads the recorded table (claim side); the derivation
(``ce-deep``) re-selects at the instance, and the full-matrix numerics check both sides.
"""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.ce_lift import ell_of
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.catalogue.dang2023 import dang_ce_deep
from ncverify.proofs_checks.statement import CE_NORMALIZATION, Expected, Theorem, assumptions, domain, mutant
from ncverify.theory.prediction import Exact, Prediction

SOURCE = ("conjecture written for this suite: the ETF region of dang2023.ce-deep's objective, from the global selection "
          "over logit codes (theory.ce_codes); related: Garrod & Keating, arXiv 2410.23169 (low-rank global minima of "
          "deep CE UFMs)")


def on_etf_side(inst: Instance, widen: float = 1.0) -> bool:
    """Is the instance's ell inside a recorded ETF interval of (K, M)? (``widen`` > 1 stretches every interval by that
    factor at both ends: a mutant.) M = 1 and K = 2 are ETF everywhere below collapse (convex / one geometry)."""
    from ncverify.theory import ce_codes

    if inst.depth == 1 or inst.K == 2:
        return True
    ell = ell_of(inst)
    return any(lo / widen <= ell <= hi * widen for lo, hi in ce_codes.etf_region(inst.K, inst.depth))


#: K = 4: measured lower bounds w_M on the band (c, c (1 + w_M)] past the recorded crossing c into total collapse where
#: a nonzero geometry still beats collapse (16-start reduced searches at c (1 + f), f = 5e-4, 5e-3, 1e-2, 2e-2, 5e-2)
COLLAPSE_BAND = {2: 5e-4, 3: 5e-3, 4: 1e-2, 5: 2e-2, 6: 2e-2}


def collapse_band(inst: Instance) -> bool:
    """Where the recorded table is known to be wrong: K = 4, M >= 2, ell just past the recorded crossing into total
    collapse (within ``COLLAPSE_BAND``): a rank-1 logit geometry (two antipodal pairs on one axis, unequal
    amplitudes), which the code enumeration of ``theory.ce_codes`` does not contain, beats collapse there."""
    from ncverify.theory import ce_codes

    if inst.K != 4 or inst.depth not in COLLAPSE_BAND or not inst.balanced or inst.bias:
        return False
    entry = ce_codes.load_phase_table().get((4, inst.depth))
    cross = [float(c["ell"]) for c in (entry or {}).get("crossings", []) if c["right"] == "total collapse"]
    ell = ell_of(inst)
    return bool(cross) and cross[-1] < ell <= cross[-1] * (1 + COLLAPSE_BAND[inst.depth])


def competitor(inst: Instance) -> Prediction:
    """The non-ETF global minimizer the conjecture names outside the ETF region (the ``ce-deep`` derivation's
    geometry, value and singular values)."""
    from ncverify.theory.derive import derive

    return derive("ce-deep", inst, dps=40)


def boundary_claim(inst: Instance) -> Prediction:
    """ETF (dang2023.ce-deep's prediction) inside the recorded ETF region, the recorded competitor outside."""
    if on_etf_side(inst):
        p = dang_ce_deep(inst)
        return p.with_(notes=tuple(p.notes) + ("conjecture: inside the recorded ETF region of (K, M)",))
    return competitor(inst)


BOUNDARY = Theorem(
    id="ce-deep-etf-boundary", defaults={"loss": "ce"},
    title="Deep linear CE, balanced: the simplex ETF is the global minimizer iff ell is in the recorded ETF region",
    source=SOURCE, provenance="corrected conjecture: boundaries certified at 30 digits in theory/golden/ce_phase.json",
    family="ce-deep", objective=CE_NORMALIZATION,
    assumptions=("M >= 1", "d >= K", "balanced", "no bias", "3 <= K <= 8 and M <= 6 (the recorded table)"),
    validator=assumptions("ce-deep-etf-boundary", loss="ce", balanced=True, bias=False, depths=range(1, 7),
                          classes=(3, 8)),
    strategy=domain("ce-deep", losses=("ce",), balanced=True, K=(3, 8)),  # the recorded table's K and M
    claim=boundary_claim, shape_claims=("nc1",),
    expected=Expected(
        "refuted", counterexample="--classes 4 --per-class 1 --width 4 --depth 4 --lam-w 0.1314 --lam-h 0.1314",
        region="K = 4, M >= 2, in a narrow band just past the recorded crossing into total collapse (ell up to at "
               "least 1.0005x the crossing at M = 2, 1.005x at M = 3, 1.01x at M = 4, 1.02x at M = 5, 6): a rank-1 "
               "geometry of the class-mean logits (two antipodal pairs on one axis with unequal amplitudes) lies "
               "below total collapse (e.g. 1.384186 < log 4 = 1.386294 at ell = 0.1314, M = 4); the code enumeration "
               "of theory.ce_codes does not contain it, so the recorded table and the ce-deep derivation say collapse "
               "there. Not seen for K = 3, 5, 6, 7, 8 at the same distances from their crossings",
        refutes=collapse_band),
    examples=(
        # K = 4, M = 2 on both sides of ell* = 0.0117604980792883941770590629224 (n = 2: lambda = ell / 2^(1/3))
        Instance.create(classes=4, per_class=2, width=4, depth=2, lam_w=0.00635, lam_h=0.00635, loss="ce"),
        Instance.create(classes=4, per_class=2, width=4, depth=2, lam_w=0.0159, lam_h=0.0159, loss="ce"),
        # the counterexample of dang2023.ce-deep: the square wins
        Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=2e-3, lam_h=2e-3, loss="ce"),
        # the recorded counterexample: ell = 0.1314 just past the crossing into collapse (0.13014 at K = 4, M = 4)
        Instance.create(classes=4, per_class=1, width=4, depth=4, lam_w=0.1314, lam_h=0.1314, loss="ce"),
    ),
)

THEOREMS = [BOUNDARY]


def _widened(inst: Instance, p: Prediction) -> Prediction:
    return dang_ce_deep(inst) if on_etf_side(inst, widen=1.5) else p


def _forgot_n(inst: Instance, p: Prediction) -> Prediction:
    """The competitor's value at ell / n^(1/(M+1)) (the class size dropped from the penalty)."""
    from ncverify.theory import ce_codes

    if p.family != "ce-deep" or p.derivation.get("etf_optimal", True):
        return p
    M = inst.depth
    ell = ell_of(inst) / inst.n ** (1.0 / (M + 1))
    win, _ = ce_codes.best_geometry(inst.K, M, ell, 40)
    val = ce_codes.collapse_value(inst.K) if win is None else win.value
    return p.with_(objective=Exact(mp.mpf(val)))


MUTANTS = [
    mutant(BOUNDARY, "region*1.5", "the ETF region stretched by a factor 1.5 at both ends", _widened,
           examples=(Instance.create(classes=4, per_class=2, width=4, depth=2, lam_w=0.0119, lam_h=0.0119, loss="ce"),)),
    mutant(BOUNDARY, "no-n", "the competitor's value at ell without the factor n^(1/(M+1))", _forgot_n,
           examples=(Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=2e-3, lam_h=2e-3, loss="ce"),)),
]
