"""``derive(family_or_theorem_id, inst, dps)``: the theory engine's own global minimizer of an objective.

Families (see ../shared/THEOREMS.md for notation and normalizations):

* ``mse-deep``: deep linear, bias-free MSE, any depth M >= 1, any counts (imbalanced), per-layer lambdas,
  any width d (with d < K only the d modes of largest gain can be nonzero).
* ``mse-deep-bias``: the same with an unregularized last-layer bias (lambda_b = 0). Balanced: exact.
  Imbalanced: the modes are the eigenvalues of diag(n) - n n^T/N (exact CRootOf); the roots of the
  stationary polynomial then have algebraic coefficients and are computed numerically (mpmath).
* ``ce-deep-etf``: deep linear CE restricted to the simplex-ETF logit geometry, balanced.
* ``extended-linear``: the extended UFM W_M ... W_2 s(W_1 H_1) with s = identity: literally the deep
  linear (M+1)-factor objective (checked symbolically), so the mse-deep machinery applies.
* loss variants (``theory.variants``): ``mse-bias-regularized`` (MSE with lambda_b > 0) and every
  registered ETF-margin family (a per-sample loss given as a SymPy expression, on the simplex-ETF geometry).

Theorem ids map to families (``THEOREM_FAMILIES``). The result is always derived from the objective;
a theorem's claimed formulas are never used here.
Instances are read by duck typing (attributes counts, width, depth, lam_w, lam_h, loss, bias, lam_b,
activation); nothing from ``numerics`` is imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import mpmath
import sympy as sp

from . import reduced as R
from . import variants as V
from .phase import ce_phase_boundaries, mse_phase_boundaries, mse_thresholds
from .etf import etf_minimizer
from .prediction import Candidate, Exact, Prediction
from .solve import ModeSolution, solve_ce, solve_mse_mode, to_mpf

FAMILIES = ("mse-deep", "mse-deep-bias", "ce-deep-etf", "extended-linear")
THEOREM_FAMILIES = {
    "dang2023.mse-deep": "mse-deep",
    "dang2023.mse-deep-bias": "mse-deep-bias",
    "dang2023.ce-deep": "ce-deep-etf",
    "tirer2022.mse-ufm": "mse-deep",
    "tirer2022.mse-ufm-bias": "mse-deep-bias",
    "tirer2022.extended-linear": "extended-linear",
    "tirer2022.extended-relu": "extended-linear",
}
_DEPTH_ONE = {"tirer2022.mse-ufm", "tirer2022.mse-ufm-bias"}

ROTATIONS = ("rotations: W_j -> Q_j W_j Q_{j-1}^T, W_M -> W_M Q_{M-1}^T, H -> Q_0 H with orthogonal Q_j "
             "(only invariants are determined)")


def known_ids() -> list[str]:
    """All accepted ids: the family ids and the theorem ids (including the registered loss variants,
    ``theory.variants``)."""
    return list(FAMILIES) + list(THEOREM_FAMILIES) + V.family_names() + list(V.theorem_families())


def family_of(family_or_theorem_id: str) -> str:
    """The family id for a family or theorem id; ValueError naming the known ids otherwise."""
    if family_or_theorem_id in FAMILIES:
        return family_or_theorem_id
    if family_or_theorem_id in THEOREM_FAMILIES:
        return THEOREM_FAMILIES[family_or_theorem_id]
    variant = V.family_for(family_or_theorem_id)
    if variant is not None:
        return variant
    raise ValueError(f"unknown family or theorem id {family_or_theorem_id!r}; known ids: {', '.join(known_ids())}")


# ---------------------------------------------------------------------------------------------
# reading an instance (duck typing)
@dataclass(frozen=True)
class _Inst:
    counts: tuple[int, ...]
    width: int
    depth: int
    lam_w: tuple[sp.Rational, ...]
    lam_h: sp.Rational
    loss: str
    bias: bool
    lam_b: sp.Rational
    activation: str | None
    raw: dict

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def N(self) -> int:
        return sum(self.counts)

    @property
    def balanced(self) -> bool:
        return len(set(self.counts)) == 1


def read_instance(inst: Any) -> _Inst:
    """Read the attributes of an instance-like object; lambdas become exact rationals
    (their shortest decimal repr, see reduced.exact_number)."""
    try:
        counts = tuple(int(c) for c in inst.counts)
        width = int(inst.width)
        depth = int(getattr(inst, "depth", 1))
        lw = getattr(inst, "lam_w")
        lam_w = tuple(lw) if isinstance(lw, (list, tuple)) else (lw,) * depth
        if len(lam_w) == 1 and depth > 1:
            lam_w = lam_w * depth
        lam_h = inst.lam_h
    except AttributeError as exc:
        raise ValueError(f"not an instance: {exc}") from None
    if len(lam_w) != depth:
        raise ValueError(f"need one lambda_W per layer: depth M = {depth} but {len(lam_w)} values were given")
    if not counts or min(counts) < 1:
        raise ValueError(f"class counts must be >= 1, got {list(counts)}")
    if depth < 1 or width < 1:
        raise ValueError(f"depth M and width d must be >= 1, got M = {depth}, d = {width}")
    lam_w_e = tuple(R.exact_number(x) for x in lam_w)
    lam_h_e = R.exact_number(lam_h)
    if min(lam_w_e) <= 0 or lam_h_e <= 0:
        raise ValueError("all lambda_W and lambda_H must be > 0")
    raw = inst.as_dict() if hasattr(inst, "as_dict") else {
        "counts": list(counts), "width": width, "depth": depth, "lam_w": [float(x) for x in lam_w],
        "lam_h": float(lam_h), "loss": getattr(inst, "loss", "mse"), "bias": bool(getattr(inst, "bias", False)),
        "lam_b": float(getattr(inst, "lam_b", 0.0)), "activation": getattr(inst, "activation", None)}
    return _Inst(counts, width, depth, lam_w_e, lam_h_e, str(getattr(inst, "loss", "mse")),
                 bool(getattr(inst, "bias", False)), R.exact_number(getattr(inst, "lam_b", 0.0) or 0),
                 getattr(inst, "activation", None), raw)


def _sx(expr: sp.Expr, dps: int, note: str = "") -> Exact:
    return Exact(to_mpf(expr, dps), expr, note)


# ---------------------------------------------------------------------------------------------
# public entry point
def derive(family_or_theorem_id: str, inst: Any, dps: int = 40) -> Prediction:
    """The global minimizer of the instance's objective for the given family (or theorem id).

    family_or_theorem_id: a family id (``FAMILIES``) or a theorem id (``THEOREM_FAMILIES``).
    inst: any object with the attributes of numerics.problem.Instance.
    dps: decimal digits of every reported value (>= 30 recommended; candidates compared at this precision).
    Raises ValueError for an unknown id or an instance outside the family's assumptions (the message
    names the condition).
    """
    fam = family_of(family_or_theorem_id)
    if dps < 20:
        raise ValueError(f"dps must be >= 20, got {dps}")
    I = read_instance(inst)
    if family_or_theorem_id in _DEPTH_ONE and I.depth != 1:
        raise ValueError(f"{family_or_theorem_id} is the plain UFM: it needs depth M = 1, got M = {I.depth}")
    # all mpmath arithmetic of the assembly runs at dps + 10 digits (values keep their precision after)
    with mpmath.workdps(dps + 10):
        if fam == "mse-deep":
            pred = _derive_mse(I, fam, centered=False, dps=dps)
        elif fam == "mse-deep-bias":
            pred = _derive_mse(I, fam, centered=True, dps=dps)
        elif fam == "ce-deep-etf":
            pred = _derive_ce(I, dps)
        elif fam in V.family_names():
            pred = V.derive_variant(fam, I, dps)
        else:
            pred = _derive_extended(I, dps)
    pred.requested_id = family_or_theorem_id
    if family_or_theorem_id == "tirer2022.extended-relu" and I.activation != "relu":
        pred.notes.append("tirer2022.extended-relu is about s = ReLU; this instance has activation "
                          f"{I.activation!r}")
    return pred


# ---------------------------------------------------------------------------------------------
# family checks
def _check_mse(I: _Inst, fam: str, centered: bool) -> None:
    if I.loss != "mse":
        raise ValueError(f"{fam} needs loss mse, got {I.loss!r}")
    if fam == "extended-linear":
        if I.depth < 2:
            raise ValueError(f"extended-linear needs depth M >= 2 (W_2 s(W_1 H_1)), got M = {I.depth}")
        if I.bias:
            raise ValueError("extended-linear is bias-free (the extended UFM of [P2] has no bias)")
        return
    if I.activation == "relu":
        raise ValueError(f"{fam} is deep linear: activation relu is not part of it (use extended-linear)")
    if centered:
        if not I.bias:
            raise ValueError("mse-deep-bias needs a last-layer bias (bias = True)")
        if I.lam_b != 0:
            raise ValueError(f"mse-deep-bias needs an unregularized bias (lambda_b = 0), got lambda_b = {float(I.lam_b)}")
    elif I.bias:
        raise ValueError("mse-deep is bias-free: the instance has a bias (use mse-deep-bias)")


# ---------------------------------------------------------------------------------------------
# MSE (deep linear; the extended UFM with identity activation reuses it)
def _gram_kind(vals: Sequence[mpmath.mpf], dps: int) -> str:
    tol = mpmath.mpf(10) ** (-(dps - 10))
    if all(abs(x) <= tol for x in vals):
        return "zero"
    if max(vals) - min(vals) <= tol * max(1, max(abs(x) for x in vals)):
        return "OF"
    return "GOF"


def _derive_mse(I: _Inst, fam: str, centered: bool, dps: int, extended: bool = False) -> Prediction:
    _check_mse(I, fam, centered)
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
            cache[key] = solve_mse_mode(M, N_e, L_pow, y2, dps, labels[i])
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
        if w_expr is not None:
            z_e = y_e * w_expr
            t_e = z_e ** sp.Rational(1, M + 1)
            sub = {R.z: z_e, R.L: L_e, R.lam_H: I.lam_h, **{R.lam_W(j): I.lam_w[j - 1] for j in range(1, M + 1)}}
            s_js = [lv.subs(sub) for lv in fe.layer_values]
            eta_e = fe.feature_value.subs(sub)
            sig_e = sp.Mul(*s_js)
            x_e = (w_expr / (1 - w_expr)) ** sp.Rational(1, M) if w_expr != 0 else sp.Integer(0)
            w_l.append(_sx(w_expr, dps))
            z_l.append(_sx(z_e, dps))
            t_l.append(_sx(t_e, dps))
            x_l.append(_sx(x_e, dps))
            for j in range(M):
                layers[j].append(_sx(s_js[j], dps))
            sig_l.append(_sx(sig_e, dps))
            eta_l.append(_sx(eta_e, dps))
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
        rho_l.append(_sx(s.rho, dps) if s.rho is not None else Exact(s.rho_value, None, "rho with algebraic y^2"))
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
        gram["WWT"] = {"kind": _gram_kind([e.value for e in sig2], dps), "diag": sig2,
                       "description": "W W^T = diag(sigma_k^2) in the class basis"}
        gram["HbarTHbar"] = {"kind": _gram_kind([e.value for e in hb2], dps), "diag": hb2,
                             "description": "Hbar^T Hbar = diag(eta_k^2 / n_k) (uncentered; no bias)"}
        gram["WHbar"] = {"kind": _gram_kind([e.value for e in w_l], dps), "diag": list(w_l),
                         "description": "W hbar_k = w_k e_k (w_k = z_k / sqrt(n_k))"}
        collapsed = [k for k in range(K) if w_l[k].value == 0]
    else:
        # b = (Y - Z) 1 / N and Z 1 = 0 (Z is aligned with the centered labels): b_k = n_k / N
        bias = [_sx(sp.Rational(c, N), dps, "b = (Y - Z) 1_N / N = n_k / N (Z 1 = 0)") for c in I.counts]
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
            gram["WWT"] = {"kind": kind, "scale": scale_w,
                           "diag": [Exact(scale_w.value * (K - 1) / K,
                                          scale_w.expr * P_diag if scale_w.expr is not None else None)] * K,
                           "description": "W W^T = sigma^2 (I - 1 1^T / K)"}
            gram["HbarTHbar"] = {"kind": kind, "scale": scale_h, "centered": True,
                                 "diag": [Exact(scale_h.value * (K - 1) / K,
                                                scale_h.expr * P_diag if scale_h.expr is not None else None)] * K,
                                 "description": "Hbar^T Hbar = (eta^2 / n)(I - 1 1^T / K); global feature mean 0"}
            gram["WHbar"] = {"kind": kind, "scale": w_l[0],
                             "description": "W hbar_k = w (e_k - 1/K 1) (output class means minus the bias)"}
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
        singular_values={"weights_product": sig_l, "layers": layers, "output": z_l, "features": eta_l},
        gram_targets=gram, class_mean_norms=cmn, bias=bias, collapsed_classes=collapsed,
        undetermined=undetermined, phase_boundaries=boundaries, candidates=cands,
        reduced_problem=R.mode_objective(M), stationary_equation=sp.Eq(R.stationary_polynomial_w(M), 0),
        notes=notes, dps=dps, derivation=derivation)


def _imbalanced_centered_geometry(I: _Inst, modes: R.LabelModes, eta_l: list[Exact], sig_l: list[Exact], dps: int
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
            "WWT": {"kind": "zero" if all(G_w[k][k] <= tol for k in range(K)) else "general",
                    "diag": [Exact(+G_w[k][k]) for k in range(K)], "matrix": [[+x for x in r] for r in G_w],
                    "description": "W W^T = sum_i sigma_i^2 a_i a_i^T"},
            "HbarTHbar": {"kind": "zero" if all(c.value <= tol for c in cmn) else "general", "centered": True,
                          "diag": [Exact(+G_h[k][k]) for k in range(K)], "matrix": [[+x for x in r] for r in G_h],
                          "description": "Hbar^T Hbar = sum_i eta_i^2 c_i c_i^T"},
        }
    return cmn, gram, collapsed


def _derive_extended(I: _Inst, dps: int) -> Prediction:
    _check_mse(I, "extended-linear", False)
    if not R.extended_linear_as_factor_form():
        raise RuntimeError("the extended UFM with s = identity did not reduce to the deep linear form")
    pred = _derive_mse(I, "extended-linear", centered=False, dps=dps, extended=True)
    pred.family = "extended-linear"
    # class means of H_2 = W_1 H_1: singular values s_{1,k} eta_k, class-mean norms s_{1,k} eta_k / sqrt(n_k)
    h2 = []
    for k in range(I.K):
        s1, eta = pred.singular_values["layers"][0][k], pred.singular_values["features"][k]
        expr = s1.expr * eta.expr / sp.sqrt(I.counts[k]) if s1.expr is not None and eta.expr is not None else None
        h2.append(Exact(s1.value * eta.value / mpmath.sqrt(I.counts[k]), expr, "||hbar2_k|| = s_{1,k} eta_k / sqrt(n_k)"))
    pred.scalars["hbar2_norm"] = h2
    sq = [Exact(e.value ** 2, e.expr ** 2 if e.expr is not None else None) for e in h2]
    pred.gram_targets["H2barTH2bar"] = {"kind": _gram_kind([e.value for e in sq], dps), "diag": sq,
                                        "description": "class means of H_2 = W_1 H_1 (diagonal in the class basis)"}
    pred.notes.insert(0, "extended UFM with s = identity: 1/(2N)||W_M...W_2 W_1 H_1 - Y||^2 + penalties is the deep "
                         f"linear (M+1)-factor objective with M = {I.depth} (checked symbolically entry by entry for "
                         "small matrices); H_1 plays H")
    if I.activation == "relu":
        pred.undetermined.append("s = ReLU: the theory derives only the identity-activation minimum; the claim "
                                 "(tirer2022.extended-relu) asserts the ReLU minimum equals it")
        pred.undetermined.append("the pre-activation geometry W_1 H_1 under ReLU (only s(W_1 H_1) is constrained)")
        pred.notes.append("ReLU: the linear minimum is an upper bound of the ReLU minimum only after a rotation makes "
                          "W_1 H_1 entrywise non-negative (orthogonal class means, d >= #nonzero classes); "
                          "a lower bound is not derived")
    return pred


# ---------------------------------------------------------------------------------------------
# CE on the simplex ETF
def _derive_ce(I: _Inst, dps: int) -> Prediction:
    fam = "ce-deep-etf"
    if I.loss != "ce":
        raise ValueError(f"{fam} needs loss ce, got {I.loss!r}")
    if not I.balanced:
        raise ValueError(f"{fam} needs balanced classes, got counts {list(I.counts)}")
    if I.K < 2:
        raise ValueError(f"{fam} needs K >= 2 classes, got K = {I.K}")
    if I.width < I.K - 1:
        raise ValueError(f"{fam} needs width d >= K - 1 (the simplex ETF spans K - 1 dimensions), got d = {I.width}")
    if I.activation == "relu":
        raise ValueError(f"{fam} is deep linear: activation relu is not part of it")
    M, K, n = I.depth, I.K, I.counts[0]
    n_e = sp.Integer(n)
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    sol = solve_ce(M, K, n_e, L_pow, dps)
    red = R.ce_etf_reduction(M)
    fe = R.eliminate_factorization(M)
    notes = ["reduction: logits a (e_k - 1/K 1) -> CE = log(1 + (K-1) e^{-a}); Z = a (I - 1 1^T/K) Y has K-1 "
             "singular values a sqrt(n) -> factorization cost -> g(a); a = u^(M+1) makes the penalty smooth",
             "the simplex-ETF geometry is an assumption of this family (not derived); numerics check it"]
    notes += sol.notes
    undetermined = [ROTATIONS]
    a_note = ("closed form (M = 1)" if M == 1 else "stationary points bracketed on a dense grid + the peak of h, "
              "refined with mpmath.findroot")
    if sol.a is not None:
        a_ex = _sx(sol.a, dps, a_note)
    else:
        st = [s for s in sol.stationary if abs(s["a"] - sol.a_value) <= mpmath.mpf(10) ** (-(dps - 5)) * max(1, sol.a_value)]
        br = st[0] if st else None
        a_ex = Exact(sol.a_value, None, a_note + (f"; u in grid bracket [{mpmath.nstr(br['grid_bracket'][0], 15)}, "
                                                  f"{mpmath.nstr(br['grid_bracket'][1], 15)}], certified bracket "
                                                  f"[{mpmath.nstr(br['tight_bracket'][0], dps)}, "
                                                  f"{mpmath.nstr(br['tight_bracket'][1], dps)}]" if br else ""))
    geo = etf_minimizer(I, a_ex, L_e, dps)
    zero, z_ex, layers, sig_ex, eta_ex = geo["zero"], geo["z"], geo["layers"], geo["sigma"], geo["eta"]
    cm, p_ex, gram = geo["class_mean_norm"], geo["p_true"], geo["gram"]
    u_ex = Exact(sol.u_value, sol.a ** sp.Rational(1, M + 1) if sol.a is not None else None)
    ell_ex = _sx(sol.ell, dps)
    bias = None
    if I.bias:
        bias = [zero] * K
        notes.append("bias: for the permutation-symmetric logits the CE is convex in b and strictly convex on 1^perp "
                     "(softmax covariance), so b lies along 1, where CE is constant"
                     + ("; lambda_b > 0 then gives b = 0" if I.lam_b > 0 else "; with lambda_b = 0 its size is free"))
        if I.lam_b == 0:
            undetermined.append("bias component along 1 (lambda_b = 0: any b = beta 1 is optimal; reported 0)")
    g_expr = sol.g_expr
    objective = Exact(sol.g_value, g_expr, "g(a*) (CE + factorization cost, with the 1/N normalization)")
    boundaries = ce_phase_boundaries(K, M, n_e, L_pow, I.lam_w, I.lam_h, dps)
    derivation = {"ce": red.ce, "g": red.g, "g_u": red.g_u, "h_u": red.h_u, "factorization_cost": fe.cost,
                  "stationary_u": sp.Eq(R.ell, red.h_u), "ell_value": sol.ell, "peak_u": sol.peak,
                  "brackets": [{k: v for k, v in s.items()} for s in sol.stationary]}
    if M == 1:
        derivation["closed_form"] = R.ce_closed_form_M1()
    return Prediction(
        family=fam, instance=I.raw, objective=objective,
        scalars={"a": [a_ex], "u": [u_ex], "ell": [ell_ex], "p_true": [p_ex], "z": [z_ex]},
        singular_values={"weights_product": [sig_ex] * (K - 1) + [zero], "layers": layers,
                         "output": [z_ex] * (K - 1) + [zero], "features": [eta_ex] * (K - 1) + [zero]},
        gram_targets=gram, class_mean_norms=[cm] * K, bias=bias,
        collapsed_classes=geo["collapsed"], undetermined=undetermined,
        phase_boundaries=boundaries, candidates={"margin": sol.candidates}, reduced_problem=red.g,
        stationary_equation=sp.Eq(R.ell, red.h_u), notes=notes, dps=dps, derivation=derivation)
