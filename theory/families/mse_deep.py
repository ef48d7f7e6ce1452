"""Families ``mse-deep`` (deep linear, bias-free MSE) and ``mse-deep-bias`` (with an unregularized bias).

* ``mse-deep``: any depth M >= 1, any counts (imbalanced), per-layer lambdas, any width d (with d < K
  only the d modes of largest gain can be nonzero).
* ``mse-deep-bias``: the same with an unregularized last-layer bias (lambda_b = 0). Balanced: exact.
  Imbalanced: the modes are the eigenvalues of diag(n) - n n^T/N (exact CRootOf); the roots of the
  stationary polynomial then have algebraic coefficients and are computed numerically (mpmath).

Reduction (``theory.reduced``): factorization elimination -> alignment with the (centered) labels -> the
per-mode scalar problem phi(z) -> its stationary polynomial; global selection among every stationary point
and z = 0 (``theory.solve``); phase boundaries (``theory.phase``).
"""
from __future__ import annotations

from typing import Any, Sequence

import mpmath
import sympy as sp

from ncverify.theory import reduced as R
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.instance import ExactInstance
from ncverify.theory.phase import mse_phase_boundaries, mse_threshold_values, mse_thresholds
from ncverify.theory.prediction import Candidate, Exact, GramTarget, Prediction, SingularValues
from ncverify.theory.solve import ModeSolution, solve_mse_mode, to_mpf

#: the exact modes of mse-deep-bias with imbalanced classes are the real roots of a degree-K polynomial (CRootOf):
#: about 7 s at K = 40 and 65 s at K = 60 on two cores, so larger K is refused with a clear error
MAX_CENTERED_IMBALANCED_K = 48
ROTATIONS = ("rotations: W_j -> Q_j W_j Q_{j-1}^T, W_M -> W_M Q_{M-1}^T, H -> Q_0 H with orthogonal Q_j "
             "(only invariants are determined)")


def sx(expr: sp.Expr, dps: int, note: str = "") -> Exact:
    """An exact expression and its value at ``dps`` digits."""
    return Exact(to_mpf(expr, dps), expr, note)


# ---------------------------------------------------------------------------------------------
# family checks
def check_mse(I: ExactInstance, fam: str, centered: bool) -> None:
    if I.loss != "mse":
        raise TheoryInputError(f"{fam} needs loss mse, got {I.loss!r}")
    if I.targets is not None:
        raise TheoryInputError(f"{fam} is about one-hot labels; real-valued targets are family mse-regression")
    if fam == "extended-linear":
        if I.depth < 2:
            raise TheoryInputError(f"extended-linear needs depth M >= 2 (W_2 s(W_1 H_1)), got M = {I.depth}")
        if I.bias:
            raise TheoryInputError("extended-linear is bias-free (the extended UFM of [P2] has no bias)")
        return
    if I.activation in ("relu", "relu-deep"):
        raise TheoryInputError(f"{fam} is deep linear: activation {I.activation} is not part of it (use extended-linear "
                               "or dufm-dnc)")
    if centered:
        if not I.bias:
            raise TheoryInputError("mse-deep-bias needs a last-layer bias (bias = True)")
        if I.lam_b != 0:
            raise TheoryInputError(f"mse-deep-bias needs an unregularized bias (lambda_b = 0), got lambda_b = {float(I.lam_b)}")
        if len(set(I.counts)) > 1 and I.K > MAX_CENTERED_IMBALANCED_K:
            raise TheoryInputError(
                f"mse-deep-bias with imbalanced classes takes its modes exactly from the degree-K characteristic "
                f"polynomial of diag(n) - n n^T/N: at most K = {MAX_CENTERED_IMBALANCED_K} classes, got K = {I.K}")
    elif I.bias:
        raise TheoryInputError("mse-deep is bias-free: the instance has a bias (use mse-deep-bias)")


# ---------------------------------------------------------------------------------------------
# MSE (deep linear; the extended UFM with identity activation reuses it)
def gram_kind(vals: Sequence[mpmath.mpf], dps: int) -> str:
    tol = mpmath.mpf(10) ** (-(dps - 10))
    if all(abs(x) <= tol for x in vals):
        return "zero"
    if max(vals) - min(vals) <= tol * max(1, max(abs(x) for x in vals)):
        return "OF"
    return "GOF"


def derive_mse(I: ExactInstance, fam: str, centered: bool, dps: int, extended: bool = False,
               exact: bool = True) -> Prediction:
    """The global minimizer (see the module docstring). exact=False: the same reduction and global selection with
    values only (every ``Exact.expr`` None): the stationary polynomial of each depth is derived once in symbols
    and its roots found numerically per instance at high precision -- for searches that compare values at
    ``dps`` digits; ``check``, ``derive`` and the golden files keep the exact forms."""
    check_mse(I, fam, centered)
    M, K, N = I.depth, I.K, I.N
    N_e = sp.Integer(N)
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    fe = R.eliminate_factorization(M)
    modes = R.align_with_labels(I.counts, centered, dps)
    nm = len(modes.strengths)
    labels = [f"class {k + 1}" for k in range(nm)] if not centered else [f"mode {i + 1}" for i in range(nm)]

    # solve every distinct mode strength once
    cache: dict[sp.Expr, ModeSolution] = {}
    sols: list[ModeSolution] = []
    for i, y2 in enumerate(modes.strengths):
        key = y2
        if key not in cache:
            cache[key] = solve_mse_mode(M, N_e, L_pow, y2, dps, labels[i], exact=exact)
        sols.append(cache[key])

    notes: list[str] = []
    undetermined: list[str] = [ROTATIONS]
    with mpmath.workdps(dps + 10):
        # width: rank Z <= d, so at most d modes can be nonzero; keep those of largest gain phi(0) - phi(z*)
        gains = [to_mpf(y2, dps + 10) / (2 * N) - s.phi_value for y2, s in zip(modes.strengths, sols)]
        active = [i for i in range(nm) if sols[i].w_value > 0]
        forced_zero: set[int] = set()
        if len(active) > I.width:
            order = sorted(active, key=lambda i: (-gains[i], i))
            keep = set(order[: I.width])
            forced_zero = set(active) - keep
            cut = gains[order[I.width - 1]]
            tied = [i for i in active if abs(gains[i] - cut) <= mpmath.mpf(10) ** (-(dps - 8))]
            notes.append(f"width d = {I.width} < {len(active)} nonzero modes: rank Z <= d keeps the {I.width} modes "
                         f"of largest gain phi(0) - phi(z*); set to zero: {[labels[i] for i in sorted(forced_zero)]}")
            if len(tied) > 1 and any(i in forced_zero for i in tied):
                undetermined.append(f"which of the tied modes {[labels[i] for i in tied]} are nonzero (equal gains)")

    # per-mode quantities
    w_l, z_l, t_l, rho_l, x_l = [], [], [], [], []
    sig_l, eta_l, layers = [], [], [[] for _ in range(M)]
    phis, phi_vals, cands = [], [], {}
    exact_all = True
    for i, (y2, s) in enumerate(zip(modes.strengths, sols)):
        zero = i in forced_zero
        w_expr = sp.Integer(0) if zero else s.w
        w_val = mpmath.mpf(0) if zero else s.w_value
        phi_val = to_mpf(y2, dps) / (2 * N) if zero else s.phi_value
        y_e = sp.sqrt(y2)
        if w_expr is not None and exact:
            z_e = y_e * w_expr
            t_e = z_e ** sp.Rational(1, M + 1)
            sub = {R.z: z_e, R.L: L_e, R.lam_H: I.lam_h, **{R.lam_W(j): I.lam_w[j - 1] for j in range(1, M + 1)}}
            s_js = [lv.subs(sub) for lv in fe.layer_values]
            eta_e = fe.feature_value.subs(sub)
            sig_e = sp.Mul(*s_js)
            x_e = (w_expr / (1 - w_expr)) ** sp.Rational(1, M) if w_expr != 0 else sp.Integer(0)
            w_l.append(sx(w_expr, dps))
            z_l.append(sx(z_e, dps))
            t_l.append(sx(t_e, dps))
            x_l.append(sx(x_e, dps))
            for j in range(M):
                layers[j].append(sx(s_js[j], dps))
            sig_l.append(sx(sig_e, dps))
            eta_l.append(sx(eta_e, dps))
            phi_e = s.phi_expr if not zero else y2 / (2 * N_e)
            phis.append(phi_e)
        else:  # numeric only (imbalanced centered modes)
            exact_all = False
            with mpmath.workdps(dps + 10):
                y_v = mpmath.sqrt(to_mpf(y2, dps + 10))
                L_v = to_mpf(L_e, dps + 10)
                z_v = y_v * w_val
                t_v = z_v ** (mpmath.mpf(1) / (M + 1))
                note = "numeric: mpmath.polyroots of P_w (rho algebraic)"
                w_l.append(Exact(+w_val, None, note))
                z_l.append(Exact(+z_v, None, note))
                t_l.append(Exact(+t_v, None, note))
                x_l.append(Exact(+(w_val / (1 - w_val)) ** (mpmath.mpf(1) / M), None, note))
                s_vals = [mpmath.sqrt(L_v / to_mpf(I.lam_w[j], dps + 10)) * t_v for j in range(M)]
                for j in range(M):
                    layers[j].append(Exact(+s_vals[j], None, note))
                sig_l.append(Exact(+mpmath.fprod(s_vals), None, note))
                eta_l.append(Exact(+mpmath.sqrt(L_v / to_mpf(I.lam_h, dps + 10)) * t_v, None, note))
            phis.append(None)
        rho_l.append(sx(s.rho, dps) if s.rho is not None else
                     Exact(s.rho_value, None, "rho with algebraic y^2" if exact else "values only"))
        phi_vals.append(phi_val)
        cl = list(s.candidates)
        if zero:
            cl = [Candidate(c.label, c.point, c.objective, c.label.startswith("z = 0")) for c in cl]
            cl[0] = Candidate(cl[0].label + " [forced: width d]", cl[0].point, cl[0].objective, True)
        cands[labels[i]] = cl
        for note in s.notes:
            if note not in notes:
                notes.append(note.replace("mode:", f"{labels[i]}:") if note.startswith("mode:") else note)
        if len(s.tie) > 1:
            undetermined.append(f"{labels[i]}: the global minimum is attained both at z = 0 and at the nonzero "
                                f"stationary point (tie{' , exact' if s.tie_exact else ''}); reported: z = 0")

    with mpmath.workdps(dps + 10):
        f_val = mpmath.fsum(phi_vals)
    f_expr = sp.Add(*phis) if exact_all else None
    objective = Exact(+f_val, f_expr, "sum over modes of phi(z*)")

    # geometry
    sig2 = [Exact(e.value ** 2, e.expr ** 2 if e.expr is not None else None) for e in sig_l]
    gram: dict[str, Any] = {}
    bias = None
    if not centered:
        cmn = []
        for k in range(K):
            e = eta_l[k]
            expr = e.expr / sp.sqrt(I.counts[k]) if e.expr is not None else None
            cmn.append(Exact(e.value / mpmath.sqrt(I.counts[k]), expr, "||hbar_k|| = eta_k / sqrt(n_k)"))
        hb2 = [Exact(c.value ** 2, c.expr ** 2 if c.expr is not None else None) for c in cmn]
        gram["WWT"] = GramTarget(gram_kind([e.value for e in sig2], dps), sig2,
                                 description="W W^T = diag(sigma_k^2) in the class basis")
        gram["HbarTHbar"] = GramTarget(gram_kind([e.value for e in hb2], dps), hb2,
                                       description="Hbar^T Hbar = diag(eta_k^2 / n_k) (uncentered; no bias)")
        gram["WHbar"] = GramTarget(gram_kind([e.value for e in w_l], dps), list(w_l),
                                   description="W hbar_k = w_k e_k (w_k = z_k / sqrt(n_k))")
        collapsed = [k for k in range(K) if w_l[k].value == 0]
    else:
        # b = (Y - Z) 1 / N and Z 1 = 0 (Z is aligned with the centered labels): b_k = n_k / N
        bias = [sx(sp.Rational(c, N), dps, "b = (Y - Z) 1_N / N = n_k / N (Z 1 = 0)") for c in I.counts]
        if I.balanced:
            n = I.counts[0]
            P_diag = sp.Rational(K - 1, K)
            e = eta_l[0]
            cm_expr = e.expr * sp.sqrt(sp.Rational(K - 1, K * n)) if e.expr is not None else None
            with mpmath.workdps(dps + 5):
                cm_val = e.value * mpmath.sqrt(mpmath.mpf(K - 1) / (K * n))
            cmn = [Exact(+cm_val, cm_expr, "||hbar_k|| = eta sqrt((K-1)/(K n))") for _ in range(K)]
            scale_w = sig2[0]
            scale_h = Exact(e.value ** 2 / n, e.expr ** 2 / n if e.expr is not None else None)
            kind = "zero" if w_l[0].value == 0 else "ETF"
            gram["WWT"] = GramTarget(kind, [Exact(scale_w.value * (K - 1) / K,
                                                  scale_w.expr * P_diag if scale_w.expr is not None else None)] * K,
                                     scale=scale_w, description="W W^T = sigma^2 (I - 1 1^T / K)")
            gram["HbarTHbar"] = GramTarget(kind, [Exact(scale_h.value * (K - 1) / K,
                                                        scale_h.expr * P_diag if scale_h.expr is not None else None)] * K,
                                           scale=scale_h, centered=True,
                                           description="Hbar^T Hbar = (eta^2 / n)(I - 1 1^T / K); global feature mean 0")
            gram["WHbar"] = GramTarget(kind, scale=w_l[0],
                                       description="W hbar_k = w (e_k - 1/K 1) (output class means minus the bias)")
            collapsed = list(range(K)) if w_l[0].value == 0 else []
        else:
            cmn, gram, collapsed = _imbalanced_centered_geometry(I, modes, eta_l, sig_l, dps)
            notes.append("imbalanced with a bias: the modes are the eigenvectors a_i of diag(n) - n n^T/N, not "
                         "classes; Gram matrices are not diagonal (eigen-structure given)")

    th = mse_thresholds(M)
    groups: dict[sp.Expr, list[int]] = {}
    for i, y2 in enumerate(modes.strengths):
        groups.setdefault(y2, []).append(i)
    mode_groups = []
    for y2, idx in groups.items():
        classes = tuple(idx) if not centered else ()
        lab = ("classes " + ",".join(str(i + 1) for i in idx)) if not centered else \
            ("modes " + ",".join(str(i + 1) for i in idx))
        mode_groups.append((y2, classes, lab + f" (y^2 = {sp.sstr(y2) if isinstance(y2, sp.Rational) else mpmath.nstr(to_mpf(y2, 20), 15)})"))
    boundaries = mse_phase_boundaries(M, N_e, L_pow, I.lam_w, I.lam_h, mode_groups, dps)

    derivation = {
        "factorization_cost": fe.cost, "L": fe.L_expr, "L_value": L_e,
        "reduced_objective": R.mode_objective(M),
        "label_modes": list(modes.strengths),
        "substitution_t": "t = z^(1/(M+1))", "stationary_t": R.stationary_polynomial_t(M),
        "substitution_w": "w = z / y, rho = (N L)^(M+1) / y^(2M)", "stationary_w": R.stationary_polynomial_w(M),
        "stationary_value_w": R.stationary_value_w(M),
        "rho_global": th.rho_global, "rho_exist": th.rho_exist, "w_global": th.w_global, "w_exist": th.w_exist,
    }
    if M == 1:
        derivation["closed_form"] = R.closed_form_M1()
    if centered:
        derivation["bias_elimination"] = ("b = (Y - Z) 1_N / N; data term ||(Z - Y) C||^2 / (2N), C = I - 1 1^T / N; "
                                          "optimal Z is centered and aligned with Y C (Gram diag(n) - n n^T / N)")
    notes.insert(0, "reduction: factorization elimination -> von Neumann alignment with the "
                 + ("centered labels" if centered else "labels") + " -> per-mode phi(z) -> polynomial P_w(w)")
    notes.append("THEOREMS.md variable x relates by x^M = w / (1 - w) (reported as scalar 'x'); the claim's "
                 "root equation is equivalent to P_w(w) = 0 but its 'largest root' rule is not a global selection")
    scalars = {"w": w_l, "z": z_l, "t": t_l, "rho": rho_l, "x": x_l}
    return Prediction(
        family=fam if not extended else "extended-linear", instance=I.raw, objective=objective, scalars=scalars,
        singular_values=SingularValues(sig_l, layers, z_l, eta_l),
        gram_targets=gram, class_mean_norms=cmn, bias=bias, collapsed_classes=collapsed,
        undetermined=undetermined, phase_boundaries=boundaries, candidates=cands,
        reduced_problem=R.mode_objective(M), stationary_equation=sp.Eq(R.stationary_polynomial_w(M), 0),
        notes=notes, dps=dps, derivation=derivation)


def _imbalanced_centered_geometry(I: ExactInstance, modes: R.LabelModes, eta_l: list[Exact], sig_l: list[Exact], dps: int
                                  ) -> tuple[list[Exact], dict, list[int]]:
    """Class means and Grams for an imbalanced bias instance (numeric, from the eigenvectors a_i).

    Z = sum_i z_i a_i u_i^T, u_i = (Y C)^T a_i / y_i; H = sum_i eta_i v_i u_i^T, so hbar_k = sum_i eta_i v_i c_i[k]
    with c_i[k] = (a_i[k] - <n, a_i>/N) / y_i; W = sum_i sigma_i a_i v_i^T.
    """
    K, N = I.K, I.N
    with mpmath.workdps(dps + 10):
        cs, ws = [], []
        for i, (y2, a_i) in enumerate(zip(modes.strengths, modes.vectors)):
            y2v = to_mpf(y2, dps + 10)
            if y2v <= mpmath.mpf(10) ** (-(dps // 2)):
                cs.append([mpmath.mpf(0)] * K)
                ws.append([mpmath.mpf(0)] * K)
                continue
            na = mpmath.fsum(I.counts[k] * a_i[k] for k in range(K)) / N
            cs.append([(a_i[k] - na) / mpmath.sqrt(y2v) for k in range(K)])
            ws.append(list(a_i))
        G_h = [[mpmath.fsum(eta_l[i].value ** 2 * cs[i][k] * cs[i][l] for i in range(K)) for l in range(K)]
               for k in range(K)]
        G_w = [[mpmath.fsum(sig_l[i].value ** 2 * ws[i][k] * ws[i][l] for i in range(K)) for l in range(K)]
               for k in range(K)]
        cmn = [Exact(+mpmath.sqrt(max(G_h[k][k], 0)), None, "numeric (eigenvectors of diag(n) - n n^T/N)")
               for k in range(K)]
        tol = mpmath.mpf(10) ** (-(dps // 2))
        collapsed = [k for k in range(K) if cmn[k].value <= tol and G_w[k][k] <= tol]
        gram = {
            "WWT": GramTarget("zero" if all(G_w[k][k] <= tol for k in range(K)) else "general",
                              [Exact(+G_w[k][k]) for k in range(K)], matrix=[[+x for x in r] for r in G_w],
                              description="W W^T = sum_i sigma_i^2 a_i a_i^T"),
            "HbarTHbar": GramTarget("zero" if all(c.value <= tol for c in cmn) else "general",
                                    [Exact(+G_h[k][k]) for k in range(K)], matrix=[[+x for x in r] for r in G_h],
                                    centered=True, description="Hbar^T Hbar = sum_i eta_i^2 c_i c_i^T"),
        }
    return cmn, gram, collapsed




class MseDeep:
    """The families ``mse-deep`` (``centered=False``) and ``mse-deep-bias`` (``centered=True``)."""

    def __init__(self, name: str, centered: bool, description: str):
        self.name, self.centered, self.description = name, centered, description

    def check(self, I: ExactInstance) -> None:
        check_mse(I, self.name, self.centered)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_mse(I, self.name, centered=self.centered, dps=dps)

    def derive_values(self, I: ExactInstance, dps: int) -> Prediction:
        """``derive`` with values only (``derive_mse(exact=False)``)."""
        return derive_mse(I, self.name, centered=self.centered, dps=dps, exact=False)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        return {"lam_h": mse_critical_lam_h(I)}


def mse_critical_lam_h(I: ExactInstance) -> list[float]:
    """lambda_H at which some class (mode) of ``I`` crosses a boundary, other parameters fixed.

    A mode with label strength y^2 = n_k has rho = (N L)^{M+1} / n_k^M (``theory.reduced``), L^{M+1} =
    lambda_H prod_j lambda_Wj; the boundaries are rho = rho_global(M) and rho = rho_exist(M)
    (``theory.phase.mse_threshold_values``), so lambda_H* = rho* n_k^M / (N^{M+1} prod_j lambda_Wj). With a bias
    the balanced centered modes have y^2 = n too; imbalanced bias modes use the class counts as a proxy.
    """
    M, N = I.depth, I.N
    prod_w = float(sp.Mul(*I.lam_w))
    out: set[float] = set()
    for n_k in sorted(set(I.counts)):
        for rho in mse_threshold_values(M):  # floats: these values only aim the search
            out.add(rho * float(n_k) ** M / (float(N) ** (M + 1) * prod_w))
    return sorted(out)
