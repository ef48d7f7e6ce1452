"""Family ``mse-bias-regularized``: deep linear MSE with a last-layer bias penalized by lambda_b/2 ||b||^2.

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
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory import reduced as R
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.families.mse_deep import ROTATIONS, mse_critical_lam_h, sx as _sx
from ncverify.theory.instance import ExactInstance
from ncverify.theory.phase import mse_thresholds
from ncverify.theory.prediction import Exact, GramTarget, PhaseBoundary, Prediction, SingularValues
from ncverify.theory.solve import _phi_numeric, select_global, solve_mse_mode, stationary_points_w, to_mpf

MSE_BIAS_REG = "mse-bias-regularized"


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


def check_mse_bias_reg(I: ExactInstance) -> None:
    """The family's assumptions (TheoryInputError naming the first one violated)."""
    fam = MSE_BIAS_REG
    if I.loss != "mse":
        raise TheoryInputError(f"{fam} needs loss mse, got {I.loss!r}")
    if I.targets is not None:
        raise TheoryInputError(f"{fam} is about one-hot labels; real-valued targets are family mse-regression")
    if not I.bias or I.lam_b <= 0:
        raise TheoryInputError(f"{fam} needs a last-layer bias with lambda_b > 0 (--bias --lam-b ...), got "
                         f"bias = {I.bias}, lambda_b = {float(I.lam_b)}")
    if not I.balanced:
        raise TheoryInputError(f"{fam} needs balanced classes, got counts {list(I.counts)}")
    if I.activation is not None:
        raise TheoryInputError(f"{fam} is deep linear (no activation), got {I.activation!r}")
    if I.width < I.K:
        raise TheoryInputError(f"{fam} needs width d >= K (K-1 centered modes plus the mean mode), got d = {I.width} < K = {I.K}")


def derive_mse_bias_reg(I: ExactInstance, dps: int) -> Prediction:
    """The global minimizer over the centered modes and the mean mode (see the module docstring)."""
    check_mse_bias_reg(I)
    fam = MSE_BIAS_REG
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
        "WWT": GramTarget(kind_w, [wdiag] * K, matrix=G_w,
                          description="W W^T = sigma_c^2 (I - 11^T/K) + sigma_m^2 11^T/K (simplex ETF iff sigma_m = 0)"),
        "HbarTHbar": GramTarget("zero" if c["w"].value == 0 else "ETF", [hdiag] * K, centered=True,
                                description="centered class means: Gram (eta_c^2 / n)(I - 11^T/K) (the mean mode only "
                                            "shifts every class mean by eta_m v / sqrt(N))"),
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
        singular_values=SingularValues([c["sigma"]] * (K - 1) + [m["sigma"]],
                                       [[c["layers"][j]] * (K - 1) + [m["layers"][j]] for j in range(M)],
                                       [c["z"]] * (K - 1) + [m["z"]], [c["eta"]] * (K - 1) + [m["eta"]]),
        gram_targets=gram, class_mean_norms=cmn, bias=bias,
        collapsed_classes=list(range(K)) if c["w"].value == 0 and mean_zero else [], undetermined=undetermined,
        phase_boundaries=boundaries, candidates=cands, reduced_problem=R.mode_objective(M),
        stationary_equation=sp.Eq(R.stationary_polynomial_w(M), 0), notes=notes, dps=dps, derivation=derivation)


class MseBiasRegularized:
    """The family ``mse-bias-regularized``."""

    name = MSE_BIAS_REG
    description = "deep linear MSE with a regularized last-layer bias (lambda_b > 0), balanced"

    def check(self, I: ExactInstance) -> None:
        check_mse_bias_reg(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_mse_bias_reg(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        """lambda_b* where the mean mode enters (others fixed), and the centered modes' lambda_H thresholds."""
        check_mse_bias_reg(I)
        M, N, n = I.depth, I.N, I.counts[0]
        L_pow = I.lam_h * sp.Mul(*I.lam_w)
        _, lam_star = bias_reg_boundary(M, sp.Integer(N), sp.Integer(n), L_pow)
        return {"lam_b": [] if lam_star is None else [float(sp.N(lam_star, 30))], "lam_h": mse_critical_lam_h(I)}
