"""SymPy versions of the full matrix objectives of ../shared/THEOREMS.md (never torch).

Notation -> argument names: K classes with counts n_k (``counts``), N = sum_k n_k, width d,
depth M; ``Ws = [W_1, ..., W_M]`` (W_j is d x d for j < M, W_M is K x d), ``H`` (d x N, samples
ordered class by class), ``b`` (K x 1 or None), lambda_{W_j} = ``lam_w[j-1]``, lambda_H = ``lam_h``,
lambda_b = ``lam_b``.

Normalizations (part of the claims, never changed silently):

* MSE:  f = 1/(2N) ||W_M...W_1 H (+ b 1_N^T) - Y||_F^2 + sum_j lambda_{W_j}/2 ||W_j||_F^2
  + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2; lambda_b = 0 is an unregularized bias).
* CE:   f = (1/N) sum_{k,i} [log sum_c exp(z_{c,(k,i)}) - z_{k,(k,i)}] + the same penalties,
  where z = W_M...W_1 H (+ b 1_N^T) are the logits.
* Extended UFM ([P2]): the entrywise map s (identity, or ReLU = ``Max(0, .)``) sits between W_1 and
  W_2, the output is W_M...W_2 s(W_1 H) (+ b 1_N^T); penalties unchanged.

Instances are read by duck typing (``counts, width, depth, lam_w, lam_h, loss, bias, lam_b,
activation``); numeric parameters given as Python floats are converted with ``exact_number``
(the decimal literal of the float, so 1e-3 -> 1/1000). SymPy values (also Symbols) pass through.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import sympy as sp

__all__ = [
    "Spec", "exact_number", "spec_of", "labels", "ones", "relu", "activate", "chain",
    "outputs", "data_term", "penalty", "objective", "objective_from_spec", "symbolic_params",
    "symbolic_lambdas", "symbolic_spec",
]


def exact_number(v: Any) -> sp.Expr:
    """Exact SymPy number for a parameter: floats via their shortest decimal repr (1e-3 -> 1/1000).

    ints -> Integer, Fraction -> Rational, SymPy expressions unchanged.
    """
    if isinstance(v, sp.Basic):
        return v  # type: ignore[return-value]
    if isinstance(v, bool):
        raise TypeError("a boolean is not a parameter value")
    if isinstance(v, int):
        return sp.Integer(v)
    if isinstance(v, Fraction):
        return sp.Rational(v.numerator, v.denominator)
    if isinstance(v, float):
        return sp.Rational(repr(v))
    return sp.sympify(v)


@dataclass(frozen=True)
class Spec:
    """Everything the objective needs, in exact SymPy form.

    counts = (n_1..n_K); lam_w = (lambda_{W_1}..lambda_{W_M}); lam_h = lambda_H; bias: has b;
    lam_b = lambda_b; loss in {"mse", "ce"}; activation in {None, "identity", "relu"}.
    """

    counts: tuple[int, ...]
    width: int
    depth: int
    lam_w: tuple[sp.Expr, ...]
    lam_h: sp.Expr
    loss: str = "mse"
    bias: bool = False
    lam_b: sp.Expr = sp.Integer(0)
    activation: str | None = None

    @property
    def K(self) -> int:
        return len(self.counts)

    @property
    def N(self) -> int:
        return int(sum(self.counts))


def spec_of(inst: Any) -> Spec:
    """Read an instance-like object (duck typing) into an exact ``Spec``."""
    if isinstance(inst, Spec):
        return inst
    depth = int(inst.depth)
    lam_w = inst.lam_w
    if not isinstance(lam_w, (tuple, list)):
        lam_w = (lam_w,) * depth
    if len(lam_w) != depth:
        raise ValueError(f"need one lambda_W per layer: depth M = {depth} but {len(lam_w)} values")
    return Spec(
        counts=tuple(int(c) for c in inst.counts),
        width=int(inst.width),
        depth=depth,
        lam_w=tuple(exact_number(v) for v in lam_w),
        lam_h=exact_number(inst.lam_h),
        loss=str(getattr(inst, "loss", "mse")),
        bias=bool(getattr(inst, "bias", False)),
        lam_b=exact_number(getattr(inst, "lam_b", 0) or 0),
        activation=getattr(inst, "activation", None),
    )


def labels(counts: Sequence[int]) -> sp.Matrix:
    """Y in {0,1}^{K x N}: one-hot columns, samples ordered class by class (class k = row k-1)."""
    K, N = len(counts), int(sum(counts))
    Y = sp.zeros(K, N)
    col = 0
    for k, n_k in enumerate(counts):
        for _ in range(int(n_k)):
            Y[k, col] = 1
            col += 1
    return Y


def ones(n: int) -> sp.Matrix:
    """The all-ones column 1_n."""
    return sp.ones(n, 1)


def relu(x: sp.Expr) -> sp.Expr:
    """ReLU as SymPy ``Max(0, x)``."""
    return sp.Max(0, x)


def activate(A: sp.Matrix, activation: str | None) -> sp.Matrix:
    """Entrywise s(A): identity for None / "identity", ReLU for "relu"."""
    if activation in (None, "identity"):
        return A
    if activation == "relu":
        return A.applyfunc(relu)
    raise ValueError(f"unknown activation {activation!r}")


def chain(Ws: Sequence[sp.Matrix], lo: int, hi: int, size: int | None = None) -> sp.Matrix:
    """W_hi ... W_lo (1-based, inclusive); the identity of the given ``size`` when hi < lo."""
    if hi < lo:
        if size is None:
            raise ValueError("empty product needs a size")
        return sp.eye(size)
    P = Ws[hi - 1]
    for j in range(hi - 1, lo - 1, -1):
        P = P * Ws[j - 1]
    return P


def outputs(spec: Spec, Ws: Sequence[sp.Matrix], H: sp.Matrix, b: sp.Matrix | None = None) -> sp.Matrix:
    """The K x N output Z = W_M...W_1 H (+ b 1^T), or W_M...W_2 s(W_1 H) (+ b 1^T) when extended."""
    M = len(Ws)
    if spec.activation is None:
        Z = chain(Ws, 1, M) * H
    else:
        A = activate(Ws[0] * H, spec.activation)
        Z = chain(Ws, 2, M, size=A.rows) * A
    if b is not None:
        Z = Z + b * ones(H.cols).T
    return Z


def data_term(spec: Spec, Z: sp.Matrix, Y: sp.Matrix | None = None) -> sp.Expr:
    """1/(2N)||Z - Y||_F^2 (MSE) or (1/N) sum_i [log sum_c exp(Z_ci) - Z_{y_i,i}] (CE)."""
    if Y is None:
        Y = labels(spec.counts)
    N = spec.N
    if spec.loss == "mse":
        D = Z - Y
        return sp.Rational(1, 2 * N) * sum((D[i, j] ** 2 for i in range(D.rows) for j in range(D.cols)), sp.Integer(0))
    if spec.loss == "ce":
        total = sp.Integer(0)
        for i in range(Z.cols):
            k = max(range(Y.rows), key=lambda r: Y[r, i])
            total += sp.log(sum((sp.exp(Z[c, i]) for c in range(Z.rows)), sp.Integer(0))) - Z[k, i]
        return total / N
    raise ValueError(f"unknown loss {spec.loss!r}")


def _sq(A: sp.Matrix) -> sp.Expr:
    return sum((A[i, j] ** 2 for i in range(A.rows) for j in range(A.cols)), sp.Integer(0))


def penalty(spec: Spec, Ws: Sequence[sp.Matrix], H: sp.Matrix, b: sp.Matrix | None = None) -> sp.Expr:
    """sum_j lambda_{W_j}/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 (+ lambda_b/2 ||b||^2)."""
    out = sum((spec.lam_w[j] / 2 * _sq(W) for j, W in enumerate(Ws)), sp.Integer(0)) + spec.lam_h / 2 * _sq(H)
    if b is not None:
        out += spec.lam_b / 2 * _sq(b)
    return out


def objective_from_spec(spec: Spec, Ws: Sequence[sp.Matrix], H: sp.Matrix, b: sp.Matrix | None = None) -> sp.Expr:
    """The full objective f(W_1..W_M, H, b) of ``spec`` (see the module docstring)."""
    if len(Ws) != spec.depth:
        raise ValueError(f"depth M = {spec.depth} but {len(Ws)} weight matrices were given")
    if spec.bias and b is None:
        raise ValueError("the model has a bias: give b")
    if not spec.bias and b is not None:
        raise ValueError("the model has no bias, but b was given")
    return data_term(spec, outputs(spec, Ws, H, b)) + penalty(spec, Ws, H, b)


def objective(inst_like: Any, Ws: Sequence[sp.Matrix], H: sp.Matrix, b: sp.Matrix | None = None) -> sp.Expr:
    """The full objective of an instance (duck typed) at (W_1..W_M, H, b), as a SymPy expression."""
    return objective_from_spec(spec_of(inst_like), Ws, H, b)


def symbolic_params(K: int, d: int, N: int, M: int, bias: bool = False,
                    widths: Sequence[int] | None = None) -> tuple[list[sp.Matrix], sp.Matrix, sp.Matrix | None]:
    """Matrices of real Symbols: W_j (w{j}_{r}{c}), H (h_{r}{c}) and b (b_{k}) for entrywise calculus.

    K classes, width d (or per-layer ``widths`` = (d_0, ..., d_{M-1}) with H in R^{d_0 x N} and
    W_j in R^{d_j x d_{j-1}}, d_M = K), N samples, depth M; b is None unless ``bias``.
    """
    dims = list(widths) if widths is not None else [d] * M
    if len(dims) != M:
        raise ValueError(f"need M = {M} widths (d_0..d_(M-1)), got {len(dims)}")
    dims = dims + [K]
    Ws = []
    for j in range(1, M + 1):
        Ws.append(sp.Matrix(dims[j], dims[j - 1],
                            lambda r, c, j=j: sp.Symbol(f"w{j}_{r + 1}{c + 1}", real=True)))
    H = sp.Matrix(dims[0], N, lambda r, c: sp.Symbol(f"h_{r + 1}{c + 1}", real=True))
    b = sp.Matrix(K, 1, lambda r, c: sp.Symbol(f"b_{r + 1}", real=True)) if bias else None
    return Ws, H, b


def symbolic_lambdas(M: int) -> tuple[tuple[sp.Symbol, ...], sp.Symbol, sp.Symbol]:
    """Positive Symbols (lambda_W1..lambda_WM), lambda_H, lambda_b."""
    lam_w = tuple(sp.Symbol(f"lambda_W{j}", positive=True) for j in range(1, M + 1))
    return lam_w, sp.Symbol("lambda_H", positive=True), sp.Symbol("lambda_b", nonnegative=True)


def symbolic_spec(counts: Sequence[int], d: int, M: int, loss: str = "mse", bias: bool = False,
                  regularized_bias: bool = False, activation: str | None = None) -> Spec:
    """A ``Spec`` with symbolic lambdas (lambda_b = 0 unless ``regularized_bias``)."""
    lam_w, lam_h, lam_b = symbolic_lambdas(M)
    return Spec(counts=tuple(counts), width=d, depth=M, lam_w=lam_w, lam_h=lam_h, loss=loss, bias=bias,
                lam_b=lam_b if (bias and regularized_bias) else sp.Integer(0), activation=activation)
