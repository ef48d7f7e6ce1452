"""Benchmark (not a test): the ``ce-deep`` derivation (global selection over logit codes) against independent
full-matrix numerics on random balanced deep linear CE instances.

Instances (seeded): K in 3..8, n in 1..10 per class, depth M in 1..6, width d in K..K+2, every lambda_Wj and
lambda_H log-uniform in [1e-4, 1e-1], no bias. For each, ``verify.check(dang2023.ce-deep, inst)`` (the ETF claim)
runs the derivation and the batched multi-start full-matrix numerics and reports, with derived tolerances:

* derived vs numeric: "numeric minimum vs derived minimum (the reduction is right)" (pass = the numerics reach the
  derived global minimum and never go below it);
* where the ETF claim is refuted: by the derivation (the derived f* is below the ETF's) and by the numerics (a
  numeric point below the claimed ETF minimum). The two must agree instance by instance.

``--near-boundaries R`` adds, for every recorded crossing of theory/golden/ce_phase.json (K = 3..8, M = 1..6),
two instances at ell* (1 - R) and ell* (1 + R) (random n, equal lambdas lambda = ell / n^(1/(M+1))): the ETF
claim must be refuted exactly on the side the table says, and the derived minimum must match on both.

An instance whose numerics stop above the derived minimum ("unsettled": the portfolio's starts missed the global
basin) is checked again with ``--escalate`` starts (default 32); both counts are reported. Prints one line per
instance and a summary; ``--json`` for the rows. Usage:

    python benchmarks/bench_ce_deep.py [--instances 60] [--near-boundaries 0.05] [--starts 8] [--escalate 32]
                                       [--seed 0] [--json]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time

import numpy as np

from ncverify.numerics.ce_lift import ell_of
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.catalogue import by_id
from ncverify.proofs_checks.verify.evidence import Check, Status


def instances(count: int, seed: int) -> list[Instance]:
    """The seeded random instances described in the module docstring."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        K, n, M = int(rng.integers(3, 9)), int(rng.integers(1, 11)), int(rng.integers(1, 7))
        lam = [float(f"{10 ** rng.uniform(-4, -1):.4g}") for _ in range(M + 1)]
        out.append(Instance.create(classes=K, per_class=n, width=K + int(rng.integers(0, 3)), depth=M,
                                   lam_w=lam[:M], lam_h=lam[M], loss="ce"))
    return out


def boundary_instances(r: float, seed: int) -> list[Instance]:
    """Two instances per recorded crossing, at ell* (1 -+ r) (see the module docstring)."""
    from ncverify.theory import ce_codes

    rng = np.random.default_rng(seed + 1)
    out = []
    for (K, M), e in sorted(ce_codes.load_phase_table().items()):
        for c in e["crossings"]:
            for f in (1 - r, 1 + r):
                n = int(rng.integers(1, 11))
                lam = float(f"{float(c['ell']) * f / n ** (1.0 / (M + 1)):.8g}")
                out.append(Instance.create(classes=K, per_class=n, width=K, depth=M, lam_w=lam, lam_h=lam, loss="ce"))
    return out


def _status(res, check: Check, quantity: str) -> str | None:
    ev = next((e for e in res.evidence if e.check == check and e.quantity.startswith(quantity)), None)
    return None if ev is None else Status(ev.status).value


def row(inst: Instance, starts: int, seed: int) -> dict:
    res = verify.check(by_id("dang2023.ce-deep"), inst, starts=starts, seed=seed)
    deriv = res.derivation or {}
    return {"flags": inst.cli_flags(), "K": inst.K, "n": inst.n, "M": inst.depth, "ell": ell_of(inst),
            "verdict": res.verdict.value if hasattr(res.verdict, "value") else str(res.verdict),
            "derived_vs_numeric": _status(res, Check.NUMERICS, "numeric minimum vs derived minimum"),
            "derivation_refutes_etf": _status(res, Check.DERIVATION, "minimal objective f*") == "fail",
            "numerics_refute_etf": _status(res, Check.NUMERICS, "numeric objective vs claimed minimum") == "fail",
            "derived_f": (deriv.get("objective") if isinstance(deriv, dict) else None),
            "numeric_f": (res.numerics or {}).get("best_objective") if isinstance(res.numerics, dict) else None,
            "seconds": round(res.seconds, 2), "reason": res.reason}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=60)
    ap.add_argument("--near-boundaries", type=float, default=0.0, metavar="R",
                    help="also two instances at ell* (1 -+ R) per recorded crossing")
    ap.add_argument("--starts", type=int, default=8)
    ap.add_argument("--escalate", type=int, default=32, help="starts for a second check of unsettled instances")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    rows = []
    t0 = time.perf_counter()
    todo = instances(a.instances, a.seed) + (boundary_instances(a.near_boundaries, a.seed) if a.near_boundaries else [])
    for i, inst in enumerate(todo):
        r = row(inst, a.starts, a.seed)
        r["first"] = r["derived_vs_numeric"]
        if r["derived_vs_numeric"] == "unsettled" and a.escalate > a.starts:
            r = {**row(inst, a.escalate, a.seed), "first": r["derived_vs_numeric"], "escalated": True}
        rows.append(r)
        if not a.json:
            print(f"[{i + 1}/{len(todo)}] K={r['K']} n={r['n']} M={r['M']} ell={r['ell']:.3g}: derived vs numeric "
                  f"{r['derived_vs_numeric']}; ETF refuted by derivation {r['derivation_refutes_etf']}, by numerics "
                  f"{r['numerics_refute_etf']} ({r['seconds']} s)", file=sys.stderr, flush=True)
    total = time.perf_counter() - t0
    match = collections.Counter(r["derived_vs_numeric"] for r in rows)
    first = collections.Counter(r["first"] for r in rows)
    agree = sum(r["derivation_refutes_etf"] == r["numerics_refute_etf"] for r in rows)
    refuted = sum(r["derivation_refutes_etf"] for r in rows)
    summary = {"instances": len(rows), "derived_vs_numeric": dict(match), f"with_{a.starts}_starts": dict(first), "etf_refutation_agrees": agree,
               "etf_refuted_by_derivation": refuted, "seconds_total": round(total, 1),
               "disagreements": [r for r in rows if r["derivation_refutes_etf"] != r["numerics_refute_etf"]
                                 or r["derived_vs_numeric"] != "pass"]}
    if a.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
    else:
        print(f"{len(rows)} instances in {total:.0f} s: derived vs numeric {dict(first)} with {a.starts} starts, "
              f"{dict(match)} after escalating to {a.escalate}; ETF claim refuted by the "
              f"derivation on {refuted}, derivation and numerics agree on {agree}/{len(rows)}")
        for r in summary["disagreements"]:
            print(f"  differs: {r['flags']}: {r['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
