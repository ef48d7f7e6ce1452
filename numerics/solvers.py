"""Seeded numeric minimizers of the full objective f of ``numerics.models`` (torch, float64 default).

* ``gd``: full-batch gradient descent with heavy-ball momentum (the papers' protocol):
  v <- mu v + grad f(x);  x <- x - lr v   (``lr``, ``momentum`` = mu; same update as torch.optim.SGD
  with momentum, dampening 0, no Nesterov).
* ``lbfgs``: torch.optim.LBFGS with a strong-Wolfe line search on one flat parameter vector, run to
  ||grad f||_2 <= ``grad_tol``; once f is flat at rounding level (the line search stalls, typically
  at ||grad|| ~ 1e-9) a safeguarded Newton-CG phase judged by ||grad|| finishes the job.
* ``solve``: multi-start driver; start s draws its initial point from a torch.Generator seeded with
  ``seed + s`` (on the CPU, in float64, then cast/moved), so "--seed k" is the seed of the first start,
  CPU and GPU share initial points, and the same seed gives the same numbers.

Stop reasons: "converged" (||grad f||_2 <= grad_tol at the returned point), "budget" (iterations ran
out, or the run was stopped by its callback / made no progress: see ``RunResult.message``),
"diverged" (non-finite objective or gradient; the returned point is the last finite iterate, and
``objective`` is +inf only if no finite iterate exists, never NaN).
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ncverify.numerics.models import Params, check_params, flat_objective, init_params, resolve_device, targets
from ncverify.numerics.problem import Instance, InstanceError

STOP_REASONS = ("converged", "budget", "diverged")

#: Default budgets and tolerances (per start).
#: gd: 50_000 iterations at lr 0.1 / momentum 0.9, grad_tol 1e-9. The slowest mode of f has curvature
#: mu ~ min(lambda) (less near a phase boundary) and the error contracts roughly like (1 - lr mu / (1 -
#: momentum))^k, so GD needs O(10^3 - 10^4) iterations on the suite's small instances (the benchmark
#: instance: ~2,100 to a relative objective error of 1e-10); 50_000 leaves room for smaller lambdas.
GD_MAX_ITER = 50_000
GD_GRAD_TOL = 1e-9
#: lbfgs: 5_000 iterations (each <= 25 line-search evaluations); grad_tol 1e-10. Rationale: near a
#: minimizer with smallest transverse curvature mu, f - f* <= ||grad||^2 / (2 mu); with mu >= 1e-5 this is
#: <= 5e-16, i.e. the objective is then exact to rounding level, and the argmin error ||grad|| / mu
#: <= 1e-5; the float64 rounding noise of the gradient itself is ~1e-16 * (size of its terms), far
#: below 1e-10 on the suite's instance sizes, so the tolerance is reachable (with the Newton-CG phase;
#: an f-based line search alone stalls near sqrt(2 mu eps |f|) ~ 1e-9).
LBFGS_MAX_ITER = 5_000
LBFGS_GRAD_TOL = 1e-10
LBFGS_HISTORY = 50
#: Newton-CG polish phase of lbfgs: a step may raise f by at most POLISH_SLACK * |f| (rounding level of
#: f); the phase ends after POLISH_PATIENCE consecutive rejected steps.
POLISH_SLACK = 64 * 2.220446049250313e-16
POLISH_PATIENCE = 3


@dataclass
class RunResult:
    """One solver run. ``params`` is the detached end point; ``grad_norm`` = ||grad f||_2 there;
    ``history`` = f at every recorded iteration (every ``record_every``-th; entry 0 is the start);
    ``seed`` = the torch.Generator seed of this start (``None`` when the start was given)."""

    params: Params
    objective: float
    stop_reason: str
    iterations: int
    grad_evals: int
    grad_norm: float
    history: list[float]
    seed: int | None
    solver: str
    device: str
    seconds: float
    start: int = 0
    message: str = ""
    snapshots: list | None = None  # [(iteration, flat parameter vector)] when a batched gd run was asked for them
    init: str = ""  # the start's kind ("std 0.1", "balanced", "low-rank 3", ...) when it came from numerics.starts

    def summary(self) -> dict:
        """JSON-ready summary (no parameters, no history)."""
        return {"start": self.start, "seed": self.seed, "solver": self.solver, "stop_reason": self.stop_reason,
                "objective": self.objective if math.isfinite(self.objective) else None,
                "iterations": self.iterations, "grad_evals": self.grad_evals,
                "grad_norm": self.grad_norm if math.isfinite(self.grad_norm) else None,
                "device": self.device, "seconds": self.seconds, "message": self.message, "init": self.init}


@dataclass
class MultiStartResult:
    """All runs of a multi-start solve. ``best``: the run with the lowest finite objective among the runs that
    did not diverge (a diverged run only if every run diverged: its point is the last finite iterate, not a
    minimizer). ``spread``: (min, max) objective over the converged runs (None if none)."""

    runs: list[RunResult]
    best: RunResult = field(init=False)
    spread: tuple[float, float] | None = field(init=False)

    def __post_init__(self) -> None:
        if not self.runs:
            raise InstanceError("a multi-start result needs at least one run")
        finite = [r for r in self.runs if math.isfinite(r.objective) and r.stop_reason != "diverged"]
        self.best = min(finite, key=lambda r: r.objective) if finite else self.runs[0]
        conv = [r.objective for r in self.runs if r.stop_reason == "converged"]
        self.spread = (min(conv), max(conv)) if conv else None

    @property
    def converged(self) -> list[RunResult]:
        return [r for r in self.runs if r.stop_reason == "converged"]


class _Evaluator:
    """f and grad f on a flat vector, counting gradient evaluations, with a small cache of recent
    points so re-evaluating an already evaluated point (L-BFGS does that) costs nothing."""

    def __init__(self, inst: Instance | None, x: torch.Tensor, cache: int = 32,
                 f: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        # f: any differentiable objective of the flat vector (default: the instance's full objective)
        self.f = f if f is not None else flat_objective(inst, targets(inst, dtype=x.dtype, device=x.device))
        self.evals = 0
        self._cache: list[tuple[torch.Tensor, float, torch.Tensor]] = []
        self._size = cache

    def __call__(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        for xc, fc, gc in reversed(self._cache):
            if torch.equal(xc, x):
                return fc, gc.clone()
        xr = x.detach().clone().requires_grad_(True)
        val = self.f(xr)
        (g,) = torch.autograd.grad(val, xr)
        self.evals += 1
        fv = float(val.detach())
        self._cache.append((x.detach().clone(), fv, g.detach()))
        if len(self._cache) > self._size:
            self._cache.pop(0)
        return fv, g.detach().clone()


def _wrap_callback(callback):
    """Call ``callback(iteration, f, ||g||, grad_evals)``, adding ``x=`` (the current flat parameter
    vector, a detached copy; ``Params.unflatten(inst, x)`` rebuilds the matrices) when the callable
    accepts a keyword ``x`` (or ``**kwargs``)."""
    if callback is None:
        return None
    try:
        sig = inspect.signature(callback)
        wants_x = "x" in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    except (TypeError, ValueError):
        wants_x = False

    def call(it: int, fv: float, gn: float, evals: int, x: torch.Tensor) -> bool:
        if wants_x:
            return bool(callback(it, fv, gn, evals, x=x.detach().clone()))
        return bool(callback(it, fv, gn, evals))
    return call


def _finite(fv: float, g: torch.Tensor) -> bool:
    return math.isfinite(fv) and bool(torch.isfinite(g).all())


def _flat_start(inst: Instance, params0: Params) -> tuple[torch.Tensor, str]:
    check_params(inst, params0)
    x = params0.flatten().detach().clone()
    return x, str(x.device)


def gd(inst: Instance, params0: Params, lr: float = 0.1, momentum: float = 0.9, max_iter: int = GD_MAX_ITER,
       grad_tol: float = GD_GRAD_TOL, record_every: int = 1,
       callback: Callable[[int, float, float, int], bool | None] | None = None,
       seed: int | None = None, start: int = 0) -> RunResult:
    """Full-batch gradient descent with heavy-ball momentum from ``params0``.

    One iteration = one gradient evaluation: v <- momentum v + g;  x <- x - lr v  (v_0 = 0).
    Stops "converged" when ||g||_2 <= grad_tol, "budget" after ``max_iter`` updates, "diverged" when
    f or g is non-finite (returns the last finite iterate). ``callback(iteration, f, ||g||, grad_evals)``
    runs at every iterate (also given ``x=``, the flat parameter vector, if it takes a keyword ``x``);
    returning True stops the run ("budget", message "stopped by callback").
    """
    if not (lr > 0 and math.isfinite(lr)) or not (0 <= momentum < 1):
        raise InstanceError(f"gd needs lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
    t0 = time.perf_counter()
    cb = _wrap_callback(callback)
    x, dev = _flat_start(inst, params0)
    ev = _Evaluator(inst, x, cache=1)
    v = torch.zeros_like(x)
    hist: list[float] = []
    last_good: tuple[torch.Tensor, float, float] | None = None
    reason, message, it = "budget", "", 0
    while True:
        fv, g = ev(x)
        gn = float(torch.linalg.vector_norm(g)) if torch.isfinite(g).all() else math.inf
        if not _finite(fv, g):
            reason, message = "diverged", f"non-finite objective or gradient at iteration {it}"
            break
        last_good = (x.clone(), fv, gn)
        if it % record_every == 0:
            hist.append(fv)
        if gn <= grad_tol:
            reason = "converged"
            break
        if cb is not None and cb(it, fv, gn, ev.evals, x):
            message = "stopped by callback"
            break
        if it >= max_iter:
            break
        v.mul_(momentum).add_(g)
        x = x - lr * v
        it += 1
    return _result(inst, x, last_good, reason, message, it, ev.evals, hist, seed, "gd", dev, t0, start)


def _result(inst: Instance, x: torch.Tensor, last_good, reason: str, message: str, it: int, evals: int,
            hist: list[float], seed, solver: str, dev: str, t0: float, start: int) -> RunResult:
    if last_good is None:  # not even the start was finite
        xf, fv, gn = x, math.inf, math.inf
    else:
        xf, fv, gn = last_good
    return RunResult(params=Params.unflatten(inst, xf.detach().clone()).detach(), objective=fv, stop_reason=reason,
                     iterations=it, grad_evals=evals, grad_norm=gn, history=hist, seed=seed, solver=solver,
                     device=dev, seconds=time.perf_counter() - t0, start=start, message=message)


def lbfgs(inst: Instance, params0: Params, max_iter: int = LBFGS_MAX_ITER, grad_tol: float = LBFGS_GRAD_TOL,
          history_size: int = LBFGS_HISTORY, record_every: int = 1,
          callback: Callable[[int, float, float, int], bool | None] | None = None,
          seed: int | None = None, start: int = 0, polish: bool = True) -> RunResult:
    """L-BFGS (torch.optim.LBFGS, line_search_fn="strong_wolfe", lr 1) on the flat vector x, run to
    ||grad f(x)||_2 <= ``grad_tol``.

    Phase 1 runs one L-BFGS iteration per ``step`` (the optimizer keeps its curvature memory across
    steps) and tests the gradient norm after each. When the line search can no longer decrease f (f is
    flat at rounding level, which on these problems happens around ||grad|| ~ sqrt(2 mu eps |f|) ~ 1e-9,
    mu the smallest transverse curvature) and ``polish`` is set, phase 2 takes safeguarded Newton-CG
    steps judged by ||grad|| (still accurate there): each step solves H p = -g by conjugate gradients
    (Hessian-vector products by double backward, each counted as 2 gradient evaluations), and is accepted
    only if ||grad|| decreases and f does not rise above rounding level (POLISH_SLACK * |f|).
    ``grad_evals`` counts every gradient evaluation at a new point (line-search trials included).
    ``callback(iteration, f, ||g||, grad_evals)`` as in ``gd``.
    """
    t0 = time.perf_counter()
    cb = _wrap_callback(callback)
    x0, dev = _flat_start(inst, params0)
    ev = _Evaluator(inst, x0)
    x, last_good, reason, message, it, hist = lbfgs_loop(ev, x0, max_iter=max_iter, grad_tol=grad_tol,
                                                          history_size=history_size, record_every=record_every,
                                                          callback=cb, polish=polish)
    return _result(inst, x, last_good, reason, message, it, ev.evals, hist, seed, "lbfgs", dev, t0, start)


def lbfgs_loop(ev: _Evaluator, x0: torch.Tensor, *, max_iter: int, grad_tol: float, history_size: int = LBFGS_HISTORY,
               record_every: int = 1, callback=None, polish: bool = True):
    """The two phases of ``lbfgs`` on the objective of ``ev`` from the flat point ``x0`` (any differentiable
    objective of one vector: the full objective, or a reduced one, ``numerics.eliminated``). ``callback`` as
    wrapped by ``_wrap_callback``. Returns (x, last_good = (point, f, ||grad||) or None, stop_reason, message,
    iterations, history)."""
    cb = callback
    x = x0.clone().requires_grad_(True)

    def make_opt() -> torch.optim.LBFGS:
        return torch.optim.LBFGS([x], lr=1.0, max_iter=1, max_eval=40, tolerance_grad=0.0, tolerance_change=0.0,
                                 history_size=history_size, line_search_fn="strong_wolfe")

    # torch's L-BFGS only stores a curvature pair when y^T s > 1e-10 (an absolute threshold). Near a
    # minimizer y^T s ~ ||grad||^2 / curvature, so below ||grad|| ~ 1e-6 the memory would freeze and the
    # method degrade to scaled gradient descent. The optimizer therefore sees c * f with c a power of two
    # (exact in floating point: the same problem in other units) chosen so that pairs keep being
    # stored down to ||grad|| = grad_tol for curvatures up to ~1e4.
    scale = _lbfgs_scale(grad_tol)

    def closure() -> torch.Tensor:
        fv, g = ev(x.detach())
        x.grad = g * scale
        if not _finite(fv, g):  # make the line search reject the point instead of propagating NaN
            return torch.tensor(math.inf, dtype=x.dtype, device=x.device)
        return torch.tensor(fv * scale, dtype=x.dtype, device=x.device)

    opt = make_opt()
    hist: list[float] = []
    last_good = None
    reason, message, it, stalls = "budget", "", 0, 0
    while True:
        with torch.no_grad():
            xc = x.detach().clone()
        fv, g = ev(xc)
        gn = float(torch.linalg.vector_norm(g)) if torch.isfinite(g).all() else math.inf
        if not _finite(fv, g):
            reason, message = "diverged", f"non-finite objective or gradient at iteration {it}"
            break
        if last_good is not None and torch.equal(last_good[0], xc):
            stalls += 1
            if stalls == 1:
                opt = make_opt()  # reset the curvature memory once and retry
            else:
                message = f"line search found no decrease at iteration {it} (||grad|| = {gn:.3g})"
                if polish:
                    last_good, it, reason, message = _newton_polish(ev, last_good, it, max_iter, grad_tol,
                                                                   hist, record_every, cb)
                break
        else:
            stalls = 0
        last_good = (xc, fv, gn)
        if it % record_every == 0:
            hist.append(fv)
        if gn <= grad_tol:
            reason = "converged"
            break
        if cb is not None and cb(it, fv, gn, ev.evals, xc):
            message = "stopped by callback"
            break
        if it >= max_iter:
            break
        opt.step(closure)
        it += 1
    return x.detach(), last_good, reason, message, it, hist


def _newton_polish(ev: _Evaluator, point: tuple[torch.Tensor, float, float], it: int, max_iter: int,
                   grad_tol: float, hist: list[float], record_every: int, callback):
    """Phase 2 of ``lbfgs`` (see there). Returns (point, iterations, stop_reason, message)."""
    x, f0, gn = point
    f_ref = f0
    fails = 0
    while True:
        if gn <= grad_tol:
            return (x, f0, gn), it, "converged", "converged in the Newton-CG polish phase"
        if it >= max_iter:
            return (x, f0, gn), it, "budget", "budget ran out in the Newton-CG polish phase"
        if fails >= POLISH_PATIENCE:
            return (x, f0, gn), it, "budget", (f"objective flat at rounding level; ||grad|| stuck at {gn:.3g} "
                                                f"(> grad_tol {grad_tol:.3g}) in the Newton-CG polish phase")
        if callback is not None and callback(it, f0, gn, ev.evals, x):
            return (x, f0, gn), it, "budget", "stopped by callback"
        p = _newton_cg_direction(ev, x)
        it += 1
        accepted = False
        t = 1.0
        for _ in range(8):  # backtracking on ||grad||
            xn = x + t * p
            fn, gnew = ev(xn)
            gnn = float(torch.linalg.vector_norm(gnew)) if torch.isfinite(gnew).all() else math.inf
            if _finite(fn, gnew) and gnn < gn and fn <= f_ref + POLISH_SLACK * abs(f_ref):
                accepted = True
                break
            t *= 0.5
        if accepted:
            x, f0, gn, fails = xn, fn, gnn, 0
            if it % record_every == 0:
                hist.append(f0)
        else:
            fails += 1


def _newton_cg_direction(ev: _Evaluator, x: torch.Tensor, max_cg: int = 250, rtol: float = 1e-3) -> torch.Tensor:
    """Approximate solution p of H(x) p = -grad f(x) by conjugate gradients (stops at negative curvature)."""
    xr = x.detach().clone().requires_grad_(True)
    val = ev.f(xr)
    (g,) = torch.autograd.grad(val, xr, create_graph=True)
    ev.evals += 1
    b = -g.detach()
    p = torch.zeros_like(b)
    r = b.clone()
    dvec = r.clone()
    rr = float(r @ r)
    stop = (rtol ** 2) * rr
    for _ in range(max_cg):
        (Hd,) = torch.autograd.grad(g, xr, grad_outputs=dvec, retain_graph=True)
        ev.evals += 2
        dHd = float(dvec @ Hd)
        if dHd <= 0:
            return p if float(p @ p) > 0 else b
        alpha = rr / dHd
        p = p + alpha * dvec
        r = r - alpha * Hd.detach()
        rr_new = float(r @ r)
        if rr_new <= stop:
            break
        dvec = r + (rr_new / rr) * dvec
        rr = rr_new
    return p.detach()


def _lbfgs_scale(grad_tol: float) -> float:
    """Power of two c ~ 1e-6 / grad_tol^2 (at least 1): see ``lbfgs``."""
    if not (grad_tol > 0 and math.isfinite(grad_tol)):
        return 1.0
    return float(2.0 ** max(0, round(math.log2(1e-6 / grad_tol ** 2))))


def solve(inst: Instance, solver: str = "lbfgs", starts: int = 1, seed: int = 0, device: str = "auto",
          dtype: torch.dtype = torch.float64, init_std: float = 0.1, max_iter: int | None = None,
          grad_tol: float | None = None, lr: float = 0.1, momentum: float = 0.9,
          progress: Callable[[int, RunResult], None] | None = None) -> MultiStartResult:
    """Multi-start minimization of f for ``inst``.

    Start s (0-based) begins at ``init_params(inst, torch.Generator().manual_seed(seed + s), init_std)``
    (entries N(0, init_std^2), bias 0). ``max_iter``/``grad_tol`` default to the solver's defaults
    (gd: GD_MAX_ITER, GD_GRAD_TOL; lbfgs: LBFGS_MAX_ITER, LBFGS_GRAD_TOL). ``progress(s, run)`` is called
    after every start.
    """
    if solver not in ("lbfgs", "gd"):
        raise InstanceError(f"solver must be lbfgs or gd, got {solver!r}")
    if int(starts) < 1:
        raise InstanceError(f"starts must be >= 1, got {starts}")
    if int(seed) < 0:
        raise InstanceError(f"seed must be >= 0, got {seed}")
    dev = resolve_device(device)
    runs: list[RunResult] = []
    for s in range(int(starts)):
        run_seed = int(seed) + s
        gen = torch.Generator(device="cpu").manual_seed(run_seed)
        p0 = init_params(inst, gen, std=init_std, dtype=dtype, device=dev)
        if solver == "gd":
            run = gd(inst, p0, lr=lr, momentum=momentum, max_iter=GD_MAX_ITER if max_iter is None else max_iter,
                     grad_tol=GD_GRAD_TOL if grad_tol is None else grad_tol, seed=run_seed, start=s)
        else:
            run = lbfgs(inst, p0, max_iter=LBFGS_MAX_ITER if max_iter is None else max_iter,
                        grad_tol=LBFGS_GRAD_TOL if grad_tol is None else grad_tol, seed=run_seed, start=s)
        runs.append(run)
        if progress is not None:
            progress(s, run)
    return MultiStartResult(runs)
