"""[T22] Thrampoulidis, Kini, Vakilian, Behnia 2022: the SELI geometry (``thrampoulidis2022.seli``), the
vanishing-regularization limit of the bias-free CE UFM, checked through its convex max-margin program (the UF-SVM)
rather than by gradient descent on the regularized problem, which approaches it only logarithmically slowly
(about 0.41/log(1/lambda) in normalized Gram distance, ../shared/THEOREMS.md)."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import (DPS, MAX_MARGIN_NORMALIZATION, Expected, Theorem, assumptions, domain,
                                              exact, mutant)
from ncverify.theory.prediction import GramTarget, Prediction, SingularValues

T22 = ("[T22] Thrampoulidis, Kini, Vakilian, Behnia. \"Imbalance Trouble: Revisiting Neural-Collapse Geometry\", "
       "NeurIPS 2022, arXiv 2208.05512")
TID = "thrampoulidis2022.seli"


def _mat(A: mp.matrix) -> list[list[mp.mpf]]:
    return [[+A[i, j] for j in range(A.cols)] for i in range(A.rows)]


def seli_prediction(inst: Instance, centered: bool = True, root: bool = True) -> Prediction:
    """The SELI claim: with Zhat = (I - 11^T/K) Y = V Lambda U^T, every UF-SVM minimizer has W^T H = Zhat (class-mean
    logits P = I - 11^T/K), classifier Gram V Lambda V^T = (P D P)^(1/2), feature Gram U Lambda U^T (class means:
    D^(-1/2) U_c Lambda U_c^T D^(-1/2) with P D^(1/2) = V Lambda U_c^T), optimal value ||P D^(1/2)||_*, NC1, and no
    minority collapse. Computed from the SVD of P D^(1/2) in mpmath. ``centered``/``root`` exist for the mutants."""
    with mp.workdps(DPS):
        K = inst.K
        P = mp.eye(K) - (mp.ones(K, K) / K if centered else mp.zeros(K, K))
        Dh = mp.diag([mp.sqrt(c) for c in inst.counts])
        Dih = mp.diag([1 / mp.sqrt(c) for c in inst.counts])
        V, S, Ut = mp.svd_r(P * Dh)
        lam = [S[i] if S[i] > mp.mpf(10) ** (-DPS) else mp.mpf(0) for i in range(K)]
        L = mp.diag(lam)
        WWT = V * L * V.T if root else V * L * L * V.T
        HH = Dih * Ut.T * L * Ut * Dih
        n_b = min(inst.counts)
        minority = tuple(k for k, c in enumerate(inst.counts) if c == n_b)
        return Prediction(
            family="max-margin", instance=inst.as_dict(), objective=exact(mp.fsum(lam)),
            singular_values=SingularValues([exact(mp.sqrt(x)) for x in lam], None, [exact(x) for x in lam]),
            gram_targets={"WWT": GramTarget("general", [exact(WWT[k, k]) for k in range(K)], matrix=_mat(WWT)),
                          "HbarTHbar": GramTarget("general", [exact(HH[k, k]) for k in range(K)], matrix=_mat(HH)),
                          "WHbar": GramTarget("general", [exact(P[k, k]) for k in range(K)], matrix=_mat(P))},
            rows_equal=[(minority, False)] if len(minority) > 1 else [],
            notes=["claim: W^T H = Zhat = (I - 11^T/K) Y, Grams as matrix square roots, f* = ||P D^(1/2)||_*, NC1, "
                   "no minority collapse"])


def thrampoulidis_seli(inst: Instance) -> Prediction:
    """[T22] SELI (see ``seli_prediction``)."""
    return seli_prediction(inst)


def _balanced_etf(inst: Instance, p: Prediction) -> Prediction:
    """The balanced answer used for imbalanced data: W W^T = sqrt(N/K) (I - 11^T/K) (the ETF of the mean count)."""
    with mp.workdps(DPS):
        K, s = inst.K, mp.sqrt(mp.mpf(inst.N) / inst.K)
        G = [[s * ((1 if i == j else 0) - mp.mpf(1) / K) for j in range(K)] for i in range(K)]
        return p.with_(gram_targets={**p.gram_targets, "WWT": GramTarget("general", [exact(G[k][k]) for k in range(K)],
                                                                          matrix=G)})


EXAMPLES = (Instance.create([5, 5, 2, 1], width=4, loss="ce", lam_w=1.0, lam_h=1.0),
            Instance.create([10, 10, 10, 1, 1, 1], width=6, loss="ce", lam_w=1.0, lam_h=1.0),
            Instance.create(classes=3, per_class=4, width=3, loss="ce", lam_w=1.0, lam_h=1.0))

SELI = Theorem(
    id=TID, defaults={"loss": "ce"}, model="max-margin",
    title="SELI: the vanishing-regularization CE geometry (logits = simplex-encoded labels, Grams as matrix square "
          "roots), through the max-margin program",
    source=T22 + ", SELI characterization of the UF-SVM",
    provenance="[P] from the paper (abstract and statement as in ../shared/THEOREMS.md); the derivation (family "
               "max-margin) and the certificates are the suite's own",
    family="max-margin", objective=MAX_MARGIN_NORMALIZATION,
    assumptions=("M = 1", "no bias", "d >= K (the statement needs d >= K - 1)", "any counts",
                 "the lambdas are not used (the limit lambda -> 0)"),
    validator=assumptions(TID, loss="ce", depths=(1,), bias=False),
    strategy=domain("max-margin", losses=("ce",), depths=(1,), K=(2, 10), n_max=(1, 60), extra_width=2,
                    lam=(1.0, 1.0), per_layer=False, aim=()),
    claim=thrampoulidis_seli,
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [SELI]

MUTANTS = [
    mutant(SELI, "no-root", "W W^T = P D P (the square root dropped)", lambda inst, p: seli_prediction(inst, root=False)),
    mutant(SELI, "uncentered", "logits = the one-hot labels Y (not centered), f* = ||D^(1/2)||_*",
           lambda inst, p: seli_prediction(inst, centered=False)),
    mutant(SELI, "balanced-etf", "the classifiers form the balanced ETF sqrt(N/K)(I - 11^T/K) whatever the counts",
           _balanced_etf, examples=(EXAMPLES[0],)),
]
