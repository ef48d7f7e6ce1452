"""Solvers against the independent M = 1 MSE ground truth, reproducibility, stop reasons, devices.

Tolerance for the objective (REL_TOL = 1e-11), derived, not tuned:
* stationarity: at a point with ||grad f|| = g near the minimizer set, f - f* <= g^2 / (2 mu), mu the
  smallest curvature transverse to the symmetry orbit. The strategy keeps every label singular value
  y_i at least 5% away from the threshold tau = N sqrt(lambda_W lambda_H) and lambda_W/lambda_H in
  [e^-2, e^2]; the per-mode 2x2 Hessians then give mu >= lambda_W lambda_H (1 - 0.95^2)/(lambda_W +
  lambda_H) >~ 1e-5 on these sizes, so with g <= grad_tol = 1e-10: f - f* <= 5e-16, and f* >= 1e-3,
  i.e. <= 5e-13 relative;
* rounding: f is a sum of <= N (K + d) <= 1000 float64 terms: relative error <= 1000 eps ~ 2.2e-13.
Their sum is < 1e-12; REL_TOL leaves a factor 10 on top. The wrong-branch gap (one class collapsing
or not) is >= (0.05 y)^2 / (2N) >~ 1e-5, eight orders above REL_TOL.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from ncverify.numerics import ground_truth, metrics, models, solvers
from ncverify.numerics.problem import Instance, InstanceError

REL_TOL = 1e-11
MARGIN = 0.05


@st.composite
def m1_mse_instances(draw, bias=None):
    K = draw(st.integers(2, 5))
    counts = draw(st.lists(st.integers(1, 15), min_size=K, max_size=K))
    d = draw(st.integers(max(1, K - 1), K + 2))
    bias = draw(st.booleans()) if bias is None else bias
    r = draw(st.floats(0.05, 1.3))  # tau / sqrt(n_max): > 1 collapses every class
    ratio = math.exp(draw(st.floats(-2.0, 2.0)))
    N = sum(counts)
    tau = r * math.sqrt(max(counts))
    s = tau / N  # sqrt(lambda_W lambda_H)
    inst = Instance.create(counts, width=d, lam_w=s * ratio, lam_h=s / ratio, bias=bias)
    gt = ground_truth.mse_m1_global_min(inst)
    y = np.asarray(gt["label_singular_values"])
    y = y[y > 1e-12]
    assume(np.all(np.abs(y - tau) >= MARGIN * y))  # away from every phase boundary
    if d < len(y):  # the kept d modes must be unambiguous
        assume(y[d - 1] >= (1 + MARGIN) * y[d])
    return inst


def _check_against_ground_truth(inst: Instance, run: solvers.RunResult) -> None:
    gt = ground_truth.mse_m1_global_min(inst)
    assert run.stop_reason == "converged", run.message
    fstar = gt["objective"]
    rel = abs(run.objective - fstar) / abs(fstar)
    assert rel <= REL_TOL, f"relative objective error {rel:.3g} > {REL_TOL} (f = {run.objective!r}, f* = {fstar!r})"
    p = run.params.to_numpy()
    W, H = p["weights"][0], p["H"]
    # argmin accuracy: ||dx|| <= g / mu (mu >~ 1e-5), so ||dZ|| <= (||W|| + ||H||) g / mu
    atol = 1e-9 + 1e5 * run.grad_norm * (np.linalg.norm(W) + np.linalg.norm(H))
    sv = np.linalg.svd(W @ H, compute_uv=False)
    want = np.zeros_like(sv)
    z = np.asarray(gt["output_singular_values"])[: len(sv)]
    want[: len(z)] = z
    np.testing.assert_allclose(sv, want, atol=atol, rtol=0)
    if inst.width >= inst.K:  # the optimal output Z = W H is unique then
        assert np.linalg.norm(W @ H - gt["Z"]) <= atol * math.sqrt(inst.K)
    if inst.bias:
        np.testing.assert_allclose(p["b"], gt["b"], atol=1e3 * atol)


@given(inst=m1_mse_instances())
def test_lbfgs_reaches_mse_m1_global_minimum(inst):
    res = solvers.solve(inst, solver="lbfgs", starts=1, seed=3, device="cpu")
    _check_against_ground_truth(inst, res.best)


@pytest.mark.parametrize("bias", [False, True])
def test_lbfgs_ground_truth_imbalanced_with_collapsing_class(bias):
    # N = 30, tau = N sqrt(lw lh) = 1.8: class 3 (n = 2, sqrt 1.41) collapses, class 2 (n = 8) survives.
    counts = [20, 8, 2]
    lam = 1.8 / 30
    inst = Instance.create(counts, width=4, lam_w=lam * 2, lam_h=lam / 2, bias=bias)
    gt = ground_truth.mse_m1_global_min(inst)
    if not bias:
        assert gt["collapsed"] == [False, False, True]
        assert [n <= 30 ** 2 * lam ** 2 for n in counts] == gt["collapsed"]
    res = solvers.solve(inst, solver="lbfgs", starts=2, seed=0, device="cpu")
    for run in res.runs:
        _check_against_ground_truth(inst, run)
    assert res.spread is not None and res.spread[1] - res.spread[0] <= REL_TOL * gt["objective"]
    out = metrics.measure(inst, res.best.params)
    if not bias:  # GOF: W W^T diagonal, the collapsed class has a zero class mean
        assert out["metrics"]["nc2_W_diag"] < 1e-6
        assert out["class_mean_norms"][2] < 1e-6


def test_all_classes_collapse_to_zero():
    inst = Instance.create([5, 3, 4], width=3, lam_w=0.4, lam_h=0.4)
    gt = ground_truth.mse_m1_global_min(inst)
    assert gt["output_singular_values"] == [0.0, 0.0, 0.0] and gt["objective"] == pytest.approx(0.5)
    run = solvers.solve(inst, starts=1, device="cpu").best
    _check_against_ground_truth(inst, run)
    out = metrics.measure(inst, run.params)
    assert out["metrics"]["nc2_W_OF"] is None and out["metrics"]["notes"]["W"] == metrics.COLLAPSED


def test_gd_reaches_mse_m1_global_minimum():
    inst = Instance.create([6, 3, 2], width=3, lam_w=0.03, lam_h=0.03)  # tau = 0.33: nothing collapses
    gt = ground_truth.mse_m1_global_min(inst)
    run = solvers.solve(inst, solver="gd", starts=1, seed=1, device="cpu", grad_tol=1e-9).best
    assert run.stop_reason == "converged"
    # with ||g|| <= 1e-9 the stationarity bound gives f - f* <= 1e-18 / (2 mu) with mu ~ 1e-2 here
    assert abs(run.objective - gt["objective"]) <= REL_TOL * gt["objective"]
    assert len(run.history) == run.iterations + 1 and run.grad_evals == run.iterations + 1


def test_ground_truth_point_is_a_critical_point_with_value_fstar():
    """The derivation's construction (W, H from the SVD of Z*) evaluated by the torch model."""
    for bias in (False, True):
        inst = Instance.create([7, 4, 1], width=4, lam_w=0.02, lam_h=0.05, bias=bias)
        gt = ground_truth.mse_m1_global_min(inst)
        U, z, Vt = np.linalg.svd(gt["Z"], full_matrices=False)
        z[z <= 1e-12 * z.max()] = 0.0  # SVD rounding of exact zeros (sqrt(1e-16) would be 1e-8)
        lw, lh = inst.lam_w[0], inst.lam_h
        a = np.sqrt(z * np.sqrt(lh / lw))
        c = np.sqrt(z * np.sqrt(lw / lh))
        R = np.linalg.qr(np.random.default_rng(0).standard_normal((4, 3)))[0]
        W = (U * a) @ R.T
        H = R @ (c[:, None] * Vt)
        p = models.Params.from_numpy({"weights": [W], "H": H, "b": gt["b"]})
        x = p.flatten().requires_grad_(True)
        f = models.flat_objective(inst, models.labels(inst.counts))(x)
        (g,) = torch.autograd.grad(f, x)
        assert float(f.detach()) == pytest.approx(gt["objective"], rel=1e-13)
        assert float(g.norm()) < 1e-13


def test_ground_truth_rejects_uncovered_instances():
    for inst in (Instance.create([2, 2], width=2, loss="ce"), Instance.create([2, 2], width=2, depth=2),
                 Instance.create([2, 2], width=2, bias=True, lam_b=0.1)):
        with pytest.raises(InstanceError):
            ground_truth.mse_m1_global_min(inst)


def test_reproducible_and_seeded():
    inst = Instance.create([4, 2, 3], width=3, depth=2, lam_w=1e-2, lam_h=1e-2, loss="ce")
    a = solvers.solve(inst, starts=2, seed=5, device="cpu", max_iter=60)
    b = solvers.solve(inst, starts=2, seed=5, device="cpu", max_iter=60)
    for ra, rb in zip(a.runs, b.runs):
        assert ra.objective == rb.objective and ra.history == rb.history
        assert torch.equal(ra.params.flatten(), rb.params.flatten())
    assert [r.seed for r in a.runs] == [5, 6]
    p5 = models.init_params(inst, torch.Generator().manual_seed(5))
    p6 = models.init_params(inst, torch.Generator().manual_seed(6))
    assert not torch.equal(p5.flatten(), p6.flatten())
    assert not torch.equal(a.runs[0].params.flatten(), a.runs[1].params.flatten())


def test_stop_reasons():
    inst = Instance.create([3, 2], width=2, lam_w=1e-2, lam_h=1e-2)
    p0 = models.init_params(inst, torch.Generator().manual_seed(0), std=1.0)
    div = solvers.gd(inst, p0, lr=1e3, momentum=0.9, max_iter=10_000)
    assert div.stop_reason == "diverged"
    assert not math.isnan(div.objective) and not math.isnan(div.grad_norm)
    assert torch.isfinite(div.params.flatten()).all()
    bud = solvers.gd(inst, p0, max_iter=3)
    assert bud.stop_reason == "budget" and bud.iterations == 3 and bud.grad_evals == 4
    bud2 = solvers.lbfgs(inst, p0, max_iter=2)
    assert bud2.stop_reason == "budget" and bud2.iterations == 2
    ok = solvers.lbfgs(inst, p0)
    assert ok.stop_reason == "converged" and ok.grad_norm <= solvers.LBFGS_GRAD_TOL
    stopped = solvers.lbfgs(inst, p0, callback=lambda it, f, g, ev: it >= 1)
    assert stopped.stop_reason == "budget" and stopped.message == "stopped by callback"


def test_multistart_best_and_progress():
    inst = Instance.create([3, 3], width=2, lam_w=1e-2, lam_h=1e-2)
    seen = []
    res = solvers.solve(inst, starts=3, seed=0, device="cpu", progress=lambda i, r: seen.append(i))
    assert seen == [0, 1, 2] and len(res.runs) == 3
    assert res.best.objective == min(r.objective for r in res.runs)
    assert res.runs[0].summary()["stop_reason"] == "converged"


def test_cuda_without_cuda_raises():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(InstanceError, match="device cuda requested but CUDA is not available"):
        solvers.solve(Instance.create([2, 2], width=2), device="cuda")


@pytest.mark.gpu
def test_tiny_solve_on_cuda_matches_cpu():
    inst = Instance.create([3, 2], width=2, lam_w=1e-2, lam_h=1e-2)
    gpu = solvers.solve(inst, starts=1, seed=0, device="cuda").best
    cpu = solvers.solve(inst, starts=1, seed=0, device="cpu").best
    assert gpu.device.startswith("cuda") and gpu.stop_reason == "converged"
    assert gpu.objective == pytest.approx(cpu.objective, rel=1e-10)


def test_callback_may_take_the_parameter_vector():
    inst = Instance.create([3, 2], width=2, lam_w=1e-2, lam_h=1e-2)
    p0 = models.init_params(inst, torch.Generator().manual_seed(0))
    seen = []

    def cb(it, f, g, evals, x=None):
        seen.append((f, x))
        return it >= 2

    for solver in (solvers.gd, solvers.lbfgs):
        seen.clear()
        solver(inst, p0, callback=cb)
        assert len(seen) == 3
        for f, x in seen:
            assert float(models.objective(inst, models.Params.unflatten(inst, x))) == pytest.approx(f, rel=1e-14)
