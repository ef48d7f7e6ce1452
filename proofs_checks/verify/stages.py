"""The stages of a check, shared by the one-instance check and the cheap search check (``verify.check``,
``verify.cheap_check``), cheapest first:

1. ``derivation_stage``: the claim against the theory engine's exact derivation (40 digits);
2. ``point_stage``: the point the claim describes, built explicitly (``theory.construct``), evaluated in float64
   (critical? objective = the claimed minimum?);
3. ``numerics_stage``: multi-start float64 minimizers (``numerics.starts``: the start portfolio, batched), compared on the objective and, once
   the claimed minimum is reached, on every claimed quantity (``compare_shapes``).
Quantities the claim leaves undetermined (None in the claim) are not compared. Every tolerance is derived
(``proofs_checks.tolerances``) and printed with its origin.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import mpmath as mp
import numpy as np

from ncverify.numerics import diagnostics, metrics
from ncverify.numerics.problem import Instance
from ncverify.numerics.starts import multistart
from ncverify.proofs_checks import tolerances as tl
from ncverify.proofs_checks.verify import shapes as shape_claims
from ncverify.proofs_checks.verify.evidence import Check, Evidence, Status
from ncverify.theory import construct
from ncverify.theory.derive import derive
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.prediction import GRAM_NAMES, GramTarget, Prediction


# ---------------------------------------------------------------------------------------------
# helpers on predictions
# ---------------------------------------------------------------------------------------------
def _val(x: Any) -> float | None:
    if x is None:
        return None
    v = getattr(x, "value", x)
    return float(v)


def _mpval(x: Any) -> mp.mpf | None:
    if x is None:
        return None
    return mp.mpf(getattr(x, "value", x))


def _vals(xs: Any) -> list[float] | None:
    return None if xs is None else [_val(x) for x in xs]  # type: ignore[misc]


def gram_from_target(target: GramTarget | None, K: int) -> np.ndarray | None:
    """The K x K Gram matrix a target describes: kind OF/GOF -> diag(d); ETF -> (d/(1-1/K)) (I - 11^T/K)
    with d the (common) diagonal entry; zero -> 0. None when the scale (diag) is not stated."""
    if target is None or target.diag is None:
        return None
    kind = target.kind.upper()
    diag = np.array(_vals(target.diag), dtype=float)
    if kind in ("OF", "GOF"):
        return np.diag(diag)
    if kind == "ETF":
        P = np.eye(K) - np.ones((K, K)) / K
        return float(diag.mean()) / (1 - 1 / K) * P if K > 1 else np.zeros((1, 1))
    if kind == "ZERO":
        return np.zeros((K, K))
    return None


def prediction_json(p: Prediction | None) -> dict | None:
    """A compact JSON view of a claim or derivation (values only)."""
    if p is None:
        return None
    sv = p.singular_values
    return {
        "objective": _val(p.objective),
        "singular_values": {"weights_product": _vals(sv.weights_product),
                            "layers": None if sv.layers is None else [_vals(r) for r in sv.layers],
                            "output": _vals(sv.output)},
        "gram_targets": {k: {"kind": v.kind, "diag": _vals(v.diag)} for k, v in p.gram_targets.items()},
        "class_mean_norms": _vals(p.class_mean_norms),
        "bias": _vals(p.bias),
        "collapsed_classes": None if p.collapsed_classes is None else list(p.collapsed_classes),
        "rows_equal": None if p.rows_equal is None else [[list(ks), eq] for ks, eq in p.rows_equal],
        "scalars": {k: _vals(v) for k, v in p.scalars.items()},
    }


def _short_list(xs: list, keep: int = 8) -> str:
    """At most ``keep`` values at 12 digits (a K x K matrix's entries would flood the report)."""
    shown = [mp.nstr(x, 12) for x in xs[:keep]]
    return str(shown) if len(xs) <= keep else str(shown)[:-1] + f", ... ({len(xs)} values)]"


def _rel(a: mp.mpf, b: mp.mpf) -> mp.mpf:
    return abs(a - b) / max(abs(a), abs(b), mp.mpf(10) ** -30)


def compare_rows_equal(claimed: Any, other: Any, check: Check, source: str) -> list[Evidence]:
    """The claim's statements about equal rows of W (``Prediction.rows_equal``) against another source's
    (``source``: "derived", "convex oracle") for the same classes; statements the other source does not make are
    not compared (an info line says so)."""
    if claimed is None or other is None:
        return []
    theirs = {tuple(sorted(ks)): eq for ks, eq in other}
    ev = []
    for ks, eq in claimed:
        name = f"rows of W for classes {list(ks)} {'equal' if eq else 'pairwise distinct'}"
        their = theirs.get(tuple(sorted(ks)))
        if their is None:
            ev.append(Evidence(check, name, Status.INFO, detail=f"the {source} side states nothing about these rows"))
        else:
            ev.append(Evidence(check, name, Status.PASS if their == eq else Status.FAIL,
                               detail=f"claim {'equal' if eq else 'distinct'} vs {source} {'equal' if their else 'distinct'}"))
    return ev


# ---------------------------------------------------------------------------------------------
# 1. claim vs derivation
# ---------------------------------------------------------------------------------------------
def compare_with_derivation(claim: Prediction, deriv: Prediction, dps: int) -> list[Evidence]:
    """Every quantity the claim states, against the exact derivation, at high precision."""
    ev: list[Evidence] = []
    t_obj, t_arg = tl.high_precision(dps, argmin=False), tl.high_precision(dps, argmin=True)
    if claim.objective is not None and deriv.objective is not None:
        e = _rel(_mpval(claim.objective), _mpval(deriv.objective))
        ev.append(Evidence(Check.DERIVATION, "minimal objective f*", Status.PASS if e <= t_obj.value else Status.FAIL,
                           float(e), t_obj.value, t_obj.origin,
                           f"claim {mp.nstr(_mpval(claim.objective), 20)} vs derived {mp.nstr(_mpval(deriv.objective), 20)}"))

    def cmp_lists(name: str, a: Any, b: Any, sort: bool) -> None:
        if a is None or b is None:
            return
        av, bv = [_mpval(x) for x in a], [_mpval(x) for x in b]
        if len(av) != len(bv):
            ev.append(Evidence(Check.DERIVATION, name, Status.FAIL, detail=f"lengths {len(av)} vs {len(bv)}"))
            return
        if sort:
            av, bv = sorted(av, reverse=True), sorted(bv, reverse=True)
        errs = [abs(x - y) / max(abs(x), abs(y), mp.mpf(1e-30)) if max(abs(x), abs(y)) > mp.mpf(10) ** -(dps // 2) else abs(x - y)
                for x, y in zip(av, bv)]
        e = max(errs) if errs else mp.mpf(0)
        ev.append(Evidence(Check.DERIVATION, name, Status.PASS if e <= t_arg.value else Status.FAIL, float(e), t_arg.value,
                           t_arg.origin, f"claim {_short_list(av)} vs derived {_short_list(bv)}"))

    csv, dsv = claim.singular_values, deriv.singular_values
    free = set(claim.free_fields)  # fields that only build the claimed point, not compared
    cmp_lists("singular values of W = W_M...W_1", csv.weights_product, dsv.weights_product,
              sort=not _class_indexed(claim, deriv))
    if csv.layers is not None and dsv.layers is not None and "layers" not in free:
        for j, (a, b) in enumerate(zip(csv.layers, dsv.layers), start=1):
            cmp_lists(f"singular values of W_{j}", a, b, sort=True)
    cmp_lists("singular values of the output", csv.output, dsv.output, sort=True)
    if "class_mean_norms" not in free:
        cmp_lists("class-mean norms ||hbar_k||", claim.class_mean_norms, deriv.class_mean_norms, sort=False)
    cmp_lists("bias b", claim.bias, deriv.bias, sort=False)
    if claim.collapsed_classes is not None and deriv.collapsed_classes is not None:
        same = sorted(claim.collapsed_classes) == sorted(deriv.collapsed_classes)
        ev.append(Evidence(Check.DERIVATION, "collapsed classes", Status.PASS if same else Status.FAIL,
                           detail=f"claim {sorted(claim.collapsed_classes)} vs derived {sorted(deriv.collapsed_classes)}"))
    ev.extend(compare_rows_equal(claim.rows_equal, deriv.rows_equal, Check.DERIVATION, "derived"))
    for key in ("WWT", "HbarTHbar", "WHbar"):
        ct, dt = claim.gram_targets.get(key), deriv.gram_targets.get(key)
        if ct is None or dt is None:
            continue
        ck, dk = ct.kind.upper(), dt.kind.upper()
        zero_d = dk == "ZERO" or (dt.diag is not None and all(_val(v) == 0 for v in dt.diag))
        zero_c = ck == "ZERO" or (ct.diag is not None and all(_val(v) == 0 for v in ct.diag))
        # a claim of shape only ("proportional to ...", no diag) holds with factor 0 at a collapsed minimizer
        scale_free = ct.diag is None and zero_d
        same_kind = (ck == dk or (zero_c and zero_d) or scale_free
                     or ({ck, dk} == {"OF", "GOF"} and _is_scalar_diag(dt)))
        ev.append(Evidence(Check.DERIVATION, f"geometry of {_gram_name(key)}", Status.PASS if same_kind else Status.FAIL,
                           detail=f"claim {ck} vs derived {dk}"))
        if ct.diag is not None and dt.diag is not None:
            cmp_lists(f"diagonal of {_gram_name(key)}", ct.diag, dt.diag, sort=False)
        if ct.matrix is not None and dt.matrix is not None and not (ct.relabel or dt.relabel):
            cmp_lists(f"entries of {_gram_name(key)}", [x for r in ct.matrix for x in r], [x for r in dt.matrix for x in r],
                      sort=False)
    return ev


#: the largest K for which ``relabelled_distance`` searches every permutation (8! = 40320)
RELABEL_EXHAUSTIVE = 8


def relabelled_distance(Gn: np.ndarray, Gc: np.ndarray) -> tuple[float, str]:
    """(distance, how): min over class permutations P of ||P Gn P^T - Gc||_F, by exhaustive search for
    K <= RELABEL_EXHAUSTIVE; above, a lower bound on it (the larger of the distances between the sorted
    eigenvalues of the symmetric parts and between the sorted diagonals), said in ``how``."""
    K = Gc.shape[0]
    if K <= RELABEL_EXHAUSTIVE:
        best = math.inf
        perms = np.array(list(itertools.permutations(range(K))), dtype=np.intp)
        for chunk in np.array_split(perms, max(1, len(perms) // 5000)):
            Gp = Gn[chunk[:, :, None], chunk[:, None, :]]
            best = min(best, float(np.sqrt(((Gp - Gc) ** 2).sum(axis=(1, 2))).min()))
        return best, "up to a relabelling of the classes"
    sym = lambda A: (A + A.T) / 2  # noqa: E731
    d_eig = float(np.linalg.norm(np.linalg.eigvalsh(sym(Gn)) - np.linalg.eigvalsh(sym(Gc))))
    d_diag = float(np.linalg.norm(np.sort(np.diag(Gn)) - np.sort(np.diag(Gc))))
    return max(d_eig, d_diag), "(spectrum and sorted diagonal: K > 8, not every relabelling searched)"


def _is_scalar_diag(t: GramTarget) -> bool:
    d = _vals(t.diag)
    return bool(d) and max(d) - min(d) <= 1e-12 * max(1.0, max(abs(x) for x in d))


def _class_indexed(a: Prediction, b: Prediction) -> bool:
    return a.family == b.family == "mse-deep"


def _gram_name(key: str) -> str:
    return GRAM_NAMES.get(key, key)


# ---------------------------------------------------------------------------------------------
# numeric helpers
# ---------------------------------------------------------------------------------------------
def _grams(inst: Instance, p: dict) -> dict:
    """W = W_M...W_1, W W^T, class means (centered with a bias), their Gram, and (extended model)
    the features entering W_2."""
    Ws, H = p["weights"], p["H"]
    W = metrics.product(Ws)
    Hbar = metrics.class_means(H, inst.counts)
    Hc = Hbar - Hbar.mean(axis=1, keepdims=True) if inst.bias else Hbar
    out = {"W": W, "WWT": W @ W.T, "Hbar": Hbar, "HbarTHbar": Hc.T @ Hc, "WHbar": W @ Hbar}
    if inst.activation is not None:
        pre = Ws[0] @ H
        post = np.maximum(pre, 0.0) if inst.activation == "relu" else pre
        H2bar = metrics.class_means(post, inst.counts)
        out["H2"] = post
        out["H2barTH2bar"] = H2bar.T @ H2bar
    return out


def construct_claimed_point(claim: Prediction, inst: Instance) -> tuple[dict | None, str]:
    """The explicit float64 point {"weights", "H", "b"} the claim describes (aligned, balanced factors;
    class means from the claim, or from balancedness when the claim states no norms), or (None, why)
    when the claim leaves the scales free or the construction does not cover the case."""
    why = ""
    for features in ("prediction", "balanced"):
        try:
            m = construct.construct_numpy(claim, inst, features=features)
        except construct.NotConstructible as exc:  # anything else is a bug and propagates
            why = why or str(exc)
            continue
        b = m.get("b")
        return {"weights": list(m["W"]), "H": m["H"], "b": None if b is None else np.asarray(b).reshape(-1)}, ""
    return None, why


def point_evidence(inst: Instance, point: dict, claimed_f: float | None) -> tuple[list[Evidence], float]:
    """Is the constructed claimed point critical, with objective = the claimed minimum?  Returns the
    evidence and the claimed minimum (the objective at the point when the claim states none)."""
    ev: list[Evidence] = []
    at = diagnostics.evaluate_point(inst, point)
    eval_tol = tl.evaluation(at["scale"], at["P"])
    if claimed_f is not None:
        err = abs(at["objective"] - claimed_f)
        ev.append(Evidence(Check.POINT, "objective at the constructed point = claimed f*",
                           Status.PASS if err <= eval_tol.value else Status.FAIL, err, eval_tol.value, eval_tol.origin))
    else:
        claimed_f = at["objective"]
        ev.append(Evidence(Check.POINT, "implied claimed minimum (objective at the constructed point)", Status.INFO,
                           detail=f"{claimed_f:.15g}"))
    hn = at["hessian"].get("norm", 0.0) if at["hessian"].get("available") else 0.0
    gtol = tl.gradient_at_point(hn, at["theta_norm"], at["grad_scale"], at["P"])
    ev.append(Evidence(Check.POINT, "gradient norm at the constructed point (critical point?)",
                       Status.PASS if at["grad_norm"] <= gtol.value else Status.FAIL, at["grad_norm"], gtol.value, gtol.origin))
    return ev, claimed_f


def _compare_shapes(theorem, claim: Prediction, inst: Instance, p: dict, eval_tol: tl.Tol, g: float, mu: float) -> list[Evidence]:
    """Claimed quantities against the numeric best point (which matched the claimed minimum)."""
    ev: list[Evidence] = []
    dth = tl.argmin_distance(eval_tol, g, mu)
    if not math.isfinite(dth.value):
        return [Evidence(Check.NUMERICS, "claimed quantities", Status.UNSETTLED, detail=dth.origin)]
    G = _grams(inst, p)
    norms = [float(np.linalg.norm(w, 2)) for w in p["weights"]]
    dW = tl.product_perturbation(norms, dth.value)
    Wn = float(np.linalg.norm(G["W"], 2))
    min_n = min(inst.counts)
    dh = dth.value / math.sqrt(min_n)
    hn = float(np.max(np.linalg.norm(G["Hbar"], axis=0))) if G["Hbar"].size else 0.0
    tol_W = tl.Tol(2 * Wn * dW + dW * dW, f"||Delta(WW^T)||_F <= 2||W|| dW + dW^2, dW = {dW:.2g} from {dth.origin}")
    tol_H = tl.Tol(math.sqrt(inst.K) * (2 * hn * dh + dh * dh) * (2 if inst.bias else 1),
                   f"||Delta(Hbar^T Hbar)||_F <= sqrt(K)(2 max||hbar|| dh + dh^2), dh = dtheta/sqrt(min n_k) = {dh:.2g}")
    tol_Z = tl.Tol(math.sqrt(inst.K) * (dW * hn + Wn * dh + dW * dh),
                   "||Delta(W Hbar)||_F <= ||Delta W|| ||Hbar||_F + ||W|| ||Delta Hbar||_F + ||Delta W|| ||Delta Hbar||_F, "
                   f"||Hbar||_F <= sqrt(K) max||hbar||, dW = {dW:.2g}, dh = {dh:.2g}")
    for key, tol in (("WWT", tol_W), ("HbarTHbar", tol_H), ("WHbar", tol_Z)):
        target = claim.gram_targets.get(key)
        if target is None:
            continue
        Gn = G[key]
        if target.relabel and target.matrix is not None:
            err, how = relabelled_distance(Gn, np.array([[float(x) for x in r] for r in target.matrix]))
            ev.append(Evidence(Check.NUMERICS, f"{_gram_name(key)} = claimed matrix {how}",
                               Status.PASS if err <= tol.value else Status.FAIL, err, tol.value, tol.origin))
            continue
        if key == "WHbar":
            continue
        if target.matrix is not None and target.kind.upper() == "GENERAL":  # a stated matrix, in the class basis
            Gm = np.array([[float(x) for x in r] for r in target.matrix])
            err = float(np.linalg.norm(Gn - Gm))
            ev.append(Evidence(Check.NUMERICS, f"{_gram_name(key)} = claimed matrix",
                               Status.PASS if err <= tol.value else Status.FAIL, err, tol.value, tol.origin))
            continue
        Gc = gram_from_target(target, inst.K)
        if Gc is not None:
            err = float(np.linalg.norm(Gn - Gc))
            ev.append(Evidence(Check.NUMERICS, f"{_gram_name(key)} = claimed Gram ({target.kind})",
                               Status.PASS if err <= tol.value else Status.FAIL, err, tol.value, tol.origin))
        elif target.kind:
            nG = float(np.linalg.norm(Gn))
            if nG <= tol.value:
                ev.append(Evidence(Check.NUMERICS, f"{_gram_name(key)} geometry", Status.INFO, detail="zero at the numeric point"))
                continue
            err = metrics.nc2(Gn, target.kind.upper()) if target.kind.upper() in ("OF", "ETF") else metrics.nc2_diagonal(Gn)
            t = 2 * tol.value / nG
            ev.append(Evidence(Check.NUMERICS, f"{_gram_name(key)} shape = {target.kind} (nc2)",
                               Status.PASS if err <= t else Status.FAIL, err, t, "2 ||Delta G|| / ||G|| with " + tol.origin))
    sv = claim.singular_values
    free = set(claim.free_fields)  # fields that only build the claimed point, not compared
    if sv.layers is not None and "layers" not in free:
        for j, (row, Wj) in enumerate(zip(sv.layers, p["weights"]), start=1):
            c = sorted(_vals(row), reverse=True)
            s = metrics.singular_values(Wj)[:len(c)]
            s = list(s) + [0.0] * (len(c) - len(s))
            err = max(abs(a - b) for a, b in zip(c, s))
            ev.append(Evidence(Check.NUMERICS, f"singular values of W_{j}", Status.PASS if err <= dth.value else Status.FAIL, err,
                               dth.value, "Weyl: |Delta sigma| <= ||Delta W_j||_2 <= " + dth.origin))
    if sv.weights_product is not None:
        c = sorted(_vals(sv.weights_product), reverse=True)
        s = list(metrics.singular_values(G["W"])[:len(c)])
        s += [0.0] * (len(c) - len(s))
        err = max(abs(a - b) for a, b in zip(c, s))
        ev.append(Evidence(Check.NUMERICS, "singular values of W = W_M...W_1", Status.PASS if err <= dW else Status.FAIL, err, dW,
                           "Weyl with the first-order product bound"))
    if claim.bias is not None and p["b"] is not None:
        err = float(np.max(np.abs(np.array(_vals(claim.bias)) - p["b"])))
        ev.append(Evidence(Check.NUMERICS, "bias b", Status.PASS if err <= dth.value else Status.FAIL, err, dth.value, dth.origin))
    if claim.collapsed_classes is not None:
        # a row above dW is certainly nonzero; a row within dW may be zero or merely small: a claimed-nonzero row
        # there cannot be told apart (unsettled), a claimed-zero row above dW refutes
        norms_k = np.linalg.norm(G["W"], axis=1)
        zero = [k for k in range(inst.K) if norms_k[k] <= dW]
        relabel = any(t.relabel for t in claim.gram_targets.values())  # interchangeable classes: compare counts
        claimed = sorted(claim.collapsed_classes)
        if relabel:
            wrong, unclear = len(zero) < len(claimed), len(zero) > len(claimed)
        else:
            wrong, unclear = any(k not in zero for k in claimed), any(k not in claimed for k in zero)
        status = Status.FAIL if wrong else (Status.UNSETTLED if unclear else Status.PASS)
        ev.append(Evidence(Check.NUMERICS, "collapsed classes (rows of W that vanish)", status,
                           detail=f"claimed {claimed}, numeric {zero} (zero: ||w_k|| <= {dW:.2g})"
                                  + ("; a claimed-nonzero row within the argmin uncertainty cannot be told from zero"
                                     if status is Status.UNSETTLED else "")))
    ev.extend(numeric_rows_equal(claim.rows_equal, G["W"], dW))
    return ev


def numeric_rows_equal(rows_equal: Any, W: np.ndarray, dW: float) -> list[Evidence]:
    """The claim's equal / distinct rows of W (``Prediction.rows_equal``) at a numeric minimizer whose W is
    within dW of a true minimizer's (spectral norm, so every row too): rows claimed equal that are more than 2 dW
    apart refute the claim; rows claimed distinct that are within 2 dW cannot be told from equal (unsettled: the
    derivation and the oracle's tied program decide those)."""
    ev = []
    tol = 2 * dW
    origin = f"each row of W moves by <= dW = {dW:.2g} (argmin distance), so equal rows stay within 2 dW"
    for ks, eq in rows_equal or ():
        dists = [float(np.linalg.norm(W[k] - W[l])) for k, l in itertools.combinations(ks, 2)]
        if not dists:
            continue
        name = f"rows of W for classes {list(ks)} {'equal' if eq else 'pairwise distinct'}"
        if eq:
            e = max(dists)
            ev.append(Evidence(Check.NUMERICS, name, Status.PASS if e <= tol else Status.FAIL, e, tol, origin,
                               "largest distance between two of these rows"))
        else:
            e = min(dists)  # not an error: it must EXCEED the tolerance, so it is reported in the detail only
            ev.append(Evidence(Check.NUMERICS, name, Status.PASS if e > tol else Status.UNSETTLED,
                               detail=f"smallest distance between two of these rows {e:.3g}, must exceed {tol:.3g} "
                                      f"({origin})"))
    return ev



# ---------------------------------------------------------------------------------------------
# the stages
def _shapes_at_minimizers(theorem: Any, inst: Instance, res: Any, claimed_f: float, eval_tol: tl.Tol, mu: float
                          ) -> list[Evidence]:
    """The theorem's shape claims at every converged end point that reaches the claimed minimum (best first):
    claims about a quantity the minimum does not determine are refuted by two such minimizers that disagree."""
    names = getattr(theorem, "shape_claims", ())
    if not names:
        return []
    pts = []
    for r in [res.best] + [r for r in res.runs if r is not res.best and r.stop_reason == "converged"]:
        if abs(r.objective - claimed_f) > tl.objective_match(eval_tol, r.grad_norm, mu).value:
            continue
        dth = tl.argmin_distance(eval_tol, r.grad_norm, mu)
        if not math.isfinite(dth.value):
            return [Evidence(Check.NUMERICS, "shape claims", Status.UNSETTLED, detail=dth.origin)]
        pts.append((f"start {r.start} ({r.init or 'start'})", r.params.to_numpy(), dth.value))
    return shape_claims.at_minimizers(names, inst, pts) if pts else []


def derivation_stage(family: str, claim: Prediction, inst: Instance, dps: int = 40, exact: bool = True
                     ) -> tuple[Prediction | None, list[Evidence]]:
    """Stage 1: the exact derivation of ``family`` at ``inst`` and the claim against it (exact=False: the
    derivation's values only, ``theory.derive``). A family whose assumptions exclude the instance gives no
    derivation (an info line, the numerics still run)."""
    try:
        deriv = derive(family, inst, dps=dps, exact=exact)
    except TheoryInputError as exc:
        return None, [Evidence(Check.DERIVATION, "derivation", Status.INFO, detail=f"no exact derivation: {exc}")]
    return deriv, compare_with_derivation(claim, deriv, dps)


def point_stage(claim: Prediction, inst: Instance, deriv: Prediction | None
                ) -> tuple[float | None, list[Evidence]]:
    """Stage 2: the claimed point built explicitly and evaluated; returns the claimed minimum (the claim's,
    else the objective at the constructed point, else the derived minimum) and the evidence."""
    ev: list[Evidence] = []
    claimed_f = _val(claim.objective)
    point, why = construct_claimed_point(claim, inst)
    if point is not None:
        pev, claimed_f = point_evidence(inst, point, claimed_f)
        ev.extend(pev)
    else:
        ev.append(Evidence(Check.POINT, "construction", Status.INFO,
                           detail=f"no explicit point to evaluate (the claim leaves scales free, or: {why})"))
    if claimed_f is None and deriv is not None and deriv.objective is not None:
        claimed_f = _val(deriv.objective)
        ev.append(Evidence(Check.POINT, "reference minimum", Status.INFO,
                           detail="the claim states no value: the derived minimum is the reference"))
    return claimed_f, ev


def numerics_stage(theorem: Any, claim: Prediction, inst: Instance, deriv: Prediction | None, claimed_f: float | None,
                   *, solver: str, starts: int, seed: int, device: str = "auto", max_iter: int | None = None,
                   result: Any = None, ref_radius: float = 0.0) -> tuple[list[Evidence], dict, Any]:
    """Stage 3: multi-start float64 minimizers (the start portfolio, batched; ``result`` = an already computed
    ``MultiStartResult`` of these starts, e.g. from one batched solve of many instances); ``ref_radius``: the
    certified uncertainty of ``claimed_f`` when it is the convex oracle's value (0 for a stated f*); a point below the
    claimed minimum refutes, a best point at the claimed minimum (MATCH) is compared on every claimed quantity.
    Returns (evidence, numerics summary, best run)."""
    ev: list[Evidence] = []
    res = result if result is not None else multistart(inst, solver=solver, starts=starts, seed=seed, device=device,
                                                       max_iter=max_iter)
    best = res.best
    num = {"solver": solver, "starts": starts, "seed": seed, "init_kinds": [r.init for r in res.runs],
           "runs": [r.summary() for r in res.runs],
           "best_objective": best.objective, "best_stop_reason": best.stop_reason, "best_grad_norm": best.grad_norm}
    p = best.params.to_numpy()
    eval_tol = tl.evaluation(diagnostics.objective_scale(inst, best.params), diagnostics.parameter_count(p))
    if best.stop_reason == "diverged" or not math.isfinite(best.objective):
        ev.append(Evidence(Check.NUMERICS, "solver runs", Status.UNSETTLED,
                          detail="every run diverged (non-finite objective or gradient)"))
        return ev, num, best
    hess = diagnostics.hessian_info(inst, best.params.flatten())
    mu = hess.get("mu", 0.0) if hess.get("available") else 0.0
    num["hessian"] = hess
    if not hess.get("available"):
        ev.append(Evidence(Check.NUMERICS, "conditioning", Status.UNSETTLED,
                           detail=f"{hess.get('reason', 'no Hessian')}: no curvature, so no derived match tolerance"))
    if claimed_f is not None:
        below = claimed_f - best.objective
        lim = 2 * eval_tol.value + ref_radius
        ev.append(Evidence(Check.NUMERICS, "numeric objective vs claimed minimum (a lower point refutes)",
                           Status.FAIL if below > lim else Status.PASS, max(below, 0.0), lim,
                           "2 x " + eval_tol.origin + (f" + the oracle's certified radius {ref_radius:.2g}"
                                                       if ref_radius else ""),
                           f"numeric {best.objective:.15g} (start {best.start}, seed {best.seed}) vs claimed {claimed_f:.15g}"))
    match_tol = tl.objective_match(eval_tol, best.grad_norm, mu)
    if ref_radius:
        match_tol = tl.Tol(match_tol.value + ref_radius, match_tol.origin + f" + the oracle's certified radius {ref_radius:.2g}")
    matched = claimed_f is not None and abs(best.objective - claimed_f) <= match_tol.value
    if deriv is not None and deriv.objective is not None:
        d = _val(deriv.objective)
        e = abs(best.objective - d)
        status = Status.PASS if e <= match_tol.value else (
            Status.FAIL if best.objective < d - 2 * eval_tol.value else Status.UNSETTLED)
        ev.append(Evidence(Check.NUMERICS, "numeric minimum vs derived minimum (the reduction is right)", status,
                           e, match_tol.value, match_tol.origin))
    if matched:
        ev.append(Evidence(Check.MATCH, "numeric minimum reaches the claimed minimum", Status.PASS,
                           abs(best.objective - claimed_f), match_tol.value, match_tol.origin))
    elif claimed_f is not None and best.objective > claimed_f:
        why = "solvers stopped above the claimed minimum"
        if best.stop_reason != "converged":
            why += f" (best run: {best.stop_reason}, |grad| = {best.grad_norm:.2g})"
        ev.append(Evidence(Check.MATCH, "numeric minimum reaches the claimed minimum", Status.UNSETTLED,
                           best.objective - claimed_f, match_tol.value, match_tol.origin, why))
    if hess.get("available") and mu > 0 and mu < 1e-7 * hess["norm"]:
        ev.append(Evidence(Check.NUMERICS, "conditioning", Status.UNSETTLED,
                           detail=f"smallest curvature mu = {mu:.3g} vs ||Hess|| = {hess['norm']:.3g}: "
                                  "near-singular Hessian (close to a phase boundary?)"))
    if matched:
        ev.extend(_compare_shapes(theorem, claim, inst, p, eval_tol, best.grad_norm, mu))
        ev.extend(_shapes_at_minimizers(theorem, inst, res, claimed_f, eval_tol, mu))
    m = metrics.measure(inst, best.params)
    num["metrics"] = m.get("metrics")
    num["singular_values"] = m.get("singular_values")
    return ev, num, best
