"""Benchmark (not a test): time and gradient evaluations gd and lbfgs need to reach a relative objective
error of 1e-10 against the independent M = 1 MSE ground truth (``numerics.ground_truth``).

Fixed instance: K = 6 imbalanced classes n = (20, 15, 10, 6, 3, 2), N = 56, d = 8, MSE, no bias,
lambda_W = lambda_H = 1.6/56, so tau = N sqrt(lambda_W lambda_H) = 1.6: the class with n = 2
(sqrt 2 = 1.41 < 1.6) collapses to zero, n = 3 (1.73) survives.

Both solvers start from the same seeded point and stop as soon as the target is met (a callback
checks every iterate). gd uses the papers' protocol (lr 0.1, momentum 0.9). Usage:

    python benchmarks/bench_solvers.py [--seed 0] [--target 1e-10] [--json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ncverify.numerics import ground_truth, models, solvers
from ncverify.numerics.problem import Instance

COUNTS = (20, 15, 10, 6, 3, 2)
WIDTH = 8
LAM = 1.6 / sum(COUNTS)


def instance() -> Instance:
    return Instance.create(COUNTS, width=WIDTH, lam_w=LAM, lam_h=LAM)


def time_to_target(inst: Instance, solver: str, seed: int, target: float, fstar: float, max_iter: int) -> dict:
    """Run ``solver`` from seed ``seed`` until (f - f*)/f* <= target; wall time and gradient evaluations."""
    p0 = models.init_params(inst, torch.Generator().manual_seed(seed))
    hit: dict = {}
    t0 = time.perf_counter()

    def cb(it: int, f: float, g: float, evals: int) -> bool:
        if abs(f - fstar) / abs(fstar) <= target:
            hit.update(seconds=time.perf_counter() - t0, grad_evals=evals, iterations=it, rel_error=abs(f - fstar) / fstar)
            return True
        return False

    if solver == "gd":
        run = solvers.gd(inst, p0, lr=0.1, momentum=0.9, max_iter=max_iter, grad_tol=0.0, callback=cb)
    else:
        run = solvers.lbfgs(inst, p0, max_iter=max_iter, grad_tol=0.0, callback=cb)
    return {"solver": solver, "reached": bool(hit), **(hit or {"seconds": run.seconds, "grad_evals": run.grad_evals,
                                                              "iterations": run.iterations,
                                                              "rel_error": abs(run.objective - fstar) / fstar})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=1e-10, help="relative objective error (default 1e-10)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    inst = instance()
    gt = ground_truth.mse_m1_global_min(inst)
    fstar = gt["objective"]
    time_to_target(inst, "lbfgs", args.seed + 1, 1e-3, fstar, 100)  # warm-up (torch first-call overhead)
    time_to_target(inst, "gd", args.seed + 1, 1e-3, fstar, 100)
    rows = [time_to_target(inst, "gd", args.seed, args.target, fstar, 200_000),
            time_to_target(inst, "lbfgs", args.seed, args.target, fstar, 5_000)]
    gd, lb = rows
    ratio = {"seconds": gd["seconds"] / lb["seconds"], "grad_evals": gd["grad_evals"] / lb["grad_evals"]}
    out = {"instance": inst.as_dict(), "f_star": fstar, "collapsed": gt["collapsed"], "target_rel_error": args.target,
           "seed": args.seed, "torch_threads": torch.get_num_threads(), "runs": rows, "ratio_gd_over_lbfgs": ratio}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"instance: counts={list(COUNTS)} d={WIDTH} lambda_W=lambda_H={LAM:.6g} (tau = 1.6; collapsed: "
          f"{gt['collapsed']})  f* = {fstar:.15g}")
    print(f"target: relative objective error <= {args.target:g}, same start (seed {args.seed}), 1 torch thread")
    print(f"{'solver':8s} {'reached':>8s} {'iterations':>11s} {'grad evals':>11s} {'seconds':>9s} {'rel error':>10s}")
    for r in rows:
        print(f"{r['solver']:8s} {str(r['reached']):>8s} {r['iterations']:11d} {r['grad_evals']:11d} "
              f"{r['seconds']:9.3f} {r['rel_error']:10.2e}")
    print(f"ratio gd / lbfgs: time {ratio['seconds']:.1f}x, gradient evaluations {ratio['grad_evals']:.1f}x")


if __name__ == "__main__":
    main()
