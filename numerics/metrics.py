"""Neural-collapse metrics, spectra and balancedness residuals (numpy, float64).

Inputs may be numpy arrays or torch tensors (converted to float64 numpy); ``measure`` takes a
``numerics.models.Params`` or its ``to_numpy()`` dict.

Conventions (THEOREMS.md "NC metrics"; the anchors disagree on details, these are the choices made):

* class means hbar_k = (1/n_k) sum_i h_{k,i}; Hbar = [hbar_1 .. hbar_K] (d x K);
* global mean hbar_G: the sample mean (1/N) sum_{k,i} h_{k,i} by default (``global_mean="sample"``),
  or the mean of the class means (``global_mean="class_means"``); they agree for balanced data;
* Sigma_W = (1/N) sum_{k,i} (h_{k,i} - hbar_k)(h_{k,i} - hbar_k)^T;
  Sigma_B = (1/K) sum_k (hbar_k - hbar_G)(hbar_k - hbar_G)^T;
* nc1 = (1/K) tr(Sigma_W Sigma_B^+), computed as (1/(K N)) ||S Hc||_F^2 with Hc the within-class
  centered features and S = Sigma_B^{+1/2} from ``eigh(Sigma_B)`` keeping the eigenvalues
  e_i > ``rtol`` * max(e) (default rtol = 1e-10), so nc1 >= 0 by construction (a sum of squares);
* nc2(G, T) = || G/||G||_F - T/||T||_F ||_F with T = I_K ("OF"), I_K - 11^T/K ("ETF"), or diag(t)
  (a GOF target given as a 1-D array t); ``nc2_diagonal(G)`` = nc2(G, diag(G)) (target-free GOF test);
* nc3: duality || W/||W||_F - Hbar^T/||Hbar||_F ||_F and product form
  || W Hbar/||W Hbar||_F - T/||T||_F ||_F.

Zero matrices: a normalized distance is undefined when a matrix is 0. The functions here return
``nan`` when ||G||_F (or ||W||_F, ||Hbar||_F, ||W Hbar||_F) is exactly 0 or non-finite; ``measure``
treats every matrix (features, W, Hbar, W Hbar) with Frobenius norm <= ``zero_atol`` (default 1e-6, about grad_tol / mu for the
L-BFGS defaults) as collapsed to zero, reports the metric as None and says so in
``metrics["notes"]`` ("collapsed to zero").
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ncverify.numerics.problem import Instance

NC1_RTOL = 1e-10
ZERO_ATOL = 1e-6
COLLAPSED = "collapsed to zero"


def _np(a: Any) -> np.ndarray:
    """float64 numpy copy of an array or tensor."""
    if hasattr(a, "detach"):
        a = a.detach().to("cpu").double().numpy()
    return np.asarray(a, dtype=np.float64)


def _fro(a: np.ndarray) -> float:
    return float(np.linalg.norm(a))


def _counts(counts: Sequence[int], N: int) -> np.ndarray:
    c = np.asarray([int(x) for x in counts], dtype=int)
    if c.sum() != N or (c < 1).any():
        raise ValueError(f"class counts {list(c)} do not match the {N} feature columns")
    return c


def class_means(H: Any, counts: Sequence[int]) -> np.ndarray:
    """Hbar (d x K): column k = (1/n_k) sum_i h_{k,i} (H: d x N, samples ordered class by class)."""
    H = _np(H)
    c = _counts(counts, H.shape[1])
    bounds = np.concatenate([[0], np.cumsum(c)])
    return np.stack([H[:, bounds[k]:bounds[k + 1]].mean(axis=1) for k in range(len(c))], axis=1)


def global_mean_of(H: Any, counts: Sequence[int], kind: str = "sample") -> np.ndarray:
    """hbar_G: the sample mean ("sample") or the mean of the class means ("class_means")."""
    H = _np(H)
    if kind == "sample":
        return H.mean(axis=1)
    if kind == "class_means":
        return class_means(H, counts).mean(axis=1)
    raise ValueError(f"global_mean must be 'sample' or 'class_means', got {kind!r}")


def nc1(H: Any, counts: Sequence[int], global_mean: str = "sample", rtol: float = NC1_RTOL) -> float:
    """nc1 = (1/K) tr(Sigma_W Sigma_B^+) >= 0 (see the module docstring for the exact computation).

    H: features (d x N), counts: n_1..n_K. Returns 0.0 when Sigma_B = 0 (no between-class spread:
    its pseudo-inverse is 0); returns nan only for non-finite input.
    """
    H = _np(H)
    if not np.isfinite(H).all():
        return math.nan
    c = _counts(counts, H.shape[1])
    K, N = len(c), H.shape[1]
    Hbar = class_means(H, c)
    hG = global_mean_of(H, c, global_mean)
    Hc = H - np.repeat(Hbar, c, axis=1)
    S = sigma_b_pinv_sqrt(sigma_b(Hbar, hG), rtol)
    if S is None:
        return 0.0
    P = S @ Hc  # diag(e^-1/2) V_r^T Hc
    return float((P * P).sum() / (K * N))


def sigma_b(Hbar: Any, hG: Any) -> np.ndarray:
    """Sigma_B = (1/K) sum_k (hbar_k - hbar_G)(hbar_k - hbar_G)^T (symmetrized), Hbar: d x K, hG: hbar_G (d)."""
    Hbar = _np(Hbar)
    D = Hbar - _np(hG)[:, None]
    SB = (D @ D.T) / Hbar.shape[1]
    return 0.5 * (SB + SB.T)


def sigma_b_pinv_sqrt(SB: Any, rtol: float = NC1_RTOL) -> np.ndarray | None:
    """S = diag(e_r^-1/2) V_r^T (r x d), the square root of Sigma_B^+ used by nc1: (e, V) = eigh(Sigma_B), keeping
    the eigenvalues e_i > rtol * max(e). None when Sigma_B = 0 (its pseudo-inverse is 0)."""
    e, V = np.linalg.eigh(_np(SB))
    emax = float(e.max()) if e.size else 0.0
    if emax <= 0:
        return None
    keep = e > rtol * emax
    return (V[:, keep] / np.sqrt(e[keep])).T


def nc1_from_covariances(Sigma_W: Any, Sigma_B: Any, K: int, rtol: float = NC1_RTOL) -> float:
    """nc1 = (1/K) tr(Sigma_W Sigma_B^+) from the two covariances (Sigma_W, Sigma_B: d x d; K classes), with the
    same truncated Sigma_B^{+1/2} = S as ``nc1``: (1/K) tr(S Sigma_W S^T), a sum of the diagonal entries of a
    PSD matrix (each clipped at 0 against rounding), so >= 0. Returns 0.0 when Sigma_B = 0, nan for
    non-finite input (used for features streamed in chunks, ``numerics.features``)."""
    SW = _np(Sigma_W)
    if not np.isfinite(SW).all() or not np.isfinite(_np(Sigma_B)).all():
        return math.nan
    S = sigma_b_pinv_sqrt(Sigma_B, rtol)
    if S is None:
        return 0.0
    diag = np.einsum("ij,jk,ik->i", S, 0.5 * (SW + SW.T), S)
    return float(np.clip(diag, 0.0, None).sum() / K)


def target_gram(target: Any, K: int) -> np.ndarray:
    """T for nc2: "OF" -> I_K, "ETF" -> I_K - 11^T/K, a length-K 1-D array t -> diag(t),
    a K x K array -> itself."""
    if isinstance(target, str):
        t = target.upper()
        if t == "OF":
            return np.eye(K)
        if t == "ETF":
            return np.eye(K) - np.ones((K, K)) / K
        raise ValueError(f"target must be 'OF', 'ETF' or an array, got {target!r}")
    T = _np(target)
    if T.ndim == 1 and T.shape[0] == K:
        return np.diag(T)
    if T.shape == (K, K):
        return T
    raise ValueError(f"target array has shape {T.shape}, need ({K},) or ({K}, {K})")


def normalized_distance(A: Any, B: Any) -> float:
    """|| A/||A||_F - B/||B||_F ||_F; nan when either norm is 0 or non-finite."""
    A, B = _np(A), _np(B)
    na, nb = _fro(A), _fro(B)
    if not (na > 0 and nb > 0 and math.isfinite(na) and math.isfinite(nb)):
        return math.nan
    return _fro(A / na - B / nb)


def nc2(G: Any, target: Any) -> float:
    """|| G/||G||_F - T/||T||_F ||_F with T = target_gram(target, K) (G: K x K Gram); nan if G = 0."""
    G = _np(G)
    return normalized_distance(G, target_gram(target, G.shape[0]))


def nc2_diagonal(G: Any) -> float:
    """nc2(G, diag(G)): 0 iff G is diagonal (a GOF, any class-dependent entries); nan if G = 0."""
    G = _np(G)
    return normalized_distance(G, np.diag(np.diag(G)))


def nc3_duality(W: Any, Hbar: Any) -> float:
    """|| W/||W||_F - Hbar^T/||Hbar||_F ||_F (W: K x d, Hbar: d x K); nan if either is 0."""
    return normalized_distance(_np(W), _np(Hbar).T)


def nc3_product(W: Any, Hbar: Any, target: Any = "OF") -> float:
    """|| W Hbar/||W Hbar||_F - T/||T||_F ||_F with T = target_gram(target, K); nan if W Hbar = 0."""
    WH = _np(W) @ _np(Hbar)
    return normalized_distance(WH, target_gram(target, WH.shape[0]))


def nc3(W: Any, Hbar: Any, target: Any = "OF") -> tuple[float, float]:
    """Both NC3 forms: (nc3_duality(W, Hbar), nc3_product(W, Hbar, target))."""
    return nc3_duality(W, Hbar), nc3_product(W, Hbar, target)


def singular_values(A: Any) -> list[float]:
    """Singular values of A, descending, as floats."""
    A = _np(A)
    if A.size == 0:
        return []
    return [float(s) for s in np.linalg.svd(A, compute_uv=False)]


def product(weights: Sequence[Any]) -> np.ndarray:
    """W_M ... W_1 for weights = [W_1, ..., W_M] (empty list -> None is not allowed)."""
    out = _np(weights[0])
    for W in weights[1:]:
        out = _np(W) @ out
    return out


# ---------------------------------------------------------------------------------------------
# measure
# ---------------------------------------------------------------------------------------------
def _unpack(params: Any) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    if isinstance(params, dict):
        p = params
    else:
        p = params.to_numpy()
    b = p.get("b")
    return [_np(w) for w in p["weights"]], _np(p["H"]), None if b is None else _np(b)


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _geometry(feats: np.ndarray, classifier: np.ndarray | None, inst: Instance, centered: bool,
              global_mean_: str, zero_atol: float, gof_target: Any, prefix: str, notes: dict) -> dict:
    """nc1, nc2 of the class-mean Gram and nc3 (with ``classifier``) for one feature matrix."""
    counts = inst.counts
    Hbar = class_means(feats, counts)
    if centered:
        Hbar = Hbar - global_mean_of(feats, counts, global_mean_)[:, None]
    if _fro(feats) <= zero_atol:
        out: dict = {"nc1": None}
        notes[f"{prefix}features"] = COLLAPSED
    else:
        out = {"nc1": _finite_or_none(nc1(feats, counts, global_mean_))}
    zero_H = _fro(Hbar) <= zero_atol
    G = Hbar.T @ Hbar
    targets: list[tuple[str, Any]] = [("OF", "OF"), ("ETF", "ETF")]
    if gof_target is not None:
        targets.append(("GOF", gof_target))
    for name, t in targets:
        out[f"nc2_Hbar_{name}"] = None if zero_H else _finite_or_none(nc2(G, t))
    out["nc2_Hbar_diag"] = None if zero_H else _finite_or_none(nc2_diagonal(G))
    if zero_H:
        notes[f"{prefix}Hbar"] = COLLAPSED
    if classifier is not None:
        zero_W = _fro(classifier) <= zero_atol
        WH = classifier @ Hbar
        zero_WH = zero_W or zero_H or _fro(WH) <= zero_atol
        out["nc3_duality"] = None if (zero_W or zero_H) else _finite_or_none(nc3_duality(classifier, Hbar))
        for name in ("OF", "ETF"):
            out[f"nc3_product_{name}"] = None if zero_WH else _finite_or_none(nc3_product(classifier, Hbar, name))
        if zero_WH:
            notes[f"{prefix}W Hbar"] = COLLAPSED
    return out


def measure(inst: Instance, params: Any, global_mean: str = "sample", zero_atol: float = ZERO_ATOL,
            gof_target: Sequence[float] | None = None) -> dict:
    """All measurements at one point (JSON-serialisable; undefined metrics are None, see ``notes``).

    Keys:
    * ``objective`` (float), ``objective_parts`` (models.objective_parts);
    * ``singular_values``: ``weights_product`` (W = W_M...W_1), ``layers`` ([W_1, ..., W_M]), ``output``
      (the model output Z = W_M...W_2 s(W_1 H) + b 1^T, i.e. W H + b 1^T for the linear models);
    * ``class_mean_norms``: ||hbar_k|| of H (= H_1);
    * ``metrics``: for H and W = W_M...W_1: ``nc1``; ``nc2_W_{OF,ETF,diag[,GOF]}`` of W W^T;
      ``nc2_Hbar_{OF,ETF,diag[,GOF]}`` of Hbar^T Hbar (Hbar uncentered without a bias, centered by
      hbar_G with one); ``nc3_duality``, ``nc3_product_{OF,ETF}``; ``notes`` {matrix: "collapsed to zero"};
    * ``layers``: one entry per feature stage: H_1 = H; the extended model adds the pre-activation
      W_1 H_1 and the post-activation s(W_1 H_1); then H_{j+1} = W_j H_j. Each entry: ``name``,
      ``class_mean_norms``, nc1 / nc2_Hbar_* and, where a classifier follows, nc3 against the product of
      the remaining layers (``classifier``, e.g. "W_3 W_2");
    * ``balancedness``: ``pairs`` = [{"pair": "W_{j+1}, W_j", "abs": ||lambda_{j+1} W_{j+1}^T W_{j+1}
      - lambda_j W_j W_j^T||_F, "rel": abs / (||first||_F + ||second||_F)}] for j = 1..M-1, then
      {"pair": "W_1, H", ...} for lambda_1 W_1^T W_1 - lambda_H H H^T;
    * ``bias``: list or None.
    ``gof_target``: optional diagonal t for the extra nc2 target diag(t).
    """
    import torch  # local: metrics itself is numpy-only, the objective is evaluated by the torch model

    from ncverify.numerics.models import Params, forward, objective_parts

    Ws, H, b = _unpack(params)
    P = Params.from_numpy({"weights": Ws, "H": H, "b": b})
    parts = objective_parts(inst, P)
    with torch.no_grad():
        Z = forward(inst, P).numpy()
    M = len(Ws)
    W = product(Ws)
    centered = bool(inst.bias)
    notes: dict = {}

    metrics: dict = {}
    zero_W = _fro(W) <= zero_atol
    G = W @ W.T
    targets: list[tuple[str, Any]] = [("OF", "OF"), ("ETF", "ETF")]
    if gof_target is not None:
        targets.append(("GOF", gof_target))
    for name, t in targets:
        metrics[f"nc2_W_{name}"] = None if zero_W else _finite_or_none(nc2(G, t))
    metrics["nc2_W_diag"] = None if zero_W else _finite_or_none(nc2_diagonal(G))
    if zero_W:
        notes["W"] = COLLAPSED
    metrics.update(_geometry(H, W, inst, centered, global_mean, zero_atol, gof_target, "", notes))
    metrics["notes"] = notes

    # feature stages
    stages: list[tuple[str, np.ndarray, np.ndarray | None, str]] = []
    rest = lambda j: (product(Ws[j:]), " ".join(f"W_{i}" for i in range(M, j, -1)))  # noqa: E731
    cW, cname = rest(0)
    stages.append(("H_1", H, cW, cname))
    X = H
    for j in range(1, M):  # X = features entering W_{j+1}
        X = Ws[j - 1] @ X
        if inst.activation == "relu-deep":  # the DUFM: a ReLU after every layer but the last
            X = np.maximum(X, 0.0)
            cW, cname = rest(j)
            stages.append((f"h_{j} = s(W_{j} h_{j - 1}) (relu)", X, cW if j == M - 1 else None,
                           cname if j == M - 1 else ""))
        elif j == 1 and inst.activation is not None:
            stages.append(("W_1 H_1 (pre-activation)", X, None, ""))
            if inst.activation == "relu":
                X = np.maximum(X, 0.0)
            cW, cname = rest(1)
            stages.append((f"s(W_1 H_1) ({inst.activation})", X, cW, cname))
        else:
            cW, cname = rest(j)
            stages.append((f"H_{j + 1}", X, cW, cname))
    layers = []
    for name, X, cW, cname in stages:
        lnotes: dict = {}
        entry = {"name": name, "classifier": cname or None,
                 "class_mean_norms": [float(v) for v in np.linalg.norm(class_means(X, inst.counts), axis=0)]}
        entry.update(_geometry(X, cW, inst, centered, global_mean, zero_atol, gof_target, "", lnotes))
        entry["notes"] = lnotes
        layers.append(entry)

    # balancedness
    lam = list(inst.lam_w)
    pairs = []
    for j in range(M - 1):
        A = lam[j + 1] * Ws[j + 1].T @ Ws[j + 1]
        B = lam[j] * Ws[j] @ Ws[j].T
        pairs.append(_pair(f"W_{j + 2}, W_{j + 1}", A, B))
    pairs.append(_pair("W_1, H", lam[0] * Ws[0].T @ Ws[0], inst.lam_h * H @ H.T))

    return {
        "objective": parts["total"],
        "objective_parts": parts,
        "singular_values": {"weights_product": singular_values(W), "layers": [singular_values(w) for w in Ws],
                            "output": singular_values(Z)},
        "class_mean_norms": [float(v) for v in np.linalg.norm(class_means(H, inst.counts), axis=0)],
        "metrics": metrics,
        "layers": layers,
        "balancedness": {"pairs": pairs},
        "bias": None if b is None else [float(v) for v in b],
        "conventions": {"global_mean": global_mean, "nc1_rtol": NC1_RTOL, "zero_atol": zero_atol,
                        "class_mean_gram": "centered" if centered else "uncentered"},
    }


def _pair(name: str, A: np.ndarray, B: np.ndarray) -> dict:
    ab = _fro(A - B)
    scale = _fro(A) + _fro(B)
    return {"pair": name, "abs": ab, "rel": ab / scale if scale > 0 else 0.0}


# ---------------------------------------------------------------------------------------------
# distinct end points of a multi-start solve
# ---------------------------------------------------------------------------------------------
#: two end points are the same when their objectives agree to END_RTOL (relative)
END_RTOL = 1e-9


def distinct_end_points(inst: Instance, runs: Sequence[Any], rtol: float = END_RTOL,
                        zero_atol: float = ZERO_ATOL) -> list[dict]:
    """The distinct end points of solver runs (objects with ``objective``, ``start``, ``stop_reason``, ``params``),
    lowest objective first: runs whose objectives agree to ``rtol`` form one end point. For each: the objective
    (lowest of the group), the starts and stop reasons, the rank of W = W_M...W_1 (singular values above
    ``zero_atol`` * max(1, ||W||_2)) and the collapsed classes (rows k of W with ||w_k|| <= the same threshold:
    the model never predicts class k). Non-finite runs form one group with objective None."""
    finite = sorted((r for r in runs if math.isfinite(r.objective)), key=lambda r: r.objective)
    groups: list[list[Any]] = []
    for r in finite:
        if groups and abs(r.objective - groups[-1][0].objective) <= rtol * max(abs(r.objective), 1e-300):
            groups[-1].append(r)
        else:
            groups.append([r])
    out = []
    for g in groups:
        Ws, _, _ = _unpack(g[0].params)
        W = product(Ws)
        sv = np.linalg.svd(W, compute_uv=False) if W.size else np.zeros(0)
        thr = zero_atol * max(1.0, float(sv.max()) if sv.size else 0.0)
        rows = np.linalg.norm(W, axis=1)
        out.append({"objective": float(g[0].objective), "starts": [int(r.start) for r in g],
                    "stop_reasons": [r.stop_reason for r in g], "rank": int((sv > thr).sum()),
                    "collapsed_classes": [int(k) for k in range(inst.K) if rows[k] <= thr]})
    bad = [r for r in runs if not math.isfinite(r.objective)]
    if bad:
        out.append({"objective": None, "starts": [int(r.start) for r in bad], "stop_reasons": [r.stop_reason for r in bad],
                    "rank": None, "collapsed_classes": None})
    return out
