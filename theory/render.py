"""Printing a ``Prediction``: readable text, LaTeX, and a JSON-serialisable dict.

``to_text(pred)``: the reduced problem, the stationary equation, the solution (every candidate of the
global selection) and the prediction, for a researcher. ``to_latex(pred)``: the symbolic pieces via
sympy.latex. ``to_json(pred)``: keys objective, singular_values {weights_product, layers, output, features},
collapsed_classes, phase_boundaries, family, requested_id, instance, scalars, gram_targets,
class_mean_norms, bias, undetermined, candidates, notes, derivation, dps.
"""
from __future__ import annotations

from typing import Any, Mapping

import mpmath
import sympy as sp

from .prediction import Candidate, Exact, PhaseBoundary, Prediction

_MAX_EXPR = 160


def _short(expr: Any, limit: int = _MAX_EXPR) -> str:
    s = sp.sstr(expr) if isinstance(expr, sp.Basic) else str(expr)
    return s if len(s) <= limit else s[: limit - 20] + f" ... [{len(s)} chars]"


def _num(x: Any, digits: int = 20) -> str:
    if isinstance(x, Exact):
        x = x.value
    return mpmath.nstr(x, digits) if isinstance(x, (mpmath.mpf, mpmath.mpc)) else str(x)


def _exact_str(e: Exact | None, digits: int = 20) -> str:
    if e is None:
        return "not derived (see the notes)"
    out = _num(e.value, digits)
    if e.expr is not None and not (isinstance(e.expr, sp.Number) and e.expr.is_Float):
        es = _short(e.expr)
        if es != out:
            out += f"   [= {es}]"
    if e.note:
        out += f"   ({e.note})"
    return out


def _list(xs: list[Exact] | None, digits: int = 15) -> str:
    if xs is None:
        return "none"
    return "[" + ", ".join(_num(e.value, digits) for e in xs) + "]"


def _is_margin(pred: Prediction) -> bool:
    """CE on the ETF, or a loss variant reduced to the same 1-D margin problem (``theory.variants``)."""
    return pred.family == "ce-deep-etf" or (pred.derivation or {}).get("reduction") == "etf-margin"


def to_text(pred: Prediction) -> str:
    """A readable account of the derivation and the prediction."""
    d = pred.derivation or {}
    inst = pred.instance
    lines = [f"theory engine derivation: family {pred.family}"
             + (f" (requested id {pred.requested_id})" if pred.requested_id and pred.requested_id != pred.family else ""),
             "instance: " + ", ".join(f"{k}={v}" for k, v in inst.items()), ""]
    lines.append("REDUCED PROBLEM")
    code = d.get("etf_optimal") is False
    if code:
        lines += [f"  over K x K class-mean logits Zbar:  F(Zbar) = {d.get('reduced_objective')}",
                  f"  ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) = {_num(d.get('ell'), 25)}",
                  "  candidates: logit codes (direct sums of circulant blocks, theory.ce_codes), each minimized over "
                  "its amplitudes; total collapse"]
    elif "reduced_text" in d:  # a family that describes its own reduction in words
        lines += ["  " + x for x in d["reduced_text"]]
    elif _is_margin(pred):
        lines += [f"  logits a (e_k - 1/K 1):  {d.get('loss_label', 'CE')} = {sp.sstr(d.get('ce'))}",
                  f"  factorization cost per singular value z:  {sp.sstr(d.get('factorization_cost'))}",
                  f"  g(a) = {sp.sstr(pred.reduced_problem)}",
                  f"  with a = u^(M+1):  g(u) = {sp.sstr(d.get('g_u'))}"]
    else:
        lines += [f"  1. eliminate the factorization: min over W_M...W_1 H = Z of the penalties = sum_i "
                  f"{sp.sstr(d.get('factorization_cost'))} at z = sigma_i(Z),  L = {sp.sstr(d.get('L'))} = {_num(sp.N(d.get('L_value'), 25))}",
                  "  2. align with the labels: squared label singular values y^2 = "
                  + "[" + ", ".join(_short(x, 40) for x in d.get("label_modes", [])) + "]"]
        if "bias_elimination" in d:
            lines.append("     bias: " + d["bias_elimination"])
        lines.append(f"  3. per mode: phi(z) = {sp.sstr(pred.reduced_problem)},  z >= 0")
    lines += ["", "STATIONARY EQUATION"]
    if code:
        lines.append("  grad F = 0 in the code's amplitudes theta (Newton in mpmath); see the candidates below")
    elif "stationary_text" in d:
        lines += ["  " + x for x in d["stationary_text"]]
    elif _is_margin(pred):
        lines.append(f"  dg/du = 0, u > 0  <=>  {sp.sstr(pred.stationary_equation)},  ell = L n^(1/(M+1))")
        if "closed_form" in d:
            lines.append(f"  M = 1 closed form: a = {sp.sstr(d['closed_form']['a'])}, "
                         f"p_true = {sp.sstr(d['closed_form']['p_true'])}")
    else:
        lines += [f"  {d.get('substitution_t')}:  {sp.sstr(d.get('stationary_t'))} = 0",
                  f"  {d.get('substitution_w')}:  {sp.sstr(pred.stationary_equation.lhs)} = 0,  w in (0, 1)",
                  f"  value at a stationary point: 2N phi / y^2 = {sp.sstr(d.get('stationary_value_w'))}  (1 at z = 0)"]
        if "closed_form" in d:
            cf = d["closed_form"]
            lines.append(f"  M = 1 closed form: w = {sp.sstr(cf['w'])}, z = {sp.sstr(cf['z'])}")
    lines += ["", "SOLUTION (global selection: every stationary point and the boundary, compared at "
              f"{pred.dps} digits)"]
    for key, cands in pred.candidates.items():
        lines.append(f"  {key}:")
        for c in cands:
            lines.append(f"    {'*' if c.selected else ' '} {c.label}: objective {_num(c.objective, 25)}")
    if _is_margin(pred):
        for b in d.get("brackets", []):
            lines.append(f"    stationary u = {_num(b['u'], 30)} ({b.get('kind', '')}); grid bracket "
                         f"[{_num(b['grid_bracket'][0], 12)}, {_num(b['grid_bracket'][1], 12)}], certified "
                         f"{b['certified']}")
    lines += ["", "PREDICTION", f"  minimal objective f* = {_exact_str(pred.objective, 30)}"]
    if code:
        lines.append(f"  geometry: {d.get('geometry')} (rank {d.get('rank')}); simplex ETF value "
                     f"{_num(pred.scalars['etf_value'][0].value, 25)} (not optimal)")
        zb = pred.gram_targets.get("WHbar")
        if zb is not None and zb.matrix is not None:
            lines.append("  class-mean logits Zbar = W Hbar (column k: class k):")
            lines += ["    [" + ", ".join(f"{float(v):10.5f}" for v in row) + "]" for row in zb.matrix]
    for name, vals in pred.scalars.items():
        lines.append(f"  {name}: {_list(vals)}")
    sv = pred.singular_values
    lines.append(f"  singular values of W = W_M...W_1: {_list(sv.weights_product)}")
    for j, layer in enumerate(sv.layers or [], start=1):
        lines.append(f"  singular values of W_{j}: {_list(layer)}")
    lines.append(f"  singular values of the output W H: {_list(sv.output)}")
    if sv.features is not None:
        lines.append(f"  singular values of H: {_list(sv.features)}")
    for key, g in pred.gram_targets.items():
        extra = f", scale {_num(g.scale, 15)}" if g.scale is not None else ""
        diag = f", diag {_list(g.diag)}" if g.diag is not None else ""
        lines.append(f"  {key}: {g.kind}{extra}{diag}  -- {g.description}")
    lines.append(f"  class-mean norms ||hbar_k||: {_list(pred.class_mean_norms)}")
    lines.append(f"  bias: {_list(pred.bias)}")
    lines.append(f"  collapsed classes (0-based): {pred.collapsed_classes}")
    for ks, eq in pred.rows_equal or ():
        lines.append(f"  rows of W for classes {list(ks)} (0-based): {'equal' if eq else 'pairwise distinct'}")
    if pred.objective is not None and pred.objective.expr is not None:
        lines.append(f"  exact f*: {_short(pred.objective.expr, 400)}")
    lines += ["", "PHASE BOUNDARIES"]
    for b in pred.phase_boundaries:
        side = ""
        if b.instance_value is not None:
            side = " (instance: " + _num(b.instance_value, 12) + (
                ", below" if b.instance_value < b.value.value else ", above" if b.instance_value > b.value.value
                else ", on the boundary") + ")"
        lines.append(f"  [{b.kind}] {b.parameter} = {_exact_str(b.value, 30)}{side}")
    if pred.undetermined:
        lines += ["", "UNDETERMINED"] + [f"  - {u}" for u in pred.undetermined]
    if pred.notes:
        lines += ["", "NOTES"] + [f"  - {n}" for n in pred.notes]
    return "\n".join(lines) + "\n"


def to_latex(pred: Prediction) -> str:
    """LaTeX of the reduced problem, the stationary equation, closed forms, the minimum and the thresholds."""
    d = pred.derivation or {}
    out = [r"\begin{align*}"]
    if _is_margin(pred):
        out.append(r"g(a) &= " + sp.latex(pred.reduced_problem) + r" \\")
        out.append(r"g(u) &= " + sp.latex(d.get("g_u")) + r" \quad (a = u^{M+1}) \\")
        out.append(sp.latex(pred.stationary_equation.lhs) + " &= " + sp.latex(pred.stationary_equation.rhs) + r" \\")
        if "closed_form" in d:
            out.append(r"a^\star &= " + sp.latex(d["closed_form"]["a"]) + r", \quad p_{\mathrm{true}} = "
                       + sp.latex(d["closed_form"]["p_true"]) + r" \\")
    else:
        out.append(r"\min_{W_M\cdots W_1 H = Z} &= " + sp.latex(d.get("factorization_cost"))
                   + r" \text{ per singular value } z,\ L = " + sp.latex(d.get("L")) + r" \\")
        out.append(r"\phi(z) &= " + sp.latex(pred.reduced_problem) + r" \\")
        out.append(sp.latex(d.get("stationary_t")) + r" &= 0 \quad (t = z^{1/(M+1)}) \\")
        out.append(sp.latex(pred.stationary_equation.lhs) + r" &= 0 \quad (w = z/y,\ \rho = (NL)^{M+1}/y^{2M}) \\")
        out.append(r"\rho_{\mathrm{global}} &= " + sp.latex(d.get("rho_global")) + r", \quad \rho_{\mathrm{exist}} = "
                   + sp.latex(d.get("rho_exist")) + r" \\")
        if "closed_form" in d:
            out.append(r"w^\star &= " + sp.latex(d["closed_form"]["w"]) + r" \\")
    if pred.objective is None:
        out.append(r"f^\star &: \text{not derived}")
    elif pred.objective.expr is not None and len(sp.sstr(pred.objective.expr)) < 2000:
        out.append(r"f^\star &= " + sp.latex(pred.objective.expr) + r" \approx " + mpmath.nstr(pred.objective.value, 20))
    else:
        out.append(r"f^\star &\approx " + mpmath.nstr(pred.objective.value, 30))
    out.append(r"\end{align*}")
    return "\n".join(out) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, Exact):
        return x.to_json()
    if isinstance(x, PhaseBoundary):
        return x.to_json()
    if isinstance(x, Candidate):
        return {"label": x.label, "point": [float(p) for p in x.point], "objective": float(x.objective),
                "objective_digits": mpmath.nstr(x.objective, 30), "selected": x.selected}
    if isinstance(x, (mpmath.mpf,)):
        return float(x)
    if isinstance(x, sp.Basic):
        return sp.sstr(x)
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, int, float, str)) or x is None:
        return x
    return str(x)


def to_json(pred: Prediction) -> dict[str, Any]:
    """A JSON-serialisable dict (numbers as floats plus 30-digit strings and exact sstr forms)."""
    sv = pred.singular_values
    return {
        "family": pred.family,
        "requested_id": pred.requested_id,
        "instance": _jsonable(pred.instance),
        "dps": pred.dps,
        "objective": None if pred.objective is None else pred.objective.to_json(),
        "singular_values": {"weights_product": _jsonable(sv.weights_product),
                            "layers": _jsonable(sv.layers),
                            "output": _jsonable(sv.output),
                            "features": _jsonable(sv.features)},
        "collapsed_classes": None if pred.collapsed_classes is None else list(pred.collapsed_classes),
        "rows_equal": None if pred.rows_equal is None else [[list(ks), eq] for ks, eq in pred.rows_equal],
        "phase_boundaries": [b.to_json() for b in pred.phase_boundaries],
        "scalars": _jsonable(pred.scalars),
        "gram_targets": {k: _jsonable(g.to_json()) for k, g in pred.gram_targets.items()},
        "class_mean_norms": _jsonable(pred.class_mean_norms),
        "bias": _jsonable(pred.bias),
        "undetermined": list(pred.undetermined),
        "candidates": _jsonable(pred.candidates),
        "reduced_problem": _jsonable(pred.reduced_problem),
        "stationary_equation": _jsonable(pred.stationary_equation),
        "derivation": _jsonable(pred.derivation),
        "notes": list(pred.notes),
    }
