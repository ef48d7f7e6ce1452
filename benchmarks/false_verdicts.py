"""Reliability script (not a timed test): ``check`` on random valid instances of every catalogue claim recorded as
verified, to count false refutations and inconclusive checks.

Instances (seeded, per theorem): K in 2..10 (within the theorem's own stated range), n_k in 1..30 per class (one n
for all classes when the theorem assumes balance, else drawn per class), depth 1 when the theorem states M = 1,
its implied depth when it has one, else 1..4; width d in K..K+3; every lambda (each lambda_{W_j}, lambda_H and a
regularized bias's lambda_b) log-uniform in [1e-4, 1e-1]; the loss, bias and activation the theorem implies.
An instance the theorem's validator refuses is redrawn (counted). Each theorem's instances are checked in
batched calls (``verify.check_many``, max(3, the theorem's min_starts) starts). A claim recorded as verified is
expected to verify: every "refuted" here is a false refutation or a finding, every "inconclusive" says why.
Usage:

    python benchmarks/false_verdicts.py [--per-theorem 125] [--seed 0] [--chunk 25] [--only ID,...] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import ncverify as nv
from ncverify.numerics import models
from ncverify.proofs_checks import verify


def draw(theorem, rng: np.random.Generator) -> "nv.Instance":
    """One random instance in the script's ranges with the theorem's implied flags (may be invalid for it)."""
    a = " ".join(theorem.assumptions)
    d = theorem.defaults
    lo_k, hi_k = (3, 8) if "3 <= K <= 8" in a else (2, 10)
    K = int(rng.integers(lo_k, hi_k + 1))
    counts = ([int(rng.integers(1, 31))] * K if "balanced" in theorem.assumptions
              else [int(c) for c in rng.integers(1, 31, size=K)])
    if "M = 1" in a or "M in [1]" in a:
        M = 1
    elif "depth" in d:
        M = int(d["depth"])
    else:
        M = int(rng.integers(1, 5))
    lam = lambda: float(10 ** rng.uniform(-4, -1))  # noqa: E731
    bias = bool(d.get("bias", False))
    lam_b = lam() if bias and "lambda_b > 0" in a else 0.0
    return nv.instance(counts, width=K + int(rng.integers(0, 4)), depth=M, lam_w=[lam() for _ in range(M)],
                       lam_h=lam(), lam_b=lam_b, bias=bias, loss=d.get("loss", "mse"),
                       activation=d.get("activation"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-theorem", type=int, default=125)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=25, help="instances per batched check_many call")
    ap.add_argument("--only", default="", help="comma-separated theorem ids (default: every recorded-verified one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    theorems = [t for t in nv.theorems() if t.expected.verdict == "verified" and t.mutant_of is None
                and (not only or t.id in only)]
    rng = np.random.default_rng(args.seed)
    rows, problems = [], []
    for th in theorems:
        insts, rejected = [], 0
        while len(insts) < args.per_theorem:
            inst = draw(th, rng)
            try:
                th.validate(inst)
            except nv.INPUT_ERRORS:
                rejected += 1
                if rejected > 100 * args.per_theorem:
                    raise SystemExit(f"{th.id}: the script's ranges hold almost no valid instance")
                continue
            insts.append(inst)
        starts = max(3, th.min_starts)
        results, t0 = [], time.perf_counter()
        for k in range(0, len(insts), args.chunk):
            t1 = time.perf_counter()
            chunk = verify.check_many(th, insts[k:k + args.chunk], starts=starts, seed=args.seed)
            results += chunk
            print(f"{th.id}: {len(results)}/{len(insts)} ({time.perf_counter() - t1:.1f} s)", file=sys.stderr,
                  flush=True)
        secs = [r.seconds for r in results]
        count = {v: sum(r.verdict == v for r in results) for v in ("verified", "refuted", "inconclusive")}
        rows.append({"theorem": th.id, "instances": len(results), **count, "rejected_draws": rejected,
                     "median_seconds": round(statistics.median(secs), 3), "wall_seconds": round(time.perf_counter() - t0, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        for r in results:
            if r.verdict != "verified":
                problems.append({"theorem": th.id, "verdict": r.verdict, "parameters": models.num_params(r.instance),
                                 "reproduce": r.reproduce,
                    "reason": " ".join(r.reason.split())[:300]})
    out = {"seed": args.seed, "per_theorem": args.per_theorem, "theorems": rows, "not_verified": problems,
           "total": {k: sum(r[k] for r in rows) for k in ("instances", "verified", "refuted", "inconclusive")}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'theorem':28s} {'inst':>5s} {'verified':>8s} {'refuted':>7s} {'inconcl':>7s} {'median s':>8s}")
    for r in rows:
        print(f"{r['theorem']:28s} {r['instances']:5d} {r['verified']:8d} {r['refuted']:7d} {r['inconclusive']:7d} "
              f"{r['median_seconds']:8.3f}")
    t = out["total"]
    print(f"{'total':28s} {t['instances']:5d} {t['verified']:8d} {t['refuted']:7d} {t['inconclusive']:7d}")
    for p in problems:
        print(f"\n{p['verdict']} ({p['parameters']} parameters): {p['reproduce']}\n  {p['reason']}")


if __name__ == "__main__":
    main()
