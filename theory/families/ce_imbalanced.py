"""Family ``ce-ufm-imbalanced``: the plain CE UFM (M = 1) with any class counts, without a bias or with a bias
(penalized, lambda_b > 0, or unregularized, lambda_b = 0).

Reduction (convex, exact): the factorization elimination gives lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2 >=
mu ||W H||_*, mu = sqrt(lambda_W lambda_H) (this suite's 1/2-convention), and class averaging (CE is convex,
averaging a class's logits does not raise the nuclear norm) leaves the class-level program

    F(X, b) = sum_k (n_k/N) CE(x_k / sqrt(n_k) + b, k) + mu ||X||_* + lambda_b/2 ||b||^2,   X = Zbar D^(1/2),

D = diag(n_k). Classes with equal counts are interchangeable, so a minimizer symmetric under permuting them exists.
What this family derives exactly from that program:

* **rows of W within a group of equal counts n_g (>= 2 classes)** coincide ("minority collapse" for the minority
  group) iff mu >= sqrt(n_g)/N, i.e. lambda_W lambda_H N^2 >= n_g (an exact rational comparison). Reason: the
  group-centered block E (rows and columns of the group, I - 11^T/|g|) is orthogonal to every symmetric point's
  row and column spaces once the group's rows are equal; the data term's derivative along E there is
  -(n_g/N)(|g| - 1) whatever the other values, and mu ||E D^(1/2)||_* = mu sqrt(n_g) (|g| - 1).
* **total collapse** (W = H = 0, every row of W equal to 0) iff sigma_max(G_0) <= mu, with G_0's columns
  sqrt(n_k)(p_0 - e_k)/N and p_0 = softmax(b_0) at the bias b_0 that is optimal at X = 0 (uniform without a bias,
  n/N with an unregularized bias, the root of lambda_b b = n/N - softmax(b) otherwise: a certified root, its error
  bounded by residual/lambda_b by strong convexity). Then f* = sum_k (n_k/N) CE(b_0, k) + lambda_b/2 ||b_0||^2.

The minimal value away from total collapse is transcendental and not derived here: the convex oracle
(``numerics.convex``) certifies it with a duality gap.
"""
from __future__ import annotations

from collections import defaultdict

import mpmath
import sympy as sp

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Exact, PhaseBoundary, Prediction
from ncverify.theory.solve import to_mpf

NAME = "ce-ufm-imbalanced"


def check_ce_imbalanced(I: ExactInstance) -> None:
    if I.loss != "ce":
        raise TheoryInputError(f"{NAME} needs loss ce, got {I.loss!r}")
    if I.depth != 1:
        raise TheoryInputError(f"{NAME} is the plain UFM (convex after the reduction): needs depth M = 1, got {I.depth}")
    if I.activation is not None:
        raise TheoryInputError(f"{NAME} has no activation, got {I.activation!r}")
    if I.width < I.K:
        raise TheoryInputError(f"{NAME} needs width d >= K (every class-level logit matrix must be reachable), got "
                               f"d = {I.width} < K = {I.K}")


def count_groups(counts: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """count n_g -> the 0-based classes with that count (groups of interchangeable classes)."""
    g: dict[int, list[int]] = defaultdict(list)
    for k, c in enumerate(counts):
        g[c].append(k)
    return {c: tuple(ks) for c, ks in g.items()}


def bias_at_zero(I: ExactInstance, dps: int) -> tuple[list[mpmath.mpf], list[mpmath.mpf], str]:
    """(b_0, p_0 = softmax(b_0), how): the optimal bias when Z = 0 (see the module docstring)."""
    K, N = I.K, I.N
    if not I.bias:
        return [mpmath.mpf(0)] * K, [mpmath.mpf(1) / K] * K, "no bias: p_0 uniform"
    if I.lam_b == 0:
        p = [mpmath.mpf(c) / N for c in I.counts]
        return [mpmath.log(x) for x in p], p, "unregularized bias: p_0 = n/N (b_0 up to a common shift)"
    lb = to_mpf(I.lam_b, dps)
    target = [mpmath.mpf(c) / N for c in I.counts]

    def softmax(b):
        m = max(b)
        e = [mpmath.exp(x - m) for x in b]
        s = mpmath.fsum(e)
        return [x / s for x in e]

    b = [mpmath.mpf(0)] * K
    for _ in range(200):  # Newton on the strongly convex function sum_k (n_k/N) CE(b, k) + lambda_b/2 ||b||^2
        p = softmax(b)
        r = [lb * b[k] + p[k] - target[k] for k in range(K)]
        J = mpmath.matrix(K, K)
        for i in range(K):
            for j in range(K):
                J[i, j] = (lb if i == j else 0) + p[i] * ((1 if i == j else 0) - p[j])
        step = mpmath.lu_solve(J, mpmath.matrix(r))
        b = [b[k] - step[k] for k in range(K)]
        if mpmath.norm(step) <= mpmath.mpf(10) ** (-(dps + 5)):
            break
    p = softmax(b)
    res = mpmath.sqrt(mpmath.fsum((lb * b[k] + p[k] - target[k]) ** 2 for k in range(K)))
    if res > mpmath.mpf(10) ** (-(dps - 5)):
        raise TheoryInputError(f"{NAME}: the bias at Z = 0 did not converge (residual {mpmath.nstr(res, 3)})")
    return b, p, f"Newton root of lambda_b b = n/N - softmax(b), |b - b_0| <= residual/lambda_b = {mpmath.nstr(res / lb, 3)}"


def total_collapse_sigma(I: ExactInstance) -> float:
    """sigma_max(G_0) in float64 (numpy Newton for the bias at Z = 0): where total collapse starts, for aiming."""
    import numpy as np

    K, N = I.K, I.N
    n = np.asarray(I.counts, dtype=float)
    if not I.bias:
        p = np.full(K, 1.0 / K)
    elif I.lam_b == 0:
        p = n / N
    else:
        lb, b = float(I.lam_b), np.zeros(K)
        for _ in range(100):
            e = np.exp(b - b.max())
            p = e / e.sum()
            r = lb * b + p - n / N
            if np.abs(r).max() < 1e-15:
                break
            b = b - np.linalg.solve(lb * np.eye(K) + np.diag(p) - np.outer(p, p), r)
        e = np.exp(b - b.max())
        p = e / e.sum()
    G0 = (p[:, None] - np.eye(K)) * np.sqrt(n)[None, :] / N
    return float(np.linalg.norm(G0, 2))


def derive_ce_imbalanced(I: ExactInstance, dps: int) -> Prediction:
    """The exact structure of the CE UFM's global minimizer (see the module docstring)."""
    check_ce_imbalanced(I)
    K, N = I.K, I.N
    mu2 = I.lam_w[0] * I.lam_h  # exact rational
    notes = ["reduction: factorization elimination (mu = sqrt(lambda_W lambda_H)) -> class averaging -> the convex "
             "class-level program F(X, b) = sum_k (n_k/N) CE(x_k/sqrt(n_k) + b, k) + mu ||X||_* + lambda_b/2 ||b||^2",
             "NC1 at every global minimizer's class-averaged copy; within-class variability is 0 at the symmetric one"]
    with mpmath.workdps(dps + 10):
        mu = mpmath.sqrt(to_mpf(mu2, dps + 10))
        b0, p0, how = bias_at_zero(I, dps + 10)
        G0 = mpmath.matrix(K, K)
        for k in range(K):
            for j in range(K):
                G0[j, k] = mpmath.sqrt(I.counts[k]) * (p0[j] - (1 if j == k else 0)) / N
        smax = max(mpmath.svd_r(G0, compute_uv=False))
        tie = abs(smax - mu) <= mpmath.mpf(10) ** (-(dps - 10)) * max(1, mu)
        total = bool(smax <= mu)
        f0 = mpmath.fsum(mpmath.mpf(I.counts[k]) / N * (mpmath.log(mpmath.fsum(mpmath.exp(x) for x in b0)) - b0[k])
                         for k in range(K)) + (to_mpf(I.lam_b, dps + 10) / 2 * mpmath.fsum(x * x for x in b0)
                                               if I.bias else 0)
    groups = count_groups(I.counts)
    rows: list[tuple[tuple[int, ...], bool]] = []
    boundaries = []
    lam_w = I.lam_w[0]
    for n_g, ks in sorted(groups.items()):
        if len(ks) < 2:
            continue
        rows.append((ks, total or bool(mu2 * N ** 2 >= n_g)))
        thr = sp.Rational(n_g, N ** 2) / lam_w
        boundaries.append(PhaseBoundary(
            "lambda_H (other parameters fixed)", Exact(to_mpf(thr, dps), thr), "global",
            f"the rows of W of the {len(ks)} classes with n_k = {n_g} become equal for lambda_H >= n_g/(N^2 lambda_W) "
            f"(mu >= sqrt(n_g)/N)", classes=ks, instance_value=to_mpf(I.lam_h, dps)))
    undetermined = ["rotations: W -> W Q^T, H -> Q H (only invariants are determined)"]
    if total:
        rows.append((tuple(range(K)), True))
    if tie:
        undetermined.append("on the total-collapse boundary sigma_max(G_0) = mu to working precision")
    with mpmath.workdps(dps + 10):
        lam_tc = smax ** 2 / to_mpf(lam_w, dps + 10)
    boundaries.append(PhaseBoundary(
        "lambda_H (other parameters fixed)", Exact(+lam_tc, None, "sigma_max(G_0)^2 / lambda_W; " + how), "global",
        "total collapse (W = H = 0) for lambda_H >= sigma_max(G_0)^2 / lambda_W", instance_value=to_mpf(I.lam_h, dps)))
    notes.append(f"total collapse iff sigma_max(G_0) = {mpmath.nstr(smax, 15)} <= mu = {mpmath.nstr(mu, 15)}: "
                 f"{'yes' if total else 'no'} ({how})")
    bias = [Exact(+x, None, how) for x in b0] if (total and I.bias) else None
    if total and I.bias and I.lam_b == 0:
        bias = None  # defined up to a common shift
    return Prediction(
        family=NAME, instance=I.raw, objective=Exact(+f0, None, "value at W = H = 0 with the optimal bias") if total else None,
        scalars={"mu": [Exact(+mu, sp.sqrt(mu2))], "sigma_max_G0": [Exact(+smax, None, how)]},
        bias=bias, collapsed_classes=list(range(K)) if total else None, rows_equal=rows,
        undetermined=undetermined, phase_boundaries=boundaries, notes=notes, dps=dps,
        derivation={"class_level_program": "sum_k (n_k/N) CE(x_k/sqrt(n_k) + b, k) + mu ||X||_* + lambda_b/2 ||b||^2",
                    "mu": sp.sqrt(mu2),
                    "reduced_text": [notes[0], f"mu = sqrt(lambda_W lambda_H) = {sp.sstr(sp.sqrt(mu2))}"],
                    "stationary_text": [
                        "0 in the subdifferential of F (convex): along the group-centered block E of a group of equal "
                        "counts n_g the data term falls at rate (n_g/N)(|g| - 1) and the penalty rises at "
                        "mu sqrt(n_g)(|g| - 1), so the group's rows stay equal iff mu >= sqrt(n_g)/N",
                        "at X = 0: -grad_X = G_0 must satisfy ||G_0||_2 <= mu (total collapse)"]})


class CeImbalanced:
    """The family ``ce-ufm-imbalanced`` (see the module docstring)."""

    name = NAME
    description = "plain CE UFM (M = 1), any counts, bias optional: equal rows of W per count group, total collapse"

    def check(self, I: ExactInstance) -> None:
        check_ce_imbalanced(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_ce_imbalanced(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        """lambda_H where a group's rows become equal (n_g/(N^2 lambda_W)) and where total collapse starts
        (sigma_max(G_0)^2/lambda_W, in float64: these values only aim the search, which draws them per instance)."""
        check_ce_imbalanced(I)
        N, lw = I.N, float(I.lam_w[0])
        out = {float(n_g) / (N ** 2 * lw) for n_g, ks in count_groups(I.counts).items() if len(ks) > 1}
        return {"lam_h": sorted(out | {total_collapse_sigma(I) ** 2 / lw})}
