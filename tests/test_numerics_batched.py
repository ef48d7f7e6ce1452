"""The batched solvers (numerics.batched) against the one-at-a-time reference (numerics.solvers, numerics.models):
exact padding, the compact L-BFGS product, agreement of end points, isolation of diverging problems,
reproducibility, the start portfolio, and the CUDA path (gpu-marked)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, strategies as st

from ncverify.numerics import batched, models, solvers, starts
from ncverify.numerics.problem import Instance

MIXED = [
    Instance.create((2, 3), width=2, depth=1, lam_w=0.01, lam_h=0.02, loss="mse"),
    Instance.create((3, 1, 2), width=4, depth=3, lam_w=(0.01, 0.002, 0.03), lam_h=0.005, loss="ce"),
    Instance.create((2, 2, 2, 2), width=5, depth=2, lam_w=0.003, lam_h=0.004, loss="ce", bias=True, lam_b=0.01),
    Instance.create((4, 1), width=3, depth=2, lam_w=0.02, lam_h=0.01, loss="mse", bias=True),
    Instance.create((3, 3, 3), width=3, depth=2, lam_w=0.01, lam_h=0.01, loss="mse", activation="relu"),
    Instance.create((1, 5, 2), width=6, depth=4, lam_w=0.001, lam_h=0.001, loss="mse"),
]


def _reference(inst: Instance, params: models.Params) -> tuple[float, torch.Tensor]:
    x = params.flatten().detach().clone().requires_grad_(True)
    f = models.flat_objective(inst, models.labels(inst.counts))(x)
    (g,) = torch.autograd.grad(f, x)
    return float(f.detach()), g


def _random_points(insts, seed=0, std=0.7):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for inst in insts:
        p = models.init_params(inst, gen, std=std)
        if p.b is not None:
            p.b = torch.randn(inst.K, generator=gen, dtype=torch.float64)
        out.append(p)
    return out


def test_padding_changes_no_objective_and_no_gradient():
    """Different K, d, N, depth, loss, bias and activation in one padded batch: every problem's objective and
    gradient equal the reference evaluation of that problem alone (to rounding)."""
    pts = _random_points(MIXED)
    grp = batched.Group(MIXED, torch.device("cpu"))
    assert len({batched.group_key(i) for i in MIXED}) == 1
    X = grp.pad([p.flatten() for p in pts])
    f, g = grp.value_and_grad(X)
    for k, (inst, p) in enumerate(zip(MIXED, pts)):
        fr, gr = _reference(inst, p)
        assert float(f[k]) == pytest.approx(fr, rel=1e-14)
        gk = grp.unpad(g, k)
        assert torch.allclose(gk, gr, rtol=1e-12, atol=1e-14 * float(gr.abs().max()))
        # padded coordinates carry zero gradient and keep their fill
        pad = torch.ones(grp.n, dtype=torch.bool)
        pad[grp.index[k]] = False
        assert bool((g[k][pad] == 0).all())
        assert bool((X[k][pad] == grp.fill[k][pad]).all())


def test_padding_of_a_registered_loss():
    insts = [Instance.create((2, 3, 1), width=3, depth=2, lam_w=0.01, lam_h=0.01, loss="ce-ls:0.1"),
             Instance.create((4, 4, 4), width=5, depth=1, lam_w=0.02, lam_h=0.01, loss="ce-ls:0.1", bias=True)]
    pts = _random_points(insts, seed=3)
    grp = batched.Group(insts, torch.device("cpu"))
    f, g = grp.value_and_grad(grp.pad([p.flatten() for p in pts]))
    for k, (inst, p) in enumerate(zip(insts, pts)):
        fr, gr = _reference(inst, p)
        assert float(f[k]) == pytest.approx(fr, rel=1e-14)
        assert torch.allclose(grp.unpad(g, k), gr, rtol=1e-12, atol=1e-15)


def test_buckets_keep_registered_losses_apart_and_bound_the_padding():
    insts = MIXED + [Instance.create((2, 2), width=2, loss="focal:2"), Instance.create((2, 2, 2), width=3, loss="focal:2")]
    groups = batched.buckets(insts, waste=3.0)
    assert sorted(i for g in groups for i in g) == list(range(len(insts)))
    for g in groups:
        assert len({batched.group_key(insts[i]) for i in g}) == 1
        assert batched.padded_size([insts[i] for i in g]) <= 3.0 * min(models.num_params(insts[i]) for i in g)


def test_hessian_vector_products_match_finite_differences():
    pts = _random_points(MIXED[:3], seed=1, std=0.5)
    grp = batched.Group(MIXED[:3], torch.device("cpu"))
    X = grp.pad([p.flatten() for p in pts])
    V = torch.randn(X.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * grp.mask
    HV = grp.hvp_at(X)(V)
    eps = 1e-6
    fd = (grp.value_and_grad(X + eps * V)[1] - grp.value_and_grad(X - eps * V)[1]) / (2 * eps)
    assert torch.allclose(HV, fd, rtol=1e-5, atol=1e-7)


def _two_loop(g, pairs, gamma):
    """The textbook L-BFGS two-loop recursion, pairs oldest first."""
    q = g.clone()
    alphas = []
    for s, y in reversed(pairs):
        a = float(s @ q) / float(s @ y)
        alphas.append(a)
        q = q - a * y
    r = gamma * q
    for (s, y), a in zip(pairs, reversed(alphas)):
        b = float(y @ r) / float(s @ y)
        r = r + (a - b) * s
    return r


def test_compact_lbfgs_product_equals_the_two_loop_recursion():
    """The compact form with ring-ordered slots and an empty slot gives the two-loop recursion's H g."""
    torch.manual_seed(0)
    n, m = 9, 5
    A = torch.randn(n, n, dtype=torch.float64)
    A = A @ A.T + n * torch.eye(n, dtype=torch.float64)  # SPD: y = A s gives s^T y > 0
    pairs = [(s, A @ s) for s in (torch.randn(n, dtype=torch.float64) for _ in range(4))]
    slots = [3, 4, 0, 1]  # chronological pair k sits in slot slots[k] (the ring wrapped); slot 2 is empty
    P = torch.zeros(1, 2 * m, n, dtype=torch.float64)
    stamp = torch.full((1, m), -1, dtype=torch.long)
    for k, ((s, y), j) in enumerate(zip(pairs, slots)):
        P[0, j], P[0, m + j], stamp[0, j] = s, y, 10 + k
    S, Y = P[:, :m], P[:, m:]
    SY, YY = torch.bmm(S, Y.transpose(1, 2)), torch.bmm(Y, Y.transpose(1, 2))
    g = torch.randn(n, dtype=torch.float64)
    gamma = torch.tensor([float(pairs[-1][0] @ pairs[-1][1]) / float(pairs[-1][1] @ pairs[-1][1])], dtype=torch.float64)
    u, top = batched._solve_small(SY, YY, stamp, gamma, torch.bmm(P, g[None, :, None]).squeeze(2))
    Hg = gamma * g + top[0] @ S[0] - gamma * (u[0] @ Y[0])
    assert torch.allclose(Hg, _two_loop(g, pairs, float(gamma)), rtol=1e-11, atol=1e-12)


@given(K=st.integers(2, 5), n=st.integers(1, 4), extra=st.integers(0, 2), loss=st.sampled_from(["mse", "ce"]),
       lam=st.floats(1e-3, 5e-2), imbalanced=st.booleans())
def test_batched_and_one_at_a_time_agree_where_every_local_minimum_is_global(K, n, extra, loss, lam, imbalanced):
    """Depth 1 (the MSE and CE unconstrained-features models, whose local minima are all global): from the same
    three portfolio starts both paths converge, and their best objectives and the singular values of W at the
    best points agree. (Deeper objectives have distinct local minima; see the next test.)"""
    counts = [n + (k % 3 if imbalanced else 0) for k in range(K)]
    inst = Instance.create(counts, width=K + extra, depth=1, lam_w=lam, lam_h=lam * 1.3, loss=loss)
    b = starts.multistart(inst, solver="lbfgs", starts=3, seed=0, device="cpu")
    ref = starts.multistart(inst, solver="lbfgs", starts=3, seed=0, device="cpu", engine="loop")
    assert [r.stop_reason for r in b.runs] == [r.stop_reason for r in ref.runs] == ["converged"] * 3
    assert b.best.objective == pytest.approx(ref.best.objective, rel=1e-10)
    sb = torch.linalg.svdvals(_product(b.best.params))
    sr = torch.linalg.svdvals(_product(ref.best.params))
    assert torch.allclose(sb, sr, atol=1e-5 * max(1.0, float(sr[0])))


@given(K=st.integers(2, 5), n=st.integers(1, 4), depth=st.integers(2, 3), extra=st.integers(0, 2),
       loss=st.sampled_from(["mse", "ce"]), lam=st.floats(1e-3, 5e-2), imbalanced=st.booleans())
def test_each_path_accepts_the_other_paths_minimizers(K, n, depth, extra, loss, lam, imbalanced):
    """Deep objectives have distinct local minima, and two different L-BFGS variants (the batched one, torch's
    one at a time) from one start may end in different ones. What must agree is the objective and the notion of
    a minimizer: every start converges on both paths, and each path, started at every end point of the other,
    stays there (same objective to 1e-10, converged within a few iterations)."""
    counts = [n + (k % 3 if imbalanced else 0) for k in range(K)]
    inst = Instance.create(counts, width=K + extra, depth=depth, lam_w=lam, lam_h=lam * 1.3, loss=loss)
    b = starts.multistart(inst, solver="lbfgs", starts=3, seed=0, device="cpu")
    ref = starts.multistart(inst, solver="lbfgs", starts=3, seed=0, device="cpu", engine="loop")
    assert [r.stop_reason for r in b.runs] == [r.stop_reason for r in ref.runs] == ["converged"] * 3
    from_loop = batched.solve_problems([batched.Problem(inst, r.params) for r in ref.runs])
    for r, again in zip(ref.runs, from_loop):
        assert again.stop_reason == "converged" and again.iterations <= 20
        assert again.objective == pytest.approx(r.objective, rel=1e-10)
    for r in b.runs:
        again = solvers.lbfgs(inst, r.params)
        assert again.stop_reason == "converged" and again.iterations <= 20
        assert again.objective == pytest.approx(r.objective, rel=1e-10)


def _product(p: models.Params) -> torch.Tensor:
    W = p.weights[0]
    for Wj in p.weights[1:]:
        W = Wj @ W
    return W


def test_scaled_lbfgs_stops_on_the_true_gradient():
    """The batched L-BFGS runs in block-scaled variables (lambdas three decades apart here, so the scales c_A =
    sqrt(lambda_ref / lambda_A) differ by sqrt(1000)); its stop test and reported ||grad f|| are those of f in the original variables: recomputed by
    autograd of ``numerics.models`` at each returned point, the norm matches and is below the tolerance."""
    inst = Instance.create((3, 2, 2), width=4, depth=3, lam_w=(1e-4, 1e-2, 1e-3), lam_h=1e-1, loss="ce")
    assert max(batched.block_scales(inst)) / min(batched.block_scales(inst)) == pytest.approx(1000 ** 0.5)
    runs = starts.multistart(inst, solver="lbfgs", starts=3, seed=0, device="cpu").runs
    for r in runs:
        x = r.params.flatten().clone().requires_grad_(True)
        f = models.flat_objective(inst, models.labels(inst.counts))(x)
        (g,) = torch.autograd.grad(f, x)
        assert r.stop_reason == "converged"
        assert float(g.norm()) <= solvers.LBFGS_GRAD_TOL
        assert float(g.norm()) == pytest.approx(r.grad_norm, rel=1e-3, abs=1e-13)


def test_one_diverging_problem_leaves_the_others_untouched():
    """gd with lr 0.1 diverges on a problem with lambda_H = 1e4; in a batch with two ordinary problems those
    reach the same end points as alone, with the same stop reasons."""
    good = [Instance.create((3, 2), width=3, depth=2, lam_w=0.05, lam_h=0.05),
            Instance.create((2, 2, 2), width=3, depth=1, lam_w=0.05, lam_h=0.05, loss="ce")]
    bad = Instance.create((3, 2), width=3, depth=2, lam_w=0.05, lam_h=1e4)
    probs = [batched.Problem(i, models.init_params(i, torch.Generator().manual_seed(k))) for k, i in enumerate(good + [bad])]
    together = batched.solve_problems(probs, solver="gd", max_iter=20_000, grad_tol=1e-8)
    assert together[2].stop_reason == "diverged" and math.isfinite(together[2].objective)
    for k in range(2):
        alone = batched.solve_problems([probs[k]], solver="gd", max_iter=20_000, grad_tol=1e-8)[0]
        assert together[k].stop_reason == alone.stop_reason == "converged"
        assert together[k].objective == pytest.approx(alone.objective, rel=1e-12)
        assert torch.allclose(together[k].params.flatten(), alone.params.flatten(), atol=1e-7)


def test_non_finite_start_is_diverged_and_the_rest_converge():
    inst = Instance.create((2, 3), width=2, depth=2, lam_w=0.02, lam_h=0.02)
    p_bad = models.init_params(inst, torch.Generator().manual_seed(0))
    p_bad.H[0, 0] = math.nan
    probs = [batched.Problem(inst, p_bad)] + starts.portfolio_problems([inst], starts=2, seed=0)
    res = batched.solve_problems(probs)
    assert res[0].stop_reason == "diverged" and res[0].objective == math.inf
    assert [r.stop_reason for r in res[1:]] == ["converged", "converged"]


def test_same_seed_same_numbers_and_merging_is_exact():
    probs = starts.portfolio_problems(MIXED, starts=2, seed=4)
    a = batched.solve_problems(probs)
    b = batched.solve_problems(probs)
    for ra, rb in zip(a, b):
        assert torch.equal(ra.params.flatten(), rb.params.flatten()) and ra.history == rb.history
        assert ra.objective == rb.objective and ra.iterations == rb.iterations
    # moving rows into one batch of another padding moves only real coordinates
    grp1 = batched.Group(MIXED[:2], torch.device("cpu"))
    grp2 = batched.Group(MIXED[2:4], torch.device("cpu"))
    pts = _random_points(MIXED[:4], seed=9)
    w1 = batched._Work(grp1, torch.tensor([0, 1]), X=grp1.pad([p.flatten() for p in pts[:2]]),
                       g=torch.zeros(2, grp1.n, dtype=torch.float64), f=torch.zeros(2, dtype=torch.float64))
    w2 = batched._Work(grp2, torch.tensor([2, 3]), X=grp2.pad([p.flatten() for p in pts[2:]]),
                       g=torch.zeros(2, grp2.n, dtype=torch.float64), f=torch.zeros(2, dtype=torch.float64))
    merged = batched._merge([w1, w2])
    f, _ = merged.group.value_and_grad(merged.s["X"])
    for k, p in enumerate(pts):
        assert torch.equal(merged.group.unpad(merged.s["X"], k), p.flatten())
        assert float(f[k]) == pytest.approx(_reference(MIXED[k], p)[0], rel=1e-14)


def test_portfolio_kinds_seeds_and_low_rank_starts():
    inst = Instance.create((3, 3, 3, 3), width=5, depth=3, lam_w=0.01, lam_h=0.01)
    res = starts.multistart(inst, solver="lbfgs", starts=8, seed=7, device="cpu", max_iter=5)
    assert [r.start for r in res.runs] == list(range(8)) and [r.seed for r in res.runs] == [7 + i for i in range(8)]
    kinds = [r.init for r in res.runs]
    assert all(r.message.endswith(f"init {k}") for r, k in zip(res.runs, kinds))
    assert kinds == ["std 0.1", "balanced", "low-rank 3", "std 1", "balanced", "low-rank 2", "std 0.01", "balanced"]
    p0, kind = starts.portfolio_start(inst, 2, 7)
    assert kind == "low-rank 3"
    sv = torch.linalg.svdvals(_product(p0) @ p0.H)
    # rank 3 at the labels' scale sqrt(N/K), plus the small generic perturbation
    assert torch.allclose(sv[:3], torch.full((3,), math.sqrt(inst.N / inst.K), dtype=torch.float64), rtol=0.05)
    assert float(sv[3]) < 0.05 * float(sv[0])
    # the one-at-a-time engine starts from the same points
    loop = starts.multistart(inst, solver="lbfgs", starts=3, seed=7, device="cpu", max_iter=0, engine="loop")
    for i, r in enumerate(loop.runs):
        assert torch.equal(r.params.flatten(), starts.portfolio_start(inst, i, 7)[0].flatten())


def test_solve_finds_the_global_minimum_of_a_deep_imbalanced_instance():
    """The instance where Gaussian starts end in a partly collapsed minimum (0.1536, two classes dead): the
    default portfolio reaches the derived global minimum."""
    from ncverify.theory.derive import derive

    inst = Instance.create((9, 6, 3, 2), width=6, depth=3, lam_w=(0.003, 0.006, 0.004), lam_h=0.005)
    fstar = float(derive("mse-deep", inst).objective.value)
    res = starts.multistart(inst, solver="lbfgs", starts=3, seed=0)
    assert res.best.objective == pytest.approx(fstar, rel=1e-10)
    assert fstar == pytest.approx(0.0501575, abs=5e-8)


def test_gd_snapshots_and_history():
    inst = MIXED[0]
    p0 = models.init_params(inst, torch.Generator().manual_seed(0))
    run = batched.solve_problems([batched.Problem(inst, p0)], solver="gd", max_iter=100, grad_tol=0.0,
                                 snapshot_every=25)[0]
    assert [it for it, _ in run.snapshots] == [0, 25, 50, 75, 100]
    assert torch.equal(run.snapshots[0][1], p0.flatten())
    assert len(run.history) == 101 and run.stop_reason == "budget"
    ref = solvers.gd(inst, p0, max_iter=100, grad_tol=0.0)
    assert run.history[-1] == pytest.approx(ref.history[-1], rel=1e-12)


def test_bad_arguments_are_refused():
    inst = MIXED[0]
    p0 = models.init_params(inst, torch.Generator().manual_seed(0))
    with pytest.raises(batched.InstanceError, match="solver must be one of"):
        batched.solve_problems([batched.Problem(inst, p0)], solver="adam")
    with pytest.raises(batched.InstanceError, match="gd needs lr > 0"):
        batched.solve_problems([batched.Problem(inst, p0)], solver="gd", lr=-1.0)
    with pytest.raises(batched.InstanceError, match="do not match"):
        batched.solve_problems([batched.Problem(MIXED[1], p0)])
    assert batched.solve_problems([]) == []


@pytest.mark.gpu
def test_batched_on_cuda_matches_cpu():
    probs = starts.portfolio_problems(MIXED[:3], starts=2, seed=0)
    cpu = batched.solve_problems(probs, device="cpu")
    gpu = batched.solve_problems(probs, device="cuda")
    for a, b in zip(cpu, gpu):
        assert b.device.startswith("cuda") and b.stop_reason == a.stop_reason
        assert b.objective == pytest.approx(a.objective, rel=1e-9)


def test_stragglers_of_different_registered_losses_are_not_merged():
    """Slow rows of batches with different registered losses finish in separate tail batches."""
    insts = [Instance.create((2, 2), width=2, depth=2, lam_w=1e-3, lam_h=1e-3, loss=f"ce-ls:{d}") for d in (0.1, 0.3)]
    probs = starts.portfolio_problems(insts, starts=3, seed=0)
    res = batched.solve_problems(probs)
    assert all(r.stop_reason == "converged" for r in res)
    for k, inst in enumerate(insts):
        alone = batched.solve_problems(probs[3 * k:3 * k + 3])
        assert min(r.objective for r in res[3 * k:3 * k + 3]) == pytest.approx(min(r.objective for r in alone), rel=1e-10)
