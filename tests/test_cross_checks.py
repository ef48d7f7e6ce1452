"""Cross-checks between independent computations: the theory engine's derived minimum against the
numerics engine's multi-start minimizer of the full objective, and the search's phase boundaries
(an independent mpmath computation in the scaled variables, kept here as the test reference) against theory.phase (exact SymPy)."""
from __future__ import annotations

import mpmath as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncverify.numerics.problem import Instance
import functools

import mpmath as mp

from ncverify.numerics import diagnostics, starts
from ncverify.proofs_checks import tolerances as tl
from ncverify.theory import phase
from ncverify.theory.derive import derive


def mse_kappa_thresholds(M):
    with mp.workdps(DPS):
        return _mse_kappa_thresholds_body(M)


def ce_gamma_thresholds(K, M):
    with mp.workdps(DPS):
        return _ce_gamma_thresholds_body(K, M)


# -- the independent reference (mpmath, scaled variables; see the docstrings) --------------------
DPS = 40


def _mse_kappa_thresholds_body(M: int) -> dict[str, mp.mpf]:
    """{"global": kappa_g, "existence": kappa_e} of the MSE mode problem for depth M."""
    p = mp.mpf(M - 1) / (M + 1)
    h = lambda u: (1 - u) * u ** p if u > 0 else (mp.mpf(1) if M == 1 else mp.mpf(0))  # noqa: E731
    ug, ue = mp.mpf(M - 1) / M, mp.mpf(M - 1) / (2 * M)
    return {"global": h(ug) if M > 1 else mp.mpf(1), "existence": h(ue) if M > 1 else mp.mpf(1)}


@functools.lru_cache(maxsize=64)
def _ce_gamma_thresholds_body(K: int, M: int) -> dict[str, mp.mpf]:
    """{"global": gamma_g, "existence": gamma_e} of the CE margin problem (ETF geometry)."""
    q = mp.mpf(2) / (M + 1)
    if M == 1:
        v = mp.mpf(1) / K
        return {"global": v, "existence": v}
    # stationary gamma as a function of a > 0:  gamma(a) = s(a) / a^{q-1},  s(a) = e^{-a}/(1+(K-1)e^{-a}) / q ... scaled
    ell = lambda a: mp.log(1 + (K - 1) * mp.e ** (-a))  # noqa: E731
    dell = lambda a: -(K - 1) * mp.e ** (-a) / (1 + (K - 1) * mp.e ** (-a))  # noqa: E731
    c = mp.mpf(M + 1) / 2 * (K - 1)
    gam = lambda a: -dell(a) / (c * q * a ** (q - 1))  # noqa: E731
    a_e = mp.findroot(lambda a: mp.diff(gam, a), _argmax_bracket(gam))
    # global: g(a; gamma(a)) = log K at the larger stationary point
    G = lambda a: ell(a) + c * gam(a) * a ** q - mp.log(K)  # noqa: E731
    a_g = mp.findroot(G, (a_e * 1.0001, mp.mpf(60)), solver="anderson")
    return {"global": gam(a_g), "existence": gam(a_e)}


def _argmax_bracket(f, lo: float = 1e-6, hi: float = 60.0, n: int = 600) -> mp.mpf:
    best, arg = None, None
    for i in range(n + 1):
        a = mp.mpf(lo) * (mp.mpf(hi) / lo) ** (mp.mpf(i) / n)
        v = f(a)
        if best is None or v > best:
            best, arg = v, a
    return arg



@pytest.mark.parametrize("M", [1, 2, 3, 4])
def test_mse_thresholds_agree_with_theory(M):
    mine = mse_kappa_thresholds(M)
    th = phase.mse_thresholds(M)
    # theory's rho = kappa^(M+1) (rho = N^{M+1} lambda_H prod lambda / n^M, kappa = N L / n^{M/(M+1)})
    assert abs(mine["global"] ** (M + 1) - mp.mpf(sp_float(th.rho_global))) < mp.mpf(10) ** -30
    assert abs(mine["existence"] ** (M + 1) - mp.mpf(sp_float(th.rho_exist))) < mp.mpf(10) ** -30


def sp_float(e) -> str:
    import sympy as sp

    return str(sp.N(e, 45))


@pytest.mark.parametrize("K, M", [(2, 1), (3, 1), (2, 2), (3, 2), (3, 3)])
def test_ce_thresholds_agree_with_theory(K, M):
    mine = ce_gamma_thresholds(K, M)
    th = phase.ce_thresholds(K, M, 40)
    assert abs(mine["global"] - th.ell_global.value) < mp.mpf(10) ** -25
    assert abs(mine["existence"] - th.ell_exist.value) < mp.mpf(10) ** -25


@st.composite
def small_instances(draw):
    family = draw(st.sampled_from(["mse-deep", "mse-deep-bias", "ce-deep-etf", "extended-linear"]))
    K = draw(st.integers(2, 3))
    n = draw(st.integers(1, 3))
    counts = [n] * K if family != "mse-deep" else draw(st.lists(st.integers(1, 4), min_size=K, max_size=K))
    M = 2 if family == "extended-linear" else draw(st.integers(1, 2))
    lam = draw(st.sampled_from([1e-3, 1e-2, 5e-2]))
    inst = Instance.create(counts, width=K, depth=M, lam_w=lam, lam_h=draw(st.sampled_from([1e-3, 1e-2, 1e-1])),
                           loss="ce" if family == "ce-deep-etf" else "mse", bias=family == "mse-deep-bias",
                           activation="identity" if family == "extended-linear" else None)
    return family, inst


@settings(max_examples=12, deadline=None)
@given(small_instances())
def test_derived_minimum_matches_numeric_minimizer(case):
    """No numeric point lies below the derived minimum, and the best of several starts reaches it."""
    family, inst = case
    f_star = float(derive(family, inst).objective.value)
    res = starts.multistart(inst, solver="lbfgs", starts=4, seed=1)
    best = res.best
    S = diagnostics.objective_scale(inst, best.params)
    ev = tl.evaluation(S, sum(t.numel() for t in best.params.tensors()))
    assert best.objective >= f_star - 2 * ev.value, (inst.cli_flags(), best.objective, f_star)
    if best.stop_reason == "converged":
        hess = diagnostics.hessian_info(inst, best.params.flatten())
        tol = tl.objective_match(ev, best.grad_norm, hess["mu"])
        assert abs(best.objective - f_star) <= tol.value, (inst.cli_flags(), best.objective, f_star, tol.origin)
