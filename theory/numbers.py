"""THE exact-number rule of the suite: an instance parameter means the decimal number it prints as.

``1e-3`` is exactly 1/1000 in every derivation and every claim, because that is what a user typing
``--lam-h 1e-3`` means. ``decimal_literal`` is the rule; ``exact_number`` (a SymPy rational, for the
derivations) and ``mp_number`` (an mpmath number at the current precision, for claims written in mpmath)
are its two views. SymPy is imported only when an exact rational is asked for, so light users (the
catalogue, the claims) do not load it.
"""
from __future__ import annotations

from typing import Any

import mpmath


def decimal_literal(value: Any) -> str:
    """The decimal string a parameter stands for: ints as they are, floats by their shortest repr."""
    if isinstance(value, bool):
        raise TypeError(f"a number is needed, got {value!r}")
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def exact_number(value: Any):
    """``value`` as an exact SymPy rational (1e-3 -> 1/1000; SymPy numbers are rationalized exactly)."""
    import sympy as sp

    if isinstance(value, sp.Basic):
        return sp.nsimplify(value, rational=True)
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(decimal_literal(value))


def mp_number(value: Any) -> mpmath.mpf:
    """``value`` as an mpmath number (exact decimal literal rounded once at the working precision)."""
    return mpmath.mpf(decimal_literal(value))
