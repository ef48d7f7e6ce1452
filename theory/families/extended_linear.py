"""Family ``extended-linear``: the extended UFM W_M ... W_2 s(W_1 H_1) with s = identity.

It is literally the deep linear (M+1)-factor objective (checked symbolically,
``reduced.extended_linear_as_factor_form``), so the ``mse-deep`` machinery applies; H_1 plays H. With
s = ReLU the family derives only the identity-activation minimum and says what it leaves undetermined.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory import reduced as R
from ncverify.theory.families.mse_deep import check_mse, derive_mse, gram_kind, mse_critical_lam_h
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Exact, GramTarget, Prediction

def derive_extended(I: ExactInstance, dps: int, exact: bool = True) -> Prediction:
    """The extended UFM with s = identity, reduced to the deep linear (M+1)-factor objective (exact=False: values
    only, see ``derive_mse``)."""
    check_mse(I, "extended-linear", False)
    if not R.extended_linear_as_factor_form():
        raise RuntimeError("the extended UFM with s = identity did not reduce to the deep linear form")
    pred = derive_mse(I, "extended-linear", centered=False, dps=dps, extended=True, exact=exact)
    # class means of H_2 = W_1 H_1: singular values s_{1,k} eta_k, class-mean norms s_{1,k} eta_k / sqrt(n_k)
    h2 = []
    for k in range(I.K):
        s1, eta = pred.singular_values.layers[0][k], pred.singular_values.features[k]
        expr = s1.expr * eta.expr / sp.sqrt(I.counts[k]) if s1.expr is not None and eta.expr is not None else None
        h2.append(Exact(s1.value * eta.value / mpmath.sqrt(I.counts[k]), expr, "||hbar2_k|| = s_{1,k} eta_k / sqrt(n_k)"))
    sq = [Exact(e.value ** 2, e.expr ** 2 if e.expr is not None else None) for e in h2]
    gram = {**pred.gram_targets,
            "H2barTH2bar": GramTarget(gram_kind([e.value for e in sq], dps), sq,
                                      description="class means of H_2 = W_1 H_1 (diagonal in the class basis)")}
    notes = ["extended UFM with s = identity: 1/(2N)||W_M...W_2 W_1 H_1 - Y||^2 + penalties is the deep "
             f"linear (M+1)-factor objective with M = {I.depth} (checked symbolically entry by entry for "
             "small matrices); H_1 plays H", *pred.notes]
    undetermined = list(pred.undetermined)
    if I.activation == "relu":
        undetermined.append("s = ReLU: the theory derives only the identity-activation minimum; a claim that "
                            "the ReLU minimum equals it is checked by the numerics")
        undetermined.append("the pre-activation geometry W_1 H_1 under ReLU (only s(W_1 H_1) is constrained)")
        notes.append("ReLU: the linear minimum is an upper bound of the ReLU minimum only after a rotation makes "
                     "W_1 H_1 entrywise non-negative (orthogonal class means, d >= #nonzero classes); "
                     "a lower bound is not derived")
    return pred.with_(family="extended-linear", scalars={**pred.scalars, "hbar2_norm": h2}, gram_targets=gram,
                      notes=notes, undetermined=undetermined)


class ExtendedLinear:
    """The family ``extended-linear``."""

    name = "extended-linear"
    description = "extended UFM W_M ... W_2 s(W_1 H_1), s = identity (ReLU: the linear minimum only)"

    def check(self, I: ExactInstance) -> None:
        check_mse(I, self.name, False)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_extended(I, dps)

    def derive_values(self, I: ExactInstance, dps: int) -> Prediction:
        """``derive`` with values only (``derive_mse(exact=False)``)."""
        return derive_extended(I, dps, exact=False)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        return {"lam_h": mse_critical_lam_h(I)}
