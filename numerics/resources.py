"""Memory a check of one instance needs, and the budget it must fit in (refused up front, never an allocator error).

torch-free arithmetic on the instance's sizes (``numerics.problem.Instance``): P = ``models.num_params``
parameters, K classes, N samples, d width, M depth; every number is float64 (8 bytes).

``check_bytes(inst, starts)`` estimates the peak of a full check (the solver's working set, the curvature at the
best end point, the metrics), term by term (``memory_terms``):

* solver: with H eliminated (``numerics.eliminated``, large MSE instances): the start's full parameters, the
  lifted point and its gradient graph (about 6 P + 2 M d N), and the fallback full-problem L-BFGS after the lift
  (2 ``solvers.LBFGS_HISTORY`` + 4 vectors of P); otherwise the batched L-BFGS holds every start at once,
  (2 ``batched.HISTORY`` + 12) P per start, plus the padded activations (3 M d N per start);
* curvature: dense up to ``curvature.DENSE_MAX_PARAMS`` (3 P^2), else the Lanczos vectors (k + 1) P with
  k = ``lanczos_steps``, the Hessian-vector product graph (about 8 P + 4 M d N) and the symmetry basis of
  ``curvature.TangentSpace`` (4 m^2, m = interfaces x (r(r-1)/2 + r(d-r)) coefficients, r = min(K, d): the rank
  of the factors at a minimizer; none above ``curvature.ORBIT_MAX_COEFFICIENTS``);
* the labels and outputs (4 K N) and the metrics' copies of the features (4 d N).

The estimate is deliberately generous (the real peak was 40-70% of it on the instances of
``benchmarks/bench_papers.py``). ``memory_budget()``: ``NCVERIFY_MEMORY_BUDGET`` (bytes, or with a unit: "8GB",
"512MiB") when set, else ``BUDGET_FRACTION`` of this machine's physical memory. ``lanczos_steps(P)`` caps the
Lanczos steps so that their vectors fit in ``LANCZOS_SHARE`` of the budget.
"""
from __future__ import annotations

import os
import re

from ncverify.numerics.problem import Instance, InstanceError

#: the default budget: this fraction of the machine's physical memory
BUDGET_FRACTION = 0.5
#: the Lanczos vectors may take at most this fraction of the budget
LANCZOS_SHARE = 0.6
#: fewer Lanczos steps than this cannot resolve the smallest transverse curvature: the curvature is then refused
MIN_LANCZOS_STEPS = 30
ENV = "NCVERIFY_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


class MemoryBudgetError(InstanceError):
    """An instance whose estimated memory exceeds the budget (the message names both sizes)."""


def parse_bytes(text: str, what: str = ENV) -> int:
    """"8GB" -> 8e9, "512MiB" -> 2^29, "1000000" -> 10^6; InstanceError naming ``what`` otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise InstanceError(f"{what} must be a size like 8GB, 512MiB or a number of bytes, got {text!r}")
    value = float(m.group(1)) * _UNITS[unit]
    if not value > 0:
        raise InstanceError(f"{what} must be > 0, got {text!r}")
    return int(value)


def machine_memory() -> int:
    """Physical memory of this machine in bytes (os.sysconf; 8 GiB if the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2 ** 30


def memory_budget(override: str | int | None = None) -> int:
    """The budget in bytes: ``override`` (a size string or bytes), else ``NCVERIFY_MEMORY_BUDGET``, else
    ``BUDGET_FRACTION`` x ``machine_memory()``."""
    if override is not None:
        return override if isinstance(override, int) and override > 0 else parse_bytes(str(override), "--memory-budget")
    env = os.environ.get(ENV)
    if env:
        return parse_bytes(env)
    return int(BUDGET_FRACTION * machine_memory())


def human(nbytes: float) -> str:
    """1.5e9 -> "1.5 GB"."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{int(nbytes)} B"


def lanczos_steps(P: int, budget: int | None = None) -> int:
    """The Lanczos steps k whose (k + 1) P float64 vectors fit in ``LANCZOS_SHARE`` of the budget (at most
    ``curvature.LANCZOS_MAX_ITER``)."""
    from ncverify.numerics.curvature import LANCZOS_MAX_ITER

    b = memory_budget() if budget is None else budget
    return max(0, min(LANCZOS_MAX_ITER, int(LANCZOS_SHARE * b / (8 * max(P, 1))) - 1))


def memory_terms(inst: Instance, starts: int = 3, budget: int | None = None) -> dict[str, int]:
    """The estimate of ``check_bytes``, term by term (bytes)."""
    from ncverify.numerics import batched, curvature, eliminated, models, solvers

    P, K, N, d, M = models.num_params(inst), inst.K, inst.N, inst.width, inst.depth
    act = M * d * N
    if eliminated.eligible(inst):
        solver = 6 * P + 2 * act + (2 * solvers.LBFGS_HISTORY + 4) * P
    else:
        solver = max(1, starts) * ((2 * batched.HISTORY + 12) * P + 3 * act)
    if P <= curvature.DENSE_MAX_PARAMS:
        curv = 3 * P * P
    else:
        r = min(K, d)  # the rank of the factors at a minimizer (at most K): the symmetry basis per interface
        m = len(curvature.interfaces(inst)) * (r * (r - 1) // 2 + r * (d - r))
        m = m if m <= curvature.ORBIT_MAX_COEFFICIENTS else 0  # above: no basis (the orbit is left to the cutoff)
        curv = (lanczos_steps(P, budget) + 1) * P + 8 * P + 4 * act + 4 * m * m
    return {"solver": 8 * solver, "curvature": 8 * curv, "data": 8 * (4 * K * N + 4 * d * N)}


def check_bytes(inst: Instance, starts: int = 3, budget: int | None = None) -> int:
    """Estimated peak memory of a full check of ``inst`` with ``starts`` starts (see the module docstring)."""
    return sum(memory_terms(inst, starts, budget).values())


def require_fits(inst: Instance, starts: int = 3, budget: str | int | None = None) -> None:
    """MemoryBudgetError (one line: the instance's size, the estimate, the budget and how to change it) when a
    full check of ``inst`` would not fit in the budget."""
    from ncverify.numerics import models

    b = memory_budget(budget)
    need = check_bytes(inst, starts, b)
    if need > b:
        raise MemoryBudgetError(
            f"the instance (K = {inst.K}, N = {inst.N}, d = {inst.width}, M = {inst.depth}: "
            f"{models.num_params(inst)} parameters) needs about {human(need)} for a check with {starts} starts, "
            f"above the memory budget of {human(b)} (set --memory-budget or {ENV} to change it)")
