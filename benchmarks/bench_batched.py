"""Benchmark (not a test): the batched solver against the one-at-a-time reference on many small instances.

Instances (seeded): K in 2..8, n_k in 1..10 per class (half balanced, half imbalanced), depth M in 1..4,
width d in K..K+3, loss MSE or CE, every lambda log-uniform in [1e-4, 1e-1]; no bias. Each instance gets the
start portfolio's first ``--starts`` starts (``numerics.starts``), solved

* one at a time: ``numerics.solvers.lbfgs`` (torch.optim.LBFGS, strong Wolfe, + Newton-CG polish) per start;
* batched: all instances x starts in one ``numerics.starts.solve_instances`` call.

Both run in this process on one thread (``torch.set_num_threads(1)``), in float64, from the same initial points,
to the same gradient tolerance, after a warm-up call of each (one-time process costs are not per-instance costs). Reports the wall times, their ratio, per-instance milliseconds, the largest
relative difference between the two paths' best objectives, agreement of stop reasons, and an arithmetic floor:
the floating-point operations the batched path performed (matrix products and L-BFGS vector work, counted from
the shapes and iteration counts) at this machine's measured large-matmul rate, and a memory floor: the bytes an
L-BFGS iteration must stream at the real (unpadded) sizes at the measured copy bandwidth. Also: per start, whether
both paths reached the same end point, and every instance whose best objectives differ. The two paths are
different L-BFGS variants (torch's, with a strong-Wolfe line search and m = 50 in x; the batched one, compact,
Armijo, m = 15 in block-scaled variables), so on deep objectives, which have several local minima, one start can
end in different basins; ``max_rel_objective_diff_depth1`` is the same difference over the depth-1 instances
(unconstrained-features models, every local minimum global), where the two must agree. ``same_solver`` then
separates batching from the algorithm: the batched solver called on one problem at a time (same initial points,
``numerics.batched.solve_problems([problem])``), its time and its largest relative difference to the batched
best objectives (what padding, grouping and merging change). Usage:

    python benchmarks/bench_batched.py [--instances 256] [--starts 3] [--seed 0] [--device auto] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from ncverify.numerics import batched, starts as st
from ncverify.numerics.problem import Instance


def instances(count: int, seed: int) -> list[Instance]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        K = int(rng.integers(2, 9))
        counts = [int(rng.integers(1, 11))] * K if i % 2 == 0 else [int(c) for c in rng.integers(1, 11, size=K)]
        M = int(rng.integers(1, 5))
        d = K + int(rng.integers(0, 4))
        lam = lambda: float(10 ** rng.uniform(-4, -1))  # noqa: E731
        out.append(Instance.create(counts, width=d, depth=M, lam_w=tuple(lam() for _ in range(M)), lam_h=lam(),
                                   loss="mse" if rng.random() < 0.5 else "ce"))
    return out


def flops_per_eval(inst: Instance) -> float:
    """Multiply-adds x 2 of one objective + gradient evaluation (forward products, backward = 2x forward)."""
    K, d, N, M = inst.K, inst.width, inst.N, inst.depth
    fwd = 2 * ((M - 1) * K * d * d + K * d * N) + 10 * K * N
    return 3.0 * fwd


def matmul_rate(device: torch.device) -> float:
    """Flop/s of a large float64 matrix product on this device (one thread on the CPU)."""
    A = torch.randn(512, 512, dtype=torch.float64, device=device)
    A @ A
    t0 = time.perf_counter()
    reps = 8
    for _ in range(reps):
        A @ A
    if device.type == "cuda":
        torch.cuda.synchronize()
    return reps * 2 * 512 ** 3 / (time.perf_counter() - t0)


def bandwidth(device: torch.device) -> float:
    """Bytes/s of a large float64 copy (read + write) on this device."""
    a = torch.randn(8_000_000, dtype=torch.float64, device=device)
    b = torch.empty_like(a)
    b.copy_(a)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        b.copy_(a)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return reps * 2 * a.numel() * 8 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=256)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-loop", action="store_true", help="time the batched path only")
    ap.add_argument("--skip-same-solver", action="store_true",
                    help="skip the batched solver's one-problem-per-call comparison")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    insts = instances(args.instances, args.seed)
    dev = batched.resolve_device(args.device)

    # one-time process costs (torch.func's first call loads its machinery, about 1 s) are not per-instance costs
    st.solve_instances(instances(2, args.seed + 1), starts=1, seed=0, device=args.device)
    st.multistart(insts[0], solver="lbfgs", starts=1, seed=0, device="cpu", engine="loop", max_iter=5)
    t0 = time.perf_counter()
    res_b = st.solve_instances(insts, starts=args.starts, seed=args.seed, device=args.device)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_batched = time.perf_counter() - t0

    loop_seconds = None
    diffs, diffs1, reasons_equal, disagree, same_start = [], [], 0, [], 0
    loop_evals = loop_iters = 0
    if not args.skip_loop:
        t0 = time.perf_counter()
        res_l = [st.multistart(i, solver="lbfgs", starts=args.starts, seed=args.seed, device="cpu", engine="loop")
                 for i in insts]
        loop_seconds = time.perf_counter() - t0
        for inst, a, b in zip(insts, res_l, res_b):
            fa, fb = a.best.objective, b.best.objective
            diffs.append(abs(fa - fb) / max(abs(fa), abs(fb), 1e-300))
            if inst.depth == 1:
                diffs1.append(diffs[-1])
            loop_evals += sum(r.grad_evals for r in a.runs)
            loop_iters += sum(r.iterations for r in a.runs)
            reasons_equal += sum(ra.stop_reason == rb.stop_reason for ra, rb in zip(a.runs, b.runs))
            same_start += sum(abs(ra.objective - rb.objective) <= 1e-10 * max(abs(ra.objective), 1e-300)
                              for ra, rb in zip(a.runs, b.runs))
            if diffs[-1] > 1e-10:
                disagree.append({"instance": inst.cli_flags(), "loop": fa, "batched": fb,
                                 "lower": "batched" if fb < fa else "loop"})
    same = None
    if not args.skip_same_solver:
        probs = st.portfolio_problems(insts, starts=args.starts, seed=args.seed, device=args.device)
        t0 = time.perf_counter()
        one = [batched.solve_problems([pb], device=args.device)[0] for pb in probs]
        t_one = time.perf_counter() - t0
        S = args.starts
        d_best, d_start = [], []
        for k, m in enumerate(res_b):
            mine = one[k * S:(k + 1) * S]
            fo = min(r.objective for r in mine if r.stop_reason != "diverged")
            d_best.append(abs(fo - m.best.objective) / max(abs(fo), 1e-300))
            d_start += [abs(a.objective - b.objective) / max(abs(a.objective), 1e-300) for a, b in zip(mine, m.runs)]
        same = {"seconds": round(t_one, 3), "ratio": round(t_one / t_batched, 1),
                "max_rel_objective_diff": max(d_best), "instances_differing": sum(d > 1e-10 for d in d_best),
                "same_end_point_per_start": f"{sum(d <= 1e-10 for d in d_start)}/{len(d_start)}",
                "stop_reasons_equal": f"{sum(a.stop_reason == b.stop_reason for a, b in zip(one, (r for m in res_b for r in m.runs)))}/{len(one)}"}
    runs = [r for m in res_b for r in m.runs]
    evals = sum(r.grad_evals for r in runs)
    iters = sum(r.iterations for r in runs)
    n_par = {id(i): sum(int(np.prod(s)) for s in batched.models.shapes(i)) for i in insts}
    work = 0.0
    for inst, m in zip(insts, res_b):
        n = n_par[id(inst)]
        for r in m.runs:
            work += r.grad_evals * flops_per_eval(inst) + r.iterations * (8 * batched.HISTORY + 20) * n
    rate = matmul_rate(dev)
    bw = bandwidth(dev)
    # memory floor: per iteration an L-BFGS step streams its memory twice (2 x 2m vectors) and about 25 passes of
    # one vector (iterate, gradient, direction, trial point, products); at the real (unpadded) sizes
    traffic = sum(r.iterations * (4 * batched.HISTORY + 25) * 8 * n_par[id(inst)]
                  for inst, m in zip(insts, res_b) for r in m.runs)
    out = {
        "instances": len(insts), "starts": args.starts, "problems": len(runs), "device": str(dev),
        "loop_seconds": None if loop_seconds is None else round(loop_seconds, 3),
        "batched_seconds": round(t_batched, 3),
        "ratio": None if loop_seconds is None else round(loop_seconds / t_batched, 1),
        "loop_ms_per_instance": None if loop_seconds is None else round(1000 * loop_seconds / len(insts), 2),
        "batched_ms_per_instance": round(1000 * t_batched / len(insts), 3),
        "max_rel_objective_diff": max(diffs) if diffs else None,
        "max_rel_objective_diff_depth1": max(diffs1) if diffs1 else None,
        "depth1_instances": sum(i.depth == 1 for i in insts),
        "objective_disagreements": None if loop_seconds is None else {
            "count": len(disagree), "batched_lower": sum(d["lower"] == "batched" for d in disagree),
            "loop_lower": sum(d["lower"] == "loop" for d in disagree), "instances": disagree},
        "stop_reasons_equal": None if loop_seconds is None else f"{reasons_equal}/{len(runs)}",
        "same_end_point_per_start": None if loop_seconds is None else f"{same_start}/{len(runs)}",
        "same_solver": same,
        "batched_stop_reasons": {k: sum(r.stop_reason == k for r in runs) for k in ("converged", "budget", "diverged")},
        "batched_grad_evals": evals, "batched_iterations": iters,
        "loop_grad_evals": loop_evals if loop_seconds is not None else None,
        "loop_iterations": loop_iters if loop_seconds is not None else None,
        "arithmetic_gflop": round(work / 1e9, 3), "matmul_gflops": round(rate / 1e9, 2),
        "arithmetic_floor_seconds": round(work / rate, 4),
        "batched_over_floor": round(t_batched / (work / rate), 1),
        "memory_traffic_gb": round(traffic / 1e9, 2), "bandwidth_gb_s": round(bw / 1e9, 1),
        "memory_floor_seconds": round(traffic / bw, 3),
        "batched_over_memory_floor": round(t_batched / (traffic / bw), 1),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
