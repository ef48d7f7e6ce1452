"""Reduced problems of the UFM objectives, derived step by step in SymPy.

Every step of the reduction is one named function so that later checks can test it numerically:

1. :func:`eliminate_factorization` -- the cheapest factorization of a fixed product
   Z = W_M ... W_1 H into M+1 factors (per singular value of Z).
2. :func:`align_with_labels` -- von Neumann alignment: Z shares singular vectors with Y (or with the
   centered labels Y C when an unregularized last-layer bias is present); returns the label "modes".
3. :func:`mode_objective` -- the per-mode scalar problem phi(z) = (y - z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)}.
4. :func:`stationary_polynomial_t` / :func:`stationary_polynomial_w` -- substitutions that make the
   stationary equation polynomial (t = z^{1/(M+1)}; w = z / y, with rational coefficients).
5. :func:`ce_etf_reduction` -- deep linear CE restricted to the simplex-ETF logit geometry.
6. :func:`extended_linear_as_factor_form` -- the extended UFM with identity activation is the
   (M+1)-factor deep linear form.

Symbols (module constants, all positive): ``z`` singular value of Z (a mode of the output),
``y`` the label singular value (sqrt(n_k) or sqrt(mu_i)), ``N`` number of samples, ``L`` the
geometric-mean regularization (lambda_H prod_j lambda_{W_j})^{1/(M+1)}, ``t = z^{1/(M+1)}``,
``w = z / y`` (the fitted fraction, W hbar_k = w_k e_k), ``rho = (N L)^{M+1} / y^{2M}``.
No torch, no numerics imports; instances are read by duck typing elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import mpmath
import sympy as sp

from ncverify.theory.numbers import exact_number  # noqa: F401  (re-exported: the one exact-number rule)

# ---------------------------------------------------------------------------------------------
# symbols
z = sp.Symbol("z", positive=True)
y = sp.Symbol("y", positive=True)
N = sp.Symbol("N", positive=True)
L = sp.Symbol("L", positive=True)
t = sp.Symbol("t", positive=True)
w = sp.Symbol("w", positive=True)
v = sp.Symbol("v", positive=True)  # v = 1 - w on (0, 1)
rho = sp.Symbol("rho", positive=True)
a = sp.Symbol("a", positive=True)
u = sp.Symbol("u", positive=True)
K = sp.Symbol("K", positive=True, integer=True)
n = sp.Symbol("n", positive=True)
ell = sp.Symbol("ell", positive=True)
lam_H = sp.Symbol("lambda_H", positive=True)
M_sym = sp.Symbol("M", positive=True, integer=True)
J = sp.Symbol("J", commutative=True)  # stands for the all-ones matrix 1 1^T, with J^2 = K J


def lam_W(j: int) -> sp.Symbol:
    """lambda_{W_j} as a positive symbol (j = 1..M)."""
    return sp.Symbol(f"lambda_W{j}", positive=True)


# ---------------------------------------------------------------------------------------------
# step 1: eliminate the factorization
@dataclass(frozen=True)
class FactorizationElimination:
    """Result of :func:`eliminate_factorization` for depth M.

    cost: min over factorizations of one mode, ((M+1)/2) L z^{2/(M+1)} (``L`` symbolic).
    L_expr: L = (lambda_H prod_j lambda_{W_j})^{1/(M+1)} in the symbols ``lam_W(j)``, ``lam_H``.
    balanced_product: the common value lambda_{W_j} s_j^2 = lambda_H eta^2 = L z^{2/(M+1)}.
    layer_values: singular values s_j = sqrt(L/lambda_{W_j}) z^{1/(M+1)} of W_j, j = 1..M.
    feature_value: eta = sqrt(L/lambda_H) z^{1/(M+1)}, the matching singular value of H.
    """

    M: int
    cost: sp.Expr
    L_expr: sp.Expr
    balanced_product: sp.Expr
    layer_values: tuple[sp.Expr, ...]
    feature_value: sp.Expr


@lru_cache(maxsize=None)
def eliminate_factorization(M: int) -> FactorizationElimination:
    """Min of sum_j lambda_{W_j}/2 x_j^2 + lambda_H/2 x_0^2 subject to x_0 x_1 ... x_M = z.

    Per singular value of Z this is the matrix statement: over W_M ... W_1 H = Z (widths >= rank Z),
    min sum_j lambda_{W_j}/2 ||W_j||^2 + lambda_H/2 ||H||^2 = ((M+1)/2) L sum_i sigma_i(Z)^{2/(M+1)}
    (AM-GM on the M+1 terms plus the Schatten-quasi-norm inequality; attained by balanced, aligned
    factors). Derived here with a Lagrange multiplier mu: c_i x_i = mu prod_{j != i} x_j gives
    c_i x_i^2 = mu z for every factor (balancedness); the constraint fixes q = mu z.
    """
    c = [lam_H] + [lam_W(j) for j in range(1, M + 1)]
    q = sp.Symbol("q", positive=True)  # q = mu z = c_i x_i^2 (common value, by the Lagrange condition)
    xs = [sp.sqrt(q / ci) for ci in c]
    # the constraint prod x_i = z is linear in log q (all quantities positive): solve it there
    Q = sp.Symbol("Q", real=True)
    log_eq = sp.expand_log(sp.log(sp.Mul(*xs).subs(q, sp.exp(Q))), force=True) - sp.log(z)
    sols = sp.solve(log_eq, Q)
    if len(sols) != 1:
        raise RuntimeError(f"factorization elimination: expected one solution, got {sols}")
    q_star = sp.powsimp(sp.expand_power_base(sp.exp(sols[0]), force=True), force=True)
    L_expr = sp.Mul(*c) ** sp.Rational(1, M + 1)
    # q* = L z^{2/(M+1)}: express with the symbol L
    balanced = sp.simplify(q_star / L_expr) * L
    cost = sp.Rational(1, 2) * sum(ci * xi ** 2 for ci, xi in zip(c, xs)).subs(q, balanced)
    cost = sp.simplify(cost)
    layer_values = tuple(sp.sqrt(balanced / lam_W(j)) for j in range(1, M + 1))
    feature_value = sp.sqrt(balanced / lam_H)
    return FactorizationElimination(M, cost, L_expr, balanced, layer_values, feature_value)


# ---------------------------------------------------------------------------------------------
# step 2: align with the labels
@dataclass(frozen=True)
class LabelModes:
    """Singular structure of the label matrix that Z aligns with (von Neumann).

    strengths: mu_i = y_i^2, the squared label singular values (exact), one per mode.
    classes: for a class-aligned mode (bias-free) the 0-based class; None for a mixed mode.
    vectors: K-vectors a_i (mpmath, unit) with (Y C Y^T) a_i = mu_i a_i, for mixed modes; the class
      mean of H in class k is then sum_i eta_i v_i (a_i[k] - <counts, a_i>/N) / y_i.
    centered: True when the bias was eliminated (labels centered over the samples).
    """

    strengths: tuple[sp.Expr, ...]
    classes: tuple[int | None, ...]
    vectors: tuple[Any, ...] | None
    centered: bool


def align_with_labels(counts: Sequence[int], centered: bool, dps: int = 40) -> LabelModes:
    """The label modes Z aligns with.

    Without a bias: Y Y^T = diag(n_k), so mode k is class k with y_k = sqrt(n_k).
    With an unregularized bias b: minimizing over b gives b = (Y - Z) 1/N and data term
    ||(Z - Y) C||^2/(2N), C = I - 1 1^T/N; since sigma_i(Z C) <= sigma_i(Z) the optimal Z is centered and
    aligns with Y C, whose Gram Y C Y^T = diag(n) - n n^T / N. Balanced: n (K-1 times) and 0 (along 1).
    Imbalanced: the eigenvalues of that matrix (exact algebraic numbers, CRootOf).
    """
    cnt = [int(c) for c in counts]
    Kc = len(cnt)
    if not centered:
        return LabelModes(tuple(sp.Integer(c) for c in cnt), tuple(range(Kc)), None, False)
    Nn = sum(cnt)
    G = sp.diag(*cnt) - sp.Matrix(cnt) * sp.Matrix(cnt).T / Nn
    x = sp.Symbol("x")
    if len(set(cnt)) == 1:
        strengths = tuple([sp.Integer(cnt[0])] * (Kc - 1) + [sp.Integer(0)])
    else:
        roots = sp.Poly(G.charpoly(x).as_expr(), x).real_roots()
        roots = sorted(roots, key=lambda r: -sp.N(r, dps))
        strengths = tuple(roots)
    # numeric eigenvectors (for class-mean norms of mixed modes), ordered like ``strengths``
    with mpmath.workdps(dps + 10):
        Gm = mpmath.matrix([[mpmath.mpf(sp.Rational(G[i, j]).p) / sp.Rational(G[i, j]).q for j in range(Kc)]
                            for i in range(Kc)])
        E, Q = mpmath.eigsy(Gm)
        order = sorted(range(Kc), key=lambda i: -E[i])
        vectors = tuple(tuple(Q[r, i] for r in range(Kc)) for i in order)
    return LabelModes(strengths, tuple([None] * Kc), vectors, True)


# ---------------------------------------------------------------------------------------------
# step 3: the per-mode scalar problem
@lru_cache(maxsize=None)
def mode_objective(M: int) -> sp.Expr:
    """phi(z) = (y - z)^2/(2N) + cost_M(z): the data term of one aligned mode plus the factorization cost."""
    return (y - z) ** 2 / (2 * N) + eliminate_factorization(M).cost


# ---------------------------------------------------------------------------------------------
# step 4: polynomial stationary equations
@lru_cache(maxsize=None)
def stationary_polynomial_t(M: int) -> sp.Expr:
    """With t = z^{1/(M+1)}: d phi/dt = ((M+1) t / N) * P_t(t); returns P_t (monic in t).

    Derived by differentiating phi(t^{M+1}) and dividing by its factor (M+1) t / N.
    (Expected: t^{2M} - y t^{M-1} + N L; a test checks the derivation reproduces it.)
    """
    phi_t = mode_objective(M).subs(z, t ** (M + 1))
    d = sp.diff(phi_t, t)
    P = sp.expand(sp.powsimp(sp.expand(d * N / ((M + 1) * t)), force=True))
    return P


@lru_cache(maxsize=None)
def stationary_polynomial_w(M: int) -> sp.Expr:
    """With w = z / y in (0, 1): the stationary equation as a polynomial with rational coefficients,
    P_w(w) = w^{M-1} (1 - w)^{M+1} - rho,  rho = (N L)^{M+1} / y^{2M}.

    Derivation: P_t = 0 reads N L = t^{M-1} (y - t^{M+1}); substitute t^{M+1} = y w and raise both
    (positive) sides to the power M+1. On w in (0, 1) this is an equivalence; roots outside (0, 1)
    (possible when M+1 is even) are not stationary points of phi.
    """
    P_t = stationary_polynomial_t(M)
    NL = sp.solve(sp.Eq(P_t, 0), L)[0] * N  # N L as a function of t
    NL_w = NL.subs(t, (y * w) ** sp.Rational(1, M + 1))
    NL_v = sp.factor(NL_w.subs(w, 1 - v))  # pull y out of (y - y w) before raising to the power M+1
    lhs = sp.expand_power_base(sp.powsimp(sp.expand_power_base(NL_v ** (M + 1), force=True), force=True),
                               force=True).subs(v, 1 - w)
    ratio = sp.powsimp(lhs / y ** (2 * M), force=True)
    if ratio.has(y) or ratio.has(t):
        raise RuntimeError(f"stationary polynomial in w did not separate: {ratio}")
    return sp.expand(ratio) - rho


@lru_cache(maxsize=None)
def stationary_value_w(M: int) -> sp.Expr:
    """2N phi / y^2 at a stationary point, in terms of w alone: substitutes the stationary relation
    N L = y^{2M/(M+1)} w^{(M-1)/(M+1)} (1 - w) into phi(y w). (Compared with 1 = 2N phi(0)/y^2.)"""
    NL = y ** sp.Rational(2 * M, M + 1) * w ** sp.Rational(M - 1, M + 1) * v
    phi = mode_objective(M).subs(z, y * w).subs(L, NL / N)
    val = sp.simplify(sp.powsimp(sp.expand(2 * N * phi / y ** 2), force=True))
    return sp.factor(sp.expand(val.subs(v, 1 - w)))


@lru_cache(maxsize=None)
def closed_form_M1() -> dict[str, sp.Expr]:
    """M = 1: the exact solution of P_w = (1 - w)^2 - rho = 0 on (0, 1) and the per-mode values."""
    P = stationary_polynomial_w(1)
    sols = [s for s in sp.solve(sp.Eq(P, 0), w)]
    # the root below 1 (the other one, 1 + sqrt(rho), lies outside (0, 1))
    inside = [s for s in sols if sp.simplify(s.subs(rho, sp.Rational(1, 4))) < 1]
    w1 = inside[0]
    return {"w": w1, "z": y * w1, "phi": sp.simplify(mode_objective(1).subs(z, y * w1).subs(L, rho ** sp.Rational(1, 2) * y / N))}


# ---------------------------------------------------------------------------------------------
# step 5: cross-entropy on the simplex-ETF geometry
@dataclass(frozen=True)
class CEReduction:
    """Deep linear CE restricted to logits a (e_k - 1/K 1) for class k (balanced, n per class).

    ce: the per-sample CE of that logit vector (same for every sample).
    singular_values: the nonzero singular value a sqrt(n) of Z = a (I - 1 1^T/K) Y and its multiplicity.
    g: the reduced function of the margin a >= 0 (CE + the factorization cost of all K-1 modes).
    g_u: g with a = u^{M+1} (penalty smooth in u: proportional to u^2).
    h_u: the stationary equation in u > 0 is ell = h_u(u), ell = L n^{1/(M+1)} (solved from d g/du = 0).
    """

    M: int
    ce: sp.Expr
    singular_value: sp.Expr
    multiplicity: sp.Expr
    g: sp.Expr
    g_u: sp.Expr
    h_u: sp.Expr


@lru_cache(maxsize=None)
def ce_etf_reduction(M: int) -> CEReduction:
    """Derives g(a) from the softmax CE and the factorization cost.

    Z Z^T = a^2 P Y Y^T P = a^2 n P with P = I - J/K, and P^2 = P (checked with J^2 = K J), so Z has
    singular value a sqrt(n) with multiplicity rank P = tr P = K - 1.
    """
    true_logit = a * (1 - 1 / K)
    other_logit = -a / K
    ce = sp.simplify(-true_logit + sp.log(sp.exp(true_logit) + (K - 1) * sp.exp(other_logit)))
    P = 1 - J / K
    P2 = sp.expand(P ** 2).subs(J ** 2, K * J)
    if sp.simplify(P2 - P) != 0:
        raise RuntimeError("I - 11^T/K is not idempotent?")
    multiplicity = K - 1  # tr(I - J/K) = K - tr(J)/K = K - 1
    sv = sp.sqrt(a ** 2 * n)
    cost = eliminate_factorization(M).cost.subs(z, sv)
    g = ce + multiplicity * cost
    g_u = g.subs(a, u ** (M + 1))
    dg = sp.together(sp.simplify(sp.diff(g_u, u) / ((M + 1) * (K - 1) * u)))
    num = sp.numer(dg)
    Lsol = sp.solve(sp.Eq(num, 0), L)
    if len(Lsol) != 1:
        raise RuntimeError(f"CE stationary equation: expected one solution for L, got {Lsol}")
    h_u = sp.simplify(sp.powsimp(Lsol[0] * n ** sp.Rational(1, M + 1), force=True))
    return CEReduction(M, ce, sv, multiplicity, g, g_u, h_u)


def ce_closed_form_M1() -> dict[str, sp.Expr]:
    """M = 1: ell = 1/(e^{a} + K - 1) solved for a, and the true-class softmax probability there."""
    red = ce_etf_reduction(1)
    sol = sp.solve(sp.Eq(red.h_u.subs(u, sp.sqrt(a)), ell), a)
    a1 = sp.simplify(sol[0])
    p_true = sp.simplify(sp.exp(a1) / (sp.exp(a1) + K - 1))
    return {"a": a1, "p_true": sp.expand(p_true)}


# ---------------------------------------------------------------------------------------------
# step 6: the extended UFM with identity activation
@lru_cache(maxsize=None)
def extended_linear_as_factor_form(Kc: int = 2, d: int = 2, Nc: int = 3) -> bool:
    """Checks symbolically (small K x d x N entries) that the extended UFM with s = identity,
    1/(2N)||W_2 s(W_1 H_1) - Y||^2 + lambda_{W2}/2||W_2||^2 + lambda_{W1}/2||W_1||^2 + lambda_{H1}/2||H_1||^2,
    is the deep linear (M+1)-factor objective with M = 2 (W_1 -> W_1, W_2 -> W_2, H_1 -> H)."""
    W2 = sp.Matrix(Kc, d, lambda i, j: sp.Symbol(f"a{i}{j}"))
    W1 = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"b{i}{j}"))
    H1 = sp.Matrix(d, Nc, lambda i, j: sp.Symbol(f"h{i}{j}"))
    Y = sp.Matrix(Kc, Nc, lambda i, j: 1 if j % Kc == i else 0)
    l1, l2, lh = lam_W(1), lam_W(2), lam_H
    ident = lambda X: X.applyfunc(lambda e: e)  # s = identity, entrywise
    fro2 = lambda X: sum(e ** 2 for e in X)
    ext = fro2(W2 * ident(W1 * H1) - Y) / (2 * Nc) + l2 / 2 * fro2(W2) + l1 / 2 * fro2(W1) + lh / 2 * fro2(H1)
    Ws = [W1, W2]
    deep = fro2(Ws[1] * Ws[0] * H1 - Y) / (2 * Nc) + sum(lam_W(j + 1) / 2 * fro2(Ws[j]) for j in range(2)) \
        + lh / 2 * fro2(H1)
    return sp.expand(ext - deep) == 0
