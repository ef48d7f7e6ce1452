"""Explicit matrices realizing a ``Prediction`` (issue 3, item 5), and their objective and gradient.

Symbols -> names: K classes with counts n_k (``inst.counts``), N = sum_k n_k, width d (``inst.width``),
depth M (``inst.depth``); W_1..W_M (``out["W"]``), H (``out["H"]``, d x N, samples class by class),
b (``out["b"]``, K x 1 or None); lambda_{W_j} = ``inst.lam_w[j-1]``, lambda_H = ``inst.lam_h``.

Layout (aligned, balanced factors; all invariants come from the prediction):

* "class" layout (bias-free MSE, extended UFM): mode k <-> class k. W_j = diag(s_{j,1..K}, 0..0)
  (d x d) for j < M, W_M = [diag(s_{M,1..K}) | 0] (K x d); class mean hbar_k = t_k e_k. Everything
  is non-negative with disjoint supports, so ReLU acts as the identity on s(W_1 H).
* "etf" layout (bias MSE, CE on the ETF): modes i = 1..K-1 <-> the exact Helmert basis u_1..u_{K-1}
  of the complement of 1_K. W_j = diag(s_{j,1..K-1}, 0..0) for j < M, W_M = sum_i s_{M,i} u_i e_i^T,
  Hbar = sum_i t_i e_i u_i^T, so W_M...W_1 Hbar = sum_i sigma_i t_i u_i u_i^T.

s_{j,i} = ``pred.singular_values["layers"][j-1][i]``; for the etf layout a list of K values must
contain one 0 (the 1_K direction; dropped), or have K-1 entries. The feature amplitudes t_i come
from ``features``:

* "prediction" (default): t_k = ``pred.class_mean_norms[k]`` (etf: t = ||hbar_1|| sqrt(K/(K-1)));
* "balanced": the balancedness of critical points, lambda_{W_1} s_{1,i}^2 = lambda_H n_i t_i^2;
* "argmin" (MSE only): H = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1_N^T), the minimizer over H for
  the constructed W = W_M...W_1 and b (the MSE stationarity condition dH = 0).

The returned dict also holds ``Hbar`` (d x K, the class means: H repeats class k's column n_k times; the
consistency checks and the float64 export work on it, so their cost does not grow with N), ``counts`` and
``consistency``: how far the prediction's own quantities are from each
other once realized (product singular values vs layers, class-mean norms vs the balancedness rule
and vs the argmin-H rule, ...), as mpmath numbers.
"""
from __future__ import annotations

from typing import Any, Sequence

import mpmath
import numpy as np
import sympy as sp

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.foc import SympyOps, matrix_gradients, objective_value
from ncverify.theory.objective import Spec, labels, spec_of

__all__ = [
    "helmert_basis", "layout_of", "construct", "to_float64", "construct_numpy", "NumpyOps", "evaluate",
    "exact_zero", "verify_construction",
]

_X = sp.Symbol("x")


# ----------------------------------------------------------------------------------------------
# bases and prediction fields
# ----------------------------------------------------------------------------------------------
def helmert_basis(K: int) -> sp.Matrix:
    """Exact K x K orthogonal matrix: columns u_1..u_{K-1} orthonormal and orthogonal to 1_K, u_K = 1_K/sqrt(K).

    u_i = (1, ..., 1, -i, 0, ..., 0)/sqrt(i(i+1)) with i ones.
    """
    Q = sp.zeros(K, K)
    for i in range(1, K):
        c = 1 / sp.sqrt(i * (i + 1))
        for r in range(i):
            Q[r, i - 1] = c
        Q[i, i - 1] = -i * c
    for r in range(K):
        Q[r, K - 1] = 1 / sp.sqrt(K)
    return Q


def layout_of(pred: Any, inst: Any) -> str:
    """"logits" when the prediction states the class-mean logit matrix itself (``gram_targets["WHbar"]`` with a
    matrix: a geometry other than the ETF, e.g. family ce-deep's codes), "etf" for a classification loss (CE and
    its variants: logits on the simplex ETF) or a model with a bias (rank K-1 geometry), otherwise "class"."""
    spec = spec_of(inst)
    target = (getattr(pred, "gram_targets", None) or {}).get("WHbar")
    if target is not None and getattr(target, "matrix", None) is not None:
        return "logits"
    if spec.loss != "mse" or spec.bias or getattr(pred, "family", "") in ("mse-deep-bias", "ce-deep-etf"):
        return "etf"
    return "class"


def _value(ex: Any, exact: bool, dps: int) -> Any:
    """An Exact's SymPy expression (exact) or its mpmath value; raw numbers are accepted too."""
    if exact:
        expr = getattr(ex, "expr", None)
        if expr is None:
            if isinstance(ex, (sp.Basic, int)):
                return sp.sympify(ex)
            raise _NoExact()
        return sp.sympify(expr)
    v = getattr(ex, "value", ex)
    return _mpf(v, dps)


class _NoExact(Exception):
    pass


class NotConstructible(TheoryInputError):
    """The prediction does not determine an explicit point for this instance (scales left free, a layout the
    construction does not cover, sizes that do not match); the message says which. Any other exception
    raised while constructing is a bug."""


def _mpf(v: Any, dps: int) -> mpmath.mpf:
    if isinstance(v, sp.Basic):
        if isinstance(v, sp.Rational):
            return mpmath.mpf(int(v.p)) / int(v.q)
        return mpmath.mpf(sp.N(v, dps + 10)._to_mpmath(mpmath.mp.prec + 40))
    if isinstance(v, float):
        return mpmath.mpf(repr(v))  # the decimal literal, like theory.objective.exact_number
    return mpmath.mpf(v)


def _is_zero_value(ex: Any) -> bool:
    v = getattr(ex, "value", ex)
    if isinstance(v, sp.Basic):
        return bool(v == 0 or sp.N(v, 30) == 0)
    return mpmath.mpf(v) == 0


def _per_mode(values: Sequence[Any], K: int, layout: str, what: str) -> list[Any]:
    values = list(values)
    if layout == "class":
        if len(values) != K:
            raise NotConstructible(f"{what}: expected one value per class (K = {K}), got {len(values)}")
        return values
    if len(values) == K - 1:
        return values
    if len(values) == K:
        zeros = [i for i, v in enumerate(values) if _is_zero_value(v)]
        if not zeros:
            raise NotConstructible(f"{what}: the simplex-ETF geometry has rank K-1, but the prediction lists K = {K} "
                             "nonzero values (expected one zero, the 1_K direction)")
        drop = zeros[-1]
        return [v for i, v in enumerate(values) if i != drop]
    raise NotConstructible(f"{what}: expected K-1 = {K - 1} (or K with one zero) values, got {len(values)}")


# ----------------------------------------------------------------------------------------------
# construction
# ----------------------------------------------------------------------------------------------
class _Kit:
    """Number kind of a construction: exact SymPy or mpmath (numpy object arrays)."""

    def __init__(self, exact: bool, dps: int):
        self.exact, self.dps = exact, dps

    def zeros(self, r: int, c: int) -> Any:
        if self.exact:
            return sp.zeros(r, c)
        return np.array([[mpmath.mpf(0)] * c for _ in range(r)], dtype=object).reshape(r, c)

    def num(self, x: Any) -> Any:
        return sp.sympify(x) if self.exact else _mpf(x, self.dps)

    def sqrt(self, x: Any) -> Any:
        return sp.sqrt(x) if self.exact else mpmath.sqrt(x)

    def matrix(self, A: sp.Matrix) -> Any:
        if self.exact:
            return A
        return np.array([[self.num(A[i, j]) for j in range(A.cols)] for i in range(A.rows)], dtype=object).reshape(A.shape)


def construct(pred: Any, inst: Any, exact: bool = True, features: str = "prediction") -> dict[str, Any]:
    """Matrices W_1..W_M, H, b realizing ``pred`` for ``inst`` (see the module docstring).

    exact=True: SymPy matrices with exact entries when every needed ``Exact.expr`` exists (otherwise,
    and for exact=False, numpy object arrays of mpmath numbers at ``pred.dps`` digits).
    Returns {"W": [...], "H", "b", "backend": "sympy"|"mpmath", "layout", "modes", "features",
    "consistency": {...}}. Raises ValueError naming the violated condition (d >= K, ...).
    """
    spec = spec_of(inst)
    K, d = spec.K, spec.width
    if d < K:
        raise NotConstructible(f"the aligned construction needs width d >= K, got d = {d} < K = {K}")
    if features not in ("prediction", "balanced", "argmin"):
        raise ValueError(f"features must be 'prediction', 'balanced' or 'argmin', got {features!r}")
    if features == "argmin" and spec.loss != "mse":
        raise NotConstructible("features='argmin' (H = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1^T)) needs the MSE loss")
    dps = int(getattr(pred, "dps", 40) or 40)
    if layout_of(pred, spec) == "logits":  # an SVD in mpmath: no exact entries
        with mpmath.workdps(dps):
            return _construct_logits(pred, spec, _Kit(False, dps))
    if exact:
        try:
            return _construct(pred, spec, _Kit(True, dps), features)
        except _NoExact:
            pass
    with mpmath.workdps(dps):
        return _construct(pred, spec, _Kit(False, dps), features)


def _construct(pred: Any, spec: Spec, kit: _Kit, features: str) -> dict[str, Any]:
    K, d, M = spec.K, spec.width, spec.depth
    layout = layout_of(pred, spec)
    if layout == "etf" and spec.activation == "relu":
        raise NotConstructible("the ReLU construction needs non-negative features with disjoint supports; "
                                  "the simplex-ETF layout (bias or CE) does not provide them")
    if layout == "etf" and not len(set(spec.counts)) == 1:
        raise NotConstructible(f"the simplex-ETF layout needs balanced classes, got counts {list(spec.counts)}")
    U = sp.eye(K) if layout == "class" else helmert_basis(K)[:, : K - 1]
    m = U.cols
    layers = pred.singular_values.layers
    if layers is None:
        raise NotConstructible("the prediction states no singular values of the layers W_j (their scales are left free)")
    if len(layers) != M:
        raise NotConstructible(f"the prediction has {len(layers)} layers of singular values, the instance depth M = {M}")
    s = [[_value(v, kit.exact, kit.dps) for v in _per_mode(layers[j], K, layout, f"layer {j + 1} singular values")]
         for j in range(M)]
    lam_w = [kit.num(v) for v in spec.lam_w]
    lam_h = kit.num(spec.lam_h)
    n_mode = list(spec.counts) if layout == "class" else [spec.counts[0]] * m

    # weights
    Ws = []
    for j in range(M):
        rows = K if j == M - 1 else d
        W = kit.zeros(rows, d)
        for i in range(m):
            if j == M - 1:
                for r in range(K):
                    if U[r, i] != 0:
                        W[r, i] = kit.num(U[r, i]) * s[j][i]
            else:
                W[i, i] = s[j][i]
        Ws.append(W)

    # bias
    b = None
    if spec.bias:
        if pred.bias is None:
            raise NotConstructible("the instance has a bias but the prediction gives none")
        b = kit.zeros(K, 1)
        for k, v in enumerate(pred.bias):
            b[k, 0] = _value(v, kit.exact, kit.dps)

    # features
    # a prediction may state no class-mean norms (then only features="balanced"/"argmin" can build H)
    t_pred = _t_from_norms(pred, spec, layout, kit, m) if pred.class_mean_norms is not None else None
    if features == "prediction" and t_pred is None:
        raise NotConstructible("the prediction states no class-mean norms: use features='balanced' or 'argmin'")
    t_bal = [s[0][i] * kit.sqrt(lam_w[0] / (n_mode[i] * lam_h)) for i in range(m)]
    if features == "prediction":
        t = t_pred
    elif features == "balanced":
        t = t_bal
    else:
        t = None
        Hbar = _argmin_Hbar(spec, Ws, b, kit)
    if features != "argmin":
        Hbar = kit.zeros(d, K)
        for i in range(m):
            for k in range(K):
                if U[k, i] != 0:
                    Hbar[i, k] = t[i] * kit.num(U[k, i])
    H = _expand_classes(Hbar, spec.counts, kit)

    out = {"W": Ws, "H": H, "Hbar": Hbar, "counts": list(spec.counts), "b": b,
           "backend": "sympy" if kit.exact else "mpmath", "layout": layout, "modes": m, "features": features}
    out["consistency"] = _consistency(pred, spec, out, s, t_pred, t_bal, kit)
    return out


def _construct_logits(pred: Any, spec: Spec, kit: _Kit) -> dict[str, Any]:
    """"logits" layout (balanced classes): Zbar = U diag(S) V^T (mpmath SVD of ``gram_targets["WHbar"].matrix``),
    so Z = Zbar (x) 1_n^T has singular values sqrt(n) S, right vectors V (x) 1_n / sqrt(n). Mode i (S_i > 0, in
    decreasing order) <-> width coordinate e_i: W_j = diag(s_{j,i}) for j < M, W_M = sum_i s_{M,i} u_i e_i^T, and a
    sample of class k has features sum_i h_i V_{k,i} / sqrt(n) e_i, with s_{j,i} the prediction's layer singular
    values and h_i its feature singular values (both in decreasing order)."""
    K, d, M = spec.K, spec.width, spec.depth
    if len(set(spec.counts)) != 1:
        raise NotConstructible(f"the logits layout needs balanced classes, got counts {list(spec.counts)}")
    if spec.bias or spec.activation == "relu":
        raise NotConstructible("the logits layout covers the bias-free deep linear model only")
    sv = pred.singular_values
    if sv.layers is None or sv.features is None or len(sv.layers) != M:
        raise NotConstructible("the logits layout needs the singular values of every layer and of H")
    n = spec.counts[0]
    Zb = mpmath.matrix([[_mpf(x, kit.dps) for x in row] for row in pred.gram_targets["WHbar"].matrix])
    U, S, V = mpmath.svd_r(Zb)  # Zb = U diag(S) V (V holds the right vectors as rows)
    order = sorted(range(K), key=lambda i: -S[i])
    tiny = mpmath.mpf(10) ** (-(kit.dps - 10)) * max(1, max(abs(S[i]) for i in range(K)))
    modes = [i for i in order if S[i] > tiny]
    r = len(modes)
    layers = [sorted((_mpf(_value(v, False, kit.dps), kit.dps) for v in sv.layers[j]), reverse=True)[:r]
              for j in range(M)]
    h = sorted((_mpf(_value(v, False, kit.dps), kit.dps) for v in sv.features), reverse=True)[:r]
    Ws = []
    for j in range(M):
        W = kit.zeros(K if j == M - 1 else d, d)
        for a, i in enumerate(modes):
            if j == M - 1:
                for row in range(K):
                    W[row, a] = U[row, i] * layers[j][a]
            else:
                W[a, a] = layers[j][a]
        Ws.append(W)
    Hbar = kit.zeros(d, K)
    for a, i in enumerate(modes):
        for k in range(K):
            Hbar[a, k] = h[a] * V[i, k] / mpmath.sqrt(n)
    H = _expand_classes(Hbar, spec.counts, kit)
    # consistency: the realized logit singular values sqrt(n) S_i against prod_j s_{j,i} h_i
    res = {"logit_singular_values_vs_factors": max(
        (abs(mpmath.sqrt(n) * S[i] - mpmath.fprod(layers[j][a] for j in range(M)) * h[a]) for a, i in enumerate(modes)),
        default=mpmath.mpf(0))}
    return {"W": Ws, "H": H, "Hbar": Hbar, "counts": list(spec.counts), "b": None, "backend": "mpmath", "layout": "logits", "modes": r,
            "features": "prediction",
            "consistency": res}


def _t_from_norms(pred: Any, spec: Spec, layout: str, kit: _Kit, m: int) -> list[Any]:
    norms = [_value(v, kit.exact, kit.dps) for v in pred.class_mean_norms]
    if len(norms) != spec.K:
        raise NotConstructible(f"class_mean_norms: expected K = {spec.K} values, got {len(norms)}")
    if layout == "class":
        return norms
    if m == 0:
        return []
    # ||hbar_k||^2 = t^2 sum_i u_i[k]^2 = t^2 (K-1)/K for equal mode amplitudes t
    return [norms[0] * kit.sqrt(kit.num(sp.Rational(spec.K, spec.K - 1)))] * m


def _expand_classes(Hbar: Any, counts: Sequence[int], kit: _Kit) -> Any:
    d = Hbar.shape[0]
    H = kit.zeros(d, int(sum(counts)))
    col = 0
    for k, n_k in enumerate(counts):
        for _ in range(n_k):
            for r in range(d):
                H[r, col] = Hbar[r, k]
            col += 1
    return H


def _product(Ws: Sequence[Any]) -> Any:
    P = Ws[-1]
    for W in reversed(Ws[:-1]):
        P = P @ W if not isinstance(P, sp.MatrixBase) else P * W
    return P


def _argmin_Hbar(spec: Spec, Ws: Sequence[Any], b: Any, kit: _Kit) -> Any:
    """The class means of H = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1^T), W = W_M...W_1 (MSE, linear activations):
    a sample's column depends on its class k only (Y's column is e_k), so Hbar = G^{-1} W^T (I_K - b 1_K^T) with
    G = W^T W + N lambda_H I (d x K; H is Hbar with class k's column repeated n_k times). G is inverted entrywise
    when it is exactly diagonal, otherwise through the push-through identity G^{-1} W^T = W^T (W W^T + N lambda_H I_K)^{-1}."""
    if spec.activation == "relu":
        raise NotConstructible("features='argmin' uses the linear model; not available with ReLU")
    W = _product(Ws)
    N, d, K = spec.N, spec.width, spec.K
    if kit.exact:
        T = sp.eye(K) - (b * sp.ones(1, K) if b is not None else sp.zeros(K, K))
        G = W.T * W + N * spec.lam_h * sp.eye(d)
        return (G.inv() * W.T * T).applyfunc(sp.radsimp)
    T = kit.matrix(sp.eye(K)) - (b @ np.array([[mpmath.mpf(1)] * K], dtype=object) if b is not None else 0)
    c = N * kit.num(spec.lam_h)
    WtW = W.T @ W
    if all(WtW[i, j] == 0 for i in range(d) for j in range(d) if i != j):  # G diagonal (every aligned layout)
        return np.array([[1 / (WtW[i, i] + c)] for i in range(d)], dtype=object) * (W.T @ T)
    # push-through: (W^T W + c I_d)^{-1} W^T = W^T (W W^T + c I_K)^{-1}, a K x K inverse instead of d x d
    Gi = mpmath.matrix((W @ W.T).tolist()) + c * mpmath.eye(K)
    return W.T @ (np.array((Gi ** -1).tolist(), dtype=object).reshape(K, K) @ T)


def _consistency(pred: Any, spec: Spec, out: dict[str, Any], s: list[list[Any]], t_pred: list[Any],
                 t_bal: list[Any], kit: _Kit) -> dict[str, Any]:
    """|differences| between the prediction's fields once realized (mpmath numbers at pred.dps)."""
    dps = kit.dps
    with mpmath.workdps(dps):
        def f(x: Any) -> mpmath.mpf:
            return _mpf(x, dps)

        res: dict[str, Any] = {}
        layout = out["layout"]
        K, m = spec.K, out["modes"]
        wp = pred.singular_values.weights_product
        if wp is not None:
            try:
                sig = [f(_value(v, False, dps)) for v in _per_mode(wp, K, layout, "weights_product")]
                prod = [mpmath.fprod(f(s[j][i]) for j in range(spec.depth)) for i in range(m)]
                res["weights_product_vs_layers"] = max((abs(a - c) for a, c in zip(sig, prod)), default=mpmath.mpf(0))
            except ValueError as e:
                res["weights_product_vs_layers"] = f"not comparable: {e}"
        if t_pred is not None:
            res["class_mean_norms_vs_balancedness"] = max((abs(f(a) - f(c)) for a, c in zip(t_pred, t_bal)),
                                                          default=mpmath.mpf(0))
        Hn = _to_mp_array(out["Hbar"], dps)  # class means (every sample of a class has its class's column)
        cols = [mpmath.sqrt(mpmath.fsum(Hn[r, k] ** 2 for r in range(Hn.shape[0]))) for k in range(spec.K)]
        if pred.class_mean_norms is not None:
            res["class_mean_norms_realized_vs_predicted"] = max(
                abs(a - f(_value(v, False, dps))) for a, v in zip(cols, pred.class_mean_norms))
        if spec.loss == "mse" and spec.activation != "relu":
            kitn = _Kit(False, dps)
            Wn = [_to_mp_array(W, dps) for W in out["W"]]
            bn = _to_mp_array(out["b"], dps) if out["b"] is not None else None
            Ha = _argmin_Hbar(spec, Wn, bn, kitn)
            res["H_vs_argmin_H"] = max(abs(x) for x in (Hn - Ha).flat) if Hn.size else mpmath.mpf(0)
        return res


def _to_mp_array(A: Any, dps: int) -> np.ndarray:
    if isinstance(A, sp.MatrixBase):
        return np.array([[_mpf(A[i, j], dps) for j in range(A.cols)] for i in range(A.rows)],
                        dtype=object).reshape(A.shape)
    A = np.asarray(A)
    return np.vectorize(lambda x: _mpf(x, dps), otypes=[object])(A) if A.size else A.astype(object)


def to_float64(matrices: dict[str, Any]) -> dict[str, Any]:
    """The same dict with W_j, H, b as numpy float64 arrays (backend "float64")."""
    def conv(A: Any) -> np.ndarray | None:
        if A is None:
            return None
        if isinstance(A, sp.MatrixBase):
            return np.array([[float(sp.N(A[i, j], 20)) for j in range(A.cols)] for i in range(A.rows)],
                            dtype=np.float64).reshape(A.shape)
        return np.vectorize(float, otypes=[np.float64])(np.asarray(A)) if np.asarray(A).size else \
            np.asarray(A, dtype=np.float64)
    out = dict(matrices)
    Hbar = conv(matrices.get("Hbar"))
    counts = matrices.get("counts")
    # H repeats class k's column of Hbar n_k times: convert the d x K class means, not the d x N samples
    H = np.repeat(Hbar, counts, axis=1) if Hbar is not None and counts is not None else conv(matrices["H"])
    out.update(W=[conv(W) for W in matrices["W"]], H=H, Hbar=Hbar, b=conv(matrices.get("b")), backend="float64")
    return out


def construct_numpy(pred: Any, inst: Any, features: str = "prediction") -> dict[str, Any]:
    """``construct(pred, inst, exact=False)`` exported as numpy float64 arrays (for the numerics)."""
    return to_float64(construct(pred, inst, exact=False, features=features))


# ----------------------------------------------------------------------------------------------
# evaluation: objective and gradients
# ----------------------------------------------------------------------------------------------
class NumpyOps:
    """Matrix operations on numpy arrays: float64, or dtype=object arrays of mpmath numbers ("mpmath")."""

    def __init__(self, kind: str = "float64", dps: int = 50):
        if kind not in ("float64", "mpmath"):
            raise ValueError(f"kind must be float64 or mpmath, got {kind!r}")
        self.name, self.kind, self.dps = kind, kind, dps
        self.dtype = np.float64 if kind == "float64" else object

    def num(self, x: Any) -> Any:
        return float(_mpf(x, 20)) if self.kind == "float64" else _mpf(x, self.dps)

    def eye(self, n: int) -> np.ndarray:
        A = np.zeros((n, n), dtype=self.dtype) if self.kind == "float64" else self._z(n, n)
        for i in range(n):
            A[i, i] = self.num(1)
        return A

    def _z(self, r: int, c: int) -> np.ndarray:
        return np.array([[mpmath.mpf(0)] * c for _ in range(r)], dtype=object).reshape(r, c)

    def ones(self, n: int) -> np.ndarray:
        return np.ones((n, 1), dtype=np.float64) if self.kind == "float64" else \
            np.array([[mpmath.mpf(1)] for _ in range(n)], dtype=object).reshape(n, 1)

    def labels(self, counts: Sequence[int]) -> np.ndarray:
        Y = labels(counts)
        out = np.zeros(Y.shape, dtype=np.float64) if self.kind == "float64" else self._z(*Y.shape)
        for i in range(Y.rows):
            for j in range(Y.cols):
                out[i, j] = self.num(int(Y[i, j]))
        return out

    def _map(self, f: Any, A: np.ndarray) -> np.ndarray:
        if A.size == 0:
            return A
        return np.vectorize(f, otypes=[self.dtype])(A)

    def hadamard(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return A * B

    def relu(self, A: np.ndarray) -> np.ndarray:
        zero = self.num(0)
        return self._map(lambda z: z if z > 0 else zero, A)

    def relu_prime(self, A: np.ndarray) -> np.ndarray:
        one, zero, half = self.num(1), self.num(0), self.num(1) / 2  # SymPy's Heaviside(0) = 1/2
        return self._map(lambda z: one if z > 0 else (zero if z < 0 else half), A)

    def sq(self, A: np.ndarray) -> Any:
        return np.sum(A * A) if A.size else self.num(0)

    def _exp(self, x: Any) -> Any:
        return np.exp(x) if self.kind == "float64" else mpmath.exp(x)

    def _log(self, x: Any) -> Any:
        return np.log(x) if self.kind == "float64" else mpmath.log(x)

    def softmax(self, Z: np.ndarray) -> np.ndarray:
        P = Z.copy()
        for i in range(Z.shape[1]):
            col = Z[:, i]
            mx = max(col)
            e = [self._exp(z - mx) for z in col]
            tot = sum(e[1:], e[0])
            for c in range(Z.shape[0]):
                P[c, i] = e[c] / tot
        return P

    def logsumexp_minus_true(self, Z: np.ndarray, Y: np.ndarray) -> Any:
        total = self.num(0)
        for i in range(Z.shape[1]):
            col = Z[:, i]
            k = int(max(range(Z.shape[0]), key=lambda r: Y[r, i]))
            mx = max(col)
            total = total + mx + self._log(sum((self._exp(z - mx) for z in col), self.num(0))) - col[k]
        return total


def _backend_of(matrices: dict[str, Any]) -> str:
    H = matrices["H"]
    if isinstance(H, sp.MatrixBase):
        return "sympy"
    H = np.asarray(H)
    return "mpmath" if H.dtype == object else "float64"


def _simp(e: sp.Expr) -> sp.Expr:
    return sp.radsimp(sp.expand(e))


def evaluate(inst: Any, matrices: dict[str, Any], backend: str | None = None, dps: int = 50,
             split: bool = False) -> tuple[Any, dict[str, Any]]:
    """(objective, gradients) at W_1..W_M, H, b = matrices["W"], ["H"], ["b"].

    backend: "sympy" (exact, matrix-form gradients confirmed by ``theory.foc``), "sympy-entrywise"
    (differentiate the objective entry by entry, small sizes only), "mpmath" (``dps`` digits) or
    "float64"; default from the matrices' type. gradients = {"W": [dW_1..dW_M], "H": dH, "b": db};
    ``split`` adds the data / penalty parts (numeric backends, for tolerances).
    """
    spec = spec_of(inst)
    backend = backend or _backend_of(matrices)
    Ws, H, b = list(matrices["W"]), matrices["H"], matrices.get("b")
    if spec.bias and b is None:
        raise ValueError("the instance has a bias; the matrices have none")
    if not spec.bias:
        b = None
    if backend == "sympy":
        ops = SympyOps(stable_softmax=True, simplify=_simp)
        f = objective_value(spec, Ws, H, b, ops)
        g = matrix_gradients(spec, Ws, H, b, ops, split=split)
        return f, g
    if backend == "sympy-entrywise":
        from ncverify.theory.foc import entrywise_gradients
        from ncverify.theory.objective import objective_from_spec, symbolic_params
        Wsym, Hsym, bsym = symbolic_params(spec.K, spec.width, spec.N, spec.depth, spec.bias)
        fs = objective_from_spec(spec, Wsym, Hsym, bsym)
        sub = {}
        for A, B in list(zip(Wsym, Ws)) + [(Hsym, H)] + ([(bsym, b)] if b is not None else []):
            for i in range(A.rows):
                for j in range(A.cols):
                    sub[A[i, j]] = sp.sympify(B[i, j])
        G = entrywise_gradients(fs, Wsym, Hsym, bsym)
        return (fs.xreplace(sub),
                {"W": [Gj.xreplace(sub) for Gj in G["W"]], "H": G["H"].xreplace(sub),
                 "b": G["b"].xreplace(sub) if G["b"] is not None else None})
    if backend in ("mpmath", "float64"):
        ops = NumpyOps(backend, dps)
        ctx = mpmath.workdps(dps) if backend == "mpmath" else _nullctx()
        with ctx:
            if backend == "mpmath":
                conv = lambda A: _to_mp_array(A, dps) if A is not None else None  # noqa: E731
            else:
                conv = lambda A: to_float64({"W": [], "H": A})["H"] if A is not None else None  # noqa: E731
            Ws2, H2, b2 = [conv(W) for W in Ws], conv(H), conv(b)
            f = objective_value(spec, Ws2, H2, b2, ops)
            g = matrix_gradients(spec, Ws2, H2, b2, ops, split=split)
        return f, g
    raise ValueError(f"unknown backend {backend!r}")


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


# ----------------------------------------------------------------------------------------------
# exact zero tests and the one-call verification
# ----------------------------------------------------------------------------------------------
def _crootof_reduces_to_zero(e: sp.Expr) -> bool:
    """Exact zero test for expressions in algebraic numbers: CRootOf(p_i), radicals of rationals, powers.

    Each positive root r_i appearing with exponents of common denominator q_i is written z_i^{q_i}
    (z_i > 0), each radical b^(p/q) of a positive rational b is written u_b^{p Q_b / q} with
    u_b^{Q_b} = b. The expression is put over a common denominator and its numerator reduced modulo
    {p_i(z_i^{q_i}), u_b^{Q_b} - b} (a Groebner basis: univariate in distinct variables) over QQ. A zero
    remainder proves e = 0 (the numerator lies in an ideal vanishing at the point); otherwise the test
    is inconclusive and returns False.
    """
    try:
        pows = [a for a in e.atoms(sp.Pow) if a.exp.is_Rational and not a.exp.is_Integer]
        rad_den: dict[sp.Expr, int] = {}
        root_den: dict[sp.Expr, int] = {r: 1 for r in e.atoms(sp.CRootOf)}
        for a in pows:
            if a.base.is_Rational and a.base > 0:
                rad_den[a.base] = int(sp.ilcm(rad_den.get(a.base, 1), a.exp.q))
            elif isinstance(a.base, sp.CRootOf):
                root_den[a.base] = int(sp.ilcm(root_den.get(a.base, 1), a.exp.q))
        gens, polys = [], []
        sub_rad = {}
        for i, (bse, Q) in enumerate(sorted(rad_den.items(), key=lambda kv: sp.default_sort_key(kv[0]))):
            u = sp.Symbol(f"_u{i}", positive=True)
            gens.append(u)
            polys.append(u ** Q - bse)
            for a in pows:
                if a.base == bse:
                    sub_rad[a] = u ** int(a.exp * Q)
        sub_root = {}
        for i, (r, q) in enumerate(sorted(root_den.items(), key=lambda kv: sp.default_sort_key(kv[0]))):
            z = sp.Symbol(f"_z{i}", positive=True)
            p = r.poly.as_expr().subs(r.poly.gen, _X)
            if q > 1 and not r.is_positive:
                return False
            sub_root[r] = z ** q
            polys.append(sp.expand(p.subs(_X, z ** q)))
            gens.append(z)
        e2 = e.xreplace(sub_rad).xreplace(sub_root)
        num, _den = sp.fraction(sp.together(e2))
        num = sp.expand(num)
        if num == 0:
            return True
        if num.atoms(sp.CRootOf) or any(not g.is_Symbol for g in sp.Poly(num, *gens).gens):
            return False
        _q, rem = sp.reduced(num, polys, *gens, domain=sp.QQ)
        return sp.expand(rem) == 0
    except Exception:  # not polynomial in the generators, unsupported domain, ...
        return False


def exact_zero(e: Any, digits: int = 60) -> str:
    """"zero" (proved: simplification or minimal polynomial x), "nonzero" (evaluated), or "unknown".

    "unknown" means |e| < 10^-(digits-20) numerically but no exact proof was found.
    """
    e = sp.sympify(e)
    if e == 0:
        return "zero"
    v = e.evalf(digits)
    if v.is_Number and v != 0 and abs(v) > sp.Float(10) ** (-(digits - 20)):
        return "nonzero"
    for attempt in (lambda: sp.expand(e), lambda: sp.radsimp(sp.expand(e))):
        try:
            if attempt() == 0:
                return "zero"
        except Exception:  # pragma: no cover - SymPy internals
            pass
    if not e.has(sp.exp, sp.log) and _crootof_reduces_to_zero(e):
        return "zero"
    if not e.has(sp.exp, sp.log):
        try:
            mp_ = sp.minimal_polynomial(e, _X)
            return "zero" if sp.Poly(mp_, _X) == sp.Poly(_X, _X) else "nonzero"
        except Exception:
            pass
    try:
        if sp.simplify(sp.expand_log(e, force=True)) == 0:
            return "zero"
    except Exception:  # pragma: no cover
        pass
    try:
        if e.equals(0):
            return "zero"
    except Exception:  # pragma: no cover
        pass
    return "unknown"


def _flat(g: dict[str, Any]) -> list[Any]:
    items: list[Any] = []
    for A in list(g["W"]) + [g["H"]] + ([g["b"]] if g.get("b") is not None else []):
        if isinstance(A, sp.MatrixBase):
            items.extend(list(A))
        else:
            items.extend(list(np.asarray(A).flat))
    return items


def verify_construction(pred: Any, inst: Any, exact: bool = True, backend: str | None = None,
                        features: str = "prediction", matrices: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build (or take) the predicted point and check: objective == pred.objective and gradient == 0.

    backend None: "sympy" when the construction is exact, else "mpmath" at pred.dps; "float64" uses
    the float64 export. Tolerances: exact -> proofs (``exact_zero``); mpmath -> 10^-(dps-10) times the
    scale; float64 -> 64 eps times the scale (scale = 1 + largest data/penalty gradient part or |f*|).
    """
    dps = int(getattr(pred, "dps", 40) or 40)
    if matrices is None:
        matrices = construct(pred, inst, exact=exact and backend in (None, "sympy", "sympy-entrywise"), features=features)
    if backend is None:
        backend = matrices["backend"] if matrices["backend"] != "float64" else "float64"
    if backend == "float64" and matrices["backend"] != "float64":
        matrices = to_float64(matrices)
    rep: dict[str, Any] = {"backend": backend, "layout": matrices.get("layout"), "features": features,
                           "consistency": matrices.get("consistency")}
    if backend.startswith("sympy"):
        f, g = evaluate(inst, matrices, backend=backend)
        fstar = pred.objective.expr if pred.objective.expr is not None else None
        if fstar is None:
            raise ValueError("exact verification needs pred.objective.expr")
        rep["objective"] = f
        rep["predicted"] = fstar
        rep["objective_status"] = exact_zero(f - fstar)
        rep["objective_equal"] = rep["objective_status"] == "zero"
        cache: dict[Any, str] = {}
        statuses = []
        for x in _flat(g):
            if x not in cache:
                cache[x] = exact_zero(x)
            statuses.append(cache[x])
        rep["gradient_status"] = {k: statuses.count(k) for k in ("zero", "nonzero", "unknown")}
        rep["gradient_zero"] = all(st == "zero" for st in statuses)
        rep["max_abs_gradient"] = max((abs(sp.N(x, 30)) for x in _flat(g)), default=0)
        rep["objective_difference"] = abs(sp.N(f - fstar, 40))
        rep["tolerance"] = 0
        rep["tolerance_source"] = "exact (SymPy proof of equality / of zero)"
        return rep
    ndps = dps if backend == "mpmath" else 17
    f, g = evaluate(inst, matrices, backend=backend, dps=ndps, split=True)
    with mpmath.workdps(ndps):
        fstar = _mpf(pred.objective.value, ndps)
        parts = _flat(g["data"]) + _flat(g["penalty"])
        scale = 1 + max((abs(_mpf(x, ndps) if backend == "mpmath" else float(x)) for x in parts if x is not None),
                        default=0)
        fscale = 1 + abs(fstar)
        if backend == "mpmath":
            tol = mpmath.mpf(10) ** (-(dps - 10))
            src = f"10^-(dps-10) with dps = {dps} (the prediction's precision), times the scale"
        else:
            tol = 64 * float(np.finfo(np.float64).eps)
            src = "64 * float64 eps, times the scale (1 + largest data/penalty gradient part, or 1 + |f*|)"
        gmax = max((abs(x) for x in _flat(g)), default=0)
        rep.update(objective=f, predicted=fstar, objective_difference=abs(f - fstar),
                   objective_equal=bool(abs(f - fstar) <= tol * fscale), max_abs_gradient=gmax,
                   gradient_zero=bool(gmax <= tol * scale), tolerance=tol * scale, tolerance_source=src)
    return rep
