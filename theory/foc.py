"""First-order conditions of the UFM objectives: matrix-form gradients, confirmed entry by entry.

Symbols -> names (see ``theory.objective``): Ws = [W_1..W_M], H, b, lambda_{W_j} = spec.lam_w[j-1],
lambda_H = spec.lam_h, lambda_b = spec.lam_b; Z = output (logits), Y = labels, N = #samples.

Matrix-form gradients used in the proofs (``matrix_gradients``), with the residual
R = (Z - Y)/N (MSE) or R = (softmax(Z) - Y)/N (CE, softmax over each column):

* deep linear, Z = W_M...W_1 H (+ b 1^T):
    dW_j = (W_M...W_{j+1})^T R H^T (W_{j-1}...W_1)^T + lambda_{W_j} W_j,
    dH   = (W_M...W_1)^T R + lambda_H H,      db = R 1_N + lambda_b b;
* extended UFM, Z = W_M...W_2 s(W_1 H) (+ b 1^T), A = s(W_1 H), D = ((W_M...W_2)^T R) o s'(W_1 H):
    dW_j = (W_M...W_{j+1})^T R A^T (W_{j-1}...W_2)^T + lambda_{W_j} W_j  (j >= 2),
    dW_1 = D H^T + lambda_{W_1} W_1,  dH = W_1^T D + lambda_H H,  db as above
  (s' = Heaviside for ReLU; SymPy's convention Heaviside(0) = 1/2 is kept in the numeric backends).

Balancedness at critical points (``check_balancedness``): for every R,
    W_{j+1}^T dW_{j+1} - dW_j W_j^T = lambda_{j+1} W_{j+1}^T W_{j+1} - lambda_j W_j W_j^T,
    W_1^T dW_1 - dH H^T            = lambda_1 W_1^T W_1 - lambda_H H H^T,
so at a critical point (all gradients 0) the right-hand sides vanish. The bias gradient db does not
enter. With ReLU between W_1 and W_2 only the diagonal of the (W_2, W_1) identity survives.

Every ``check_*`` function returns a list of report dicts:
``{"check", "identity", "sizes", "holds", "difference", "difference_str", "seconds"}`` where
``difference`` is the simplified SymPy difference (a zero matrix when the identity holds).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import sympy as sp

from ncverify.theory.objective import Spec, labels, objective_from_spec, symbolic_params, symbolic_spec

__all__ = [
    "SympyOps", "matrix_gradients", "entrywise_gradients", "atomize", "identity_holds",
    "check_gradient_identities", "check_mse_gradients", "check_mse_bias_gradients", "check_ce_gradients",
    "check_extended_gradients", "check_balancedness", "check_optimal_features_mse",
    "check_bias_stationarity", "run_all_foc_checks", "VARIANTS",
]

# Deliberately wrong gradient formulas, so that the checker can be seen to fail.
VARIANTS = {
    None: "the matrix-form gradients of the proofs",
    "no-1/N": "residual without the 1/N (R = Z - Y)",
    "no-transpose": "(W_{j-1}...W_1) instead of its transpose in dW_j (deep linear; extended: (W_{j-1}...W_2))",
    "half-lambda": "penalty gradient lambda/2 W instead of lambda W",
    "no-softmax": "CE residual (Z - Y)/N instead of (softmax(Z) - Y)/N",
}


class SympyOps:
    """Matrix operations on SymPy matrices (the backend of the symbolic checks and exact evaluation).

    stable_softmax: write softmax as 1 / sum_c' exp(z_c' - z_c) with simplified differences
    (better for exact evaluation at a point; the plain form exp(z_c)/sum exp(z_c') is what
    entrywise differentiation produces, used for the symbolic identity checks).
    """

    name = "sympy"

    def __init__(self, stable_softmax: bool = False, simplify: Callable[[sp.Expr], sp.Expr] | None = None):
        self.stable_softmax = stable_softmax
        self.simplify = simplify

    def num(self, x: Any) -> sp.Expr:
        return sp.sympify(x)

    def eye(self, n: int) -> sp.Matrix:
        return sp.eye(n)

    def ones(self, n: int) -> sp.Matrix:
        return sp.ones(n, 1)

    def labels(self, counts: Sequence[int]) -> sp.Matrix:
        return labels(counts)

    def hadamard(self, A: sp.Matrix, B: sp.Matrix) -> sp.Matrix:
        return A.multiply_elementwise(B)

    def relu(self, A: sp.Matrix) -> sp.Matrix:
        return A.applyfunc(lambda z: sp.Max(0, z))

    def relu_prime(self, A: sp.Matrix) -> sp.Matrix:
        return A.applyfunc(sp.Heaviside)

    def sq(self, A: sp.Matrix) -> sp.Expr:
        return sum((A[i, j] ** 2 for i in range(A.rows) for j in range(A.cols)), sp.Integer(0))

    def softmax(self, Z: sp.Matrix) -> sp.Matrix:
        K, N = Z.shape
        P = sp.zeros(K, N)
        for i in range(N):
            if self.stable_softmax:
                simp = self.simplify or sp.simplify
                for c in range(K):
                    P[c, i] = 1 / sum((sp.exp(simp(Z[c2, i] - Z[c, i])) for c2 in range(K)), sp.Integer(0))
            else:
                den = sum((sp.exp(Z[c2, i]) for c2 in range(K)), sp.Integer(0))
                for c in range(K):
                    P[c, i] = sp.exp(Z[c, i]) / den
        return P

    def logsumexp_minus_true(self, Z: sp.Matrix, Y: sp.Matrix) -> sp.Expr:
        """sum_i [log sum_c exp(Z_ci) - Z_{y_i i}]."""
        K, N = Z.shape
        total = sp.Integer(0)
        simp = self.simplify or sp.simplify
        for i in range(N):
            k = max(range(K), key=lambda r: Y[r, i])
            if self.stable_softmax:  # log sum_c exp(z_c - z_k)
                total += sp.log(sum((sp.exp(simp(Z[c, i] - Z[k, i])) for c in range(K)), sp.Integer(0)))
            else:
                total += sp.log(sum((sp.exp(Z[c, i]) for c in range(K)), sp.Integer(0))) - Z[k, i]
        return total


def _chain(Ws: Sequence[Any], lo: int, hi: int, size: int, ops: Any) -> Any:
    """W_hi ... W_lo (1-based, inclusive), the identity of ``size`` if hi < lo."""
    if hi < lo:
        return ops.eye(size)
    P = Ws[hi - 1]
    for j in range(hi - 1, lo - 1, -1):
        P = P @ Ws[j - 1]
    return P


def forward(spec: Spec, Ws: Sequence[Any], H: Any, b: Any, ops: Any) -> dict[str, Any]:
    """Z1 = W_1 H, A = s(Z1) (extended only), output Z, labels Y and residual R."""
    M, N = len(Ws), spec.N
    Y = ops.labels(spec.counts)
    out: dict[str, Any] = {"Y": Y}
    if spec.activation is None:
        Z = _chain(Ws, 1, M, H.shape[0], ops) @ H
    else:
        Z1 = Ws[0] @ H
        A = ops.relu(Z1) if spec.activation == "relu" else Z1
        out.update(Z1=Z1, A=A)
        Z = _chain(Ws, 2, M, A.shape[0], ops) @ A
    if b is not None:
        Z = Z + b @ ops.ones(N).T
    out["Z"] = Z
    return out


def residual(spec: Spec, Z: Any, Y: Any, ops: Any, variant: str | None = None) -> Any:
    """R = (Z - Y)/N (MSE) or (softmax(Z) - Y)/N (CE)."""
    scale = ops.num(1) if variant == "no-1/N" else ops.num(1) / ops.num(spec.N)
    if spec.loss == "mse" or variant == "no-softmax":
        return (Z - Y) * scale
    if spec.loss == "ce":
        return (ops.softmax(Z) - Y) * scale
    raise ValueError(f"unknown loss {spec.loss!r}")


def objective_value(spec: Spec, Ws: Sequence[Any], H: Any, b: Any, ops: Any) -> Any:
    """The full objective through a backend (same normalizations as ``theory.objective``)."""
    fw = forward(spec, Ws, H, b, ops)
    Z, Y = fw["Z"], fw["Y"]
    N = ops.num(spec.N)
    if spec.loss == "mse":
        data = ops.sq(Z - Y) / (2 * N)
    else:
        data = ops.logsumexp_minus_true(Z, Y) / N
    pen = sum((ops.num(spec.lam_w[j]) / 2 * ops.sq(W) for j, W in enumerate(Ws)), ops.num(0))
    pen = pen + ops.num(spec.lam_h) / 2 * ops.sq(H)
    if b is not None:
        pen = pen + ops.num(spec.lam_b) / 2 * ops.sq(b)
    return data + pen


def matrix_gradients(spec: Spec, Ws: Sequence[Any], H: Any, b: Any = None, ops: Any = None,
                     variant: str | None = None, split: bool = False) -> dict[str, Any]:
    """The matrix-form gradients {"W": [dW_1..dW_M], "H": dH, "b": db or None} (module docstring).

    ops: backend (default ``SympyOps()``); variant: one of ``VARIANTS`` (seeded errors);
    split: also return the data and penalty parts separately under "data" and "penalty".
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")
    ops = ops or SympyOps()
    M = len(Ws)
    fw = forward(spec, Ws, H, b, ops)
    R = residual(spec, fw["Z"], fw["Y"], ops, variant)
    half = variant == "half-lambda"

    def lam(v: Any) -> Any:
        return ops.num(v) / 2 if half else ops.num(v)

    def right(P: Any) -> Any:  # the (W_{j-1}...W_1)^T factor
        return P if variant == "no-transpose" else P.T

    data_W: list[Any] = []
    if spec.activation is None:
        d0 = H.shape[0]
        for j in range(1, M + 1):
            left = _chain(Ws, j + 1, M, Ws[j - 1].shape[0], ops).T
            data_W.append(left @ R @ H.T @ right(_chain(Ws, 1, j - 1, d0, ops)))
        data_H = _chain(Ws, 1, M, d0, ops).T @ R
    else:
        A, Z1 = fw["A"], fw["Z1"]
        dA = _chain(Ws, 2, M, A.shape[0], ops).T @ R
        D = ops.hadamard(dA, ops.relu_prime(Z1)) if spec.activation == "relu" else dA
        data_W.append(D @ H.T)
        for j in range(2, M + 1):
            left = _chain(Ws, j + 1, M, Ws[j - 1].shape[0], ops).T
            data_W.append(left @ R @ A.T @ right(_chain(Ws, 2, j - 1, A.shape[0], ops)))
        data_H = Ws[0].T @ D
    pen_W = [lam(spec.lam_w[j]) * Ws[j] for j in range(M)]
    pen_H = lam(spec.lam_h) * H
    out: dict[str, Any] = {"W": [data_W[j] + pen_W[j] for j in range(M)], "H": data_H + pen_H, "b": None}
    data_b = pen_b = None
    if b is not None:
        data_b = R @ ops.ones(spec.N)
        pen_b = lam(spec.lam_b) * b
        out["b"] = data_b + pen_b
    if split:
        out["data"] = {"W": data_W, "H": data_H, "b": data_b}
        out["penalty"] = {"W": pen_W, "H": pen_H, "b": pen_b}
    return out


def entrywise_gradients(f: sp.Expr, Ws: Sequence[sp.Matrix], H: sp.Matrix, b: sp.Matrix | None = None) -> dict[str, Any]:
    """d f / d(entry) for every entry of W_j, H, b, arranged as matrices of the same shapes."""
    def grad(A: sp.Matrix) -> sp.Matrix:
        return A.applyfunc(lambda a: sp.diff(f, a))
    return {"W": [grad(W) for W in Ws], "H": grad(H), "b": grad(b) if b is not None else None}


def atomize(expr: sp.Expr, table: dict | None = None) -> sp.Expr:
    """Replace exp(u), log(u), Heaviside(u), Max(...) by fresh symbols keyed on the expanded arguments.

    Two expressions built from the same transcendental atoms then compare as rational functions.
    """
    table = {} if table is None else table
    kinds = (sp.exp, sp.log, sp.Heaviside, sp.Max, sp.Min)

    def key(e: sp.Expr) -> tuple:
        if isinstance(e, (sp.Max, sp.Min)):
            return (type(e).__name__, frozenset(sp.expand(a) for a in e.args))
        return (type(e).__name__, sp.expand(e.args[0]))

    def sub(e: sp.Expr) -> sp.Expr:
        k = key(e)
        if k not in table:
            table[k] = sp.Symbol(f"_atom{len(table)}")
        return table[k]

    return expr.replace(lambda e: isinstance(e, kinds), sub)


def _relu_normal_form(e: sp.Expr) -> sp.Expr:
    """Rewrite Max(0, u) as u Heaviside(u) (true for every u, whatever the value of Heaviside(0))."""
    def is_relu(x: sp.Expr) -> bool:
        return isinstance(x, sp.Max) and len(x.args) == 2 and sp.S.Zero in x.args

    def rw(x: sp.Expr) -> sp.Expr:
        u = x.args[1] if x.args[0] == 0 else x.args[0]
        return u * sp.Heaviside(u)

    return e.replace(is_relu, rw) if e.has(sp.Max) else e


def identity_holds(diff: sp.Matrix) -> tuple[bool, sp.Matrix]:
    """Whether a symbolic difference matrix is identically 0; returns (holds, simplified difference).

    exp/log/Heaviside atoms become symbols (``atomize``) and each entry must reduce to the zero
    rational function. ReLU terms are put in the normal form Max(0, u) = u Heaviside(u) and
    Heaviside(u)^k = Heaviside(u) is used: the identities are thereby checked on every open region
    where no pre-activation vanishes (the ReLU objective is not differentiable on the rest).
    """
    table: dict = {}
    out = sp.zeros(*diff.shape)
    for i in range(diff.rows):
        for j in range(diff.cols):
            e = _relu_normal_form(sp.sympify(diff[i, j]))
            e = atomize(e, table)
            num, den = sp.fraction(sp.together(e))
            num = sp.expand(num)
            steps = {sym for (kind, _), sym in table.items() if kind == "Heaviside"}
            if steps:  # on each open sign region Heaviside is 0 or 1, so H^k = H
                num = sp.expand(num.replace(lambda x: x.is_Pow and x.base in steps and x.exp.is_Integer and x.exp > 1,
                                            lambda x: x.base))
            out[i, j] = 0 if num == 0 else sp.factor(num) / sp.factor(den)
    if table:  # restore atoms in the (nonzero) reported differences
        inv = {}
        for (kind, arg), sym in table.items():
            if kind in ("Max", "Min"):
                inv[sym] = getattr(sp, kind)(*arg)
            else:
                inv[sym] = getattr(sp, kind)(arg)
        out = out.subs(inv)
    return all(x == 0 for x in out), out


def _sizes(spec: Spec) -> dict[str, Any]:
    return {"K": spec.K, "d": spec.width, "counts": list(spec.counts), "N": spec.N, "M": spec.depth,
            "loss": spec.loss, "bias": spec.bias, "lam_b": sp.sstr(spec.lam_b), "activation": spec.activation}


def _report(name: str, identity: str, spec: Spec, holds: bool, diff: sp.Matrix, t0: float, **extra: Any) -> dict[str, Any]:
    rep = {"check": name, "identity": identity, "sizes": _sizes(spec), "holds": bool(holds), "difference": diff,
           "difference_str": sp.sstr(diff), "seconds": round(time.perf_counter() - t0, 3)}
    rep.update(extra)
    return rep


def _setup(spec: Spec) -> tuple[list[sp.Matrix], sp.Matrix, sp.Matrix | None, sp.Expr]:
    Ws, H, b = symbolic_params(spec.K, spec.width, spec.N, spec.depth, spec.bias)
    return Ws, H, b, objective_from_spec(spec, Ws, H, b)


def check_gradient_identities(loss: str = "mse", counts: Sequence[int] = (2, 1), d: int = 2, M: int = 1,
                              bias: bool = False, regularized_bias: bool = False, activation: str | None = None,
                              variant: str | None = None) -> list[dict[str, Any]]:
    """Entrywise derivatives of the objective vs the matrix-form gradients, one report per block.

    counts = (n_1..n_K), d = width, M = depth, symbolic lambdas; ``variant`` seeds a wrong formula.
    """
    spec = symbolic_spec(counts, d, M, loss=loss, bias=bias, regularized_bias=regularized_bias, activation=activation)
    Ws, H, b, f = _setup(spec)
    t0 = time.perf_counter()
    true = entrywise_gradients(f, Ws, H, b)
    form = matrix_gradients(spec, Ws, H, b, SympyOps(), variant=variant)
    R = "(softmax(Z) - Y)/N" if loss == "ce" else "(Z - Y)/N"
    name = f"{loss}-gradients" + ("-extended-" + activation if activation else "") + ("-bias" if bias else "")
    if variant:
        name += f"[{variant}]"
    reports = []
    for j in range(M):
        if activation is None:
            ident = f"dW_{j + 1} = (W_{M}..W_{j + 2})^T R H^T (W_{j}..W_1)^T + lambda_W{j + 1} W_{j + 1}, R = {R}"
        elif j == 0:
            ident = f"dW_1 = ((W_{M}..W_2)^T R o s'(W_1 H)) H^T + lambda_W1 W_1, R = {R}"
        else:
            ident = f"dW_{j + 1} = (W_{M}..W_{j + 2})^T R s(W_1 H)^T (W_{j}..W_2)^T + lambda_W{j + 1} W_{j + 1}, R = {R}"
        ok, diff = identity_holds(true["W"][j] - form["W"][j])
        reports.append(_report(name + f":dW_{j + 1}", ident, spec, ok, diff, t0, variant=variant))
    ident = ("dH = (W_M..W_1)^T R + lambda_H H" if activation is None
             else "dH = W_1^T ((W_M..W_2)^T R o s'(W_1 H)) + lambda_H H") + f", R = {R}"
    ok, diff = identity_holds(true["H"] - form["H"])
    reports.append(_report(name + ":dH", ident, spec, ok, diff, t0, variant=variant))
    if bias:
        ok, diff = identity_holds(true["b"] - form["b"])
        reports.append(_report(name + ":db", f"db = R 1_N + lambda_b b, R = {R}", spec, ok, diff, t0, variant=variant))
    return reports


def check_mse_gradients(counts: Sequence[int] = (2, 1), d: int = 2, M: int = 1, variant: str | None = None) -> list[dict[str, Any]]:
    """Bias-free deep linear MSE: entrywise vs matrix-form gradients."""
    return check_gradient_identities("mse", counts, d, M, variant=variant)


def check_mse_bias_gradients(counts: Sequence[int] = (2, 1), d: int = 2, M: int = 1, regularized_bias: bool = False,
                             variant: str | None = None) -> list[dict[str, Any]]:
    """Deep linear MSE with a last-layer bias (unregularized unless ``regularized_bias``)."""
    return check_gradient_identities("mse", counts, d, M, bias=True, regularized_bias=regularized_bias, variant=variant)


def check_ce_gradients(counts: Sequence[int] = (2, 1), d: int = 2, M: int = 1, bias: bool = False,
                       variant: str | None = None) -> list[dict[str, Any]]:
    """Deep linear CE (bias regularized with lambda_b when present)."""
    return check_gradient_identities("ce", counts, d, M, bias=bias, regularized_bias=bias, variant=variant)


def check_extended_gradients(activation: str = "relu", counts: Sequence[int] = (2, 1), d: int = 2, M: int = 2,
                             loss: str = "mse", variant: str | None = None) -> list[dict[str, Any]]:
    """Extended UFM W_M..W_2 s(W_1 H): entrywise vs matrix-form gradients (s = identity or ReLU)."""
    return check_gradient_identities(loss, counts, d, M, activation=activation, variant=variant)


def check_balancedness(loss: str = "mse", counts: Sequence[int] = (2, 1), d: int = 2, M: int = 2, bias: bool = False,
                       activation: str | None = None, wrong: bool = False) -> list[dict[str, Any]]:
    """Balancedness from the stationary conditions, using the entrywise (true) gradients G.

    For j = 1..M-1:  W_{j+1}^T G_{W_{j+1}} - G_{W_j} W_j^T == lambda_{j+1} W_{j+1}^T W_{j+1} - lambda_j W_j W_j^T;
    and  W_1^T G_{W_1} - G_H H^T == lambda_1 W_1^T W_1 - lambda_H H H^T.
    Hence at a critical point lambda_{j+1} W_{j+1}^T W_{j+1} = lambda_j W_j W_j^T and
    lambda_1 W_1^T W_1 = lambda_H H H^T. The bias (if any, regularized for CE) is in the model but its
    gradient does not enter. With ReLU the (W_2, W_1) identity is reported in full (expected to fail)
    and on its diagonal (expected to hold). ``wrong`` seeds wrong right-hand sides
    (lambda_j W_j^T W_j in place of lambda_j W_j W_j^T, lambda_H/2 in place of lambda_H), which must be
    reported False.
    """
    spec = symbolic_spec(counts, d, M, loss=loss, bias=bias, regularized_bias=(bias and loss == "ce"),
                         activation=activation)
    Ws, H, b, f = _setup(spec)
    t0 = time.perf_counter()
    G = entrywise_gradients(f, Ws, H, b)
    lw, lh = spec.lam_w, spec.lam_h
    name = f"balancedness-{loss}" + (f"-extended-{activation}" if activation else "") + ("-bias" if bias else "")
    if wrong:
        name += "[wrong-rhs]"
    reports = []
    for j in range(1, M):
        Wj, Wn = Ws[j - 1], Ws[j]
        lhs = Wn.T * G["W"][j] - G["W"][j - 1] * Wj.T
        rhs = lw[j] * Wn.T * Wn - lw[j - 1] * ((Wj.T * Wj) if wrong else (Wj * Wj.T))
        ident = (f"W_{j + 1}^T dW_{j + 1} - dW_{j} W_{j}^T = lambda_W{j + 1} W_{j + 1}^T W_{j + 1} - "
                 f"lambda_W{j} W_{j} W_{j}^T")
        ok, diff = identity_holds(lhs - rhs)
        extra: dict[str, Any] = {"consequence": f"critical point => lambda_W{j + 1} W_{j + 1}^T W_{j + 1} = "
                                                f"lambda_W{j} W_{j} W_{j}^T", "bias_gradient_enters": False}
        if activation == "relu" and j == 1:
            diag_ok, diag_diff = identity_holds(sp.diag(*[(lhs - rhs)[i, i] for i in range(lhs.rows)]))
            extra.update(expected_to_hold=False, diagonal_holds=diag_ok, diagonal_difference=sp.sstr(diag_diff),
                         consequence="with ReLU only the diagonal survives: lambda_W2 ||W_2 e_i||^2 = "
                                     "lambda_W1 ||e_i^T W_1||^2 at a critical point")
        reports.append(_report(name + f":W{j + 1}/W{j}", ident, spec, ok, diff, t0, **extra))
    lhs = Ws[0].T * G["W"][0] - G["H"] * H.T
    rhs = lw[0] * Ws[0].T * Ws[0] - (lh / 2 if wrong else lh) * H * H.T
    ok, diff = identity_holds(lhs - rhs)
    reports.append(_report(name + ":W1/H", "W_1^T dW_1 - dH H^T = lambda_W1 W_1^T W_1 - lambda_H H H^T", spec, ok, diff,
                           t0, consequence="critical point => lambda_W1 W_1^T W_1 = lambda_H H H^T",
                           bias_gradient_enters=False))
    return reports


def check_optimal_features_mse(counts: Sequence[int] = (2, 1), d: int = 2, bias: bool = False) -> list[dict[str, Any]]:
    """For fixed W (M = 1, generic K x d) and b, H* = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1^T) gives dH = 0."""
    spec = symbolic_spec(counts, d, 1, loss="mse", bias=bias)
    Ws, H, b = symbolic_params(spec.K, d, spec.N, 1, bias)
    t0 = time.perf_counter()
    W = Ws[0]
    T = labels(counts) - (b * sp.ones(1, spec.N) if b is not None else sp.zeros(spec.K, spec.N))
    Hs = (W.T * W + spec.N * spec.lam_h * sp.eye(d)).inv() * W.T * T
    dH = matrix_gradients(spec, [W], Hs, b)["H"]
    ok, diff = identity_holds(dH.applyfunc(sp.cancel))
    return [_report("mse-optimal-features" + ("-bias" if bias else ""),
                    "dH(W, H*) = 0 for H* = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1^T)", spec, ok, diff, t0)]


def check_bias_stationarity(counts: Sequence[int] = (2, 1), d: int = 2, M: int = 1) -> list[dict[str, Any]]:
    """Unregularized MSE bias: db = 0 at b* = (Y - W H) 1_N / N (the mean residual without bias)."""
    spec = symbolic_spec(counts, d, M, loss="mse", bias=True)
    Ws, H, b = symbolic_params(spec.K, d, spec.N, M, True)
    t0 = time.perf_counter()
    W = _chain(Ws, 1, M, d, SympyOps())
    bstar = (labels(counts) - W * H) * sp.ones(spec.N, 1) / spec.N
    db = matrix_gradients(spec, Ws, H, bstar)["b"]
    ok, diff = identity_holds(db)
    return [_report("mse-bias-stationarity", "db(b*) = 0 for b* = (Y - W_M..W_1 H) 1_N / N", spec, ok, diff, t0)]


def run_all_foc_checks(include_slow: bool = False) -> list[dict[str, Any]]:
    """Every FOC check at its default small sizes (K, d <= 3, M <= 2); ``include_slow`` adds K = d = 3, M = 2 CE."""
    reps: list[dict[str, Any]] = []
    for M in (1, 2):
        reps += check_mse_gradients((2, 1), 2, M)
        reps += check_mse_bias_gradients((2, 1), 2, M)
        reps += check_ce_gradients((2, 1), 2, M)
    reps += check_mse_gradients((1, 1, 1), 3, 2)
    reps += check_mse_bias_gradients((1, 2), 3, 1, regularized_bias=True)
    reps += check_ce_gradients((1, 1, 1), 3, 1, bias=True)
    reps += check_extended_gradients("identity")
    reps += check_extended_gradients("relu")
    reps += check_balancedness("mse", (2, 1), 2, 2)
    reps += check_balancedness("mse", (1, 1, 1), 3, 2, bias=True)
    reps += check_balancedness("ce", (2, 1), 2, 2, bias=True)
    reps += check_balancedness("mse", (2, 1), 2, 1)
    reps += check_balancedness("mse", (2, 1), 2, 2, activation="identity")
    reps += check_balancedness("mse", (2, 1), 2, 2, activation="relu")
    reps += check_optimal_features_mse((2, 1), 2)
    reps += check_optimal_features_mse((2, 1), 2, bias=True)
    reps += check_bias_stationarity((2, 1), 2, 2)
    if include_slow:
        reps += check_ce_gradients((1, 1, 1), 3, 2)
        reps += check_balancedness("ce", (1, 1, 1), 3, 2)
    return reps
