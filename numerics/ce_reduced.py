"""The reduced numeric search of deep linear cross-entropy: global minimization of the K x K class-mean logit
problem from many starts, every distinct local minimum with its geometry.

The reduced problem (``theory.ce_codes``): F(Zbar) = (1/K) sum_k CE(zbar_k, k) + ((M+1)/2) ell sum_i sigma_i(Zbar)^p,
p = 2/(M+1), ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)). By the factorization identity it is the deep linear CE
objective of K classes with ONE sample each, width K, depth M and every lambda equal to ell (the balanced factors of
a K x K matrix), which is smooth in its factors; that objective is minimized here with the batched solver and the
start portfolio (``numerics.starts``), so the search knows nothing about codes or the ETF. Each end point gives
Zbar = W_M...W_1 H and F(Zbar) evaluated directly from its singular values.

torch and numpy only (never SymPy). Symbols: K = ``K``, M = ``depth``, ell = ``ell``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ncverify.numerics import starts as st
from ncverify.numerics.ce_lift import RANK_TOL, ZERO_LOGIT, balanced_point, ell_of, reduced_instance  # noqa: F401 (API)
from ncverify.numerics.problem import InstanceError

#: two end points are the same local minimum when their F and singular values agree to this relative tolerance:
#: the solver stops at ||grad|| <= 1e-10, so F is within ||grad||^2 / (2 mu) <= 1e-12 of the local minimum
#: for curvature mu >= 5e-9, far inside 1e-8 (and singular values within ||grad|| / mu of theirs)
SAME_POINT = 1e-7
def reduced_value(Zbar: np.ndarray, depth: int, ell: float) -> tuple[float, np.ndarray]:
    """F(Zbar) and the singular values of Zbar (float64). For M >= 2 a singular value that should be exactly 0
    but is ~1e-15 in float64 adds ((M+1)/2) ell (1e-15)^(2/(M+1)) to F: pass an exactly low-rank Zbar."""
    K = Zbar.shape[1]
    ce = 0.0
    for k in range(K):
        z = Zbar[:, k] - Zbar[k, k]
        mx = z.max()
        ce += mx + math.log(np.exp(z - mx).sum())
    s = np.linalg.svd(Zbar, compute_uv=False)
    p = 2.0 / (depth + 1)
    return ce / K + (depth + 1) / 2 * ell * float(np.sum(s ** p)), s


@dataclass
class LocalMin:
    """One distinct end point of the search: F, Zbar, its rank and singular values, how many starts reached it
    (and their kinds), and the geometry descriptors of ``describe``."""

    value: float
    zbar: np.ndarray
    rank: int
    singular_values: list[float]
    starts: int
    kinds: list[str]
    geometry: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"value": self.value, "rank": self.rank, "singular_values": self.singular_values, "starts": self.starts,
                "kinds": sorted(set(self.kinds)), "geometry": self.geometry}


@dataclass
class ReducedSearch:
    """All distinct local minima (least first) of one (K, M, ell), and the solver's stop reasons."""

    K: int
    depth: int
    ell: float
    minima: list[LocalMin]
    stop_reasons: dict

    @property
    def best(self) -> LocalMin:
        return self.minima[0]

    def to_json(self) -> dict:
        return {"K": self.K, "depth": self.depth, "ell": self.ell, "stop_reasons": self.stop_reasons,
                "minima": [m.to_json() for m in self.minima]}


def describe(Zbar: np.ndarray) -> dict:
    """Geometry descriptors of a class-mean logit matrix: rank; distinct nonzero singular values with
    multiplicities; dead classes (logit column constant: CE = log K); groups of classes whose feature points
    coincide (equal logit columns); distinct norms of the feature points of the balanced factorization
    (rows of V S^(1/2)) -- equal norms for every live class is a one-orbit (class-transitive) geometry; and a
    ``shape`` name (``_shape``: simplex ETF, cross-polytope, regular polygon, ... on the live classes)."""
    K = Zbar.shape[0]
    U, s, Vt = np.linalg.svd(Zbar)
    top = s[0] if s.size and s[0] > 0 else 1.0
    r = int((s > max(RANK_TOL * top, ZERO_LOGIT)).sum())
    vals: list[list[float]] = []
    for x in s[:r]:
        if vals and abs(vals[-1][0] - x) <= 1e-6 * top:
            vals[-1][1] += 1
        else:
            vals.append([float(x), 1])
    pts = (Vt[:r].T * np.sqrt(s[:r]))
    norms = np.linalg.norm(pts, axis=1)
    dead = [k for k in range(K) if norms[k] <= 1e-6 * max(norms.max(), 1e-300)]
    groups: list[list[int]] = []
    for k in range(K):
        for g in groups:
            if np.linalg.norm(pts[k] - pts[g[0]]) <= 1e-6 * max(norms.max(), 1e-300) and k not in dead:
                g.append(k)
                break
        else:
            if k not in dead:
                groups.append([k])
    live = [n for k, n in enumerate(norms) if k not in dead]
    dist: list[float] = []
    for x in sorted(live, reverse=True):
        if not dist or abs(dist[-1] - x) > 1e-6 * max(live):
            dist.append(float(x))
    return {"rank": r, "singular_values": [[v, m] for v, m in vals], "dead_classes": dead,
            "coincident_classes": [g for g in groups if len(g) > 1], "feature_norms": dist,
            "one_orbit": len(dist) <= 1 and not dead,
            "shape": _shape(r, [pts[g[0]] for g in groups], len(dist), dead, [len(g) for g in groups])}


#: relative tolerance of the shape tests (cosines, norms, angles)
SHAPE_TOL = 1e-5


def _shape(rank: int, points: list[np.ndarray], n_norms: int, dead: list[int], sizes: list[int]) -> str:
    """A name for the configuration of the distinct live feature points: "simplex ETF on m" (every cosine
    -1/(m-1)), "cross-polytope on m" (antipodal pairs, all other pairs orthogonal), "regular m-gon" (rank 2,
    equally spaced angles), else "rank r, m points, k norms"; plus coincident classes and dead classes."""
    if rank == 0 or not points:
        return "total collapse"
    m = len(points)
    X = np.array(points)
    nrm = np.linalg.norm(X, axis=1)
    U = X / nrm[:, None]
    C = U @ U.T
    off = C[~np.eye(m, dtype=bool)]
    same_norm = n_norms == 1
    name = f"rank {rank}, {m} points, {n_norms} norm{'s' if n_norms > 1 else ''}"
    if same_norm and m >= 2 and np.allclose(off, -1.0 / (m - 1), atol=SHAPE_TOL):
        name = "antipodal pair" if m == 2 else f"simplex ETF on {m}"
    elif same_norm and m % 2 == 0 and all(
            np.sum(np.isclose(C[i], -1.0, atol=SHAPE_TOL)) == 1
            and np.sum(np.isclose(C[i], 0.0, atol=SHAPE_TOL)) == m - 2 for i in range(m)):
        name = f"cross-polytope on {m}"
    elif same_norm and rank == 2 and m >= 3:
        _, _, Vt = np.linalg.svd(X, full_matrices=False)
        ang = np.sort(np.mod(np.arctan2(X @ Vt[1], X @ Vt[0]), 2 * np.pi))
        gaps = np.diff(np.concatenate([ang, [ang[0] + 2 * np.pi]]))
        if np.allclose(gaps, 2 * np.pi / m, atol=SHAPE_TOL * 2 * np.pi):
            name = f"regular {m}-gon"
    if any(k > 1 for k in sizes):
        name += f", classes coinciding in groups of {sorted((k for k in sizes if k > 1), reverse=True)}"
    if dead:
        name += f" + {len(dead)} dead class{'es' if len(dead) > 1 else ''}"
    return name


def search(K: int, depth: int, ell: float, *, starts: int = 48, seed: int = 0, device: str = "auto",
           bias: bool = False, lam_b: float = 0.0) -> ReducedSearch:
    """Minimize the reduced problem of (K, depth, ell) from the portfolio's first ``starts`` starts (batched) and
    group the end points into distinct local minima (``SAME_POINT``). Diverged runs are dropped."""
    if starts < 1:
        raise InstanceError(f"starts must be >= 1, got {starts}")
    inst = reduced_instance(K, depth, ell, bias, lam_b)
    res = st.solve_instances([inst], starts=starts, seed=seed, device=device)[0]
    minima: list[LocalMin] = []
    reasons: dict[str, int] = {}
    for run in res.runs:
        reasons[run.stop_reason] = reasons.get(run.stop_reason, 0) + 1
        if run.stop_reason == "diverged" or not math.isfinite(run.objective):
            continue
        p = run.params.to_numpy()
        Z = models_product(p["weights"]) @ p["H"]
        # the factored objective is the reduced problem itself (min over factors of it = min over Zbar of F); its
        # value at the end point is F at a factorization of Zbar (equal to F(Zbar) when balanced). F(Zbar) from the
        # singular values is NOT used: for p = 2/(M+1) < 1 the float64 rounding of an exactly-zero singular value
        # (~1e-15) adds (1e-15)^p ~ 1e-4 per value
        f, s = run.objective, np.linalg.svd(Z, compute_uv=False)
        for m in minima:
            if abs(m.value - f) <= SAME_POINT * max(1.0, abs(f)) and np.allclose(
                    m.singular_values, s, rtol=0, atol=SAME_POINT * max(1.0, float(s[0]))):
                m.starts += 1
                m.kinds.append(run.init)
                break
        else:
            geo = describe(Z)
            minima.append(LocalMin(float(f), Z, geo["rank"], [float(x) for x in s], 1, [run.init], geo))
    minima.sort(key=lambda m: m.value)
    if not minima:
        raise InstanceError(f"every start of the reduced problem diverged (K = {K}, M = {depth}, ell = {ell})")
    return ReducedSearch(K, depth, ell, minima, reasons)


def models_product(weights: Sequence[np.ndarray]) -> np.ndarray:
    """W = W_M ... W_1 (weights listed W_1 first)."""
    W = weights[0]
    for w in weights[1:]:
        W = w @ W
    return W


__all__ = ["reduced_instance", "ell_of", "reduced_value", "describe", "search", "balanced_point", "LocalMin",
           "ReducedSearch"]
