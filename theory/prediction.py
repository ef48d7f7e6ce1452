"""The structured result of a derivation: what the theory engine says the global minimizer is.

Every numeric value is an ``mpmath.mpf`` computed at ``Prediction.dps`` digits from an exact SymPy
expression (``Exact.expr``) whenever one exists. Lists indexed by class follow the class order of
the instance (class k is index k-1). This is the contract between ``theory`` and its users
(``proofs_checks``); it never contains torch objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mpmath
import sympy as sp


@dataclass(frozen=True)
class Exact:
    """A derived quantity: an exact SymPy expression (or None if only numeric) and its value."""

    value: mpmath.mpf
    expr: sp.Expr | None = None
    note: str = ""  # e.g. "CRootOf(...)", "mpmath.findroot in bracket [a, b]"

    def __float__(self) -> float:
        return float(self.value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": float(self.value), "digits": mpmath.nstr(self.value, 30)}
        if self.expr is not None:
            out["exact"] = sp.sstr(self.expr)
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class PhaseBoundary:
    """Where the global minimizer changes branch (or where a stationary branch appears).

    parameter: the swept quantity, e.g. "n_k / b" or "c = K sqrt(n lambda_H lambda_W)".
    kind: "global" (the global minimizer switches branch) or "existence" (a non-global stationary
    branch appears / disappears).
    """

    parameter: str
    value: Exact
    kind: str
    description: str
    classes: tuple[int, ...] = ()  # 0-based classes the boundary concerns (empty = all)
    instance_value: mpmath.mpf | None = None  # the parameter's value at the instance, for "which side"

    def to_json(self) -> dict[str, Any]:
        out = {"parameter": self.parameter, "kind": self.kind, "description": self.description,
               "classes": list(self.classes), "threshold": self.value.to_json()}
        if self.instance_value is not None:
            out["instance_value"] = float(self.instance_value)
        return out


@dataclass(frozen=True)
class Candidate:
    """One candidate of the global selection: a stationary or boundary point and its objective."""

    label: str  # e.g. "x = 0 (boundary)", "root 2 of the stationary polynomial"
    point: tuple[mpmath.mpf, ...]
    objective: mpmath.mpf
    selected: bool = False


@dataclass
class Prediction:
    """The theory engine's global minimizer of one instance's objective.

    family: objective family id ("mse-deep", "mse-deep-bias", "ce-deep-etf", "extended-linear").
    objective: the minimal value f* of the full objective (with the instance's normalizations).
    scalars: per class (or per mode) scalars of the reduced problem, e.g. {"x": [...]} for MSE.
    singular_values: {"weights_product": [...], "layers": [[...] per layer j = 1..M], "output": [...]}
      -- the nonzero-or-zero singular values indexed like the classes (modes), not sorted.
    gram_targets: {"WWT": {"kind": "OF"|"ETF"|"GOF"|"zero", "diag": [...]},
                   "HbarTHbar": {...}} as the derivation gives them.
    class_mean_norms: ||hbar_k|| for every class (for the features H entering W_1).
    bias: the optimal bias vector (or None without a bias).
    collapsed_classes: 0-based indices k whose class mean and row of W are 0 at the minimizer.
    undetermined: quantities the theory leaves free (rotations, pre-activation geometry, ...).
    phase_boundaries / candidates: see the dataclasses above.
    reduced_problem / stationary_equation: SymPy objects (for printing and golden files).
    """

    family: str
    instance: dict[str, Any]
    objective: Exact
    scalars: dict[str, list[Exact]]
    singular_values: dict[str, Any]
    gram_targets: dict[str, Any]
    class_mean_norms: list[Exact]
    bias: list[Exact] | None
    collapsed_classes: list[int]
    undetermined: list[str] = field(default_factory=list)
    phase_boundaries: list[PhaseBoundary] = field(default_factory=list)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    reduced_problem: Any = None
    stationary_equation: Any = None
    notes: list[str] = field(default_factory=list)
    dps: int = 40
    # added by the theory engine (issue 3): the id that was asked for (theorem id or family id), and the
    # symbolic derivation steps (name -> SymPy object or text) that ``theory.render`` prints.
    requested_id: str | None = None
    derivation: dict[str, Any] = field(default_factory=dict)

    def scalar_values(self, name: str) -> list[float]:
        """Float values of one per-class/per-mode scalar (convenience for tests and reports)."""
        return [float(e.value) for e in self.scalars[name]]
