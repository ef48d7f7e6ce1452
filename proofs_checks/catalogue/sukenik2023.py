"""[S23] Sukenik, Mondelli, Lampert 2023: the deep unconstrained features model with ReLU (``sukenik2023.dufm-binary``):
for two classes every global optimum exhibits deep neural collapse (DNC) at every layer. The DUFM here is H_1 free,
Z = W_M s(W_{M-1} ... s(W_1 H_1)) with the ReLU s after every layer but the last (``--activation relu-deep``), MSE
1/(2N), no biases, L2 on every W_j and on H_1. The claim's minimal value is the best DNC point's (the deep linear
orthogonal-frame value, family ``dufm-dnc``); the first layer's angle between H_1's class means is not determined
and is not claimed. [S24] (Sukenik, Lampert, Mondelli 2024) states that DNC is not optimal for L >= 3 or K >= 3."""
from __future__ import annotations

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import (DPS, MSE_NORMALIZATION, Expected, Theorem, assumptions, domain, exact,
                                              mode_minimizer, mode_value, mutant, num, with_objective_scaled)
from ncverify.theory.prediction import Prediction, SingularValues

S23 = ("[S23] Sukenik, Mondelli, Lampert. \"Deep Neural Collapse Is Provably Optimal for the Deep Unconstrained "
       "Features Model\", NeurIPS 2023, arXiv 2305.13165")
TID = "sukenik2023.dufm-binary"


def dnc_prediction(inst: Instance, depth_for_value: int | None = None) -> Prediction:
    """The claim: every global minimizer is a DNC point, so f* is the best DNC point's value: with t = the common
    singular value of Y (sqrt(n)), each of the K modes solves min_z (1/(2N))(sqrt(n) - z)^2 + ((M+1)/2) L z^(2/(M+1)),
    L = (lambda_H prod_j lambda_Wj)^(1/(M+1)) (global selection: z = 0 or the larger stationary root); the output
    W_M s(...) H_1 has singular values z*. ``depth_for_value`` exists for a mutant."""
    with mp.workdps(DPS):
        M = depth_for_value or inst.depth
        N, n = inst.N, inst.n
        lams = [num(v) for v in inst.lam_w]
        lams = (lams + lams * M)[:M]
        L = (num(inst.lam_h) * mp.fprod(lams)) ** (mp.mpf(1) / (M + 1))
        z = mode_minimizer(mp.sqrt(n), N, M, L)
        f = inst.K * mode_value(z, mp.sqrt(n), N, M, L)
        return Prediction(family="dufm-dnc", instance=inst.as_dict(), objective=exact(f),
                          singular_values=SingularValues(output=[exact(z)] * inst.K),
                          collapsed_classes=list(range(inst.K)) if z == 0 else [],
                          notes=["claim: deep neural collapse at every layer (NC1; post-ReLU class means orthogonal "
                                 "with equal norms); the angle of H_1's class means is not claimed"])


def sukenik_dufm_binary(inst: Instance) -> Prediction:
    """[S23] K = 2 (see ``dnc_prediction``)."""
    return dnc_prediction(inst)


EXAMPLES = (Instance.create([3, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2, activation="relu-deep"),
            Instance.create([2, 2], width=3, depth=3, lam_w=2e-2, lam_h=2e-2, activation="relu-deep"),
            Instance.create([4, 4], width=2, depth=4, lam_w=5e-3, lam_h=5e-3, activation="relu-deep"))

DUFM_BINARY = Theorem(
    id=TID, defaults={"activation": "relu-deep", "depth": 2},
    title="DUFM with ReLU, two classes: every global optimum has deep neural collapse at every layer",
    source=S23 + ", main theorem (binary classification, any depth)",
    provenance="[P] DNC optimal for K = 2 (paper abstract); [D] post-ReLU class means orthogonal with equal norms, the "
               "first layer's angle not determined (research notes); the DNC value (family dufm-dnc) is the suite's",
    family="dufm-dnc", objective=MSE_NORMALIZATION.replace("W_M...W_1 H", "W_M s(W_{M-1} ... s(W_1 H_1))", 1)
    .replace("(+ b 1^T) ", "").replace(" (bias unregularized)", ", no biases, s = ReLU"),
    assumptions=("K = 2 classes, balanced", "depth M >= 2 (ReLU after every layer but the last)", "no bias",
                 "d >= K"),
    validator=assumptions(TID, loss="mse", balanced=True, bias=False, activation="relu-deep", classes=(2, 2),
                          depths=(2, 3, 4, 5, 6)),
    strategy=domain("dufm-dnc", balanced=True, K=(2, 2), n=(1, 20), depths=(2, 3, 4), extra_width=2,
                    activation="relu-deep", lam=(1e-3, 1e-1)),
    claim=sukenik_dufm_binary, shape_claims=("nc1:H", "nc1:hidden", "gram:hidden=OF"), min_starts=6,
    expected=Expected("verified"),
    examples=EXAMPLES,
)

THEOREMS = [DUFM_BINARY]

MUTANTS = [
    mutant(DUFM_BINARY, "shallow-value", "the two-layer value used at every depth",
           lambda inst, p: dnc_prediction(inst, depth_for_value=2), examples=EXAMPLES[1:]),
    mutant(DUFM_BINARY, "1/N", "f* normalized with 1/N instead of 1/(2N)", lambda inst, p: with_objective_scaled(p, 2)),
]
