"""Phase boundaries: where the global minimizer changes branch, and where stationary branches exist.

MSE (per aligned mode, dimensionless): rho = (N L)^{M+1} / y^{2M} = N^{M+1} lambda_H prod_j lambda_{W_j} / y^{2M}
(y^2 = n_k without a bias). The stationary points z = y w > 0 lie on the branch rho = B(w) := w^{M-1}(1-w)^{M+1},
w in (0, 1) (solved from the stationary polynomial). Hence

* existence: a stationary point with z > 0 exists iff rho <= rho_exist = max_{(0,1)} B (double root of P_w:
  also a root of the discriminant of P_w in w);
* global switch: the nonzero branch beats z = 0 iff its value 2N phi / y^2 = V(w) is < 1; the switch is at
  V(w) = 1 on the branch, rho_global = B(w_global) (also a root of the resultant of P_w and V - 1).

CE on the ETF geometry (balanced), dimensionless: ell = L n^{1/(M+1)} = (n lambda_H prod_j lambda_{W_j})^{1/(M+1)};
stationary points u > 0 solve ell = h(u) (see reduced.ce_etf_reduction); existence: ell <= max h; global:
g(u) = g(0) = log K on the branch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import mpmath
import sympy as sp

from . import reduced as R
from .prediction import Exact, PhaseBoundary
from .solve import _ce_numeric, ce_peak, to_mpf


# ---------------------------------------------------------------------------------------------
# MSE
@dataclass(frozen=True)
class MSEThresholds:
    """Exact thresholds of one mode for depth M (an int, or the symbol reduced.M_sym for general M).

    branch: B(w) with rho = B(w) on the stationary set; value: V(w) = 2N phi / y^2 on it.
    w_exist / rho_exist: the fold (double root) of the stationary branch; w_global / rho_global: the
    point of the branch where V = 1 (equal objective with z = 0). For M = 1 both are limits w -> 0+.
    """

    M: Any
    branch: sp.Expr
    value: sp.Expr
    w_exist: sp.Expr
    rho_exist: sp.Expr
    w_global: sp.Expr
    rho_global: sp.Expr


def _tidy_powers(e: sp.Expr) -> sp.Expr:
    """Combine powers (all bases positive) and simplify their exponents."""
    e = sp.powsimp(sp.expand_power_base(e, force=True), force=True)
    return e.replace(lambda q: q.is_Pow, lambda q: sp.Pow(q.base, sp.simplify(q.exp)))


def _branch_and_value_symbolic() -> tuple[sp.Expr, sp.Expr]:
    """B(w) and V(w) for symbolic M, derived from phi(z) = (y-z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)}
    (the form eliminate_factorization gives for every concrete M)."""
    M = R.M_sym
    phi = (R.y - R.z) ** 2 / (2 * R.N) + (M + 1) / 2 * R.L * R.z ** (2 / (M + 1))
    NL = sp.solve(sp.Eq(sp.diff(phi, R.z), 0), R.L)[0] * R.N  # N L along the stationary set
    NL_v = sp.powsimp(sp.factor(NL.subs(R.z, R.y * R.w).subs(R.w, 1 - R.v)), force=True)  # v = 1 - w
    B = _tidy_powers(NL_v ** (M + 1) / R.y ** (2 * M)).subs(R.v, 1 - R.w)
    V = 2 * R.N * phi.subs(R.z, R.y * R.w).subs(R.L, NL_v.subs(R.v, 1 - R.w) / R.N) / R.y ** 2
    V = sp.factor(_tidy_powers(sp.expand(V)))
    return B, V


@lru_cache(maxsize=None)
def mse_thresholds(M: Any) -> MSEThresholds:
    """Derive the existence and global-switch thresholds (exact) for depth M (int >= 1, or R.M_sym)."""
    if isinstance(M, int):
        B = sp.solve(R.stationary_polynomial_w(M), R.rho)[0]
        V = R.stationary_value_w(M)
    else:
        B, V = _branch_and_value_symbolic()
    # existence: the maximum of B on (0, 1) -- critical points of log B (B > 0 there)
    dlogB = sp.together(sp.diff(sp.expand_log(sp.log(B.subs(R.w, 1 - R.v).subs(R.v, 1 - R.w)), force=True), R.w))
    crit = [s for s in sp.solve(sp.numer(dlogB), R.w) if _inside01(s, M)]
    if crit:
        w_e = crit[0]
        rho_e = sp.simplify(B.subs(R.w, w_e))
    else:  # no interior maximum: B decreases on (0, 1); the sup is the limit at w -> 0+
        w_e = sp.Integer(0)
        rho_e = sp.limit(B, R.w, 0, "+")
    # global: V(w) = 1 with w in (0, 1)
    sols = [s for s in sp.solve(sp.Eq(V, 1), R.w) if _inside01(s, M)]
    if sols:
        w_g = sols[0]
        rho_g = sp.simplify(B.subs(R.w, w_g))
    else:
        w_g = sp.Integer(0)
        rho_g = sp.limit(B, R.w, 0, "+")
    return MSEThresholds(M, B, V, sp.simplify(w_e), sp.simplify(rho_e), sp.simplify(w_g), sp.simplify(rho_g))


@lru_cache(maxsize=None)
def mse_threshold_values(M: int) -> tuple[float, float]:
    """(rho_global, rho_exist) of depth M as floats, for aiming searches at the boundaries: the branch B and value V
    of ``mse_thresholds`` located numerically (mpmath at 30 digits: B's maximum on a grid of (0, 1) refined by golden
    section; the sign change of V - 1 refined by bisection; both the limit w -> 0+ when there is no interior point)
    instead of solved symbolically, which costs about a second per M. The exact values stay ``mse_thresholds``."""
    B = sp.lambdify(R.w, R.stationary_polynomial_w(M).subs(R.rho, 0), modules="mpmath")
    V = sp.lambdify(R.w, R.stationary_value_w(M), modules="mpmath")
    with mpmath.workdps(30):
        ws = [mpmath.mpf(i) / 400 for i in range(1, 400)]
        bv = [B(w) for w in ws]
        i = max(range(len(ws)), key=lambda j: bv[j])
        if i == 0 and B(mpmath.mpf(0)) >= bv[0]:
            rho_e = B(mpmath.mpf(0))
        else:
            lo, hi = ws[max(i - 1, 0)], ws[min(i + 1, len(ws) - 1)]
            invphi = (mpmath.sqrt(5) - 1) / 2
            for _ in range(150):
                c, d = hi - invphi * (hi - lo), lo + invphi * (hi - lo)
                lo, hi = (c, hi) if B(c) < B(d) else (lo, d)
            rho_e = B((lo + hi) / 2)
        dv = [V(w) - 1 for w in ws]
        cross = [j for j in range(len(ws) - 1) if dv[j] * dv[j + 1] <= 0]
        if cross:
            lo, hi = ws[cross[0]], ws[cross[0] + 1]
            for _ in range(110):  # bisection on V - 1 to 30 digits
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if (V(mid) - 1) * dv[cross[0]] > 0 else (lo, mid)
            rho_g = B((lo + hi) / 2)
        else:
            rho_g = B(mpmath.mpf(0))
    return float(rho_g), float(rho_e)


def _inside01(s: sp.Expr, M: Any) -> bool:
    if isinstance(M, int):
        return bool(s.is_real) and 0 < s < 1
    # symbolic M (>= 2 assumed for interior points): test at M = 2..6
    vals = [s.subs(R.M_sym, m) for m in range(2, 7)]
    return all(vv.is_real and 0 < vv < 1 for vv in vals)


def mse_discriminant_in_rho(M: int) -> sp.Poly:
    """The discriminant of P_w(w) in w, a polynomial in rho: its positive roots are the fold values
    (double roots of the stationary polynomial); rho_exist must be among them."""
    return sp.Poly(sp.discriminant(sp.Poly(R.stationary_polynomial_w(M), R.w)), R.rho)


def mse_equal_value_resultant(M: int) -> sp.Poly:
    """Resultant in w of P_w and numerator(V - 1): a polynomial in rho whose roots contain rho_global."""
    V = R.stationary_value_w(M)
    return sp.Poly(sp.resultant(sp.Poly(R.stationary_polynomial_w(M), R.w),
                                sp.Poly(sp.numer(sp.together(V - 1)), R.w)), R.rho)


def mse_phase_boundaries(M: int, N_exact: sp.Integer, L_pow: sp.Rational, lam_w: Sequence[sp.Rational],
                         lam_h: sp.Rational, modes: Sequence[tuple[sp.Expr, tuple[int, ...], str]],
                         dps: int = 40) -> list[PhaseBoundary]:
    """Boundaries for every distinct mode strength y^2 (``modes``: (y2, classes, label)).

    For each: rho (dimensionless, instance value rho_k) at the global switch and at the existence fold,
    and the same translated to the critical lambda_H (other parameters fixed):
    lambda_H* = rho_c y^{2M} / (N^{M+1} prod_j lambda_{W_j}).
    """
    th = mse_thresholds(M)
    prod_w = sp.Mul(*lam_w)
    out: list[PhaseBoundary] = []
    for y2, classes, label in modes:
        if y2 == 0:
            continue
        rho_inst = N_exact ** (M + 1) * L_pow / y2 ** M
        rho_val = to_mpf(rho_inst, dps)
        for kind, rc, wc in (("global", th.rho_global, th.w_global), ("existence", th.rho_exist, th.w_exist)):
            what = ("the global minimizer of this mode switches from z > 0 (rho < threshold) to z = 0 "
                    "(rho > threshold); at equality both are global" if kind == "global" else
                    "a stationary point with z > 0 exists iff rho <= threshold (fold / double root of P_w)")
            out.append(PhaseBoundary(
                parameter=f"rho = N^{M + 1} lambda_H prod_j lambda_Wj / y^{2 * M}  ({label})",
                value=Exact(to_mpf(rc, dps), rc, f"w at the threshold = {sp.sstr(wc)}"),
                kind=kind, description=what, classes=tuple(classes), instance_value=rho_val))
            lam_c = rc * y2 ** M / (N_exact ** (M + 1) * prod_w)
            out.append(PhaseBoundary(
                parameter=f"lambda_H  ({label}; other parameters fixed)",
                value=Exact(to_mpf(lam_c, dps), lam_c,
                            "lambda_H* = rho_c y^(2M) / (N^(M+1) prod_j lambda_Wj)"),
                kind=kind, description=what.replace("rho", "lambda_H"), classes=tuple(classes),
                instance_value=to_mpf(lam_h, dps)))
    return out


# ---------------------------------------------------------------------------------------------
# CE
@dataclass(frozen=True)
class CEThresholds:
    """ell_exist = max_u h(u) (at u_peak) and ell_global (branch value equals log K), for K classes, depth M."""

    K: int
    M: int
    ell_exist: Exact
    ell_global: Exact
    u_peak: mpmath.mpf
    u_global: mpmath.mpf | None


@lru_cache(maxsize=None)
def ce_thresholds(Kc: int, M: int, dps: int = 40) -> CEThresholds:
    """Thresholds in ell = L n^{1/(M+1)}. M = 1: exact (h decreases from its limit 1/K at u -> 0+, and g is
    convex in a, so both thresholds coincide). M >= 2: transcendental; ell_exist = h(u_peak) with u_peak the
    root of d log h/du (bracketed, refined by findroot); ell_global from E(u) = g(u; ell = h(u)) - log K = 0
    on u > u_peak (grid sign changes + findroot). Reported to dps digits with the brackets."""
    red = R.ce_etf_reduction(M)
    h = red.h_u.subs(R.K, Kc)
    if M == 1:
        lim = sp.limit(h, R.u, 0, "+")
        ex = Exact(to_mpf(lim, dps), lim, "limit of h(u) at u -> 0+ (h decreasing; g convex in a for M = 1)")
        return CEThresholds(Kc, M, ex, ex, mpmath.mpf(0), mpmath.mpf(0))
    g_f, logh, _ = _ce_numeric(M, Kc)
    with mpmath.workdps(dps + 15):
        up = ce_peak(M, Kc, dps + 15)
        ell_e = mpmath.exp(logh(up))
        ex_e = Exact(+ell_e, None, f"h(u_peak), u_peak = {mpmath.nstr(up, dps)} (root of d log h/du, unique: "
                                   "d log h/du strictly decreasing)")
        one = mpmath.mpf(1)
        E = lambda q: g_f(q, mpmath.exp(logh(q)), one) - g_f(mpmath.mpf(0), mpmath.exp(logh(q)), one)
        U = 2 * up + 1
        while E(U) >= 0:
            U *= 2
        pts = [up + (U - up) * mpmath.mpf(i) / 400 for i in range(0, 401)]
        vals = [E(p) for p in pts]
        roots = []
        for i in range(len(pts) - 1):
            if vals[i] * vals[i + 1] < 0:
                r = mpmath.findroot(E, (pts[i], pts[i + 1]), solver="anderson")
                roots.append((r, pts[i], pts[i + 1]))
        if len(roots) != 1:
            raise RuntimeError(f"CE global threshold: expected one branch crossing, found {len(roots)}")
        r, lo, hi = roots[0]
        ell_g = mpmath.exp(logh(r))
        ex_g = Exact(+ell_g, None, f"h(u*) where g(u*) = log K on the branch, u* = {mpmath.nstr(r, dps)} "
                                   f"in bracket [{mpmath.nstr(lo, 12)}, {mpmath.nstr(hi, 12)}]")
    return CEThresholds(Kc, M, ex_e, ex_g, +up, +r)


def ce_phase_boundaries(Kc: int, M: int, n_exact: sp.Integer, L_pow: sp.Rational, lam_w: Sequence[sp.Rational],
                        lam_h: sp.Rational, dps: int = 40) -> list[PhaseBoundary]:
    """CE boundaries in ell (instance value (n L^{M+1})^{1/(M+1)}) and in lambda_H (others fixed):
    lambda_H* = ell_c^{M+1} / (n prod_j lambda_Wj)."""
    th = ce_thresholds(Kc, M, dps)
    ell_inst = to_mpf((n_exact * L_pow) ** sp.Rational(1, M + 1), dps)
    prod_w = sp.Mul(*lam_w)
    out = []
    for kind, ex in (("global", th.ell_global), ("existence", th.ell_exist)):
        what = ("the global minimizer switches from a > 0 (ell < threshold) to W = H = 0 (ell > threshold)"
                if kind == "global" else "a stationary margin a > 0 exists iff ell <= threshold")
        out.append(PhaseBoundary(f"ell = (n lambda_H prod_j lambda_Wj)^(1/{M + 1})", ex, kind, what, (),
                                 ell_inst))
        lam_expr = ex.expr ** (M + 1) / (n_exact * prod_w) if ex.expr is not None else None
        with mpmath.workdps(dps + 5):
            lam_val = ex.value ** (M + 1) / (mpmath.mpf(int(n_exact)) * to_mpf(prod_w, dps))
        out.append(PhaseBoundary("lambda_H (other parameters fixed)",
                                 Exact(+lam_val, lam_expr, "lambda_H* = ell_c^(M+1) / (n prod_j lambda_Wj)"),
                                 kind, what.replace("ell", "lambda_H"), (), to_mpf(lam_h, dps)))
    return out


def lam_h_values(boundaries: Sequence[PhaseBoundary]) -> list[float]:
    """The lambda_H thresholds among ``boundaries`` (those stated as "lambda_H (other parameters fixed)")."""
    return sorted({float(b.value.value) for b in boundaries if b.parameter.startswith("lambda_H")})
