"""Matrix-analysis lemmas: the factorization identity, von Neumann's trace inequality, Mirsky's
singular-value bound, Schur's majorization (the "Schur-Horn" half), and the candidate ReLU step
||relu(X)||_* <= ||X||_*.

Each ``check_*`` function returns a list of ``Outcome`` (see ``core``). Claims are parametrized so
that the seeded wrong lemmas (a wrong constant or exponent, a reversed inequality) run through the
very same checks as the true ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

import mpmath as mp
import numpy as np

from ncverify.proofs_checks.lemmas.core import (EPS, SAFETY, Ctx, Outcome, Property, Trial, ascend, descend_lbfgs,
                                             integer_matrices,
                                             product_error, run_property, sum_error, sv, svd_error, symbolic_outcome)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, size=None):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), size))


def _haar(rng: np.random.Generator, n: int, k: int | None = None) -> np.ndarray:
    """n x k matrix with orthonormal columns (Haar: QR of a Gaussian with sign fix)."""
    k = n if k is None else k
    Q, R = np.linalg.qr(rng.standard_normal((n, n)))
    Q = Q * np.sign(np.diag(R))
    return Q[:, :k]


def _pq_sizes(max_dim: int, square_only: bool = False) -> list[tuple[int, int]]:
    """(p, q) with 1 <= p <= q <= max_dim, ordered by p*q then p (transposition is free for every
    lemma below, so p <= q loses nothing)."""
    s = [(p, q) for q in range(1, max_dim + 1) for p in range(1, q + 1) if not square_only or p == q]
    return sorted(s, key=lambda t: (t[0] * t[1], t[0]))


# =============================================================================================
# factorization identity
# =============================================================================================
@dataclass(frozen=True)
class FactorizationClaim:
    """The claimed minimum of sum_i lambda_i/2 ||A_i||_F^2 over A_m ... A_1 = Z:
    constant * (m/2) * (prod_i lambda_i)^{1/m} * sum_j sigma_j(Z)^{exponent/m}.
    The true lemma: constant = 1, exponent = 2 (seeded wrong lemmas change one of them)."""

    constant: float = 1.0
    exponent: int = 2
    constant_text: str = "1"

    def value(self, sig: np.ndarray, lams: np.ndarray) -> float:
        m = len(lams)
        lbar = math.exp(float(np.mean(np.log(lams))))
        s = np.clip(np.asarray(sig, dtype=float), 0.0, None)
        return self.constant * (m / 2) * lbar * float(np.sum(s ** (self.exponent / m)))

    def sympy_value(self, m: int, lams, sigmas):
        import sympy as sp

        c = sp.nsimplify(self.constant_text)
        return c * sp.Rational(m, 2) * sp.Mul(*lams) ** sp.Rational(1, m) * sum(s ** sp.Rational(self.exponent, m)
                                                                             for s in sigmas)


def _penalty(factors: list[np.ndarray], lams: np.ndarray) -> float:
    return float(sum(l / 2 * np.sum(A * A) for l, A in zip(lams, factors)))


def _chain(factors: list[np.ndarray]) -> np.ndarray:
    """A_m ... A_1 for factors = [A_1, ..., A_m]."""
    Z = factors[0]
    for A in factors[1:]:
        Z = A @ Z
    return Z


def factorization_trial(claim: FactorizationClaim, factors: list[np.ndarray], lams: np.ndarray,
                        two_sided: bool, note: str = "") -> Trial:
    """lhs = claim value at sigma(A_m ... A_1), rhs = sum_i lambda_i/2 ||A_i||_F^2 (claim: lhs <= rhs;
    ``two_sided``: lhs == rhs). Tolerance: rhs is a sum of P nonnegative squares (P eps rhs); the
    product carries the error ``product_error``, the SVD ``svd_error`` (Weyl), so each sigma_j lies in
    [sigma_j - delta, sigma_j + delta] and the claim value moves by at most its variation there."""
    Z = _chain(factors)
    sig = sv(Z)
    P = int(sum(A.size for A in factors))
    rhs = _penalty(factors, lams)
    lhs = claim.value(sig, lams)
    delta = product_error(factors) + svd_error(Z)
    hi, lo = claim.value(sig + delta, lams), claim.value(np.clip(sig - delta, 0, None), lams)
    tol = sum_error(rhs, P) + (hi - lo)
    origin = (f"penalty: {SAFETY:g} P eps x penalty (P = {P}); claim value: its variation over sigma_j +- delta, "
              f"delta = {delta:.2g} = product rounding {SAFETY:g}(m-1) d eps prod||A_i||_F + SVD {SAFETY:g} max(p,q) eps ||Z||_2")
    data = {"m": len(factors), "lambdas": lams.copy(), "factors A_1..A_m": [A.copy() for A in factors], "Z": Z,
            "sigma(Z)": sig}
    return Trial(lhs, rhs, tol, origin, data, two_sided=two_sided, note=note)


def _factor_sizes(b) -> list[tuple[int, int, int]]:
    """(m, p, q), smallest first: p*q, then m."""
    out = [(m, p, q) for (p, q) in _pq_sizes(min(3, b.max_dim)) for m in range(1, b.max_factors + 1)]
    return sorted(out, key=lambda s: (s[1] * s[2], s[0], s[1]))


def _factor_prop(claim: FactorizationClaim, b, relation: str) -> Property:
    return Property(relation=relation, sizes=_factor_sizes(b),
                    describe=lambda s: f"m = {s[0]} factors, Z {s[1]} x {s[2]}")


def balanced_factorization(Z: np.ndarray, lams: np.ndarray, rng: np.random.Generator, extra: int = 0) -> list[np.ndarray]:
    """The balanced aligned factorization of Z = U S V^T (r = rank, intermediate widths r + extra):
    A_1 = c_1 Q_1 S^{1/m} V^T, A_i = c_i Q_i S^{1/m} Q_{i-1}^T, A_m = c_m U S^{1/m} Q_{m-1}^T with
    c_i = sqrt(Lbar / lambda_i) (prod c_i = 1) and random orthonormal Q_i (d_i x r)."""
    m = len(lams)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    r = max(int(np.sum(s > svd_error(Z))), 1)
    U, s, Vt = U[:, :r], s[:r], Vt[:r]
    lbar = math.exp(float(np.mean(np.log(lams))))
    root = np.diag(s ** (1.0 / m))
    Qs = [Vt.T] + [_haar(rng, r + extra, r) for _ in range(m - 1)] + [U]
    return [math.sqrt(lbar / lams[i]) * Qs[i + 1] @ root @ Qs[i].T for i in range(m)]


def check_factorization(claim: FactorizationClaim, ctx: Ctx) -> list[Outcome]:
    """Symbolic (per-mode cost vs the theory engine's elimination; m = 2 nuclear norm; m = 2 sum of
    squares), constructed balanced factorizations (==), random factorizations (>=) and an adversarial
    descent on the penalty over factorizations of a fixed Z (never below the claimed minimum)."""
    import sympy as sp

    b = ctx.budget
    rel_min = "claimed min (c m/2) Lbar sum_j sigma_j(Z)^{e/m} <= sum_i lambda_i/2 ||A_i||_F^2"
    out: list[Outcome] = []

    def sym_elimination():
        from ncverify.theory import reduced as R

        bad = []
        for M in range(1, b.max_factors):
            el = R.eliminate_factorization(M)
            lams = [R.lam_H] + [R.lam_W(j) for j in range(1, M + 1)]
            mine = claim.sympy_value(M + 1, lams, [R.z])
            diff = sp.simplify(sp.powsimp(mine - el.cost.subs(R.L, el.L_expr), force=True))
            if diff != 0:
                bad.append((M + 1, sp.sstr(diff)))
        det = f"claimed per-mode term == theory.reduced.eliminate_factorization(M).cost for m = M+1 = 2..{b.max_factors}"
        return (not bad, det, {"size": (bad[0][0],) if bad else (0,), "dims": f"m = {bad[0][0]}" if bad else "",
                               "difference": bad[0][1] if bad else "0"})

    out.append(symbolic_outcome("per-mode cost equals the theory engine's derived elimination", sym_elimination,
                                "claim(m, z) == ((M+1)/2) L z^{2/(M+1)}"))

    def sym_nuclear():
        l1, l2, s1, s2 = sp.symbols("lambda_1 lambda_2 sigma_1 sigma_2", positive=True)
        diff = sp.simplify(claim.sympy_value(2, [l1, l2], [s1, s2]) - sp.sqrt(l1 * l2) * (s1 + s2))
        return (diff == 0, "m = 2: claim == sqrt(lambda_1 lambda_2) ||Z||_* (two singular values, symbolic)",
                {"size": (2, 2, 2), "dims": "m = 2, two singular values", "difference": sp.sstr(diff)})

    out.append(symbolic_outcome("m = 2 gives sqrt(lambda_1 lambda_2) ||Z||_*", sym_nuclear))

    def sym_sos():
        l1, l2, a, c = sp.symbols("lambda_1 lambda_2 a b", positive=True)
        gap = l1 / 2 * a ** 2 + l2 / 2 * c ** 2 - claim.sympy_value(2, [l1, l2], [a * c])
        diff = sp.simplify(sp.expand(gap - (sp.sqrt(l1) * a - sp.sqrt(l2) * c) ** 2 / 2))
        return (diff == 0, "m = 2, scalars: lambda_1/2 a^2 + lambda_2/2 b^2 - claim(ab) == (sqrt(lambda_1) a - "
                           "sqrt(lambda_2) b)^2 / 2 >= 0, zero exactly at the balanced lambda_1 a^2 = lambda_2 b^2",
                {"size": (2, 1, 1), "dims": "m = 2, Z 1 x 1", "difference": sp.sstr(diff)})

    out.append(symbolic_outcome("m = 2 scalar case is a sum of squares (AM-GM)", sym_sos))

    # constructed balanced factorizations: claim value == penalty
    rng_c = ctx.rng("factorization/constructed")
    n_c = max(2, b.random_trials // 8)

    def constructed(size) -> Iterable[Trial]:
        m, p, q = size
        for _ in range(n_c):
            lams = _log_uniform(rng_c, 1e-2, 1e1, m)
            Z = rng_c.standard_normal((p, q)) * _log_uniform(rng_c, 0.1, 10)
            A = balanced_factorization(Z, lams, rng_c, extra=int(rng_c.integers(0, 2)))
            yield factorization_trial(claim, A, lams, two_sided=True)

    prop = _factor_prop(claim, b, "claimed min (c m/2) Lbar sum_j sigma_j^{e/m} == penalty of the balanced aligned factorization")
    out.append(run_property("equality at the balanced aligned factorization", "constructed", prop, constructed))

    # random factorizations: claim value <= penalty
    rng_r = ctx.rng("factorization/random")

    def random_f(size) -> Iterable[Trial]:
        m, p, q = size
        for _ in range(b.random_trials):
            lams = _log_uniform(rng_r, 1e-2, 1e1, m)
            dims = [q] + [int(rng_r.integers(1, max(p, q) + 2)) for _ in range(m - 1)] + [p]
            scale = _log_uniform(rng_r, 0.1, 10)
            A = [rng_r.standard_normal((dims[i + 1], dims[i])) * scale for i in range(m)]
            yield factorization_trial(claim, A, lams, two_sided=False)

    out.append(run_property("lower bound on random factorizations", "random", _factor_prop(claim, b, rel_min), random_f))

    # adversarial: minimize the penalty over factorizations of a fixed Z (free A_m..A_2, A_1 = B^+ Z)
    tg = ctx.torch_gen("factorization/adversarial")
    rng_a = ctx.rng("factorization/adversarial")
    closest: list[float] = []

    def descent(size) -> Iterable[Trial]:
        import torch

        m, p, q = size
        if m < 2:
            return
        S = b.adversarial_starts
        d = max(p, q)
        dims = [q] + [d] * (m - 1) + [p]
        lams = _log_uniform(rng_a, 1e-2, 1e1, m)
        Z = rng_a.standard_normal((p, q))
        Zt = torch.as_tensor(Z)
        lt = torch.as_tensor(lams)
        free0 = [torch.randn((S, dims[i + 1], dims[i]), generator=tg, dtype=torch.float64) for i in range(1, m)]

        def first(free):  # A_1 = B^T (B B^T)^{-1} Z, B = A_m ... A_2 (p x d, full row rank generically)
            B = free[0]
            for A in free[1:]:
                B = A @ B
            return B.transpose(1, 2) @ torch.linalg.solve(B @ B.transpose(1, 2), Zt.expand(S, p, q))

        def neg_penalty(free):
            A1 = first(free)
            pen = lt[0] / 2 * (A1 ** 2).sum((1, 2))
            for l, A in zip(lt[1:], free):
                pen = pen + l / 2 * (A ** 2).sum((1, 2))
            return -pen

        best = descend_lbfgs(free0, lambda fr: -neg_penalty(fr), b.adversarial_steps)
        with torch.no_grad():
            A1 = first(best)
        trials = []
        for s in range(S):
            fac = [A1[s].numpy().copy()] + [f[s].numpy().copy() for f in best]
            if not all(np.all(np.isfinite(F)) for F in fac):
                continue
            trials.append(factorization_trial(claim, fac, lams, two_sided=False))
        if trials:
            gap = min((t.rhs - t.lhs) / max(t.rhs, 1e-300) for t in trials)
            closest.append(gap)
            trials[-1].note = (f"closest approach of the descent, penalty/claim - 1: from {min(closest):.2g} to "
                               f"{max(closest):.2g} over the sizes (0 = the claimed minimum is reached)")
        yield from trials

    out.append(run_property("adversarial descent on the penalty over factorizations of a fixed Z", "adversarial",
                            _factor_prop(claim, b, rel_min), descent))
    return out


# =============================================================================================
# von Neumann, Mirsky, Schur
# =============================================================================================
def _mp_sv(X: np.ndarray, dps: int = 50) -> list:
    with mp.workdps(dps):
        if X.size == 0:
            return []
        M = mp.matrix([[mp.mpf(Fraction(float(v)).numerator) / Fraction(float(v)).denominator for v in row]
                       for row in np.atleast_2d(X)])
        return list(mp.svd_r(M, compute_uv=False))


def von_neumann_trial(A: np.ndarray, B: np.ndarray, reversed_: bool = False, two_sided: bool = False) -> Trial:
    """|tr(A^T B)| vs sum_i sigma_i(A) sigma_i(B). Tolerance: the inner product of pq terms
    ({SAFETY} pq eps ||A||_F ||B||_F) plus the SVD errors delta_A sum sigma(B) + delta_B sum sigma(A) + r delta_A delta_B."""
    t = abs(float(np.sum(A * B)))
    sa, sb = sv(A), sv(B)
    s = float(np.sum(sa * sb))
    da, db = svd_error(A), svd_error(B)
    tol = (SAFETY * A.size * EPS * np.linalg.norm(A) * np.linalg.norm(B) + da * sb.sum() + db * sa.sum()
           + len(sa) * da * db)
    origin = (f"inner product {SAFETY:g} pq eps ||A||_F ||B||_F + SVD errors delta = {SAFETY:g} max(p,q) eps ||.||_2 "
              f"(Weyl) times the other side's singular values")
    lhs, rhs = (s, t) if reversed_ else (t, s)
    return Trial(lhs, rhs, float(tol), origin, {"A": A.copy(), "B": B.copy(), "tr(A^T B)": float(np.sum(A * B)),
                                                "sigma(A)": sa, "sigma(B)": sb}, two_sided=two_sided)


def _vn_exact(data: dict) -> dict:
    A, B = np.asarray(data["A"], float), np.asarray(data["B"], float)
    tr = sum(Fraction(float(a)) * Fraction(float(c)) for a, c in zip(A.flat, B.flat))
    with mp.workdps(50):
        s = sum(x * y for x, y in zip(_mp_sv(A), _mp_sv(B)))
        return {"tr(A^T B) (exact rational)": str(tr), "sum sigma_i(A) sigma_i(B) (50 digits)": mp.nstr(s, 30),
                "difference (50 digits)": mp.nstr(s - abs(mp.mpf(tr.numerator) / tr.denominator), 30)}


def check_von_neumann(ctx: Ctx, reversed_: bool = False) -> list[Outcome]:
    """Random pairs (Gaussian, low rank, nearly aligned), adversarial ascent of the normalized
    violation, and the equality case (common SVD). ``reversed_`` seeds the wrong lemma with >=."""
    import torch

    b = ctx.budget
    sizes = _pq_sizes(b.max_dim)
    rel = ("sum_i sigma_i(A) sigma_i(B) <= |tr(A^T B)|  (reversed: WRONG)" if reversed_
           else "|tr(A^T B)| <= sum_i sigma_i(A) sigma_i(B)")

    def ev(d: dict) -> Trial:
        return von_neumann_trial(np.asarray(d["A"], float), np.asarray(d["B"], float), reversed_)

    prop = Property(rel, sizes, lambda s: f"A, B {s[0]} x {s[1]}", evaluate=ev,
                    integer_candidates=lambda s, lim: integer_matrices([("A", s), ("B", s)], lim),
                    exact=_vn_exact)
    rng = ctx.rng(f"von-neumann/random/{reversed_}")

    def random_t(size) -> Iterable[Trial]:
        p, q = size
        for i in range(b.random_trials):
            A = rng.standard_normal((p, q)) * _log_uniform(rng, 0.1, 10)
            kind = i % 3
            if kind == 0:
                B = rng.standard_normal((p, q))
            elif kind == 1:  # low rank
                B = rng.standard_normal((p, 1)) @ rng.standard_normal((1, q))
            else:  # nearly aligned with A (where the bound is tight)
                B = A * _log_uniform(rng, 0.1, 10) + 1e-3 * rng.standard_normal((p, q))
            yield von_neumann_trial(A, B, reversed_)

    out = [run_property("random pairs", "random", prop, random_t)]
    tg = ctx.torch_gen(f"von-neumann/adversarial/{reversed_}")

    def adv(size) -> Iterable[Trial]:
        p, q = size
        S = b.adversarial_starts
        x0 = [torch.randn((S, p, q), generator=tg, dtype=torch.float64) for _ in range(2)]

        def viol(ps):
            A, B = ps
            t = (A * B).sum((1, 2)).abs()
            s = (torch.linalg.svdvals(A) * torch.linalg.svdvals(B)).sum(-1)
            v = (s - t) if reversed_ else (t - s)
            return v / (A.flatten(1).norm(dim=1) * B.flatten(1).norm(dim=1))

        best = ascend(x0, viol, b.adversarial_steps, lr=0.03)
        for s in range(S):
            yield von_neumann_trial(best[0][s].numpy().copy(), best[1][s].numpy().copy(), reversed_)

    out.append(run_property("adversarial ascent of the violation", "adversarial", prop, adv))
    rng_c = ctx.rng("von-neumann/constructed")

    def eq(size) -> Iterable[Trial]:
        p, q = size
        r = min(p, q)
        for _ in range(max(2, b.random_trials // 8)):
            U, V = _haar(rng_c, p, r), _haar(rng_c, q, r)
            a = np.sort(rng_c.uniform(0, 3, r))[::-1]
            c = np.sort(rng_c.uniform(0, 3, r))[::-1]
            yield von_neumann_trial(U @ np.diag(a) @ V.T, U @ np.diag(c) @ V.T, reversed_, two_sided=True)

    out.append(run_property("equality at a common SVD", "constructed",
                            Property("|tr(A^T B)| == sum_i sigma_i(A) sigma_i(B) for A = U diag(a) V^T, B = U diag(b) V^T",
                                     sizes, prop.describe), eq))
    return out


def mirsky_trial(Z: np.ndarray, Y: np.ndarray, two_sided: bool = False) -> Trial:
    """sum_i (sigma_i(Z) - sigma_i(Y))^2 vs ||Z - Y||_F^2. Tolerance: rhs rounding {SAFETY} pq eps
    (||Z|| + ||Y||)^2; lhs: the SVD errors propagated, sum_i 2 |sigma_i(Z) - sigma_i(Y)| (dZ + dY) + r (dZ + dY)^2."""
    sz, sy = sv(Z), sv(Y)
    lhs = float(np.sum((sz - sy) ** 2))
    rhs = float(np.sum((Z - Y) ** 2))
    dd = svd_error(Z) + svd_error(Y)
    tol = (SAFETY * Z.size * EPS * (np.linalg.norm(Z) + np.linalg.norm(Y)) ** 2
           + float(np.sum(2 * np.abs(sz - sy) * dd)) + len(sz) * dd * dd)
    return Trial(lhs, rhs, float(tol), "rhs rounding + SVD errors (Weyl) propagated through the squares",
                 {"Z": Z.copy(), "Y": Y.copy(), "sigma(Z)": sz, "sigma(Y)": sy}, two_sided=two_sided)


def check_mirsky(ctx: Ctx) -> list[Outcome]:
    """Random pairs (including label-like Y), adversarial ascent, and equality at a common SVD."""
    import torch

    b = ctx.budget
    sizes = _pq_sizes(b.max_dim)
    rel = "sum_i (sigma_i(Z) - sigma_i(Y))^2 <= ||Z - Y||_F^2"
    prop = Property(rel, sizes, lambda s: f"Z, Y {s[0]} x {s[1]}",
                    evaluate=lambda d: mirsky_trial(np.asarray(d["Z"], float), np.asarray(d["Y"], float)))
    rng = ctx.rng("mirsky/random")

    def random_t(size) -> Iterable[Trial]:
        p, q = size
        for i in range(b.random_trials):
            Z = rng.standard_normal((p, q)) * _log_uniform(rng, 0.1, 10)
            if i % 2:  # one-hot labels (classes = rows), as in the reduction
                Y = np.zeros((p, q))
                Y[rng.integers(0, p, q), np.arange(q)] = 1.0
            else:
                Y = rng.standard_normal((p, q))
            yield mirsky_trial(Z, Y)

    out = [run_property("random pairs (half with one-hot label matrices)", "random", prop, random_t)]
    tg = ctx.torch_gen("mirsky/adversarial")

    def adv(size) -> Iterable[Trial]:
        p, q = size
        S = b.adversarial_starts
        x0 = [torch.randn((S, p, q), generator=tg, dtype=torch.float64) for _ in range(2)]

        def viol(ps):
            Z, Y = ps
            lhs = ((torch.linalg.svdvals(Z) - torch.linalg.svdvals(Y)) ** 2).sum(-1)
            rhs = ((Z - Y) ** 2).sum((1, 2))
            return (lhs - rhs) / ((Z ** 2).sum((1, 2)) + (Y ** 2).sum((1, 2)))

        best = ascend(x0, viol, b.adversarial_steps, lr=0.03)
        for s in range(S):
            yield mirsky_trial(best[0][s].numpy().copy(), best[1][s].numpy().copy())

    out.append(run_property("adversarial ascent of the violation", "adversarial", prop, adv))
    rng_c = ctx.rng("mirsky/constructed")

    def eq(size) -> Iterable[Trial]:
        p, q = size
        r = min(p, q)
        for _ in range(max(2, b.random_trials // 8)):
            U, V = _haar(rng_c, p, r), _haar(rng_c, q, r)
            a, c = np.sort(rng_c.uniform(0, 3, r))[::-1], np.sort(rng_c.uniform(0, 3, r))[::-1]
            yield mirsky_trial(U @ np.diag(a) @ V.T, U @ np.diag(c) @ V.T, two_sided=True)

    out.append(run_property("equality at a common SVD (aligned, same order)", "constructed",
                            Property("sum_i (sigma_i(Z) - sigma_i(Y))^2 == ||Z - Y||_F^2 when aligned", sizes,
                                     prop.describe), eq))
    return out


def schur_trial(S: np.ndarray, U: np.ndarray, d: np.ndarray, part: str) -> Trial:
    """part "majorization": lhs = sum of the k largest diagonal entries of U^T S U, rhs = sum of the k
    largest eigenvalues of S, at the k with the largest violation. part "trace": lhs = tr(D U^T S U),
    rhs = sum_i d_[i] mu_[i] (both sorted decreasingly), D = diag(d).
    Tolerance: eigenvalues within {SAFETY} K eps ||S||_2 (symmetric eigensolver, Weyl); diagonal entries
    of U^T S U within {SAFETY} K eps ||S||_2 (||U||_2 = 1 up to rounding); summed over k terms."""
    K = S.shape[0]
    mu = np.sort(np.linalg.eigvalsh(S))[::-1]
    G = U.T @ S @ U
    delta = np.diag(G)
    e = SAFETY * K * EPS * float(np.linalg.norm(S, 2))
    if part == "majorization":
        ds = np.cumsum(np.sort(delta)[::-1])
        ms = np.cumsum(mu)
        k = int(np.argmax(ds - ms))
        lhs, rhs, tol = float(ds[k]), float(ms[k]), 2 * (k + 1) * e
        extra = {"k": k + 1}
    else:
        lhs = float(np.sum(d * delta))
        rhs = float(np.sum(np.sort(d)[::-1] * mu))
        tol = 2 * float(np.sum(np.abs(d))) * e + SAFETY * K * EPS * float(np.sum(np.abs(d * delta)))
        extra = {"d": d.copy()}
    data = {"S": S.copy(), "U": U.copy(), "diag(U^T S U)": delta, "eigenvalues of S": mu, **extra}
    return Trial(lhs, rhs, tol, "eigenvalue and diagonal errors (K eps ||S||_2 each) summed over the compared terms", data)


def check_schur(ctx: Ctx) -> list[Outcome]:
    """Random symmetric S and Haar U; adversarial ascent over U = exp(skew) and S; both parts."""
    import torch

    b = ctx.budget
    sizes = [(K,) for K in range(1, b.max_dim + 2)]
    out: list[Outcome] = []
    for part, rel in (("majorization", "sum of the k largest entries of diag(U^T S U) <= mu_1 + ... + mu_k"),
                      ("trace", "tr(D U^T S U) <= sum_i d_[i] mu_[i]  (D = diag(d), both sorted decreasingly)")):
        prop = Property(rel, sizes, lambda s: f"K = {s[0]}")
        rng = ctx.rng(f"schur/{part}/random")

        def random_t(size, rng=rng, part=part) -> Iterable[Trial]:
            K = size[0]
            for _ in range(b.random_trials):
                Q = rng.standard_normal((K, K)) * _log_uniform(rng, 0.1, 10)
                S = (Q + Q.T) / 2
                if rng.random() < 0.5:  # positive semidefinite (a Gram matrix W W^T)
                    S = Q @ Q.T
                yield schur_trial(S, _haar(rng, K), np.sort(rng.uniform(0, 5, K))[::-1], part)

        out.append(run_property(f"{part}: random symmetric S, Haar U", "random", prop, random_t))
        tg = ctx.torch_gen(f"schur/{part}/adversarial")

        def adv(size, tg=tg, part=part) -> Iterable[Trial]:
            K = size[0]
            St = b.adversarial_starts
            x0 = [torch.randn((St, K, K), generator=tg, dtype=torch.float64) for _ in range(2)]
            dvec = torch.sort(torch.rand((St, K), generator=tg, dtype=torch.float64) * 5, dim=1, descending=True).values

            def parts(ps):
                P, Q = ps
                U = torch.linalg.matrix_exp(P - P.transpose(1, 2))
                S = (Q + Q.transpose(1, 2)) / 2
                return U, S

            def viol(ps):
                U, S = parts(ps)
                mu = torch.linalg.eigvalsh(S).flip(-1)
                delta = torch.diagonal(U.transpose(1, 2) @ S @ U, dim1=1, dim2=2)
                scale = S.flatten(1).norm(dim=1)
                if part == "majorization":
                    ds = torch.cumsum(torch.sort(delta, dim=1, descending=True).values, 1)
                    return (ds - torch.cumsum(mu, 1)).max(dim=1).values / scale
                return ((dvec * delta).sum(1) - (dvec * mu).sum(1)) / scale

            best = ascend(x0, viol, b.adversarial_steps, lr=0.03)
            with torch.no_grad():
                U, S = parts(best)
            for s in range(St):
                Un = U[s].numpy().copy()
                Un, _ = np.linalg.qr(Un)  # re-orthonormalize in float64 (the claim is about orthogonal U)
                yield schur_trial(S[s].numpy().copy(), Un, dvec[s].numpy().copy(), part)

        out.append(run_property(f"{part}: adversarial ascent over U = exp(skew) and S", "adversarial", prop, adv))
    return out


# =============================================================================================
# ReLU and the nuclear norm
# =============================================================================================
def relu_trial(X: np.ndarray) -> Trial:
    """lhs = ||relu(X)||_*, rhs = ||X||_*. Tolerance: every singular value within its SVD error
    ({SAFETY} max(p,q) eps ||.||_2), summed over the min(p,q) values of both sides."""
    R = np.maximum(X, 0.0)
    sr, sx = sv(R), sv(X)
    tol = len(sx) * (svd_error(R) + svd_error(X))
    return Trial(float(sr.sum()), float(sx.sum()), tol,
                 f"min(p,q) x ({SAFETY:g} max(p,q) eps (||relu(X)||_2 + ||X||_2)): SVD errors of both sides",
                 {"X": X.copy(), "relu(X)": R, "sigma(X)": sx, "sigma(relu(X))": sr})


def relu_exact(data: dict) -> dict:
    """Both nuclear norms at 50 digits (mpmath SVD of the exact binary values), and for integer
    matrices the exact characteristic polynomials of X^T X and relu(X)^T relu(X) (their roots are the
    squared singular values) plus SymPy's closed form when it finds one."""
    import sympy as sp

    X = np.asarray(data["X"], float)
    R = np.maximum(X, 0.0)
    out: dict = {}
    with mp.workdps(60):
        nx, nr = sum(_mp_sv(X, 60)), sum(_mp_sv(R, 60))
        out.update({"||X||_* (50 digits)": mp.nstr(nx, 30), "||relu(X)||_* (50 digits)": mp.nstr(nr, 30),
                    "violation (50 digits)": mp.nstr(nr - nx, 30)})
    if np.all(X == np.round(X)):
        lam = sp.Symbol("x")
        Xs, Rs = sp.Matrix(X.astype(int).tolist()), sp.Matrix(R.astype(int).tolist())
        out["charpoly of X^T X"] = sp.sstr((Xs.T * Xs).charpoly(lam).as_expr())
        out["charpoly of relu(X)^T relu(X)"] = sp.sstr((Rs.T * Rs).charpoly(lam).as_expr())
        if Xs.is_symmetric() and Rs.is_symmetric():
            out["charpoly of X"] = sp.sstr(Xs.charpoly(lam).as_expr())
            out["charpoly of relu(X)"] = sp.sstr(Rs.charpoly(lam).as_expr())
            try:
                nuc_x = sp.nsimplify(sum(abs(r) for r in sp.Poly(Xs.charpoly(lam).as_expr(), lam).all_roots()))
                ex = sp.nsimplify(sp.N(nuc_x, 50), [sp.sqrt(2), sp.sqrt(3), sp.sqrt(5)])
                if abs(sp.N(ex - nuc_x, 40)) < sp.Float(10) ** -35:
                    out["||X||_* (closed form)"] = sp.sstr(ex)
            except Exception:  # pragma: no cover - closed forms are a bonus
                pass
    return out


def check_relu_nuclear(ctx: Ctx) -> list[Outcome]:
    """Random matrices (Gaussian and PSD Gram matrices), the circulant Gram matrices of equally spaced
    unit vectors in the plane, and adversarial ascent of (||relu X||_* - ||X||_*)/||X||_F."""
    import torch

    b = ctx.budget
    sizes = _pq_sizes(b.max_dim)
    rel = "||relu(X)||_* <= ||X||_*"
    prop = Property(rel, sizes, lambda s: f"X {s[0]} x {s[1]}", evaluate=lambda d: relu_trial(np.asarray(d["X"], float)),
                    integer_candidates=lambda s, lim: integer_matrices([("X", s)], lim), exact=relu_exact)
    rng = ctx.rng("relu/random")

    def random_t(size) -> Iterable[Trial]:
        p, q = size
        for i in range(b.random_trials):
            if p == q and i % 2:  # PSD Gram matrix of p vectors in R^k
                V = rng.standard_normal((int(rng.integers(1, p + 1)), p))
                X = V.T @ V
            else:
                X = rng.standard_normal((p, q))
            yield relu_trial(X)

    out = [run_property("random matrices (Gaussian; PSD Gram matrices when square)", "random", prop, random_t)]

    def circulant(size) -> Iterable[Trial]:
        p, q = size
        if p != q:
            return
        t = 2 * np.pi * np.arange(p) / p
        U = np.stack([np.cos(t), np.sin(t)])
        yield relu_trial(U.T @ U)

    circ_sizes = [(n, n) for n in range(1, max(b.max_dim, 8) + 1)]
    out.append(run_property("circulant X = U^T U, columns of U = (cos t_i, sin t_i), t_i = 2 pi i / n", "constructed",
                            Property(rel, circ_sizes, lambda s: f"X {s[0]} x {s[1]}", exact=relu_exact), circulant))
    tg = ctx.torch_gen("relu/adversarial")

    def adv(size) -> Iterable[Trial]:
        p, q = size
        S = b.adversarial_starts
        x0 = [torch.randn((S, p, q), generator=tg, dtype=torch.float64)]

        def viol(ps):
            X = ps[0]
            Xn = X / X.flatten(1).norm(dim=1)[:, None, None]
            return torch.linalg.svdvals(torch.relu(Xn)).sum(-1) - torch.linalg.svdvals(Xn).sum(-1)

        best = ascend(x0, viol, b.adversarial_steps, lr=0.02)
        for s in range(S):
            X = best[0][s].numpy().copy()
            yield relu_trial(X / np.linalg.norm(X))

    out.append(run_property("adversarial ascent of the violation (from 1 x 1 upward)", "adversarial", prop, adv))
    return out
