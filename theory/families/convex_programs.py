"""Families of the convex programs behind two CE results (depth 1, no bias):

* ``max-margin`` -- the vanishing-regularization limit of the CE UFM, the UF-SVM
  min 1/2 (||W||_F^2 + ||H||_F^2) s.t. (w_{y_i} - w_c)^T h_i >= 1 for every sample i and class c != y_i, which equals
  min ||Z||_* under the same margins on Z = W H (d >= K - 1). Derivation: with Y the one-hot labels and
  P = I - 11^T/K, the simplex-encoded labels Zhat = P Y satisfy every margin with equality; the dual point
  alpha built from Zhat's singular vectors certifies it (``numerics.convex`` checks that numerically), giving
  f* = ||Zhat||_* = ||P D^(1/2)||_* = sum_i sqrt(eig_i(P D P)), W W^T = (P D P)^(1/2) (the classifiers' Gram),
  Hbar^T Hbar = D^(-1/2) (D^(1/2) P D^(1/2))^(1/2) D^(-1/2) (class means), class-mean logits W Hbar = P. The
  eigenvalues are algebraic (roots of det(t I - P D P)); they are computed with mpmath at dps + 10 digits.
  Rows of W of two classes with equal counts are distinct (P D (e_k - e_l) = n_k (e_k - e_l) != 0).
* ``layer-peeled`` -- the layer-peeled model min (1/N) sum CE(W h_{k,i}, k) s.t. (1/K) sum_k ||w_k||^2 <= E_W,
  (1/K) sum_k (1/n_k) sum_i ||h_{k,i}||^2 <= E_H; in the instance, lam_w carries E_W and lam_h carries E_H.
  Balanced (exact): by convexity and symmetry the class-mean logits are an ETF, Z = c P with
  c = K sqrt(E_W E_H)/(K - 1) (the nuclear-norm budget rho = K sqrt(E_W E_H) spent on the K - 1 modes),
  f* = log(1 + (K - 1) exp(-c)), ||w_k||^2 = E_W, ||hbar_k||^2 = E_H, h_k = sqrt(E_H/E_W) w_k. Imbalanced: no exact
  derivation (the convex oracle certifies the value; minority collapse is located by bisection on it).
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Exact, GramTarget, Prediction, SingularValues
from ncverify.theory.solve import to_mpf

UNDETERMINED = ("rotations: W -> W Q^T, H -> Q H (only invariants are determined)",)


def _check_plain_ce(I: ExactInstance, name: str) -> None:
    if I.loss != "ce":
        raise TheoryInputError(f"{name} is about the CE loss, got {I.loss!r}")
    if I.depth != 1 or I.activation is not None:
        raise TheoryInputError(f"{name} has one weight matrix and no activation (M = 1), got M = {I.depth}")
    if I.bias:
        raise TheoryInputError(f"{name} has no bias")


def _sqrtm_sym(A: mpmath.matrix) -> mpmath.matrix:
    """The PSD square root of a symmetric matrix (eigenvalues clipped at 0)."""
    ev, Q = mpmath.eigsy(A)
    n = A.rows
    S = mpmath.matrix(n, n)
    for i in range(n):
        S[i, i] = mpmath.sqrt(max(ev[i], 0))
    return Q * S * Q.T


def _rows(A: mpmath.matrix) -> list[list[mpmath.mpf]]:
    return [[+A[i, j] for j in range(A.cols)] for i in range(A.rows)]


def _count_groups(counts: tuple[int, ...]) -> list[tuple[int, ...]]:
    groups: dict[int, list[int]] = {}
    for k, c in enumerate(counts):
        groups.setdefault(c, []).append(k)
    return [tuple(ks) for _, ks in sorted(groups.items()) if len(ks) > 1]


def derive_max_margin(I: ExactInstance, dps: int) -> Prediction:
    """The UF-SVM's minimizer (see the module docstring)."""
    _check_plain_ce(I, "max-margin")
    K = I.K
    note = "mpmath eigsy at dps + 10 digits (algebraic: roots of det(t I - P D P))"
    with mpmath.workdps(dps + 10):
        P = mpmath.eye(K) - mpmath.ones(K, K) / K
        D = mpmath.diag([mpmath.mpf(c) for c in I.counts])
        Dh = mpmath.diag([mpmath.sqrt(c) for c in I.counts])
        Dih = mpmath.diag([1 / mpmath.sqrt(c) for c in I.counts])
        PDP = P * D * P
        tiny = mpmath.mpf(10) ** (-dps)  # P D P is singular (P 1 = 0): its zero eigenvalue comes out at rounding level
        ev = sorted((e if e > tiny else mpmath.mpf(0) for e in mpmath.eigsy(PDP, eigvals_only=True)), reverse=True)
        sv = [mpmath.sqrt(e) for e in ev]
        f = mpmath.fsum(sv)
        WWT = _sqrtm_sym(PDP)
        HH = Dih * _sqrtm_sym(Dh * P * Dh) * Dih
    Pe = sp.eye(K) - sp.ones(K, K) / K
    return Prediction(
        family="max-margin", instance=I.raw, objective=Exact(+f, None, "||P D^(1/2)||_*: " + note),
        scalars={"singular_values_Zhat": [Exact(+x, None, note) for x in sv]},
        singular_values=SingularValues([Exact(mpmath.sqrt(x)) for x in sv], None, [Exact(+x) for x in sv]),
        gram_targets={
            "WWT": GramTarget("general", [Exact(WWT[k, k]) for k in range(K)], matrix=_rows(WWT),
                              description="W W^T = (P D P)^(1/2)"),
            "HbarTHbar": GramTarget("general", [Exact(HH[k, k]) for k in range(K)], matrix=_rows(HH),
                                    description="Hbar^T Hbar = D^(-1/2) (D^(1/2) P D^(1/2))^(1/2) D^(-1/2)"),
            "WHbar": GramTarget("general", [Exact(to_mpf(Pe[k, k], dps)) for k in range(K)],
                                matrix=[[to_mpf(Pe[i, j], dps) for j in range(K)] for i in range(K)],
                                description="class-mean logits W Hbar = P = I - 11^T/K (the simplex-encoded labels)")},
        rows_equal=[(ks, False) for ks in _count_groups(I.counts)],
        undetermined=UNDETERMINED, dps=dps,
        notes=["the UF-SVM (vanishing-regularization CE limit); the claimed point Zhat = P Y meets every margin "
               "with equality; f* = ||P D^(1/2)||_*"],
        derivation={"reduced_text": ["min ||Z||_* s.t. z_{y_i, i} - z_{c, i} >= 1 (Z = W H, d >= K - 1); under NC1 "
                                     "Z = Zbar Y with ||Z||_* = ||Zbar D^(1/2)||_*"],
                    "stationary_text": ["KKT: Zhat = P Y is feasible with every margin tight; the singular vectors of "
                                        "P D^(1/2) give the dual point (checked by the convex oracle)"]})


def derive_layer_peeled(I: ExactInstance, dps: int) -> Prediction:
    """The balanced layer-peeled model's minimizer (see the module docstring)."""
    _check_plain_ce(I, "layer-peeled")
    if not I.balanced:
        raise TheoryInputError("layer-peeled: an exact derivation only for balanced classes (imbalanced: the convex "
                               "oracle certifies the value, bisection on it locates minority collapse)")
    K = I.K
    E_W, E_H = I.lam_w[0], I.lam_h
    c = K * sp.sqrt(E_W * E_H) / (K - 1)
    f = sp.log(1 + (K - 1) * sp.exp(-c))
    shrink = sp.Rational(K - 1, K)
    cv = to_mpf(c, dps)
    with mpmath.workdps(dps + 10):
        z_sv = cv  # the K - 1 nonzero singular values of c P
        w_sv = mpmath.sqrt(to_mpf(E_W, dps + 10) * K / (K - 1))
        h_sv = mpmath.sqrt(to_mpf(E_H, dps + 10) * K / (K - 1))
    Pm = [[(cv * ((1 if i == j else 0) - mpmath.mpf(1) / K)) for j in range(K)] for i in range(K)]
    return Prediction(
        family="layer-peeled", instance=I.raw, objective=Exact(to_mpf(f, dps), f, "log(1 + (K-1) e^(-c))"),
        scalars={"c": [Exact(cv, c)], "rho": [Exact(to_mpf(K * sp.sqrt(E_W * E_H), dps), K * sp.sqrt(E_W * E_H))]},
        singular_values=SingularValues([Exact(+w_sv)] * (K - 1) + [Exact(mpmath.mpf(0))], None,
                                       [Exact(+z_sv)] * (K - 1) + [Exact(mpmath.mpf(0))],
                                       [Exact(+h_sv)] * (K - 1) + [Exact(mpmath.mpf(0))]),
        gram_targets={
            "WWT": GramTarget("ETF", [Exact(to_mpf(E_W, dps), E_W)] * K, description="||w_k||^2 = E_W, simplex ETF"),
            "HbarTHbar": GramTarget("ETF", [Exact(to_mpf(E_H, dps), E_H)] * K,
                                    description="||hbar_k||^2 = E_H, simplex ETF, h_k = sqrt(E_H/E_W) w_k"),
            "WHbar": GramTarget("ETF", [Exact(cv * to_mpf(shrink, dps), c * shrink)] * K, matrix=Pm,
                                description="class-mean logits c (I - 11^T/K), c = K sqrt(E_W E_H)/(K - 1)")},
        rows_equal=[], undetermined=UNDETERMINED, dps=dps,
        notes=["balanced layer-peeled model: convex in Z = W Hbar (||Z||_* <= K sqrt(E_W E_H)) and symmetric, so the "
               "ETF is a minimizer; both energy constraints are active"],
        derivation={"reduced_text": ["min sum_k (n_k/N) CE(z_k, k) s.t. ||Z||_* <= rho = K sqrt(E_W E_H), Z = W Hbar"],
                    "stationary_text": [f"symmetric minimizer Z = c P, c = rho/(K - 1) = {sp.sstr(c)}"]})


class MaxMargin:
    name = "max-margin"
    description = "the UF-SVM (vanishing-regularization CE limit, no bias): SELI geometry, f* = ||P D^(1/2)||_*"

    def check(self, I: ExactInstance) -> None:
        _check_plain_ce(I, self.name)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_max_margin(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        return {}


class LayerPeeled:
    name = "layer-peeled"
    description = "the layer-peeled model (E_W = lam_w, E_H = lam_h), balanced: simplex ETF, closed-form value"

    def check(self, I: ExactInstance) -> None:
        _check_plain_ce(I, self.name)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_layer_peeled(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        return {}
