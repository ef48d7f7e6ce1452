"""THE exact instance reader of the theory engine.

The theory engine never imports ``numerics``: it reads any object with the attributes of
``numerics.problem.Instance`` (counts, width, depth, lam_w, lam_h, loss, bias, lam_b, activation) by duck
typing, and turns every parameter into an exact rational by the one exact-number rule
(``theory.numbers``: 1e-3 means 1/1000).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.numbers import exact_number


@dataclass(frozen=True)
class ExactInstance:
    """An instance with exact parameters. counts = (n_1..n_K), width = d, depth = M, lam_w = (lambda_W1..
    lambda_WM), lam_h = lambda_H, lam_b = lambda_b (rationals); loss, bias, activation as given; raw = the
    instance's own parameter dict (for reports)."""

    counts: tuple[int, ...]
    width: int
    depth: int
    lam_w: tuple[sp.Rational, ...]
    lam_h: sp.Rational
    loss: str
    bias: bool
    lam_b: sp.Rational
    activation: str | None
    raw: dict
    targets: tuple[tuple[float, ...], ...] | None = None  # real-valued targets' prototypes T (Y = T E), or None

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def N(self) -> int:
        return sum(self.counts)

    @property
    def balanced(self) -> bool:
        return len(set(self.counts)) == 1


def read_instance(inst: Any) -> ExactInstance:
    """Read the attributes of an instance-like object; lambdas become exact rationals.
    Raises TheoryInputError naming the violated condition."""
    if isinstance(inst, ExactInstance):
        return inst
    try:
        counts = tuple(int(c) for c in inst.counts)
        width = int(inst.width)
        depth = int(getattr(inst, "depth", 1))
        lw = getattr(inst, "lam_w")
        lam_w = tuple(lw) if isinstance(lw, (list, tuple)) else (lw,) * depth
        if len(lam_w) == 1 and depth > 1:
            lam_w = lam_w * depth
        lam_h = inst.lam_h
    except AttributeError as exc:
        raise TheoryInputError(f"not an instance: {exc}") from None
    if len(lam_w) != depth:
        raise TheoryInputError(f"need one lambda_W per layer: depth M = {depth} but {len(lam_w)} values were given")
    if not counts or min(counts) < 1:
        raise TheoryInputError(f"class counts must be >= 1, got {list(counts)}")
    if depth < 1 or width < 1:
        raise TheoryInputError(f"depth M and width d must be >= 1, got M = {depth}, d = {width}")
    lam_w_e = tuple(exact_number(x) for x in lam_w)
    lam_h_e = exact_number(lam_h)
    if min(lam_w_e) <= 0 or lam_h_e <= 0:
        raise TheoryInputError("all lambda_W and lambda_H must be > 0")
    raw = inst.as_dict() if hasattr(inst, "as_dict") else {
        "counts": list(counts), "width": width, "depth": depth, "lam_w": [float(x) for x in lam_w],
        "lam_h": float(lam_h), "loss": getattr(inst, "loss", "mse"), "bias": bool(getattr(inst, "bias", False)),
        "lam_b": float(getattr(inst, "lam_b", 0.0)), "activation": getattr(inst, "activation", None)}
    T = inst.target_prototypes() if getattr(inst, "targets", None) is not None else None
    return ExactInstance(counts, width, depth, lam_w_e, lam_h_e, str(getattr(inst, "loss", "mse")),
                         bool(getattr(inst, "bias", False)), exact_number(getattr(inst, "lam_b", 0.0) or 0),
                         getattr(inst, "activation", None), raw,
                         None if T is None else tuple(tuple(float(x) for x in row) for row in T))
