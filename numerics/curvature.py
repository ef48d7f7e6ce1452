"""Curvature transverse to the symmetry orbit, Hessian-free (Lanczos) and dense (reference).

torch (float64) and numpy only (never SymPy). Notation as in ``numerics.models``: theta = the flat point
``x`` (``Params.flatten`` order: vec W_1, ..., vec W_M, vec H[, b]) of an instance ``inst``; f =
``models.objective``; g = grad f(theta); Hess = Hess f(theta), P x P with P = ``models.num_params(inst)``;
d = ``inst.width``; eps = ``EPS``.

Symmetry orbit. For every *interface* between a right factor R and the left factor L that multiplies it
(L R appears in the model), f(.., R, .., L, ..) = f(.., Q R, .., L Q^T, ..) for every orthogonal Q (d x d):
the penalties are orthogonally invariant and L Q^T Q R = L R. The interfaces (``interfaces``) are
(R = H, L = W_1) always (for ReLU too: s acts on W_1 H), and (R = W_j, L = W_{j+1}), j = 1..M-1, for the
deep linear model (activation None or "identity"); ReLU (M = 2) has no continuous symmetry between W_1 and
W_2; the bias is in no interface. Differentiating Q = exp(t A_i) at t = 0 (A_i skew, d x d) gives the
tangent vectors T_theta(A) = sum_i (dR_i = A_i R_i, dL_i = -L_i A_i) (``tangent``). One more candidate: with
an unpenalized bias (lambda_b = 0) the shift b -> b + c 1_K is a symmetry of every softmax-type loss (CE:
log softmax(z + c 1) = log softmax(z)); its unit direction t_b joins T when it is numerically null,
||Hess t_b|| <= the null cutoff below (checked with one Hessian-vector product; MSE fails the check).

Zero modes, exactly. The action theta -> Q.theta is linear and orthogonal on parameter space, so
f(Q.theta) = f(theta) gives grad f(Q.theta) = Q.grad f(theta), and differentiating in Q:

    Hess T_theta(A) = T_g(A)        (the same formula applied to the blocks of the gradient g).

At a critical point every tangent vector is an exact zero mode. At a numerically converged point
||Hess t|| / ||t|| = ||T_g a|| / ||T_theta a|| is tiny for the genuine orbit directions -- but not for
directions whose tangent vector is itself at the level of the point's error (e.g. at W = H = 0 the orbit
is a point, yet the factors returned by a solver are ~1e-11, not 0). So T (the space projected out) is
the part of range(T_theta) on which this exact ratio is <= ``null_rtol`` ||Hess|| (default sqrt(eps)
||Hess||: the zero-mode cutoff of ``diagnostics.hessian_info``), plus t_b when it qualifies; its dimension
is "zero_modes".

Structured projection onto T-perp (``TangentSpace``). The interfaces share factors (W_1 is L of (H, W_1) and
R of (W_1, W_2)), so the per-interface projections do not add; the coefficients are computed jointly from
the Gram matrix G = T_theta^T T_theta over a basis of skew matrices. T a and T^T v are cheap structured
matrix products; G has a closed form: with the basis e_pq = U (E_pq - E_qp) U^T / sqrt(2) of interface i
(U orthogonal),
    <T e_pq, T e_rs>   = (delta_pr E_qs + delta_qs E_pr - delta_ps E_qr - delta_qr E_ps) / 2,
                         E = U^T (R R^T + L^T L) U                 (same interface),
    <T e_pq, T e'_rs>  = -(Z_rp Z_sq - Z_sp Z_rq),  Z = U'^T X U   (X = L of interface i = R of i + 1),
and 0 for interfaces that share no factor. U is the eigenbasis of S = R R^T + L^T L (descending): a skew A
supported on the null space of S has A R = 0 and L A = 0, so the basis keeps only the pairs (p, q) with
p among the r eigenvalues of S above ``rank_rtol`` max(S) (r(r-1)/2 + r(d - r) coefficients instead of
d(d-1)/2 per interface: at low-rank minimizers, rank K << d, G stays small). The eigen-decomposition of G
(``torch.linalg.eigh``, relative cutoff ``rank_rtol``: rank-deficient T, e.g. factors of rank < d, or
cancelling tangent vectors of neighbouring interfaces) gives an orthonormal basis T_theta C_0 of range(T_theta);
the generalized eigenproblem of G_g (the same closed form with the gradient's blocks) against G then splits it
into directions with ||Hess t|| = rho ||t||, and the columns with rho <= the null cutoff form C. The projection
P_perp v = v - T C C^T T^T v is applied twice ("twice is enough"): G squares the condition number of T, and
the second pass makes C^T T^T (P_perp v) zero to rounding relative to ||T|| ||v||.

Lanczos (``transverse_curvature``). The operator A_perp = P_perp Hess P_perp restricted to T-perp is applied
through Hessian-vector products only (never a P x P matrix; memory O(P k) for k Lanczos vectors), with full
reorthogonalization (twice) and a projection of every new vector onto T-perp. The Ritz values of the k x k
tridiagonal (``numpy.linalg.eigh`` on the CPU, k <= a few hundred) approximate the extreme eigenvalues; the
iteration stops when the smallest Ritz value theta has residual ||A_perp y - theta y|| <= tol |theta| +
atol ||Hess||, confirmed with an explicit Hessian-vector product at the Ritz vector y. A 20-step Lanczos run
on the whole Hessian first estimates ||Hess|| for the null cutoff of T.

Why mu is a lower bound. For a symmetric operator A, any unit vector y and any real theta, some eigenvalue
lambda of A satisfies |lambda - theta| <= ||A y - theta y|| (expand y in eigenvectors). With theta the
smallest Ritz value and y its Ritz vector, theta - ||A y - theta y|| is therefore a lower bound on the
eigenvalue of A_perp that theta approximates; and theta >= lambda_min(A_perp) always (Rayleigh quotient /
interlacing). So lambda_min in [mu, theta] whenever that eigenvalue is the smallest one -- which Lanczos
from a random start misses only if the start vector is (numerically) orthogonal to the lowest eigenvector
and nothing in its Krylov space reaches it; that caveat is the same for every Krylov method. Likewise a
tight cluster counts as one eigenvalue: at a point that is critical only to ||grad|| ~ 1e-10 a degenerate
eigenvalue splits by O(||grad||), and when theta converges (r below the tolerance) on such a cluster before
its lowest member is resolved, mu can exceed lambda_min by up to the cluster's width (seen: <= 4e-10
relative, below the tolerance tol |theta| + atol ||Hess|| of the stopping rule). (A sharper,
quadratic Kato-Temple bound theta - r^2 / (lambda_2 - theta) needs a certified lower bound on the second
eigenvalue lambda_2 and is not used.) mu is clipped at 0 from below, and mu = 0.0 when theta <= cutoff =
sqrt(eps) ||Hess|| (a saddle, or a transverse direction that is flat to rounding, as in
``diagnostics.hessian_info``).

Hessian-vector products. Reverse-over-reverse (double backward through a retained gradient graph) is used:
on the CPU it measured 0.2 ms (P = 1056) to 1.3 ms (P = 34048) per product against 4.5 to 7 ms for
forward-over-reverse ``torch.func.jvp(torch.func.grad(f), ...)``, which re-traces f at every call. The dense
reference batches the same double backward over the identity (``is_grads_batched``), faster on these sizes
than ``torch.func.hessian`` (jacfwd of jacrev) and ``torch.autograd.functional.hessian``.

Everything is float64 on ``x``'s device; only the k x k tridiagonal goes through numpy.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from ncverify.numerics import models
from ncverify.numerics.problem import Instance, InstanceError

#: float64 machine epsilon (2^-52), as ``diagnostics.EPS``.
EPS = float(np.finfo(np.float64).eps)
#: relative cutoff on squared singular values (eigenvalues of R R^T + L^T L and of the Gram matrix G) below which
#: a tangent direction is numerically zero (its tangent vector is shorter than 1e-5 of the longest one).
RANK_RTOL = 1e-10
#: a unit tangent vector t counts as a zero mode when ||Hess t|| <= NULL_RTOL ||Hess|| (the cutoff of
#: ``diagnostics.hessian_info``).
NULL_RTOL = math.sqrt(EPS)
#: default relative tolerance on the residual of the smallest Ritz pair (relative to |theta|)
LANCZOS_TOL = 1e-8
#: default absolute floor of that tolerance, relative to ||Hess|| (a Hessian-vector product is exact to about
#: eps ||Hess|| times a modest factor)
LANCZOS_ATOL = 1e-12
#: ``diagnostics.hessian_info`` forms the dense P x P Hessian up to this P (eigvalsh costs P^3: 0.1 s at P = 1000,
#: 3 s at 3000), above it this module's Lanczos
DENSE_MAX_PARAMS = 1000
#: default cap on the number of Lanczos steps
LANCZOS_MAX_ITER = 400
#: the symmetry orbit is projected out exactly when its basis has at most this many coefficients (G: 8 m^2 bytes,
#: its eigendecomposition m^3 flops: 0.5 GB and about 10 s here); above, the orbit's directions are zero modes by
#: the cutoff sqrt(eps) ||Hess||, as in the dense ``diagnostics.hessian_info`` ("orbit": "cutoff" in the result)
ORBIT_MAX_COEFFICIENTS = 8000
#: Lanczos steps on the whole Hessian that estimate ||Hess|| before T is fixed
NORM_PROBE_STEPS = 20


def interfaces(inst: Instance) -> list[tuple[int, int]]:
    """The symmetry interfaces as (index of R, index of L) into ``Params.tensors()`` = (W_1, ..., W_M, H[, b]):
    (H, W_1) = (M, 0) always; (W_j, W_{j+1}) = (j - 1, j) for j = 1..M-1 when the model is deep linear
    (activation None or "identity"; ReLU has no continuous W_1/W_2 symmetry). Every inner dimension is d."""
    M = inst.depth
    out = [(M, 0)]
    if inst.activation in (None, "identity"):
        out += [(j - 1, j) for j in range(1, M)]
    return out


def _blocks(inst: Instance, x: torch.Tensor) -> list[torch.Tensor]:
    return models.Params.unflatten(inst, x.detach().reshape(-1)).tensors()


def tangent(inst: Instance, x: torch.Tensor, skews: Sequence[torch.Tensor]) -> torch.Tensor:
    """T_x(A): the flat vector with dR_i = A_i R_i and dL_i = -L_i A_i summed over the interfaces i
    (``interfaces(inst)``; ``skews[i]`` = A_i, d x d, meant skew-symmetric; R_i, L_i the blocks of ``x``), 0 in
    every other block (the bias). At x = theta it is d/dt of the orbit R_i -> exp(t A_i) R_i, L_i -> L_i
    exp(-t A_i); at x = g = grad f(theta) it is Hess f(theta) T_theta(A) (see the module docstring)."""
    blocks = _blocks(inst, x)
    out = [torch.zeros_like(t) for t in blocks]
    ifs = interfaces(inst)
    if len(skews) != len(ifs):
        raise InstanceError(f"need one skew matrix per interface ({len(ifs)}), got {len(skews)}")
    for (ir, il), A in zip(ifs, skews):
        out[ir] = out[ir] + A @ blocks[ir]
        out[il] = out[il] - blocks[il] @ A
    return torch.cat([t.reshape(-1) for t in out])


def tangent_adjoint(inst: Instance, x: torch.Tensor, v: torch.Tensor) -> list[torch.Tensor]:
    """The adjoint of ``tangent`` on skew matrices: [skew(G_i)] with G_i = v_R R_i^T - L_i^T v_L, so that
    <v, T_x(A)> = sum_i <A_i, skew(G_i)> for skew A_i (v_R, v_L: the blocks of the flat vector ``v``)."""
    blocks = _blocks(inst, x)
    vb = _blocks(inst, v)
    out = []
    for ir, il in interfaces(inst):
        G = vb[ir] @ blocks[ir].T - blocks[il].T @ vb[il]
        out.append(0.5 * (G - G.T))
    return out


class TangentSpace:
    """The symmetry tangent space T at theta = ``x`` and the orthogonal projection onto T-perp.

    Coordinates: interface i carries the orthonormal skew basis e_pq = U_i (E_pq - E_qp) U_i^T / sqrt(2) with
    U_i the eigenvectors of S_i = R_i R_i^T + L_i^T L_i (descending eigenvalues s_1 >= ... >= s_d) and the
    pairs p < q with s_p > ``rank_rtol`` max(s over all interfaces) (pairs inside the null space of S_i give
    T e_pq = 0 and are left out). ``m``: the number of coefficients; ``rank``: the rank of T_theta (eigenvalues
    of G above ``rank_rtol`` max); ``dim``: dim T, the directions of range(T_theta) with ||Hess t|| <= ``null_tol``
    ||t|| (all of range(T_theta) when ``grad`` or ``null_tol`` is None), computed exactly from
    Hess T_theta(A) = T_g(A) with ``grad`` = g; ``curvatures``: ||Hess t|| for the orthonormal tangent
    directions of range(T_theta) (ascending; empty without ``grad``).

    With an unpenalized bias (``inst.bias`` and lambda_b = 0) the unit bias shift t_b = (0, .., 0, 1_K / sqrt(K))
    is a further candidate (``candidates`` = rank + 1): it belongs to T (``bias_direction``) when ``null_tol`` is
    None or ||Hess t_b|| (``bias_curvature``, one product with ``hvp``, built if not given) <= ``null_tol``.

    ``apply(a)`` = T_theta a, ``adjoint(v)`` = T_theta^T v, ``gram()`` = G, ``project(v)`` = P_perp v,
    ``coefficients`` = C (T_theta C, m x (dim minus the bias direction), is an orthonormal basis of T's
    orbit part).
    """

    def __init__(self, inst: Instance, x: torch.Tensor, *, grad: torch.Tensor | None = None,
                 null_tol: float | None = None, rank_rtol: float = RANK_RTOL,
                 hvp: Callable[[torch.Tensor], torch.Tensor] | None = None, max_coefficients: int | None = None
                 ) -> None:
        self.inst = inst
        self.x = x.detach().reshape(-1)
        self.rank_rtol = float(rank_rtol)
        self.blocks = _blocks(inst, self.x)
        self.ifs = interfaces(inst)
        dev = self.x.device
        d = inst.width
        self.U: list[torch.Tensor] = []
        self.pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        svals = []
        for ir, il in self.ifs:
            R, L = self.blocks[ir], self.blocks[il]
            S = R @ R.T + L.T @ L
            s, U = torch.linalg.eigh(0.5 * (S + S.T))
            svals.append(s.flip(0))
            self.U.append(U.flip(1))
        smax = max(float(s[0]) for s in svals)
        iu = torch.triu_indices(d, d, offset=1, device=dev)
        self.offsets = [0]
        for s in svals:
            r = int((s > self.rank_rtol * smax).sum()) if smax > 0 else 0
            keep = iu[0] < r
            self.pairs.append((iu[0][keep], iu[1][keep]))
            self.offsets.append(self.offsets[-1] + int(keep.sum()))
        self.m = self.offsets[-1]
        #: "projected", or "cutoff" when the basis has more than ``max_coefficients`` coefficients (G would take
        #: 8 m^2 bytes and its eigendecomposition m^3 time): the orbit is then not projected out and its directions
        #: are left to the zero-mode cutoff, as in the dense ``diagnostics.hessian_info``
        self.orbit = "projected"
        self.orbit_coefficients = self.m
        if max_coefficients is not None and self.m > max_coefficients:
            self.orbit = "cutoff"
            self.pairs = [(p[:0], q[:0]) for p, q in self.pairs]
            self.offsets = [0] * len(self.offsets)
            self.m = 0
        self._G = self._gram(self.blocks)
        empty = self.x.new_zeros(self.m, 0)
        self.curvatures = self.x.new_zeros(0)
        self.rank = 0
        C = empty
        if self.m:
            lam, V = torch.linalg.eigh(self._G)
            top = float(lam[-1])
            if top > 0:
                keep = lam > self.rank_rtol * top
                self.rank = int(keep.sum())
                C = V[:, keep] / lam[keep].sqrt()  # T_theta C: orthonormal basis of range(T_theta)
            if grad is not None and null_tol is not None and self.rank:
                Mg = C.T @ self._gram(_blocks(inst, grad)) @ C  # ||T_g C z||^2 = ||Hess T C z||^2
                Mg = 0.5 * (Mg + Mg.T)
                self.curvatures = torch.linalg.eigvalsh(Mg).clamp(min=0).sqrt()
                null = self.curvatures <= float(null_tol)
                if not bool(null.any()):  # no orbit direction is null (x is far from critical)
                    C = C[:, :0]
                elif not bool(null.all()):  # some are: rotate to the eigenvectors (all null: C already spans T)
                    Yv = torch.linalg.eigh(Mg)[1]
                    C = C @ Yv[:, null]
        self.coefficients = C
        # the bias shift b -> b + c 1_K: a symmetry of softmax-type losses when lambda_b = 0 (kept when it is null)
        self.bias_direction: torch.Tensor | None = None
        self.bias_curvature: float | None = None
        self.candidates = self.rank
        if inst.bias and inst.lam_b == 0:
            self.candidates += 1
            tb = self.x.new_zeros(self.x.numel())
            tb[-inst.K:] = 1.0 / math.sqrt(inst.K)
            if null_tol is None:
                self.bias_direction = tb
            else:
                if hvp is None:
                    hvp = _HVP(inst, self.x)
                self.bias_curvature = float(hvp(tb).norm())
                if self.bias_curvature <= float(null_tol):
                    self.bias_direction = tb
        self.dim = int(C.shape[1]) + (self.bias_direction is not None)

    # -- coordinates -------------------------------------------------------------------------------
    def skews(self, a: torch.Tensor) -> list[torch.Tensor]:
        """The skew matrices A_i = sum_pq a_pq e_pq (d x d, standard coordinates) of the coefficient vector ``a``."""
        d = self.inst.width
        out = []
        for i, (p, q) in enumerate(self.pairs):
            c = a[self.offsets[i]:self.offsets[i + 1]] / math.sqrt(2.0)
            Ap = a.new_zeros(d, d)
            Ap[p, q] = c
            Ap[q, p] = -c
            out.append(self.U[i] @ Ap @ self.U[i].T)
        return out

    def apply(self, a: torch.Tensor) -> torch.Tensor:
        """T_theta a: the flat tangent vector of coefficients ``a`` (length ``m``)."""
        return tangent(self.inst, self.x, self.skews(a))

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        """T_theta^T v (length ``m``): <e_pq, skew(G_i)> = (G'_pq - G'_qp) / sqrt(2), G' = U_i^T G_i U_i."""
        parts = []
        for i, G in enumerate(tangent_adjoint(self.inst, self.x, v)):
            Gp = self.U[i].T @ G @ self.U[i]
            p, q = self.pairs[i]
            parts.append((Gp[p, q] - Gp[q, p]) / math.sqrt(2.0))
        return torch.cat(parts) if parts else v.new_zeros(0)

    def _gram(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Sum_i,j <T e_i, T e_j> in closed form (module docstring) for the factors ``blocks`` (theta's: G; the
        gradient's: G_g); block tridiagonal over the interfaces."""
        G = self.x.new_zeros(self.m, self.m)
        for i, ((ir, il), (p, q)) in enumerate(zip(self.ifs, self.pairs)):
            o0, o1 = self.offsets[i], self.offsets[i + 1]
            if o1 == o0:
                continue
            R, L, U = blocks[ir], blocks[il], self.U[i]
            E = U.T @ (R @ R.T + L.T @ L) @ U
            P_, Q_, R_, S_ = p[:, None], q[:, None], p[None, :], q[None, :]
            blk = 0.5 * ((P_ == R_) * E[Q_, S_] + (Q_ == S_) * E[P_, R_]
                         - (P_ == S_) * E[Q_, R_] - (Q_ == R_) * E[P_, S_])
            G[o0:o1, o0:o1] = 0.5 * (blk + blk.T)
        for i in range(len(self.ifs) - 1):
            if self.ifs[i][1] != self.ifs[i + 1][0]:  # interface i's L is interface i + 1's R
                continue
            o0, o1 = self.offsets[i], self.offsets[i + 1]
            n0, n1 = self.offsets[i + 1], self.offsets[i + 2]
            if o1 == o0 or n1 == n0:
                continue
            Z = self.U[i + 1].T @ blocks[self.ifs[i][1]] @ self.U[i]
            (p, q), (r, s) = self.pairs[i], self.pairs[i + 1]
            P_, Q_, R_, S_ = p[:, None], q[:, None], r[None, :], s[None, :]
            blk = -(Z[R_, P_] * Z[S_, Q_] - Z[S_, P_] * Z[R_, Q_])
            G[o0:o1, n0:n1] = blk
            G[n0:n1, o0:o1] = blk.T
        return G

    def gram(self) -> torch.Tensor:
        """G = T_theta^T T_theta (m x m), formed in closed form from d x d products of the factors."""
        return self._G

    # -- projection --------------------------------------------------------------------------------
    def component(self, v: torch.Tensor) -> torch.Tensor:
        """The orthogonal projection of ``v`` onto T: T_theta C C^T T_theta^T v (+ t_b t_b^T v, the bias shift;
        t_b is orthogonal to every T_theta a, which has no bias entries), one pass."""
        out = torch.zeros_like(v)
        C = self.coefficients
        if C.shape[1]:
            out = out + self.apply(C @ (C.T @ self.adjoint(v)))
        if self.bias_direction is not None:
            out = out + torch.dot(self.bias_direction, v) * self.bias_direction
        return out

    def project(self, v: torch.Tensor, passes: int = 2) -> torch.Tensor:
        """P_perp v = v - (projection of v onto T), applied ``passes`` times (twice: exact to rounding although
        G squares the condition number of T)."""
        for _ in range(passes if self.dim else 0):
            v = v - self.component(v)
        return v

    def basis(self) -> torch.Tensor:
        """An orthonormal basis of T (P x dim), for small P only (tests)."""
        cols = [self.apply(self.coefficients[:, k]) for k in range(self.coefficients.shape[1])]
        if self.bias_direction is not None:
            cols.append(self.bias_direction)
        if not cols:
            return self.x.new_zeros(self.x.numel(), 0)
        return torch.linalg.qr(torch.stack(cols, dim=1))[0]


# -- Hessian-vector products ---------------------------------------------------------------------------
class _HVP:
    """v -> Hess f(theta) v by double backward through a retained gradient graph (see the module docstring)."""

    def __init__(self, inst: Instance, x: torch.Tensor) -> None:
        f = models.flat_objective(inst, models.targets(inst, dtype=x.dtype, device=x.device))
        self.x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (self.g,) = torch.autograd.grad(f(self.x), self.x, create_graph=True)
        self.count = 0

    @property
    def grad(self) -> torch.Tensor:
        return self.g.detach()

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.count += 1
        (hv,) = torch.autograd.grad(self.g, self.x, v, retain_graph=True)
        return hv.detach()

    def batched(self, V: torch.Tensor) -> torch.Tensor:
        """Hess V^T for the rows of V (k x P), one batched backward; returns k x P."""
        self.count += V.shape[0]
        (hv,) = torch.autograd.grad(self.g, self.x, V, retain_graph=True, is_grads_batched=True)
        return hv.detach()


def _check_x(inst: Instance, x: torch.Tensor) -> torch.Tensor:
    P = models.num_params(inst)
    if x.numel() != P:
        raise InstanceError(f"parameter vector has {x.numel()} entries, the instance needs {P}")
    if x.dtype != torch.float64:
        raise InstanceError(f"curvature diagnostics need float64, got {x.dtype}")
    return x.detach().reshape(-1)


def _tridiag(alpha: list[float], beta: list[float]) -> np.ndarray:
    return np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)


def _norm_probe(op, q: torch.Tensor, steps: int) -> float:
    """Largest |Ritz value| of ``steps`` Lanczos steps (full reorthogonalization) of ``op`` from the unit ``q``."""
    Q = [q]
    alpha: list[float] = []
    beta: list[float] = []
    for k in range(steps):
        w = op(Q[k])
        alpha.append(float(torch.dot(Q[k], w)))
        Qm = torch.stack(Q)
        for _ in range(2):
            w = w - Qm.T @ (Qm @ w)
        b = float(w.norm())
        if b <= 1e-12 * max(abs(a) for a in alpha) or k == steps - 1:
            break
        beta.append(b)
        Q.append(w / b)
    ev = np.linalg.eigvalsh(_tridiag(alpha, beta))
    return float(np.abs(ev).max())


def hessian_norm(inst: Instance, x: torch.Tensor, *, seed: int = 0, steps: int = NORM_PROBE_STEPS) -> float:
    """||Hess f(theta)||_2 estimated by the largest |Ritz value| of ``steps`` Lanczos steps on Hessian-vector products
    (from a random start seeded by ``seed``): extreme eigenvalues converge first, so 20 steps give it to a few
    percent; it is an estimate from below (for rounding-level tolerances, where a few percent do not matter)."""
    x = _check_x(inst, x)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    v = torch.randn(x.numel(), generator=gen, dtype=torch.float64).to(x.device)
    return _norm_probe(_HVP(inst, x), v / v.norm(), min(int(steps), x.numel()))


def transverse_curvature(inst: Instance, x: torch.Tensor, *, seed: int = 0, max_iter: int | None = None,
                         tol: float = LANCZOS_TOL, atol: float = LANCZOS_ATOL, rank_rtol: float = RANK_RTOL,
                         null_rtol: float = NULL_RTOL, return_vector: bool = False, above_cutoff: bool = False
                         ) -> dict:
    """Hessian-free analogue of ``diagnostics.hessian_info`` at theta = ``x``: the spectrum of Hess f(theta) on
    T-perp, the orthogonal complement of the symmetry tangent space T (``TangentSpace``), by Lanczos.

    Arguments: ``x`` the flat float64 point (``Params.flatten`` order, any device); ``seed`` seeds the CPU
    torch.Generator of the random start vectors (the result is deterministic in it); ``max_iter`` caps the
    Lanczos steps k (default min(P - dim T, ``LANCZOS_MAX_ITER``)); the smallest Ritz pair (theta, y) has
    converged when ||P_perp Hess y - theta y|| <= ``tol`` |theta| + ``atol`` ||Hess||; ``rank_rtol``: the relative
    rank cutoff of T_theta; ``null_rtol``: a unit tangent vector t is a zero mode when ||Hess t|| <= ``null_rtol``
    ||Hess|| (||Hess|| estimated by a ``NORM_PROBE_STEPS``-step Lanczos run first); ``return_vector`` adds y;
    ``above_cutoff``: the Ritz pair followed is the smallest one ABOVE the cutoff sqrt(eps) ||Hess|| -- the
    definition of ``diagnostics.hessian_info``'s mu, which counts every numerically flat eigenvalue as a zero
    mode (the ReLU model's minimizers are flat beyond the symmetry: negative pre-activations are free) and skips
    negative ones; "flat_ritz" then counts the Ritz values at or below the cutoff (not a multiplicity: Lanczos sees
    each cluster about once).

    Returns {"available": True, "method": "lanczos",
    "norm": ||Hess||_2 estimated by the largest |Ritz value| at both ends (of the probe and of the transverse
    run; at a critical point Hess = P_perp Hess P_perp plus the zero modes), "min_eig": theta, the smallest Ritz
    value on T-perp, "cutoff": sqrt(eps) norm, "mu": a lower bound on the smallest eigenvalue on T-perp,
    max(theta - r, 0) with r = "mu_residual" (0.0 when theta <= cutoff: a saddle or a numerically flat
    transverse direction), "mu_ritz": theta, "mu_residual": r = ||P_perp Hess y - theta y|| (an explicit
    product), "zero_modes": dim T, "tangent_rank": the number of candidate symmetry directions, rank of T_theta
    (+1 for the bias shift with lambda_b = 0); > dim T when some are not numerically null (x is not critical
    enough for them, the factors are at rounding level, or the loss is not shift invariant),
    "transverse_dim": P - dim T, "iterations": k, "hvps": Hessian-vector products used (probe included),
    "converged": whether the tolerance was met (if not, mu is still the conservative max(theta - r, 0)),
    "orbit": "projected", or "cutoff" when the symmetry basis has more than ``ORBIT_MAX_COEFFICIENTS`` coefficients
    (the orbit is then left to the zero-mode cutoff), "orbit_coefficients": that basis size},
    plus "vector": y (unit, in T-perp, on x's device) when ``return_vector``.
    """
    x = _check_x(inst, x)
    P = x.numel()
    hvp = _HVP(inst, x)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))

    def rand_unit() -> torch.Tensor:
        v = torch.randn(P, generator=gen, dtype=torch.float64).to(x.device)
        return v / v.norm()

    probe = _norm_probe(hvp, rand_unit(), min(NORM_PROBE_STEPS, P))
    ts = TangentSpace(inst, x, grad=hvp.grad, null_tol=null_rtol * probe, rank_rtol=rank_rtol, hvp=hvp,
                      max_coefficients=ORBIT_MAX_COEFFICIENTS)
    n_perp = P - ts.dim
    kmax = min(n_perp, LANCZOS_MAX_ITER if max_iter is None else int(max_iter))
    kmax = max(kmax, 1)

    def op(v: torch.Tensor) -> torch.Tensor:
        return ts.project(hvp(v))

    q = ts.project(rand_unit())
    Qm = x.new_zeros(kmax + 1, P)  # Lanczos vectors as rows
    Qm[0] = q / q.norm()
    alpha: list[float] = []
    beta: list[float] = []
    theta, norm, r_true = 0.0, probe, math.inf
    lowest, flat = 0.0, 0
    y = Qm[0]
    converged = False
    k = last_check = 0
    while k < kmax:
        w = op(Qm[k])
        a = float(torch.dot(Qm[k], w))
        w = w - a * Qm[k]
        if k > 0:
            w = w - beta[-1] * Qm[k - 1]
        for _ in range(2):  # full reorthogonalization, twice
            w = w - Qm[:k + 1].T @ (Qm[:k + 1] @ w)
        w = ts.project(w, passes=1)
        alpha.append(a)
        b = float(w.norm())
        k += 1
        Tk = _tridiag(alpha, beta)
        breakdown = b <= 100 * EPS * max(float(np.abs(Tk).max()), probe, 1e-300)  # invariant Krylov space
        if breakdown or k == kmax or k <= 10 or k - last_check >= max(1, k // 10):
            last_check = k
            ev, S = np.linalg.eigh(Tk)
            norm = max(probe, float(abs(ev[0])), float(abs(ev[-1])))
            lowest = float(ev[0])
            j = 0
            if above_cutoff:
                up = np.nonzero(ev > math.sqrt(EPS) * norm)[0]
                flat = int(len(ev) - len(up))
                j = int(up[0]) if len(up) else len(ev) - 1
            theta = float(ev[j])
            r_est = 0.0 if breakdown else b * abs(float(S[-1, j]))
            want = tol * abs(theta) + atol * norm
            if r_est <= want or breakdown or k == kmax:
                y = Qm[:k].T @ torch.as_tensor(S[:, j], dtype=x.dtype, device=x.device)
                y = y / y.norm()
                r_true = float((op(y) - theta * y).norm())
                if r_true <= want:
                    converged = True
                    break
                if breakdown:
                    break
        if breakdown:
            break
        beta.append(b)
        Qm[k] = w / b
    cutoff = math.sqrt(EPS) * max(norm, 1e-300)
    mu = 0.0 if theta <= cutoff else max(theta - r_true, 0.0)
    if above_cutoff:
        mu = max(theta - r_true, 0.0) if theta > cutoff else 0.0
    out = {"available": True, "method": "lanczos", "norm": norm, "min_eig": lowest, "cutoff": cutoff, "mu": mu,
           "mu_ritz": theta, "mu_residual": r_true, "zero_modes": ts.dim, "tangent_rank": ts.candidates,
           "transverse_dim": n_perp, "iterations": k, "hvps": hvp.count, "converged": converged,
           "orbit": ts.orbit, "orbit_coefficients": ts.orbit_coefficients}
    if above_cutoff:
        out["flat_ritz"] = flat
    if return_vector:
        out["vector"] = y
    return out


# -- dense reference ----------------------------------------------------------------------------------
def dense_hessian(inst: Instance, x: torch.Tensor) -> torch.Tensor:
    """Hess f(theta) (P x P, symmetrized) by one batched double backward over the identity (small P only)."""
    x = _check_x(inst, x)
    Hm = _HVP(inst, x).batched(torch.eye(x.numel(), dtype=x.dtype, device=x.device))
    return 0.5 * (Hm + Hm.T)


def tangent_matrix(inst: Instance, x: torch.Tensor) -> torch.Tensor:
    """T_x over the full standard skew basis (E_pq - E_qp) / sqrt(2), p < q, of every interface: P x (#interfaces
    d(d-1)/2), small P only (no reduced coordinates: independent of ``TangentSpace``)."""
    x = _check_x(inst, x)
    d, n_if = inst.width, len(interfaces(inst))
    cols = []
    for i in range(n_if):
        for p in range(d):
            for q in range(p + 1, d):
                A = [x.new_zeros(d, d) for _ in range(n_if)]
                A[i][p, q], A[i][q, p] = 1 / math.sqrt(2.0), -1 / math.sqrt(2.0)
                cols.append(tangent(inst, x, A))
    return torch.stack(cols, dim=1) if cols else x.new_zeros(x.numel(), 0)


def dense_transverse(inst: Instance, x: torch.Tensor, *, rank_rtol: float = RANK_RTOL,
                     null_rtol: float = NULL_RTOL) -> dict:
    """Dense reference for small P: the spectrum of Hess f(theta) on T-perp.

    The dense Hess (``dense_hessian``) and T_theta (``tangent_matrix``, plus the column t_b when the bias is
    unpenalized) are formed explicitly. Their range: the left singular vectors B_T with sigma^2 > ``rank_rtol``
    sigma_max^2; T: the eigenvectors of
    (Hess B_T)^T (Hess B_T) with eigenvalue <= (``null_rtol`` ||Hess||)^2, i.e. the orbit directions t with
    ||Hess t|| <= null_rtol ||Hess|| ||t|| (here from the dense Hessian itself, not from the gradient identity);
    B: an orthonormal basis of T-perp (complete QR); the transverse spectrum: the eigenvalues of B^T Hess B.

    Returns {"eigenvalues": the transverse spectrum (ascending, float64 tensor on x's device),
    "hessian_eigenvalues": the spectrum of the whole Hess, "norm": ||Hess||_2, "min_eig": the smallest
    transverse eigenvalue, "cutoff": sqrt(eps) norm, "mu": the smallest transverse eigenvalue if > cutoff else
    0.0, "zero_modes": dim T, "tangent_rank": the number of candidate directions (rank of the candidate
    matrix), "tangent_residual": ||Hess N||_2 / ||Hess||_2 for
    the orthonormal basis N of T (~0 at a critical point)}.
    """
    x = _check_x(inst, x)
    Hm = dense_hessian(inst, x)
    P = x.numel()
    ev_full = torch.linalg.eigvalsh(Hm)
    norm = float(ev_full.abs().max())
    Tm = tangent_matrix(inst, x)
    if inst.bias and inst.lam_b == 0:  # candidate: the bias shift (see ``TangentSpace``)
        tb = x.new_zeros(P, 1)
        tb[-inst.K:] = 1.0 / math.sqrt(inst.K)
        Tm = torch.cat([Tm, tb], dim=1)
    rank, Nb = 0, x.new_zeros(P, 0)
    if Tm.shape[1]:
        U, sv, _ = torch.linalg.svd(Tm, full_matrices=False)
        if float(sv[0]) > 0:
            rank = int((sv ** 2 > rank_rtol * float(sv[0]) ** 2).sum())
            BT = U[:, :rank]
            HB = Hm @ BT
            rho2, Yv = torch.linalg.eigh(HB.T @ HB)
            Nb = BT @ Yv[:, rho2 <= (null_rtol * norm) ** 2]
    dim = Nb.shape[1]
    Qc = torch.linalg.qr(torch.cat([Nb, torch.eye(P, dtype=x.dtype, device=x.device)], dim=1))[0][:, dim:P] \
        if dim else torch.eye(P, dtype=x.dtype, device=x.device)
    ev = torch.linalg.eigvalsh(Qc.T @ Hm @ Qc) if P > dim else ev_full[:0]
    cutoff = math.sqrt(EPS) * max(norm, 1e-300)
    lo = float(ev[0]) if ev.numel() else math.inf
    tres = float(torch.linalg.matrix_norm(Hm @ Nb, ord=2)) / max(norm, 1e-300) if dim else 0.0
    return {"eigenvalues": ev, "hessian_eigenvalues": ev_full, "norm": norm, "min_eig": lo, "cutoff": cutoff,
            "mu": lo if lo > cutoff else 0.0, "zero_modes": dim, "tangent_rank": rank, "tangent_residual": tres}
