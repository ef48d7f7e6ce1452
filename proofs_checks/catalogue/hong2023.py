"""[H23] Hong & Ling 2023: the imbalanced CE UFM with a regularized bias and two class groups
(``hong2023.ce-minority-collapse``): NC1 always, and minority collapse (the minority classes' rows of W coincide)
exactly at a sharp threshold. Normalization: the paper's code penalizes lambda ||.||^2 without the factor 1/2; this
catalogue states every claim in the suite's 1/2-convention (``CE_NORMALIZATION``), where the threshold reads
sqrt(lambda_W lambda_H) >= sqrt(n_B)/N (in the paper's convention: sqrt(lambda_W lambda_H) >= sqrt(n_B)/(2N))."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import InvalidInstanceError
from ncverify.proofs_checks.statement import CE_NORMALIZATION, DPS, Expected, Theorem, assumptions, domain, mutant, num
from ncverify.theory.prediction import Prediction

H23 = ("[H23] Hong, Ling. \"Neural Collapse for Unconstrained Feature Model under Cross-entropy Loss with "
       "Imbalanced Data\", arXiv 2309.09725")
TID = "hong2023.ce-minority-collapse"

_base = assumptions(TID, loss="ce", depths=(1,), bias=True, lam_b="positive")


def two_groups(inst: Instance) -> None:
    """Hong & Ling's setting: the CE UFM (M = 1) with a regularized bias and exactly two class counts, the minority
    group (the smaller count) of at least two classes (minority collapse needs two minority classes)."""
    _base(inst)
    sizes = sorted(set(inst.counts))
    if len(sizes) != 2:
        raise InvalidInstanceError(f"{TID} is about two class groups (two distinct counts n_A > n_B), got counts "
                                   f"{list(inst.counts)}")
    if inst.counts.count(sizes[0]) < 2:
        raise InvalidInstanceError(f"{TID}: minority collapse needs at least two minority classes (count "
                                   f"{sizes[0]}), got {inst.counts.count(sizes[0])}")


def minority(inst: Instance) -> tuple[int, ...]:
    """The 0-based minority classes (those with the smaller count n_B)."""
    n_b = min(inst.counts)
    return tuple(k for k, c in enumerate(inst.counts) if c == n_b)


def threshold_claim(inst: Instance, count: int, factor: int = 1) -> Prediction:
    """The claim's form: the minority classes' rows of W coincide iff sqrt(lambda_W lambda_H) >= sqrt(count)/(factor N)
    (count = n_B and factor = 1 in the statement; the mutants change them). No minimal value is stated."""
    with mp.workdps(DPS):
        mu = mp.sqrt(num(inst.lam_w[0]) * num(inst.lam_h))
        collapsed = bool(mu >= mp.sqrt(count) / (factor * inst.N))
    return Prediction(family="ce-ufm-imbalanced", instance=inst.as_dict(), objective=None,
                      rows_equal=[(minority(inst), collapsed)],
                      notes=["claim: NC1; the minority classifiers coincide iff sqrt(lambda_W lambda_H) >= sqrt(n_B)/N "
                             "(1/2-convention)"])


def hong_minority_collapse(inst: Instance) -> Prediction:
    """[H23] two groups (K_A classes of n_A, K_B >= 2 of n_B < n_A), N = K_A n_A + K_B n_B: the minority rows of W
    are equal iff sqrt(lambda_W lambda_H) >= sqrt(n_B)/N, whatever lambda_b; NC1 always."""
    return threshold_claim(inst, min(inst.counts))


SMALL = dict(width=4, loss="ce", bias=True, lam_b=0.01)
EXAMPLES = (Instance.create([10, 10, 2, 2], lam_w=0.04, lam_h=0.04, **SMALL),  # mu = 0.04 < sqrt(2)/24 = 0.0589
            Instance.create([10, 10, 2, 2], lam_w=0.1, lam_h=0.1, **SMALL),  # 0.0589 < mu = 0.1 < sqrt(10)/24
            Instance.create([20, 20, 20, 3, 3, 3], lam_w=0.02, lam_h=0.02, width=6, loss="ce", bias=True, lam_b=0.1),
            Instance.create([20, 20, 20, 3, 3, 3], lam_w=0.03, lam_h=0.03, width=6, loss="ce", bias=True, lam_b=0.1))

CE_MINORITY_COLLAPSE = Theorem(
    id=TID, defaults={"loss": "ce", "bias": True}, requires=("convex",),
    title="Imbalanced CE UFM, two groups: NC1, minority collapse iff sqrt(lambda_W lambda_H) >= sqrt(n_B)/N",
    source=H23 + ", minority-collapse threshold for two class groups",
    provenance="[P] NC1 and a sharp minority-collapse threshold (paper abstract and code); [D] the threshold's "
               "value sqrt(n_B)/N in the 1/2-convention, independent of the bias, from ../shared/THEOREMS.md (research "
               "notes); the exact derivation (family ce-ufm-imbalanced) is the suite's own",
    family="ce-ufm-imbalanced", objective=CE_NORMALIZATION,
    assumptions=("M = 1", "d >= K", "two class groups: K_A of n_A, K_B >= 2 of n_B < n_A",
                 "bias with lambda_b > 0 (the paper's regularized bias)"),
    validator=two_groups,
    strategy=domain("ce-ufm-imbalanced", losses=("ce",), two_groups=True, K=(3, 8), n_max=(2, 40), depths=(1,),
                    extra_width=2, bias=True, lam_b_range=(1e-3, 1.0), lam=(1e-3, 1.0), per_layer=False,
                    ratios=(0.5, 0.8, 1.25, 2.0)),
    claim=hong_minority_collapse, shape_claims=("nc1",),
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [CE_MINORITY_COLLAPSE]

MUTANTS = [
    mutant(CE_MINORITY_COLLAPSE, "no-1/2",
           "the threshold of the paper's penalties without 1/2 (sqrt(n_B)/(2N)) used with this suite's lambda/2",
           lambda inst, p: threshold_claim(inst, min(inst.counts), factor=2), examples=(EXAMPLES[0],)),
    mutant(CE_MINORITY_COLLAPSE, "majority-count", "the threshold with the majority count sqrt(n_A)/N",
           lambda inst, p: threshold_claim(inst, max(inst.counts)), examples=(EXAMPLES[1],)),
    mutant(CE_MINORITY_COLLAPSE, "never", "the minority classifiers never coincide",
           lambda inst, p: p.with_(rows_equal=[(minority(inst), False)]), examples=(EXAMPLES[1],)),
]
