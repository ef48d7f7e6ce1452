"""Golden files of the theory engine's derivations (theory/golden/*.txt).

Each line is ``name = <sympy sstr>`` (exact) or ``name ~= <30 digits>`` (transcendental values). The test
recomputes every entry from the derivation and compares it with the stored one *mathematically*
(exact: the difference simplifies to 0, or vanishes to 25 digits at random positive points; numeric:
25 digits), so a failure means the mathematics changed, not the printing. The files are rewritten
only by ``pytest --update-golden``.
"""
from __future__ import annotations

import random
from pathlib import Path

import mpmath
import pytest
import sympy as sp

from ncverify.theory import phase as P
from ncverify.theory import reduced as R

GOLDEN = Path(__file__).resolve().parents[1] / "theory" / "golden"
HEADER = ("# Derived by the theory engine (theory/reduced.py, theory/phase.py). Exact lines: name = sympy sstr;\n"
          "# numeric lines: name ~= value. Compared mathematically by tests/test_theory_golden.py;\n"
          "# rewritten only by `pytest --update-golden`.\n")

_LOCALS = {s.name: s for s in (R.z, R.y, R.N, R.L, R.t, R.w, R.v, R.rho, R.a, R.u, R.K, R.n, R.ell, R.lam_H, R.M_sym)}
_LOCALS.update({f"lambda_W{j}": R.lam_W(j) for j in range(1, 9)})


def _mse_entries() -> dict[str, object]:
    out: dict[str, object] = {}
    for M in range(1, 5):
        fe = R.eliminate_factorization(M)
        out[f"factorization_cost[M={M}]"] = fe.cost
        out[f"factorization_L[M={M}]"] = fe.L_expr
        out[f"balanced_value[M={M}]"] = fe.balanced_product
        out[f"layer_singular_value_1[M={M}]"] = fe.layer_values[0]
        out[f"reduced_objective[M={M}]"] = R.mode_objective(M)
        out[f"stationary_polynomial_t[M={M}]"] = R.stationary_polynomial_t(M)
        out[f"stationary_polynomial_w[M={M}]"] = R.stationary_polynomial_w(M)
        out[f"stationary_value_w[M={M}]"] = R.stationary_value_w(M)
    cf = R.closed_form_M1()
    out["closed_form_w[M=1]"] = cf["w"]
    out["closed_form_z[M=1]"] = cf["z"]
    out["closed_form_phi[M=1]"] = cf["phi"]
    return out


def _threshold_entries() -> dict[str, object]:
    out: dict[str, object] = {}
    for M in (1, 2, 3, 4, R.M_sym):
        tag = "general" if not isinstance(M, int) else M
        th = P.mse_thresholds(M)
        out[f"mse_w_global[M={tag}]"] = th.w_global
        out[f"mse_rho_global[M={tag}]"] = th.rho_global
        out[f"mse_w_exist[M={tag}]"] = th.w_exist
        out[f"mse_rho_exist[M={tag}]"] = th.rho_exist
    for M in (2, 3):
        out[f"mse_discriminant_in_rho[M={M}]"] = sp.factor(P.mse_discriminant_in_rho(M).as_expr())
        out[f"mse_equal_value_resultant[M={M}]"] = sp.factor(P.mse_equal_value_resultant(M).as_expr())
    # CE: M = 1 exact for symbolic K; M = 2, 3 numeric
    out["ce_ell_threshold[M=1]"] = sp.limit(R.ce_etf_reduction(1).h_u, R.u, 0, "+")
    for Kc in (2, 3, 10):
        for M in (2, 3):
            th = P.ce_thresholds(Kc, M, 40)
            out[f"ce_ell_exist[K={Kc},M={M}]"] = th.ell_exist.value
            out[f"ce_ell_global[K={Kc},M={M}]"] = th.ell_global.value
    return out


def _ce_entries() -> dict[str, object]:
    out: dict[str, object] = {}
    red1 = R.ce_etf_reduction(1)
    out["ce_of_etf_logits"] = red1.ce
    for M in range(1, 5):
        red = R.ce_etf_reduction(M)
        out[f"g[M={M}]"] = red.g
        out[f"g_u[M={M}]"] = red.g_u
        out[f"stationary_h_u[M={M}]"] = red.h_u
    cf = R.ce_closed_form_M1()
    out["closed_form_a[M=1]"] = cf["a"]
    out["closed_form_p_true[M=1]"] = cf["p_true"]
    return out


def _extended_entries() -> dict[str, object]:
    return {"extended_identity_equals_deep_linear_M2": sp.true if R.extended_linear_as_factor_form() else sp.false}


FILES = {"mse_deep.txt": _mse_entries, "thresholds.txt": _threshold_entries, "ce_deep_etf.txt": _ce_entries,
         "extended_linear.txt": _extended_entries}


def _format(entries: dict[str, object]) -> str:
    lines = [HEADER]
    for name, val in entries.items():
        if isinstance(val, mpmath.mpf):
            lines.append(f"{name} ~= {mpmath.nstr(val, 30)}")
        else:
            lines.append(f"{name} = {sp.sstr(val)}")
    return "\n".join(lines) + "\n"


def _parse(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if " ~= " in line:
            name, val = line.split(" ~= ", 1)
            out[name.strip()] = ("num", val.strip())
        else:
            name, val = line.split(" = ", 1)
            out[name.strip()] = ("exact", val.strip())
    return out


def _same_exact(stored: str, current: object) -> bool:
    a = sp.sympify(stored, locals=_LOCALS)
    b = sp.sympify(current) if not isinstance(current, sp.Basic) else current
    if isinstance(a, sp.logic.boolalg.BooleanAtom) or isinstance(b, sp.logic.boolalg.BooleanAtom):
        return a == b
    d = a - b
    if d == 0 or sp.simplify(sp.expand(d)) == 0:
        return True
    free = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    rng = random.Random(0)
    for _ in range(5):
        vals = {s: sp.Rational(rng.randint(2, 9), rng.randint(2, 9)) for s in free}
        if R.M_sym in vals:
            vals[R.M_sym] = rng.randint(2, 6)
        if R.K in vals:
            vals[R.K] = rng.randint(2, 6)
        if R.w in vals:
            vals[R.w] = sp.Rational(rng.randint(1, 8), 9)
        num = sp.N(d.subs(vals), 35)
        scale = max(1, abs(sp.N(a.subs(vals), 35)))
        if abs(num) > sp.Float(10) ** -25 * scale:
            return False
    return True


@pytest.mark.parametrize("fname", sorted(FILES))
def test_golden(fname: str, update_golden: bool) -> None:
    entries = FILES[fname]()
    path = GOLDEN / fname
    if update_golden:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(_format(entries))
        pytest.skip(f"rewrote {path}")
    assert path.exists(), f"missing golden file {path}: run pytest --update-golden once and review the diff"
    stored = _parse(path.read_text())
    assert set(stored) == set(entries), (f"entries differ: missing {sorted(set(entries) - set(stored))}, "
                                         f"extra {sorted(set(stored) - set(entries))}")
    bad = []
    for name, cur in entries.items():
        kind, text = stored[name]
        if kind == "num":
            with mpmath.workdps(40):
                ok = isinstance(cur, mpmath.mpf) and abs(mpmath.mpf(text) - cur) <= mpmath.mpf(10) ** -25 * max(1, abs(cur))
        else:
            ok = not isinstance(cur, mpmath.mpf) and _same_exact(text, cur)
        if not ok:
            bad.append(f"{name}: stored {text} vs derived {cur}")
    assert not bad, "the mathematics changed:\n" + "\n".join(bad)


def test_golden_comparison_detects_a_change() -> None:
    """The comparison is mathematical: a reprinted form passes, a changed constant fails."""
    assert _same_exact("t**4 - t*y + L*N", R.stationary_polynomial_t(2))
    assert _same_exact("N*L - y*t + t**4", R.stationary_polynomial_t(2))
    assert not _same_exact("t**4 - t*y + 2*L*N", R.stationary_polynomial_t(2))
    assert not _same_exact("(M - 1)**(M - 1)/M**(2*M + 1)", P.mse_thresholds(R.M_sym).rho_global)
