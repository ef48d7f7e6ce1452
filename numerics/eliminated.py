"""MSE with the features eliminated: minimize over the weights (and the bias) only, then lift to full matrices.

torch only (never SymPy). Notation as in ``numerics.models``: W = W_M ... W_1 (K x d), H (d x N), b (K), Y the
one-hot labels (K x N), n_k the class counts, N = sum_k n_k, f = 1/(2N) ||W H + b 1^T - Y||_F^2
+ sum_j lambda_{W_j}/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2).

For fixed W and b, H -> f is lambda_H-strongly convex with the unique minimizer (the lemma
``mse-feature-elimination``, checked by ``ncverify lemmas``)

    H*(W, b) = W^T A^{-1} (Y - b 1^T),   A = W W^T + N lambda_H I_K   (K x K),

so H* has one column per class, hbar_k = W^T A^{-1} (e_k - b), and the partial minimum is

    F(W_1..W_M, b) = lambda_H/2 sum_k n_k (e_k - b)^T A^{-1} (e_k - b) + sum_j lambda_{W_j}/2 ||W_j||^2
                     (+ lambda_b/2 ||b||^2).

min F = min f, and (W, b) is a critical point of F iff (W, H*(W, b), b) is one of f (grad_W f(W, H*, b) =
grad_W F by the envelope theorem, grad_H f(W, H*, b) = 0). F has (M-1) d^2 + K d (+ K) variables whatever N
is: ``solve`` minimizes it with ``solvers.lbfgs_loop`` (L-BFGS, then the Newton-CG polish), lifts the end point
to (W_1..W_M, H*, b), and evaluates the **full** objective and its gradient there (``numerics.models``); when
that gradient is above the tolerance (rounding of the lift at large N) a short full-problem L-BFGS run
(``solvers.lbfgs``) continues from the lifted point. The reported point, objective and gradient norm are
always those of the full objective.

``eligible``: MSE, no activation between the layers (deep linear, or the extended model with s = identity),
lambda_H > 0, and at least ``ELIMINATE_MIN_PARAMS`` parameters (below that the batched solver is as fast and the
catalogue's searches keep their numbers).
"""
from __future__ import annotations

import math
import time

import torch

from ncverify.numerics import models, solvers
from ncverify.numerics.models import Params
from ncverify.numerics.problem import Instance

#: instances with at least this many parameters are solved with H eliminated (``numerics.starts``)
ELIMINATE_MIN_PARAMS = 20_000
#: full-problem L-BFGS iterations allowed after the lift when its gradient is still above the tolerance
LIFT_POLISH_ITER = 200


def eligible(inst: Instance) -> bool:
    """MSE with one-hot labels, linear between the layers, lambda_H > 0, and at least ``ELIMINATE_MIN_PARAMS``
    parameters."""
    return (inst.loss == "mse" and inst.activation in (None, "identity") and inst.lam_h > 0 and inst.targets is None
            and models.num_params(inst) >= ELIMINATE_MIN_PARAMS)


def _shapes(inst: Instance) -> list[tuple[int, ...]]:
    """Shapes of the reduced variables (W_1, ..., W_M[, b])."""
    shp = models.shapes(inst)
    return shp[:inst.depth] + ([shp[-1]] if inst.bias else [])


def pack(inst: Instance, params: Params) -> torch.Tensor:
    """The reduced variables (vec W_1, ..., vec W_M[, b]) of full parameters (H is dropped)."""
    parts = list(params.weights) + ([params.b] if inst.bias else [])
    return torch.cat([t.reshape(-1) for t in parts]).detach().clone()


def unpack(inst: Instance, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """(W_1..W_M, b or None) as views of the reduced vector ``x``."""
    shp = _shapes(inst)
    sizes = [math.prod(s) for s in shp]
    parts = [p.view(s) for p, s in zip(torch.split(x, sizes), shp)]
    return parts[:inst.depth], (parts[inst.depth] if inst.bias else None)


def _targets(inst: Instance, b: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """T = [e_1 - b, ..., e_K - b] (K x K; the identity without a bias)."""
    eye = torch.eye(inst.K, dtype=like.dtype, device=like.device)
    return eye if b is None else eye - b[:, None]


def _product(Ws: list[torch.Tensor]) -> torch.Tensor:
    W = Ws[0]
    for Wj in Ws[1:]:
        W = Wj @ W
    return W


def class_means(inst: Instance, Ws: list[torch.Tensor], b: torch.Tensor | None) -> torch.Tensor:
    """Hbar* = W^T A^{-1} T (d x K): the class columns of H*(W, b)."""
    W = _product(Ws)
    A = W @ W.T + inst.N * inst.lam_h * torch.eye(inst.K, dtype=W.dtype, device=W.device)
    L = torch.linalg.cholesky(A)
    return W.T @ torch.cholesky_solve(_targets(inst, b, W), L)


def reduced_objective(inst: Instance):
    """x -> F(W_1..W_M, b) (differentiable), x = ``pack``-ed reduced variables."""
    def F(x: torch.Tensor) -> torch.Tensor:
        Ws, b = unpack(inst, x)
        W = _product(Ws)
        n = torch.tensor([float(c) for c in inst.counts], dtype=x.dtype, device=x.device)
        A = W @ W.T + inst.N * inst.lam_h * torch.eye(inst.K, dtype=x.dtype, device=x.device)
        T = _targets(inst, b, x)
        S = torch.cholesky_solve(T, torch.linalg.cholesky(A))  # A^{-1} T
        val = 0.5 * inst.lam_h * ((T * S).sum(dim=0) * n).sum()
        for lam, Wj in zip(inst.lam_w, Ws):
            val = val + 0.5 * lam * (Wj * Wj).sum()
        if b is not None and inst.lam_b > 0:
            val = val + 0.5 * inst.lam_b * (b * b).sum()
        return val
    return F


def lift(inst: Instance, x: torch.Tensor) -> Params:
    """(W_1..W_M, H*(W, b), b): every sample of class k gets the column hbar_k of ``class_means``."""
    with torch.no_grad():
        Ws, b = unpack(inst, x.detach())
        Hbar = class_means(inst, Ws, b)
        counts = torch.tensor([int(c) for c in inst.counts], device=Hbar.device)
        H = torch.repeat_interleave(Hbar, counts, dim=1)
    return Params([w.clone() for w in Ws], H.contiguous(), None if b is None else b.clone())


def solve(inst: Instance, params0: Params, *, max_iter: int = solvers.LBFGS_MAX_ITER,
          grad_tol: float = solvers.LBFGS_GRAD_TOL, seed: int | None = None, start: int = 0,
          init: str = "") -> solvers.RunResult:
    """Minimize f from the weights (and bias) of ``params0`` with H eliminated; see the module docstring. The
    result's params, objective, grad_norm and stop_reason are those of the full objective at the lifted point;
    ``history`` is F along the reduced iterations (= f at the lifted iterates)."""
    t0 = time.perf_counter()
    models.check_params(inst, params0)
    x0 = pack(inst, params0)
    ev = solvers._Evaluator(None, x0, f=reduced_objective(inst))
    x, last_good, reason, message, it, hist = solvers.lbfgs_loop(ev, x0, max_iter=max_iter, grad_tol=grad_tol)
    evals = ev.evals
    if last_good is None or not math.isfinite(last_good[1]):
        return solvers.RunResult(params=params0.detach(), objective=math.inf, stop_reason="diverged", iterations=it,
                                 grad_evals=evals, grad_norm=math.inf, history=hist, seed=seed, solver="lbfgs",
                                 device=str(x0.device), seconds=time.perf_counter() - t0, start=start,
                                 message="features eliminated: the reduced objective was not finite", init=init)
    params = lift(inst, last_good[0])
    xf = params.flatten()
    fv, g = solvers._Evaluator(inst, xf)(xf)  # the full objective and its gradient at the lifted point
    gn = float(torch.linalg.vector_norm(g))
    note = (f"features eliminated (H = W^T (W W^T + N lambda_H I)^-1 (Y - b 1^T)): {it} reduced iterations, "
            f"reduced ||grad|| {last_good[2]:.3g}, full ||grad|| {gn:.3g} at the lifted point")
    if gn <= grad_tol:
        reason = "converged"
    elif math.isfinite(gn):
        run = solvers.lbfgs(inst, params, max_iter=LIFT_POLISH_ITER, grad_tol=grad_tol, seed=seed, start=start)
        if math.isfinite(run.objective) and run.grad_norm < gn:
            params, fv, gn, reason = run.params, run.objective, run.grad_norm, run.stop_reason
            it += run.iterations
            evals += run.grad_evals
            note += f"; then {run.iterations} full L-BFGS iterations: ||grad|| {gn:.3g}"
        reason = "converged" if gn <= grad_tol else "budget"
    else:
        reason = "diverged"
    return solvers.RunResult(params=params.detach(), objective=fv, stop_reason=reason, iterations=it, grad_evals=evals,
                             grad_norm=gn, history=hist, seed=seed, solver="lbfgs", device=str(x0.device),
                             seconds=time.perf_counter() - t0, start=start,
                             message="; ".join(t for t in (note, message if reason != "converged" else "",
                                                           f"init {init}" if init else "") if t),
                             init=init)
