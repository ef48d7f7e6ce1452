"""Deep linear cross-entropy, balanced and bias-free: the reduced K x K problem as an instance, and the lift of
class-mean logits back to full matrices.

By the factorization identity and class averaging (lemmas ``factorization-identity``, ``ce-class-averaging``) the
objective of a balanced instance (n per class, depth M, width d >= K, no bias) is, at its minimizers, that of the
class-mean logits Zbar, F(Zbar) = (1/K) sum_k CE(zbar_k, k) + ((M+1)/2) ell sum_i sigma_i(Zbar)^(2/(M+1)),
ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)); F is the objective of ``reduced_instance`` (one sample per class,
width K, every lambda = ell). ``balanced_point`` turns any Zbar into a full-matrix point of the instance with
exactly that objective (the cheapest, balanced factorization). Used by the start portfolio (the "reduced" start)
and by ``numerics.ce_reduced``. torch-free (numpy).
"""
from __future__ import annotations

import math

import numpy as np

from ncverify.numerics.problem import Instance, InstanceError

#: a singular value below this fraction of the largest counts as zero (rank)
RANK_TOL = 1e-6
#: ... and so does one below this absolute size (the logits of total collapse, Zbar = 0, end near 1e-40)
ZERO_LOGIT = 1e-12


def reduced_instance(K: int, depth: int, ell: float, bias: bool = False, lam_b: float = 0.0) -> Instance:
    """The K x K problem as a deep linear CE instance: counts [1]*K, width K, depth M, every lambda = ell."""
    if K < 2:
        raise InstanceError(f"the reduced CE problem needs K >= 2 classes, got {K}")
    if not (ell > 0 and math.isfinite(ell)):
        raise InstanceError(f"ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) must be positive and finite, got {ell}")
    return Instance.create([1] * K, width=K, depth=depth, lam_w=ell, lam_h=ell, loss="ce", bias=bias, lam_b=lam_b)


def ell_of(inst: Instance) -> float:
    """ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) of a balanced instance."""
    M = inst.depth
    return math.exp((math.log(inst.N / inst.K) + math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))


def liftable(inst: Instance) -> bool:
    """Does the reduction apply (balanced, loss "ce", no bias, deep linear, d >= K, K >= 2), and is the instance not
    its own reduced problem (one sample per class, width K, every lambda equal)?"""
    if inst.loss != "ce" or inst.bias or inst.activation is not None or not inst.balanced or inst.K < 2:
        return False
    if inst.width < inst.K:
        return False
    own = inst.N == inst.K and inst.width == inst.K and len({*inst.lam_w, inst.lam_h}) == 1
    return not own


def balanced_point(Zbar: np.ndarray, inst: Instance) -> dict:
    """The full-matrix point {"weights", "H", "b"} of a balanced instance whose class-mean logits are ``Zbar``:
    Z = Zbar (x) 1_n^T = U S V^T, each factor A (decay lambda_A) with singular values sqrt(L/lambda_A) S^(1/(M+1))
    (the cheapest factorization), aligned through the first r coordinates of the width; b = 0."""
    K, n, M, d = inst.K, inst.N // inst.K, inst.depth, inst.width
    Z = np.repeat(Zbar, n, axis=1)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    r = int((s > max(RANK_TOL * s[0], ZERO_LOGIT)).sum()) if s.size else 0
    if r > d:
        raise InstanceError(f"rank {r} of the logits exceeds the width d = {d}")
    L = math.exp((math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))
    t = s[:r] ** (1.0 / (M + 1))
    E = np.eye(d)[:, :r]
    weights = []
    for j in range(M):
        sj = np.sqrt(L / inst.lam_w[j]) * t
        left = U[:, :r] if j == M - 1 else E
        weights.append(left @ np.diag(sj) @ E.T)
    H = E @ np.diag(np.sqrt(L / inst.lam_h) * t) @ Vt[:r]
    return {"weights": weights, "H": H, "b": np.zeros(K) if inst.bias else None}


__all__ = ["RANK_TOL", "ZERO_LOGIT", "reduced_instance", "ell_of", "liftable", "balanced_point"]
