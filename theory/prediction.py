"""The structured result of a derivation (or a claim): what the global minimizer is said to be.

Immutable and typed: a ``Prediction`` is built once (lists become tuples, dicts read-only mappings) and
changed only by ``with_(...)``, which returns a new one. Every numeric value is an ``Exact``: an mpmath
number computed at ``Prediction.dps`` digits, with the exact SymPy expression when one exists. Sequences
indexed by class follow the instance's class order (class k is index k-1). This is the contract between
``theory`` and its users; it never holds torch objects, and importing it does not import SymPy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import mpmath

if TYPE_CHECKING:  # pragma: no cover
    import sympy as sp

GEOMETRIES = ("OF", "GOF", "ETF", "zero", "general")


def _tuple(xs: Iterable | None) -> tuple | None:
    return None if xs is None else tuple(xs)


def _frozen_map(m: Mapping | None) -> Mapping:
    return MappingProxyType(dict(m or {}))


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Exact:
    """A derived quantity: its value, and the exact SymPy expression (None when only numeric)."""

    value: mpmath.mpf
    expr: "sp.Expr | None" = None
    note: str = ""  # e.g. "CRootOf(...)", "mpmath.findroot in bracket [a, b]"

    def __float__(self) -> float:
        return float(self.value)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": float(self.value), "digits": mpmath.nstr(self.value, 30)}
        if self.expr is not None:
            import sympy as sp

            out["exact"] = sp.sstr(self.expr)
        if self.note:
            out["note"] = self.note
        return out


def exact(v: Any) -> Exact:
    """A value without an exact expression (claims computed in mpmath)."""
    return Exact(mpmath.mpf(v))


@dataclass(frozen=True)
class PhaseBoundary:
    """Where the global minimizer changes branch (or where a stationary branch appears).

    parameter: the swept quantity, e.g. "n_k / b" or "lambda_H (other parameters fixed)".
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


@dataclass(frozen=True)
class SingularValues:
    """Singular values indexed like the classes (or modes), not sorted; None = not stated.

    weights_product: of W = W_M...W_1; layers: one tuple per layer W_j, j = 1..M; output: of W H (the
    logits / outputs); features: of H.
    """

    weights_product: tuple[Exact, ...] | None = None
    layers: tuple[tuple[Exact, ...], ...] | None = None
    output: tuple[Exact, ...] | None = None
    features: tuple[Exact, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("weights_product", "output", "features"):
            _set(self, name, _tuple(getattr(self, name)))
        if self.layers is not None:
            _set(self, "layers", tuple(tuple(r) for r in self.layers))


@dataclass(frozen=True)
class GramTarget:
    """A Gram matrix as the derivation or the claim states it.

    kind: "OF" (diagonal, equal entries), "GOF" (diagonal), "ETF" (scale (I - 11^T/K)), "zero", or
      "general" (then ``matrix`` holds it); diag: the diagonal entries per class (None = the scale is not
      stated: only the shape is claimed); scale: the ETF / OF scale when given; matrix: the full K x K
      matrix (mpmath numbers) when it is not diagonal; centered: class means centered by their mean;
      relabel: the classes are interchangeable (balanced), so ``matrix`` holds up to one simultaneous permutation
      of its rows and columns (any relabelling of the classes is an equally good minimizer).
    """

    kind: str
    diag: tuple[Exact, ...] | None = None
    scale: Exact | None = None
    matrix: tuple[tuple[mpmath.mpf, ...], ...] | None = None
    description: str = ""
    centered: bool = False
    relabel: bool = False

    def __post_init__(self) -> None:
        _set(self, "diag", _tuple(self.diag))
        if self.matrix is not None:
            _set(self, "matrix", tuple(tuple(r) for r in self.matrix))

    def with_(self, **changes: Any) -> "GramTarget":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.scale is not None:
            out["scale"] = self.scale
        if self.diag is not None:
            out["diag"] = list(self.diag)
        if self.matrix is not None:
            out["matrix"] = [list(r) for r in self.matrix]
        if self.centered:
            out["centered"] = True
        if self.relabel:
            out["relabel"] = True
        if self.description:
            out["description"] = self.description
        return out


# Gram matrices a prediction can state (keys of ``Prediction.gram_targets``)
GRAM_NAMES = {"WWT": "W W^T", "HbarTHbar": "Hbar^T Hbar", "WHbar": "W Hbar", "H2barTH2bar": "H2bar^T H2bar"}


@dataclass(frozen=True)
class Prediction:
    """The global minimizer of one instance's objective, as derived or as claimed.

    family: the objective family id ("mse-deep", "mse-deep-bias", "ce-deep-etf", "extended-linear", or a
      registered family); instance: the instance's parameters (read-only mapping).
    objective: the minimal value f* of the full objective (with the instance's normalizations), or None.
    scalars: per class (or per mode) scalars of the reduced problem, e.g. {"x": (...)} for MSE.
    singular_values: ``SingularValues``; gram_targets: name ("WWT", "HbarTHbar", ...) -> ``GramTarget``.
    class_mean_norms: ||hbar_k|| per class; bias: the optimal bias (None without a bias or unstated);
    collapsed_classes: 0-based k whose class mean and row of W are 0 (None = not stated).
    rows_equal: statements about rows of W (the classifiers w_k): ((classes, equal), ...) says that the rows of
      the 0-based ``classes`` coincide (equal=True: "minority collapse" when they are the minority classes) or are
      pairwise distinct (equal=False); None = not stated.
    undetermined: what the statement leaves free (rotations, pre-activation geometry, ...);
    free_fields: fields given only to build the claimed point, never compared ("layers",
      "class_mean_norms"); phase_boundaries / candidates: see the dataclasses above;
    reduced_problem / stationary_equation / derivation: SymPy objects for printing and golden files.
    requested_id: the id the user asked for when it differs from the family (a theorem id).
    """

    family: str
    instance: Mapping[str, Any]
    objective: Exact | None
    scalars: Mapping[str, tuple[Exact, ...]] = field(default_factory=dict)
    singular_values: SingularValues = field(default_factory=SingularValues)
    gram_targets: Mapping[str, GramTarget] = field(default_factory=dict)
    class_mean_norms: tuple[Exact, ...] | None = None
    bias: tuple[Exact, ...] | None = None
    collapsed_classes: tuple[int, ...] | None = None
    rows_equal: tuple[tuple[tuple[int, ...], bool], ...] | None = None
    undetermined: tuple[str, ...] = ()
    free_fields: tuple[str, ...] = ()
    phase_boundaries: tuple[PhaseBoundary, ...] = ()
    candidates: Mapping[str, tuple[Candidate, ...]] = field(default_factory=dict)
    reduced_problem: Any = None
    stationary_equation: Any = None
    notes: tuple[str, ...] = ()
    dps: int = 40
    requested_id: str | None = None
    derivation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.singular_values, SingularValues):
            raise TypeError("singular_values must be a SingularValues record")
        bad = [k for k, v in dict(self.gram_targets or {}).items() if not isinstance(v, GramTarget)]
        if bad:
            raise TypeError(f"gram_targets {bad} must be GramTarget records")
        _set(self, "instance", _frozen_map(self.instance))
        _set(self, "scalars", _frozen_map({k: tuple(v) for k, v in dict(self.scalars or {}).items()}))
        _set(self, "gram_targets", _frozen_map(self.gram_targets))
        _set(self, "candidates", _frozen_map({k: tuple(v) for k, v in dict(self.candidates or {}).items()}))
        _set(self, "derivation", _frozen_map(self.derivation))
        for name in ("class_mean_norms", "bias", "collapsed_classes"):
            _set(self, name, _tuple(getattr(self, name)))
        if self.rows_equal is not None:
            _set(self, "rows_equal", tuple((tuple(int(k) for k in ks), bool(eq)) for ks, eq in self.rows_equal))
        for name in ("undetermined", "free_fields", "phase_boundaries", "notes"):
            _set(self, name, tuple(getattr(self, name) or ()))

    def with_(self, **changes: Any) -> "Prediction":
        """A copy with some fields replaced (the only way to "change" a prediction)."""
        return dataclasses.replace(self, **changes)

    def scalar_values(self, name: str) -> list[float]:
        """Float values of one per-class/per-mode scalar (convenience for tests and reports)."""
        return [float(e.value) for e in self.scalars[name]]
