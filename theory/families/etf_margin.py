"""Loss variants in the theory engine (SymPy + mpmath only; never torch, never numerics).

**ETF-margin families** (``EtfMarginFamily``), one per registered per-sample loss l(z, y) of the logit
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

Instances are read by ``theory.instance.read_instance`` (duck typing); the loss name carries the parameters
as ``BASE:v1,v2`` (e.g. "ce-ls:0.1"), read here as exact rationals of their decimal literals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import mpmath
import sympy as sp
import numpy as np

from ncverify.theory import reduced as R
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.etf import check_etf_instance, etf_minimizer
from ncverify.theory.families.mse_deep import ROTATIONS, sx as _sx
from ncverify.theory.instance import ExactInstance
from ncverify.theory.numbers import exact_number
from ncverify.theory.phase import lam_h_values
from ncverify.theory.prediction import Candidate, Exact, PhaseBoundary, Prediction, SingularValues
from ncverify.theory.solve import select_global, to_mpf

a, u, ell = R.a, R.u, R.ell
x_sym = sp.Symbol("x", positive=True)


# ---------------------------------------------------------------------------------------------
# registry
@dataclass(frozen=True)
class EtfMarginFamily:
    """A per-sample loss as a SymPy expression, and what the theory engine needs to know about it.

    name: the family id (``derive NAME``), e.g. "my-loss".
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

    def check(self, I: ExactInstance) -> None:
        _check_margin_instance(self, I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return _derive_margin(self, I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        """lambda_H at the collapse thresholds (other parameters fixed)."""
        params = _check_margin_instance(self, I)
        n_e = sp.Integer(I.counts[0])
        return {"lam_h": lam_h_values(_margin_boundaries(self, I.K, params, I.depth, n_e,
                                                         I.lam_h * sp.Mul(*I.lam_w), I, 30))}





def split_loss(loss: str) -> tuple[str, tuple[sp.Rational, ...]]:
    """("ce-ls", (1/10,)) for "ce-ls:0.1": the base name and the parameters as exact rationals."""
    base, _, rest = str(loss).partition(":")
    vals = tuple(exact_number(float(p)) for p in rest.split(",")) if rest else ()
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
def etf_reduction(fam: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...], M: int) -> EtfReduction:
    """Derive lbar(a), g(a), g(u) and h(u) from the family's SymPy loss (cached per arguments)."""
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
    return EtfReduction(fam.name, K, tuple(params), M, tuple(per_class), symmetric, lbar, g, g_u, h_u)


@lru_cache(maxsize=256)
def closed_form_M1(family: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...]) -> tuple[sp.Expr, ...] | None:
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
@lru_cache(maxsize=256)
def _margin_numeric(family: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...], M: int) -> tuple[Callable, Callable, Callable]:
    red = etf_reduction(family, K, params, M)
    g_f = sp.lambdify((u, ell), red.g_u, modules="mpmath")
    h_f = sp.lambdify(u, red.h_u, modules="mpmath")
    l_f = sp.lambdify(a, red.lbar, modules="mpmath")
    return g_f, h_f, l_f


@lru_cache(maxsize=256)
def _margin_float(family: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...], M: int) -> tuple[Callable, Callable]:
    """g(u, ell) and h(u) of ``etf_reduction`` lambdified to numpy (float64, vectorized): a prescreen of the
    dense grids only (``Grid.values``); every value a decision rests on is re-evaluated with mpmath."""
    red = etf_reduction(family, K, params, M)
    return sp.lambdify((u, ell), red.g_u, modules="numpy"), sp.lambdify(u, red.h_u, modules="numpy")


#: a float64 grid value is re-evaluated with mpmath when it is this close to the decision level (relative)
FLOAT_AMBIGUOUS = 1e-5
#: the float64 prescreen is used only when it agrees with mpmath on sampled grid points to this relative error
FLOAT_AGREE = 1e-7


class Grid:
    """A dense grid on (0, U] for the 1-D margin problems: U i / n_lin (i = 1..n_lin) and U 10^(-12 + 12 i / n_geo)
    (i < n_geo), merged in increasing order. ``point(i)`` is the mpmath point (at the working precision when the
    grid was made), ``x`` the float64 points."""

    def __init__(self, U: mpmath.mpf, n_lin: int = 1200, n_geo: int = 200):
        self.U = U
        fr = sorted([("lin", i) for i in range(1, n_lin + 1)] + [("geo", i) for i in range(n_geo)],
                    key=lambda e: e[1] / n_lin if e[0] == "lin" else 10.0 ** (-12 + 12 * e[1] / n_geo))
        self._fr, self._n = fr, (n_lin, n_geo)
        self.x = np.array([float(U) * (i / n_lin if k == "lin" else 10.0 ** (-12 + 12 * i / n_geo)) for k, i in fr])
        self._pts: dict[int, mpmath.mpf] = {}

    def __len__(self) -> int:
        return len(self._fr)

    def point(self, i: int) -> mpmath.mpf:
        if i not in self._pts:
            k, j = self._fr[i]
            n_lin, n_geo = self._n
            self._pts[i] = (self.U * mpmath.mpf(j) / n_lin if k == "lin"
                            else self.U * mpmath.mpf(10) ** (-12 + 12 * mpmath.mpf(j) / n_geo))
        return self._pts[i]

    def values(self, f_float: Callable | None, f_mp: Callable, level: mpmath.mpf | None = None) -> "GridValues":
        """f on the grid, for decisions on the sign of f - ``level`` (None: only an argmin or argmax is taken).

        Float64 values from the vectorized ``f_float`` (one numpy call), except that a point whose value is not
        finite or lies within ``FLOAT_AMBIGUOUS`` (relative) of ``level`` is evaluated with ``f_mp``. Every 40th
        point (and the last) is evaluated with mpmath too; if any disagrees by more than ``FLOAT_AGREE`` (relative
        to max(|f|, |level|), or without a level to the largest |f| on the grid: cancellation in float64) every
        point is evaluated with mpmath. So every sign of f - level read from the
        result is the mpmath one; an argmin or argmax taken on it is re-evaluated at full precision by the caller
        (``GridValues.exact``)."""
        gv = GridValues(self, f_mp)
        n = len(self)
        v = None
        if f_float is not None:
            try:
                with np.errstate(all="ignore"):
                    v = np.asarray(f_float(self.x), dtype=float) * np.ones(n)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError, NameError, AttributeError):
                v = None
        lev = 0.0 if level is None else float(level)
        if v is not None:
            # without a level only an argmin / argmax is taken: errors are measured against the largest |value|
            top = float(np.max(np.abs(v[np.isfinite(v)]), initial=0.0)) if level is None else 0.0
            for i in sorted({*range(0, n, 40), n - 1}):
                ref = float(gv.exact(i))
                if not np.isfinite(v[i]) or abs(v[i] - ref) > FLOAT_AGREE * max(abs(ref), abs(lev), top, 1e-300):
                    v = None
                    break
        if v is None:
            v = np.array([float(gv.exact(i)) for i in range(n)])
        else:
            amb = ~np.isfinite(v)
            if level is not None:
                amb |= np.abs(v - lev) <= FLOAT_AMBIGUOUS * np.maximum(np.abs(v), abs(lev))
            for i in np.flatnonzero(amb):
                v[i] = float(gv.exact(int(i)))
        gv.v = v
        if level is not None:  # the sign of f - level: float64 where unambiguous, mpmath where evaluated
            sg = np.sign(v - lev)
            for i, val in gv._exact.items():
                sg[i] = (val > level) - (val < level)
            gv.sign = sg
        return gv


class GridValues:
    """f on a ``Grid``: ``v`` float64 values, ``sign`` the signs of f - level (see ``Grid.values``), ``exact(i)``
    the mpmath value at point i (evaluated once)."""

    def __init__(self, grid: Grid, f_mp: Callable):
        self.grid, self._f, self._exact = grid, f_mp, {}
        self.v = None
        self.sign = None

    def exact(self, i: int) -> mpmath.mpf:
        if i not in self._exact:
            self._exact[i] = self._f(self.grid.point(i))
        return self._exact[i]

    def best_near(self, i: int, pick: Callable, among: Any = None, reach: int = 2) -> int:
        """The index among i - reach .. i + reach (and ``among``, when given) that ``pick`` (min or max) selects on
        the mpmath values: the float64 argmin / argmax i re-checked at full precision."""
        near = [j for j in range(max(0, i - reach), min(len(self.grid), i + reach + 1))
                if among is None or j in among]
        return pick(near, key=self.exact)


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


def solve_margin(family: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...], M: int, ell_value: mpmath.mpf,
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
            grid = Grid(U)
            D = lambda q: h_f(q) - ell_value  # noqa: E731
            gF, hF = _margin_float(family, K, params, M)
            sg = grid.values(hF, h_f, ell_value).sign  # the sign of D = h - ell on the grid
            for i in np.flatnonzero((sg[:-1] == 0) | (sg[:-1] * sg[1:] < 0)):
                lo, hi = grid.point(int(i)), grid.point(int(i) + 1)
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
            gv = grid.values(lambda x: gF(x, float(ell_value)), lambda q: g_f(q, ell_value))
            i = gv.best_near(int(np.argmin(gv.v)), min)
            best = min(e[2] for e in entries)
            if gv.exact(i) < best - mpmath.mpf(10) ** (-(dps // 2)) * max(1, abs(best)):
                lo, hi = grid.point(max(i - 1, 0)), grid.point(min(i + 1, len(grid) - 1))
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
def margin_thresholds(family: "EtfMarginFamily", K: int, params: tuple[sp.Expr, ...], M: int, dps: int = 30
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
        grid = Grid(Umax, 800, 200)
        gF, hF = _margin_float(family, K, params, M)
        hv = grid.values(hF, h_f)
        g0 = l_f(mpmath.mpf(0))
        E = lambda q: g_f(q, h_f(q)) - g0  # noqa: E731
        neg_mask = grid.values(lambda x: gF(x, hF(x)), lambda q: g_f(q, h_f(q)), g0).sign < 0  # E < 0
        lim_v = to_mpf(lim0, dps + 10) if lim0 is not None and lim0.is_finite else None
        if lim0 is None:
            lim_v, lim0 = h_f(mpmath.mpf(10) ** (-dps)), None
        # existence
        i = hv.best_near(int(np.argmax(hv.v)), max)
        if i == 0 and lim_v is not None and lim_v >= hv.exact(0):
            out["existence"] = (lim_v, lim0, "limit of h(u) at u -> 0+")
        else:
            lo, hi = grid.point(max(i - 1, 0)), grid.point(min(i + 1, len(grid) - 1))
            r = _golden_min(lambda q: -h_f(q), lo, hi, dps + 15)
            out["existence"] = (h_f(r), None, f"max of h at u = {mpmath.nstr(r, 15)} (grid + golden section)")
        # global
        neg = set(np.flatnonzero(neg_mask).tolist())
        if not neg:
            out["global"] = (mpmath.mpf(0), None, "no point of the stationary branch beats a = 0 on the grid")
            return out
        j = hv.best_near(max(neg, key=lambda k: hv.v[k]), max, among=neg)
        if j == 0 and lim_v is not None and lim_v >= hv.exact(0):
            out["global"] = (lim_v, lim0, "limit of h(u) at u -> 0+ (E < 0 next to 0)")
            return out
        best = (hv.exact(j), None, f"h on the grid at u = {mpmath.nstr(grid.point(j), 10)}")
        for k in (j - 1, j + 1):  # a sign change of E next to the maximizer: refine the crossing
            if 0 <= k < len(grid) and not neg_mask[k]:
                pj, pk = grid.point(j), grid.point(k)
                r = mpmath.findroot(E, (min(pj, pk), max(pj, pk)), solver="bisect")
                if h_f(r) >= best[0]:
                    best = (h_f(r), None, f"h(u*) where g(u*) = g(0) on the branch, u* = {mpmath.nstr(r, 20)}")
        if best[2].startswith("h on the grid"):
            lo, hi = grid.point(max(j - 1, 0)), grid.point(min(j + 1, len(grid) - 1))
            r = _golden_min(lambda q: -h_f(q), lo, hi, dps + 15)
            if E(r) < 0:
                best = (h_f(r), None, f"max of h inside E < 0 at u = {mpmath.nstr(r, 15)}")
        out["global"] = best
    return out


# ---------------------------------------------------------------------------------------------
# derivations
def _check_margin_instance(F: "EtfMarginFamily", I: ExactInstance) -> tuple[sp.Expr, ...]:
    base, params = split_loss(I.loss)
    usage = F.loss_base + (":" + ",".join(p.upper() for p in F.param_names) if F.param_names else "")
    if base != F.loss_base:
        raise TheoryInputError(f"{F.name} needs --loss {usage}, got {I.loss!r}")
    if len(params) != len(F.param_names):
        raise TheoryInputError(f"{F.name} needs the loss parameters {usage}, got {I.loss!r}")
    check_etf_instance(F.name, I)
    if I.bias and not F.shift_invariant:
        raise TheoryInputError(f"{F.name}: a bias is supported only for shift-invariant losses (l(z + t 1) = l(z))")
    return params


def _derive_margin(F: "EtfMarginFamily", I: ExactInstance, dps: int) -> Prediction:
    params = _check_margin_instance(F, I)
    M, K, n = I.depth, I.K, I.counts[0]
    n_e = sp.Integer(n)
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    ell_e = (n_e * L_pow) ** sp.Rational(1, M + 1)
    red = etf_reduction(F, K, params, M)
    fe = R.eliminate_factorization(M)
    lb = sp.sympify(F.lower_bound)
    with mpmath.workdps(dps + 15):
        ell_v = to_mpf(ell_e, dps + 15)
        sol = solve_margin(F, K, params, M, ell_v, to_mpf(lb, dps + 15), dps)
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
        cfs = closed_form_M1(F, K, params)
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
        cfs = closed_form_M1(F, K, params)
        derivation["closed_form_candidates"] = list(cfs) if cfs else "none (transcendental stationary equation)"
        if a_expr is not None and a_expr != 0:
            a_sym = closed_form_pick(cfs, a_expr, ell_e)
            derivation["closed_form"] = {"a": a_sym, "p_true": sp.simplify(sp.exp(a_sym) / (sp.exp(a_sym) + K - 1))}
    return Prediction(
        family=F.name, instance=I.raw, objective=objective,
        scalars={"a": [a_ex], "u": [Exact(sol.u_value)], "ell": [_sx(ell_e, dps)], "p_true": [p_ex], "z": [z_ex]},
        singular_values=SingularValues([sig_ex] * (K - 1) + [zero], layers, [z_ex] * (K - 1) + [zero],
                                       [eta_ex] * (K - 1) + [zero]),
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
    th = margin_thresholds(F, K, params, M)
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


