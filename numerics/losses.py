"""Registered per-sample losses beyond the built-in MSE and CE (torch; never SymPy).

A loss is named on the command line and in ``Instance.loss`` as ``BASE`` or ``BASE:v1,v2,...`` with its
parameters in a fixed order, e.g. ``ce-ls:0.1`` (label smoothing delta = 0.1) or ``focal:2`` (focusing
parameter gamma = 2). The built-in ``mse`` and ``ce`` take no parameters and keep their own code path in
``numerics.models`` (unchanged); every other name must be registered here with ``register_loss``.

Symbols -> argument names: z in R^K (one column of the logit matrix Z, K x B), the label y in
{0, ..., K-1} (``y``, a LongTensor of B labels), the parameters by name (``params``, floats).
The data term of a registered loss is (1/N) sum_i loss(z_i, y_i) (same 1/N normalization as CE).

Shipped (hand-written torch, checked against their SymPy definitions in ``proofs_checks.claims_variants``):

* ``ce-ls:delta`` -- cross-entropy against smoothed labels t = (1 - delta) e_y + (delta/K) 1,
  loss = -sum_c t_c log softmax(z)_c;  needs 0 <= delta < 1.
* ``focal:gamma`` -- focal loss -(1 - p_y)^gamma log p_y with p = softmax(z);  needs gamma >= 0.

User variants (``proofs_checks.variants.LossVariant``) register further names at run time, with a torch
function translated from their SymPy expression (or given by the user).
This module imports torch lazily, so ``numerics.problem`` can validate loss names without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

BUILTIN = ("mse", "ce")
SEP = ":"


class LossError(ValueError):
    """A loss name or a loss parameter violates a stated condition (the message names it)."""


@dataclass(frozen=True)
class LossParam:
    """One parameter of a registered loss.

    name: the symbol's name (e.g. "delta"); check: the condition on its value; condition: the sentence
    printed when the check fails (e.g. "label smoothing delta must be in [0, 1)").
    """

    name: str
    check: Callable[[float], bool]
    condition: str


@dataclass(frozen=True)
class LossSpec:
    """A registered loss ``base`` with parameters ``params`` (in command-line order).

    per_sample(Z, y, params) -> tensor of B per-sample losses, for logits Z (K x B) and labels y (B,);
    ``params`` maps each parameter name to its float value. ``origin`` says where the torch code came
    from ("hand-written torch" or "SymPy -> torch bridge").
    """

    base: str
    params: tuple[LossParam, ...]
    per_sample: Callable[[Any, Any, dict], Any]
    description: str = ""
    origin: str = "hand-written torch"
    example: str = ""
    extra: dict = field(default_factory=dict)

    def usage(self) -> str:
        if not self.params:
            return self.base
        return self.base + SEP + ",".join(p.name.upper() for p in self.params)


_REGISTRY: dict[str, LossSpec] = {}


def register_loss(spec: LossSpec, replace: bool = False) -> LossSpec:
    """Add ``spec`` to the registry; re-registering the same base needs ``replace=True``
    (a re-registration with the same per-sample function is accepted silently)."""
    if spec.base in BUILTIN:
        raise LossError(f"loss name {spec.base!r} is built in and cannot be registered")
    if not spec.base or SEP in spec.base or "," in spec.base or spec.base.strip() != spec.base:
        raise LossError(f"loss name {spec.base!r} must be non-empty without ':' ',' or spaces")
    old = _REGISTRY.get(spec.base)
    if old is not None and not replace and old.per_sample is not spec.per_sample:
        raise LossError(f"loss {spec.base!r} is already registered ({old.origin}); pass replace=True")
    _REGISTRY[spec.base] = spec
    return spec


def registered() -> dict[str, LossSpec]:
    """The registered (non-built-in) losses by base name."""
    return dict(_REGISTRY)


def known_names() -> list[str]:
    """Usage strings of every loss: mse, ce, then BASE:PARAMS of each registered one."""
    return list(BUILTIN) + [s.usage() for s in _REGISTRY.values()]


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def parse_loss(name: Any) -> tuple[str, dict[str, float]]:
    """(base, {param: value}) for a loss name; raises LossError naming the violated condition."""
    if not isinstance(name, str):
        raise LossError(f"loss must be one of {', '.join(known_names())}, got {name!r}")
    text = name.strip()
    base, _, rest = text.partition(SEP)
    if base in BUILTIN:
        if rest:
            raise LossError(f"loss {base} takes no parameters, got {name!r}")
        return base, {}
    spec = _REGISTRY.get(base)
    if spec is None:
        raise LossError(f"loss must be one of {', '.join(known_names())}, got {name!r}")
    parts = [p.strip() for p in rest.split(",")] if rest else []
    if len(parts) != len(spec.params):
        need = ", ".join(p.name for p in spec.params)
        raise LossError(f"loss {base} needs {len(spec.params)} parameter(s) ({need}) as {spec.usage()}"
                        + (f", e.g. --loss {spec.example}" if spec.example else "") + f"; got {name!r}")
    values: dict[str, float] = {}
    for p, s in zip(spec.params, parts):
        try:
            v = float(s)
        except ValueError:
            raise LossError(f"loss {base}: {p.name} must be a number, got {s!r} ({p.condition})") from None
        if not math.isfinite(v):
            raise LossError(f"loss {base}: {p.name} must be finite, got {s!r} ({p.condition})")
        if not p.check(v):
            raise LossError(f"{p.condition}, got {p.name} = {_fmt(v)}")
        values[p.name] = v
    return base, values


def canonical(name: str) -> str:
    """The canonical spelling of a valid loss name (``ce-ls:0.10`` -> ``ce-ls:0.1``, ``focal:2.0`` -> ``focal:2``)."""
    base, values = parse_loss(name)
    if not values:
        return base
    return base + SEP + ",".join(_fmt(v) for v in values.values())


def per_sample(loss: str, Z, y):
    """Per-sample losses (tensor of B values) of logits Z (K x B) with labels y (LongTensor of B).

    Built-ins: mse -> 1/2 ||z - e_y||^2 (so that the mean over samples is the MSE data term),
    ce -> -log softmax(z)_y. Registered losses -> their ``per_sample``.
    """
    import torch

    base, values = parse_loss(loss)
    if base == "mse":
        E = torch.zeros_like(Z)
        E[y, torch.arange(Z.shape[1], device=Z.device)] = 1.0
        return 0.5 * ((Z - E) ** 2).sum(dim=0)
    if base == "ce":
        return -torch.log_softmax(Z, dim=0).gather(0, y.view(1, -1)).view(-1)
    return _REGISTRY[base].per_sample(Z, y, values)


#: base name -> gradient_terms(Z, y, params): K x B magnitudes of the additive terms whose sum is dl/dz (see
#: ``gradient_terms``); registered by ``proofs_checks.variants.LossVariant`` from the SymPy loss
_GRADIENT_TERMS: dict[str, Callable[[Any, Any, dict], Any]] = {}


def register_gradient_terms(base: str, fn: Callable[[Any, Any, dict], Any]) -> None:
    """Register the gradient-term magnitudes of the registered loss ``base`` (see ``gradient_terms``)."""
    _GRADIENT_TERMS[base] = fn


def gradient_terms(loss: str, Z, y):
    """For a registered loss with registered terms: T (K x B), T[c, i] = sum_t |t(z_i)| over the additive terms t of
    dl(z_i, y_i)/dz_c (e.g. |softmax(z/T)_c / T| + |[c = y] / T| for cross-entropy with temperature T): the float64
    rounding of the computed gradient is relative to these, not to the gradient itself, which can cancel to
    almost nothing (p_y close to 1). None when the loss is built-in or has no registered terms."""
    base, values = parse_loss(loss)
    fn = _GRADIENT_TERMS.get(base)
    return None if fn is None else fn(Z, y, values)


def data_term(loss: str, Z, Y):
    """(1/N) sum_i loss(z_i, y_i) for logits Z (K x N) and one-hot labels Y (K x N)."""
    y = Y.argmax(dim=0)
    return per_sample(loss, Z, y).sum() / Z.shape[1]


# ---------------------------------------------------------------------------------------------
# shipped losses (hand-written torch)
def _label_smoothing(Z, y, params: dict):
    """-sum_c t_c log softmax(z)_c with t = (1 - delta) e_y + (delta/K) 1."""
    import torch

    delta = params["delta"]
    K = Z.shape[0]
    logp = torch.log_softmax(Z, dim=0)
    true = logp.gather(0, y.view(1, -1)).view(-1)
    return -(1.0 - delta) * true - (delta / K) * logp.sum(dim=0)


def _focal(Z, y, params: dict):
    """-(1 - p_y)^gamma log p_y, p = softmax(z); 1 - p_y computed as -expm1(log p_y)."""
    import torch

    gamma = params["gamma"]
    logp = torch.log_softmax(Z, dim=0).gather(0, y.view(1, -1)).view(-1)
    one_minus_p = -torch.expm1(logp)
    if gamma == 0:
        return -logp
    return -(one_minus_p.clamp_min(0.0) ** gamma) * logp


LABEL_SMOOTHING = register_loss(LossSpec(
    "ce-ls", (LossParam("delta", lambda v: 0.0 <= v < 1.0, "label smoothing delta must be in [0, 1)"),),
    _label_smoothing, "cross-entropy against smoothed labels (1 - delta) e_y + delta/K 1", example="ce-ls:0.1"))
FOCAL = register_loss(LossSpec(
    "focal", (LossParam("gamma", lambda v: v >= 0.0, "focal loss gamma must be >= 0"),),
    _focal, "focal loss -(1 - p_y)^gamma log p_y", example="focal:2"))
