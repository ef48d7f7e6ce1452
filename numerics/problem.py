"""Problem instances of the unconstrained-features models (pure Python, no torch, no SymPy).

Notation (../shared/THEOREMS.md): K classes with counts n_1..n_K (``counts``), N = sum_k n_k,
hidden width d (``width``), depth M (``depth``, the number of weight matrices W_1..W_M),
per-layer weight decay lambda_{W_j} (``lam_w[j-1]``), feature decay lambda_H (``lam_h``),
bias decay lambda_b (``lam_b``; 0 means an unregularized bias when ``bias`` is set).

Objective normalizations (never changed silently):

* MSE:  1/(2N) ||W_M...W_1 H (+ b 1_N^T) - Y||_F^2 + sum_j lambda_{W_j}/2 ||W_j||_F^2
  + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2)
* CE:   (1/N) sum_{k,i} CE(W_M...W_1 h_{k,i} (+ b), k) + the same penalties.
* A registered loss (``numerics.losses``, e.g. "ce-ls:0.1", "focal:2"): (1/N) sum_{k,i} loss(z_{k,i}, k)
  + the same penalties.
* Extended UFM ([P2]): ``activation`` in {"identity", "relu"} puts the entrywise map s between
  W_1 and W_2: W_M...W_2 s(W_1 H); it needs depth M >= 2.
* Deep unconstrained features model (DUFM): ``activation="relu-deep"`` puts a ReLU after every layer but the last,
  W_M s(W_{M-1} ... s(W_1 H)); it needs depth M >= 2 (M = 2 is the extended ReLU model).
* Regression targets (``targets`` = "gauss:SEED", MSE only): Y = T E instead of the one-hot labels, with T the
  K x K matrix of standard normal prototypes drawn by numpy's default_rng(SEED) and E the group indicator (the n_k
  samples of group k share the target t_k; ``target_prototypes``).

This module is deliberately dependency-free so that every layer (theory, numerics, proofs_checks)
can read the same instance description. ``theory`` reads instances by duck typing only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

LOSSES = ("mse", "ce")
ACTIVATIONS = (None, "identity", "relu", "relu-deep")


class InstanceError(ValueError):
    """An instance violates a stated condition; the message names the condition."""


def _as_float(name: str, value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InstanceError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise InstanceError(f"{name} must be finite, got {value!r}")
    return v


def _positive(name: str, value: object) -> float:
    v = _as_float(name, value)
    if v <= 0:
        raise InstanceError(f"{name} must be > 0, got {v!r}")
    return v


@dataclass(frozen=True)
class Instance:
    """One problem instance.

    counts: (n_1, ..., n_K), every n_k >= 1 (samples are ordered class by class).
    width: d, the width of H and of every hidden layer.
    depth: M >= 1, the number of weight matrices.
    lam_w: (lambda_{W_1}, ..., lambda_{W_M}), all > 0.
    lam_h: lambda_H > 0.
    loss: "mse", "ce", or a registered loss ``BASE:params`` (``numerics.losses``; e.g. "ce-ls:0.1", "focal:2").
    bias: whether the last layer has a bias b in R^K.
    lam_b: lambda_b >= 0 (the bias penalty lambda_b/2 ||b||^2; 0 = unregularized).
    activation: None for the deep linear UFM; "identity" or "relu" for the extended UFM; "relu-deep" for the DUFM.
    targets: None (one-hot labels) or "gauss:SEED" (real-valued targets, MSE only; see the module docstring).
    """

    counts: tuple[int, ...]
    width: int
    depth: int = 1
    lam_w: tuple[float, ...] = field(default=(1e-3,))
    lam_h: float = 1e-3
    loss: str = "mse"
    bias: bool = False
    lam_b: float = 0.0
    activation: str | None = None
    targets: str | None = None

    def __post_init__(self) -> None:
        validate(self)

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def K(self) -> int:
        """Number of classes."""
        return len(self.counts)

    @property
    def N(self) -> int:
        """Number of samples, N = sum_k n_k."""
        return sum(self.counts)

    @property
    def balanced(self) -> bool:
        return len(set(self.counts)) == 1

    @property
    def n(self) -> int:
        """The common class size n of a balanced instance."""
        if not self.balanced:
            raise InstanceError(f"instance is not balanced (counts {list(self.counts)}); n is undefined")
        return self.counts[0]

    @property
    def extended(self) -> bool:
        return self.activation is not None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        counts: Sequence[int] | None = None,
        width: int = 0,
        depth: int = 1,
        lam_w: float | Iterable[float] = 1e-3,
        lam_h: float = 1e-3,
        *,
        classes: int | None = None,
        per_class: int | None = None,
        loss: str = "mse",
        bias: bool = False,
        lam_b: float = 0.0,
        activation: str | None = None,
        targets: str | None = None,
    ) -> "Instance":
        """Build and validate an instance; ``lam_w`` may be one value (all layers) or one per layer.

        Either ``counts`` or both ``classes`` (K) and ``per_class`` (n) must be given.
        """
        if counts is None:
            if classes is None or per_class is None:
                raise InstanceError("give the class counts, or both the number of classes and the per-class count")
            if int(classes) < 1:
                raise InstanceError(f"number of classes K must be >= 1, got {classes}")
            counts = [per_class] * int(classes)
        elif classes is not None or per_class is not None:
            raise InstanceError("give either the class counts or classes/per-class, not both")
        try:
            depth_i = int(depth)
        except (TypeError, ValueError):
            raise InstanceError(f"depth M must be an integer, got {depth!r}") from None
        if isinstance(lam_w, (int, float)):
            lam_list = [lam_w] * max(depth_i, 1)
        else:
            lam_list = list(lam_w)
            if len(lam_list) == 1 and depth_i > 1:
                lam_list = lam_list * depth_i
        return cls(
            counts=tuple(counts),  # type: ignore[arg-type]
            width=width,
            depth=depth_i,
            lam_w=tuple(lam_list),
            lam_h=lam_h,
            loss=loss,
            bias=bool(bias),
            lam_b=lam_b,
            activation=activation,
            targets=targets,
        )

    def with_(self, **changes: object) -> "Instance":
        """A copy with some fields changed (validated again)."""
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data.update(changes)
        return Instance(**data)  # type: ignore[arg-type]

    def require_width_at_least_classes(self, what: str = "this geometry") -> None:
        """Raise unless d >= K (orthogonal frames / simplex ETFs of K vectors need d >= K)."""
        if self.width < self.K:
            raise InstanceError(f"{what} needs width d >= K, got d = {self.width} < K = {self.K}")

    def require_balanced(self, what: str = "this claim") -> None:
        if not self.balanced:
            raise InstanceError(f"{what} needs balanced classes, got counts {list(self.counts)}")

    def target_prototypes(self) -> list[list[float]] | None:
        """T (K x K, row = output, column = group) of regression targets: Y = T E; None for one-hot labels."""
        if self.targets is None:
            return None
        import numpy as np

        seed = int(self.targets.partition(":")[2])
        return np.random.default_rng(seed).standard_normal((self.K, self.K)).tolist()

    def as_dict(self) -> dict:
        extra = {"targets": self.targets} if self.targets is not None else {}
        return {
            "counts": list(self.counts),
            "width": self.width,
            "depth": self.depth,
            "lam_w": list(self.lam_w),
            "lam_h": self.lam_h,
            "loss": self.loss,
            "bias": self.bias,
            "lam_b": self.lam_b,
            "activation": self.activation,
            **extra,
        }

    def cli_flags(self) -> str:
        """The instance flags of ``ncverify solve/check/derive`` that rebuild this instance."""
        parts = [f"--loss {self.loss}", "--counts " + ",".join(str(c) for c in self.counts),
                 f"--width {self.width}", f"--depth {self.depth}",
                 "--lam-w " + ",".join(repr(float(v)) for v in self.lam_w), f"--lam-h {float(self.lam_h)!r}"]
        if self.bias:
            parts.append("--bias")
        if self.lam_b:
            parts.append(f"--lam-b {float(self.lam_b)!r}")
        if self.activation is not None:
            parts.append(f"--activation {self.activation}")
        if self.targets is not None:
            parts.append(f"--targets {self.targets}")
        return " ".join(parts)


def _validate_loss(loss: object) -> str:
    """"mse", "ce", or a loss registered in ``numerics.losses`` (``BASE:v1,...``, returned canonical).

    The registry is imported lazily (it stays torch-free at import), so this module keeps no dependency.
    """
    if loss in LOSSES:
        return loss  # type: ignore[return-value]
    from ncverify.numerics.losses import LossError, canonical

    try:
        return canonical(loss)  # type: ignore[arg-type]
    except LossError as exc:
        raise InstanceError(str(exc)) from None


def validate(inst: Instance) -> None:
    """Check every stated condition of an instance and normalize its field types in place.

    Raises InstanceError with a one-line message that names the violated condition.
    """
    counts = inst.counts
    if isinstance(counts, (str, bytes)) or not isinstance(counts, Iterable):
        raise InstanceError(f"class counts must be a list of integers, got {counts!r}")
    counts = tuple(counts)
    if len(counts) < 1:
        raise InstanceError("need at least one class (K >= 1)")
    norm_counts = []
    for k, c in enumerate(counts):
        if isinstance(c, float) and not c.is_integer():
            raise InstanceError(f"class count n_{k + 1} must be an integer, got {c!r}")
        try:
            ci = int(c)
        except (TypeError, ValueError):
            raise InstanceError(f"class count n_{k + 1} must be an integer, got {c!r}") from None
        if ci < 1:
            raise InstanceError(f"class count n_{k + 1} must be >= 1, got {ci}")
        norm_counts.append(ci)
    try:
        width = int(inst.width)
        depth = int(inst.depth)
    except (TypeError, ValueError):
        raise InstanceError(f"width d and depth M must be integers, got d={inst.width!r}, M={inst.depth!r}") from None
    if width < 1:
        raise InstanceError(f"width d must be >= 1, got {width}")
    if depth < 1:
        raise InstanceError(f"depth M must be >= 1, got {depth}")
    lam_w = tuple(inst.lam_w) if not isinstance(inst.lam_w, (int, float)) else (inst.lam_w,) * depth
    if len(lam_w) != depth:
        raise InstanceError(f"need one lambda_W per layer: depth M = {depth} but {len(lam_w)} values were given")
    lam_w = tuple(_positive(f"lambda_W{j + 1}", v) for j, v in enumerate(lam_w))
    lam_h = _positive("lambda_H", inst.lam_h)
    lam_b = _as_float("lambda_b", inst.lam_b)
    if lam_b < 0:
        raise InstanceError(f"lambda_b must be >= 0, got {lam_b!r}")
    if lam_b > 0 and not inst.bias:
        raise InstanceError("lambda_b > 0 given for a model without a bias (add the bias)")
    loss = _validate_loss(inst.loss)
    if inst.activation not in ACTIVATIONS:
        raise InstanceError(f"activation must be identity, relu or relu-deep (or none), got {inst.activation!r}")
    if inst.activation is not None and depth < 2:
        raise InstanceError(f"the extended UFM puts the activation between W_1 and W_2, so it needs depth M >= 2, got {depth}")
    targets = inst.targets
    if targets is not None:
        kind, sep, seed = str(targets).partition(":")
        if kind != "gauss" or not sep or not seed.isdigit():
            raise InstanceError(f"targets must be gauss:SEED (SEED an integer >= 0), got {targets!r}")
        if loss != "mse":
            raise InstanceError(f"real-valued targets need the MSE loss, got --loss {loss}")
        targets = f"gauss:{int(seed)}"
    for name, value in (("counts", tuple(norm_counts)), ("targets", targets), ("width", width), ("depth", depth), ("lam_w", lam_w),
                        ("lam_h", lam_h), ("lam_b", lam_b), ("bias", bool(inst.bias)), ("loss", loss)):
        object.__setattr__(inst, name, value)
