"""Solutions of the reduced problems: exact roots, certified brackets, and GLOBAL selection.

Global selection never assumes which root wins: every stationary point in the admissible range and
every boundary point (z = 0, a = 0) is a candidate; all are evaluated on the *original* reduced
objective (phi(z) or g(a), lambdified to mpmath) at high precision and the smallest value wins.
Values that agree to within ``tie_tolerance`` are reported as ties (and checked exactly when possible).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import mpmath
import sympy as sp

from .prediction import Candidate
from . import reduced as R


def to_mpf(expr: sp.Expr, dps: int) -> mpmath.mpf:
    """Evaluate an exact SymPy expression to an mpmath number with ``dps`` correct digits."""
    val = sp.N(expr, dps + 5)
    with mpmath.workdps(dps + 5):
        if val.is_real is False or (hasattr(val, "as_real_imag") and abs(sp.im(val)) > sp.Float(10) ** (-dps)):
            raise ValueError(f"expected a real value, got {val}")
        return mpmath.mpf(str(sp.re(val)))


def tie_tolerance(values: Sequence[mpmath.mpf], dps: int) -> mpmath.mpf:
    """Two candidate objectives closer than 10^{-(dps-8)} * max(1, |f|) are reported as a tie."""
    scale = max([mpmath.mpf(1)] + [abs(x) for x in values])
    return mpmath.mpf(10) ** (-(dps - 8)) * scale


def select_global(entries: Sequence[tuple[str, tuple[mpmath.mpf, ...], mpmath.mpf]], dps: int
                  ) -> tuple[list[Candidate], int, list[int]]:
    """Pick the smallest objective among (label, point, objective) entries.

    Returns the Candidate list (the chosen one has ``selected=True``), the chosen index and the indices
    of all candidates tied with it (within :func:`tie_tolerance`). On a tie the first entry in the given
    order is chosen (callers list boundary points first), and the caller reports the tie.
    """
    if not entries:
        raise ValueError("no candidates")
    vals = [e[2] for e in entries]
    tol = tie_tolerance(vals, dps)
    best = min(vals)
    tied = [i for i, x in enumerate(vals) if x - best <= tol]
    chosen = tied[0]
    cands = [Candidate(lab, pt, val, i == chosen) for i, (lab, pt, val) in enumerate(entries)]
    return cands, chosen, tied


# ---------------------------------------------------------------------------------------------
# MSE: one aligned mode
@dataclass
class ModeSolution:
    """Global minimizer of phi(z) = (y - z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)} over z >= 0 for one mode.

    y2: y^2 (n_k, or the centered-label eigenvalue mu_i), exact.
    rho: (N L)^{M+1} / y^{2M}, exact when y2 is rational (else None), and its value ``rho_value``.
    stationary: the stationary points w in (0, 1) as (exact or None, value, kind) with kind
      "local min" / "local max" / "degenerate" (from the sign of phi''(z)).
    w, w_value: the selected w = z / y (exact: 0, a radical or a CRootOf; None if only numeric).
    phi_value: the mode's contribution phi(z*) to the objective; phi_expr its exact expression.
    tie: indices of candidates tied with the selected one (len > 1 = a tie); tie_exact says whether
      the tie was confirmed exactly (None = only numerically).
    """

    M: int
    y2: sp.Expr
    rho: sp.Expr | None
    rho_value: mpmath.mpf
    stationary: list[tuple[sp.Expr | None, mpmath.mpf, str]]
    w: sp.Expr | None
    w_value: mpmath.mpf
    phi_expr: sp.Expr | None
    phi_value: mpmath.mpf
    candidates: list[Candidate]
    tie: list[int] = field(default_factory=list)
    tie_exact: bool | None = None
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=None)
def _phi_numeric(M: int) -> Callable:
    """phi(z, y, N, L) from the derived reduced objective, evaluated with mpmath."""
    return sp.lambdify((R.z, R.y, R.N, R.L), R.mode_objective(M), modules="mpmath")


def _is_rational(x: sp.Expr) -> bool:
    return isinstance(x, sp.Rational)


def stationary_points_w(M: int, rho_exact: sp.Expr | None, rho_value: mpmath.mpf, dps: int
                        ) -> list[tuple[sp.Expr | None, mpmath.mpf]]:
    """All roots of P_w(w) = w^{M-1}(1-w)^{M+1} - rho in the open interval (0, 1).

    Exact (``Poly.real_roots``: rationals, radicals for quadratics, else CRootOf) when rho is rational;
    otherwise mpmath.polyroots at extra precision, polished with findroot.
    """
    P = R.stationary_polynomial_w(M)
    out: list[tuple[sp.Expr | None, mpmath.mpf]] = []
    if rho_exact is not None and _is_rational(rho_exact):
        poly = sp.Poly(P.subs(R.rho, rho_exact), R.w)
        seen: list[sp.Expr] = []
        for r in poly.real_roots():
            if any(r == s for s in seen):
                continue
            seen.append(r)
            if _is_rational(r):
                inside = 0 < r < 1
            else:  # an irrational algebraic number is never exactly 0 or 1: its sign is read off its value
                val = to_mpf(r, dps)
                inside = 0 < val < 1
            if inside:
                out.append((r, to_mpf(r, dps)))
        return out
    with mpmath.workdps(2 * dps + 20):
        # P_w = (integer polynomial in w) - rho: rho enters the constant term only
        poly_c = [mpmath.mpf(int(c)) for c in sp.Poly(P.subs(R.rho, 0), R.w).all_coeffs()]
        poly_c[-1] -= rho_value
        roots = mpmath.polyroots(poly_c, maxsteps=400, extraprec=4 * dps)
        f = lambda x: mpmath.polyval(poly_c, x)
        for r in roots:
            if abs(mpmath.im(r)) > mpmath.mpf(10) ** (-dps // 2):
                continue
            x = mpmath.re(r)
            if 0 < x < 1:
                try:
                    x = mpmath.findroot(f, x)
                except (ValueError, ZeroDivisionError):
                    pass
                if not any(abs(x - s[1]) < mpmath.mpf(10) ** (-dps) for s in out):
                    out.append((None, +x))
    return sorted(out, key=lambda p: p[1])


def solve_mse_mode(M: int, N_exact: sp.Integer, L_pow: sp.Rational, y2: sp.Expr, dps: int = 40,
                   label: str = "mode", exact: bool = True) -> ModeSolution:
    """Global minimizer of one mode's phi over z >= 0.

    M: depth; N_exact: N; L_pow: L^{M+1} = lambda_H prod_j lambda_{W_j} (exact); y2: y^2 (exact).
    Candidates: z = 0 and z = y w for every stationary w in (0, 1).
    exact=False: values only -- the roots of the (once derived, cached) polynomial P_w are found numerically at
    2 dps + 20 digits (``stationary_points_w`` with rho given by its value) and no exact expression is formed.
    """
    phi = _phi_numeric(M)
    with mpmath.workdps(dps + 10):
        y2_val = to_mpf(y2, dps + 10)
        y_val = mpmath.sqrt(y2_val) if y2_val > 0 else mpmath.mpf(0)
        L_val = to_mpf(L_pow, dps + 10) ** (mpmath.mpf(1) / (M + 1))
        N_val = mpmath.mpf(int(N_exact))
        if y2_val == 0:  # the mode carries no label signal: z = 0 is the only candidate
            cands, _, _ = select_global([("z = 0 (no label signal)", (mpmath.mpf(0), mpmath.mpf(0)),
                                          mpmath.mpf(0))], dps)
            return ModeSolution(M, y2, None, mpmath.mpf(0), [], sp.Integer(0), mpmath.mpf(0), sp.Integer(0),
                                mpmath.mpf(0), cands)
        exact_rho = exact and _is_rational(y2)
        rho_exact = sp.Rational(N_exact ** (M + 1) * L_pow, y2 ** M) if exact_rho else None
        rho_value = N_val ** (M + 1) * to_mpf(L_pow, dps + 10) / y2_val ** M
        roots = stationary_points_w(M, rho_exact, rho_value, dps + 10)
        stationary = []
        entries = [("z = 0 (boundary)", (mpmath.mpf(0), mpmath.mpf(0)), phi(mpmath.mpf(0), y_val, N_val, L_val))]
        for i, (r, rv) in enumerate(roots):
            zv = y_val * rv
            d2 = mpmath.diff(lambda q: phi(q, y_val, N_val, L_val), zv, 2)
            kind = "local min" if d2 > 0 else ("local max" if d2 < 0 else "degenerate")
            stationary.append((r, rv, kind))
            entries.append((f"stationary point {i + 1}: w = {mpmath.nstr(rv, 15)} ({kind})", (rv, zv),
                            phi(zv, y_val, N_val, L_val)))
        cands, chosen, tied = select_global(entries, dps)
        notes: list[str] = []
        tie_exact: bool | None = None
        y_exact = sp.sqrt(y2)
        L_exact = L_pow ** sp.Rational(1, M + 1)

        def phi_exact(i: int) -> sp.Expr | None:
            """The exact objective of candidate i (0 = boundary), or None when its root is only numeric."""
            r = sp.Integer(0) if i == 0 else roots[i - 1][0]
            if r is None:
                return None
            return R.mode_objective(M).subs({R.z: y_exact * r, R.y: y_exact, R.N: N_exact, R.L: L_exact})

        if len(tied) > 1:
            # exact confirmation: 2N phi/y^2 at a stationary w is the derived rational function of w
            vals = R.stationary_value_w(M)
            exact_vals = []
            for i in tied:
                if i == 0:
                    exact_vals.append(sp.Integer(1))
                else:
                    r = roots[i - 1][0]
                    exact_vals.append(sp.simplify(vals.subs(R.w, r)) if r is not None and _is_rational(r) else None)
            if all(e is not None for e in exact_vals):
                tie_exact = all(e == exact_vals[0] for e in exact_vals)
            if not tie_exact:
                # a near tie: re-evaluate the tied candidates' exact expressions at more digits
                exprs = {i: phi_exact(i) for i in tied}
                if all(e is not None for e in exprs.values()):
                    for prec in (2 * dps, 4 * dps, 8 * dps):
                        with mpmath.workdps(prec + 10):
                            v = {i: to_mpf(e, prec) for i, e in exprs.items()}
                            best = min(v.values())
                            tol = mpmath.mpf(10) ** (-(prec - 8)) * max(1, abs(best))
                            t2 = [i for i in tied if v[i] - best <= tol]
                        if len(t2) == 1:
                            notes.append(f"{label}: near tie of {[cands[i].label for i in tied]} resolved at {prec} digits")
                            chosen, tied = t2[0], t2
                            cands = [Candidate(c.label, c.point, c.objective, j == chosen) for j, c in enumerate(cands)]
                            break
            if len(tied) > 1:
                notes.append(f"{label}: tie between candidates {[cands[i].label for i in tied]}"
                             + (" (exact)" if tie_exact else " (numerical)"))
        if chosen == 0:
            w_expr: sp.Expr | None = sp.Integer(0)
            w_val = mpmath.mpf(0)
        else:
            w_expr, w_val = roots[chosen - 1]
        phi_expr = None
        if w_expr is not None and exact:
            phi_expr = R.mode_objective(M).subs({R.z: y_exact * w_expr, R.y: y_exact, R.N: N_exact, R.L: L_exact})
        return ModeSolution(M, y2, rho_exact, +rho_value, stationary, w_expr, +w_val, phi_expr,
                            +cands[chosen].objective, cands, tied, tie_exact, notes)


# ---------------------------------------------------------------------------------------------
# CE on the simplex-ETF geometry
@dataclass
class CESolution:
    """Global minimizer of g(a) over a >= 0 (see reduced.ce_etf_reduction).

    ell: L n^{1/(M+1)} (exact expression and value); a, a_value: the selected margin (exact only for
    M = 1); u_value = a^{1/(M+1)}; g_value: g at the minimizer; stationary: (u, a, kind, grid bracket,
    certified tight bracket) for every stationary point a > 0; candidates: the global selection.
    """

    M: int
    K: int
    ell: sp.Expr
    ell_value: mpmath.mpf
    a: sp.Expr | None
    a_value: mpmath.mpf
    u_value: mpmath.mpf
    g_expr: sp.Expr | None
    g_value: mpmath.mpf
    stationary: list[dict]
    candidates: list[Candidate]
    tie: list[int] = field(default_factory=list)
    peak: mpmath.mpf | None = None
    notes: list[str] = field(default_factory=list)


@lru_cache(maxsize=None)
def _ce_numeric(M: int, Kc: int) -> tuple[Callable, Callable, Callable]:
    """(g(u, L, n), log h(u), d log h / du) from the derived CE reduction, with K fixed, via mpmath."""
    red = R.ce_etf_reduction(M)
    g_u = red.g_u.subs(R.K, Kc)
    logh = sp.expand_log(sp.log(red.h_u.subs(R.K, Kc)), force=True)
    dlogh = sp.diff(logh, R.u)
    g_f = sp.lambdify((R.u, R.L, R.n), g_u, modules="mpmath")
    return g_f, sp.lambdify(R.u, logh, modules="mpmath"), sp.lambdify(R.u, dlogh, modules="mpmath")


def ce_peak(M: int, Kc: int, dps: int) -> mpmath.mpf:
    """The unique maximizer u_p of h(u) (M >= 2): d log h/du = (M-1)/u - (M+1) u^M e^a/(e^a + K - 1)
    is strictly decreasing on (0, inf), so log h is strictly concave and h = ell has at most two roots,
    one on each side of u_p. For M = 1, h is decreasing and u_p = 0."""
    if M == 1:
        return mpmath.mpf(0)
    _, _, dlogh = _ce_numeric(M, Kc)
    with mpmath.workdps(dps + 10):
        lo, hi = mpmath.mpf("1e-6"), mpmath.mpf(1)
        while dlogh(lo) <= 0:
            lo /= 10
        while dlogh(hi) >= 0:
            hi *= 2
        return +mpmath.findroot(dlogh, (lo, hi), solver="anderson")


def ce_upper_bound(M: int, ell_value: mpmath.mpf, peak: mpmath.mpf) -> mpmath.mpf:
    """U beyond which h(u) < ell: h(u) <= u^{M-1} e^{-u^{M+1}}, decreasing once u^{M+1} > (M-1)/(M+1)."""
    U = max(mpmath.mpf(1), 2 * peak)
    bound = lambda x: x ** (M - 1) * mpmath.exp(-x ** (M + 1))
    while bound(U) >= ell_value / 2:
        U *= 2
    return U


def ce_stationary_points(M: int, Kc: int, ell_value: mpmath.mpf, dps: int, grid: int = 400) -> tuple[list[dict], mpmath.mpf]:
    """Every stationary point u > 0 of g (roots of log h(u) = log ell): dense grid on (0, U] plus the
    peak u_p (so each grid cell lies in a monotone piece of h), sign changes, then mpmath.findroot in
    each bracket; each root is certified by a sign change on [r - delta, r + delta], delta = 10^{-dps} r."""
    g_f, logh, _ = _ce_numeric(M, Kc)
    out: list[dict] = []
    with mpmath.workdps(dps + 15):
        peak = ce_peak(M, Kc, dps + 15)
        U = ce_upper_bound(M, ell_value, peak)
        le = mpmath.log(ell_value)
        D = lambda q: logh(q) - le
        pts = sorted(set([U * mpmath.mpf(i) / grid for i in range(1, grid + 1)] + ([peak] if peak > 0 else [])))
        vals = [D(p) for p in pts]
        for i in range(len(pts)):
            if vals[i] == 0:
                out.append(_ce_root(pts[i], (pts[i], pts[i]), D, dps))
            elif i + 1 < len(pts) and vals[i] * vals[i + 1] < 0:
                r = mpmath.findroot(D, (pts[i], pts[i + 1]), solver="anderson")
                if not (pts[i] <= r <= pts[i + 1]):
                    r = mpmath.findroot(D, (pts[i], pts[i + 1]), solver="bisect")
                out.append(_ce_root(r, (pts[i], pts[i + 1]), D, dps))
        # the interval (0, u_1] left of the first grid point (u_1 <= u_peak, so D is monotone there):
        # M = 1: D(0+) = log(1/K) - log ell; M >= 2: D(0+) = -inf (h ~ u^{M-1}/K)
        eps = pts[0]
        if M == 1 and vals[0] < 0 and D(mpmath.mpf(10) ** (-dps)) > 0:
            eps = mpmath.mpf(10) ** (-dps)
        elif M >= 2 and vals[0] > 0:
            eps = pts[0] / 10
            while D(eps) > 0:
                eps /= 10
        if eps < pts[0]:
            r = mpmath.findroot(D, (eps, pts[0]), solver="anderson")
            if not (eps <= r <= pts[0]):
                r = mpmath.findroot(D, (eps, pts[0]), solver="bisect")
            out.insert(0, _ce_root(r, (eps, pts[0]), D, dps))
    return out, peak


def _ce_root(r: mpmath.mpf, bracket: tuple[mpmath.mpf, mpmath.mpf], D: Callable, dps: int) -> dict:
    delta = abs(r) * mpmath.mpf(10) ** (-dps)
    lo, hi = r - delta, r + delta
    certified = D(lo) * D(hi) <= 0
    return {"u": +r, "grid_bracket": (+bracket[0], +bracket[1]),
            "tight_bracket": (+lo, +hi), "certified": bool(certified), "residual": +D(r)}


def solve_ce(M: int, Kc: int, n_exact: sp.Integer, L_pow: sp.Rational, dps: int = 40) -> CESolution:
    """Global minimizer of g over a >= 0 for K = ``Kc`` classes of n = ``n_exact`` samples;
    L_pow = L^{M+1} = lambda_H prod_j lambda_{W_j}. Candidates: a = 0 and every stationary a > 0."""
    g_f, _, _ = _ce_numeric(M, Kc)
    ell_exact = (n_exact * L_pow) ** sp.Rational(1, M + 1)
    with mpmath.workdps(dps + 15):
        ell_value = to_mpf(ell_exact, dps + 15)
        L_val = to_mpf(L_pow, dps + 15) ** (mpmath.mpf(1) / (M + 1))
        n_val = mpmath.mpf(int(n_exact))
        roots, peak = ce_stationary_points(M, Kc, ell_value, dps)
        entries = [("a = 0 (boundary: W = H = 0)", (mpmath.mpf(0), mpmath.mpf(0)), g_f(mpmath.mpf(0), L_val, n_val))]
        stationary = []
        for i, st in enumerate(roots):
            uu = st["u"]
            st["a"] = uu ** (M + 1)
            d2 = mpmath.diff(lambda q: g_f(q, L_val, n_val), uu, 2)
            st["kind"] = "local min" if d2 > 0 else ("local max" if d2 < 0 else "degenerate")
            stationary.append(st)
            entries.append((f"stationary point {i + 1}: a = {mpmath.nstr(st['a'], 15)} ({st['kind']})",
                            (st["a"], uu), g_f(uu, L_val, n_val)))
        cands, chosen, tied = select_global(entries, dps)
        notes = []
        if len(tied) > 1:
            notes.append(f"tie (numerical) between {[cands[i].label for i in tied]}")
        a_val = cands[chosen].point[0]
        u_val = cands[chosen].point[1]
        a_expr = None
        g_expr = None
        red = R.ce_etf_reduction(M)
        if chosen == 0:
            a_expr = sp.Integer(0)
        elif M == 1:
            cf = R.ce_closed_form_M1()["a"].subs({R.K: Kc, R.ell: ell_exact})
            a_cf = to_mpf(cf, dps + 10)
            if abs(a_cf - a_val) > mpmath.mpf(10) ** (-(dps - 5)) * max(1, abs(a_val)):
                raise RuntimeError(f"CE M = 1: closed form a = {a_cf} disagrees with the root {a_val}")
            a_expr = cf
        if a_expr is not None:
            g_expr = red.g.subs({R.K: Kc, R.a: a_expr, R.n: n_exact, R.L: L_pow ** sp.Rational(1, M + 1)})
        return CESolution(M, Kc, ell_exact, +ell_value, a_expr, +a_val, +u_val, g_expr, +cands[chosen].objective,
                          stationary, cands, tied, peak, notes)
