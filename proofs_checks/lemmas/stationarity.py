"""Lemmas about stationary points of the UFM objectives: balancedness, the elimination of H for fixed
weights (MSE), and the elimination of an unregularized bias with the centering it implies.

Symbols -> names: W_j = ``weights[j-1]`` (j = 1..M), W = W_M ... W_1 (``product``), H (d x N), b (K),
Y (K x N one-hot labels, class by class), lambda_{W_j} = ``inst.lam_w[j-1]``, lambda_H = ``inst.lam_h``,
dW_j, dH, db = the gradients of the full objective (torch autograd, float64), N = ``inst.N``.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.lemmas.core import (EPS, SAFETY, Ctx, Outcome, Property, Trial, descend_lbfgs, run_property,
                                             skipped, symbolic_outcome)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")


def _labels(counts) -> np.ndarray:
    Y = np.zeros((len(counts), sum(counts)))
    c = 0
    for k, n in enumerate(counts):
        Y[k, c:c + n] = 1.0
        c += n
    return Y


def _product(Ws: list[np.ndarray]) -> np.ndarray:
    W = Ws[0]
    for A in Ws[1:]:
        W = A @ W
    return W


# ---------------------------------------------------------------------------------------------
# instances and solver end points
# ---------------------------------------------------------------------------------------------
def random_instance(rng: np.random.Generator, kind: str) -> Instance:
    """A small seeded instance of one model kind: "mse" (bias-free, imbalanced, M in 2..3), "mse-bias"
    (unregularized bias, M in 1..2, possibly imbalanced), "ce" (balanced, M = 2), "ext-identity",
    "ext-relu" (extended UFM, M = 2). lambdas in [3e-3, 3e-2] so that nonzero minimizers exist."""
    K = int(rng.integers(2, 4))
    if kind in ("ce", "ext-identity", "ext-relu"):
        counts = [int(rng.integers(1, 3))] * K
    else:
        counts = [int(rng.integers(1, 4)) for _ in range(K)]
    d = K + int(rng.integers(0, 2))
    M = {"mse": int(rng.integers(2, 4)), "mse-bias": int(rng.integers(1, 3))}.get(kind, 2)
    lam_w = [_log_uniform(rng, 3e-3, 3e-2) for _ in range(M)]
    lam_h = _log_uniform(rng, 3e-3, 3e-2)
    return Instance.create(counts, width=d, depth=M, lam_w=lam_w, lam_h=lam_h, loss="ce" if kind == "ce" else "mse",
                           bias=kind == "mse-bias", activation={"ext-identity": "identity", "ext-relu": "relu"}.get(kind))


def gradient_blocks(inst: Instance, point: dict) -> dict:
    """Gradients of the full objective at a float64 point {"weights", "H", "b"} (torch autograd):
    {"W": [dW_j], "H": dH, "b": db or None, "data_W": [dW_j - lambda_j W_j], "data_H": dH - lambda_H H}
    as numpy arrays (the data parts give the scale of the gradient's rounding error)."""
    import torch

    from ncverify.numerics import models

    p = models.Params.from_numpy(point)
    ts = [t.detach().clone().requires_grad_(True) for t in p.tensors()]
    M = inst.depth
    pp = models.Params(ts[:M], ts[M], ts[M + 1] if inst.bias else None)
    f = models.objective(inst, pp)
    gs = torch.autograd.grad(f, ts)
    g = [x.detach().numpy().copy() for x in gs]
    Ws = [np.asarray(w) for w in point["weights"]]
    out = {"W": g[:M], "H": g[M], "b": g[M + 1] if inst.bias else None, "objective": float(f.detach())}
    out["data_W"] = [gw - l * w for gw, l, w in zip(out["W"], inst.lam_w, Ws)]
    out["data_H"] = out["H"] - inst.lam_h * np.asarray(point["H"])
    return out


def solver_points(inst: Instance, ctx: Ctx, tag: str = "") -> list[dict]:
    """End points of seeded multi-start L-BFGS (``numerics.starts.multistart``: the start portfolio, batched,
    seeds seed + i, ``ctx.budget.solver_starts`` starts) as numpy dicts
    with the run's summary; ``tag`` names the calling check (kept for symmetry with ``Ctx.rng``)."""
    from ncverify.numerics.starts import multistart

    res = multistart(inst, solver="lbfgs", starts=ctx.budget.solver_starts, seed=ctx.seed)
    pts = []
    for r in res.runs:
        p = r.params.to_numpy()
        p["run"] = {"start": r.start, "seed": r.seed, "stop_reason": r.stop_reason, "grad_norm": r.grad_norm,
                    "objective": r.objective, "init": r.message}
        pts.append(p)
    return pts


def _inst_data(inst: Instance, p: dict) -> dict:
    return {"instance": inst.cli_flags(), "run": p.get("run"), "weights": p["weights"], "H": p["H"], "b": p.get("b")}


def _inst_size(inst: Instance) -> tuple:
    return (inst.K, inst.width, inst.depth, inst.N)


def _inst_describe(s: tuple) -> str:
    return f"K = {s[0]}, d = {s[1]}, M = {s[2]}, N = {s[3]}"


def _instances(ctx: Ctx, kinds: Iterable[str], tag: str) -> list[Instance]:
    rng = ctx.rng(f"{tag}/instances")
    out = [random_instance(rng, k) for k in kinds for _ in range(ctx.budget.solver_instances)]
    return sorted(out, key=_inst_size)


# ---------------------------------------------------------------------------------------------
# balancedness
# ---------------------------------------------------------------------------------------------
def balancedness_trials(inst: Instance, p: dict, wrong: bool = False) -> list[Trial]:
    """At a point with gradients G: the residuals R_j = lambda_{j+1} W_{j+1}^T W_{j+1} - lambda_j W_j W_j^T
    (j = 1..M-1) and R_0 = lambda_1 W_1^T W_1 - lambda_H H H^T obey, for EVERY point,
    R_j = W_{j+1}^T G_{j+1} - G_j W_j^T, hence ||R_j||_F <= ||W_{j+1}||_2 ||G_{j+1}||_F + ||G_j||_F ||W_j||_2.
    Tolerance = that bound with each ||G|| enlarged by its float64 rounding ({SAFETY} sqrt(P) eps x
    (||data part|| + ||penalty part||)) plus the rounding of R ({SAFETY} d eps (sum of the two Gram norms)).
    ``wrong``: the seeded wrong statement (lambda_j W_j^T W_j, lambda_H/2 H H^T) with the same tolerance."""
    G = gradient_blocks(inst, p)
    Ws, H = [np.asarray(w) for w in p["weights"]], np.asarray(p["H"])
    P = sum(w.size for w in Ws) + H.size
    lam = list(inst.lam_w)

    def gtol(g: np.ndarray, data: np.ndarray, pen: np.ndarray) -> float:
        return float(np.linalg.norm(g)) + SAFETY * math.sqrt(P) * EPS * (float(np.linalg.norm(data)) + float(np.linalg.norm(pen)))

    trials = []
    blocks = [(j, Ws[j], Ws[j - 1], lam[j], lam[j - 1]) for j in range(1, inst.depth)]
    for j, Wn, Wj, ln, lj in blocks:
        if inst.activation is not None and j == 1:
            continue  # across the activation: see the ReLU/identity lemma (identity: included below)
        A = ln * Wn.T @ Wn
        B = lj * (Wj.T @ Wj if wrong else Wj @ Wj.T)
        R = A - B
        tol = (np.linalg.norm(Wn, 2) * gtol(G["W"][j], G["data_W"][j], ln * Wn)
               + gtol(G["W"][j - 1], G["data_W"][j - 1], lj * Wj) * np.linalg.norm(Wj, 2)
               + SAFETY * max(Wn.shape + Wj.shape) * EPS * (np.linalg.norm(A) + np.linalg.norm(B)))
        trials.append(Trial(float(np.linalg.norm(R)), 0.0, float(tol),
                            "||W_{j+1}||_2 ||G_{j+1}||_F + ||G_j||_F ||W_j||_2 (exact identity at every point) + rounding",
                            {**_inst_data(inst, p), "pair": f"W_{j + 1}/W_{j}", "residual": R}))
    if inst.activation == "identity" and inst.depth >= 2:
        W2, W1, l2, l1 = Ws[1], Ws[0], lam[1], lam[0]
        A, B = l2 * W2.T @ W2, l1 * (W1.T @ W1 if wrong else W1 @ W1.T)
        tol = (np.linalg.norm(W2, 2) * gtol(G["W"][1], G["data_W"][1], l2 * W2)
               + gtol(G["W"][0], G["data_W"][0], l1 * W1) * np.linalg.norm(W1, 2)
               + SAFETY * max(W2.shape + W1.shape) * EPS * (np.linalg.norm(A) + np.linalg.norm(B)))
        trials.append(Trial(float(np.linalg.norm(A - B)), 0.0, float(tol), "same bound across s = identity",
                            {**_inst_data(inst, p), "pair": "W_2/W_1", "residual": A - B}))
    W1 = Ws[0]
    A = lam[0] * W1.T @ W1
    B = (inst.lam_h / 2 if wrong else inst.lam_h) * H @ H.T
    tol = (np.linalg.norm(W1, 2) * gtol(G["W"][0], G["data_W"][0], lam[0] * W1)
           + gtol(G["H"], G["data_H"], inst.lam_h * H) * np.linalg.norm(H, 2)
           + SAFETY * max(W1.shape + H.shape) * EPS * (np.linalg.norm(A) + np.linalg.norm(B)))
    trials.append(Trial(float(np.linalg.norm(A - B)), 0.0, float(tol),
                        "||W_1||_2 ||dW_1||_F + ||dH||_F ||H||_2 (exact identity at every point) + rounding",
                        {**_inst_data(inst, p), "pair": "W_1/H", "residual": A - B}))
    return trials


def check_balancedness(ctx: Ctx, wrong: bool = False) -> list[Outcome]:
    """Symbolic (``theory.foc.check_balancedness``: the identity for every point, so critical points
    are balanced) for MSE (M = 2, 3), MSE with bias, CE with bias and the extended UFM with s = identity;
    numeric residuals at solver end points of random small instances."""
    from ncverify.theory import foc

    b = ctx.budget
    cases = [("mse", (2, 1), 2, 2, False, None)]
    if b.symbolic >= 1:
        cases += [("mse", (2, 1), 2, 2, True, None), ("ce", (1, 1), 2, 2, True, None), ("mse", (2, 1), 2, 2, False, "identity")]
    if b.symbolic >= 2:
        cases.append(("mse", (1, 1), 2, 3, False, None))
    out: list[Outcome] = []
    for loss, counts, d, M, bias, act in cases:
        def fn(loss=loss, counts=counts, d=d, M=M, bias=bias, act=act):
            reps = foc.check_balancedness(loss, counts, d, M, bias=bias, activation=act, wrong=wrong)
            bad = [r for r in reps if not r["holds"]]
            det = "; ".join(f"{r['identity']}: {'holds' if r['holds'] else 'FAILS'}" for r in reps)
            return (not bad, det, {"size": (len(counts), d, M, sum(counts)),
                                   "dims": f"{loss}{' + bias' if bias else ''}{' s=' + act if act else ''}, "
                                           f"counts {list(counts)}, d = {d}, M = {M} (symbolic entries)",
                                   "difference": bad[0]["difference_str"] if bad else "0",
                                   "identity": bad[0]["identity"] if bad else ""})
        out.append(symbolic_outcome(f"symbolic identity: {loss}{' + bias' if bias else ''}"
                                    f"{', s = ' + act if act else ''}, M = {M}", fn))
    insts = _instances(ctx, ["mse", "mse-bias", "ce", "ext-identity"], "balancedness")
    rel = ("||lambda_{j+1} W_{j+1}^T W_{j+1} - lambda_j W_j W_j^T||_F and ||lambda_1 W_1^T W_1 - lambda_H H H^T||_F "
           "<= the bound the gradient norms allow (0 at an exact critical point)")
    if wrong:
        rel = rel.replace("W_j W_j^T", "W_j^T W_j (WRONG)").replace("lambda_H H", "lambda_H/2 H (WRONG)")
    sizes = [_inst_size(i) for i in insts]
    by_size = {}
    for inst in insts:
        by_size.setdefault(_inst_size(inst), []).append(inst)

    def trials(size) -> Iterable[Trial]:
        for inst in by_size.pop(size, []):
            for p in solver_points(inst, ctx, "balancedness"):
                yield from balancedness_trials(inst, p, wrong)

    out.append(run_property("residuals at solver end points (L-BFGS, random small instances)", "solver",
                            Property(rel, sorted(set(sizes)), _inst_describe), trials))
    return out


def relu_diagonal_trials(inst: Instance, p: dict) -> list[Trial]:
    """ReLU between W_1 and W_2: only the diagonal survives,
    e_i^T (W_2^T dW_2 - dW_1 W_1^T) e_i = lambda_2 ||W_2 e_i||^2 - lambda_1 ||e_i^T W_1||^2 (because
    relu(z) = z relu'(z)); so |lambda_2 ||W_2 e_i||^2 - lambda_1 ||e_i^T W_1||^2| <= ||W_2 e_i|| ||dW_2 e_i||
    + ||e_i^T dW_1|| ||e_i^T W_1|| (+ rounding)."""
    G = gradient_blocks(inst, p)
    W1, W2 = np.asarray(p["weights"][0]), np.asarray(p["weights"][1])
    l1, l2 = inst.lam_w[0], inst.lam_w[1]
    out = []
    for i in range(W1.shape[0]):
        a, c = l2 * float(W2[:, i] @ W2[:, i]), l1 * float(W1[i] @ W1[i])
        tol = (np.linalg.norm(W2[:, i]) * np.linalg.norm(G["W"][1][:, i]) + np.linalg.norm(G["W"][0][i]) * np.linalg.norm(W1[i])
               + SAFETY * max(W1.shape + W2.shape) * EPS * (a + c)
               + SAFETY * math.sqrt(W1.size + W2.size + inst.width * inst.N) * EPS
               * (np.linalg.norm(W2[:, i]) * np.linalg.norm(G["data_W"][1][:, i]) + np.linalg.norm(G["data_W"][0][i]) * np.linalg.norm(W1[i])))
        out.append(Trial(abs(a - c), 0.0, float(tol), "||W_2 e_i|| ||dW_2 e_i|| + ||e_i^T dW_1|| ||e_i^T W_1|| + rounding",
                         {**_inst_data(inst, p), "i": i, "lambda_2 ||W_2 e_i||^2": a, "lambda_1 ||e_i^T W_1||^2": c}))
    return out


def check_relu_balancedness(ctx: Ctx) -> list[Outcome]:
    """Symbolic: the full (W_2, W_1) identity fails across the ReLU (reported as information) and its
    diagonal holds; numeric: the diagonal residuals at solver end points of ReLU instances."""
    from ncverify.theory import foc

    def fn():
        reps = foc.check_balancedness("mse", (2, 1), 2, 2, activation="relu")
        r = reps[0]
        return (bool(r.get("diagonal_holds")), f"full identity across the ReLU: {'holds' if r['holds'] else 'fails (expected)'}; "
                f"diagonal: {'holds' if r.get('diagonal_holds') else 'FAILS'}",
                {"size": (2, 2, 2, 3), "dims": "counts [2, 1], d = 2, M = 2 (symbolic entries)",
                 "difference": r.get("diagonal_difference", "")})

    name = "symbolic: diagonal of the (W_2, W_1) identity across the ReLU"
    out = [symbolic_outcome(name, fn) if ctx.budget.symbolic >= 1 else skipped(name, "about 3 s of SymPy; run at the default budget")]
    insts = _instances(ctx, ["ext-relu"], "relu-balancedness")
    by_size: dict = {}
    for inst in insts:
        by_size.setdefault(_inst_size(inst), []).append(inst)

    def trials(size) -> Iterable[Trial]:
        for inst in by_size.pop(size, []):
            for p in solver_points(inst, ctx, "relu-balancedness"):
                yield from relu_diagonal_trials(inst, p)

    out.append(run_property("diagonal residuals at solver end points (ReLU instances)", "solver",
                            Property("|lambda_2 ||W_2 e_i||^2 - lambda_1 ||e_i^T W_1||^2| <= gradient bound",
                                     sorted(by_size), _inst_describe), trials))
    return out


# ---------------------------------------------------------------------------------------------
# elimination of H (MSE, fixed weights)
# ---------------------------------------------------------------------------------------------
def _fH(W: np.ndarray, H: np.ndarray, b: np.ndarray | None, Y: np.ndarray, lam: float) -> tuple[float, float]:
    """g(H) = 1/(2N) ||W H + b 1^T - Y||_F^2 + lambda_H/2 ||H||_F^2 and its float64 rounding bound
    {SAFETY} eps [ (d+2)/N ||R||_F (||W||_F ||H||_F + sqrt(N) ||b|| + ||Y||_F) + (K N + d N) g ]."""
    N = Y.shape[1]
    bb = np.zeros(Y.shape[0]) if b is None else b
    R = W @ H + bb[:, None] - Y
    val = float(np.sum(R * R) / (2 * N) + lam / 2 * np.sum(H * H))
    err = SAFETY * EPS * ((W.shape[1] + 2) / N * np.linalg.norm(R) * (np.linalg.norm(W) * np.linalg.norm(H)
                          + math.sqrt(N) * np.linalg.norm(bb) + np.linalg.norm(Y)) + (R.size + H.size) * val)
    return val, float(err)


def partial_min_H(W: np.ndarray, b: np.ndarray | None, Y: np.ndarray, lam: float) -> tuple[np.ndarray, float, float]:
    """H* = W^T (W W^T + N lambda_H I_K)^{-1} (Y - b 1^T) and the claimed partial minimum
    (lambda_H/2) tr((Y - b 1^T)^T (W W^T + N lambda_H I)^{-1} (Y - b 1^T)), with the rounding bound of
    the latter: {SAFETY} K eps kappa(A) |value| (a linear solve with A = W W^T + N lambda_H I)."""
    K, N = Y.shape
    T = Y - (0 if b is None else b[:, None])
    A = W @ W.T + N * lam * np.eye(K)
    X = np.linalg.solve(A, T)
    val = float(lam / 2 * np.sum(T * X))
    kappa = float(np.linalg.cond(A))
    return W.T @ X, val, SAFETY * K * EPS * kappa * abs(val)


def _random_W(rng: np.random.Generator, K: int, d: int) -> np.ndarray:
    W = rng.standard_normal((K, d)) * math.exp(rng.uniform(-1, 1.5))
    if rng.random() < 0.3:  # rank deficient
        W[int(rng.integers(0, K))] = 0.0
    return W


def _h_sizes(b) -> list[tuple[int, int, int]]:
    """(K, d, N): K in 1..3, d in 1..3, N in K..K+2 (counts drawn per trial), smallest first."""
    return sorted([(K, d, N) for K in range(1, 4) for d in range(1, 4) for N in range(K, K + 3)],
                  key=lambda s: (s[0] * s[1] * s[2], s))


def _random_counts(rng: np.random.Generator, K: int, N: int) -> list[int]:
    counts = [1] * K
    for _ in range(N - K):
        counts[int(rng.integers(0, K))] += 1
    return counts


def check_feature_elimination(ctx: Ctx) -> list[Outcome]:
    """Symbolic (dH = 0 at H*; the two forms of H* agree; f(W, H*) == the closed form), constructed
    (float64: stationarity and value), random H (never below), and L-BFGS descent on H (never below)."""
    import sympy as sp

    from ncverify.theory import foc

    b = ctx.budget
    out: list[Outcome] = []
    for bias in ((False, True) if b.symbolic >= 1 else (False,)):
        def fn(bias=bias):
            r = foc.check_optimal_features_mse((2, 1), 2, bias=bias)[0]
            return (r["holds"], r["identity"], {"size": (2, 2, 3), "dims": "K = 2, d = 2, counts [2, 1]",
                                                 "difference": r["difference_str"]})
        out.append(symbolic_outcome(f"symbolic: dH = 0 at H* (theory.foc{', with bias' if bias else ''})", fn))

    def partial_min_symbolic():
        bad = []
        cases = [(2, 2, (2, 1)), (2, 1, (1, 2))] + ([(3, 2, (1, 1, 1))] if b.symbolic >= 2 else [])
        for K, d, counts in cases:
            N = sum(counts)
            lam = sp.Symbol("lambda_H", positive=True)
            W = sp.Matrix(K, d, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
            bs = sp.Matrix(K, 1, lambda i, j: sp.Symbol(f"b{i}", real=True))
            Y = sp.Matrix(_labels(counts).astype(int).tolist())
            T = Y - bs * sp.ones(1, N)
            Ai = (W * W.T + N * lam * sp.eye(K)).inv()
            Hs = W.T * Ai * T
            H2 = (W.T * W + N * lam * sp.eye(d)).inv() * W.T * T
            f = sum(e ** 2 for e in (W * Hs + bs * sp.ones(1, N) - Y)) / (2 * N) + lam / 2 * sum(e ** 2 for e in Hs)
            g = lam / 2 * (T.T * Ai * T).trace()
            d1 = sp.cancel(sp.together(f - g))
            d2 = (Hs - H2).applyfunc(lambda e: sp.cancel(sp.together(e)))
            if d1 != 0 or any(e != 0 for e in d2):
                bad.append((K, d, N, sp.sstr(d1)))
        return (not bad, "f(W, H*) - (lambda_H/2) tr(T^T (W W^T + N lambda_H I)^{-1} T) == 0 and W^T (W W^T + N lambda_H I)^{-1} T"
                         " == (W^T W + N lambda_H I)^{-1} W^T T, T = Y - b 1^T, generic symbolic W, b: (K, d) = "
                         + ", ".join(str(c[:2]) for c in cases),
                {"size": bad[0][:3] if bad else (0,), "dims": f"K, d, N = {bad[0][:3]}" if bad else "",
                 "difference": bad[0][3] if bad else "0"})

    out.append(symbolic_outcome("symbolic: partial minimum and push-through identity", partial_min_symbolic))

    rel = "(lambda_H/2) tr(T^T (W W^T + N lambda_H I)^{-1} T) <= 1/(2N)||W H + b 1^T - Y||^2 + lambda_H/2 ||H||^2"
    prop = Property(rel, _h_sizes(b), lambda s: f"K = {s[0]}, d = {s[1]}, N = {s[2]}")

    def setup(rng, size):
        K, d, N = size
        counts = _random_counts(rng, K, N)
        Y = _labels(counts)
        W = _random_W(rng, K, d)
        bvec = rng.standard_normal(K) if rng.random() < 0.5 else None
        lam = math.exp(rng.uniform(math.log(1e-3), math.log(1.0)))
        return counts, Y, W, bvec, lam

    def data(counts, W, bvec, lam, H):
        return {"counts": counts, "W": W, "b": bvec, "lambda_H": lam, "H": H}

    rng_c = ctx.rng("feature-elimination/constructed")

    def constructed(size) -> Iterable[Trial]:
        for _ in range(max(2, b.random_trials // 8)):
            counts, Y, W, bvec, lam = setup(rng_c, size)
            Hs, g, gerr = partial_min_H(W, bvec, Y, lam)
            f, ferr = _fH(W, Hs, bvec, Y, lam)
            yield Trial(g, f, gerr + ferr, "rounding of f(W, H*) plus the solve's kappa(A) eps K |value|",
                        data(counts, W, bvec, lam, Hs), two_sided=True)
            # stationarity: (1/N) W^T (W H* + b 1^T - Y) + lambda_H H* = 0
            N = Y.shape[1]
            R = W @ Hs + (0 if bvec is None else bvec[:, None]) - Y
            dH = W.T @ R / N + lam * Hs
            nb = 0.0 if bvec is None else math.sqrt(N) * float(np.linalg.norm(bvec))
            tol = SAFETY * EPS * (Y.shape[0] + W.shape[1]) * float(np.linalg.cond(W @ W.T + N * lam * np.eye(Y.shape[0]))) * (
                np.linalg.norm(W) * (np.linalg.norm(W) * np.linalg.norm(Hs) + nb + np.linalg.norm(Y)) / N
                + lam * np.linalg.norm(Hs))
            yield Trial(float(np.linalg.norm(dH)), 0.0, float(tol),
                        "(K + d) eps kappa(A) (||W||_F (||W||_F ||H*||_F + sqrt(N)||b|| + ||Y||_F)/N + lambda_H ||H*||_F)",
                        data(counts, W, bvec, lam, Hs))

    out.append(run_property("closed form H*: stationary and value equals the claimed partial minimum", "constructed",
                            Property("f(W, H*) == claimed partial minimum; ||dH(H*)|| <= rounding", prop.sizes, prop.describe),
                            constructed))
    rng_r = ctx.rng("feature-elimination/random")

    def random_t(size) -> Iterable[Trial]:
        K, d, N = size
        for i in range(b.random_trials):
            counts, Y, W, bvec, lam = setup(rng_r, size)
            Hs, g, gerr = partial_min_H(W, bvec, Y, lam)
            H = Hs + rng_r.standard_normal(Hs.shape) * 10 ** rng_r.uniform(-6, 0) if i % 2 else rng_r.standard_normal((d, N))
            f, ferr = _fH(W, H, bvec, Y, lam)
            yield Trial(g, f, gerr + ferr, "rounding of f plus the solve's kappa(A) eps K |value|", data(counts, W, bvec, lam, H))

    out.append(run_property("random H (half of them near H*) never below the partial minimum", "random", prop, random_t))
    rng_a = ctx.rng("feature-elimination/adversarial")
    tg = ctx.torch_gen("feature-elimination/adversarial")
    closest: list[float] = []

    def adv(size) -> Iterable[Trial]:
        import torch

        K, d, N = size
        counts, Y, W, bvec, lam = setup(rng_a, size)
        _, g, gerr = partial_min_H(W, bvec, Y, lam)
        S = max(4, b.adversarial_starts // 4)
        Wt, Yt = torch.as_tensor(W), torch.as_tensor(Y)
        bt = torch.zeros(K, dtype=torch.float64) if bvec is None else torch.as_tensor(bvec)

        def obj(ps):
            H = ps[0]
            R = Wt @ H + bt[:, None] - Yt
            return (R ** 2).sum((1, 2)) / (2 * N) + lam / 2 * (H ** 2).sum((1, 2))

        best = descend_lbfgs([torch.randn((S, d, N), generator=tg, dtype=torch.float64)], obj, b.adversarial_steps)
        ts = []
        for s in range(S):
            H = best[0][s].numpy().copy()
            f, ferr = _fH(W, H, bvec, Y, lam)
            ts.append(Trial(g, f, gerr + ferr, "rounding of f plus the solve's kappa(A) eps K |value|",
                            data(counts, W, bvec, lam, H)))
        closest.append(min((t.rhs - t.lhs) / max(abs(t.lhs), 1e-300) for t in ts))
        ts[-1].note = f"descent on H reached f/claimed - 1 from {min(closest):.2g} to {max(closest):.2g} over the sizes"
        yield from ts

    out.append(run_property("L-BFGS descent on H from random starts never below the partial minimum", "adversarial",
                            prop, adv))
    return out


# ---------------------------------------------------------------------------------------------
# elimination of an unregularized bias, and centering
# ---------------------------------------------------------------------------------------------
def check_bias_elimination(ctx: Ctx) -> list[Outcome]:
    """Symbolic (db = 0 at b*; the partial minimum; C^2 = C and ||H C||^2 = ||H||^2 - ||H 1||^2/N),
    constructed, random and descended biases, and the centering at solver end points:
    ||H 1_N|| and ||b - Y 1_N / N|| within the bounds the gradient norms allow."""
    import sympy as sp

    from ncverify.theory import foc

    b = ctx.budget
    out: list[Outcome] = []

    def stat():
        r = foc.check_bias_stationarity((2, 1), 2, 2)[0]
        return (r["holds"], r["identity"], {"size": (2, 2, 3), "dims": "K = 2, d = 2, M = 2, counts [2, 1]",
                                             "difference": r["difference_str"]})

    out.append(symbolic_outcome("symbolic: db = 0 at b* (theory.foc)", stat))

    def partial():
        K, N = 2, 3
        Z = sp.Matrix(K, N, lambda i, j: sp.Symbol(f"z{i}{j}", real=True))
        H = sp.Matrix(2, N, lambda i, j: sp.Symbol(f"h{i}{j}", real=True))
        Y = sp.Matrix(_labels((2, 1)).astype(int).tolist())
        one = sp.ones(N, 1)
        C = sp.eye(N) - one * one.T / N
        bstar = (Y - Z) * one / N
        fb = sum(e ** 2 for e in (Z + bstar * one.T - Y)) / (2 * N)
        g = sum(e ** 2 for e in ((Z - Y) * C)) / (2 * N)
        d1 = sp.expand(fb - g)
        d2 = (C * C - C).applyfunc(sp.simplify)
        d3 = sp.expand(sum(e ** 2 for e in H * C) - sum(e ** 2 for e in H) + sum(e ** 2 for e in H * one) / N)
        d4 = ((Z * C - Y) * C - (Z - Y) * C).applyfunc(sp.expand)
        ok = d1 == 0 and all(e == 0 for e in d2) and d3 == 0 and all(e == 0 for e in d4)
        return (ok, "f(b*) == 1/(2N)||(Z - Y) C||^2; C^2 = C; ||H C||^2 = ||H||^2 - ||H 1||^2/N; (Z C - Y) C = (Z - Y) C "
                    "(generic symbolic Z: 2 x 3, H: 2 x 3)",
                {"size": (2, 3), "dims": "K = 2, N = 3", "difference": sp.sstr([d1, d3])})

    out.append(symbolic_outcome("symbolic: partial minimum over b and the centering identities", partial))

    sizes = sorted([(K, N) for K in range(1, 4) for N in range(K, K + 3)], key=lambda s: (s[0] * s[1], s))
    rel = "1/(2N)||(Z - Y) C||_F^2 <= 1/(2N)||Z + b 1^T - Y||_F^2 for every b"
    prop = Property(rel, sizes, lambda s: f"K = {s[0]}, N = {s[1]}")

    def fb(Z, bvec, Y):
        N = Y.shape[1]
        R = Z + bvec[:, None] - Y
        v = float(np.sum(R * R) / (2 * N))
        return v, SAFETY * EPS * (3 * np.linalg.norm(R) * (np.linalg.norm(Z) + np.linalg.norm(Y) + math.sqrt(N) * np.linalg.norm(bvec)) / N
                                  + R.size * v)

    def gmin(Z, Y):
        N = Y.shape[1]
        RC = (Z - Y) - (Z - Y).mean(axis=1, keepdims=True)
        v = float(np.sum(RC * RC) / (2 * N))
        return v, SAFETY * EPS * (3 * np.linalg.norm(RC) * (np.linalg.norm(Z) + np.linalg.norm(Y)) / N + RC.size * v)

    def setup(rng, size):
        K, N = size
        counts = _random_counts(rng, K, N)
        return counts, _labels(counts), rng.standard_normal((K, N)) * math.exp(rng.uniform(-1, 1.5))

    rng_c = ctx.rng("bias/constructed")

    def constructed(size) -> Iterable[Trial]:
        for _ in range(max(2, b.random_trials // 8)):
            counts, Y, Z = setup(rng_c, size)
            bstar = (Y - Z).mean(axis=1)
            v, e = fb(Z, bstar, Y)
            g, e2 = gmin(Z, Y)
            yield Trial(g, v, e + e2, "float64 rounding of both sums of squares", {"counts": counts, "Z": Z, "b": bstar},
                        two_sided=True)

    out.append(run_property("b* = (Y - Z) 1/N attains the claimed partial minimum", "constructed",
                            Property("f(b*) == 1/(2N)||(Z - Y) C||^2", sizes, prop.describe), constructed))
    rng_r = ctx.rng("bias/random")

    def random_t(size) -> Iterable[Trial]:
        for i in range(b.random_trials):
            counts, Y, Z = setup(rng_r, size)
            bstar = (Y - Z).mean(axis=1)
            bvec = bstar + rng_r.standard_normal(len(counts)) * 10 ** rng_r.uniform(-6, 0)
            v, e = fb(Z, bvec, Y)
            g, e2 = gmin(Z, Y)
            yield Trial(g, v, e + e2, "float64 rounding of both sums of squares", {"counts": counts, "Z": Z, "b": bvec})

    out.append(run_property("random b never below the partial minimum", "random", prop, random_t))

    # centering at solver end points (bias instances, possibly imbalanced)
    insts = _instances(ctx, ["mse-bias", "mse-bias"], "bias-centering")
    by_size: dict = {}
    for inst in insts:
        by_size.setdefault(_inst_size(inst), []).append(inst)

    def centering(size) -> Iterable[Trial]:
        for inst in by_size.pop(size, []):
            for p in solver_points(inst, ctx, "bias-centering"):
                G = gradient_blocks(inst, p)
                Ws, H, bvec = [np.asarray(w) for w in p["weights"]], np.asarray(p["H"]), np.asarray(p["b"])
                W = _product(Ws)
                N = inst.N
                Y = _labels(inst.counts)
                h1 = H.sum(axis=1)
                rnd = SAFETY * math.sqrt(H.size + sum(w.size for w in Ws)) * EPS
                gH = np.linalg.norm(G["H"]) + rnd * (np.linalg.norm(G["data_H"]) + inst.lam_h * np.linalg.norm(H))
                gb = np.linalg.norm(G["b"]) + rnd * np.linalg.norm(G["b"])
                tol_h = (math.sqrt(N) * gH + np.linalg.norm(W, 2) * gb) / inst.lam_h + SAFETY * N * EPS * np.linalg.norm(H)
                d = {**_inst_data(inst, p), "H 1_N": h1, "Y 1_N / N": Y.sum(axis=1) / N}
                yield Trial(float(np.linalg.norm(h1)), 0.0, float(tol_h),
                            "H 1 = (dH 1 - W^T db)/lambda_H at every point: (sqrt(N) ||dH|| + ||W||_2 ||db||)/lambda_H",
                            {**d, "quantity": "||H 1_N||"})
                tol_b = gb + np.linalg.norm(W, 2) * tol_h / N + SAFETY * N * EPS
                yield Trial(float(np.linalg.norm(bvec - Y.sum(axis=1) / N)), 0.0, float(tol_b),
                            "b - Y 1/N = db - W H 1 / N at every point: ||db|| + ||W||_2 ||H 1|| / N",
                            {**d, "quantity": "||b - Y 1_N / N||"})

    out.append(run_property("centering at solver end points: H 1_N = 0 and b = Y 1_N / N", "solver",
                            Property("||H 1_N|| and ||b - Y 1_N/N|| <= the bounds the gradient norms allow",
                                     sorted(by_size), _inst_describe), centering))
    return out
