"""numerics.eliminated (MSE with H eliminated in closed form) and numerics.resources (the memory budget).

The reduced objective F(W, b) must equal the full objective f at the lifted point (W, H*(W, b), b) and lie below f
at every other H (H* is the partial minimizer: the lemma ``mse-feature-elimination``); at the lifted point the
full gradient's H block vanishes and its W and b blocks equal grad F (the envelope theorem). The solver must reach
the derived global minimum (``theory.derive``) at the papers' scale.
"""
from __future__ import annotations

import math

import pytest
import torch

from ncverify.numerics import eliminated, models, resources, starts
from ncverify.numerics.problem import Instance, InstanceError
from ncverify.theory.derive import derive

CASES = [  # (counts, width, depth, bias)
    ([3, 2, 4], 5, 1, False),
    ([2, 2, 2, 2], 4, 3, False),
    ([5, 1, 3], 6, 2, True),
    ([4, 4], 3, 1, True),
]


def _inst(counts, width, depth, bias, lam=0.05):
    return Instance.create(counts, width=width, depth=depth, lam_w=[lam * (j + 1) for j in range(depth)], lam_h=lam,
                           bias=bias)


@pytest.mark.parametrize("counts,width,depth,bias", CASES)
def test_reduced_objective_is_the_partial_minimum(counts, width, depth, bias):
    inst = _inst(counts, width, depth, bias)
    gen = torch.Generator().manual_seed(1)
    p = models.init_params(inst, gen, std=0.7)
    if bias:
        p.b = torch.randn(inst.K, generator=gen, dtype=torch.float64)
    x = eliminated.pack(inst, p)
    F = float(eliminated.reduced_objective(inst)(x))
    lifted = eliminated.lift(inst, x)
    f_lift = float(models.objective(inst, lifted))
    assert abs(F - f_lift) <= 1e-13 * max(1.0, abs(F))
    for k in range(5):  # any other H is higher (strong convexity in H)
        H = lifted.H + 0.1 * torch.randn(lifted.H.shape, generator=gen, dtype=torch.float64)
        other = models.Params(lifted.weights, H, lifted.b)
        assert float(models.objective(inst, other)) > f_lift
    # the full gradient at the lifted point: zero in H, grad F in (W, b)
    xf = lifted.flatten().detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(models.flat_objective(inst, models.labels(inst.counts))(xf), xf)
    gp = models.Params.unflatten(inst, g)
    xr = x.clone().requires_grad_(True)
    (gF,) = torch.autograd.grad(eliminated.reduced_objective(inst)(xr), xr)
    assert float(gp.H.norm()) <= 1e-12 * max(1.0, float(g.norm()))
    assert torch.allclose(eliminated.pack(inst, gp), gF, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("counts,depth", [([100] * 4, 3), ([200, 100, 50, 50], 3), ([120] * 3, 1)])
def test_the_eliminated_solver_reaches_the_derived_minimum(counts, depth):
    inst = Instance.create(counts, width=64, depth=depth, lam_w=[5e-4] * depth, lam_h=5e-4)
    assert eliminated.eligible(inst)
    fstar = float(derive("mse-deep", inst, exact=False).objective.value)
    res = starts.multistart(inst, solver="lbfgs", starts=2, seed=0)
    best = res.best
    assert "features eliminated" in best.message
    assert best.stop_reason == "converged" and best.grad_norm <= 1e-10
    assert abs(best.objective - fstar) <= 1e-12 * fstar
    # the reported objective is the full one at the returned (full-size) point
    assert best.params.H.shape == (64, inst.N)
    assert float(models.objective(inst, best.params)) == pytest.approx(best.objective, rel=1e-15, abs=0)


def test_the_eliminated_solver_with_a_bias():
    inst = Instance.create([150] * 3, width=48, depth=2, lam_w=[1e-3, 1e-3], lam_h=1e-3, bias=True)
    assert eliminated.eligible(inst)
    fstar = float(derive("mse-deep-bias", inst, exact=False).objective.value)
    best = starts.multistart(inst, solver="lbfgs", starts=1, seed=0).best
    assert best.stop_reason == "converged"
    assert abs(best.objective - fstar) <= 1e-12 * fstar
    assert torch.allclose(best.params.b, torch.full((3,), 1 / 3, dtype=torch.float64), atol=1e-8)


def test_small_instances_and_other_losses_keep_the_batched_solver():
    assert not eliminated.eligible(Instance.create([3, 3], width=2, lam_w=0.1, lam_h=0.1))
    big = dict(width=64, depth=3, lam_w=[5e-4] * 3, lam_h=5e-4)
    assert not eliminated.eligible(Instance.create([100] * 4, loss="ce", **big))
    assert not eliminated.eligible(Instance.create([100] * 4, depth=2, width=64, lam_w=[5e-4] * 2, lam_h=5e-4,
                                                   activation="relu"))
    res = starts.multistart(Instance.create([3, 3], width=2, lam_w=0.1, lam_h=0.1), solver="lbfgs", starts=1, seed=0)
    assert "features eliminated" not in res.best.message


# -- memory budget -------------------------------------------------------------------------------------------
def test_parse_bytes():
    assert resources.parse_bytes("8GB") == 8 * 10 ** 9
    assert resources.parse_bytes("512MiB") == 512 * 2 ** 20
    assert resources.parse_bytes("1e6") == 10 ** 6
    for bad in ("", "8 parsecs", "-1GB", "0"):
        with pytest.raises(InstanceError):
            resources.parse_bytes(bad)


def test_oversize_instances_are_refused_with_both_sizes(monkeypatch):
    inst = Instance.create([500] * 10, width=512, depth=3, lam_w=[5e-4] * 3, lam_h=5e-4)
    with pytest.raises(resources.MemoryBudgetError) as err:
        resources.require_fits(inst, 3, "1GB")
    msg = str(err.value)
    assert "\n" not in msg and "3089408 parameters" in msg and "1 GB" in msg and "--memory-budget" in msg
    from ncverify import api  # the Python API refuses it the same way, before any work

    big = dict(classes=10, per_class=500, width=512, depth=3, lam_w=[5e-4] * 3, lam_h=5e-4)
    with pytest.raises(resources.MemoryBudgetError):
        api.solve(memory_budget="1GB", **big)
    with pytest.raises(resources.MemoryBudgetError):
        api.check("dang2023.mse-deep", memory_budget=10 ** 9, **big)
    monkeypatch.setenv(resources.ENV, "2GB")
    assert resources.memory_budget() == 2 * 10 ** 9
    with pytest.raises(resources.MemoryBudgetError):
        resources.require_fits(inst, 3)
    resources.require_fits(Instance.create([100] * 4, width=64, depth=3, lam_w=[5e-4] * 3, lam_h=5e-4), 3)


def test_lanczos_steps_follow_the_budget():
    P = 3_000_000
    assert resources.lanczos_steps(P, 10 ** 12) == 400  # capped at curvature.LANCZOS_MAX_ITER
    small = resources.lanczos_steps(P, 2 * 10 ** 9)
    assert (small + 1) * 8 * P <= resources.LANCZOS_SHARE * 2 * 10 ** 9 < (small + 2) * 8 * P
    assert math.isfinite(resources.check_bytes(Instance.create([2, 2], width=2, lam_w=0.1, lam_h=0.1)))
