"""A 200-point sweep in-process vs on a local Dask cluster (``--workers``), on this machine.

    python benchmarks/bench_sweep.py [--workers 2] [--batch 8] [--json]

The sweep: ``dang2023.mse-deep`` over lambda_H (50 log-spaced values in [10, 200], across the derived boundaries)
x depth M = 1..4, K = 4 classes of 10 samples, d = 4, lambda_W = 1e-2, 4 starts per point: 200 points, in tasks of
``--batch`` points. Measured in one process, one after the other (run nothing else meanwhile: two torch jobs on two
cores slow each other down many times over):

* the in-process sweep (every task in this process, one torch thread, as ``ncverify sweep`` does);
* starting the local cluster (worker processes importing ncverify);
* the same sweep on the cluster, and whether its results equal the in-process ones (all but the timings);
* the per-task overhead of the cluster: 200 tasks that do nothing, round trip per task.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

GRID = ["lam-h=10:200:log:50", "depth=1..4"]
INSTANCE = {"classes": 4, "per_class": 10, "width": 4, "lam_w": 1e-2}
def noop(i: int, progress=None) -> int:
    """A task that does nothing (the cluster's own cost per task)."""
    return i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from ncverify.proofs_checks import distributed
    from ncverify.proofs_checks.catalogue import by_id
    from ncverify.proofs_checks.sweep import instances, make_spec, run_sweep

    th = by_id("dang2023.mse-deep")
    flags = {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in INSTANCE.items()}
    spec = make_spec(th, flags, GRID, batch=args.batch)
    insts = instances(spec, th)
    out: dict = {"points": spec.size, "tasks": len(spec.batches()), "batch": args.batch, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        local = run_sweep(spec, th, insts, Path(tmp) / "in-process")
        out["in_process_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with distributed.executor(workers=args.workers) as ex:
            out["cluster_start_s"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            remote = run_sweep(spec, th, insts, Path(tmp) / "dask", executor=ex)
            out["dask_s"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            n = 200
            list(ex.map([(noop, (i,)) for i in range(n)]))
            out["noop_tasks"] = n
            out["overhead_ms_per_task"] = 1e3 * (time.perf_counter() - t2) / n
        out["dask_with_start_s"] = out["dask_s"] + out["cluster_start_s"]
    out["identical_results"] = distributed.without_timings(local) == distributed.without_timings(remote)
    out["verdicts"] = local["verdicts"]
    out["ratio"] = out["in_process_s"] / out["dask_s"]
    out["ratio_with_start"] = out["in_process_s"] / out["dask_with_start_s"]
    out["task_s_mean"] = out["in_process_s"] / out["tasks"]
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['points']} points in {out['tasks']} tasks of {args.batch}; verdicts {out['verdicts']}")
    print(f"in-process            {out['in_process_s']:8.1f} s  ({out['task_s_mean']:.2f} s per task)")
    print(f"local cluster start   {out['cluster_start_s']:8.1f} s  ({args.workers} worker processes)")
    print(f"--workers {args.workers}           {out['dask_s']:8.1f} s  (ratio {out['ratio']:.2f}; "
          f"{out['ratio_with_start']:.2f} with the start)")
    print(f"overhead per task     {out['overhead_ms_per_task']:8.2f} ms (200 empty tasks)")
    print(f"identical results     {out['identical_results']}")


if __name__ == "__main__":
    main()
