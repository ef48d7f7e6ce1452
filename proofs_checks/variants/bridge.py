"""The SymPy -> torch bridge of loss variants: an explicit node-by-node mapping (never SymPy's torch printer,
which mistranslates Max/Min in SymPy 1.14). SymPy and torch are imported here at module level: this module
is loaded only when a variant is registered."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import sympy as sp

from ncverify.proofs_checks.errors import VariantError


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


