"""The start portfolio and the multi-start drivers (batched by default, one at a time as the reference).

torch only (never SymPy). Notation as in ``numerics.models``: W_1..W_M = ``Params.weights``,
H = ``Params.H``, b = ``Params.b``; lambda_{W_j} = ``inst.lam_w[j-1]``, lambda_H = ``inst.lam_h``,
M = ``inst.depth``, K = ``inst.K``, N = ``inst.N``, d = ``inst.width``.

The portfolio (``PORTFOLIO``, cycled: start i has kind ``PORTFOLIO[i % 8]`` and torch.Generator seed
``seed + i``), because deep objectives have a local minimum at W = H = 0 and partly collapsed / low-rank basins
that no single kind of start reaches reliably:

* "std 0.1", "std 1", "std 0.01": every entry of W_j and H i.i.d. N(0, std^2) (the papers' protocol), b = 0;
* "balanced": ``balanced_start``, random partial isometries with the layer energies balancedness imposes,
  every mode at the labels' scale (reaches the full-rank basins near phase boundaries);
* "low-rank": ``low_rank_start``, aligned factors of rank r < K at the labels' scale plus a small generic
  perturbation; the j-th low-rank start of a run uses r = K - 1 - (j mod (K - 1)) (r = 1 when K = 2), so
  several ranks are tried (deep cross-entropy has low-rank minima below the simplex ETF);
* "reduced" (replaces start ``REDUCED_AT`` = 1, the first "balanced", on balanced bias-free deep linear CE instances with
  d >= K, ``ce_lift.liftable``): ``reduced_start``, the best end point of an ``REDUCED_STARTS``-start search of
  the instance's reduced K x K problem (``ce_lift.reduced_instance``: the same objective over the class-mean
  logits, solved with this portfolio; no codes, no claim) lifted to full matrices by the balanced
  factorization (``ce_lift.balanced_point``). Near total collapse the nonzero minimizers of deep CE have basins
  that Gaussian, balanced and low-rank starts of the full problem rarely reach; the K x K problem finds them.

* "nonnegative" (replaces start ``NONNEG_AT`` = 3, "std 1", on ReLU instances): ``balanced_start`` with H and every
  weight followed by a ReLU replaced by their entrywise absolute values, so every pre-activation is >= 0 and the
  ReLUs start active
  (the ReLU model then starts where the linear model's basins are; Gaussian starts kill part of the features).

``solve_instances`` minimizes the starts of many instances in one batched call (``numerics.batched``);
``multistart(..., engine="loop")`` runs the same starts one at a time with ``numerics.solvers`` (the reference
the batched path is tested against).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ncverify.numerics import batched, ce_lift, eliminated, models, solvers
from ncverify.numerics.problem import Instance, InstanceError

PORTFOLIO = ("std 0.1", "balanced", "low-rank", "std 1", "balanced", "low-rank", "std 0.01", "balanced")
#: relative size of the generic perturbation added to a low-rank start
LOW_RANK_NOISE = 1e-3
ENGINES = ("batched", "loop")
#: the start index that is "reduced" on instances where ``ce_lift.liftable`` (else PORTFOLIO[REDUCED_AT])
REDUCED_AT = 1
#: the start index that is "nonnegative" on ReLU instances (else PORTFOLIO[NONNEG_AT])
NONNEG_AT = 3
#: starts of the reduced K x K search behind a "reduced" start
REDUCED_STARTS = 16


def _scales(inst: Instance) -> tuple[list[float], float]:
    """Per-factor scales s_A = sqrt(L / lambda_A) n^{1/(2(M+1))} (L = (lambda_H prod_j lambda_{W_j})^{1/(M+1)},
    n = N / K): balanced energies, product of the scales = sqrt(n), the labels' singular-value size."""
    M = inst.depth
    L = math.exp((math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))
    t = (inst.N / inst.K) ** (1.0 / (2 * (M + 1)))
    return [math.sqrt(L / lam) * t for lam in inst.lam_w], math.sqrt(L / inst.lam_h) * t


def _isometry(rows: int, cols: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-random partial isometry (orthonormal rows or columns), float64 on the CPU."""
    G = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R))
    return Q if rows >= cols else Q.T


def balanced_start(inst: Instance, generator: torch.Generator, device: str = "auto") -> models.Params:
    """A random start with the layer energies that balancedness imposes at critical points
    (lambda_{W_j} ||W_j||^2 equal across layers and to lambda_H ||H||^2) and every mode at the label scale:
    each factor A (decay lambda_A) is a random partial isometry (QR of a Gaussian matrix drawn from
    ``generator``, float64 on the CPU) times s_A (``_scales``). The bias b starts at 0. Uses only the instance's
    lambdas and sizes (never a claim). The result is moved to ``models.resolve_device(device)``."""
    sw, sh = _scales(inst)
    shapes = models.shapes(inst)
    ws = [_isometry(*shapes[j], generator) * sw[j] for j in range(inst.depth)]
    H = _isometry(inst.width, inst.N, generator) * sh
    b = torch.zeros(inst.K, dtype=torch.float64) if inst.bias else None
    return models.Params(ws, H, b).to(device=models.resolve_device(device))


def low_rank_start(inst: Instance, generator: torch.Generator, rank: int, device: str = "auto") -> models.Params:
    """Aligned factors of rank r = ``rank`` (clamped to [1, min(d, N, K)]) at the labels' scale:
    H = s_H U_0 Q^T, W_j = s_j U_j U_{j-1}^T (j < M), W_M = s_M V U_{M-1}^T with U_j (d x r), Q (N x r),
    V (K x r) random orthonormal, so W_M...W_1 H = (prod s) V Q^T has r singular values sqrt(N/K); then every
    entry gets N(0, (LOW_RANK_NOISE s_A)^2 / width) noise so the start is generic. b = 0."""
    r = max(1, min(int(rank), inst.width, inst.N, inst.K))
    sw, sh = _scales(inst)
    d, M = inst.width, inst.depth
    U = [_isometry(d, r, generator) for _ in range(M)]
    Q = _isometry(inst.N, r, generator)
    V = _isometry(inst.K, r, generator)
    H = sh * U[0] @ Q.T
    ws = [sw[j] * U[j + 1] @ U[j].T for j in range(M - 1)] + [sw[M - 1] * V @ U[M - 1].T]
    noise = lambda A, s: A + torch.randn(A.shape, generator=generator, dtype=torch.float64) * (  # noqa: E731
        LOW_RANK_NOISE * s / math.sqrt(d))
    ws = [noise(W, s) for W, s in zip(ws, sw)]
    H = noise(H, sh)
    b = torch.zeros(inst.K, dtype=torch.float64) if inst.bias else None
    return models.Params(ws, H, b).to(device=models.resolve_device(device))


def reduced_start(inst: Instance, seed: int, device: str = "auto", runs: Sequence[solvers.RunResult] | None = None
                  ) -> models.Params | None:
    """The "reduced" start (see the module docstring): the least end point of the reduced problem's first
    ``REDUCED_STARTS`` portfolio starts (seeds ``seed``, ``seed + 1``, ...; ``runs``: those end points already
    computed, e.g. batched over many instances by ``portfolio_problems``), its class-mean logits
    Zbar = W_M...W_1 H lifted by ``ce_lift.balanced_point``; None if every reduced start diverged."""
    if runs is None:
        red = ce_lift.reduced_instance(inst.K, inst.depth, ce_lift.ell_of(inst))
        runs = solve_instances([red], starts=REDUCED_STARTS, seed=seed, device="cpu")[0].runs
    ok = [r for r in runs if r.stop_reason != "diverged" and math.isfinite(r.objective)]
    if not ok:
        return None
    p = min(ok, key=lambda r: r.objective).params.to_numpy()
    W = p["weights"][0]
    for w in p["weights"][1:]:
        W = w @ W
    point = ce_lift.balanced_point(W @ p["H"], inst)
    return models.Params.from_numpy(point).to(device=models.resolve_device(device))


def portfolio_kind(inst: Instance, i: int) -> str:
    """The kind of start i for ``inst``: ``PORTFOLIO[i % 8]``, except "reduced" at i = ``REDUCED_AT`` on
    instances where the deep CE reduction applies (``ce_lift.liftable``) and "nonnegative" at i = ``NONNEG_AT`` on
    ReLU instances."""
    if i == REDUCED_AT and ce_lift.liftable(inst):
        return "reduced"
    if i == NONNEG_AT and inst.activation in ("relu", "relu-deep"):
        return "nonnegative"
    return PORTFOLIO[i % len(PORTFOLIO)]


def portfolio_start(inst: Instance, i: int, seed: int, device: str = "auto",
                    init_std: float | None = None, reduced_runs: Sequence[solvers.RunResult] | None = None
                    ) -> tuple[models.Params, str]:
    """Start i of the portfolio (kind ``portfolio_kind(inst, i)``, generator seed ``seed + i``) and its label;
    ``init_std`` set: every start is Gaussian N(0, init_std^2) instead (the papers' protocol); ``reduced_runs``:
    the reduced search behind a "reduced" start, already solved."""
    gen = torch.Generator().manual_seed(int(seed) + i)
    if init_std is not None:
        return models.init_params(inst, gen, std=init_std, device=models.resolve_device(device)), f"std {init_std:g}"
    kind = portfolio_kind(inst, i)
    dev = models.resolve_device(device)
    if kind == "reduced":
        p0 = reduced_start(inst, int(seed) + i, device, runs=reduced_runs)
        if p0 is not None:
            return p0, kind
        return models.init_params(inst, gen, std=1.0, device=dev), "std 1 (every reduced start diverged)"
    if kind == "balanced":
        return balanced_start(inst, gen, device), kind
    if kind == "nonnegative":
        p0 = balanced_start(inst, gen, device)
        Ws = [w.abs() if models.activated(inst, j) else w for j, w in enumerate(p0.weights)]
        return models.Params(Ws, p0.H.abs(), p0.b), kind
    if kind == "low-rank":
        j = sum(1 for k in range(i) if PORTFOLIO[k % len(PORTFOLIO)] == "low-rank")
        r = inst.K - 1 - (j % (inst.K - 1)) if inst.K > 2 else 1
        return low_rank_start(inst, gen, r, device), f"low-rank {r}"
    return models.init_params(inst, gen, std=float(kind.split()[1]), device=dev), kind


def _check(starts: int, seed: int, solver: str) -> None:
    if int(starts) < 1:
        raise InstanceError(f"starts must be >= 1, got {starts}")
    if int(seed) < 0:
        raise InstanceError(f"seed must be >= 0, got {seed}")
    if solver not in batched.SOLVERS:
        raise InstanceError(f"solver must be one of {', '.join(batched.SOLVERS)}, got {solver!r}")


def portfolio_problems(insts: Sequence[Instance], *, starts: int, seed: int, device: str = "auto",
                       init_std: float | None = None) -> list[batched.Problem]:
    """The portfolio's first ``starts`` starts of every instance as ``batched.Problem``s, instance-major (start i
    of an instance: ``portfolio_start(inst, i, seed)``, labelled with its seed ``seed + i`` and kind). The reduced
    searches behind the instances' "reduced" starts are solved first, all in one batched call."""
    reduced: dict[Instance, list] = {}
    if init_std is None and int(starts) > REDUCED_AT:
        need = [inst for inst in dict.fromkeys(insts) if portfolio_kind(inst, REDUCED_AT) == "reduced"]
        reds = [ce_lift.reduced_instance(inst.K, inst.depth, ce_lift.ell_of(inst)) for inst in need]
        if reds:
            solved = solve_instances(reds, starts=REDUCED_STARTS, seed=int(seed) + REDUCED_AT, device="cpu")
            reduced = {inst: r.runs for inst, r in zip(need, solved)}
    problems = []
    for inst in insts:
        for i in range(int(starts)):
            p0, kind = portfolio_start(inst, i, seed, device, init_std, reduced_runs=reduced.get(inst))
            problems.append(batched.Problem(inst, p0, seed=int(seed) + i, start=i, kind=kind))
    return problems


def solve_instances(insts: Sequence[Instance], *, starts: int, seed: int, solver: str = "lbfgs", device: str = "auto",
                    max_iter: int | None = None, grad_tol: float | None = None, lr: float = 0.1, momentum: float = 0.9,
                    init_std: float | None = None, progress: Callable[[int, int], None] | None = None
                    ) -> list[solvers.MultiStartResult]:
    """The portfolio's first ``starts`` starts of every instance, minimized in one batched call (with ``solver``
    "lbfgs", the starts of large MSE instances, ``eliminated.eligible``, are minimized one at a time with H
    eliminated, ``numerics.eliminated``); one ``MultiStartResult`` per instance (runs in start order, ``start`` = i,
    message ending "init <kind>")."""
    _check(starts, seed, solver)
    problems = portfolio_problems(insts, starts=starts, seed=seed, device=device, init_std=init_std)
    # large MSE instances: H eliminated in closed form (numerics.eliminated), one start at a time; the rest batched
    reduce = [i for i, pb in enumerate(problems) if solver == "lbfgs" and eliminated.eligible(pb.inst)]
    rest = sorted(set(range(len(problems))) - set(reduce))
    total = len(problems)
    runs: list = [None] * total
    if rest:
        tick = None if progress is None else (lambda finished, _n: progress(finished, total))
        for i, run in zip(rest, batched.solve_problems([problems[i] for i in rest], solver=solver, device=device,
                                                       max_iter=max_iter, grad_tol=grad_tol, lr=lr, momentum=momentum,
                                                       progress=tick)):
            runs[i] = run
    kw = {k: v for k, v in (("max_iter", max_iter), ("grad_tol", grad_tol)) if v is not None}
    for j, i in enumerate(reduce):
        pb = problems[i]
        runs[i] = eliminated.solve(pb.inst, pb.params0, seed=pb.seed, start=pb.start, init=pb.kind, **kw)
        if progress is not None:
            progress(len(rest) + j + 1, total)
    S = int(starts)
    return [solvers.MultiStartResult(runs[k * S:(k + 1) * S]) for k in range(len(insts))]


def multistart(inst: Instance, *, solver: str, starts: int, seed: int, device: str = "auto",
               max_iter: int | None = None, grad_tol: float | None = None, engine: str = "batched",
               init_std: float | None = None, lr: float = 0.1, momentum: float = 0.9,
               progress: Callable[[int, int], None] | None = None) -> solvers.MultiStartResult:
    """The portfolio's first ``starts`` starts of ``inst``: all at once (``engine="batched"``, the default) or
    one at a time with ``numerics.solvers`` (``engine="loop"``, the reference), from the same initial points."""
    if engine == "batched":
        return solve_instances([inst], starts=starts, seed=seed, solver=solver, device=device, max_iter=max_iter,
                               grad_tol=grad_tol, lr=lr, momentum=momentum, init_std=init_std, progress=progress)[0]
    if engine != "loop":
        raise InstanceError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    _check(starts, seed, solver)
    runs = []
    for i in range(int(starts)):
        p0, kind = portfolio_start(inst, i, seed, device, init_std)
        kw = {} if max_iter is None else {"max_iter": max_iter}
        if grad_tol is not None:
            kw["grad_tol"] = grad_tol
        run = (solvers.gd(inst, p0, lr=lr, momentum=momentum, seed=int(seed) + i, start=i, **kw) if solver == "gd"
               else solvers.lbfgs(inst, p0, seed=int(seed) + i, start=i, **kw))
        run.message = (run.message + "; " if run.message else "") + f"init {kind}"
        run.init = kind
        runs.append(run)
        if progress is not None:
            progress(i + 1, int(starts))
    return solvers.MultiStartResult(runs)
