"""numerics.diagnostics (Hessian spectrum, objective scale, point evaluation, parameter count) and
numerics.starts (balanced starts, the kind-cycling multi-start), checked by properties: an independently
written objective's Hessian, the O(d) symmetry's zero modes at a minimizer, the max_params cut-off,
S >= |f|, criticality of solver end points, and seeded reproducibility of the starts.

Tolerances: the Hessians compared are of the same f computed by two autograd graphs, so their
eigenvalues agree to a few hundred eps * ||Hess|| (HESS_RTOL = 1e-10 leaves a wide margin); solver end
points have ||grad f|| <= the L-BFGS default grad_tol = 1e-10, re-evaluated with the same formula.
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ncverify.numerics import diagnostics, models, solvers, starts
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import tolerances

HESS_RTOL = 1e-10
ROOT = Path(__file__).resolve().parents[1]


def _random_x(inst: Instance, seed: int, std: float = 0.7) -> torch.Tensor:
    p = models.init_params(inst, torch.Generator().manual_seed(seed), std=std)
    if p.b is not None:
        p.b = torch.randn(inst.K, generator=torch.Generator().manual_seed(seed + 1000), dtype=torch.float64)
    return p.flatten()


def _reference_objective(inst: Instance):
    """f for a deep linear MSE instance, written out independently of numerics.models:
    1/(2N) ||W_M...W_1 H + b 1^T - Y||_F^2 + sum_j lam_j/2 ||W_j||^2 + lam_H/2 ||H||^2 + lam_b/2 ||b||^2."""
    K, d, N, M = inst.K, inst.width, inst.N, inst.depth
    Y = torch.tensor(np.eye(K)[:, np.repeat(np.arange(K), inst.counts)], dtype=torch.float64)
    sizes = [(d, d)] * (M - 1) + [(K, d), (d, N)]

    def f(x: torch.Tensor) -> torch.Tensor:
        mats, off = [], 0
        for r, c in sizes:
            mats.append(x[off:off + r * c].reshape(r, c))
            off += r * c
        Ws, H = mats[:M], mats[M]
        Z = H
        for W in Ws:
            Z = W @ Z
        pen = sum(0.5 * lam * (W ** 2).sum() for lam, W in zip(inst.lam_w, Ws)) + 0.5 * inst.lam_h * (H ** 2).sum()
        if inst.bias:
            b = x[off:off + K]
            Z = Z + b[:, None]
            pen = pen + 0.5 * inst.lam_b * (b ** 2).sum()
        return ((Z - Y) ** 2).sum() / (2 * N) + pen

    return f


def _solve(inst: Instance, seed: int = 0) -> solvers.RunResult:
    run = solvers.solve(inst, solver="lbfgs", starts=1, seed=seed, device="cpu").runs[0]
    assert run.stop_reason == "converged", run.message
    return run


# ---------------------------------------------------------------------------------------------
# hessian_info
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inst", [
    Instance(counts=(2, 3), width=2, lam_w=(0.05,), lam_h=0.02),
    Instance(counts=(2, 1, 2), width=3, depth=2, lam_w=(0.03, 0.05), lam_h=0.02, bias=True, lam_b=0.1),
], ids=["M1", "M2-bias"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hessian_matches_independent_autograd_hessian(inst, seed):
    x = _random_x(inst, seed)
    info = diagnostics.hessian_info(inst, x)
    Href = torch.autograd.functional.hessian(_reference_objective(inst), x.detach())
    ev = np.linalg.eigvalsh(0.5 * (Href + Href.T).numpy())
    norm = float(np.max(np.abs(ev)))
    assert info["available"] is True
    assert info["norm"] == pytest.approx(norm, rel=HESS_RTOL)
    assert abs(info["min_eig"] - float(ev.min())) <= HESS_RTOL * norm
    assert info["cutoff"] == pytest.approx(math.sqrt(diagnostics.EPS) * norm, rel=HESS_RTOL)
    zero = np.abs(ev) <= info["cutoff"]
    assert info["zero_modes"] == int(zero.sum())
    above = ev[ev > info["cutoff"]]
    assert abs(info["mu"] - float(above.min())) <= HESS_RTOL * norm
    assert diagnostics.EPS == 2.0 ** -52


def test_zero_modes_at_minimizer_count_the_rotation_symmetry():
    # d = K = 2, M = 1: f is invariant under (W, H) -> (W R^T, R H), R in O(2): dim O(2) = 1 flat direction.
    # Both classes survive (n_k > N^2 lam_W lam_H = 0.0064), so the minimizer is nonzero and generic.
    inst = Instance(counts=(3, 5), width=2, lam_w=(1e-2,), lam_h=1e-2)
    run = _solve(inst)
    assert float(torch.linalg.norm(run.params.H)) > 0.1
    info = diagnostics.hessian_info(inst, run.params.flatten())
    assert info["available"]
    assert info["zero_modes"] == 1
    assert info["min_eig"] >= -info["cutoff"]  # a minimum: no direction of negative curvature
    assert 0 < info["mu"] <= info["norm"]


def test_hessian_not_formed_above_max_params():
    inst = Instance(counts=(2, 3), width=2, lam_w=(0.05,), lam_h=0.02)
    x = _random_x(inst, 0)
    P = models.num_params(inst)
    assert x.numel() == P == 14
    off = diagnostics.hessian_info(inst, x, max_params=P - 1)
    assert off["available"] is False
    assert str(P) in off["reason"] and "parameters" in off["reason"]
    assert set(off) == {"available", "reason"}
    assert diagnostics.hessian_info(inst, x, max_params=P)["available"] is True
    assert diagnostics.hessian_info(inst, x)["available"] is True  # default max_params = 3000


# ---------------------------------------------------------------------------------------------
# objective_scale, evaluate_point, parameter_count
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inst", [
    Instance(counts=(2, 3), width=2, lam_w=(0.05,), lam_h=0.02),
    Instance(counts=(2, 3, 1), width=3, lam_w=(0.05,), lam_h=0.02, loss="ce", bias=True, lam_b=0.01),
    Instance(counts=(2, 2, 2), width=3, depth=2, lam_w=(0.03, 0.05), lam_h=0.02, activation="relu"),
], ids=["mse", "ce-bias", "relu"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_scale_bounds_objective(inst, seed):
    params = models.Params.unflatten(inst, _random_x(inst, seed, std=1.0))
    f = float(models.objective(inst, params))
    S = diagnostics.objective_scale(inst, params)
    assert math.isfinite(S)
    assert S >= abs(f)
    assert S >= sum(abs(v) for k, v in models.objective_parts(inst, params).items() if k not in ("total", "weights"))


@pytest.mark.parametrize("inst", [
    Instance(counts=(3, 5), width=2, lam_w=(1e-2,), lam_h=1e-2),
    Instance(counts=(2, 3, 2), width=3, lam_w=(0.02,), lam_h=0.01, loss="ce", bias=True),
], ids=["mse", "ce-bias"])
def test_evaluate_point_at_solver_end_point(inst):
    run = _solve(inst)
    point = run.params.to_numpy()
    at = diagnostics.evaluate_point(inst, point)
    assert set(at) == {"objective", "grad_norm", "grad_scale", "theta_norm", "hessian", "scale", "P"}
    assert at["objective"] == float(models.objective(inst, models.Params.from_numpy(point)))
    assert at["objective"] == pytest.approx(run.objective, rel=1e-14)
    assert at["grad_norm"] <= solvers.LBFGS_GRAD_TOL * 10
    assert at["grad_scale"] >= at["grad_norm"]
    assert at["theta_norm"] == pytest.approx(float(run.params.flatten().norm()), rel=1e-14)
    assert at["P"] == models.num_params(inst) == diagnostics.parameter_count(point)
    assert at["scale"] == diagnostics.objective_scale(inst, models.Params.from_numpy(point))
    assert at["hessian"]["available"] and at["hessian"]["min_eig"] >= -at["hessian"]["cutoff"]


def test_evaluate_point_away_from_critical_point():
    inst = Instance(counts=(2, 3), width=2, lam_w=(0.05,), lam_h=0.02)
    x = _random_x(inst, 3).requires_grad_(True)
    (g,) = torch.autograd.grad(models.flat_objective(inst, models.labels(inst.counts))(x), x)
    at = diagnostics.evaluate_point(inst, models.Params.unflatten(inst, x.detach()).to_numpy())
    assert at["grad_norm"] == pytest.approx(float(g.norm()), rel=1e-14) and at["grad_norm"] > 1e-3


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("depth", [1, 3])
def test_parameter_count(bias, depth):
    inst = Instance(counts=(2, 3, 4), width=4, depth=depth, lam_w=(0.1,) * depth, lam_h=0.1, bias=bias)
    p = models.init_params(inst, torch.Generator().manual_seed(0)).to_numpy()
    n = diagnostics.parameter_count(p)
    assert type(n) is int
    assert n == models.num_params(inst) == (depth - 1) * 16 + 3 * 4 + 4 * 9 + (3 if bias else 0)


# ---------------------------------------------------------------------------------------------
# starts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("inst", [
    Instance(counts=(2, 3, 4), width=3, lam_w=(0.05,), lam_h=0.02),
    Instance(counts=(2, 3), width=4, depth=3, lam_w=(0.01, 0.03, 0.05), lam_h=0.02, bias=True),
], ids=["M1", "M3-bias"])
def test_balanced_start_energies_and_reproducibility(inst):
    p = starts.balanced_start(inst, torch.Generator().manual_seed(5), device="cpu")
    q = starts.balanced_start(inst, torch.Generator().manual_seed(5), device="cpu")
    r = starts.balanced_start(inst, torch.Generator().manual_seed(6), device="cpu")
    assert torch.equal(p.flatten(), q.flatten()) and not torch.equal(p.flatten(), r.flatten())
    models.check_params(inst, p)
    assert p.H.dtype == torch.float64 and p.H.device.type == "cpu"
    if inst.bias:
        assert torch.count_nonzero(p.b) == 0
    M = inst.depth
    L = math.exp((math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))
    t = (inst.N / inst.K) ** (1 / (2 * (M + 1)))
    # every factor A is a partial isometry times s_A = sqrt(L / lam_A) t: lam_A s_A^2 = L t^2 for all A
    for A, lam in list(zip(p.weights, inst.lam_w)) + [(p.H, inst.lam_h)]:
        s = torch.linalg.svdvals(A)
        assert torch.allclose(s, torch.full_like(s, math.sqrt(L / lam) * t), rtol=1e-12, atol=0)
        assert lam * float(s[0]) ** 2 == pytest.approx(L * t * t, rel=1e-12)


@pytest.mark.parametrize("solver", ["lbfgs", "gd"])
def test_multistart_kinds_seeds_and_order(solver):
    inst = Instance(counts=(2, 3), width=2, depth=2, lam_w=(0.02, 0.02), lam_h=0.02)
    kw = dict(solver=solver, starts=5, seed=7, device="cpu", max_iter=25)
    res = starts.multistart(inst, **kw)
    assert starts.PORTFOLIO[:5] == ("std 0.1", "balanced", "low-rank", "std 1", "balanced")
    assert [r.start for r in res.runs] == list(range(5))
    assert [r.seed for r in res.runs] == [7 + i for i in range(5)]
    for i, r in enumerate(res.runs):
        assert r.message.endswith(f"init {starts.portfolio_start(inst, i, 7)[1]}")
        assert r.solver == solver
    # the same call gives the same numbers
    again = starts.multistart(inst, **kw)
    for a, b in zip(res.runs, again.runs):
        assert torch.equal(a.params.flatten(), b.params.flatten()) and a.history == b.history
    assert res.best.objective == min(r.objective for r in res.runs)
    # the one-at-a-time engine runs each documented start with the reference solver: Gaussian kinds are
    # init_params at seed + i, balanced = balanced_start at seed + i
    loop = starts.multistart(inst, engine="loop", **kw)
    for i, r in enumerate(loop.runs):
        kind = starts.PORTFOLIO[i]
        gen = torch.Generator().manual_seed(7 + i)
        if kind == "balanced":
            p0 = starts.balanced_start(inst, gen, "cpu")
        elif kind.startswith("std"):
            p0 = models.init_params(inst, gen, std=float(kind.split()[1]))
        else:
            p0 = starts.low_rank_start(inst, gen, 1, "cpu")
        ref = getattr(solvers, solver)(inst, p0, max_iter=25, seed=7 + i, start=i)
        assert torch.equal(ref.params.flatten(), r.params.flatten()) and ref.history == r.history
        assert r.message == (ref.message + "; " if ref.message else "") + f"init {starts.portfolio_start(inst, i, 7)[1]}"
        assert r.init == res.runs[i].init == starts.portfolio_start(inst, i, 7)[1]


def test_multistart_default_budget_converges():
    inst = Instance(counts=(3, 5), width=2, lam_w=(1e-2,), lam_h=1e-2)
    res = starts.multistart(inst, solver="lbfgs", starts=2, seed=0, device="cpu")
    assert all(r.stop_reason == "converged" for r in res.runs)
    a, b = (r.objective for r in res.runs)
    assert a == pytest.approx(b, rel=1e-11)


# ---------------------------------------------------------------------------------------------
# layering
# ---------------------------------------------------------------------------------------------
def test_new_modules_do_not_import_sympy():
    code = "import sys, ncverify.numerics.diagnostics, ncverify.numerics.starts; assert 'sympy' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_gradient_rounding_scale_at_the_collapsed_point_of_ce_with_bias():
    """At W = H = 0, b = 0 of cross-entropy with a bias the gradient is exactly 0 but float64 leaves about 1e-17 in
    db = D 1 (N terms (1/K - y_ki)/N that cancel). The rounding scale of the data-gradient terms is then
    || |D| 1 ||_2 with |D| 1 = (n_k (1 - 1/K) + (N - n_k) / K) / N per class k, so the derived gradient tolerance
    is about eps, not eps times the rounding error itself. (Balanced: with imbalance b = 0 is not critical.)"""
    counts = (2, 2, 2, 2, 2)
    inst = Instance.create(counts, width=5, depth=1, lam_w=0.3, lam_h=0.3, loss="ce", bias=True, lam_b=0.1)
    K, N = len(counts), sum(counts)
    zero = {"weights": [np.zeros((K, 5))], "H": np.zeros((5, N)), "b": np.zeros(K)}
    params = models.Params.from_numpy(zero)
    rows = [(n * (1 - 1 / K) + (N - n) / K) / N for n in counts]
    expected = math.sqrt(sum(r * r for r in rows))
    got = diagnostics.data_gradient_terms(inst, params, models.labels(counts))
    assert got == pytest.approx(expected, rel=1e-12)
    at = diagnostics.evaluate_point(inst, zero)
    tol = tolerances.gradient_at_point(0.0, at["theta_norm"], at["grad_scale"], at["P"])
    assert at["grad_norm"] <= tol.value and tol.value >= 1e-16


@pytest.mark.parametrize("theorem,kw", [
    ("zhu2021.ce-ufm", {"classes": 5}),
    ("zhu2021.ce-ufm", {"classes": 8}),
    ("dang2023.ce-deep", {"classes": 5, "depth": 2}),
])
def test_true_claims_at_the_collapsed_point_of_ce_with_bias_verify(theorem, kw):
    """Regression (W = H = 0 is the global minimizer at large lambdas): the claims verify instead of being refuted
    by a 1e-30 gradient tolerance against float64 rounding of the bias gradient."""
    import ncverify as nv

    res = nv.check(theorem, per_class=2, lam_w=0.3, lam_h=0.3, bias=True, lam_b=0.1, **kw)
    assert res.verdict == "verified", res.reason
