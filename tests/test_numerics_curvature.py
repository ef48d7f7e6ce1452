"""numerics.curvature: Hessian-free (Lanczos) curvature transverse to the symmetry orbit, against the dense reference.

Tolerances (derived from the stopping rule, not tuned):
* the Lanczos run stops when the smallest Ritz pair (theta, y) has ||P_perp Hess y - theta y|| = r <= tol |theta| +
  atol ||Hess|| (defaults 1e-8, 1e-12), and mu = theta - r; some eigenvalue lies within r of theta and theta is at
  most r^2 / gap above it, so |mu - lambda_min| <= 2 r ~ 2e-8 lambda_min: the 1e-6 relative agreement has a
  factor 50 to spare. mu <= lambda_min holds up to the resolution of that same rule (RES below): eigenvalue clusters
  split by less than r (e.g. by the O(||grad||) perturbation of a degenerate cluster at a point that is critical
  only to 1e-10) are one eigenvalue for the stopping rule;
* the dense reference eigenvalues carry rounding ~ P eps ||Hess|| <= 1e-13 ||Hess|| at these sizes;
* solver end points have ||grad f|| <= 1e-10 (the L-BFGS default), so the orbit directions have
  ||Hess t|| / ||t|| = ||T_g a|| / ||T_theta a|| ~ 1e-10 / (factor scale ~ 1): ZERO_REL = 1e-8 leaves a wide margin
  and stays below the zero-mode cutoff sqrt(eps) ~ 1.5e-8 (relative to ||Hess|| ~ 0.1 - 1).
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from ncverify.numerics import curvature as cv
from ncverify.numerics import diagnostics, models, solvers, starts
from ncverify.numerics.problem import Instance, InstanceError

REL = 1e-6
ZERO_REL = 1e-8
EXACT = 1e-13

INSTANCES = {
    "mse-M1": Instance.create((3, 3, 3), width=3, depth=1, lam_w=1e-2, lam_h=1e-2),
    "mse-M1-wide": Instance.create((3, 3, 3), width=4, depth=1, lam_w=1e-2, lam_h=1e-2),
    "mse-M2-imbalanced": Instance.create((2, 3, 4), width=4, depth=2, lam_w=1e-2, lam_h=1e-2),
    "mse-M3": Instance.create((3, 3, 3), width=3, depth=3, lam_w=1e-2, lam_h=1e-2),
    "mse-M3-K4": Instance.create(classes=4, per_class=5, width=5, depth=3, lam_w=1e-2, lam_h=1e-2),
    "ce-M1": Instance.create((3, 3, 3), width=3, depth=1, lam_w=1e-2, lam_h=1e-2, loss="ce"),
    "ce-M2": Instance.create((3, 3, 3), width=4, depth=2, lam_w=1e-2, lam_h=1e-2, loss="ce"),
    "mse-M2-bias": Instance.create((3, 3, 3), width=3, depth=2, lam_w=1e-2, lam_h=1e-2, bias=True, lam_b=1e-2),
    "mse-M1-free-bias": Instance.create((3, 3, 3), width=3, depth=1, lam_w=1e-2, lam_h=1e-2, bias=True),
    "ce-M1-free-bias": Instance.create((3, 3, 3), width=3, depth=1, lam_w=1e-2, lam_h=1e-2, loss="ce", bias=True),
    "identity-M2": Instance.create((3, 3, 3), width=4, depth=2, lam_w=1e-2, lam_h=1e-2, activation="identity"),
    "relu-M2": Instance.create((3, 3, 3), width=3, depth=2, lam_w=1e-2, lam_h=1e-2, activation="relu"),
}
NONDEGENERATE = [k for k in INSTANCES if k != "relu-M2"]


@functools.cache
def _minimizer(name: str) -> torch.Tensor:
    """A converged nonzero local minimizer (L-BFGS from the balanced start: it reaches the full-rank basins; deep
    models also have a local minimum at W = H = 0)."""
    inst = INSTANCES[name]
    run = solvers.lbfgs(inst, starts.balanced_start(inst, torch.Generator().manual_seed(0), "cpu"))
    assert run.stop_reason == "converged" and run.grad_norm <= solvers.LBFGS_GRAD_TOL, run.message
    x = run.params.flatten()
    assert float(x.norm()) > 1.0  # not the collapsed point
    return x


def _random_skews(inst: Instance, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in cv.interfaces(inst):
        B = torch.randn(inst.width, inst.width, generator=g, dtype=torch.float64)
        out.append(B - B.T)
    return out


def _f(inst: Instance):
    return models.flat_objective(inst, models.labels(inst.counts))


# ---------------------------------------------------------------------------------------------
# Lanczos against the dense reference and diagnostics.hessian_info
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NONDEGENERATE)
def test_lanczos_mu_matches_dense_transverse_and_hessian_info(name):
    inst, x = INSTANCES[name], _minimizer(name)
    lan = cv.transverse_curvature(inst, x)
    den = cv.dense_transverse(inst, x)
    info = diagnostics.hessian_info(inst, x)
    lam = float(den["eigenvalues"][0])
    assert lan["available"] is True and lan["method"] == "lanczos" and lan["converged"] is True
    assert lam > den["cutoff"] and info["min_eig"] >= -info["cutoff"]  # a non-degenerate minimum
    # mu: a lower bound that agrees with the smallest transverse eigenvalue
    res = cv.LANCZOS_TOL * lam + cv.LANCZOS_ATOL * den["norm"]
    assert lan["mu"] <= lam + res
    assert abs(lan["mu"] - lam) <= REL * lam
    assert abs(lan["min_eig"] - lam) <= REL * lam and lan["mu_ritz"] == lan["min_eig"]
    assert lan["mu"] == pytest.approx(lan["mu_ritz"] - lan["mu_residual"], rel=1e-15, abs=0)
    assert lan["norm"] == pytest.approx(den["norm"], rel=REL)
    assert lan["cutoff"] == pytest.approx(math.sqrt(cv.EPS) * lan["norm"], rel=1e-15)
    # the existing smallest-above-cutoff definition sees the same number and the same zero modes here
    assert abs(info["mu"] - lam) <= REL * lam
    assert lan["zero_modes"] == den["zero_modes"] == info["zero_modes"]
    assert lan["transverse_dim"] == x.numel() - lan["zero_modes"] == den["eigenvalues"].numel()
    assert den["tangent_residual"] <= ZERO_REL
    assert lan["hvps"] >= lan["iterations"] and lan["iterations"] <= lan["transverse_dim"]


@pytest.mark.parametrize("name", ["mse-M2-imbalanced", "mse-M3-K4", "ce-M2", "identity-M2"])
def test_orbit_left_to_the_cutoff_gives_the_dense_mu(name, monkeypatch):
    """Above ``ORBIT_MAX_COEFFICIENTS`` the orbit is not projected out: its directions are zero modes by the cutoff
    sqrt(eps) ||Hess|| (the dense ``hessian_info`` definition), and the smallest Ritz value above the cutoff is
    followed. mu must then be the dense mu within the stopping rule (REL, as above)."""
    inst, x = INSTANCES[name], _minimizer(name)
    monkeypatch.setattr(cv, "ORBIT_MAX_COEFFICIENTS", 0)
    lan = cv.transverse_curvature(inst, x, above_cutoff=True)
    info = diagnostics.hessian_info(inst, x)
    assert lan["orbit"] == "cutoff" and lan["zero_modes"] == 0 and lan["converged"] is True
    assert lan["mu"] <= info["mu"] * (1 + REL) and abs(lan["mu"] - info["mu"]) <= REL * info["mu"]


def test_zero_mode_counts_of_the_orbit():
    """dim T at the minimizers: d = K = 3, full rank: dim O(3) = 3 per interface (depth 1: 3, depth 3: 9);
    d = 4 > K = 3, depth 1, MSE: H has rank 3, and A H = 0, W A = 0 force A = 0: dim O(4) = 6; CE, no bias, depth 2,
    d = 4: every factor has rank K - 1 = 2 on a common plane per interface, and the skew A of its 2-dim complement
    moves no factor: (6 - 1) + (6 - 1). An unpenalized bias adds the shift b + c 1 for CE (softmax is shift
    invariant) and nothing for MSE."""
    want = {"mse-M1": 3, "mse-M3": 9, "mse-M1-wide": 6, "ce-M2": 10, "ce-M1": 3,
            "ce-M1-free-bias": 4, "mse-M1-free-bias": 3}
    for name, n in want.items():
        lan = cv.transverse_curvature(INSTANCES[name], _minimizer(name))
        assert lan["zero_modes"] == n, name
    free = cv.transverse_curvature(INSTANCES["mse-M1-free-bias"], _minimizer("mse-M1-free-bias"))
    assert free["tangent_rank"] == 4  # the bias shift is a candidate, but MSE curves along it


def test_relu_minimizer_is_flat_beyond_the_orbit():
    """ReLU (depth 2): only (H, W_1) is an orbit, yet the minimizer has further flat directions (in W_1 and H: the
    masked, negative pre-activations are free in the data term). The transverse mu is therefore 0, where the
    dense smallest-above-cutoff mu of hessian_info (which lumps those directions into its zero modes) is not."""
    inst, x = INSTANCES["relu-M2"], _minimizer("relu-M2")
    lan = cv.transverse_curvature(inst, x)
    den = cv.dense_transverse(inst, x)
    info = diagnostics.hessian_info(inst, x)
    assert cv.interfaces(inst) == [(2, 0)]
    assert lan["zero_modes"] == den["zero_modes"] == inst.width * (inst.width - 1) // 2
    assert lan["mu"] == 0.0 and den["mu"] == 0.0
    assert abs(lan["min_eig"] - den["min_eig"]) <= ZERO_REL * den["norm"]
    flat = int((den["eigenvalues"].abs() <= den["cutoff"]).sum())
    assert flat > 0 and info["zero_modes"] == lan["zero_modes"] + flat
    assert info["mu"] > 0


@pytest.mark.parametrize("inst", [
    Instance.create((3, 3, 3), width=3, depth=2, lam_w=0.1, lam_h=0.1, activation="relu"),
    Instance.create((2, 2), width=2, depth=3, lam_w=0.2, lam_h=0.2),
], ids=["relu", "mse-M3"])
def test_collapsed_minimum_has_no_zero_modes(inst):
    """At the local minimum W = H = 0 a solver returns factors at rounding level (~1e-11), not 0: the orbit is a
    point, T_theta has full rank, but its tangent vectors are not null (||Hess t|| ~ lambda ||t||), so the null
    test keeps them out of T; every eigenvalue is then lambda = lambda_W = lambda_H, as for hessian_info."""
    run = solvers.solve(inst, solver="lbfgs", starts=1, seed=0, device="cpu").runs[0]
    x = run.params.flatten()
    assert run.stop_reason == "converged" and float(x.norm()) < 1e-6
    lan = cv.transverse_curvature(inst, x)
    den = cv.dense_transverse(inst, x)
    info = diagnostics.hessian_info(inst, x)
    lam = inst.lam_h
    assert lan["tangent_rank"] > 0 and lan["zero_modes"] == den["zero_modes"] == info["zero_modes"] == 0
    assert abs(lan["mu"] - lam) <= REL * lam and abs(den["mu"] - lam) <= 1e-9 * lam and lan["mu"] <= lam * (1 + 1e-9)


def test_saddle_at_the_origin():
    """W = H = 0 exactly, depth 1 MSE: f = ||Y||^2 / (2N) - <Y, W H> / N + lambda/2 (||W||^2 + ||H||^2) + O(4), so the
    smallest Hessian eigenvalue is lambda - sigma_max(Y) / N = lambda - sqrt(n_max) / N < 0; the orbit is a point."""
    inst = Instance.create((3, 3, 3), width=3, depth=1, lam_w=1e-2, lam_h=1e-2)
    x = torch.zeros(models.num_params(inst), dtype=torch.float64)
    lan = cv.transverse_curvature(inst, x)
    want = 1e-2 - math.sqrt(3) / 9
    assert lan["mu"] == 0.0 and lan["min_eig"] < 0 and lan["converged"]
    assert lan["min_eig"] == pytest.approx(want, rel=1e-10)
    assert lan["zero_modes"] == lan["tangent_rank"] == 0
    den = cv.dense_transverse(inst, x)
    assert den["mu"] == 0.0 and den["min_eig"] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_lanczos_at_a_generic_point(loss):
    """Away from critical points the spectrum is spread (no clusters) and indefinite: the smallest and largest
    transverse eigenvalues still match the dense reference."""
    inst = Instance.create((4, 5, 6), width=5, depth=2, lam_w=1e-2, lam_h=1e-2, loss=loss)
    x = models.init_params(inst, torch.Generator().manual_seed(3), std=0.5).flatten()
    lan = cv.transverse_curvature(inst, x)
    den = cv.dense_transverse(inst, x)
    assert lan["converged"] and lan["iterations"] > 10
    assert den["min_eig"] < 0 and lan["mu"] == den["mu"] == 0.0
    assert abs(lan["min_eig"] - den["min_eig"]) <= REL * abs(den["min_eig"])
    assert lan["norm"] == pytest.approx(den["norm"], rel=REL)
    assert lan["zero_modes"] == den["zero_modes"]


def test_unconverged_run_still_gives_a_lower_bound():
    name = "ce-M2"
    inst, x = INSTANCES[name], _minimizer(name)
    lam = float(cv.dense_transverse(inst, x)["eigenvalues"][0])
    short = cv.transverse_curvature(inst, x, max_iter=2)
    assert short["converged"] is False and short["iterations"] == 2
    assert short["mu_ritz"] >= lam * (1 - 1e-12)  # a Rayleigh quotient
    assert 0.0 <= short["mu"] <= lam and short["mu"] == max(short["mu_ritz"] - short["mu_residual"], 0.0)


def test_deterministic_in_the_seed():
    name = "mse-M2-imbalanced"
    inst, x = INSTANCES[name], _minimizer(name)
    a = cv.transverse_curvature(inst, x, seed=4)
    b = cv.transverse_curvature(inst, x, seed=4)
    c = cv.transverse_curvature(inst, x, seed=5)
    assert a == b
    assert abs(a["mu"] - c["mu"]) <= REL * a["mu"]


def test_rejects_wrong_inputs():
    inst = INSTANCES["mse-M1"]
    x = _minimizer("mse-M1")
    with pytest.raises(InstanceError, match="entries"):
        cv.transverse_curvature(inst, x[:-1])
    with pytest.raises(InstanceError, match="float64"):
        cv.transverse_curvature(inst, x.float())


# ---------------------------------------------------------------------------------------------
# the tangent space and the projection
# ---------------------------------------------------------------------------------------------
def test_interfaces():
    lin3 = Instance.create((2, 2), width=2, depth=3)
    assert cv.interfaces(lin3) == [(3, 0), (0, 1), (1, 2)]  # (H, W_1), (W_1, W_2), (W_2, W_3)
    assert cv.interfaces(lin3.with_(activation="identity")) == [(3, 0), (0, 1), (1, 2)]
    assert cv.interfaces(Instance.create((2, 2), width=2, depth=2, activation="relu")) == [(2, 0)]
    assert cv.interfaces(Instance.create((2, 2), width=2, depth=1, bias=True)) == [(1, 0)]


@pytest.mark.parametrize("name", ["mse-M3", "ce-M2", "mse-M2-bias", "relu-M2"])
def test_tangent_is_the_orbit_derivative_and_f_is_invariant(name):
    """Independently of ``tangent``: theta(Q) with R_i -> Q_i R_i, L_i -> L_i Q_i^T (Q_i = exp(A_i)) keeps f, and the
    derivative of t -> theta(exp(t A)) at 0 is T_theta(A)."""
    inst, x = INSTANCES[name], _minimizer(name)
    A = [0.3 * a for a in _random_skews(inst, 1)]

    def orbit(t: torch.Tensor) -> torch.Tensor:
        blocks = list(models.Params.unflatten(inst, x).tensors())
        for (ir, il), a in zip(cv.interfaces(inst), A):
            Q = torch.linalg.matrix_exp(t * a)
            blocks[ir] = Q @ blocks[ir]
            blocks[il] = blocks[il] @ Q.T
        return torch.cat([b.reshape(-1) for b in blocks])

    one = torch.tensor(1.0, dtype=torch.float64)
    f = _f(inst)
    assert float(f(orbit(one))) == pytest.approx(float(f(x)), rel=1e-13)
    _, dtheta = torch.autograd.functional.jvp(orbit, torch.tensor(0.0, dtype=torch.float64), one)
    t = cv.tangent(inst, x, A)
    assert float((dtheta - t).norm()) <= 1e-14 * float(t.norm())


@pytest.mark.parametrize("name", ["mse-M3-K4", "ce-M2", "identity-M2", "relu-M2"])
def test_tangent_vectors_are_zero_modes_at_a_minimizer(name):
    inst, x = INSTANCES[name], _minimizer(name)
    hvp = cv._HVP(inst, x)
    norm = cv.dense_transverse(inst, x)["norm"]
    for seed in range(3):
        t = cv.tangent(inst, x, _random_skews(inst, seed))
        assert float(hvp(t).norm()) <= ZERO_REL * norm * float(t.norm())


@pytest.mark.parametrize("name", ["mse-M3-K4", "ce-M2", "relu-M2"])
def test_hessian_on_tangent_is_the_tangent_of_the_gradient(name):
    """Hess T_theta(A) = T_g(A) exactly, at any point (here a random, non-critical one)."""
    inst = INSTANCES[name]
    x = models.init_params(inst, torch.Generator().manual_seed(7), std=0.8).flatten()
    hvp = cv._HVP(inst, x)
    assert float(hvp.grad.norm()) > 1e-2
    A = _random_skews(inst, 2)
    lhs = hvp(cv.tangent(inst, x, A))
    rhs = cv.tangent(inst, hvp.grad, A)
    assert float((lhs - rhs).norm()) <= 1e-12 * float(rhs.norm())


@pytest.mark.parametrize("name", ["mse-M3-K4", "ce-M2", "mse-M1-wide", "mse-M2-bias", "ce-M1-free-bias"])
def test_projection_is_exact(name):
    inst, x = INSTANCES[name], _minimizer(name)
    hvp = cv._HVP(inst, x)
    ts = cv.TangentSpace(inst, x, grad=hvp.grad, null_tol=cv.NULL_RTOL * cv.dense_transverse(inst, x)["norm"],
                         hvp=hvp)
    assert ts.dim == ts.candidates  # every orbit direction is null at a converged minimizer
    Tnorm = math.sqrt(float(torch.linalg.eigvalsh(ts.gram())[-1]))
    g = torch.Generator().manual_seed(11)
    for _ in range(3):
        v = torch.randn(x.numel(), generator=g, dtype=torch.float64)
        pv = ts.project(v)
        assert float(ts.adjoint(pv).norm()) <= EXACT * Tnorm * float(v.norm())  # T^T P_perp v = 0
        if ts.bias_direction is not None:
            assert abs(float(ts.bias_direction @ pv)) <= EXACT * float(v.norm())
        assert float((ts.project(pv) - pv).norm()) <= EXACT * float(v.norm())  # idempotent
        assert abs(float(ts.component(v) @ pv)) <= EXACT * float(v.norm()) ** 2  # orthogonal splitting
    # the reduced coordinates span the same space as the full skew basis (the dense reference's)
    B = ts.basis()
    Tm = cv.tangent_matrix(inst, x)
    U, sv, _ = torch.linalg.svd(Tm, full_matrices=False)
    Ur = U[:, : int((sv ** 2 > cv.RANK_RTOL * sv[0] ** 2).sum())]
    if ts.bias_direction is not None:
        Ur = torch.cat([Ur, ts.bias_direction[:, None]], dim=1)
    assert B.shape == Ur.shape
    assert float((B @ B.T - Ur @ Ur.T).norm()) <= 1e-10


@pytest.mark.parametrize("name", ["mse-M3-K4", "ce-M2", "relu-M2"])
@pytest.mark.parametrize("point", ["minimizer", "random"])
def test_gram_closed_form_and_adjoint(name, point):
    inst = INSTANCES[name]
    x = _minimizer(name) if point == "minimizer" else \
        models.init_params(inst, torch.Generator().manual_seed(5), std=0.8).flatten()
    ts = cv.TangentSpace(inst, x)
    eye = torch.eye(ts.m, dtype=torch.float64)
    Tm = torch.stack([ts.apply(eye[k]) for k in range(ts.m)], dim=1)
    G = ts.gram()
    assert float((G - Tm.T @ Tm).norm()) <= 1e-13 * float(G.norm())
    v = torch.randn(x.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert float((ts.adjoint(v) - Tm.T @ v).norm()) <= 1e-13 * float(Tm.norm()) * float(v.norm())
    # the full skew adjoint: <v, T(A)> = sum_i <A_i, adj_i>
    A = _random_skews(inst, 4)
    lhs = float(v @ cv.tangent(inst, x, A))
    rhs = sum(float((a * b).sum()) for a, b in zip(A, cv.tangent_adjoint(inst, x, v)))
    assert lhs == pytest.approx(rhs, rel=1e-12)
    if point == "random":  # full-rank factors: no reduction, m = #interfaces * d(d-1)/2
        assert ts.m == ts.rank == len(cv.interfaces(inst)) * inst.width * (inst.width - 1) // 2


def test_low_rank_factors_shrink_the_gram_matrix():
    """At the collapsed minimizer of a wide model (d = 8 >> rank 3) the reduced basis keeps r(r-1)/2 + r(d - r)
    pairs per interface, not d(d-1)/2, and the projection is still onto all of range(T_theta)."""
    inst = Instance.create((3, 3, 3), width=8, depth=2, lam_w=1e-2, lam_h=1e-2)
    run = solvers.lbfgs(inst, starts.balanced_start(inst, torch.Generator().manual_seed(0), "cpu"))
    x = run.params.flatten()
    ts = cv.TangentSpace(inst, x)
    r, d = 3, 8
    assert ts.m == 2 * (r * (r - 1) // 2 + r * (d - r)) < 2 * d * (d - 1) // 2
    Tm = cv.tangent_matrix(inst, x)
    sv = torch.linalg.svdvals(Tm)
    assert ts.rank == int((sv ** 2 > cv.RANK_RTOL * sv[0] ** 2).sum())
    lan = cv.transverse_curvature(inst, x)
    den = cv.dense_transverse(inst, x)
    lam = float(den["eigenvalues"][0])
    assert lan["zero_modes"] == den["zero_modes"] == ts.rank
    assert abs(lan["mu"] - lam) <= REL * lam


# ---------------------------------------------------------------------------------------------
# beyond the dense limit
# ---------------------------------------------------------------------------------------------
def test_large_instance_beyond_the_dense_limit():
    inst = Instance.create(classes=4, per_class=100, width=8, depth=3, lam_w=5e-3, lam_h=5e-3)
    run = solvers.lbfgs(inst, starts.balanced_start(inst, torch.Generator().manual_seed(0), "cpu"))
    assert run.stop_reason == "converged"
    x = run.params.flatten()
    assert x.numel() > diagnostics.DENSE_MAX_PARAMS
    info = diagnostics.hessian_info(inst, x)  # beyond the dense limit: the Hessian-free path, same mu
    assert info["method"] == "lanczos" and info["available"] is True
    lan = cv.transverse_curvature(inst, x, return_vector=True)
    assert lan["hvps"] < 200  # a few dozen Hessian-vector products, never P of them
    assert info["mu"] == pytest.approx(lan["mu"], rel=1e-6)
    assert lan["available"] is True and lan["converged"] is True and lan["mu"] > 0
    y = lan["vector"]
    assert float(y.norm()) == pytest.approx(1.0, abs=1e-12)
    ts = cv.TangentSpace(inst, x)
    assert float(ts.adjoint(y).norm()) <= 1e-12  # y is transverse
    hy = cv._HVP(inst, x)(y)
    rho = float(y @ hy)  # Rayleigh quotient of the Ritz vector
    r = float((ts.project(hy) - lan["mu_ritz"] * y).norm())
    assert r == pytest.approx(lan["mu_residual"], rel=1e-6, abs=1e-15)
    assert abs(rho - lan["mu_ritz"]) <= 1e-12 * lan["norm"]
    assert lan["mu"] <= rho and rho - lan["mu"] <= REL * rho


@pytest.mark.gpu
def test_cuda_matches_cpu():
    name = "mse-M3-K4"
    inst, x = INSTANCES[name], _minimizer(name)
    cpu = cv.transverse_curvature(inst, x)
    gpu = cv.transverse_curvature(inst, x.cuda())
    assert gpu["converged"] and gpu["zero_modes"] == cpu["zero_modes"]
    assert abs(gpu["mu"] - cpu["mu"]) <= REL * cpu["mu"]
    assert np.isfinite(gpu["norm"])
