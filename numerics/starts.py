"""Seeded starting points and the multi-start driver that cycles through start kinds.

torch only (never SymPy). Notation as in ``numerics.models``: W_1..W_M = ``Params.weights``,
H = ``Params.H``, b = ``Params.b``; lambda_{W_j} = ``inst.lam_w[j-1]``, lambda_H = ``inst.lam_h``,
M = ``inst.depth``, K = ``inst.K``, N = ``inst.N``, d = ``inst.width``.

* ``INIT_KINDS``: the start kinds, cycled by ``multistart`` ("std 0.1", "balanced", "std 1", "balanced");
* ``balanced_start(inst, generator)``: a random start with balanced layer energies at the label scale;
* ``multistart(inst, solver=..., starts=..., seed=...)``: seeded starts, start i of kind
  ``INIT_KINDS[i % 4]`` with seed ``seed + i``.
"""
from __future__ import annotations

import math

import torch

from numerics import models, solvers
from numerics.problem import Instance

INIT_KINDS = ("std 0.1", "balanced", "std 1", "balanced")  # balanced starts reach the small basins near boundaries


def balanced_start(inst: Instance, generator: torch.Generator, device: str = "auto") -> models.Params:
    """A random start with the layer energies that balancedness imposes at critical points
    (lambda_{W_j} ||W_j||^2 equal across layers and to lambda_H ||H||^2) and every mode at the label scale:
    each factor A (decay lambda_A) is a random partial isometry (orthonormal rows or columns from the QR
    of a Gaussian matrix drawn from ``generator``, float64 on the CPU) times s_A = sqrt(L / lambda_A)
    n^{1/(2(M+1))}, L = (lambda_H prod_j lambda_{W_j})^{1/(M+1)}, n = N / K the mean class size, so the
    product of the factors has all its singular values near sqrt(n), the size of the labels' singular
    values. The bias b (when ``inst.bias``) starts at 0. Uses only the instance's lambdas and sizes
    (never a claim). Deep objectives have a local minimum at 0 for every mode separately; starting
    every mode at the label scale avoids the partly collapsed minima that Gaussian starts often reach.
    The result is moved to ``models.resolve_device(device)``."""
    M = inst.depth
    L = math.exp((math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))
    t = (inst.N / inst.K) ** (1.0 / (2 * (M + 1)))

    def isometry(rows: int, cols: int) -> torch.Tensor:
        G = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
        Q, R = torch.linalg.qr(G)
        Q = Q * torch.sign(torch.diagonal(R))  # a Haar-distributed orthonormal frame
        return Q if rows >= cols else Q.T

    shapes = models.shapes(inst)
    ws = [isometry(*shapes[j]) * (math.sqrt(L / lam) * t) for j, lam in enumerate(inst.lam_w)]
    H = isometry(inst.width, inst.N) * (math.sqrt(L / inst.lam_h) * t)
    b = torch.zeros(inst.K, dtype=torch.float64) if inst.bias else None
    return models.Params(ws, H, b).to(device=models.resolve_device(device))


def multistart(inst: Instance, *, solver: str, starts: int, seed: int, device: str = "auto",
               max_iter: int | None = None) -> solvers.MultiStartResult:
    """Seeded starts cycling through INIT_KINDS: the papers' N(0, 0.1^2), N(0, 1), and a balanced-energy
    start (``balanced_start``). Deep (M >= 2) objectives have a local minimum at W = H = 0 whose basin
    holds every small start when the regularization is strong; the other kinds reach the other basins.
    Start i uses the torch.Generator seed ``seed + i`` and kind ``INIT_KINDS[i % 4]``; ``solver`` is
    "lbfgs" or "gd" (``numerics.solvers``), ``max_iter`` None = the solver's default budget. Each run gets
    ``start = i`` and its ``message`` ends with "init <kind>"."""
    runs = []
    for i in range(starts):
        kind = INIT_KINDS[i % len(INIT_KINDS)]
        if kind == "balanced":
            p0 = balanced_start(inst, torch.Generator().manual_seed(seed + i), device)
            run = (solvers.gd(inst, p0, seed=seed + i, start=i, **({} if max_iter is None else {"max_iter": max_iter}))
                   if solver == "gd" else
                   solvers.lbfgs(inst, p0, seed=seed + i, start=i, **({} if max_iter is None else {"max_iter": max_iter})))
        else:
            run = solvers.solve(inst, solver=solver, starts=1, seed=seed + i, device=device, max_iter=max_iter,
                                init_std=0.1 if kind == "std 0.1" else 1.0).runs[0]
        run.start = i
        run.message = (run.message + "; " if run.message else "") + f"init {kind}"
        runs.append(run)
    return solvers.MultiStartResult(runs)
