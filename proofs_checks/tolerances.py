"""Derived tolerances. Every tolerance is a ``Tol``: a value plus the sentence that derives it.

Symbols: eps = float64 unit roundoff (2.2e-16), P = number of scalar parameters, S = sum of the
absolute values of the objective's terms, g = final gradient norm of a solver run, mu = the smallest
Hessian eigenvalue above the symmetry cutoff at the numeric end point (rotations of the factors leave
the objective unchanged and give zero eigenvalues; the cutoff is sqrt(eps) ||Hess||_2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

EPS = 2.0 ** -52
SAFETY = 8.0  # margin on rounding-error estimates, stated once here


@dataclass(frozen=True)
class Tol:
    value: float
    origin: str

    def __float__(self) -> float:
        return self.value

    def to_json(self) -> dict:
        return {"value": self.value, "origin": self.origin}


def high_precision(dps: int, argmin: bool) -> Tol:
    """Comparison of two mpmath computations at ``dps`` digits."""
    if argmin:
        digits = dps // 2 - 2
        return Tol(10.0 ** -digits, f"argmin quantities from a 1-D minimization at {dps} digits are accurate to "
                                    f"about the square root of the working precision: 1e-{digits} relative")
    return Tol(10.0 ** -(dps - 10), f"objective values computed at {dps} digits, 10 digits of margin: "
                                    f"1e-{dps - 10} relative")


def evaluation(S: float, P: int) -> Tol:
    """Rounding error of one float64 evaluation of the objective."""
    v = SAFETY * math.sqrt(max(P, 1)) * EPS * max(S, 1e-300)
    return Tol(v, f"float64 evaluation: {SAFETY:g} sqrt(P) eps S with P = {P}, S = sum|terms| + data-term "
                  f"rounding scale = {S:.3g}")


def gradient_at_point(hess_norm: float, theta_norm: float, grad_scale: float, P: int) -> Tol:
    """How far from 0 the float64 gradient of an exact critical point, rounded to float64, can be."""
    v = SAFETY * math.sqrt(max(P, 1)) * EPS * (hess_norm * theta_norm + grad_scale)
    return Tol(v, f"critical point rounded to float64: {SAFETY:g} sqrt(P) eps (||Hess|| ||theta|| + |grad terms|) "
                  f"with ||Hess|| = {hess_norm:.3g}, ||theta|| = {theta_norm:.3g}, |grad terms| = {grad_scale:.3g} "
                  f"(times 1 + max|logit| for softmax-type losses; registered losses: the magnitudes of the terms of dL/dZ and "
                  f"|Hess_Z L| |Z|)")


def objective_match(eval_tol: Tol, g: float, mu: float) -> Tol:
    """|f(numeric) - f*| allowed for a run that stopped with gradient norm g near a minimizer."""
    conv = g * g / (2 * mu) if mu > 0 else math.inf
    return Tol(eval_tol.value * 2 + conv,
               f"2 x evaluation rounding ({eval_tol.value:.2g}) + g^2/(2 mu) = {conv:.2g} "
               f"(quadratic model at the end point, g = {g:.2g}, mu = {mu:.3g})")


def argmin_distance(eval_tol: Tol, g: float, mu: float) -> Tol:
    """Distance in parameter space between the numeric end point and the minimizer's orbit."""
    if mu <= 0:
        return Tol(math.inf, "no positive curvature above the symmetry cutoff: argmin undetermined")
    v = g / mu + math.sqrt(2 * eval_tol.value / mu)
    return Tol(v, f"g/mu + sqrt(2 tol_eval/mu) = {g / mu:.2g} + {math.sqrt(2 * eval_tol.value / mu):.2g} "
                  f"(Newton step plus the objective's resolution; the sqrt(eps) rule for argmin quantities)")


def product_perturbation(layer_norms: list[float], dtheta: float) -> float:
    """First-order bound on ||Delta(W_M...W_1)||_2 when every factor moves by at most dtheta."""
    total = 0.0
    for j in range(len(layer_norms)):
        p = 1.0
        for i, v in enumerate(layer_norms):
            if i != j:
                p *= v + dtheta
        total += p * dtheta
    return total
