"""The convex oracle: depth-1 problems that are convex after the factorization elimination, solved with CVXPY
(Clarabel, an interior-point solver with exponential and semidefinite cones) and CERTIFIED by a duality gap that
this module computes itself from the returned point, never from the solver's own report.

Every program is over a logit matrix X (K x K class-level after class averaging, or K x N sample-level: the
full-matrix version, which does not assume NC1); D = diag(n_k), w_k = n_k/N:

* ``ce_nuclear``: sum_k w_k CE(x_k/sqrt(n_k) + b, k) + mu ||X||_* (+ lambda_b/2 ||b||^2): the CE UFM with
  mu = sqrt(lambda_W lambda_H) (penalties lambda/2 ||.||^2), bias optional (penalized);
* ``mse_nuclear``: (1/(2N)) ||X + b sqrt(n)^T - D^(1/2)||_F^2 + mu ||X||_*: the MSE UFM, bias optional (unregularized);
* ``max_margin``: min ||X||_* s.t. every margin x_kk/sqrt(n_k) - x_ck/sqrt(n_k) >= 1 (class-level), or
  z_{y_i, i} - z_{c, i} >= 1 (sample-level, Z = X): the UF-SVM of the vanishing-regularization CE limit;
* ``layer_peeled``: min sum_k w_k CE(z_k, k) s.t. ||Z||_* <= rho (class-level; sample-level: the columns of
  sample i of class k are sqrt(n_k) x_i): the layer-peeled model with rho = K sqrt(E_W E_H).

A ``Certificate`` holds a feasible point's value (an upper bound on the minimum), a dual feasible value (a lower
bound) and their float64 rounding: the true minimum lies in [lower, upper]. CVXPY is an optional dependency
(``pip install 'ncverify[convex]'``); ``require_cvxpy`` raises ``OracleUnavailable`` with that advice.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

EPS = np.finfo(float).eps
#: the interior-point tolerances asked of Clarabel (relative gap and feasibility); the certificate, not these,
#: states the accuracy obtained
SOLVER_TOL = 1e-10
INSTALL = "pip install 'ncverify[convex]'  (CVXPY with its open-source solvers)"
#: the polish stops at this relative duality gap, or after this many first-order steps (the certificate then states
#: the gap reached: near a phase boundary, where the program is barely strongly convex, it can stay about 1e-9)
POLISH_GAP = 1e-13
POLISH_STEPS = 3000


class OracleUnavailable(RuntimeError):
    """CVXPY is not installed (the message says how to install it)."""


class OracleFailed(RuntimeError):
    """The convex solver did not return a usable point (the message names the solver status)."""


def require_cvxpy() -> Any:
    """The ``cvxpy`` module; OracleUnavailable with the install command when it is missing."""
    try:
        import cvxpy as cp
    except ImportError:
        raise OracleUnavailable(f"the convex oracle needs CVXPY, which is not installed: {INSTALL}") from None
    return cp


def available() -> bool:
    """Whether the convex oracle can run here."""
    try:
        require_cvxpy()
    except OracleUnavailable:
        return False
    return True


@dataclass
class Certificate:
    """A convex program's certified optimum: the minimum lies in [lower, upper] = [dual - rounding, primal + rounding].

    primal: the objective at a feasible point (X, b); dual: the value of a dual feasible point built from it;
    gap = primal - dual (>= 0 up to rounding); rounding: a bound on the float64 error of both evaluations;
    X, b: the feasible point (class-level K x K, or K x N sample-level); program: which program; seconds: wall time.
    """

    program: str
    primal: float
    dual: float
    rounding: float
    X: np.ndarray
    b: np.ndarray | None
    seconds: float
    status: str
    details: dict = field(default_factory=dict)

    @property
    def gap(self) -> float:
        return max(self.primal - self.dual, 0.0)

    @property
    def lower(self) -> float:
        return self.dual - self.rounding

    @property
    def upper(self) -> float:
        return self.primal + self.rounding

    @property
    def value(self) -> float:
        """The midpoint of the certified interval."""
        return 0.5 * (self.lower + self.upper)

    @property
    def radius(self) -> float:
        """Half the width of the certified interval: |minimum - value| <= radius."""
        return 0.5 * (self.upper - self.lower)

    def summary(self) -> dict:
        """The numbers, without arrays (JSON-ready)."""
        return {"program": self.program, "primal": self.primal, "dual": self.dual, "gap": self.gap,
                "rounding": self.rounding, "lower": self.lower, "upper": self.upper, "seconds": round(self.seconds, 4),
                "status": self.status, **{k: v for k, v in self.details.items() if not isinstance(v, np.ndarray)}}


# ---------------------------------------------------------------------------------------------
# helpers
def _labels(counts: Sequence[int], sample_level: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, n_y, weight) per column: class index, its count and its weight in the data term (w_k = n_k/N at the
    class level, 1/N per sample at the sample level)."""
    counts = np.asarray(counts, dtype=int)
    N = int(counts.sum())
    K = len(counts)
    if sample_level:
        y = np.repeat(np.arange(K), counts)
        return y, counts[y].astype(float), np.full(len(y), 1.0 / N)
    y = np.arange(K)
    return y, counts.astype(float), counts / N


def _solve(problem: Any, cp: Any) -> tuple[str, float]:
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # "solution may be inaccurate": the certificate, computed here, says how accurate
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=cp.CLARABEL, tol_gap_abs=SOLVER_TOL, tol_gap_rel=SOLVER_TOL, tol_feas=SOLVER_TOL,
                          max_iter=400)
    except cp.error.SolverError as exc:
        raise OracleFailed(f"the convex solver failed: {exc}") from None
    status = str(problem.status)
    if status not in ("optimal", "optimal_inaccurate"):
        raise OracleFailed(f"the convex solver stopped with status {status!r}")
    return status, time.perf_counter() - t0


def _softmax(Z: np.ndarray) -> np.ndarray:
    E = np.exp(Z - Z.max(axis=0, keepdims=True))
    return E / E.sum(axis=0, keepdims=True)


def _ce_columns(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CE(z_i, y_i) per column, computed stably."""
    m = Z.max(axis=0)
    lse = m + np.log(np.exp(Z - m).sum(axis=0))
    return lse - Z[y, np.arange(Z.shape[1])]


def _negentropy(Q: np.ndarray) -> np.ndarray:
    """sum_j q_j log q_j per column (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(Q > 0, Q * np.log(np.where(Q > 0, Q, 1.0)), 0.0)
    return t.sum(axis=0)


def _nuc(X: np.ndarray) -> float:
    return float(np.linalg.svd(X, compute_uv=False).sum())


def _spec(X: np.ndarray) -> float:
    return float(np.linalg.norm(X, 2))


def _rounding(*magnitudes: float, size: int) -> float:
    """A float64 rounding bound for a sum of ``size`` terms whose absolute values add up to ``magnitudes``:
    8 size eps sum|terms| (pessimistic; the SVD-based terms are backward stable to a small multiple of eps)."""
    return 8 * max(size, 1) * EPS * (sum(abs(m) for m in magnitudes) + 1.0)


# ---------------------------------------------------------------------------------------------
# CE + nuclear norm (the CE UFM at M = 1)
def ce_nuclear(counts: Sequence[int], mu: float, bias: bool = False, lam_b: float = 0.0,
               sample_level: bool = False, tied: Sequence[Sequence[int]] = ()) -> Certificate:
    """min over X (and b) of sum_i w_i CE(x_i/sqrt(n_{y_i}) + b, y_i) + mu ||X||_* (+ lambda_b/2 ||b||^2).

    counts: n_1..n_K; mu = sqrt(lambda_W lambda_H); bias with lam_b > 0 (an unregularized CE bias has no dual
    certificate of this form and is refused); tied: groups of classes whose rows of X are constrained to be equal
    (class level; the rows of W are then equal too). Dual (Fenchel): for nu_i with ||T(V)||_2 <= mu, V = [nu_i /
    sqrt(n_{y_i})] and T the orthogonal projection onto matrices with the tied rows equal (the identity without
    ties), and q_i = nu_i/w_i + e_{y_i} in the simplex, the value -sum_i w_i sum_j q_ij log q_ij -
    ||sum_i nu_i||^2/(2 lambda_b) is a lower bound; nu is the data term's gradient at the returned point, scaled
    into the ball."""
    cp = require_cvxpy()
    if bias and not lam_b > 0:
        raise ValueError("the CE oracle needs lambda_b > 0 when a bias is used")
    if tied and sample_level:
        raise ValueError("tied rows are a class-level constraint")
    y, ny, w = _labels(counts, sample_level)
    K, C = len(counts), len(y)
    scale = np.ones(C) if sample_level else 1.0 / np.sqrt(ny)
    groups = [list(g) for g in tied if len(g) > 1]
    X = cp.Variable((K, C))
    b = cp.Variable(K) if bias else None
    Zexpr = X @ np.diag(scale)
    if bias:
        Zexpr = Zexpr + cp.reshape(b, (K, 1), order="F") @ np.ones((1, C))
    onehot = np.zeros((K, C))
    onehot[y, np.arange(C)] = 1.0
    data = w @ cp.log_sum_exp(Zexpr, axis=0) - cp.sum(cp.multiply(onehot @ np.diag(w), Zexpr))
    obj = data + mu * cp.normNuc(X) + (lam_b / 2 * cp.sum_squares(b) if bias else 0)
    cons = [X[g[0], :] == X[k, :] for g in groups for k in g[1:]]
    status, secs = _solve(cp.Problem(cp.Minimize(obj), cons), cp)
    Xv = _tie(np.asarray(X.value, dtype=float), groups)
    bv = np.asarray(b.value, dtype=float) if bias else None
    Xv, bv, steps = _polish_ce(Xv, bv, y, w, scale, mu, lam_b if bias else None, groups)
    primal, dual, rnd, c = _ce_certificate(Xv, bv, y, w, scale, mu, lam_b if bias else None, groups)
    name = "ce-nuclear" + ("-sample" if sample_level else "") + ("-tied" if groups else "")
    return Certificate(name, primal, dual, rnd, Xv, bv, secs, status,
                       {"mu": mu, "dual_scale": c, "polish_steps": steps, "tied": groups})


def _tie(X: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """The orthogonal projection onto matrices whose rows in each group are equal: each group's rows replaced by
    their mean (the identity without groups)."""
    if not groups:
        return X
    X = X.copy()
    for g in groups:
        X[list(g)] = X[list(g)].mean(axis=0)
    return X


def _svt(X: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    """The proximal map of t ||.||_*: singular values soft-thresholded by t; returns it and its nuclear norm."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    s = np.maximum(s - t, 0.0)
    return (U * s) @ Vt, float(s.sum())


def _fista(X: np.ndarray, b: np.ndarray | None, grads: Callable, prox: Callable, smooth: Callable, gap: Callable,
           L: float, iters: int = POLISH_STEPS) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Accelerated proximal-gradient steps (FISTA with restarts) from the interior-point solution (X, b), keeping the
    point with the smallest duality gap. The interior point stops about 1e-6 from the optimum on exponential cones,
    and the certificate's gap is first order in the distance to the minimizer, so the objective value alone cannot
    tell when to stop (it stops at the relative gap ``POLISH_GAP`` or after ``iters`` steps). grads(X, b) -> (dX, db)
    and smooth(X, b) -> value of the smooth part; prox(X, t) -> (X', value of the nonsmooth part, 0 for a
    constraint); gap(X, b) -> (primal - dual, primal), looked at every tenth step (it costs SVDs); step 1/L with
    L >= the smooth part's Lipschitz constant."""
    t = 1.0 / L
    g0, v0 = gap(X, b)
    best = (g0, X, b)
    Xp, bp, Yx, Yb, theta, last_v = X, b, X, b, 1.0, v0
    it = 0
    for it in range(1, iters + 1):
        gX, gb = grads(Yx, Yb)
        Xn, nonsmooth = prox(Yx - t * gX, t)
        bn = Yb - t * gb if b is not None else None
        v = smooth(Xn, bn) + nonsmooth
        if it % 10 == 0:
            g = gap(Xn, bn)[0]
            if g < best[0]:
                best = (g, Xn, bn)
            if g <= POLISH_GAP * max(1.0, abs(v)):
                break
        if v > last_v:  # restart the momentum when the value rises
            theta, Yx, Yb, Xp, bp, last_v = 1.0, Xn, bn, Xn, bn, v
            continue
        theta_n = (1 + math.sqrt(1 + 4 * theta * theta)) / 2
        mom = (theta - 1) / theta_n
        Yx = Xn + mom * (Xn - Xp)
        Yb = bn + mom * (bn - bp) if b is not None else None
        Xp, bp, theta, last_v = Xn, bn, theta_n, v
    return best[1], best[2], it


def _gap_of(certificate: Callable) -> Callable:
    """gap(X, b) -> (primal - dual, primal) of a certificate function returning (primal, dual, ...)."""
    def gap(X: np.ndarray, b: np.ndarray | None) -> tuple[float, float]:
        p, d = certificate(X, b)[:2]
        return p - d, p
    return gap


def _polish_ce(X: np.ndarray, b: np.ndarray | None, y: np.ndarray, w: np.ndarray, scale: np.ndarray, mu: float,
               lam_b: float | None, groups: Sequence[Sequence[int]] = ()) -> tuple[np.ndarray, np.ndarray | None, int]:
    """``_fista`` on ``ce_nuclear``'s program: L = max_i w_i scale_i^2 (CE's Hessian is at most 1/2 per column; the
    bias adds the sum of the weights and lambda_b); the proximal map of mu ||.||_* on tied rows is the SVT of the
    tied projection (``_tie``), which keeps the rows tied."""
    K, C = X.shape
    onehot = np.zeros((K, C))
    onehot[y, np.arange(C)] = 1.0
    L = float(np.max(w * scale ** 2)) + (float(w.sum()) + lam_b if b is not None else 0.0)

    def grads(Xc, bc):
        Z = Xc * scale + (bc[:, None] if bc is not None else 0.0)
        G = (_softmax(Z) - onehot) * w
        gb = G.sum(axis=1) + lam_b * bc if bc is not None else None
        return G * scale, gb

    def smooth(Xc, bc):
        Z = Xc * scale + (bc[:, None] if bc is not None else 0.0)
        return float(w @ _ce_columns(Z, y)) + (lam_b / 2 * float(bc @ bc) if bc is not None else 0.0)

    def prox(Z, t):
        Xn, nuc = _svt(_tie(Z, groups), t * mu)
        return Xn, mu * nuc

    gap = _gap_of(lambda Xc, bc: _ce_certificate(Xc, bc, y, w, scale, mu, lam_b, groups))
    return _fista(X, b, grads, prox, smooth, gap, L)


def _ce_certificate(X: np.ndarray, b: np.ndarray | None, y: np.ndarray, w: np.ndarray, scale: np.ndarray, mu: float,
                    lam_b: float | None, groups: Sequence[Sequence[int]] = ()) -> tuple[float, float, float, float]:
    """(primal, dual, rounding, dual scale c) of ``ce_nuclear`` at (X, b) (see its docstring)."""
    K, C = X.shape
    onehot = np.zeros((K, C))
    onehot[y, np.arange(C)] = 1.0
    Z = X * scale + (b[:, None] if b is not None else 0.0)
    ce = _ce_columns(Z, y)
    nuc = _nuc(X)
    pen_b = lam_b / 2 * float(b @ b) if b is not None else 0.0
    primal = float(w @ ce) + mu * nuc + pen_b
    nu = (_softmax(Z) - onehot) * w  # the data term's gradient in Z's columns
    c = min(1.0, mu / max(_spec(_tie(nu * scale, groups)), 1e-300))
    nu = nu * c
    ent = _negentropy(nu / w + onehot)  # q_i = c p_i + (1 - c) e_{y_i}: in the simplex
    dual = -float(w @ ent)
    if b is not None:
        s = nu.sum(axis=1)
        dual -= float(s @ s) / (2 * lam_b)
    rnd = _rounding(float(w @ np.abs(ce)), mu * nuc, float(w @ np.abs(ent)), pen_b, size=K * C)
    return primal, dual, rnd, c


# ---------------------------------------------------------------------------------------------
# MSE + nuclear norm (the MSE UFM at M = 1)
def mse_nuclear(counts: Sequence[int], mu: float, bias: bool = False, targets: Sequence[Sequence[float]] | None = None
                ) -> Certificate:
    """min over X (and an unregularized b) of (1/(2N)) ||X + b sqrt(n)^T - A||_F^2 + mu ||X||_* with A = T D^(1/2)
    (class level: X = Zbar D^(1/2); T = the regression targets' prototypes, the identity for one-hot labels). Dual:
    nu with ||nu||_2 <= mu (and nu sqrt(n) = 0 with a bias) gives the lower bound -<nu, A> - (N/2) ||nu||_F^2;
    nu = the data term's gradient at the returned point (projected, scaled)."""
    cp = require_cvxpy()
    n = np.asarray(counts, dtype=float)
    N, K = float(n.sum()), len(n)
    A = (np.asarray(targets, dtype=float) if targets is not None else np.eye(K)) @ np.diag(np.sqrt(n))
    X = cp.Variable((K, K))
    b = cp.Variable(K) if bias else None
    R = X - A + (cp.reshape(b, (K, 1), order="F") @ np.sqrt(n)[None, :] if bias else 0)
    status, secs = _solve(cp.Problem(cp.Minimize(cp.sum_squares(R) / (2 * N) + mu * cp.normNuc(X))), cp)
    Xv = np.asarray(X.value, dtype=float)
    bv = np.asarray(b.value, dtype=float) if bias else None
    if bias:  # the exact optimal b for this X (least squares), so the primal value is as small as X allows
        bv = -((Xv - A) @ np.sqrt(n)) / N
    Rv = Xv - A + (np.outer(bv, np.sqrt(n)) if bias else 0.0)
    nuc = _nuc(Xv)
    primal = float((Rv * Rv).sum()) / (2 * N) + mu * nuc
    nu = Rv / N
    if bias:
        u = np.sqrt(n) / math.sqrt(N)
        nu = nu - np.outer(nu @ u, u)
    c = min(1.0, mu / max(_spec(nu), 1e-300))
    nu *= c
    dual = -float((nu * A).sum()) - N / 2 * float((nu * nu).sum())
    rnd = _rounding(float((Rv * Rv).sum()) / (2 * N), mu * nuc, float(np.abs(nu * A).sum()), size=K * K)
    return Certificate("mse-nuclear", primal, dual, rnd, Xv, bv, secs, status, {"mu": mu, "dual_scale": c})


# ---------------------------------------------------------------------------------------------
# the max-margin program (SELI)
def _margin_map(y: np.ndarray, K: int) -> list[tuple[int, int]]:
    """(column i, wrong class c) for every margin constraint."""
    return [(i, c) for i in range(len(y)) for c in range(K) if c != y[i]]


def max_margin(counts: Sequence[int], sample_level: bool = False) -> Certificate:
    """min ||X||_* s.t. every margin >= 1: class level z_k = x_k/sqrt(n_k) (so ||X||_* = ||Z_samples||_* under NC1);
    sample level z_i = x_i. Dual: alpha >= 0 with ||A*(alpha)||_2 <= 1 gives the lower bound sum alpha_{ic} r_i
    (r_i = sqrt(n_{y_i}) class level, 1 sample level); alpha = the solver's multipliers, scaled into the ball. The
    primal point is scaled so that its smallest margin is exactly 1 (feasible)."""
    cp = require_cvxpy()
    y, ny, _ = _labels(counts, sample_level)
    K, C = len(counts), len(y)
    r = np.sqrt(ny) if not sample_level else np.ones(C)
    pairs = _margin_map(y, K)
    X = cp.Variable((K, C))
    rows_y = np.array([y[i] for i, _ in pairs])
    rows_c = np.array([c for _, c in pairs])
    cols = np.array([i for i, _ in pairs])
    cons = [X[rows_y, cols] - X[rows_c, cols] >= r[cols]]
    status, secs = _solve(cp.Problem(cp.Minimize(cp.normNuc(X)), cons), cp)
    alpha = np.maximum(np.asarray(cons[0].dual_value, dtype=float).reshape(-1), 0.0)
    Xv, primal, alpha, dual, rnd, m = _mm_certificate(np.asarray(X.value, dtype=float), alpha, y, r)
    return Certificate("max-margin" + ("-sample" if sample_level else ""), primal, dual, rnd, Xv, None, secs, status,
                       {"smallest_margin_before_scaling": m, "alpha": alpha})


def _mm_certificate(X: np.ndarray, alpha: np.ndarray, y: np.ndarray, r: np.ndarray
                    ) -> tuple[np.ndarray, float, np.ndarray, float, float, float]:
    """``max_margin``'s certificate at (X, alpha): (X scaled to smallest margin 1, its nuclear norm, alpha scaled into
    the dual ball, the dual value, rounding, the smallest margin before scaling). alpha is indexed like
    ``_margin_map``."""
    K, C = X.shape
    pairs = _margin_map(y, K)
    rows_y = np.array([y[i] for i, _ in pairs])
    rows_c = np.array([c for _, c in pairs])
    cols = np.array([i for i, _ in pairs])
    m = float(((X[rows_y, cols] - X[rows_c, cols]) / r[cols]).min())
    if not m > 0:
        raise OracleFailed(f"the max-margin point has a non-positive margin {m:.3g}")
    X = X / m
    primal = _nuc(X)
    Astar = np.zeros((K, C))
    np.add.at(Astar, (rows_y, cols), alpha)
    np.add.at(Astar, (rows_c, cols), -alpha)
    alpha = alpha / max(1.0, _spec(Astar))
    dual = float(alpha @ r[cols])
    return X, primal, alpha, dual, _rounding(primal, dual, size=K * C), m


def lift(cert: Certificate, counts: Sequence[int], mu: float | None = None, lam_b: float = 0.0) -> Certificate:
    """The class-level solution of ``cert`` repeated over the samples, certified in the SAMPLE-level program (no NC1
    assumed: the sample-level dual is built from the lifted point and checked there). A gap as small as the
    class level's shows that NC1 points attain the full program's minimum. Programs: ce-nuclear (mu, lam_b),
    max-margin, layer-peeled."""
    counts = [int(c) for c in counts]
    y, ny, w = _labels(counts, True)
    sq = np.sqrt(np.asarray(counts, dtype=float))
    t0 = time.perf_counter()
    base = cert.program.split("-sample")[0].replace("-tied", "")
    if base == "ce-nuclear":
        Xs = (cert.X / sq)[:, y]  # sample logits z_i = x_k / sqrt(n_k)
        b = cert.b
        p, d, rnd, c = _ce_certificate(Xs, b, y, w, np.ones(len(y)), mu, lam_b if b is not None else None)
        details = {"mu": mu, "dual_scale": c}
    elif base == "layer-peeled":
        rho = cert.details["rho"]
        Xs = (cert.X / sq)[:, y]  # x_i = z_k / sqrt(n_k)
        p, d, rnd = _lpm_certificate(Xs, y, w, np.sqrt(ny), rho)
        details = {"rho": rho, "nuclear_norm": _nuc(Xs)}
    elif base == "max-margin":
        K = len(counts)
        Xs = (cert.X / sq)[:, y]
        a_cls = cert.details["alpha"].reshape(K, K - 1)  # class k's constraints, wrong classes in order
        a_s = (a_cls / sq[:, None])[y].reshape(-1)  # alpha_ic = beta_kc / sqrt(n_k): same value, same dual norm
        Xs, p, _, d, rnd, m = _mm_certificate(Xs, a_s, y, np.ones(len(y)))
        details = {"smallest_margin_before_scaling": m}
    else:
        raise ValueError(f"cannot lift program {cert.program!r}")
    return Certificate(base + "-lifted", p, d, rnd, Xs, cert.b, time.perf_counter() - t0, "lifted", details)


# ---------------------------------------------------------------------------------------------
# the layer-peeled model
def layer_peeled(counts: Sequence[float], rho: float, sample_level: bool = False,
                 tied: Sequence[Sequence[int]] = ()) -> Certificate:
    """min sum_i w_i CE(z_i, y_i) s.t. ||X||_* <= rho, with z_k = x_k (class level: Z = W Hbar) or
    z_i = sqrt(n_{y_i}) x_i (sample level: x_i = W h_i / sqrt(n_{y_i})). counts: n_1..n_K (real weights allowed at
    the class level, where only n_k/N enters); tied: groups whose rows of X are constrained to be equal (class
    level). Lower bound (Frank-Wolfe / Fenchel): f(X) - <T(G), X> - rho sigma_max(T(G)), G = grad f, T = the tied
    projection; upper bound: f at X (tied, scaled into the ball)."""
    cp = require_cvxpy()
    if tied and sample_level:
        raise ValueError("tied rows are a class-level constraint")
    if sample_level:
        y, ny, w = _labels([int(c) for c in counts], True)
    else:
        n = np.asarray(counts, dtype=float)
        y, ny, w = np.arange(len(n)), n, n / n.sum()
    K, C = len(counts), len(y)
    groups = [list(g) for g in tied if len(g) > 1]
    scale = np.sqrt(ny) if sample_level else np.ones(C)
    onehot = np.zeros((K, C))
    onehot[y, np.arange(C)] = 1.0
    X = cp.Variable((K, C))
    Zexpr = X @ np.diag(scale)
    data = w @ cp.log_sum_exp(Zexpr, axis=0) - cp.sum(cp.multiply(onehot @ np.diag(w), Zexpr))
    cons = [cp.normNuc(X) <= rho] + [X[g[0], :] == X[k, :] for g in groups for k in g[1:]]
    status, secs = _solve(cp.Problem(cp.Minimize(data), cons), cp)
    Xv = _ball(_tie(np.asarray(X.value, dtype=float), groups), rho)

    def grads(Xc, bc):
        return (_softmax(Xc * scale) - onehot) * w * scale, None

    gap = _gap_of(lambda Xc, bc: _lpm_certificate(Xc, y, w, scale, rho, groups))
    Xv, _, steps = _fista(Xv, None, grads, lambda Z, t: (_ball(_tie(Z, groups), rho), 0.0),
                          lambda Xc, bc: float(w @ _ce_columns(Xc * scale, y)), gap, float(np.max(w * scale ** 2)))
    primal, lower, rnd = _lpm_certificate(Xv, y, w, scale, rho, groups)
    name = "layer-peeled" + ("-sample" if sample_level else "") + ("-tied" if groups else "")
    return Certificate(name, primal, lower, rnd, Xv, None, secs, status,
                       {"rho": rho, "nuclear_norm": _nuc(Xv), "polish_steps": steps, "tied": groups})


def _ball(X: np.ndarray, rho: float) -> np.ndarray:
    """The Euclidean projection onto {||X||_* <= rho}: the singular values projected onto the l1 ball."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    if s.sum() <= rho:
        return X
    srt = np.sort(s)[::-1]
    css = np.cumsum(srt) - rho
    k = np.nonzero(srt - css / np.arange(1, len(srt) + 1) > 0)[0][-1]
    theta = css[k] / (k + 1)
    return (U * np.maximum(s - theta, 0.0)) @ Vt


def _lpm_certificate(X: np.ndarray, y: np.ndarray, w: np.ndarray, scale: np.ndarray, rho: float,
                     groups: Sequence[Sequence[int]] = ()) -> tuple[float, float, float]:
    """(primal, lower bound, rounding) of ``layer_peeled`` at a feasible X (see its docstring)."""
    K, C = X.shape
    onehot = np.zeros((K, C))
    onehot[y, np.arange(C)] = 1.0
    Z = X * scale
    primal = float(w @ _ce_columns(Z, y))
    G = _tie((_softmax(Z) - onehot) * w * scale, groups)
    inner = float((G * X).sum())
    sg = _spec(G)
    return primal, primal - inner - rho * sg, _rounding(primal, abs(inner), rho * sg, size=K * C)


def tying_cost(free: Certificate, tied: Certificate) -> float:
    """How much tying rows raises the certified minimum at least: the tied program's lower bound minus the free one's
    upper bound. Positive: no minimizer has those rows equal (certified distinct); otherwise tied rows attain the
    minimum to within the certificates' resolution."""
    return tied.lower - free.upper
