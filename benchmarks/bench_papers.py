"""Benchmark (not a test): the papers' training protocol against the suite's solver, and the suite's verdict, at
the papers' own scale.

Instances (deep linear bias-free MSE, the objective of ``dang2023.mse-deep``; lambda_W = lambda_H = 5e-4 at
every layer, f = 1/(2N) ||W_M...W_1 H - Y||^2 + sum_j lambda/2 ||W_j||^2 + lambda/2 ||H||^2):

* ``p1-depth{1,3,6,9}``: K = 4, 100 per class, width 64, depth 1, 3, 6, 9 (the [P1] synthetic setting);
* ``p1-imbalanced``: counts (200, 100, 50, 50), width 64, depth 3;
* ``cifar``: K = 10, 500 per class, width 512, depth 3 (about 3.1 million parameters).

For each instance, in one run of this script:

(a) the papers' protocol: full-batch gradient descent with momentum 0.9 and learning rate 0.1
    (``torch.optim.SGD`` on the objective above, penalties included, float64), every entry of W_j and H drawn
    i.i.d. N(0, 0.1^2), 30,000 iterations. On ``cifar`` only ``--cifar-protocol-iters`` iterations are run and
    the time is extrapolated linearly to 30,000 (``protocol_extrapolated``: true);
(b) the suite's solver (``numerics.starts.multistart`` with one start: the portfolio's first start, the same
    N(0, 0.1^2) draw; on these instances it minimizes with H eliminated, ``numerics.eliminated``) until it stops,
    and its relative objective error against ``theory.derive`` (``suite_rel_error``; the target is 1e-12);
(c) ``ncverify check dang2023.mse-deep ...`` (the command line, default starts) in a child process: its verdict,
    wall time and peak resident memory (``os.wait4``).

JSON (``--json``): one record per instance with ``name``, ``parameters``, ``protocol_seconds``,
``protocol_iterations`` (run), ``protocol_extrapolated``, ``protocol_rel_error`` (after the iterations run),
``suite_seconds``, ``ratio`` = protocol_seconds / suite_seconds, ``suite_rel_error``, ``suite_iterations``,
``verdict``, ``check_seconds``, ``check_peak_mb``. Usage:

    python benchmarks/bench_papers.py [--json] [--only p1-depth3,cifar] [--no-check] [--seed 0]
                                      [--cifar-protocol-iters 100]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

from ncverify.numerics import models
from ncverify.numerics.problem import Instance
from ncverify.numerics.starts import multistart
from ncverify.theory.derive import derive

LAM = 5e-4
PROTOCOL_ITERS = 30_000
INSTANCES = {
    "p1-depth1": ([100] * 4, 64, 1),
    "p1-depth3": ([100] * 4, 64, 3),
    "p1-depth6": ([100] * 4, 64, 6),
    "p1-depth9": ([100] * 4, 64, 9),
    "p1-imbalanced": ([200, 100, 50, 50], 64, 3),
    "cifar": ([500] * 10, 512, 3),
}


def instance(name: str) -> Instance:
    counts, width, depth = INSTANCES[name]
    return Instance.create(counts, width=width, depth=depth, lam_w=[LAM] * depth, lam_h=LAM)


def protocol(inst: Instance, seed: int, iters: int) -> tuple[float, float]:
    """The papers' protocol for ``iters`` iterations: (seconds, final objective)."""
    params = models.init_params(inst, torch.Generator().manual_seed(seed), std=0.1)
    tensors = [t.clone().requires_grad_(True) for t in params.tensors()]
    p = models.Params(tensors[:inst.depth], tensors[inst.depth])
    Y = models.labels(inst.counts)
    opt = torch.optim.SGD(tensors, lr=0.1, momentum=0.9)
    t0 = time.perf_counter()
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        loss = models.objective(inst, p, Y)
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    with torch.no_grad():
        return secs, float(models.objective(inst, p, Y))


def check_cli(inst: Instance, seed: int) -> dict:
    """``ncverify check dang2023.mse-deep`` on ``inst`` in a child process: verdict, seconds, peak RSS."""
    cmd = [sys.executable, "-m", "ncverify", "check", "dang2023.mse-deep", *inst.cli_flags().split(), "--json",
           "--seed", str(seed)]
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak resident memory (ru_maxrss, kB)
        secs = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / 1024
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    try:
        verdict = json.loads(out)["verdict"]
    except (json.JSONDecodeError, KeyError, TypeError):
        verdict = f"error (exit {proc.returncode}): {err.strip().splitlines()[-1] if err.strip() else ''}"
    return {"verdict": verdict, "check_seconds": round(secs, 2), "check_peak_mb": round(peak, 1)}


def run(name: str, seed: int, cifar_iters: int, with_check: bool) -> dict:
    inst = instance(name)
    fstar = float(derive("mse-deep", inst, exact=False).objective.value)
    iters = cifar_iters if name == "cifar" else PROTOCOL_ITERS
    p_secs, p_f = protocol(inst, seed, iters)
    p_total = p_secs * PROTOCOL_ITERS / iters
    t0 = time.perf_counter()
    res = multistart(inst, solver="lbfgs", starts=1, seed=seed)
    s_secs = time.perf_counter() - t0
    best = res.best
    rec = {"name": name, "counts": list(inst.counts), "width": inst.width, "depth": inst.depth,
           "parameters": models.num_params(inst), "f_star": fstar,
           "protocol_seconds": round(p_total, 3), "protocol_iterations": iters,
           "protocol_extrapolated": iters < PROTOCOL_ITERS, "protocol_rel_error": abs(p_f - fstar) / fstar,
           "suite_seconds": round(s_secs, 4), "ratio": round(p_total / s_secs, 1),
           "suite_rel_error": abs(best.objective - fstar) / fstar, "suite_iterations": best.iterations,
           "suite_stop": best.stop_reason}
    if with_check:
        rec.update(check_cli(inst, seed))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default=",".join(INSTANCES))
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cifar-protocol-iters", type=int, default=100)
    args = ap.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in INSTANCES]
    if unknown:
        ap.error(f"unknown instance(s) {unknown}; choose from {', '.join(INSTANCES)}")
    torch.manual_seed(args.seed)
    recs = []
    for n in names:
        rec = run(n, args.seed, args.cifar_protocol_iters, not args.no_check)
        recs.append(rec)
        if not args.json:
            print(f"{n:14s} P={rec['parameters']:>8d}  protocol {rec['protocol_seconds']:9.2f} s"
                  f"{' (extrapolated)' if rec['protocol_extrapolated'] else '':15s} rel.err {rec['protocol_rel_error']:.2e}"
                  f" | suite {rec['suite_seconds']:7.3f} s rel.err {rec['suite_rel_error']:.2e} | ratio {rec['ratio']:8.1f}"
                  + (f" | check {rec['verdict']} {rec['check_seconds']} s, peak {rec['check_peak_mb']} MB"
                     if 'verdict' in rec else ""), flush=True)
    if args.json:
        print(json.dumps({"lambda": LAM, "protocol_iterations": PROTOCOL_ITERS, "seed": args.seed,
                          "torch_threads": torch.get_num_threads(), "instances": recs}, indent=1))
    elif any(math.isfinite(r["ratio"]) for r in recs):
        print("ratio = protocol seconds / suite seconds (same process, same machine)")


if __name__ == "__main__":
    main()
