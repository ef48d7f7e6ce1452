r"""Independent ground truth for the M = 1 MSE UFM (numpy only: no torch, no SymPy, no theory package).

Problem (THEOREMS.md normalizations; lambda_W = ``inst.lam_w[0]``, lambda_H = ``inst.lam_h``):

    f(W, H[, b]) = 1/(2N) ||W H (+ b 1_N^T) - Y||_F^2 + lambda_W/2 ||W||_F^2 + lambda_H/2 ||H||_F^2,
    W in R^{K x d}, H in R^{d x N}, b in R^K unregularized (lambda_b = 0) when present.

Derivation.

1. Variational form of the nuclear norm. For any Z in R^{K x N} of rank <= d,
       min_{W H = Z} lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 = sqrt(lambda_W lambda_H) ||Z||_*.
   (>=): ||Z||_* = ||W H||_* <= ||W||_F ||H||_F (Hoelder for Schatten norms) and
   AM-GM: lambda_W/2 a^2 + lambda_H/2 c^2 >= sqrt(lambda_W lambda_H) a c.
   (<=): with Z = U diag(z) V^T (r <= d terms) take W = U diag(sqrt(z) (lambda_H/lambda_W)^{1/4}) R^T,
   H = R diag(sqrt(z) (lambda_W/lambda_H)^{1/4}) V^T for any R with orthonormal columns in R^{d x r};
   both sides then equal sqrt(lambda_W lambda_H) sum z_i.
   Hence min f = min_{rank Z <= d} g(Z),  g(Z) = 1/(2N) ||Z - Y||^2 + sqrt(lambda_W lambda_H) ||Z||_*.

2. Solving the Z problem. Multiply by N: 1/2 ||Z - Y||^2 + tau ||Z||_*, tau = N sqrt(lambda_W lambda_H).
   By von Neumann's trace inequality <Z, Y> <= sum_i z_i y_i (singular values in descending order, with
   equality when Z shares Y's singular vectors), so an optimal Z shares the singular vectors of Y and
   the problem separates over singular values: min_{z_i >= 0} sum_i [1/2 (z_i - y_i)^2 + tau z_i], at
   most d of the z_i nonzero. Each term is minimized by z_i = (y_i - tau)_+ with value
   1/2 y_i^2 - 1/2 (y_i - tau)_+^2 (and 1/2 y_i^2 at z_i = 0), so the rank constraint keeps the d
   largest y_i: singular-value soft-thresholding of Y at tau, truncated to d terms.
   Minimum: f* = 1/(2N) [ ||Y||_F^2 - sum_{i <= d} (y_i - tau)_+^2 ].

3. Labels. Y = sum_k e_k sqrt(n_k) (1_{class k}/sqrt(n_k))^T, so y_k = sqrt(n_k) with left singular
   vector e_k: class k survives iff sqrt(n_k) > tau, i.e. n_k > N^2 lambda_W lambda_H, and then the
   output is (1 - tau/sqrt(n_k)) on class k's block (W H = Y diag-scaled; when d < K only the d largest
   classes can survive).

4. Unregularized bias. For fixed Z = W H the best b is (Y - Z) 1/N, leaving the data term
   1/(2N) ||(Y - Z) P||^2 with P = I - 11^T/N. Since ||Z P||_* <= ||Z||_* and rank(Z P) <= rank Z,
   replacing Z by Z P never hurts, so min f = min_{rank Z <= d} 1/(2N) ||Y P - Z||^2 +
   sqrt(lambda_W lambda_H) ||Z||_*: step 2 with the centered labels Y_c = Y P (whose row space is
   orthogonal to 1, so the optimal Z satisfies Z 1 = 0 and b* = Y 1/N = (n_1, ..., n_K)/N).

The singular values of W and H at a minimizer follow from step 1: s_W,i^2 = z_i sqrt(lambda_H/lambda_W),
s_H,i^2 = z_i sqrt(lambda_W/lambda_H).
"""
from __future__ import annotations

import numpy as np

from ncverify.numerics.problem import Instance, InstanceError


def _labels(counts) -> np.ndarray:
    c = np.asarray(counts, dtype=int)
    Y = np.zeros((len(c), int(c.sum())))
    Y[np.repeat(np.arange(len(c)), c), np.arange(int(c.sum()))] = 1.0
    return Y


def mse_m1_global_min(inst: Instance) -> dict:
    """Global minimum of the M = 1 MSE UFM (bias-free, or with an unregularized bias); see module doc.

    Returns a dict: ``objective`` (f*), ``tau`` = N sqrt(lambda_W lambda_H), ``label_singular_values``
    (y_i of Y, or of Y_c with a bias), ``output_singular_values`` (z_i, descending, length min(K, N)),
    ``W_singular_values``, ``H_singular_values`` (first min(K, d) nonzero-capable values),
    ``Z`` (the optimal output W H, K x N), ``b`` (b* or None), ``collapsed`` (bias-free only: per class,
    whether n_k <= N^2 lambda_W lambda_H or the class is beyond the d largest), ``per_class`` (bias-free:
    output singular value of each class). Raises InstanceError outside this case.
    """
    if inst.loss != "mse":
        raise InstanceError(f"mse_m1_global_min covers the MSE loss only, got loss {inst.loss!r}")
    if inst.depth != 1 or inst.activation is not None:
        raise InstanceError(f"mse_m1_global_min covers depth M = 1 without activation, got M = {inst.depth}")
    if inst.bias and inst.lam_b != 0:
        raise InstanceError("mse_m1_global_min covers a bias only when it is unregularized (lambda_b = 0)")
    lw, lh = float(inst.lam_w[0]), float(inst.lam_h)
    N, K, d = inst.N, inst.K, inst.width
    tau = N * np.sqrt(lw * lh)
    Y = _labels(inst.counts)
    if inst.targets is not None:  # real-valued targets Y = T E
        Y = np.asarray(inst.target_prototypes()) @ Y
    T = Y - Y.mean(axis=1, keepdims=True) if inst.bias else Y
    U, y, Vt = np.linalg.svd(T, full_matrices=False)
    z = np.maximum(y - tau, 0.0)
    z[d:] = 0.0  # rank Z <= d: keep the d largest
    Z = (U * z) @ Vt
    f = (float((T * T).sum()) - float((z * z).sum())) / (2 * N)
    r = min(K, d)
    out = {
        "objective": f,
        "tau": float(tau),
        "label_singular_values": [float(v) for v in y],
        "output_singular_values": [float(v) for v in z],
        "W_singular_values": [float(np.sqrt(v * np.sqrt(lh / lw))) for v in z[:r]],
        "H_singular_values": [float(np.sqrt(v * np.sqrt(lw / lh))) for v in z[:r]],
        "Z": Z,
        "b": (np.asarray(inst.counts, dtype=float) / N) if inst.bias else None,
        "collapsed": None,
        "per_class": None,
    }
    if not inst.bias and inst.targets is None:  # per class: one-hot labels only
        sq = np.sqrt(np.asarray(inst.counts, dtype=float))
        order = np.argsort(-sq, kind="stable")
        keep = np.zeros(K, dtype=bool)
        keep[order[:d]] = True
        per = np.where(keep, np.maximum(sq - tau, 0.0), 0.0)
        out["per_class"] = [float(v) for v in per]
        out["collapsed"] = [bool(v == 0.0) for v in per]
    return out
