"""Loss variants in the theory engine (SymPy + mpmath only; never torch, never numerics).

Two kinds of families live here; ``theory.derive.derive`` dispatches to them.

1. **ETF-margin families** (``EtfMarginFamily``), one per registered per-sample loss l(z, y) of the logit
   vector z = (z_1, ..., z_K) and the label y (0-based class index), written once as a SymPy expression
   by ``builder(z, y, K, **params)``. Balanced classes (n per class), deep linear model with M weight
   matrices. Restricted to the simplex-ETF logit geometry -- logits a (e_y - 1/K 1) for a class-y
   sample -- the objective becomes the 1-D margin problem

       g(a) = lbar(a) + ((M+1)/2) (K-1) L (a sqrt n)^{2/(M+1)},   a >= 0,
       lbar(a) = (1/K) sum_y l(a (e_y - 1/K 1), y),   L = (lambda_H prod_j lambda_Wj)^{1/(M+1)}

   (Z = a (I - 11^T/K) Y has K-1 singular values a sqrt n; the penalty is their cheapest factorization,
   ``reduced.eliminate_factorization``). With a = u^{M+1} the penalty is ((M+1)/2)(K-1) ell u^2,
   ell = L n^{1/(M+1)}, and the stationary equation for u > 0 is

       ell = h(u) := -lbar'(u^{M+1}) u^{M-1} / (K - 1).

   Solutions: for M = 1 a closed form when the equation becomes algebraic in x = e^{-a} (SymPy solve);
   always certified bracketed roots (dense grid on the interval (0, U] that provably holds the global
   minimizer, sign changes, mpmath.findroot, sign change re-checked on [r - delta, r + delta]); global
   selection among a = 0, every stationary point and the grid's own minimum. The ETF geometry is an
   ASSUMPTION of these families: the reduction restricted to the ETF is not a proof that the ETF is
   optimal -- the suite's multi-start numerics on the full matrix objective decide that.

2. **mse-bias-regularized**: plain / deep linear MSE with a last-layer bias penalized by lambda_b/2 ||b||^2,
   lambda_b > 0, balanced. Eliminating b = (ybar - zbar)/(1 + lambda_b) leaves the data term
   1/(2N) ||(Z - Y) C||^2 + (gamma/(2N)) ||(Z - Y) u u^T||^2 with gamma = lambda_b/(1 + lambda_b),
   u = 1_N/sqrt N, C = I - u u^T. The K-1 centered label modes (y^2 = n) keep the MSE mode problem of
   mse-deep-bias; the mean label mode (left vector 1_K/sqrt K, right vector u, y^2 = n) gets
   phi_m(z) = gamma (sqrt n - z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)}, the MSE mode problem with N' = N/gamma.
   Z's mean-mode singular value becomes nonzero (W W^T stops being a simplex ETF) exactly when
   rho_m = (N' L)^{M+1}/n^M drops below the global threshold rho_global(M); for M = 1:
   gamma > c = K sqrt(n lambda_W lambda_H), i.e. lambda_b > c/(1 - c) (c < 1).
   For M = 1 the reduction is exact (convex in (Z, b) after the factorization elimination, and
   permutation symmetric); for M >= 2 the aligned form of Z is assumed and checked by the numerics.

Instances are read by ``theory.derive.read_instance`` (duck typing); the loss name carries the parameters
as ``BASE:v1,v2`` (e.g. "ce-ls:0.1"), read here as exact rationals of their decimal literals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import mpmath
import sympy as sp

from . import reduced as R
from .phase import mse_thresholds
from .etf import etf_minimizer
from .prediction import Candidate, Exact, PhaseBoundary, Prediction
from .solve import select_global, stationary_points_w, to_mpf, solve_mse_mode, _phi_numeric

__all__ = ["EtfMarginFamily", "register_family", "family_names", "theorem_families", "family_for",
           "split_loss", "logit_symbols", "etf_reduction", "closed_form_M1", "derive_variant",
           "MSE_BIAS_REG", "margin_thresholds"]

a, u, ell = R.a, R.u, R.ell
x_sym = sp.Symbol("x", positive=True)
MSE_BIAS_REG = "mse-bias-regularized"
ROTATIONS = ("rotations: W_j -> Q_j W_j Q_{j-1}^T, W_M -> W_M Q_{M-1}^T, H -> Q_0 H with orthogonal Q_j "
             "(only invariants are determined)")


# ---------------------------------------------------------------------------------------------
# registry
@dataclass(frozen=True)
class EtfMarginFamily:
    """A per-sample loss as a SymPy expression, and what the theory engine needs to know about it.

    name: the family id (``derive NAME``), e.g. "ce-label-smoothing".
    loss_base: the loss name the instance must carry (``--loss BASE:params``), e.g. "ce-ls".
    param_names: the loss parameters, in command-line order (e.g. ("delta",)).
    builder(z, y, K, **params) -> SymPy expression: z a K x 1 sympy Matrix of real symbols z_1..z_K,
      y the 0-based class index, K the number of classes, params exact SymPy numbers.
    lower_bound: a lower bound of the loss over all logits (0 for non-negative losses); it bounds the
      search interval of the global minimizer (the registering code checks it on random logits).
    shift_invariant: l(z + t 1, y) = l(z, y) (checked at registration); needed for a bias (b = 0).
    """

    name: str
    loss_base: str
    param_names: tuple[str, ...]
    builder: Callable[..., sp.Expr]
    description: str = ""
    lower_bound: Any = 0
    shift_invariant: bool = False


_FAMILIES: dict[str, EtfMarginFamily] = {}
_THEOREM_FAMILIES: dict[str, str] = {"zhou2022.mse-ufm-bias": MSE_BIAS_REG}


def register_family(fam: EtfMarginFamily, theorem_ids: tuple[str, ...] = (), replace: bool = False) -> EtfMarginFamily:
    """Register an ETF-margin family (and the theorem ids that use it) with the theory engine."""
    from .derive import FAMILIES

    if fam.name in FAMILIES or fam.name == MSE_BIAS_REG:
        raise ValueError(f"family id {fam.name!r} is built in")
    old = _FAMILIES.get(fam.name)
    if old is not None and not replace and old.builder is not fam.builder:
        raise ValueError(f"family {fam.name!r} is already registered; pass replace=True")
    _FAMILIES[fam.name] = fam
    for tid in theorem_ids:
        _THEOREM_FAMILIES[tid] = fam.name
    if old is not None:
        for cached in (etf_reduction, closed_form_M1, _margin_numeric, margin_thresholds):
            cached.cache_clear()
    return fam


def family_names() -> list[str]:
    """Every variant family id (registered ETF-margin families and mse-bias-regularized)."""
    return [MSE_BIAS_REG] + list(_FAMILIES)


def theorem_families() -> dict[str, str]:
    """Theorem id -> variant family id."""
    return dict(_THEOREM_FAMILIES)


def family_for(family_or_theorem_id: str) -> str | None:
    """The variant family of an id, or None when the id is not a variant's."""
    if family_or_theorem_id in family_names():
        return family_or_theorem_id
    return _THEOREM_FAMILIES.get(family_or_theorem_id)


def split_loss(loss: str) -> tuple[str, tuple[sp.Rational, ...]]:
    """("ce-ls", (1/10,)) for "ce-ls:0.1": the base name and the parameters as exact rationals."""
    base, _, rest = str(loss).partition(":")
    vals = tuple(R.exact_number(float(p)) for p in rest.split(",")) if rest else ()
    return base, vals


def logit_symbols(K: int) -> sp.Matrix:
    """The logit vector z = (z_1, ..., z_K)^T as a K x 1 matrix of real symbols."""
    return sp.Matrix(K, 1, [sp.Symbol(f"z_{i + 1}", real=True) for i in range(K)])


# ---------------------------------------------------------------------------------------------
# the reduction on the simplex-ETF geometry
@dataclass(frozen=True)
class EtfReduction:
    """One family, K classes, parameter values and depth M, reduced to the margin a (see module doc).

    per_class: l(a (e_y - 1/K 1), y) for y = 0..K-1; symmetric: all equal (checked by simplification);
    lbar: their mean; g: lbar + factorization cost of the K-1 singular values a sqrt n (symbols L, n);
    g_u: g with a = u^{M+1}, written with ell = L n^{1/(M+1)}; h_u: the stationary equation is ell = h_u(u).
    """

    family: str
    K: int
    params: tuple[sp.Expr, ...]
    M: int
    per_class: tuple[sp.Expr, ...]
    symmetric: bool
    lbar: sp.Expr
    g: sp.Expr
    g_u: sp.Expr
    h_u: sp.Expr


_HYPERBOLIC = (sp.cosh, sp.sinh, sp.tanh, sp.coth)


def _simplify(e: sp.Expr) -> sp.Expr:
    """sp.simplify, with hyperbolic functions it may introduce written back as exponentials."""
    s = sp.simplify(sp.powsimp(e, force=True))
    if s.has(*_HYPERBOLIC):
        s = sp.powsimp(sp.together(s.rewrite(sp.exp)), force=True)
    return s


def _light(e: sp.Expr) -> sp.Expr:
    """A cheap normal form (no sp.simplify): exponentials, one fraction."""
    if e.has(*_HYPERBOLIC):
        e = e.rewrite(sp.exp)
    return sp.factor_terms(sp.together(sp.powsimp(e, force=True)))


def _same_function_of_a(e1: sp.Expr, e2: sp.Expr) -> bool:
    """e1 == e2 as functions of the margin a: exactly when their difference simplifies to 0 cheaply, else
    numerically at a = 0.3, 1.7, 5.1 to 30 digits."""
    d = sp.expand(e1 - e2)
    if d == 0:
        return True
    for av in ("0.3", "1.7", "5.1"):
        v = sp.N(d.subs(a, sp.Rational(av)), 40)
        if abs(v) > sp.Float(10) ** -30:
            return False
    return True


@lru_cache(maxsize=256)
def etf_reduction(family: str, K: int, params: tuple[sp.Expr, ...], M: int) -> EtfReduction:
    """Derive lbar(a), g(a), g(u) and h(u) from the family's SymPy loss (cached per arguments)."""
    fam = _FAMILIES[family]
    z = logit_symbols(K)
    kw = dict(zip(fam.param_names, params))
    per_class = []
    for y in range(K):
        e = sp.sympify(fam.builder(z, y, K, **kw))
        sub = {z[c]: (a * sp.Rational(K - 1, K) if c == y else -a / K) for c in range(K)}
        e = e.xreplace(sub)
        if e.has(sp.Max, sp.Min, sp.Abs, sp.Heaviside):  # non-smooth losses: piecewise in a (differentiable by parts)
            e = sp.piecewise_fold(e.rewrite(sp.Piecewise))
        per_class.append(e)
    symmetric = all(_same_function_of_a(per_class[0], e) for e in per_class[1:])
    lbar = _simplify(per_class[0] if symmetric else sp.Add(*per_class) / K)
    cost = R.eliminate_factorization(M).cost.subs(R.z, a * sp.sqrt(R.n))
    g = lbar + (K - 1) * cost
    g_u = lbar.subs(a, u ** (M + 1)) + sp.Rational(M + 1, 2) * (K - 1) * ell * u ** 2
    dl = sp.diff(lbar, a)
    h_u = _light(-dl.subs(a, u ** (M + 1)) * u ** (M - 1) / (K - 1))
    return EtfReduction(family, K, tuple(params), M, tuple(per_class), symmetric, lbar, g, g_u, h_u)


@lru_cache(maxsize=256)
def closed_form_M1(family: str, K: int, params: tuple[sp.Expr, ...]) -> tuple[sp.Expr, ...] | None:
    """M = 1: the stationary equation lbar'(a) + (K-1) ell = 0 solved for a when it is algebraic in
    x = e^{-a} (after x = w^q clears fractional powers): the candidate margins as expressions in ell,
    or None (transcendental, or degree > 4)."""
    red = etf_reduction(family, K, params, 1)
    eq = sp.diff(red.lbar, a) + (K - 1) * ell
    if eq.has(*_HYPERBOLIC):
        eq = eq.rewrite(sp.exp)
    ex = sp.powsimp(sp.expand_power_exp(eq.subs(a, -sp.log(x_sym))), force=True)
    if ex.has(sp.log) or ex.has(sp.exp) or ex.has(a):
        return None
    ex = sp.together(ex)
    dens = [p.exp.q for p in ex.atoms(sp.Pow) if p.base == x_sym and isinstance(p.exp, sp.Rational)]
    q = int(sp.ilcm(*dens, 1)) if dens else 1
    w = sp.Symbol("w", positive=True)
    ex_w = sp.powsimp(sp.expand_power_base(ex.subs(x_sym, w ** q), force=True), force=True)
    num = sp.numer(sp.together(ex_w))
    if num.has(sp.Piecewise):
        return None
    try:
        poly = sp.Poly(num, w)
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return None
    if poly.degree() < 1 or poly.degree() > 4 or any(c.has(w) for c in poly.all_coeffs()):
        return None
    sols = sp.solve(poly.as_expr(), w)
    out = tuple(sp.simplify(-q * sp.log(s)) for s in sols)
    return out or None


# ---------------------------------------------------------------------------------------------
# numeric solution with certified brackets and global selection
@dataclass
class MarginSolution:
    """Global minimizer of g(u) over u >= 0 (a = u^{M+1}); see ``solve_margin``."""

    a_value: mpmath.mpf
    u_value: mpmath.mpf
    g_value: mpmath.mpf
    U: mpmath.mpf
    stationary: list[dict]
    candidates: list[Candidate]
    tie: list[int]
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=256)
def _margin_numeric(family: str, K: int, params: tuple[sp.Expr, ...], M: int) -> tuple[Callable, Callable, Callable]:
    red = etf_reduction(family, K, params, M)
    g_f = sp.lambdify((u, ell), red.g_u, modules="mpmath")
    h_f = sp.lambdify(u, red.h_u, modules="mpmath")
    l_f = sp.lambdify(a, red.lbar, modules="mpmath")
    return g_f, h_f, l_f


def _grid(U: mpmath.mpf, n_lin: int = 1200, n_geo: int = 200) -> list[mpmath.mpf]:
    lin = [U * mpmath.mpf(i) / n_lin for i in range(1, n_lin + 1)]
    geo = [U * mpmath.mpf(10) ** (-12 + 12 * mpmath.mpf(i) / n_geo) for i in range(n_geo)]
    return sorted(set(lin + geo))


def _golden_min(f: Callable, lo: mpmath.mpf, hi: mpmath.mpf, dps: int) -> mpmath.mpf:
    invphi = (mpmath.sqrt(5) - 1) / 2
    c, d = hi - invphi * (hi - lo), lo + invphi * (hi - lo)
    fc, fd = f(c), f(d)
    for _ in range(400):
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - invphi * (hi - lo)
            fc = f(c)
        else:
            lo, c, fc = c, d, fd
            d = lo + invphi * (hi - lo)
            fd = f(d)
        if hi - lo < mpmath.mpf(10) ** (-(dps // 2 + 2)) * max(1, abs(hi)):
            break
    return (lo + hi) / 2


def solve_margin(family: str, K: int, params: tuple[sp.Expr, ...], M: int, ell_value: mpmath.mpf,
                 lower_bound: mpmath.mpf, dps: int = 40) -> MarginSolution:
    """Global minimizer of g(u) = lbar(u^{M+1}) + ((M+1)/2)(K-1) ell u^2 over u >= 0.

    Search interval: g(u) >= lower_bound + ((M+1)/2)(K-1) ell u^2 > g(0) for u > U with
    U = sqrt(2 (lbar(0) - lower_bound) / ((M+1)(K-1) ell)), so (0, U] holds every global minimizer.
    Roots of D(u) = h(u) - ell: sign changes on a dense grid (1200 uniform + 200 geometric points),
    refined with mpmath.findroot, certified by a sign change on [r - delta, r + delta], delta = 10^-dps r.
    Candidates: a = 0, every root, and the grid's smallest g (refined by golden section) as a guard
    against a pair of roots inside one grid cell; the smallest g wins (``select_global``).
    """
    g_f, h_f, l_f = _margin_numeric(family, K, params, M)
    notes: list[str] = []
    with mpmath.workdps(dps + 15):
        g0 = l_f(mpmath.mpf(0))
        gap = g0 - lower_bound
        U = mpmath.sqrt(2 * max(gap, mpmath.mpf(0)) / ((M + 1) * (K - 1) * ell_value)) * mpmath.mpf("1.01")
        entries = [("a = 0 (boundary: W = H = 0)", (mpmath.mpf(0), mpmath.mpf(0)), g0)]
        stationary: list[dict] = []
        if U > 0:
            pts = _grid(U)
            D = lambda q: h_f(q) - ell_value  # noqa: E731
            vals = [D(p) for p in pts]
            for i in range(len(pts) - 1):
                if vals[i] == 0 or vals[i] * vals[i + 1] < 0:
                    lo, hi = pts[i], pts[i + 1]
                    try:
                        r = mpmath.findroot(D, (lo, hi), solver="anderson")
                        if not (lo <= r <= hi):
                            raise ValueError
                    except (ValueError, ZeroDivisionError):
                        r = mpmath.findroot(D, (lo, hi), solver="bisect")
                    delta = abs(r) * mpmath.mpf(10) ** (-dps)
                    cert = D(r - delta) * D(r + delta) <= 0
                    d2 = mpmath.diff(lambda q: g_f(q, ell_value), r, 2)
                    kind = "local min" if d2 > 0 else ("local max" if d2 < 0 else "degenerate")
                    st = {"u": +r, "a": +(r ** (M + 1)), "kind": kind, "grid_bracket": (+lo, +hi),
                          "tight_bracket": (+(r - delta), +(r + delta)), "certified": bool(cert),
                          "residual": +D(r)}
                    stationary.append(st)
                    entries.append((f"stationary point {len(stationary)}: a = {mpmath.nstr(st['a'], 15)} ({kind})",
                                    (st["a"], st["u"]), g_f(r, ell_value)))
            gv = [g_f(p, ell_value) for p in pts]
            i = min(range(len(pts)), key=lambda j: gv[j])
            best = min(e[2] for e in entries)
            if gv[i] < best - mpmath.mpf(10) ** (-(dps // 2)) * max(1, abs(best)):
                lo, hi = pts[max(i - 1, 0)], pts[min(i + 1, len(pts) - 1)]
                r = _golden_min(lambda q: g_f(q, ell_value), lo, hi, dps + 15)
                notes.append("the grid found a lower g than every certified root (two roots in one grid cell?): "
                             "its golden-section minimum is a candidate")
                entries.append((f"grid minimum: a = {mpmath.nstr(r ** (M + 1), 15)}", (r ** (M + 1), r), g_f(r, ell_value)))
        cands, chosen, tied = select_global(entries, dps)
        if len(tied) > 1:
            notes.append(f"tie (numerical) between {[cands[i].label for i in tied]}")
        a_v, u_v = cands[chosen].point
    return MarginSolution(+a_v, +u_v, +cands[chosen].objective, +U, stationary, cands, tied, notes)


@lru_cache(maxsize=256)
def margin_thresholds(family: str, K: int, params: tuple[sp.Expr, ...], M: int, dps: int = 30
                      ) -> dict[str, tuple[mpmath.mpf, sp.Expr | None, str]]:
    """Collapse thresholds in ell (other quantities fixed): "existence" = sup_{u>0} h(u) (a stationary
    margin exists iff ell <= it), "global" = sup{h(u) : E(u) < 0} with E(u) = g(u; ell = h(u)) - g(0)
    (the nonzero margin beats a = 0 iff ell < it). Grid on u in (0, 40^{1/(M+1)}] (a <= 40), refined;
    the supremum at u -> 0+ is the exact limit of h. Values as (mpf, exact expr or None, how)."""
    red = etf_reduction(family, K, params, M)
    g_f, h_f, l_f = _margin_numeric(family, K, params, M)
    try:
        lim0 = sp.limit(red.h_u, u, 0, "+")
    except (ValueError, NotImplementedError, TypeError):  # e.g. piecewise losses: h at a tiny u instead
        lim0 = None
    out: dict[str, tuple[mpmath.mpf, sp.Expr | None, str]] = {}
    with mpmath.workdps(dps + 15):
        Umax = mpmath.mpf(40) ** (mpmath.mpf(1) / (M + 1))
        pts = _grid(Umax, 800, 200)
        hv = [h_f(p) for p in pts]
        g0 = l_f(mpmath.mpf(0))
        E = lambda q: g_f(q, h_f(q)) - g0  # noqa: E731
        ev = [E(p) for p in pts]
        lim_v = to_mpf(lim0, dps + 10) if lim0 is not None and lim0.is_finite else None
        if lim0 is None:
            lim_v, lim0 = h_f(mpmath.mpf(10) ** (-dps)), None
        # existence
        i = max(range(len(pts)), key=lambda j: hv[j])
        if i == 0 and lim_v is not None and lim_v >= hv[0]:
            out["existence"] = (lim_v, lim0, "limit of h(u) at u -> 0+")
        else:
            lo, hi = pts[max(i - 1, 0)], pts[min(i + 1, len(pts) - 1)]
            r = _golden_min(lambda q: -h_f(q), lo, hi, dps + 15)
            out["existence"] = (h_f(r), None, f"max of h at u = {mpmath.nstr(r, 15)} (grid + golden section)")
        # global
        neg = [j for j in range(len(pts)) if ev[j] < 0]
        if not neg:
            out["global"] = (mpmath.mpf(0), None, "no point of the stationary branch beats a = 0 on the grid")
            return out
        j = max(neg, key=lambda k: hv[k])
        if j == 0 and lim_v is not None and lim_v >= hv[0]:
            out["global"] = (lim_v, lim0, "limit of h(u) at u -> 0+ (E < 0 next to 0)")
            return out
        best = (hv[j], None, f"h on the grid at u = {mpmath.nstr(pts[j], 10)}")
        for k in (j - 1, j + 1):  # a sign change of E next to the maximizer: refine the crossing
            if 0 <= k < len(pts) and ev[k] >= 0:
                r = mpmath.findroot(E, (min(pts[j], pts[k]), max(pts[j], pts[k])), solver="bisect")
                if h_f(r) >= best[0]:
                    best = (h_f(r), None, f"h(u*) where g(u*) = g(0) on the branch, u* = {mpmath.nstr(r, 20)}")
        if best[2].startswith("h on the grid"):
            lo, hi = pts[max(j - 1, 0)], pts[min(j + 1, len(pts) - 1)]
            r = _golden_min(lambda q: -h_f(q), lo, hi, dps + 15)
            if E(r) < 0:
                best = (h_f(r), None, f"max of h inside E < 0 at u = {mpmath.nstr(r, 15)}")
        out["global"] = best
    return out


# ---------------------------------------------------------------------------------------------
# derivations
def derive_variant(fam: str, I: Any, dps: int) -> Prediction:
    """The variant family's derivation for the instance ``I`` (a ``theory.derive._Inst``)."""
    if fam == MSE_BIAS_REG:
        return _derive_mse_bias_reg(I, dps)
    return _derive_margin(_FAMILIES[fam], I, dps)


def _sx(expr: sp.Expr, dps: int, note: str = "") -> Exact:
    return Exact(to_mpf(expr, dps), expr, note)


def _check_margin_instance(F: EtfMarginFamily, I: Any) -> tuple[sp.Expr, ...]:
    base, params = split_loss(I.loss)
    usage = F.loss_base + (":" + ",".join(p.upper() for p in F.param_names) if F.param_names else "")
    if base != F.loss_base:
        raise ValueError(f"{F.name} needs --loss {usage}, got {I.loss!r}")
    if len(params) != len(F.param_names):
        raise ValueError(f"{F.name} needs the loss parameters {usage}, got {I.loss!r}")
    if not I.balanced:
        raise ValueError(f"{F.name} needs balanced classes, got counts {list(I.counts)}")
    if I.K < 2:
        raise ValueError(f"{F.name} needs K >= 2 classes, got K = {I.K}")
    if I.width < I.K - 1:
        raise ValueError(f"{F.name} needs width d >= K - 1 (the simplex ETF spans K - 1 dimensions), got d = {I.width}")
    if I.activation == "relu":
        raise ValueError(f"{F.name} is deep linear: activation relu is not part of it")
    if I.bias and not F.shift_invariant:
        raise ValueError(f"{F.name}: a bias is supported only for shift-invariant losses (l(z + t 1) = l(z))")
    return params


def _derive_margin(F: EtfMarginFamily, I: Any, dps: int) -> Prediction:
    params = _check_margin_instance(F, I)
    M, K, n = I.depth, I.K, I.counts[0]
    n_e = sp.Integer(n)
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    ell_e = (n_e * L_pow) ** sp.Rational(1, M + 1)
    red = etf_reduction(F.name, K, params, M)
    fe = R.eliminate_factorization(M)
    lb = sp.sympify(F.lower_bound)
    with mpmath.workdps(dps + 15):
        ell_v = to_mpf(ell_e, dps + 15)
        sol = solve_margin(F.name, K, params, M, ell_v, to_mpf(lb, dps + 15), dps)
    notes = [f"reduction: logits a (e_y - 1/K 1) -> per-sample loss lbar(a) = {sp.sstr(red.lbar)}"
             + ("" if red.symmetric else " (mean over the classes: the loss is not permutation-symmetric there)")
             + "; Z = a (I - 11^T/K) Y has K-1 singular values a sqrt(n) -> factorization cost -> g(a); "
             "a = u^(M+1) makes the penalty ((M+1)/2)(K-1) ell u^2",
             "the simplex-ETF geometry is an ASSUMPTION of this family (the reduction restricted to the ETF is "
             "not a proof of ETF optimality): the multi-start numerics on the full objective decide it",
             f"the global minimizer lies in u in (0, U], U = {mpmath.nstr(sol.U, 12)}: g(u) >= lower bound "
             f"{sp.sstr(lb)} + penalty > g(0) beyond U"] + sol.notes
    undetermined = [ROTATIONS]
    a_expr: sp.Expr | None = None
    how = "certified bracketed root (dense grid + mpmath.findroot)"
    if sol.a_value == 0:
        a_expr, how = sp.Integer(0), "boundary a = 0 selected"
    elif M == 1:
        cfs = closed_form_M1(F.name, K, params)
        if cfs:
            for cf in cfs:
                e = cf.subs(ell, ell_e)
                try:
                    v = to_mpf(e, dps + 5)
                except (ValueError, TypeError):
                    continue
                if abs(v - sol.a_value) <= mpmath.mpf(10) ** (-(dps - 8)) * max(1, abs(sol.a_value)):
                    a_expr, how = e, "closed form (M = 1), agrees with the certified root"
                    break
            else:
                notes.append("M = 1 closed-form candidates did not match the selected root: value from the root")
    a_ex = Exact(sol.a_value if a_expr is None else to_mpf(a_expr, dps), a_expr, how)
    exact = a_expr is not None
    geo = etf_minimizer(I, a_ex, L_e, dps)
    zero, z_ex, layers, sig_ex, eta_ex = geo["zero"], geo["z"], geo["layers"], geo["sigma"], geo["eta"]
    cm, p_ex, gram = geo["class_mean_norm"], geo["p_true"], geo["gram"]
    bias = None
    if I.bias:
        bias = [zero] * K
        notes.append("bias: the loss is shift-invariant (checked at registration), so the gradient of the data term "
                     "in b is orthogonal to 1 and, for the permutation-symmetric ETF logits, zero; "
                     + ("lambda_b > 0 then gives b = 0 at this stationary point" if I.lam_b > 0 else
                        "with lambda_b = 0 its component along 1 is free"))
        if I.lam_b == 0:
            undetermined.append("bias component along 1 (lambda_b = 0: any b = beta 1 is optimal; reported 0)")
    g_expr = None
    if exact:
        g_expr = red.g.subs({a: a_expr, R.n: n_e, R.L: L_e})
    objective = Exact(sol.g_value, g_expr, "g(a*) (loss on the ETF + factorization cost, 1/N normalization)")
    boundaries = _margin_boundaries(F, K, params, M, n_e, L_pow, I, dps)
    derivation: dict[str, Any] = {
        "reduction": "etf-margin", "loss": F.description or F.name, "loss_label": "lbar(a) (per-sample loss)",
        "ce": red.lbar, "lbar": red.lbar,
        "per_class": list(red.per_class), "symmetric": red.symmetric, "g": red.g, "g_u": red.g_u, "h_u": red.h_u,
        "factorization_cost": fe.cost, "stationary_u": sp.Eq(ell, red.h_u), "ell_value": ell_e,
        "search_interval_U": sol.U, "brackets": sol.stationary,
    }
    if M == 1:
        cfs = closed_form_M1(F.name, K, params)
        derivation["closed_form_candidates"] = list(cfs) if cfs else "none (transcendental stationary equation)"
        if a_expr is not None and a_expr != 0:
            a_sym = closed_form_pick(cfs, a_expr, ell_e)
            derivation["closed_form"] = {"a": a_sym, "p_true": sp.simplify(sp.exp(a_sym) / (sp.exp(a_sym) + K - 1))}
    return Prediction(
        family=F.name, instance=I.raw, objective=objective,
        scalars={"a": [a_ex], "u": [Exact(sol.u_value)], "ell": [_sx(ell_e, dps)], "p_true": [p_ex], "z": [z_ex]},
        singular_values={"weights_product": [sig_ex] * (K - 1) + [zero], "layers": layers,
                         "output": [z_ex] * (K - 1) + [zero], "features": [eta_ex] * (K - 1) + [zero]},
        gram_targets=gram, class_mean_norms=[cm] * K, bias=bias,
        collapsed_classes=geo["collapsed"], undetermined=undetermined,
        phase_boundaries=boundaries, candidates={"margin": sol.candidates}, reduced_problem=red.g,
        stationary_equation=sp.Eq(ell, red.h_u), notes=notes, dps=dps, derivation=derivation)


def closed_form_pick(cfs: tuple[sp.Expr, ...] | None, a_inst: sp.Expr, ell_inst: sp.Expr) -> sp.Expr:
    """The symbolic (in ell) closed-form branch whose value at the instance is ``a_inst``."""
    for cf in cfs or ():
        if cf.subs(ell, ell_inst) == a_inst:
            return cf
    return a_inst


def _margin_boundaries(F: EtfMarginFamily, K: int, params: tuple[sp.Expr, ...], M: int, n_e: sp.Integer,
                       L_pow: sp.Expr, I: Any, dps: int) -> list[PhaseBoundary]:
    th = margin_thresholds(F.name, K, params, M)
    ell_inst = to_mpf((n_e * L_pow) ** sp.Rational(1, M + 1), dps)
    prod_w = sp.Mul(*I.lam_w)
    out = []
    for kind in ("global", "existence"):
        val, expr, how = th[kind]
        what = ("the global minimizer on the ETF switches from a > 0 (ell < threshold) to W = H = 0 (ell > threshold)"
                if kind == "global" else "a stationary margin a > 0 exists iff ell <= threshold")
        out.append(PhaseBoundary(f"ell = (n lambda_H prod_j lambda_Wj)^(1/{M + 1})", Exact(+val, expr, how), kind,
                                 what, (), ell_inst))
        lam_expr = expr ** (M + 1) / (n_e * prod_w) if expr is not None else None
        with mpmath.workdps(dps + 5):
            lam_val = val ** (M + 1) / (mpmath.mpf(int(n_e)) * to_mpf(prod_w, dps))
        out.append(PhaseBoundary("lambda_H (other parameters fixed)",
                                 Exact(+lam_val, lam_expr, "lambda_H* = ell_c^(M+1) / (n prod_j lambda_Wj)"),
                                 kind, what.replace("ell", "lambda_H"), (), to_mpf(I.lam_h, dps)))
    return out


# ---------------------------------------------------------------------------------------------
# MSE with a regularized bias
def mean_mode_threshold(M: int) -> sp.Expr:
    """rho_global(M): the mean mode (like every MSE mode) is nonzero iff its rho < rho_global."""
    return mse_thresholds(M).rho_global


def bias_reg_boundary(M: int, N: sp.Expr, n: sp.Expr, L_pow: sp.Expr) -> tuple[sp.Expr, sp.Expr | None]:
    """(gamma*, lambda_b*): the mean mode of Z is nonzero iff gamma = lambda_b/(1+lambda_b) > gamma*,
    gamma* = (rho_c / rho_global)^{1/(M+1)}, rho_c = N^{M+1} L^{M+1} / n^M; lambda_b* = gamma*/(1 - gamma*)
    (None when gamma* >= 1: the mean mode stays 0 for every lambda_b). M = 1: gamma* = c = K sqrt(n lambda_W lambda_H)."""
    rho_c = N ** (M + 1) * L_pow / n ** M
    g_star = sp.simplify((rho_c / mean_mode_threshold(M)) ** sp.Rational(1, M + 1))
    if sp.N(g_star, 30) >= 1:
        return g_star, None
    return g_star, sp.simplify(g_star / (1 - g_star))


def _solve_weighted_mode(M: int, N_e: sp.Expr, L_pow: sp.Expr, y2: sp.Expr, dps: int, label: str):
    """Global minimizer over z >= 0 of phi(z) = (y - z)^2/(2 N') + ((M+1)/2) L z^{2/(M+1)} with a rational N'
    (the mean mode: N' = N / gamma). Returns (w exact or None, w value, phi exact or None, phi value, candidates,
    notes)."""
    phi = _phi_numeric(M)
    with mpmath.workdps(dps + 10):
        y_val = mpmath.sqrt(to_mpf(y2, dps + 10))
        N_val = to_mpf(N_e, dps + 10)
        L_val = to_mpf(L_pow, dps + 10) ** (mpmath.mpf(1) / (M + 1))
        rho_e = sp.Rational(N_e ** (M + 1) * L_pow / y2 ** M)
        roots = stationary_points_w(M, rho_e, to_mpf(rho_e, dps + 10), dps + 10)
        entries = [("z = 0 (boundary)", (mpmath.mpf(0), mpmath.mpf(0)), phi(mpmath.mpf(0), y_val, N_val, L_val))]
        for i, (r, rv) in enumerate(roots):
            zv = y_val * rv
            d2 = mpmath.diff(lambda q: phi(q, y_val, N_val, L_val), zv, 2)
            kind = "local min" if d2 > 0 else ("local max" if d2 < 0 else "degenerate")
            entries.append((f"stationary point {i + 1}: w = {mpmath.nstr(rv, 15)} ({kind})", (rv, zv),
                            phi(zv, y_val, N_val, L_val)))
        cands, chosen, tied = select_global(entries, dps)
    notes = [f"{label}: tie between {[cands[i].label for i in tied]}"] if len(tied) > 1 else []
    w_expr, w_val = (sp.Integer(0), mpmath.mpf(0)) if chosen == 0 else roots[chosen - 1]
    phi_expr = None
    if w_expr is not None:
        y_e = sp.sqrt(y2)
        phi_expr = R.mode_objective(M).subs({R.z: y_e * w_expr, R.y: y_e, R.N: N_e,
                                             R.L: L_pow ** sp.Rational(1, M + 1)})
    return w_expr, +w_val, phi_expr, +cands[chosen].objective, cands, rho_e, notes


def _derive_mse_bias_reg(I: Any, dps: int) -> Prediction:
    fam = MSE_BIAS_REG
    if I.loss != "mse":
        raise ValueError(f"{fam} needs loss mse, got {I.loss!r}")
    if not I.bias or I.lam_b <= 0:
        raise ValueError(f"{fam} needs a last-layer bias with lambda_b > 0 (--bias --lam-b ...), got "
                         f"bias = {I.bias}, lambda_b = {float(I.lam_b)}")
    if not I.balanced:
        raise ValueError(f"{fam} needs balanced classes, got counts {list(I.counts)}")
    if I.activation is not None:
        raise ValueError(f"{fam} is deep linear (no activation), got {I.activation!r}")
    if I.width < I.K:
        raise ValueError(f"{fam} needs width d >= K (K-1 centered modes plus the mean mode), got d = {I.width} < K = {I.K}")
    M, K, n, N = I.depth, I.K, I.counts[0], I.N
    N_e, n_e = sp.Integer(N), sp.Integer(n)
    gam = sp.Rational(I.lam_b / (1 + I.lam_b))
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    fe = R.eliminate_factorization(M)
    sol_c = solve_mse_mode(M, N_e, L_pow, n_e, dps, "centered modes")
    w_m, w_m_val, phi_m_expr, phi_m_val, cands_m, rho_m, notes_m = _solve_weighted_mode(
        M, N_e / gam, L_pow, n_e, dps, "mean mode")
    notes = ["reduction: b = (ybar - zbar)/(1 + lambda_b) eliminated; data term 1/(2N)||(Z - Y) C||^2 + "
             "gamma/(2N) ||(Z - Y) u u^T||^2, gamma = lambda_b/(1 + lambda_b); factorization elimination; the K-1 "
             "centered label modes (y^2 = n) and the mean mode (1_K/sqrt K, u = 1_N/sqrt N, y^2 = n) with N' = N/gamma",
             "M = 1: exact (after the factorization elimination the problem in (Z, b) is convex and permutation "
             "symmetric, so an aligned symmetric minimizer exists)" if M == 1 else
             "M >= 2: the aligned (label-mode) form of Z is assumed; the numerics check it"] + sol_c.notes + notes_m
    undetermined = [ROTATIONS]
    y_e = sp.sqrt(n_e)
    vals = {}
    for key, w_expr, w_val in (("c", sol_c.w, sol_c.w_value), ("m", w_m, w_m_val)):
        z_expr = y_e * w_expr if w_expr is not None else None
        with mpmath.workdps(dps + 10):
            z_val = mpmath.sqrt(n) * w_val
            t_val = z_val ** (mpmath.mpf(1) / (M + 1))
            L_v = to_mpf(L_e, dps + 10)
            s_val = [mpmath.sqrt(L_v / to_mpf(I.lam_w[j], dps + 10)) * t_val for j in range(M)]
            eta_val = mpmath.sqrt(L_v / to_mpf(I.lam_h, dps + 10)) * t_val
        if z_expr is not None:
            sub = {R.z: z_expr, R.L: L_e, R.lam_H: I.lam_h, **{R.lam_W(j): I.lam_w[j - 1] for j in range(1, M + 1)}}
            s_ex = [Exact(+s_val[j], fe.layer_values[j].subs(sub)) for j in range(M)]
            eta_ex = Exact(+eta_val, fe.feature_value.subs(sub))
            z_ex = Exact(+z_val, z_expr)
            sig_ex = Exact(+mpmath.fprod(s_val), sp.Mul(*[e.expr for e in s_ex]))
        else:
            s_ex = [Exact(+v) for v in s_val]
            eta_ex, z_ex, sig_ex = Exact(+eta_val), Exact(+z_val), Exact(+mpmath.fprod(s_val))
        vals[key] = {"w": Exact(+w_val, w_expr), "z": z_ex, "layers": s_ex, "eta": eta_ex, "sigma": sig_ex}
    c, m = vals["c"], vals["m"]
    ex = lambda e: e.expr is not None  # noqa: E731
    obj_expr = (K - 1) * sol_c.phi_expr + phi_m_expr if sol_c.phi_expr is not None and phi_m_expr is not None else None
    with mpmath.workdps(dps + 10):
        obj_val = (K - 1) * sol_c.phi_value + phi_m_val
    objective = Exact(+obj_val, obj_expr, "(K-1) phi_c(z_c*) + phi_m(z_m*)  (b eliminated)")
    bias_expr = (1 - m["w"].expr) / (K * (1 + I.lam_b)) if ex(m["w"]) else None
    with mpmath.workdps(dps + 10):
        bias_val = (1 - m["w"].value) / (K * (1 + to_mpf(I.lam_b, dps + 10)))
    bias = [Exact(+bias_val, bias_expr, "b = (1 - w_m) / (K (1 + lambda_b)) 1, w_m = z_m / sqrt(n)")] * K

    def sq(e: Exact, f: sp.Expr = sp.Integer(1)) -> Exact:
        return Exact(e.value ** 2 * to_mpf(f, dps + 5), e.expr ** 2 * f if ex(e) else None)

    sig2_c, sig2_m = sq(c["sigma"]), sq(m["sigma"])
    with mpmath.workdps(dps + 10):
        wdiag_v = sig2_c.value * (K - 1) / K + sig2_m.value / K
    wdiag = Exact(+wdiag_v, sig2_c.expr * sp.Rational(K - 1, K) + sig2_m.expr / K if ex(sig2_c) and ex(sig2_m) else None)
    mean_zero = m["w"].value == 0
    kind_w = ("zero" if c["w"].value == 0 and mean_zero else "ETF" if mean_zero else "general")
    with mpmath.workdps(dps + 10):
        off = (sig2_m.value - sig2_c.value) / K
        G_w = [[(wdiag_v if i == j else off) for j in range(K)] for i in range(K)]
    hdiag = sq(c["eta"], sp.Rational(K - 1, K * n))
    gram = {
        "WWT": {"kind": kind_w, "diag": [wdiag] * K, "matrix": G_w,
                "description": "W W^T = sigma_c^2 (I - 11^T/K) + sigma_m^2 11^T/K (simplex ETF iff sigma_m = 0)"},
        "HbarTHbar": {"kind": "zero" if c["w"].value == 0 else "ETF", "centered": True, "diag": [hdiag] * K,
                      "description": "centered class means: Gram (eta_c^2 / n)(I - 11^T/K) (the mean mode only "
                                     "shifts every class mean by eta_m v / sqrt(N))"},
    }
    with mpmath.workdps(dps + 10):
        cm_v = mpmath.sqrt(hdiag.value + m["eta"].value ** 2 / N)
    cm_expr = sp.sqrt(hdiag.expr + m["eta"].expr ** 2 / N) if ex(hdiag) and ex(m["eta"]) else None
    cmn = [Exact(+cm_v, cm_expr, "||hbar_k||^2 = eta_c^2 (K-1)/(K n) + eta_m^2 / N (uncentered)")] * K
    g_star, lam_star = bias_reg_boundary(M, N_e, n_e, L_pow)
    th = mse_thresholds(M)
    boundaries = [
        PhaseBoundary("gamma = lambda_b / (1 + lambda_b)", _sx(g_star, dps, "gamma* = (rho_c / rho_global)^(1/(M+1)), "
                      "rho_c = N^(M+1) lambda_H prod_j lambda_Wj / n^M" + ("; M = 1: gamma* = K sqrt(n lambda_W lambda_H)"
                                                                          if M == 1 else "")),
                      "global", "the mean mode of Z (and of W) is nonzero -- W W^T is no longer a simplex ETF -- iff "
                      "gamma > gamma*", (), to_mpf(gam, dps)),
    ]
    if lam_star is not None:
        boundaries.append(PhaseBoundary("lambda_b (other parameters fixed)", _sx(lam_star, dps, "lambda_b* = gamma*/(1 - gamma*)"),
                                        "global", "W W^T is a simplex ETF iff lambda_b <= lambda_b*; above it W gains "
                                        "the singular value sigma_m along 1_K", (), to_mpf(I.lam_b, dps)))
    else:
        notes.append("gamma* >= 1: the mean mode stays 0 for every lambda_b (W W^T is a simplex ETF or 0)")
    rho_c = N_e ** (M + 1) * L_pow / n_e ** M
    boundaries.append(PhaseBoundary(f"rho_c = N^{M + 1} lambda_H prod_j lambda_Wj / n^{M} (centered modes)",
                                    _sx(th.rho_global, dps), "global",
                                    "the centered modes (the ETF part) are nonzero iff rho_c < threshold", (), to_mpf(rho_c, dps)))
    cands = {"centered modes": sol_c.candidates, "mean mode": cands_m}
    derivation = {
        "factorization_cost": fe.cost, "L": fe.L_expr, "L_value": L_e, "reduced_objective": R.mode_objective(M),
        "label_modes": [n_e] * (K - 1) + [n_e], "substitution_t": "t = z^(1/(M+1))", "stationary_t": R.stationary_polynomial_t(M),
        "substitution_w": "w = z / y, rho = (N L)^(M+1) / y^(2M); mean mode: N -> N' = N/gamma",
        "stationary_value_w": R.stationary_value_w(M), "gamma": gam, "rho_mean_mode": rho_m, "rho_centered": rho_c,
        "bias_elimination": "b = (ybar - zbar)/(1 + lambda_b); the mean label mode is weighted by gamma = lambda_b/(1 + lambda_b)",
        "mean_mode_objective": sp.Symbol("gamma") * (R.y - R.z) ** 2 / (2 * R.N) + fe.cost,
        "rho_global": th.rho_global, "rho_exist": th.rho_exist, "gamma_star": g_star, "lambda_b_star": lam_star if lam_star is not None else "none (gamma* >= 1)",
    }
    if M == 1:
        derivation["closed_form"] = {"w": R.closed_form_M1()["w"], "z": R.closed_form_M1()["z"]}
    return Prediction(
        family=fam, instance=I.raw, objective=objective,
        scalars={"w_centered": [c["w"]], "w_mean": [m["w"]], "gamma": [_sx(gam, dps)], "rho_mean": [_sx(rho_m, dps)]},
        singular_values={"weights_product": [c["sigma"]] * (K - 1) + [m["sigma"]],
                         "layers": [[c["layers"][j]] * (K - 1) + [m["layers"][j]] for j in range(M)],
                         "output": [c["z"]] * (K - 1) + [m["z"]], "features": [c["eta"]] * (K - 1) + [m["eta"]]},
        gram_targets=gram, class_mean_norms=cmn, bias=bias,
        collapsed_classes=list(range(K)) if c["w"].value == 0 and mean_zero else [], undetermined=undetermined,
        phase_boundaries=boundaries, candidates=cands, reduced_problem=R.mode_objective(M),
        stationary_equation=sp.Eq(R.stationary_polynomial_w(M), 0), notes=notes, dps=dps, derivation=derivation)
