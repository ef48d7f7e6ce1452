"""Unit tests of the theory engine: ids and assumptions, each reduction step, closed forms, ties,
phase boundaries, the THEOREMS.md claims the derivation disagrees with, rendering, and layering."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import mpmath
import pytest
import sympy as sp

from ncverify.theory import phase as P
from ncverify.theory import reduced as R
from ncverify.theory.derive import derive, known_ids
from ncverify.theory.families import BUILTIN
from ncverify.theory.render import to_json, to_latex, to_text


def inst(**kw):
    """A duck-typed instance (theory never imports numerics)."""
    d = dict(counts=(10, 10, 10), width=4, depth=1, lam_w=(1e-3,), lam_h=1e-3, loss="mse", bias=False, lam_b=0.0,
             activation=None)
    d.update(kw)
    if len(d["lam_w"]) == 1 and d["depth"] > 1:
        d["lam_w"] = tuple(d["lam_w"]) * d["depth"]
    return SimpleNamespace(**d)


# ---------------------------------------------------------------------------------------------
# ids and assumptions
def test_unknown_id_names_known_ids():
    with pytest.raises(ValueError) as e:
        derive("nope.thing", inst())
    for k in known_ids():
        assert k in str(e.value)


@pytest.mark.parametrize("tid,kw,msg", [
    ("mse-deep-bias", dict(), "needs a last-layer bias"),
    ("mse-deep-bias", dict(bias=True, lam_b=0.1), "lambda_b = 0"),
    ("mse-deep", dict(bias=True), "bias-free"),
    ("mse-deep", dict(loss="ce"), "needs loss mse"),
    ("ce-deep-etf", dict(loss="ce", counts=(3, 4)), "needs balanced classes"),
    ("ce-deep-etf", dict(loss="ce", width=1), "d >= K - 1"),
    ("ce-deep-etf", dict(), "needs loss ce"),
    ("extended-linear", dict(), "depth M >= 2"),
])
def test_assumption_errors_name_the_condition(tid, kw, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        derive(tid, inst(**kw))


def test_relu_instance_states_what_is_undetermined():
    p = derive("extended-linear", inst(depth=2, activation="relu"))
    assert p.family == "extended-linear" and any("ReLU" in u for u in p.undetermined)


def test_works_with_the_project_instance():
    from ncverify.numerics.problem import Instance  # only the pure-Python instance module

    i = Instance.create(counts=[5, 7], width=3, depth=2, lam_w=[1e-3, 2e-3], lam_h=3e-3)
    p = derive("mse-deep", i)
    assert p.instance["counts"] == [5, 7] and len(p.singular_values.layers) == 2


# ---------------------------------------------------------------------------------------------
# reduction steps
@pytest.mark.parametrize("M", [1, 2, 3, 4, 5])
def test_stationary_polynomial_t_has_the_expected_form(M):
    expected = R.t ** (2 * M) - R.y * R.t ** (M - 1) + R.N * R.L
    assert sp.expand(R.stationary_polynomial_t(M) - expected) == 0


@pytest.mark.parametrize("M", [1, 2, 3, 4])
def test_w_polynomial_roots_are_the_t_polynomial_roots(M):
    yv, Nv, Lv = sp.Rational(7, 2), sp.Integer(9), sp.Rational(1, 400)
    Pt = sp.Poly(R.stationary_polynomial_t(M).subs({R.y: yv, R.N: Nv, R.L: Lv}), R.t)
    rho_v = (Nv * Lv) ** (M + 1) / yv ** (2 * M)
    Pw = sp.Poly(R.stationary_polynomial_w(M).subs(R.rho, rho_v), R.w)
    with mpmath.workdps(40):
        t_roots = sorted(float(sp.N(r, 30)) for r in Pt.real_roots() if sp.N(r) > 0)
        w_roots = sorted(float(sp.N(r, 30)) for r in Pw.real_roots() if 0 < sp.N(r) < 1)
    assert len(t_roots) == len(w_roots)
    for tt, ww in zip(t_roots, w_roots):
        assert abs(tt ** (M + 1) / float(yv) - ww) < 1e-12


@pytest.mark.parametrize("M", [1, 2, 3])
def test_factorization_elimination_is_a_lower_bound_attained_at_balance(M):
    import random

    rng = random.Random(M)
    fe = R.eliminate_factorization(M)
    c = [rng.uniform(0.1, 3) for _ in range(M + 1)]  # lambda_H, lambda_W1..M
    zv = 2.7
    Lv = (c[0] * __import__("math").prod(c[1:])) ** (1 / (M + 1))
    best = float(fe.cost.subs({R.L: Lv, R.z: zv}))
    sub = {R.L: Lv, R.z: zv, R.lam_H: c[0], **{R.lam_W(j): c[j] for j in range(1, M + 1)}}
    xs = [float(fe.feature_value.subs(sub))] + [float(v.subs(sub)) for v in fe.layer_values]
    assert abs(__import__("math").prod(xs) - zv) < 1e-12
    assert abs(sum(ci * xi ** 2 / 2 for ci, xi in zip(c, xs)) - best) < 1e-12
    for _ in range(200):  # random factorizations x_0 ... x_M = z cost at least as much
        f = [rng.uniform(0.2, 3) for _ in range(M)]
        x0 = zv / __import__("math").prod(f)
        cost = c[0] * x0 ** 2 / 2 + sum(ci * fi ** 2 / 2 for ci, fi in zip(c[1:], f))
        assert cost >= best - 1e-12


def test_extended_linear_is_the_factor_form():
    assert R.extended_linear_as_factor_form()
    a = derive("extended-linear", inst(depth=2, activation="identity", lam_w=(2e-3, 1e-3)))
    b = derive("mse-deep", inst(depth=2, lam_w=(2e-3, 1e-3)))
    assert a.objective.value == b.objective.value
    assert "H2barTH2bar" in a.gram_targets and a.gram_targets["H2barTH2bar"].kind == "OF"


def test_balancedness_across_layers():
    i = inst(counts=(30, 12, 5), depth=3, lam_w=(1e-3, 4e-3, 2e-2), lam_h=5e-3)
    p = derive("mse-deep", i)
    with mpmath.workdps(40):
        lam = lambda x: mpmath.mpf(repr(x))
        for k in range(3):
            eta = p.singular_values.features[k].value
            vals = [lam(i.lam_h) * eta ** 2] + [lam(i.lam_w[j]) * p.singular_values.layers[j][k].value ** 2
                                                 for j in range(3)]
            assert max(vals) - min(vals) <= mpmath.mpf(10) ** -30 * max(1, max(vals))
            prod = mpmath.fprod(p.singular_values.layers[j][k].value for j in range(3))
            assert abs(prod - p.singular_values.weights_product[k].value) < mpmath.mpf(10) ** -30


# ---------------------------------------------------------------------------------------------
# closed forms
def test_M1_closed_form_matches_exact_sympy_solution():
    i = inst(counts=(40, 9, 3), lam_w=(2e-3,), lam_h=1e-3)
    p = derive("mse-deep", i)
    N = sum(i.counts)
    Lx = sp.sqrt(sp.Rational(2, 1000) * sp.Rational(1, 1000))
    zs = sp.Symbol("zs", positive=True)
    for k, nk in enumerate(i.counts):
        phi = (sp.sqrt(nk) - zs) ** 2 / (2 * N) + Lx * zs  # M = 1, z > 0: convex, one stationary point
        sol = sp.solve(sp.diff(phi, zs), zs)
        z_exact = sol[0] if sol else sp.Integer(0)
        got = p.scalars["z"][k]
        assert got.expr is not None and sp.simplify(got.expr - z_exact) == 0
        assert abs(got.value - sp.N(z_exact, 40)) < 1e-35


def test_M1_collapse_threshold_is_exact():
    # rho = N^2 lambda_W lambda_H / n = 1 exactly -> a tie at the fold, z = 0
    i = inst(counts=(4, 4), lam_w=(1 / 4,), lam_h=1 / 4)
    p = derive("mse-deep", i)
    assert p.scalars["rho"][0].expr == 1
    assert p.collapsed_classes == (0, 1)


def test_ce_M1_closed_form_probability_vs_root():
    K, n, lw, lh = 4, 5, 1e-3, 2e-3
    p = derive("ce-deep-etf", inst(loss="ce", counts=(n,) * K, width=K, lam_w=(lw,), lam_h=lh))
    with mpmath.workdps(40):
        s = mpmath.sqrt(mpmath.mpf(n) * mpmath.mpf("0.001") * mpmath.mpf("0.002"))
        # independent: g'(a) = 0 for g(a) = log(1 + (K-1) e^{-a}) + (K-1) s a
        gp = lambda a: -(K - 1) * mpmath.exp(-a) / (1 + (K - 1) * mpmath.exp(-a)) + (K - 1) * s
        a_root = mpmath.findroot(gp, 1)
        p_root = mpmath.exp(a_root) / (mpmath.exp(a_root) + K - 1)
        assert abs(p.scalars["a"][0].value - a_root) < mpmath.mpf(10) ** -30
        assert abs(p.scalars["p_true"][0].value - p_root) < mpmath.mpf(10) ** -30
        assert abs(p_root - (1 - (K - 1) * s)) < mpmath.mpf(10) ** -30
    assert p.scalars["a"][0].expr is not None  # exact closed form for M = 1


def test_ce_bias_handling():
    b0 = derive("ce-deep-etf", inst(loss="ce", bias=True, lam_b=0.0))
    b1 = derive("ce-deep-etf", inst(loss="ce", bias=True, lam_b=1e-2))
    assert any("along 1" in u for u in b0.undetermined)
    assert not any("along 1" in u for u in b1.undetermined)
    assert all(b.value == 0 for b in b1.bias)


# ---------------------------------------------------------------------------------------------
# global selection, ties, phase boundaries
def test_exact_tie_on_the_M2_global_boundary():
    # rho = N^3 lambda_H lambda_1 lambda_2 / n^2 = 1/16 exactly: N = 2, n = 1, L^3 = 1/8 / 16 = 1/128 ... pick
    # lambda_H = 1/128, lambda_1 = lambda_2 = 1 -> rho = 8 / 128 = 1/16
    p = derive("mse-deep", inst(counts=(1, 1), width=2, depth=2, lam_w=(1.0, 1.0), lam_h=1 / 128))
    assert p.scalars["rho"][0].expr == sp.Rational(1, 16)
    assert any("tie" in u and "exact" in u for u in p.undetermined)
    c = p.candidates["class 1"]
    assert abs(c[0].objective - c[-1].objective) < mpmath.mpf(10) ** -35


@pytest.mark.parametrize("M", [2, 3, 4])
def test_thresholds_are_roots_of_discriminant_and_resultant(M):
    th = P.mse_thresholds(M)
    assert P.mse_discriminant_in_rho(M).eval(th.rho_exist) == 0
    assert P.mse_equal_value_resultant(M).eval(th.rho_global) == 0
    assert 0 < th.rho_global < th.rho_exist
    assert th.rho_global == sp.Integer(M - 1) ** (M - 1) / sp.Integer(M) ** (2 * M)


def test_general_M_thresholds_specialize():
    g = P.mse_thresholds(R.M_sym)
    for M in (2, 3, 4):
        assert sp.nsimplify(g.rho_global.subs(R.M_sym, M)) == P.mse_thresholds(M).rho_global
        assert sp.nsimplify(g.rho_exist.subs(R.M_sym, M)) == P.mse_thresholds(M).rho_exist


@pytest.mark.parametrize("M", range(1, 7))
def test_float_thresholds_equal_the_exact_ones(M):
    """The numerically located thresholds the searches aim with equal the exact ones to float64 rounding."""
    th = P.mse_thresholds(M)
    g, e = P.mse_threshold_values(M)
    assert g == pytest.approx(float(th.rho_global), rel=1e-14) and e == pytest.approx(float(th.rho_exist), rel=1e-14)


@pytest.mark.parametrize("M,Kc", [(2, 3), (3, 2)])
def test_ce_thresholds_bracket_the_switch(M, Kc):
    th = P.ce_thresholds(Kc, M, 40)
    n = 4
    for factor, zero in ((mpmath.mpf("0.999"), False), (mpmath.mpf("1.001"), True)):
        ell = th.ell_global.value * factor
        lam_h = float(ell ** (M + 1) / n)  # lambda_W = 1
        p = derive("ce-deep-etf", inst(loss="ce", counts=(n,) * Kc, width=Kc, depth=M, lam_w=(1.0,), lam_h=lam_h))
        assert (p.scalars["a"][0].value == 0) == zero
        # between the two thresholds a nonzero stationary point still exists
        if zero:
            assert any("local min" in c.label for c in p.candidates["margin"])
    above = th.ell_exist.value * mpmath.mpf("1.001")
    p = derive("ce-deep-etf", inst(loss="ce", counts=(n,) * Kc, width=Kc, depth=M, lam_w=(1.0,),
                                   lam_h=float(above ** (M + 1) / n)))
    assert len(p.candidates["margin"]) == 1


def test_phase_boundary_instance_values_and_sides():
    p = derive("mse-deep", inst(counts=(100, 4), width=2, depth=2, lam_w=(0.0104,), lam_h=0.0104))
    rho = [b for b in p.phase_boundaries if b.parameter.startswith("rho") and b.kind == "global"]
    assert {b.classes for b in rho} == {(0,), (1,)}
    for b in rho:
        k = b.classes[0]
        assert (b.instance_value > b.value.value) == (k in p.collapsed_classes)


# ---------------------------------------------------------------------------------------------
# where THEOREMS.md's dang2023.mse-deep rule disagrees with the derivation
def _claim_largest_root(M: int, N: int, L_pow: mpmath.mpf, n: int) -> mpmath.mpf:
    """The claim's x: largest positive root of b/n = M x^{M-1}/(1 + x^M)^2, b = M N (N L_pow)^{1/M}."""
    b = M * N * (N * L_pow) ** (mpmath.mpf(1) / M)
    # b (1 + x^M)^2 - n M x^{M-1} = 0 as a polynomial in x
    coeffs = [mpmath.mpf(0)] * (2 * M + 1)  # index = power
    coeffs[0] += b
    coeffs[M] += 2 * b
    coeffs[2 * M] += b
    coeffs[M - 1] -= n * M
    roots = mpmath.polyroots(list(reversed(coeffs)), maxsteps=200, extraprec=200)
    real = [mpmath.re(r) for r in roots if abs(mpmath.im(r)) < 1e-20 and mpmath.re(r) > 0]
    return max(real) if real else mpmath.mpf(0)


def test_claim_root_equation_is_the_stationary_equation():
    with mpmath.workdps(50):
        M, N, n = 3, 50, 20
        L_pow = mpmath.mpf("1e-9")
        x = _claim_largest_root(M, N, L_pow, n)
        w = x ** M / (1 + x ** M)
        rho = N ** (M + 1) * L_pow / n ** M
        assert abs(w ** (M - 1) * (1 - w) ** (M + 1) - rho) < mpmath.mpf(10) ** -35


def test_claim_largest_root_is_not_global_for_M2():
    i = inst(counts=(100, 4), width=2, depth=2, lam_w=(0.0104,), lam_h=0.0104)
    p = derive("mse-deep", i)
    assert p.collapsed_classes == (1,)
    with mpmath.workdps(50):
        M, N = 2, 104
        L_pow = mpmath.mpf("0.0104") ** 3
        rho = N ** 3 * L_pow / 16
        assert mpmath.mpf(1) / 16 < rho < mpmath.mpf(27) / 256
        x = _claim_largest_root(M, N, L_pow, 4)
        assert x > 0  # the claim keeps class 2 alive ...
        w = x ** M / (1 + x ** M)
        phi = lambda z: (2 - z) ** 2 / (2 * N) + mpmath.mpf(3) / 2 * L_pow ** (mpmath.mpf(1) / 3) * z ** (mpmath.mpf(2) / 3)
        assert phi(0) < phi(2 * w)  # ... but z = 0 is strictly better
        b = M * N * (N * L_pow) ** (mpmath.mpf(1) / M)
        x1 = _claim_largest_root(M, N, L_pow, 100)
        f_claim = sum(nk / (1 + xk ** M) + b * xk for nk, xk in ((100, x1), (4, x))) / (2 * N)
        assert f_claim > p.objective.value + mpmath.mpf("1e-3")


# ---------------------------------------------------------------------------------------------
# width, bias, imbalance
def test_width_below_K_keeps_the_largest_classes():
    p = derive("mse-deep", inst(counts=(50, 20, 5, 5), width=2, depth=2, lam_w=(1e-4,), lam_h=1e-4))
    assert p.collapsed_classes == (2, 3)
    assert any("width d = 2" in n for n in p.notes)


def test_bias_balanced_geometry():
    p = derive("mse-deep-bias", inst(bias=True, depth=2, counts=(6,) * 4, width=4))
    assert p.gram_targets["WWT"].kind == "ETF" and p.gram_targets["HbarTHbar"].kind == "ETF"
    assert [float(b.value) for b in p.bias] == [0.25] * 4
    assert p.singular_values.weights_product[-1].value == 0
    assert len(p.singular_values.weights_product) == 4


def test_bias_imbalanced_matches_an_independent_eigen_reduction():
    counts, M, lw, lh = (30, 20, 10), 2, 1e-3, 1e-3
    p = derive("mse-deep-bias", inst(bias=True, counts=counts, depth=M, lam_w=(lw,), lam_h=lh))
    with mpmath.workdps(50):
        N = sum(counts)
        G = mpmath.matrix([[(counts[i] if i == j else 0) - mpmath.mpf(counts[i] * counts[j]) / N for j in range(3)]
                           for i in range(3)])
        E, _ = mpmath.eigsy(G)
        L = (mpmath.mpf("0.001") ** 3) ** (mpmath.mpf(1) / 3)
        total = 0
        for mu in E:
            if mu < 1e-30:
                continue
            y = mpmath.sqrt(mu)
            phi = lambda z: (y - z) ** 2 / (2 * N) + mpmath.mpf(3) / 2 * L * abs(z) ** (mpmath.mpf(2) / 3)
            zs = mpmath.findroot(lambda z: mpmath.diff(phi, z), y * 0.99)
            total += min(phi(0), phi(zs))
        assert abs(total - p.objective.value) < mpmath.mpf(10) ** -30
    assert [round(float(b.value), 12) for b in p.bias] == [0.5, round(1 / 3, 12), round(1 / 6, 12)]


# ---------------------------------------------------------------------------------------------
# rendering and layering
@pytest.mark.parametrize("tid,kw", [("mse-deep", dict(depth=2)), ("mse-deep-bias", dict(bias=True)),
                                    ("ce-deep-etf", dict(loss="ce", depth=2)),
                                    ("extended-linear", dict(depth=2, activation="relu"))])
def test_render(tid, kw):
    p = derive(tid, inst(**kw))
    js = to_json(p)
    json.dumps(js)
    for key in ("objective", "singular_values", "collapsed_classes", "phase_boundaries", "family", "instance",
                "scalars", "gram_targets", "class_mean_norms", "bias", "undetermined", "candidates"):
        assert key in js
    assert set(js["singular_values"]) >= {"weights_product", "layers", "output"}
    txt = to_text(p)
    for sec in ("REDUCED PROBLEM", "STATIONARY EQUATION", "SOLUTION", "PREDICTION", "PHASE BOUNDARIES"):
        assert sec in txt
    assert to_latex(p).startswith(r"\begin{align*}")


def test_import_does_not_load_torch():
    code = ("import sys, ncverify.theory, ncverify.theory.derive, ncverify.theory.render, ncverify.theory.phase, ncverify.theory.solve, ncverify.theory.reduced; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_builtin_families_are_registered():
    assert {f.name for f in BUILTIN} <= set(known_ids())
    assert {"mse-deep", "mse-deep-bias", "ce-deep-etf", "extended-linear", "mse-bias-regularized"} <= set(known_ids())
