"""Cross-checks between independent computations: the theory engine's derived minimum against the
numerics engine's multi-start minimizer of the full objective, and the search's phase boundaries
(proofs_checks.boundaries, mpmath in the scaled variables) against theory.phase (exact SymPy)."""
from __future__ import annotations

import mpmath as mp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numerics.problem import Instance
from proofs_checks import boundaries, tolerances as tl, verify
from theory import phase
from theory.derive import derive


@pytest.mark.parametrize("M", [1, 2, 3, 4])
def test_mse_thresholds_agree_with_theory(M):
    mine = boundaries.mse_kappa_thresholds(M)
    th = phase.mse_thresholds(M)
    # theory's rho = kappa^(M+1) (rho = N^{M+1} lambda_H prod lambda / n^M, kappa = N L / n^{M/(M+1)})
    assert abs(mine["global"] ** (M + 1) - mp.mpf(sp_float(th.rho_global))) < mp.mpf(10) ** -30
    assert abs(mine["existence"] ** (M + 1) - mp.mpf(sp_float(th.rho_exist))) < mp.mpf(10) ** -30


def sp_float(e) -> str:
    import sympy as sp

    return str(sp.N(e, 45))


@pytest.mark.parametrize("K, M", [(2, 1), (3, 1), (2, 2), (3, 2), (3, 3)])
def test_ce_thresholds_agree_with_theory(K, M):
    mine = boundaries.ce_gamma_thresholds(K, M)
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
    res = verify.multistart(inst, solver="lbfgs", starts=4, seed=1)
    best = res.best
    S = verify._objective_scale(inst, best.params)
    ev = tl.evaluation(S, sum(t.numel() for t in best.params.tensors()))
    assert best.objective >= f_star - 2 * ev.value, (inst.cli_flags(), best.objective, f_star)
    if best.stop_reason == "converged":
        hess = verify._hessian_info(inst, best.params.flatten())
        tol = tl.objective_match(ev, best.grad_norm, hess["mu"])
        assert abs(best.objective - f_star) <= tol.value, (inst.cli_flags(), best.objective, f_star, tol.origin)
