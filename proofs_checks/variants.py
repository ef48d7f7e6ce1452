"""The extension path for new loss variants: one SymPy loss -> reduced problem, torch loss and a theorem.

A variant author writes ONE Python file (see ``examples/ce_temperature.py`` and README.md, "Tutorial: checking a claim about a new loss")::

    import sympy as sp
    from proofs_checks.variants import LossVariant, Param, etf_claim, logsumexp, variant_theorem

    def ce_temperature(z, y, K, T):             # z: K x 1 sympy Matrix (z_1..z_K), y: class index 0..K-1
        return logsumexp([zc / T for zc in z]) - z[y] / T

    VARIANT = LossVariant("ce-temperature", loss="ce-temp", sympy_loss=ce_temperature,
                          params=(Param("T", lambda v: v > 0, "temperature T must be > 0", example=2.0),))
    THEOREMS = [variant_theorem(VARIANT, id="mine.ce-temperature", title="...", source="...",
                                claim=etf_claim(VARIANT))]

and runs ``ncverify check --theorems mine.py mine.ce-temperature --classes 3 --per-class 2 ...`` or
``ncverify run --theorems mine.py``. What happens:

* ``LossVariant`` registers the loss twice from the same SymPy expression: with the theory engine
  (``theory.variants.EtfMarginFamily``: the reduced margin problem on the simplex ETF, its stationary
  equation, a closed form when SymPy finds one, certified roots, global selection, collapse thresholds)
  and with the numerics (``numerics.losses``: a torch per-sample loss, translated by ``sympy_to_torch`` --
  an explicit node-by-node mapping, never SymPy's torch printer, which mistranslates Max/Min in SymPy
  1.14 -- or the ``torch_loss`` given beside it). At registration it checks, on random float64 logits,
  that the SymPy loss and the torch loss agree (``AGREEMENT_RTOL``), that the loss respects its
  ``lower_bound``, and whether it is shift-invariant (l(z + t 1, y) = l(z, y): needed for a bias).
* ``variant_theorem`` turns the variant and a claim into a catalogue ``Theorem`` (validator, Hypothesis
  strategy aimed at both sides of the derived collapse threshold, examples, recorded verdict).
* ``etf_claim`` is the natural conjecture "every global minimizer is the simplex ETF with the margin
  that minimizes the reduced problem" (or with the margin the author states, ``margin=``).

The verdict comes from ``verify.check``: claim vs derivation, the explicitly built claimed point (critical?
objective?), and multi-start numerics on the full matrix objective with the new loss. Only the last one
can tell whether the ETF is optimal: the reduced problem is derived ON the ETF.

Symbols -> names: K classes (``K``), n samples per class, depth M, lambda_Wj = ``inst.lam_w[j-1]``,
lambda_H = ``inst.lam_h``, the margin a (logits a (e_y - 1/K 1)), L = (lambda_H prod_j lambda_Wj)^{1/(M+1)}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import mpmath as mp
import numpy as np
import sympy as sp
from hypothesis import strategies as st

from numerics import losses as NL
from numerics.problem import Instance, InstanceError
from theory import variants as TV
from theory.prediction import Exact, Prediction

AGREEMENT_RTOL = 1e-12  # |torch - SymPy| <= AGREEMENT_RTOL (1 + |SymPy|): float64 round-off of a few hundred ops
CLAIM_DPS = 40
# the ``family`` tag of claims on the ETF logit geometry (theory.construct realizes every classification
# loss other than MSE in the simplex-ETF (Helmert) layout)
ETF_GEOMETRY = "etf-margin"


class VariantError(ValueError):
    """A variant definition violates a stated condition (the message names it)."""


# ---------------------------------------------------------------------------------------------
# helpers for writing losses
def logsumexp(terms: Sequence[sp.Expr]) -> sp.Expr:
    """log(sum_c exp(t_c)) (the bridge evaluates it with torch.logsumexp, so large logits are safe)."""
    return sp.log(sp.Add(*[sp.exp(t) for t in terms]))


def softmax(z: Sequence[sp.Expr], c: int) -> sp.Expr:
    """exp(z_c) / sum_j exp(z_j)."""
    return sp.exp(z[c]) / sp.Add(*[sp.exp(t) for t in z])


# ---------------------------------------------------------------------------------------------
# the SymPy -> torch bridge (explicit mapping; no printer)
class BridgeError(VariantError):
    pass


def _const(v: float) -> Callable:
    return lambda Z: v


def sympy_to_torch(expr: sp.Expr, zsyms: Sequence[sp.Symbol]) -> Callable:
    """A torch function Z (K x B tensor) -> B values of ``expr``, where ``zsyms[i]`` is row i of Z.

    Node mapping (everything else raises BridgeError naming the node, so a torch_loss must be given):
    numbers -> floats; Add/Mul/Pow; exp, log (log of a sum of positive multiples of exponentials ->
    torch.logsumexp), Max/Min -> torch.maximum/minimum (the SymPy 1.14 torch printer gets these wrong),
    Abs, sign, sqrt, tanh, sinh, cosh, sin, cos, atan, erf, Piecewise -> torch.where (with relations).
    """
    import torch

    index = {s: i for i, s in enumerate(zsyms)}

    def T(v: Any, Z):
        return v if isinstance(v, torch.Tensor) else torch.full(Z.shape[1:], float(v), dtype=Z.dtype, device=Z.device)

    def comp(e: sp.Basic) -> Callable:
        if e in index:
            i = index[e]
            return lambda Z: Z[i]
        if e.is_Number or e.is_NumberSymbol:
            if not e.is_real:
                raise BridgeError(f"the loss has a non-real constant {e}")
            return _const(float(e))
        if isinstance(e, sp.Add):
            fs = [comp(t) for t in e.args]
            return lambda Z: sum(f(Z) for f in fs)
        if isinstance(e, sp.Mul):
            fs = [comp(t) for t in e.args]

            def mul(Z):
                out = fs[0](Z)
                for f in fs[1:]:
                    out = out * f(Z)
                return out
            return mul
        if isinstance(e, sp.Pow):
            b, p = e.args
            fb = comp(b)
            if p.is_Integer:
                k = int(p)
                return lambda Z: fb(Z) ** k
            if p == sp.Rational(1, 2):
                return lambda Z: torch.sqrt(T(fb(Z), Z))
            if p.is_Number:
                pv = float(p)
                return lambda Z: torch.pow(T(fb(Z), Z), pv)
            fp = comp(p)
            if b.is_Number:
                lb = math.log(float(b))
                return lambda Z: torch.exp(T(fp(Z), Z) * lb)
            return lambda Z: torch.pow(T(fb(Z), Z), T(fp(Z), Z))
        if isinstance(e, sp.exp):
            f = comp(e.args[0])
            return lambda Z: torch.exp(T(f(Z), Z))
        if isinstance(e, sp.log):
            arg = e.args[0]
            lse = _logsumexp_terms(arg)
            if lse is not None:
                parts = [(math.log(c), comp(t)) for c, t in lse]
                return lambda Z: torch.logsumexp(torch.stack([T(f(Z), Z) + lc for lc, f in parts]), dim=0)
            f = comp(arg)
            return lambda Z: torch.log(T(f(Z), Z))
        if isinstance(e, (sp.Max, sp.Min)):
            fs = [comp(t) for t in e.args]
            op = torch.maximum if isinstance(e, sp.Max) else torch.minimum

            def mm(Z):
                out = T(fs[0](Z), Z)
                for f in fs[1:]:
                    out = op(out, T(f(Z), Z))
                return out
            return mm
        unary = {sp.Abs: torch.abs, sp.sign: torch.sign, sp.tanh: torch.tanh, sp.sinh: torch.sinh,
                 sp.cosh: torch.cosh, sp.sin: torch.sin, sp.cos: torch.cos, sp.atan: torch.atan, sp.erf: torch.erf}
        for cls, fn in unary.items():
            if isinstance(e, cls):
                f = comp(e.args[0])
                return lambda Z, fn=fn, f=f: fn(T(f(Z), Z))
        if isinstance(e, sp.Piecewise):
            pieces = [(comp(v), comp_cond(c)) for v, c in e.args]

            def pw(Z):
                out = None
                for fv, fc in reversed(pieces):
                    v = T(fv(Z), Z)
                    out = v if out is None else torch.where(fc(Z), v, out)
                return out
            return pw
        raise BridgeError(f"the SymPy -> torch bridge has no mapping for {type(e).__name__} ({sp.sstr(e)[:60]}); "
                          "give torch_loss=... beside the SymPy loss")

    def comp_cond(c: sp.Basic) -> Callable:
        if c is sp.true or c == True:  # noqa: E712
            return lambda Z: torch.ones(Z.shape[1:], dtype=torch.bool, device=Z.device)
        rel = {sp.StrictLessThan: torch.lt, sp.LessThan: torch.le, sp.StrictGreaterThan: torch.gt,
               sp.GreaterThan: torch.ge, sp.Eq: torch.eq, sp.Ne: torch.ne}
        for cls, fn in rel.items():
            if isinstance(c, cls):
                fl, fr = comp(c.lhs), comp(c.rhs)
                return lambda Z, fn=fn, fl=fl, fr=fr: fn(T(fl(Z), Z), T(fr(Z), Z))
        if isinstance(c, (sp.And, sp.Or)):
            fs = [comp_cond(t) for t in c.args]
            red = torch.logical_and if isinstance(c, sp.And) else torch.logical_or

            def lo(Z):
                out = fs[0](Z)
                for f in fs[1:]:
                    out = red(out, f(Z))
                return out
            return lo
        raise BridgeError(f"the SymPy -> torch bridge has no mapping for the condition {sp.sstr(c)[:60]}")

    f = comp(sp.sympify(expr))
    return lambda Z: T(f(Z), Z)


def _logsumexp_terms(arg: sp.Expr) -> list[tuple[float, sp.Expr]] | None:
    """[(c, t), ...] when arg = sum_k c_k exp(t_k) with numbers c_k > 0 (and at least two terms)."""
    if not isinstance(arg, sp.Add):
        return None
    out = []
    for term in arg.args:
        c, rest = term.as_coeff_Mul()
        if isinstance(rest, sp.exp) and c.is_Number and c > 0:
            out.append((float(c), rest.args[0]))
        elif term.is_Number and term > 0:
            out.append((float(term), sp.Integer(0)))
        else:
            return None
    return out


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


def exact_param(v: float) -> sp.Rational:
    """A parameter value as the exact rational of its decimal literal (0.1 -> 1/10), as the theory reads it."""
    return sp.Rational(repr(float(v)))


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

    def __init__(self, name: str, loss: str, sympy_loss: Callable[..., sp.Expr], params: Sequence[Param] = (),
                 torch_loss: Callable | None = None, description: str = "", lower_bound: float = 0.0,
                 check_classes: Sequence[int] = (2, 3), seed: int = 0, replace: bool = True):
        self.name, self.loss, self.sympy_loss = name, loss, sympy_loss
        self.params = tuple(params)
        self.description = description or name
        self.lower_bound = lower_bound
        for p in self.params:
            if not p.check(p.example):
                raise VariantError(f"{name}: the example value {p.example} of {p.name} violates '{p.condition}'")
        # numerics: a torch per-sample loss
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
            NL.register_loss(NL.LossSpec(loss, tuple(NL.LossParam(p.name, p.check, p.condition) for p in self.params),
                                         fn, self.description, origin=origin, example=self.example_loss()),
                             replace=replace)
            self.torch_origin = origin
        self.agreement = self.check_agreement(check_classes, seed)
        TV.register_family(TV.EtfMarginFamily(name, loss, tuple(p.name for p in self.params), sympy_loss,
                                              self.description, sp.Rational(repr(float(lower_bound))),
                                              self.agreement.shift_invariant), replace=replace)

    # -- names ----------------------------------------------------------------------------------
    def loss_name(self, *values: float) -> str:
        """The ``--loss`` string for parameter values (``loss_name(0.1)`` -> "ce-ls:0.1")."""
        if len(values) != len(self.params):
            raise VariantError(f"{self.loss} needs {len(self.params)} parameter value(s)")
        if not values:
            return self.loss
        return NL.canonical(self.loss + ":" + ",".join(repr(float(v)) for v in values))

    def example_loss(self) -> str:
        if not self.params:
            return self.loss
        return self.loss + ":" + ",".join(NL._fmt(p.example) for p in self.params)

    def param_values(self, inst: Instance) -> dict[str, float]:
        return NL.parse_loss(inst.loss)[1]

    # -- SymPy side -----------------------------------------------------------------------------
    def expressions(self, K: int, values: dict[str, float]) -> list[sp.Expr]:
        """The K per-class SymPy losses l(z, y), y = 0..K-1, with the parameters as exact rationals."""
        z = TV.logit_symbols(K)
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

    def torch_per_sample(self, Z, y, values: dict[str, float]):
        """The numeric per-sample loss that the solvers use (built-in, registered, given or bridged)."""
        name = self.loss if not values else self.loss + ":" + ",".join(repr(float(v)) for v in values.values())
        return NL.per_sample(name, Z, y)

    def check_agreement(self, classes: Sequence[int], seed: int = 0, per_class: int = 6) -> Agreement:
        """SymPy vs torch on random float64 logits (N(0, 2^2)), for each K in ``classes`` and the example
        parameters; also the lower bound and shift invariance l(z + t 1, y) = l(z, y) (t ~ N(0, 2^2))."""
        import torch

        rng = np.random.default_rng(seed)
        values = {p.name: p.example for p in self.params}
        worst, count, shift_ok, vmin = 0.0, 0, True, math.inf
        for K in classes:
            exprs = self.expressions(K, values)
            z = TV.logit_symbols(K)
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
        _BRIDGES[key] = [sympy_to_torch(e, list(TV.logit_symbols(K))) for e in exprs]
    return _BRIDGES[key]


def _sympy_value(expr: sp.Expr, z: sp.Matrix, values: np.ndarray) -> float:
    """The SymPy expression evaluated by SymPy itself (exact substitution of the float64 logits, 30 digits)."""
    sub = {z[i]: sp.Float(repr(float(values[i])), 30) for i in range(len(values))}
    v = sp.N(expr.xreplace(sub), 30)
    if not v.is_real:
        v = sp.re(v)
    return float(v)


# ---------------------------------------------------------------------------------------------
# claims on the ETF geometry
def _num(v: Any) -> mp.mpf:
    return mp.mpf(v) if isinstance(v, int) else mp.mpf(repr(float(v)))


def etf_prediction(inst: Instance, a: mp.mpf, f_star: mp.mpf, notes: Sequence[str] = (),
                   geometry: str = "ETF", bias: Sequence[mp.mpf] | None = None) -> Prediction:
    """The claim "logits a (e_k - 1/K 1) (simplex ETF, self-dual, NC1), minimal value f*" as a Prediction.

    Symbols: K = inst.K, n = inst.n, M = inst.depth, lt = (lambda_H prod_j lambda_Wj)^{1/(M+1)}; the K-1
    singular values of W_j are sqrt(lt/lambda_Wj) (a sqrt n)^{1/(M+1)}, of H sqrt(lt/lambda_H) (a sqrt n)^{1/(M+1)}.
    ``bias``: the claimed bias entries (default 0 when the instance has a bias); ``geometry`` only for mutants.
    """
    mp.mp.dps = CLAIM_DPS
    K, n, M = inst.K, inst.n, inst.depth
    lam = [_num(v) for v in inst.lam_w]
    lam_h = _num(inst.lam_h)
    lt = (lam_h * mp.fprod(lam)) ** (mp.mpf(1) / (M + 1))
    z = a * mp.sqrt(n)
    t = z ** (mp.mpf(1) / (M + 1))
    layers = [[mp.sqrt(lt / lam[j]) * t] * (K - 1) + [mp.mpf(0)] for j in range(M)]
    w_sv = mp.fprod(r[0] for r in layers)
    mean_norm = mp.sqrt(lt / lam_h) * t / mp.sqrt(n) * mp.sqrt(1 - mp.mpf(1) / K)
    diag = (lambda v: v * (1 - mp.mpf(1) / K)) if geometry == "ETF" else (lambda v: v)
    X = lambda v: Exact(mp.mpf(v))  # noqa: E731
    b = None
    if inst.bias:
        b = [X(v) for v in (bias if bias is not None else [0] * K)]
    return Prediction(
        family=ETF_GEOMETRY, instance=inst.as_dict(), objective=X(f_star),
        scalars={"a": [X(a)], "p_true": [X(1 / (1 + (K - 1) * mp.e ** (-a)))]},
        singular_values={"weights_product": [X(w_sv)] * (K - 1) + [X(0)],
                         "layers": [[X(v) for v in r] for r in layers], "output": [X(z)] * (K - 1) + [X(0)]},
        gram_targets={"WWT": {"kind": geometry, "diag": [X(diag(w_sv ** 2))] * K},
                      "HbarTHbar": {"kind": geometry, "diag": [X(mean_norm ** 2)] * K}},
        class_mean_norms=[X(mean_norm)] * K, bias=b, collapsed_classes=list(range(K)) if a == 0 else [],
        notes=list(notes))


def margin_objective(variant: LossVariant, inst: Instance) -> Callable[[mp.mpf], mp.mpf]:
    """g(a) = (1/K) sum_y l(a (e_y - 1/K 1), y) + ((M+1)/2)(K-1) lt (a sqrt n)^{2/(M+1)}, claim-side (mpmath,
    straight from the SymPy loss, no simplification)."""
    K, n, M = inst.K, inst.n, inst.depth
    exprs = variant.expressions(K, variant.param_values(inst))
    z = TV.logit_symbols(K)
    aa = sp.Symbol("a", real=True)
    per = [e.xreplace({z[c]: (aa * sp.Rational(K - 1, K) if c == y else -aa / K) for c in range(K)})
           for y, e in enumerate(exprs)]
    fl = sp.lambdify(aa, sp.Add(*per) / K, modules="mpmath")
    lt = (_num(inst.lam_h) * mp.fprod(_num(v) for v in inst.lam_w)) ** (mp.mpf(1) / (M + 1))
    return lambda t: fl(t) + mp.mpf(M + 1) / 2 * (K - 1) * lt * (t * mp.sqrt(n)) ** (mp.mpf(2) / (M + 1))


def etf_claim(variant: LossVariant, margin: Callable[[Instance], Any] | None = None,
              statement: str = "") -> Callable[[Instance], Prediction]:
    """The claim "every global minimizer is the simplex ETF (NC1, self-duality, zero bias) with margin a".

    margin(inst) -> a: the margin as the author states it (e.g. a closed form); default: the natural
    conjecture "a minimizes the reduced problem g(a) on the ETF", computed claim-side by a dense grid plus
    golden-section search (``claims.minimize_on_halfline``), independently of the theory engine's certified roots.
    """
    from proofs_checks.claims import minimize_on_halfline

    def claim(inst: Instance) -> Prediction:
        mp.mp.dps = CLAIM_DPS
        g = margin_objective(variant, inst)
        a = mp.mpf(margin(inst)) if margin is not None else minimize_on_halfline(g, upper=mp.mpf(60))
        a = max(a, mp.mpf(0))
        return etf_prediction(inst, a, g(a), notes=[statement or f"claim: the {variant.name} minimizer is the simplex "
                                                    "ETF (NC1, self-duality, zero bias) with the stated margin"])
    return claim


# ---------------------------------------------------------------------------------------------
# theorems
def variant_validator(tid: str, loss: str, *, depths: Sequence[int] | None = (1,), bias: bool | None = False,
                      lam_b_positive: bool = False) -> Callable[[Instance], None]:
    """Assumptions of a variant theorem: the loss base, balanced classes, the depths, the bias, d >= K."""
    def check(inst: Instance) -> None:
        base = NL.parse_loss(inst.loss)[0]
        if base != loss:
            raise InstanceError(f"{tid} is about the loss {loss}, got --loss {inst.loss}")
        if inst.activation is not None:
            raise InstanceError(f"{tid} is deep linear: no --activation, got {inst.activation}")
        if depths is not None and inst.depth not in depths:
            raise InstanceError(f"{tid} needs depth M in {list(depths)}, got {inst.depth}")
        if bias is not None and inst.bias != bias:
            raise InstanceError(f"{tid} needs {'a' if bias else 'no'} last-layer bias{' (--bias)' if bias else ''}")
        if lam_b_positive and inst.bias and inst.lam_b <= 0:
            raise InstanceError(f"{tid} needs lambda_b > 0, got {inst.lam_b}")
        if not inst.balanced:
            raise InstanceError(f"{tid} needs balanced classes, got counts {list(inst.counts)}")
        inst.require_width_at_least_classes(tid)
    return check


@st.composite
def variant_instances(draw, *, losses: Sequence[str], K=(2, 3), n=(1, 3), depths=(1,), bias: bool = False,
                      lam_b: Sequence[float] = (0.0,), lam=(1e-3, 0.3), extra_width: int = 1) -> Instance:
    """Balanced instances with one of ``losses`` (full --loss strings) and log-uniform lambdas."""
    from proofs_checks.catalogue import log_uniform

    k = draw(st.integers(*K))
    counts = [draw(st.integers(*n))] * k
    M = draw(st.sampled_from(list(depths)))
    d = k + draw(st.integers(0, extra_width))
    lam_w = draw(log_uniform(*lam))
    return Instance.create(counts, width=d, depth=M, lam_w=lam_w, lam_h=draw(log_uniform(*lam)),
                           loss=draw(st.sampled_from(list(losses))), bias=bias, lam_b=draw(st.sampled_from(list(lam_b))))


def critical_lam_h(family: str, inst: Instance) -> list[float]:
    """lambda_H at the derived collapse thresholds of an ETF-margin family (other parameters fixed)."""
    M, n = inst.depth, inst.n
    _, params = TV.split_loss(inst.loss)
    th = TV.margin_thresholds(family, inst.K, params, M)
    prod_w = mp.fprod(_num(v) for v in inst.lam_w)
    out = []
    for val, _, _ in th.values():
        if val > 0:
            out.append(float(val ** (M + 1) / (n * prod_w)))
    return sorted(set(out))


def variant_theorem(variant: LossVariant, *, id: str, title: str, source: str, claim: Callable[[Instance], Prediction],
                    provenance: str = "", expected: Any = None, param_values: Sequence[Sequence[float]] | None = None,
                    examples: Sequence[Instance] | None = None, depths: Sequence[int] = (1,), bias: bool = False,
                    lam_b: Sequence[float] = (0.0,), K=(2, 3), n=(1, 3), lam=(1e-3, 0.3),
                    notes: Sequence[str] = (), shape_claims: Sequence[str] = ("nc1", "self_duality")):
    """A catalogue ``Theorem`` for a loss variant on the simplex-ETF geometry.

    param_values: parameter tuples the search draws from (default: the examples of the ``Param``s);
    examples: instances always checked first (default: K = 3, n = 2, d = 3, lambda = 1e-2, first parameters);
    expected: the recorded ``catalogue.Expected`` (default: verified); depths / bias / lam_b / K / n / lam:
    the domain of the search (log-uniform lambdas in ``lam``), half of the draws aimed at the thresholds.
    """
    from proofs_checks.catalogue import Expected, Theorem, near_boundaries

    pv = [tuple(p) for p in (param_values or [tuple(p.example for p in variant.params)])]
    losses = [variant.loss_name(*p) for p in pv]
    if examples is None:
        examples = (Instance.create(classes=3, per_class=2, width=3, depth=depths[0], lam_w=1e-2, lam_h=1e-2,
                                    loss=losses[0], bias=bias, lam_b=lam_b[0] if bias else 0.0),)
    base = variant_instances(losses=losses, K=K, n=n, depths=depths, bias=bias, lam_b=lam_b, lam=lam)
    penalty = " + lambda_b/2 ||b||^2" if bias else ""
    return Theorem(
        id=id, title=title, source=source,
        provenance=provenance or "the natural conjecture (ETF with the derived scale); stated in the variant file",
        family=variant.name,
        objective=(f"(1/N) sum_i l(W_M...W_1 h_i{' + b' if bias else ''}, y_i) + sum_j lambda_Wj/2 ||W_j||_F^2 + "
                   f"lambda_H/2 ||H||_F^2{penalty};  l = {variant.description} (--loss {variant.loss}"
                   + (":" + ",".join(p.name.upper() for p in variant.params) if variant.params else "") + ")"),
        assumptions=("balanced", "d >= K", f"M in {list(depths)}", "bias with lambda_b > 0" if bias else "no bias"),
        validator=variant_validator(id, variant.loss, depths=depths, bias=bias, lam_b_positive=bias),
        strategy=lambda: st.one_of(base, near_boundaries(base, variant.name, critical_lam_h, (0.8, 0.95, 1.05, 1.25))),
        claim=claim,
        expected=expected if expected is not None else Expected("verified"), shape_claims=tuple(shape_claims),
        examples=tuple(examples), defaults={"loss": losses[0], **({"bias": True} if bias else {})},
        notes=tuple(notes) + (f"torch loss: {variant.torch_origin}; SymPy vs torch agreement "
                              f"{variant.agreement.max_rel_error:.2g} <= {AGREEMENT_RTOL:g} on "
                              f"{variant.agreement.samples} random logit vectors",))
