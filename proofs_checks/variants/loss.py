"""``LossVariant``: a per-sample loss written once in SymPy, registered with the numerics and the theory engine.

Construction only records the definition (and names the ``--loss`` in the numerics' loss registry, a dict
insert, so instances with that loss can be created); ``register()`` -- called by every command that needs
the variant, through ``Theorem.prepare()`` -- translates the loss to torch, checks SymPy against torch on
random logits, checks the lower bound and shift invariance, and registers the theory family. Nothing is
computed at import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ncverify.numerics import losses as NL
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import VariantError

AGREEMENT_RTOL = 1e-12  # |torch - SymPy| <= AGREEMENT_RTOL (1 + |SymPy|): float64 round-off of a few hundred ops


def logsumexp(terms: Sequence[Any]) -> Any:
    """log(sum_c exp(t_c)) (the bridge evaluates it with torch.logsumexp, so large logits are safe)."""
    import sympy as sp

    return sp.log(sp.Add(*[sp.exp(t) for t in terms]))


def softmax(z: Sequence[Any], c: int) -> Any:
    """exp(z_c) / sum_j exp(z_j)."""
    import sympy as sp

    return sp.exp(z[c]) / sp.Add(*[sp.exp(t) for t in z])


# ---------------------------------------------------------------------------------------------
# variants
@dataclass(frozen=True)
class Param:
    """A loss parameter: ``name`` (keyword of the SymPy loss), the ``check`` on its value, the
    ``condition`` sentence printed when it fails, and an ``example`` value used for the agreement checks."""

    name: str
    check: Callable[[float], bool]
    condition: str
    example: float = 0.0


def exact_param(v: float) -> Any:
    """A parameter value as the exact rational of its decimal literal (0.1 -> 1/10), as the theory reads it."""
    from ncverify.theory.numbers import exact_number

    return exact_number(float(v))


@dataclass
class Agreement:
    """The registration checks: worst |torch - SymPy| / (1 + |SymPy|) on random float64 logits, etc."""

    max_rel_error: float
    samples: int
    tolerance: float
    shift_invariant: bool
    min_value: float
    torch_origin: str


class LossVariant:
    """A per-sample loss l(z, y), defined once in SymPy, registered with the theory engine and the numerics.

    name: family id for the theory engine (``ncverify derive NAME``), e.g. "ce-temperature".
    loss: the ``--loss`` base name, e.g. "ce-temp" (instances carry ``ce-temp:2``); "ce" reuses the built-in
      cross-entropy, and an already registered name (the shipped "ce-ls", "focal") reuses its torch code.
    sympy_loss(z, y, K, **params): the loss of one sample as a SymPy expression; z is a K x 1 sympy Matrix
      of real symbols z_1..z_K, y the class index (0-based), params exact rationals.
    params: ``Param``s in command-line order. torch_loss(Z, y, params) -> B values (optional; else translated).
    lower_bound: a lower bound of the loss (bounds the search interval of the global minimizer); checked on
      the random logits. description: one line. check_classes: the K used by the agreement check.
    """

    def __init__(self, name: str, loss: str, sympy_loss: Callable[..., Any], params: Sequence[Param] = (),
                 torch_loss: Callable | None = None, description: str = "", lower_bound: float = 0.0,
                 check_classes: Sequence[int] = (2, 3), seed: int = 0, replace: bool = True):
        self.name, self.loss, self.sympy_loss = name, loss, sympy_loss
        self.params = tuple(params)
        self.description = description or name
        self.lower_bound = lower_bound
        self.check_classes, self.seed, self.replace = tuple(check_classes), seed, replace
        self._agreement: Agreement | None = None
        for p in self.params:
            if not p.check(p.example):
                raise VariantError(f"{name}: the example value {p.example} of {p.name} violates '{p.condition}'")
        # the --loss name in the numerics' registry (a dict insert; the torch code runs only when used)
        if loss in NL.BUILTIN:
            if self.params:
                raise VariantError(f"{name}: the built-in loss {loss} takes no parameters")
            self.torch_origin = f"built-in {loss} (numerics.models)"
        elif torch_loss is None and loss in NL.registered() and NL.registered()[loss].origin != "SymPy -> torch bridge":
            spec = NL.registered()[loss]
            if tuple(p.name for p in spec.params) != tuple(p.name for p in self.params):
                raise VariantError(f"{name}: loss {loss} is registered with parameters "
                                   f"{[p.name for p in spec.params]}, not {[p.name for p in self.params]}")
            self.torch_origin = f"{spec.origin} (numerics.losses.{loss})"
        else:
            fn = torch_loss if torch_loss is not None else self._bridge_per_sample
            origin = "torch_loss given beside the SymPy loss" if torch_loss is not None else "SymPy -> torch bridge"
            try:
                NL.register_loss(NL.LossSpec(loss, tuple(NL.LossParam(p.name, p.check, p.condition) for p in self.params),
                                             fn, self.description, origin=origin, example=self.example_loss()),
                                 replace=replace)
            except NL.LossError as exc:
                raise VariantError(f"{name}: {exc}") from None
            self.torch_origin = origin

    def register(self) -> "LossVariant":
        """The registration checks (SymPy vs torch on random logits, lower bound, shift invariance), then the
        theory family. Idempotent: the checks run once per variant."""
        if self._agreement is not None:
            return self
        from ncverify.theory import families
        from ncverify.theory.families.etf_margin import EtfMarginFamily
        from ncverify.theory.numbers import exact_number

        agreement = self.check_agreement(self.check_classes, self.seed)
        if self.loss not in NL.BUILTIN:
            NL.register_gradient_terms(self.loss, self._gradient_terms)
        try:
            families.register(EtfMarginFamily(self.name, self.loss, tuple(p.name for p in self.params), self.sympy_loss,
                                              self.description, exact_number(float(self.lower_bound)),
                                              agreement.shift_invariant), replace=self.replace)
        except ValueError as exc:
            raise VariantError(f"{self.name}: {exc}") from None
        self._agreement = agreement
        return self

    @property
    def agreement(self) -> Agreement:
        """The registration checks' numbers (registers the variant first)."""
        self.register()
        assert self._agreement is not None
        return self._agreement

    @property
    def registered(self) -> bool:
        return self._agreement is not None

    # -- names ----------------------------------------------------------------------------------
    def loss_name(self, *values: float) -> str:
        """The ``--loss`` string for parameter values (``loss_name(0.1)`` -> "ce-ls:0.1")."""
        if len(values) != len(self.params):
            raise VariantError(f"{self.loss} needs {len(self.params)} parameter value(s)")
        for p, v in zip(self.params, values):
            if not p.check(float(v)):
                raise VariantError(f"{p.condition}, got {p.name} = {NL._fmt(float(v))}")
        if not values:
            return self.loss
        return self.loss + NL.SEP + ",".join(NL._fmt(float(v)) for v in values)

    def example_loss(self) -> str:
        if not self.params:
            return self.loss
        return self.loss + ":" + ",".join(NL._fmt(p.example) for p in self.params)

    def param_values(self, inst: Instance) -> dict[str, float]:
        return NL.parse_loss(inst.loss)[1]

    # -- SymPy side -----------------------------------------------------------------------------
    def expressions(self, K: int, values: dict[str, float]) -> list[Any]:
        """The K per-class SymPy losses l(z, y), y = 0..K-1, with the parameters as exact rationals."""
        import sympy as sp

        from ncverify.theory.families.etf_margin import logit_symbols

        z = logit_symbols(K)
        kw = {k: exact_param(v) for k, v in values.items()}
        return [sp.sympify(self.sympy_loss(z, y, K, **kw)) for y in range(K)]

    def _bridge_per_sample(self, Z, y, params: dict):
        import torch

        K = Z.shape[0]
        fns = _bridge_cache(self, K, tuple(sorted(params.items())))
        out = torch.zeros(Z.shape[1], dtype=Z.dtype, device=Z.device)
        for k in range(K):
            idx = (y == k).nonzero().view(-1)
            if idx.numel():
                out = out.index_put((idx,), fns[k](Z[:, idx]))
        return out

    def _gradient_terms(self, Z, y, params: dict):
        """K x B: sum over the additive terms t of dl(z_i, y_i)/dz_c of |t(z_i)| (``numerics.losses.gradient_terms``),
        from the SymPy loss: differentiated once per K with the parameters as symbols, each top-level term bridged
        to torch with the parameters as extra rows of the logit matrix (so no SymPy work per instance)."""
        import torch

        K = Z.shape[0]
        fns = _terms_cache(self, K)
        if fns is None:  # a derivative the bridge cannot translate: no terms (the caller keeps |dL/dZ|)
            return None
        out = torch.zeros_like(Z)
        for k in range(K):
            idx = (y == k).nonzero().view(-1)
            if idx.numel():
                Zk = Z[:, idx]
                extra = [torch.full((1, idx.numel()), float(params[p.name]), dtype=Z.dtype, device=Z.device)
                         for p in self.params]
                Za = torch.cat([Zk, *extra]) if extra else Zk
                rows = [sum((f(Za).abs() for f in fns[k][c]), torch.zeros(idx.numel(), dtype=Z.dtype, device=Z.device))
                        for c in range(K)]
                out[:, idx] = torch.stack(rows)
        return out

    def torch_per_sample(self, Z, y, values: dict[str, float]):
        """The numeric per-sample loss that the solvers use (built-in, registered, given or bridged)."""
        name = self.loss if not values else self.loss + ":" + ",".join(repr(float(v)) for v in values.values())
        return NL.per_sample(name, Z, y)

    def check_agreement(self, classes: Sequence[int], seed: int = 0, per_class: int = 6) -> Agreement:
        """SymPy vs torch on random float64 logits (N(0, 2^2)), for each K in ``classes`` and the example
        parameters; also the lower bound and shift invariance l(z + t 1, y) = l(z, y) (t ~ N(0, 2^2))."""
        import torch

        from ncverify.theory.families.etf_margin import logit_symbols

        rng = np.random.default_rng(seed)
        values = {p.name: p.example for p in self.params}
        worst, count, shift_ok, vmin = 0.0, 0, True, math.inf
        for K in classes:
            exprs = self.expressions(K, values)
            z = logit_symbols(K)
            for k in range(K):
                Zs = rng.normal(0.0, 2.0, size=(K, per_class))
                ts = rng.normal(0.0, 2.0, size=per_class)
                got = self.torch_per_sample(torch.tensor(Zs, dtype=torch.float64), torch.full((per_class,), k), values)
                for j in range(per_class):
                    ref = _sympy_value(exprs[k], z, Zs[:, j])
                    worst = max(worst, abs(float(got[j]) - ref) / (1 + abs(ref)))
                    vmin = min(vmin, ref)
                    shifted = _sympy_value(exprs[k], z, Zs[:, j] + ts[j])
                    if abs(shifted - ref) > AGREEMENT_RTOL * (1 + abs(ref)):
                        shift_ok = False
                    count += 1
        if not worst <= AGREEMENT_RTOL:
            raise VariantError(f"{self.name}: the SymPy loss and the torch loss ({self.torch_origin}) disagree on random "
                               f"logits: max |torch - SymPy|/(1 + |SymPy|) = {worst:.3g} > {AGREEMENT_RTOL:g}")
        if vmin < self.lower_bound - AGREEMENT_RTOL * (1 + abs(vmin)):
            raise VariantError(f"{self.name}: the loss takes the value {vmin:.6g} below its declared lower_bound "
                               f"{self.lower_bound} (declare a valid lower bound)")
        return Agreement(worst, count, AGREEMENT_RTOL, shift_ok, vmin, self.torch_origin)


_BRIDGES: dict[tuple, list[Callable]] = {}


def _bridge_cache(variant: LossVariant, K: int, params: tuple) -> list[Callable]:
    key = (id(variant), K, params)
    if key not in _BRIDGES:
        exprs = variant.expressions(K, dict(params))
        from ncverify.proofs_checks.variants.bridge import sympy_to_torch
        from ncverify.theory.families.etf_margin import logit_symbols

        _BRIDGES[key] = [sympy_to_torch(e, list(logit_symbols(K))) for e in exprs]
    return _BRIDGES[key]


_TERMS: dict = {}


def _terms_cache(variant: LossVariant, K: int) -> list[list[list[Callable]]] | None:
    """[y][c] -> torch functions (of the logits with the parameters as extra rows, in ``variant.params`` order) of
    the top-level additive terms of d l(z, y) / d z_c, for K classes; None when the loss cannot be differentiated
    with symbolic parameters or the bridge cannot translate a term (e.g. the Heaviside of a max)."""
    key = (id(variant), K)
    if key not in _TERMS:
        import sympy as sp

        from ncverify.proofs_checks.variants.bridge import BridgeError, sympy_to_torch
        from ncverify.theory.families.etf_margin import logit_symbols

        z = list(logit_symbols(K))
        psyms = [sp.Symbol(p.name, real=True) for p in variant.params]
        out: list | None = []
        try:
            exprs = [sp.sympify(variant.sympy_loss(logit_symbols(K), y, K, **dict(zip((p.name for p in variant.params),
                                                                                     psyms)))) for y in range(K)]
            for e in exprs:
                out.append([[sympy_to_torch(t, z + psyms) for t in sp.Add.make_args(sp.diff(e, z[c])) if t != 0]
                            for c in range(K)])
        except (BridgeError, TypeError, ValueError):  # untranslatable, or a loss that needs numeric parameters
            out = None
        _TERMS[key] = out
    return _TERMS[key]


def _sympy_value(expr: Any, z: Any, values: np.ndarray) -> float:
    """The SymPy expression evaluated by SymPy itself (exact substitution of the float64 logits, 30 digits)."""
    import sympy as sp

    sub = {z[i]: sp.Float(repr(float(values[i])), 30) for i in range(len(values))}
    v = sp.N(expr.xreplace(sub), 30)
    if not v.is_real:
        v = sp.re(v)
    return float(v)

