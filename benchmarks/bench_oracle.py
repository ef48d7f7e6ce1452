"""The convex oracle's accuracy and time on random instances, against the exact derivations.

    python benchmarks/bench_oracle.py [--n 20] [--seed 0] [--json]

For each program, ``--n`` random instances (seeded): the certified duality gap, the interval's radius (gap and
float64 rounding), whether the exact derivation's f* lies in the certified interval and how far it is from the
interval's midpoint, and the wall time of a solve (CVXPY with Clarabel, then the first-order polish and the
certificate). Programs and their exact references:

* ce-nuclear: the CE UFM, balanced (zhu2021's closed form: ETF with wrong-class probability sqrt(n) mu) and two-group
  imbalanced at total collapse (family ce-ufm-imbalanced's value at W = H = 0);
* mse-nuclear: the MSE UFM (family mse-deep at M = 1, any counts) and with real-valued targets (mse-regression);
* max-margin: the UF-SVM (family max-margin: ||P D^(1/2)||_*);
* layer-peeled: the balanced layer-peeled model (family layer-peeled: log(1 + (K-1) e^(-c))).
Away from total collapse the imbalanced CE value has no exact form: there the oracle is the reference itself.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from ncverify.numerics import convex
    from ncverify.numerics.problem import Instance
    from ncverify.theory.derive import derive

    rng = np.random.default_rng(args.seed)
    rows: dict[str, list[dict]] = {}

    def record(name: str, exact: float, solve) -> None:
        t0 = time.perf_counter()
        c = solve()
        secs = time.perf_counter() - t0
        rows.setdefault(name, []).append({"gap": c.gap, "radius": c.radius, "inside": c.lower <= exact <= c.upper,
                                          "error": abs(exact - c.value), "seconds": secs})

    for _ in range(args.n):
        K, n = int(rng.integers(2, 9)), int(rng.integers(1, 30))
        mu = float(10 ** rng.uniform(-3, math.log10(0.9 / (K * math.sqrt(n)))))
        s = math.sqrt(n) * mu
        a = math.log((1 - (K - 1) * s) / s)
        f = math.log(1 + (K - 1) * math.exp(-a)) + (K - 1) * mu * a * math.sqrt(n)
        record("ce-nuclear balanced (zhu2021 closed form)", f, lambda: convex.ce_nuclear([n] * K, mu))

        counts = [int(c) for c in rng.integers(1, 40, size=int(rng.integers(2, 9)))]
        lam = float(f"{10 ** rng.uniform(-3, 0):.3g}")
        inst = Instance.create(counts, width=len(counts), lam_w=lam, lam_h=lam)
        record("mse-nuclear (mse-deep, M = 1)", float(derive("mse-deep", inst).objective.value),
               lambda: convex.mse_nuclear(counts, lam))
        reg = inst.with_(targets=f"gauss:{int(rng.integers(0, 10 ** 6))}")
        record("mse-nuclear, regression targets (mse-regression)", float(derive("mse-regression", reg).objective.value),
               lambda: convex.mse_nuclear(counts, lam, targets=reg.target_prototypes()))
        ce = Instance.create(counts, width=len(counts), loss="ce")
        record("max-margin (||P D^(1/2)||_*)", float(derive("max-margin", ce).objective.value),
               lambda: convex.max_margin(counts))
        e_w, e_h = (float(f"{10 ** rng.uniform(-1, 1):.3g}") for _ in range(2))
        lp = Instance.create([n] * K, width=K, loss="ce", lam_w=e_w, lam_h=e_h)
        record("layer-peeled balanced (closed form)", float(derive("layer-peeled", lp).objective.value),
               lambda: convex.layer_peeled([n] * K, K * math.sqrt(e_w * e_h)))
        k_a, k_b, n_b = int(rng.integers(1, 4)), int(rng.integers(2, 4)), int(rng.integers(1, 6))
        two = [n_b + int(rng.integers(1, 20))] * k_a + [n_b] * k_b
        big = float(f"{10 ** rng.uniform(-0.5, 0.5):.3g}")  # mu near or above total collapse
        tc = Instance.create(two, width=len(two), loss="ce", lam_w=big, lam_h=big, bias=True, lam_b=0.1)
        d = derive("ce-ufm-imbalanced", tc)
        if d.objective is not None:
            record("ce-nuclear at total collapse (ce-ufm-imbalanced)", float(d.objective.value),
                   lambda: convex.ce_nuclear(two, big, bias=True, lam_b=0.1))

    summary = {}
    for name, rs in rows.items():
        summary[name] = {"instances": len(rs), "inside": sum(r["inside"] for r in rs),
                         "max_gap": max(r["gap"] for r in rs), "max_radius": max(r["radius"] for r in rs),
                         "max_error_vs_exact": max(r["error"] for r in rs),
                         "median_seconds": float(np.median([r["seconds"] for r in rs])),
                         "max_seconds": max(r["seconds"] for r in rs)}
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{'program (exact reference)':52s} {'in':>7s} {'max gap':>9s} {'max radius':>10s} {'max |err|':>9s} "
          f"{'median s':>8s} {'max s':>6s}")
    for name, s in summary.items():
        print(f"{name:52s} {s['inside']:>3d}/{s['instances']:<3d} {s['max_gap']:9.2g} {s['max_radius']:10.2g} "
              f"{s['max_error_vs_exact']:9.2g} {s['median_seconds']:8.3f} {s['max_seconds']:6.2f}")


if __name__ == "__main__":
    main()
