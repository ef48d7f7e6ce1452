"""Family ``dufm-dnc``: the deep unconstrained features model with ReLU after every hidden layer (activation
"relu-deep": Z = W_M s(W_{M-1} ... s(W_1 H_1)), MSE 1/(2N), no biases, L2 on every W_j and H_1), balanced, restricted
to deep-neural-collapse points (DNC: NC1 at every layer, post-ReLU class means orthogonal with equal norms).

On such points the ReLU acts as the identity after the first layer (orthogonal nonnegative class means can be
rotated onto the positive orthant, and the weights between them chosen diagonal), and the first layer costs as
much as in the linear model whatever the angle between H_1's class means (for instance antipodal means h and -h
with W_1 = [u; -u], u^T h = a, cost ||W_1||^2 = 2 a^2/||h||^2, as for orthogonal means). So the best DNC point has
the value of the deep linear model's orthogonal-frame minimizer (family ``mse-deep``, balanced, global selection):
this family returns that value and the output's singular values. It is a RESTRICTED minimum: whether the DUFM's
global minimum is a DNC point is exactly what a theorem claims and the numerics check. The first layer's geometry
(the angle between H_1's class means, the singular values of W_1) is not determined.
"""
from __future__ import annotations

import dataclasses

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.families.mse_deep import derive_mse
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Prediction, SingularValues

NAME = "dufm-dnc"


def check_dufm(I: ExactInstance) -> None:
    if I.loss != "mse" or I.bias:
        raise TheoryInputError(f"{NAME} is the MSE DUFM without biases")
    if I.activation not in ("relu-deep", "relu") or I.depth < 2:
        raise TheoryInputError(f"{NAME} needs the ReLU after every hidden layer (--activation relu-deep, depth M >= 2)")
    if not I.balanced:
        raise TheoryInputError(f"{NAME} is derived for balanced classes, got counts {list(I.counts)}")
    if I.width < I.K:
        raise TheoryInputError(f"{NAME} needs width d >= K, got d = {I.width} < K = {I.K}")


def derive_dufm(I: ExactInstance, dps: int) -> Prediction:
    check_dufm(I)
    lin = derive_mse(dataclasses.replace(I, activation=None), "mse-deep", centered=False, dps=dps)
    return lin.with_(
        family=NAME, instance=I.raw, singular_values=SingularValues(output=lin.singular_values.output),
        gram_targets={}, class_mean_norms=None,
        undetermined=tuple(lin.undetermined) + ("the first layer: the angle between H_1's class means and the singular "
                                                "values of W_1 (any angle from 90 to 180 degrees costs the same)",),
        notes=("the best deep-neural-collapse point: the deep linear orthogonal-frame minimum (restricted: DNC is "
               "assumed, not derived)",) + tuple(lin.notes))


class Dufm:
    name = NAME
    description = "ReLU DUFM (relu-deep), balanced: the best deep-neural-collapse point (the deep linear OF value)"

    def check(self, I: ExactInstance) -> None:
        check_dufm(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_dufm(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        from ncverify.theory.families.mse_deep import mse_critical_lam_h

        return {"lam_h": mse_critical_lam_h(dataclasses.replace(I, activation=None))}
