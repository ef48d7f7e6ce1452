"""Finding script (not a test): a point of the extended ReLU UFM below the linear model's derived minimum.

``tirer2022.extended-relu`` claims that the ReLU model's global minimum value equals the linear model's. At
K = 7, n = 2, d = 8, lambda_W1 = 0.00308, lambda_W2 = 0.105, lambda_H = 0.2676 (near the linear model's collapse
threshold, d > K) this script starts the batched L-BFGS from 16 "nonnegative" starts (``balanced_start`` with W_1
and H made entrywise nonnegative, torch generator seeds 0..15), prints every end value, and evaluates the best end
point again in plain numpy:  f = 1/(2N) ||W_2 relu(W_1 H) - Y||^2 + lambda_W1/2 ||W_1||^2 + lambda_W2/2 ||W_2||^2
+ lambda_H/2 ||H||^2.  A value below the derived linear minimum refutes the claimed minimum value (whatever the
solver's stop reason: any point's objective bounds the minimum from above).

    python benchmarks/relu_below_linear.py
"""
from __future__ import annotations

import numpy as np
import torch

from ncverify.numerics import batched, models, starts
from ncverify.numerics.problem import Instance
from ncverify.theory.derive import derive


def main() -> None:
    inst = Instance.create([2] * 7, width=8, depth=2, lam_w=[0.00308, 0.105], lam_h=0.2676, activation="relu")
    f_lin = float(derive("extended-linear", inst.with_(activation="identity")).objective.value)
    problems = []
    for s in range(16):
        p0 = starts.balanced_start(inst, torch.Generator().manual_seed(s), "cpu")
        p0 = models.Params([p0.weights[0].abs(), p0.weights[1]], p0.H.abs(), None)
        problems.append(batched.Problem(inst, p0, seed=s, start=s, kind="nonnegative"))
    runs = batched.solve_problems(problems, solver="lbfgs", device="cpu")
    for s, r in enumerate(runs):
        print(f"seed {s:2d}: {r.objective:.10f} ({r.stop_reason}, |grad| {r.grad_norm:.2g})")
    best = min(runs, key=lambda r: r.objective)
    q = best.params.to_numpy()
    W1, W2, H = q["weights"][0], q["weights"][1], q["H"]
    Y = models.labels(inst.counts).numpy()
    N = inst.N
    f = (np.sum((W2 @ np.maximum(W1 @ H, 0.0) - Y) ** 2) / (2 * N) + inst.lam_w[0] / 2 * np.sum(W1 ** 2)
         + inst.lam_w[1] / 2 * np.sum(W2 ** 2) + inst.lam_h / 2 * np.sum(H ** 2))
    print(f"linear model's derived minimum: {f_lin:.10f}")
    print(f"best ReLU point (seed {best.seed}), numpy: {f:.10f}  ({'BELOW' if f < f_lin else 'not below'}: "
          f"{f - f_lin:+.3g})")


if __name__ == "__main__":
    main()
