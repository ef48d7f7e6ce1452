"""Property tests: the derived global minimizer against an independent high-precision 1-D minimization.

The independent minimizer is written here from the reduced objectives' definitions (not from the
engine's stationary equations): a dense grid, golden-section refinement around every grid-local
minimum, and the boundary point; all in mpmath at 50 digits.
Tolerances: objective values agree to 1e-25 (relative, both sides are computed at >= 40 digits and the
golden-section argmin error enters the value only quadratically); argmins to 1e-15 relative (argmin
accuracy is ~ sqrt of the value accuracy), skipped when two local minima are within 1e-20 (a near tie).
"""
from __future__ import annotations

from types import SimpleNamespace

import mpmath
import pytest
from hypothesis import assume, given, strategies as st

from ncverify.theory import phase as P
from ncverify.theory.derive import derive

DPS = 50
OBJ_TOL = mpmath.mpf(10) ** -25
ARG_TOL = mpmath.mpf(10) ** -15


def golden(f, lo, hi, iters=130):
    """Golden-section search for a minimum of f on [lo, hi]; returns (f(x*), x*)."""
    g = (mpmath.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    x = (a + b) / 2
    return f(x), x


def minimize_on_grid(f, xs):
    """All local minima of f found from a grid xs (ascending) plus the endpoints, refined by golden section.
    Returns a list of (value, x) sorted by value."""
    fs = [f(x) for x in xs]
    found = [(fs[0], xs[0]), (fs[-1], xs[-1]), golden(f, xs[0], xs[1]), golden(f, xs[-2], xs[-1])]
    for i in range(1, len(xs) - 1):
        if fs[i] <= fs[i - 1] and fs[i] <= fs[i + 1]:
            found.append(golden(f, xs[i - 1], xs[i + 1]))
    return sorted(found, key=lambda p: p[0])


def mk(**kw):
    return SimpleNamespace(**{**dict(width=8, loss="mse", bias=False, lam_b=0.0, activation=None), **kw})


lam_value = st.builds(lambda m, e: m * 10.0 ** e, st.sampled_from([1, 2, 3, 5, 7]), st.integers(-6, -1))


@st.composite
def mse_instances(draw):
    M = draw(st.integers(1, 4))
    K = draw(st.integers(1, 4))
    counts = tuple(draw(st.lists(st.integers(1, 200), min_size=K, max_size=K)))
    lam_w = tuple(draw(st.lists(lam_value, min_size=M, max_size=M)))
    lam_h = draw(lam_value)
    if draw(st.booleans()):  # aim at a phase boundary of one class, on either side
        k = draw(st.integers(0, K - 1))
        th = P.mse_thresholds(M)
        rc = float(draw(st.sampled_from([th.rho_global, th.rho_exist])))
        rel = draw(st.sampled_from([-0.3, -1e-2, -1e-4, 1e-4, 1e-2, 0.3]))
        N = sum(counts)
        prod = 1.0
        for x in lam_w:
            prod *= x
        lam_h = rc * (1 + rel) * counts[k] ** M / (N ** (M + 1) * prod)
        assume(1e-12 < lam_h < 1e6)
    return mk(counts=counts, width=max(K, 1), depth=M, lam_w=lam_w, lam_h=lam_h)


@given(mse_instances())
def test_mse_deep_matches_independent_minimization(i):
    p = derive("mse-deep", i, dps=40)
    M, N = i.depth, sum(i.counts)
    with mpmath.workdps(DPS):
        L = mpmath.mpf(repr(i.lam_h))
        for x in i.lam_w:
            L *= mpmath.mpf(repr(x))
        L = L ** (mpmath.mpf(1) / (M + 1))
        total = mpmath.mpf(0)
        for k, n in enumerate(i.counts):
            y = mpmath.sqrt(n)
            phi = lambda z: (y - z) ** 2 / (2 * N) + mpmath.mpf(M + 1) / 2 * L * z ** (mpmath.mpf(2) / (M + 1))
            found = minimize_on_grid(phi, [y * mpmath.mpf(j) / 1200 for j in range(1201)])
            best_val, best_z = found[0]
            total += best_val
            # the derivation's choice for this class is never worse than any candidate it listed
            cands = p.candidates[f"class {k + 1}"]
            chosen = [c for c in cands if c.selected][0]
            assert all(chosen.objective <= c.objective + OBJ_TOL for c in cands)
            assert abs(chosen.objective - best_val) <= OBJ_TOL * max(1, abs(best_val))
            runner_up = [v for v, z in found[1:] if abs(z - best_z) > mpmath.mpf(10) ** -10 * max(1, y)]
            if not runner_up or runner_up[0] - best_val > mpmath.mpf(10) ** -20:
                assert abs(p.scalars["z"][k].value - best_z) <= ARG_TOL * max(1, y)
            # collapse pattern agrees with the exact phase boundary
            rho = p.scalars["rho"][k].value
            rg = P.mse_thresholds(M).rho_global
            tied = any(u.startswith(f"class {k + 1}:") and "tie" in u for u in p.undetermined)
            if rho != rg and not tied:
                assert (k in p.collapsed_classes) == (rho > rg)
        assert abs(p.objective.value - total) <= OBJ_TOL * max(1, abs(total))


@st.composite
def bias_instances(draw):
    M = draw(st.integers(1, 3))
    K = draw(st.integers(2, 4))
    n = draw(st.integers(1, 100))
    lam_w = tuple(draw(st.lists(lam_value, min_size=M, max_size=M)))
    return mk(counts=(n,) * K, width=K, depth=M, lam_w=lam_w, lam_h=draw(lam_value), bias=True)


@given(bias_instances())
def test_mse_bias_balanced_matches_independent_minimization(i):
    p = derive("mse-deep-bias", i, dps=40)
    M, K, n = i.depth, len(i.counts), i.counts[0]
    N = K * n
    with mpmath.workdps(DPS):
        L = mpmath.mpf(repr(i.lam_h))
        for x in i.lam_w:
            L *= mpmath.mpf(repr(x))
        L = L ** (mpmath.mpf(1) / (M + 1))
        y = mpmath.sqrt(n)  # the centered labels have K-1 singular values sqrt(n) (and one 0)
        phi = lambda z: (y - z) ** 2 / (2 * N) + mpmath.mpf(M + 1) / 2 * L * z ** (mpmath.mpf(2) / (M + 1))
        best_val, _ = minimize_on_grid(phi, [y * mpmath.mpf(j) / 1200 for j in range(1201)])[0]
        assert abs(p.objective.value - (K - 1) * best_val) <= OBJ_TOL * max(1, abs(best_val))


@st.composite
def ce_instances(draw):
    M = draw(st.integers(1, 4))
    K = draw(st.integers(2, 6))
    n = draw(st.integers(1, 100))
    lam_w = tuple(draw(st.lists(lam_value, min_size=M, max_size=M)))
    lam_h = draw(lam_value)
    if draw(st.booleans()):
        th = P.ce_thresholds(K, M, 40)
        ec = draw(st.sampled_from([th.ell_global.value, th.ell_exist.value]))
        rel = draw(st.sampled_from([-0.3, -1e-2, -1e-3, 1e-3, 1e-2, 0.3]))
        prod = 1.0
        for x in lam_w:
            prod *= x
        lam_h = float(ec * (1 + rel)) ** (M + 1) / (n * prod)
        assume(1e-12 < lam_h < 1e6)
    return mk(counts=(n,) * K, width=K, depth=M, lam_w=lam_w, lam_h=lam_h, loss="ce")


@given(ce_instances())
def test_ce_etf_matches_independent_minimization(i):
    p = derive("ce-deep-etf", i, dps=40)
    M, K, n = i.depth, len(i.counts), i.counts[0]
    with mpmath.workdps(DPS):
        L = mpmath.mpf(repr(i.lam_h))
        for x in i.lam_w:
            L *= mpmath.mpf(repr(x))
        L = L ** (mpmath.mpf(1) / (M + 1))
        c = mpmath.mpf(M + 1) / 2 * (K - 1) * L

        def g(a):
            return mpmath.log(1 + (K - 1) * mpmath.exp(-a)) + c * (a * mpmath.sqrt(n)) ** (mpmath.mpf(2) / (M + 1))

        # any minimizer has penalty <= g(0) = log K
        A = (mpmath.log(K) / c) ** (mpmath.mpf(M + 1) / 2) / mpmath.sqrt(n)
        lg = lambda s: g(mpmath.exp(s))
        lo, hi = mpmath.log(mpmath.mpf(10) ** -8), mpmath.log(A) + 1
        found = minimize_on_grid(lg, [lo + (hi - lo) * mpmath.mpf(j) / 2000 for j in range(2001)])
        best = min(found[0][0], g(0))
        assert abs(p.objective.value - best) <= OBJ_TOL * max(1, abs(best))
        assert all(p.objective.value <= cand.objective + OBJ_TOL for cand in p.candidates["margin"])
        if abs(found[0][0] - g(0)) > mpmath.mpf(10) ** -20:
            a_ind = mpmath.exp(found[0][1]) if found[0][0] < g(0) else mpmath.mpf(0)
            assert abs(p.scalars["a"][0].value - a_ind) <= ARG_TOL * max(1, a_ind)
        if M == 1:  # closed form: p_true = 1 - (K-1) s, s = sqrt(n lambda_W lambda_H), when K s < 1
            s = L * mpmath.sqrt(n)
            if K * s < 1:
                assert abs(p.scalars["p_true"][0].value - (1 - (K - 1) * s)) <= mpmath.mpf(10) ** -30
            else:
                assert p.scalars["a"][0].value == 0


@pytest.mark.slow
@given(mse_instances())
def test_mse_deep_extended_identity_equals_deep(i):
    assume(i.depth >= 2)
    a = derive("extended-linear", mk(**{**vars(i), "activation": "identity"}))
    b = derive("mse-deep", i)
    assert a.objective.value == b.objective.value


def _values(p):
    """Every number of a prediction that a check compares (objective, scalars, singular values, class-mean norms,
    bias, Gram diagonals), flattened."""
    sv = p.singular_values
    out = [p.objective.value]
    for k in sorted(p.scalars):
        out += [e.value for e in p.scalars[k]]
    for r in [sv.weights_product, sv.output, sv.features, *(sv.layers or [])]:
        out += [e.value for e in (r or [])]
    out += [e.value for e in (p.class_mean_norms or [])] + [e.value for e in (p.bias or [])]
    for k in sorted(p.gram_targets):
        out += [e.value for e in (p.gram_targets[k].diag or [])]
    return out


@pytest.mark.parametrize("i", range(24))
def test_values_only_derivation_equals_the_exact_one(i):
    """``derive(exact=False)`` (roots of the once-derived polynomial found numerically) gives the exact derivation's
    numbers to 35 digits and the same global choice, on random instances of every family that offers it: depth
    1..6, imbalanced counts, with and without a bias, lambdas over four decades."""
    import random

    from ncverify.numerics.problem import Instance

    rnd = random.Random(1000 + i)
    fam = ["mse-deep", "mse-deep-bias", "extended-linear"][i % 3]
    K, M = rnd.randint(2, 6), rnd.randint(2 if fam == "extended-linear" else 1, 6)
    counts = [rnd.randint(1, 9)] * K if i % 2 else [rnd.randint(1, 9) for _ in range(K)]
    lam = lambda: float(f"{10 ** rnd.uniform(-4, 0):.3g}")  # noqa: E731
    inst = Instance.create(counts, width=K + rnd.randint(0, 3), depth=M, lam_w=[lam() for _ in range(M)],
                           lam_h=lam(), bias=fam == "mse-deep-bias")
    ex, vo = derive(fam, inst), derive(fam, inst, exact=False)
    assert all(e.expr is None for e in vo.scalars["w"])
    a, b = _values(ex), _values(vo)
    assert len(a) == len(b)
    with mpmath.workdps(50):
        for x, y in zip(a, b):
            assert abs(mpmath.mpf(x) - mpmath.mpf(y)) <= mpmath.mpf(10) ** -35 * max(1, abs(mpmath.mpf(x))), (x, y)
    assert [c.selected for cs in ex.candidates.values() for c in cs] == \
        [c.selected for cs in vo.candidates.values() for c in cs]
