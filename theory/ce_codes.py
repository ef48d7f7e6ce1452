"""Deep linear cross-entropy beyond the simplex ETF: the reduced K x K problem, candidate logit geometries
("codes"), their exact values, the global selection and the phase boundaries in ell.

The reduced problem (checked by the lemmas factorization-identity, ce-class-averaging, reduction:ce-deep and
ce-codes-global of ``ncverify lemmas``). Balanced classes, n per class,
depth M, no bias (or a regularized bias that is 0 at the optimum), every width d >= rank of the logits:

    f* = min over K x K class-mean logit matrices Zbar of
         F(Zbar) = (1/K) sum_k CE(zbar_k, k) + A sum_i sigma_i(Zbar)^p,
    p = 2/(M+1),  A = ((M+1)/2) ell,  ell = L n^(1/(M+1)),  L = (lambda_H prod_j lambda_Wj)^(1/(M+1)),

(the factorization identity: the weight and feature penalties of Z = W_M...W_1 H are at least
((M+1)/2) L sum_i sigma_i(Z)^p, equal at balanced aligned factorizations; class averaging: sigma_i(Z P) <=
sigma_i(Z) and CE is convex, and sigma_i(Zbar (x) 1_n^T) = sqrt(n) sigma_i(Zbar)). F depends on the instance only
through K, M and ell, so every phase boundary is a value of ell.

Codes. A code is a direct sum of circulant blocks: a block of k classes with frequencies m (0 <= m <= k/2)
has logits zbar_{j,k'} = sum_m theta_m u_m cos(2 pi m (j - k') / k) inside the block and 0 outside it (u_m = 1/2
for m = 0 and m = k/2, else 1). Its singular values are theta_m k/2 (twice for 0 < m < k/2, once for m = 0 and
m = k/2), so the penalty is explicit; every class of a block has the same CE. Named cases: the simplex ETF (one block, every
frequency, one amplitude: logits a (e_k - 1/K 1)), regular and star polygons (one frequency), cross-polytopes
(odd frequencies, one amplitude), antiprisms (frequencies 1 and k/2), bipyramids (a polygon block plus an
antipodal pair), singletons (a class on its own axis) and dead classes (logits 0, CE = log K). A *coupled* code
adds one shared block-constant direction a b^T (a, b constant on each block type with free weights alpha_t, beta_t;
rank one, orthogonal to every nonzero frequency, singular value ||a|| ||b||): a class-dependent logit shift between
blocks of different kinds (needed e.g. for K = 5, M = 2: a square whose fifth class lives on the shared direction).
The free parameters (amplitudes theta, one per block type and frequency, or one per block type when "tied"; and
alpha, beta) are found by Newton's method in float64 (pruning) and refined in mpmath; each code's value is that of an explicit point, so it is an upper
bound on f*, and the least one is the derived global minimum, cross-checked by the reduced numeric search
(``numerics.ce_reduced``) which is free to find any other structure.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import mpmath
import numpy as np

#: codes whose float value is within this relative margin of the best one are refined in mpmath
PRUNE_MARGIN = 1e-3
#: a float64 Newton row whose gradient in (log theta, alpha, beta) is below this everywhere has converged (the
#: coupled codes' gauge a -> c a, b -> b / c leaves a flat direction along which steps need not shrink)
GRAD_CONVERGED = 1e-11
#: an amplitude below this (relative to the largest) means the code degenerates into a smaller one
DEGENERATE = 1e-7


@dataclass(frozen=True)
class Block:
    """k = ``size`` classes; ``freqs`` the frequencies with a positive amplitude (() = dead classes);
    ``tied``: one amplitude for all of them (the ETF, cross-polytopes) instead of one each."""

    size: int
    freqs: tuple[int, ...]
    tied: bool = False

    @property
    def dead(self) -> bool:
        return not self.freqs

    def orbit(self, m: int) -> tuple[int, int]:
        """(multiplicity, singular value per unit amplitude) of frequency m."""
        k = self.size
        return (1, k / 2) if (m == 0 or 2 * m == k) else (2, k / 2)

    @property
    def rank(self) -> int:
        return sum(self.orbit(m)[0] for m in self.freqs)

    def name(self) -> str:
        k, f = self.size, self.freqs
        if not f:
            return f"{k} dead class{'es' if k > 1 else ''}"
        if k == 1:
            return "singleton"
        if k == 2 and f == (1,):
            return "antipodal pair"
        if self.tied and f == tuple(range(1, k // 2 + 1)):
            return f"simplex ETF on {k}"
        if self.tied and k % 2 == 0 and f == tuple(range(1, k // 2 + 1, 2)):
            return f"cross-polytope on {k}"
        if len(f) == 1 and f[0] > 0 and 2 * f[0] != k:
            g = math.gcd(f[0], k)
            if g == 1:
                return f"regular {k}-gon" if f[0] == 1 else f"star {k}-gon {{{k}/{f[0]}}}"
            return f"regular {k // g}-gon, each vertex {g} classes"
        if len(f) == 1 and 2 * f[0] == k:
            return f"two antipodal groups of {k // 2}"
        if k % 2 == 0 and f == (1, k // 2):
            return f"antiprism over a {k // 2}-gon" if k >= 6 else "tetrahedron (circulant form)"
        return f"circulant {k} (frequencies {', '.join(map(str, f))}{', tied' if self.tied else ''})"


@dataclass(frozen=True)
class Code:
    """A direct sum of blocks: ((block, multiplicity), ...), identical blocks sharing their amplitudes.
    ``coupled``: plus one shared block-constant direction a b^T (a, b constant on each block type, free weights
    alpha_t, beta_t per type): a class-dependent logit shift between blocks, which non-transitive codes use."""

    blocks: tuple[tuple[Block, int], ...]
    coupled: bool = False

    @property
    def K(self) -> int:
        return sum(b.size * c for b, c in self.blocks)

    @property
    def rank(self) -> int:
        return sum(b.rank * c for b, c in self.blocks) + (1 if self.coupled else 0)

    @property
    def params(self) -> list[tuple[int, tuple[int, ...]]]:
        """One amplitude per (block index, frequencies it scales)."""
        out = []
        for i, (b, _) in enumerate(self.blocks):
            if b.tied:
                out.append((i, b.freqs))
            else:
                out.extend((i, (m,)) for m in b.freqs)
        return out

    @property
    def is_etf(self) -> bool:
        return not self.coupled and len(self.blocks) == 1 and self.blocks[0][0].name().startswith("simplex ETF")

    def name(self) -> str:
        tail = " with a shared block-constant direction" if self.coupled else ""
        dead = [(b, c) for b, c in self.blocks if b.dead]
        if self.coupled and dead:  # classes whose logits come from the shared direction only
            k = sum(b.size * c for b, c in dead)
            rest = Code(tuple(bc for bc in self.blocks if not bc[0].dead)).name() if len(dead) < len(self.blocks) else ""
            return (rest + " + " if rest else "") + f"{k} class{'es' if k > 1 else ''} on the shared direction only" + tail
        if len(self.blocks) == 1 and self.blocks[0][0] == Block(2, (1,)) and self.blocks[0][1] > 1:
            c = self.blocks[0][1]
            return f"cross-polytope on {2 * c} ({c} antipodal pairs on orthogonal axes)" + tail
        parts = []
        for b, c in self.blocks:
            nm = b.name()
            parts.append(nm if c == 1 else f"{c} x {nm}")
        if len(parts) == 2 and self.blocks[0][1] == 1 and self.blocks[1] == (Block(2, (1,)), 1) \
                and len(self.blocks[0][0].freqs) == 1 and self.blocks[0][0].freqs[0] == 1:
            return f"{self.blocks[0][0].size}-gonal bipyramid" + tail
        return " + ".join(parts) + tail


def etf_code(K: int) -> Code:
    return Code(((Block(K, tuple(range(1, K // 2 + 1)), tied=True), 1),))


def _block_types(k: int, allow_zero: bool) -> list[Block]:
    """Blocks of k classes: at most two free frequencies (plus the tied ETF / cross-polytope forms)."""
    freqs = list(range(0 if (allow_zero and k >= 2) else (0 if k == 1 else 1), k // 2 + 1))
    if k == 1:
        return [Block(1, (0,))]
    out = [Block(k, (m,)) for m in freqs]
    out += [Block(k, pair) for pair in itertools.combinations(freqs, 2)]
    if k >= 3:
        out.append(Block(k, tuple(range(1, k // 2 + 1)), tied=True))
    if k >= 6 and k % 2 == 0:
        out.append(Block(k, tuple(range(1, k // 2 + 1, 2)), tied=True))
    return out


def _partitions(K: int, max_part: int | None = None) -> list[tuple[int, ...]]:
    max_part = K if max_part is None else max_part
    if K == 0:
        return [()]
    out = []
    for first in range(min(K, max_part), 0, -1):
        out += [(first,) + rest for rest in _partitions(K - first, first)]
    return out


@lru_cache(maxsize=None)
def enumerate_codes(K: int, max_types: int = 2) -> tuple[Code, ...]:
    """Every code on K classes with at most ``max_types`` distinct live block types (identical blocks share their
    amplitudes), at most one group of dead classes, each block with at most two free frequencies (or the tied
    ETF / cross-polytope forms); every code with more than one block also coupled (``Code.coupled``; its
    within-block frequency 0 is then part of the coupling). Always includes the simplex ETF. Total collapse
    (Zbar = 0) is not a code."""
    codes: set[Code] = set()
    for dead in range(0, K):
        live = K - dead
        for part in _partitions(live):
            sizes = sorted(set(part), reverse=True)
            counts = {s: part.count(s) for s in sizes}
            if len(sizes) > max_types:
                continue
            several = len(part) > 1 or dead > 0
            choices = [_block_types(s, several) for s in sizes]
            for combo in itertools.product(*choices):
                blocks = [(b, counts[b.size]) for b in combo]
                if dead:
                    blocks.append((Block(dead, ()), 1))
                codes.add(Code(tuple(blocks)))
                if several and all(0 not in b.freqs or b.size == 1 for b in combo):
                    # singletons keep their own axis (m = 0 of a 1-class block is not a within-block constant)
                    codes.add(Code(tuple(blocks), coupled=True))
    codes.add(etf_code(K))
    return tuple(sorted(codes, key=lambda c: (c.rank, c.name())))


# ---------------------------------------------------------------------------------------------
# the value of a code as a function of its parameters z = (theta, alpha, beta)
class CodeModel:
    """F(z) for one code at (K, M, ell), z = (theta_1..theta_P > 0, alpha_1..alpha_T, beta_1..beta_T) (alpha, beta only
    for a coupled code; T = number of block types, dead ones included).

    For a class of block type t the logits relative to its own logit are affine in theta and bilinear in
    (alpha, beta): row d of its own block: sum_i D_t[d, i] theta_i, D_t[d, i] = sum over the frequencies m of
    parameter i of u_m (cos(2 pi m d / k_t) - 1); a coordinate in a block of type s (another block):
    -sum_i e_t[i] theta_i + (alpha_s - alpha_t) beta_t, e_t[i] = sum u_m; rows of equal logits are merged with
    their count (log count added). CE_t = log-sum-exp of the rows; F = sum_t w_t CE_t + A sum_i c_i theta_i^p
    + A (||a|| ||b||)^p with w_t = mult_t k_t / K, c_i = sum of multiplicity x (k/2)^p over the orbits of
    parameter i, ||a||^2 = sum_t mult_t k_t alpha_t^2 (and ||b|| likewise): the coupling a b^T is orthogonal to
    every nonzero frequency, so its singular value ||a|| ||b|| joins the orbits' ones."""

    def __init__(self, code: Code, M: int) -> None:
        self.code, self.M = code, M
        self.K = code.K
        self.p = 2.0 / (M + 1)
        params = code.params
        self.P = len(params)
        self.T = len(code.blocks) if code.coupled else 0
        self.Q = self.P + 2 * self.T
        self.N = [mult * b.size for b, mult in code.blocks]
        # per block type t: (weight fraction, rows); a row = (theta spec per parameter, count, s or None)
        self.blocks: list[tuple[tuple[int, int], list, int]] = []
        self._dead_weight = 0
        for t, (b, mult) in enumerate(code.blocks):
            w = (mult * b.size, self.K)
            if b.dead and not code.coupled:
                self._dead_weight += mult * b.size
                continue
            own = [-sum(_unit(m, b.size) for m in fr) if pb == t else 0 for pb, fr in params]
            rows = [([[(m, d, b.size) for m in fr] if pb == t else [] for pb, fr in params], 1, None)
                    for d in range(b.size)]
            if code.coupled:
                for s, (bs, ms) in enumerate(code.blocks):
                    c = ms * bs.size - (b.size if s == t else 0)
                    if c > 0:
                        rows.append((own, c, s))
            elif self.K > b.size:
                rows.append((own, self.K - b.size, None))
            self.blocks.append((w, rows, t))
        self.orbits = []  # per parameter: [(multiplicity, singular value per unit amplitude)]
        for pb, fr in params:
            b, mult = code.blocks[pb]
            self.orbits.append([(mult * b.orbit(m)[0], b.orbit(m)[1]) for m in fr])
        self.const = self._dead_weight / self.K * math.log(self.K)

    def pen_coeffs(self, p: float | mpmath.mpf) -> list:
        return [sum(nu * s ** p for nu, s in orb) for orb in self.orbits]

    def float_arrays(self) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, int]]:
        """Per block type: (w_t, R (rows x P), log counts, S (rows x T: onehot(s) - onehot(t), 0 inside), t)."""
        out = []
        for (wn, wd), rows, t in self.blocks:
            R = np.array(_rows([r for r, _, _ in rows], _cos_m1), dtype=float).reshape(len(rows), self.P)
            lm = np.array([math.log(c) for _, c, _ in rows])
            S = np.zeros((len(rows), max(self.T, 1)))
            for i, (_, _, s) in enumerate(rows):
                if s is not None and s != t:
                    S[i, s] += 1.0
                    S[i, t] -= 1.0
            out.append((wn / wd, R, lm, S, t))
        return out

    # mpmath -----------------------------------------------------------------------------------
    def _split(self, z: Sequence) -> tuple[list, list, list]:
        P, T = self.P, self.T
        return list(z[:P]), list(z[P:P + T]), list(z[P + T:P + 2 * T])

    def value_grad_hess_mp(self, z: Sequence, A, order: int = 2):
        """F, and (order >= 1) its gradient and (order 2) Hessian in z, in mpmath at the working precision."""
        Q, P, T = self.Q, self.P, self.T
        th, al, be = self._split(z)
        f = mpmath.mpf(self._dead_weight) / self.K * mpmath.log(self.K)
        g = [mpmath.mpf(0)] * Q
        H = [[mpmath.mpf(0)] * Q for _ in range(Q)]
        for (wn, wd), rows, t in self.blocks:
            w = mpmath.mpf(wn) / wd
            Rm = _rows([r for r, _, _ in rows], _cos_m1_mp)
            xs, Js, S_ = [], [], []
            for (_, c, s), Rr in zip(rows, Rm):
                cpl = (al[s] - al[t]) * be[t] if (s is not None and s != t) else 0
                xs.append(mpmath.fsum(a * b for a, b in zip(Rr, th)) + cpl + mpmath.log(c))
                J = [mpmath.mpf(v) for v in Rr] + [mpmath.mpf(0)] * (2 * T)
                if s is not None and s != t:
                    J[P + s] += be[t]
                    J[P + t] -= be[t]
                    J[P + T + t] += al[s] - al[t]
                Js.append(J)
                S_.append(s if (s is not None and s != t) else None)
            mx = max(xs)
            es = [mpmath.exp(x - mx) for x in xs]
            tot = mpmath.fsum(es)
            f += w * (mx + mpmath.log(tot))
            if order == 0:
                continue
            pi = [e / tot for e in es]
            gb = [mpmath.fsum(pi[r] * Js[r][i] for r in range(len(xs))) for i in range(Q)]
            for i in range(Q):
                g[i] += w * gb[i]
            if order < 2:
                continue
            for i in range(Q):
                for j in range(Q):
                    H[i][j] += w * (mpmath.fsum(pi[r] * Js[r][i] * Js[r][j] for r in range(len(xs))) - gb[i] * gb[j])
            for r, s in enumerate(S_):  # d^2 x_r / d alpha d beta_t = onehot(s) - onehot(t)
                if s is None:
                    continue
                for a_idx, sign in ((P + s, 1), (P + t, -1)):
                    H[a_idx][P + T + t] += w * pi[r] * sign
                    H[P + T + t][a_idx] += w * pi[r] * sign
        p = mpmath.mpf(2) / (self.M + 1)
        c = self.pen_coeffs(p)
        f += A * mpmath.fsum(ci * x ** p for ci, x in zip(c, th))
        for i in range(P):
            g[i] += A * c[i] * p * th[i] ** (p - 1)
            H[i][i] += A * c[i] * p * (p - 1) * th[i] ** (p - 2)
        if T:
            u = mpmath.fsum(n * a ** 2 for n, a in zip(self.N, al))
            v = mpmath.fsum(n * b ** 2 for n, b in zip(self.N, be))
            q = p / 2
            f += A * (u * v) ** q
            hu, hv = A * q * u ** (q - 1) * v ** q, A * q * u ** q * v ** (q - 1)
            huu, hvv = A * q * (q - 1) * u ** (q - 2) * v ** q, A * q * (q - 1) * u ** q * v ** (q - 2)
            huv = A * q * q * u ** (q - 1) * v ** (q - 1)
            du = [2 * n * a for n, a in zip(self.N, al)]
            dv = [2 * n * b for n, b in zip(self.N, be)]
            for s in range(T):
                g[P + s] += hu * du[s]
                g[P + T + s] += hv * dv[s]
                H[P + s][P + s] += hu * 2 * self.N[s]
                H[P + T + s][P + T + s] += hv * 2 * self.N[s]
                for r in range(T):
                    H[P + s][P + r] += huu * du[s] * du[r]
                    H[P + T + s][P + T + r] += hvv * dv[s] * dv[r]
                    H[P + s][P + T + r] += huv * du[s] * dv[r]
                    H[P + T + r][P + s] += huv * du[s] * dv[r]
        return f, g, H

    def value_mp(self, z: Sequence, A) -> mpmath.mpf:
        return self.value_grad_hess_mp(z, A, order=0)[0]

    def refine(self, z0: Sequence[float], A, dps: int) -> tuple[list, mpmath.mpf, mpmath.mpf]:
        """Newton on grad F = 0 in mpmath at dps + 10 digits from a float64 stationary point (a pseudo-inverse: the
        coupling's gauge alpha -> c alpha, beta -> beta / c is a null direction of the Hessian, along which the
        gradient vanishes); returns (z, F(z), final max |grad|). Raises ArithmeticError when it does not converge."""
        with mpmath.workdps(dps + 10):
            z = [mpmath.mpf(float(t)) for t in z0]
            tol = mpmath.mpf(10) ** (-(dps + 5))
            f, g, H = self.value_grad_hess_mp(z, A)
            gmax = max(abs(x) for x in g)
            for _ in range(200):
                if gmax <= tol:
                    break
                E, V = mpmath.eigsy(mpmath.matrix(H))
                top = max(abs(E[i]) for i in range(self.Q))
                cut = top * mpmath.mpf(10) ** (-(dps // 2))
                step = [mpmath.fsum(V[i, k] * mpmath.fsum(V[j, k] * g[j] for j in range(self.Q)) / E[k]
                                    for k in range(self.Q) if abs(E[k]) > cut) for i in range(self.Q)]
                t = mpmath.mpf(1)
                for _ in range(60):  # damped: the step must shrink max |grad| and keep theta > 0
                    trial = [x - t * step[i] for i, x in enumerate(z)]
                    if min(trial[:self.P], default=1) > 0:
                        f2, g2, H2 = self.value_grad_hess_mp(trial, A)
                        g2max = max(abs(x) for x in g2)
                        if g2max < gmax:
                            break
                    t /= 2
                else:
                    raise ArithmeticError(f"{self.code.name()}: damped Newton made no progress")
                z, f, g, H, gmax = trial, f2, g2, H2, g2max
            else:
                raise ArithmeticError(f"{self.code.name()}: Newton did not reach |grad| <= 1e-{dps + 5} "
                                      f"(last {mpmath.nstr(gmax, 3)})")
            return z, f, gmax

    def singular_values(self, z: Sequence) -> list:
        """Nonzero singular values of Zbar (with multiplicity), largest first."""
        th, al, be = self._split(z)
        out = []
        for (pb, fr), t in zip(self.code.params, th):
            b, mult = self.code.blocks[pb]
            for m in fr:
                nu, s = b.orbit(m)
                out += [t * s] * (nu * mult)
        if self.T:
            sq = (mpmath.sqrt if isinstance(al[0], mpmath.mpf) else math.sqrt)
            out.append(sq(sum(n * a ** 2 for n, a in zip(self.N, al)) * sum(n * b ** 2 for n, b in zip(self.N, be))))
        return sorted(out, reverse=True)

    def matrix(self, z: Sequence) -> list[list]:
        """The K x K class-mean logit matrix Zbar (mpmath), classes block by block (column k: class k)."""
        th, al, be = self._split(z)
        K = self.K
        Z = [[mpmath.mpf(0)] * K for _ in range(K)]
        amp: dict[tuple[int, int], object] = {}
        for (pb, fr), t in zip(self.code.params, th):
            for m in fr:
                amp[(pb, m)] = t
        types = []
        off = 0
        for bi, (b, mult) in enumerate(self.code.blocks):
            for _ in range(mult):
                for j in range(b.size):
                    for k in range(b.size):
                        Z[off + j][off + k] = mpmath.fsum(amp[(bi, m)] * _unit(m, b.size)
                                                          * mpmath.cos(2 * mpmath.pi * m * (j - k) / b.size)
                                                          for m in b.freqs)
                types += [bi] * b.size
                off += b.size
        if self.T:
            for j in range(K):
                for k in range(K):
                    Z[j][k] += mpmath.mpf(al[types[j]]) * be[types[k]]
        return Z


def _rows(rows: list, cos_m1) -> list[list]:
    """Numeric coefficient rows from the (m, d, k) specs (a number entry is already a coefficient)."""
    return [[e if not isinstance(e, list) else sum((_unit(m, k) * cos_m1(m, d, k) for m, d, k in e),
                                                    0 * cos_m1(0, 0, 1)) for e in row] for row in rows]


def _unit(m: int, k: int) -> float:
    """The amplitude unit of frequency m in a block of k: 1/2 for m = 0 and m = k/2 (real orbits of size one),
    1 otherwise, so that every orbit has singular value k/2 per unit amplitude (a tied amplitude then gives
    equal singular values: the simplex ETF, cross-polytopes)."""
    return 0.5 if (m == 0 or 2 * m == k) else 1


def _cos_m1_mp(m: int, d: int, k: int) -> mpmath.mpf:
    """cos(2 pi m d / k) - 1 in mpmath at the working precision."""
    q = (m * d) % k
    return mpmath.mpf(0) if q == 0 else mpmath.cos(2 * mpmath.pi * q / k) - 1


def _cos_m1(m: int, d: int, k: int) -> float:
    """cos(2 pi m d / k) - 1, exact for the rational cases (cos of multiples of pi/2, pi/3)."""
    q = (m * d) % k
    if q == 0:
        return 0.0
    if 2 * q == k:
        return -2.0
    if 4 * q == k or 4 * q == 3 * k:
        return -1.0
    if 3 * q == k or 3 * q == 2 * k:
        return -1.5
    if 6 * q == k or 6 * q == 5 * k:
        return -0.5
    return math.cos(2 * math.pi * q / k) - 1.0


# ---------------------------------------------------------------------------------------------
# selection
@dataclass(frozen=True)
class CodeValue:
    """One code at (K, M, ell): its parameters z = (theta, alpha, beta), value F (mpmath when refined), singular
    values of Zbar."""

    code: Code
    theta: tuple
    value: mpmath.mpf | float
    singular_values: tuple
    refined: bool
    residual: mpmath.mpf | float | None = None

    @property
    def name(self) -> str:
        return self.code.name()

    @property
    def rank(self) -> int:
        return self.code.rank


def _starts(K: int, M: int, ell: float) -> list[float]:
    """Initial amplitudes: around the scale where the CE and the penalty balance (log(K/ell) per unit margin)."""
    base = max(1.0, math.log(max(K, 2) / max(ell, 1e-300)))
    return [base / 8, base / 2, base * 1.5]


_TABLES: dict[tuple, tuple] = {}


def _start_points(m: CodeModel, s0: float) -> list[np.ndarray]:
    """Equal amplitudes s0; a coupled code also gets alpha = +-beta patterns of size sqrt(s0 / K)."""
    th = np.full(m.P, s0)
    if not m.T:
        return [th]
    pat = np.array([1.0, -1.0, 0.5, -0.5, 0.25, -0.25][:m.T] + [0.1] * max(0, m.T - 6))
    c = math.sqrt(s0 / m.K)
    return [np.concatenate([th, c * pat, c * pat]), np.concatenate([th, c * pat, -c * pat])]


def _float_table(K: int, M: int, ell: float, max_types: int = 2, warm: dict | None = None, cold: bool = True
                 ) -> tuple[tuple[Code, float, tuple], ...]:
    """(code, float64 value, parameters) of every non-degenerate code at (K, M, ell), least first (cached).
    ``warm``: code -> parameters at a nearby ell, the only start of that code (continuation along a grid);
    ``cold`` = False: codes without a warm start are skipped (see ``winners_on_grid``)."""
    key = (K, M, float(ell), max_types)
    if key in _TABLES:
        return _TABLES[key]
    A = (M + 1) / 2 * ell
    models = [m for m in _models(K, M, max_types) if m.Q > 0 and (cold or (warm and m.code in warm))]
    # a code with a warm start (its point at the previous grid value) starts only there; the others cold
    starts = [[np.asarray(warm[m.code], dtype=float)] if warm and m.code in warm
              else [z for s0 in _starts(K, M, ell) for z in _start_points(m, s0)] for m in models]
    rows = [(i, z) for i, st in enumerate(starts) for z in st]
    if not rows:
        return ()
    f, zs, ok = _batched_newton(models, [i for i, _ in rows], [z for _, z in rows], A, M)
    best: dict[int, tuple[float, np.ndarray]] = {}
    for (i, _), fv, zv, good in zip(rows, f, zs, ok):
        if good and (i not in best or fv < best[i][0]):
            best[i] = (float(fv), zv)
    pk = _packed(K, M, max_types)
    out = [(models[i].code, fv, tuple(float(x) for x in _unpack(models[i], zv, pk["P"], pk["T"])))
           for i, (fv, zv) in best.items()]
    out.sort(key=lambda t: t[1])
    if len(_TABLES) > 512:
        _TABLES.clear()
    if not cold:  # a partial table is not cached (a later caller may need every code)
        return tuple(out)
    _TABLES[key] = tuple(out)
    return _TABLES[key]


@lru_cache(maxsize=64)
def _models(K: int, M: int, max_types: int) -> tuple[CodeModel, ...]:
    return tuple(CodeModel(c, M) for c in enumerate_codes(K, max_types))


@lru_cache(maxsize=64)
def _packed(K: int, M: int, max_types: int) -> dict:
    """Every code's float data padded into arrays (codes first): R (codes, blocks, rows, P), LM (log counts, -inf on
    padded rows), S (codes, blocks, rows, T), TB (codes, blocks, T: onehot of the block's type), W (block weights),
    C (penalty coefficients of theta), NC (class counts per type, for ||a||, ||b||), masks, const."""
    models = [m for m in _models(K, M, max_types) if m.Q > 0]
    data = [m.float_arrays() for m in models]
    nb = max(len(d) for d in data)
    nr = max(R.shape[0] for d in data for _, R, _, _, _ in d)
    P = max(m.P for m in models)
    T = max(max(m.T for m in models), 1)
    n = len(models)
    out = {"index": {id(m): i for i, m in enumerate(models)}, "P": P, "T": T,
           "R": np.zeros((n, nb, nr, P)), "LM": np.full((n, nb, nr), -np.inf), "S": np.zeros((n, nb, nr, T)),
           "TB": np.zeros((n, nb, T)), "W": np.zeros((n, nb)), "C": np.zeros((n, P)), "NC": np.zeros((n, T)),
           "mP": np.zeros((n, P), dtype=bool), "mT": np.zeros((n, T), dtype=bool), "const": np.zeros(n)}
    p = 2.0 / (M + 1)
    for i, (m, d) in enumerate(zip(models, data)):
        for b, (w, R, lm, S, t) in enumerate(d):
            out["R"][i, b, :R.shape[0], :m.P] = R
            out["LM"][i, b, :R.shape[0]] = lm
            if m.T:
                out["S"][i, b, :R.shape[0], :m.T] = S[:, :m.T]
                out["TB"][i, b, t] = 1.0
            out["W"][i, b] = w
        for b in range(len(d), nb):
            out["LM"][i, b, 0] = 0.0  # an empty block: log-sum-exp 0, weight 0
        out["C"][i, :m.P] = m.pen_coeffs(p)
        out["mP"][i, :m.P] = True
        out["mT"][i, :m.T] = True
        out["NC"][i, :m.T] = m.N[:m.T]
        out["const"][i] = m.const
    return out


def _pack(m: CodeModel, z: np.ndarray, P: int, T: int) -> np.ndarray:
    """A model's z = (theta, alpha, beta) into the padded layout (log theta, alpha, beta)."""
    out = np.zeros(P + 2 * T)
    out[:m.P] = np.log(z[:m.P])
    out[P:P + m.T] = z[m.P:m.P + m.T]
    out[P + T:P + T + m.T] = z[m.P + m.T:m.P + 2 * m.T]
    return out


def _unpack(m: CodeModel, y: np.ndarray, P: int, T: int) -> np.ndarray:
    """A padded (theta, alpha, beta) row of ``_batched_newton`` back to the model's z."""
    return np.concatenate([y[:m.P], y[P:P + m.T], y[P + T:P + T + m.T]])


def _batched_newton(models: Sequence[CodeModel], which: Sequence[int], z0: Sequence[np.ndarray], A: float, M: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_newton_rows`` with float64 overflow in rows that run away silenced (those rows end degenerate)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _newton_rows(models, which, z0, A, M)


def _newton_rows(models: Sequence[CodeModel], which: Sequence[int], z0: Sequence[np.ndarray], A: float, M: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton for many (code, start) rows at once (numpy, float64) in y = (log theta, alpha, beta): the step uses
    |eigenvalues| of the Hessian (a pseudo-inverse on the coupling's gauge direction), at most 2 in any coordinate,
    with a per-row Armijo backtracking. Returns (F, (theta, alpha, beta) padded, usable) per row; usable =
    converged, every amplitude > DEGENERATE x the largest and (coupled) ||a|| ||b|| > DEGENERATE x the largest
    singular value."""
    K = models[0].K
    pk = _packed(K, M, 2)
    P, T = pk["P"], pk["T"]
    sel = np.array([pk["index"][id(models[i])] for i in which])
    R, LM, S, TB, W = pk["R"][sel], pk["LM"][sel], pk["S"][sel], pk["TB"][sel], pk["W"][sel]
    C, NC, mP, mT, const = pk["C"][sel], pk["NC"][sel], pk["mP"][sel], pk["mT"][sel], pk["const"][sel]
    n = len(sel)
    Q = P + 2 * T
    p = 2.0 / (M + 1)
    q = p / 2
    mask = np.concatenate([mP, mT, mT], axis=1)
    coupled = mT.any(axis=1)
    Y = np.stack([_pack(models[i], z, P, T) for i, z in zip(which, z0)])
    eye = np.eye(Q)

    def parts(Y: np.ndarray, rows) -> tuple:
        th = np.exp(Y[:, :P]) * mP[rows]
        al, be = Y[:, P:P + T] * mT[rows], Y[:, P + T:] * mT[rows]
        als = np.einsum("cbrt,ct->cbr", S[rows], al)
        bet = np.einsum("cbt,ct->cb", TB[rows], be)
        x = np.einsum("cbrp,cp->cbr", R[rows], th) + als * bet[..., None] + LM[rows]
        u = (NC[rows] * al ** 2).sum(axis=1)
        v = (NC[rows] * be ** 2).sum(axis=1)
        return th, al, be, als, bet, x, u, v

    def value(Y: np.ndarray, rows) -> np.ndarray:
        th, al, be, als, bet, x, u, v = parts(Y, rows)
        mx = x.max(axis=2)
        lse = mx + np.log(np.exp(x - mx[..., None]).sum(axis=2))
        cpl = np.where(coupled[rows], A * np.maximum(u * v, 0.0) ** q, 0.0)
        return const[rows] + (W[rows] * lse).sum(axis=1) + A * (C[rows] * th ** p).sum(axis=1) + cpl

    active = np.ones(n, dtype=bool)
    done = np.zeros(n, dtype=bool)
    degenerate = np.zeros(n, dtype=bool)
    for _ in range(80):
        rows = np.nonzero(active)[0]
        if rows.size == 0:
            break
        y = Y[rows]
        th, al, be, als, bet, x, u, v = parts(y, rows)
        mx = x.max(axis=2)
        e = np.exp(x - mx[..., None])
        pi = e / e.sum(axis=2, keepdims=True)
        # row gradients J (c, b, r, Q) in (theta, alpha, beta)
        J = np.concatenate([R[rows], S[rows] * bet[:, :, None, None],
                            TB[rows][:, :, None, :] * als[..., None]], axis=3)
        w = W[rows]
        gb = np.einsum("cbr,cbrq->cbq", pi, J)
        g = (w[..., None] * gb).sum(axis=1)
        H = (w[..., None, None] * (np.einsum("cbr,cbrq,cbrs->cbqs", pi, J, J)
                                   - gb[..., :, None] * gb[..., None, :])).sum(axis=1)
        X2 = np.einsum("cbr,cbrt,cbs->cts", pi * w[..., None], S[rows], TB[rows])  # d2 x / d alpha_t d beta_s
        H[:, P:P + T, P + T:] += X2
        H[:, P + T:, P:P + T] += X2.transpose(0, 2, 1)
        thp = np.where(mP[rows], th, 1.0)
        g[:, :P] += A * C[rows] * p * thp ** (p - 1)
        H[:, :P, :P] += np.einsum("cp,pq->cpq", A * C[rows] * p * (p - 1) * thp ** (p - 2), np.eye(P))
        cp_ = coupled[rows]
        if cp_.any():
            uu, vv = np.maximum(u, 1e-300), np.maximum(v, 1e-300)
            hu, hv = A * q * uu ** (q - 1) * vv ** q, A * q * uu ** q * vv ** (q - 1)
            huu, hvv = A * q * (q - 1) * uu ** (q - 2) * vv ** q, A * q * (q - 1) * uu ** q * vv ** (q - 2)
            huv = A * q * q * uu ** (q - 1) * vv ** (q - 1)
            nc = NC[rows] * mT[rows]
            du, dv = 2 * nc * al, 2 * nc * be
            z_ = cp_[:, None].astype(float)
            g[:, P:P + T] += z_ * hu[:, None] * du
            g[:, P + T:] += z_ * hv[:, None] * dv
            zz = cp_[:, None, None].astype(float)
            H[:, P:P + T, P:P + T] += zz * (huu[:, None, None] * du[:, :, None] * du[:, None, :]
                                            + np.einsum("c,ct,ts->cts", hu, 2 * nc, np.eye(T)))
            H[:, P + T:, P + T:] += zz * (hvv[:, None, None] * dv[:, :, None] * dv[:, None, :]
                                          + np.einsum("c,ct,ts->cts", hv, 2 * nc, np.eye(T)))
            cross = zz * huv[:, None, None] * du[:, :, None] * dv[:, None, :]
            H[:, P:P + T, P + T:] += cross
            H[:, P + T:, P:P + T] += cross.transpose(0, 2, 1)
        # to y = (log theta, alpha, beta)
        D = np.concatenate([th, np.ones((rows.size, 2 * T))], axis=1)
        gy = g * D
        Hy = H * D[:, :, None] * D[:, None, :] + np.einsum("cq,qs->cqs", np.concatenate(
            [gy[:, :P], np.zeros((rows.size, 2 * T))], axis=1), eye)
        mk = mask[rows]
        gy = np.where(mk, gy, 0.0)
        flat = np.abs(gy).max(axis=1) < GRAD_CONVERGED  # stationary (a gauge drift of the coupling cannot stop it)
        Hy = np.where(mk[:, :, None] & mk[:, None, :], Hy, 0.0) + np.einsum("cq,qs->cqs", (~mk).astype(float), eye)
        ev, V = np.linalg.eigh(Hy)
        scale = np.maximum(np.abs(ev), 1e-12 * np.maximum(1.0, np.abs(ev).max(axis=1, keepdims=True)))
        step = -np.einsum("cpq,cq->cp", V, np.einsum("cqp,cq->cp", V, gy) / scale)
        step = np.where(mk, step, 0.0)
        big = np.abs(step).max(axis=1)
        step *= np.where(big > 2.0, 2.0 / np.maximum(big, 1e-300), 1.0)[:, None]
        f0 = value(y, rows)
        slope = (gy * step).sum(axis=1)
        t = np.ones(rows.size)
        pending = np.ones(rows.size, dtype=bool)
        for _ in range(40):
            idx = np.nonzero(pending)[0]
            if idx.size == 0:
                break
            ft = value(y[idx] + t[idx, None] * step[idx], rows[idx])
            okk = np.isfinite(ft) & (ft <= f0[idx] + 1e-4 * t[idx] * slope[idx])
            pending[idx[okk]] = False
            t[idx[~okk]] *= 0.5
        t[pending] = 0.0
        Y[rows] = y + t[:, None] * step
        moved = np.abs(t[:, None] * step).max(axis=1)
        th2 = np.exp(Y[rows, :P])
        thmax = np.where(mP[rows], th2, 0.0).max(axis=1)
        thmin = np.where(mP[rows], th2, np.inf).min(axis=1)
        _, al2, be2, _, _, _, u2, v2 = parts(Y[rows], rows)
        sv_c = np.sqrt(np.maximum(u2 * v2, 0.0))
        top = np.maximum(np.where(mP[rows], th2, 0.0).max(axis=1) * K, sv_c)
        deg = (thmin < DEGENERATE * thmax) | (cp_ & (sv_c < DEGENERATE * top)) | ~np.isfinite(Y[rows]).all(axis=1)
        conv = (moved < 1e-13) | flat
        degenerate[rows[deg]] = True
        done[rows[conv & ~deg]] = True
        active[rows[conv | deg]] = False
    f = value(Y, np.arange(n))
    out = np.concatenate([np.exp(Y[:, :P]) * mP, Y[:, P:]], axis=1)
    usable = done & ~degenerate & np.isfinite(f)
    return f, out, usable


def code_values(K: int, M: int, ell, dps: int = 40, max_types: int = 2, refine_all: bool = False,
                max_rank: int | None = None) -> list[CodeValue]:
    """Every code's best value at (K, M, ell), least first; those within ``PRUNE_MARGIN`` of the best (and the
    ETF) refined at ``dps`` digits. ``max_rank``: only codes of rank <= max_rank (a width d < K bounds the rank).
    Float-only entries keep ``refined=False``."""
    ellf = float(ell)
    A_mp = None
    table = _float_table(K, M, ellf, max_types)
    if max_rank is not None:
        table = tuple(t for t in table if t[0].rank <= max_rank)
    if not table:
        return []
    best = table[0][1]
    out = []
    with mpmath.workdps(dps + 10):
        A_mp = (mpmath.mpf(M) + 1) / 2 * mpmath.mpf(ell)
        for code, f, th in table:
            model = CodeModel(code, M)
            if refine_all or f <= best + PRUNE_MARGIN * max(abs(best), 1e-12) or code.is_etf:
                try:
                    tm, v, res = model.refine(th, A_mp, dps)
                    out.append(CodeValue(code, tuple(tm), v, tuple(model.singular_values(tm)), True, res))
                    continue
                except (ArithmeticError, ZeroDivisionError):
                    pass
            out.append(CodeValue(code, th, f, tuple(model.singular_values(th)), False))
    out.sort(key=lambda c: (c.value, _preference(c.code)))
    return out


def _preference(code: Code) -> tuple:
    """Among codes of equal value (the same point described twice), the name to report first: the ETF, then
    fewer amplitudes, then cross-polytopes, then fewer blocks."""
    return (not code.is_etf, len(code.params), "cross-polytope" not in code.name(), len(code.blocks), code.name())


def equivalent(values: Sequence[CodeValue], dps: int) -> list[list[CodeValue]]:
    """Refined code values grouped by equal value and equal singular values (to 10^-(dps-8)): one group per
    distinct point (several codes can describe the same point up to a permutation of the classes)."""
    groups: list[list[CodeValue]] = []
    tol = mpmath.mpf(10) ** (-(dps - 8))
    for c in values:
        if not c.refined:
            continue
        for g in groups:
            h = g[0]
            if abs(h.value - c.value) <= tol * max(1, abs(c.value)) and len(h.singular_values) == len(c.singular_values) \
                    and all(abs(x - y) <= tol * max(1, abs(x)) for x, y in zip(h.singular_values, c.singular_values)):
                g.append(c)
                break
        else:
            groups.append([c])
    return groups


def collapse_value(K: int):
    """F at Zbar = 0 (W = H = 0): log K."""
    return mpmath.log(K)


def best_geometry(K: int, M: int, ell, dps: int = 40, max_rank: int | None = None) -> tuple[CodeValue | None, list[CodeValue]]:
    """(the winning code or None for total collapse, every code value least first)."""
    vals = code_values(K, M, ell, dps, max_rank=max_rank)
    refined = [c for c in vals if c.refined]
    if not refined:
        return None, vals
    tol = mpmath.mpf(10) ** (-(dps - 8)) * max(1, abs(refined[0].value))
    top = min((c for c in refined if c.value - refined[0].value <= tol), key=lambda c: _preference(c.code))
    with mpmath.workdps(dps + 10):
        if top.value >= collapse_value(K):
            return None, vals
    return top, vals


# ---------------------------------------------------------------------------------------------
# phase boundaries in ell
def refined_value(code: Code, M: int, ell, dps: int, theta0: Sequence[float] | None = None) -> CodeValue:
    """One code's refined value at ell (Newton from ``theta0`` or from a float minimization)."""
    model = _model_of(code, M)
    if theta0 is None:
        theta0 = _single_float(model, float(ell))
        if theta0 is None:
            raise ArithmeticError(f"{code.name()} has no interior stationary point at ell = {mpmath.nstr(ell, 8)}")
    with mpmath.workdps(dps + 10):
        A = (mpmath.mpf(M) + 1) / 2 * mpmath.mpf(ell)
        th, v, res = model.refine(theta0, A, dps)
    return CodeValue(code, tuple(th), v, tuple(model.singular_values(th)), True, res)


def _model_of(code: Code, M: int) -> CodeModel:
    """The enumerated model of ``code`` (its packed float arrays exist), else a fresh one."""
    return next((m for m in _models(code.K, M, 2) if m.code == code), None) or CodeModel(code, M)


def _single_float(model: CodeModel, ell: float, z0: Sequence[float] | None = None) -> np.ndarray | None:
    """One code's float64 stationary point at ell (from ``z0``, else the cold starts); None if it degenerates."""
    starts = [np.asarray(z0, dtype=float)] if z0 is not None else \
        [z for s0 in _starts(model.K, model.M, ell) for z in _start_points(model, s0)]
    f, zs, ok = _batched_newton([model], [0] * len(starts), starts, (model.M + 1) / 2 * ell, model.M)
    good = [i for i in range(len(starts)) if ok[i]]
    if not good:
        return None
    i = min(good, key=lambda j: f[j])
    pk = _packed(model.K, model.M, 2)
    return _unpack(model, zs[i], pk["P"], pk["T"])


@dataclass(frozen=True)
class Crossing:
    """ell where two branches have equal value: ``left`` wins for ell just below, ``right`` just above
    (a name, or "total collapse"). ``certified``: the value difference changes sign across
    [ell (1 - 10^-(dps-5)), ell (1 + 10^-(dps-5))], evaluated at dps + 10 digits."""

    ell: mpmath.mpf
    left: str
    right: str
    certified: bool
    value: mpmath.mpf
    continuous: bool = False  # a branch ends here (merges into the other) instead of crossing it


_WARM: dict[tuple, np.ndarray] = {}


def _branch_value(code: Code | None, K: int, M: int, ell, dps: int):
    """The branch's refined value at ell; +inf where it has no interior stationary point (it ended). The float
    start is the branch's last point (continuation: crossings evaluate nearby ell values in sequence)."""
    if code is None:
        return collapse_value(K)
    model = _model_of(code, M)
    z0 = _single_float(model, float(ell), _WARM.get((code, M)))
    if z0 is None:
        z0 = _single_float(model, float(ell))
    if z0 is None:
        return mpmath.inf
    _WARM[(code, M)] = z0
    try:
        return refined_value(code, M, ell, dps, theta0=z0).value
    except (ArithmeticError, ZeroDivisionError):
        return mpmath.inf


def _diff(a: Code | None, b: Code | None, K: int, M: int, ell, dps: int):
    va, vb = _branch_value(a, K, M, ell, dps), _branch_value(b, K, M, ell, dps)
    if mpmath.isinf(va) and mpmath.isinf(vb):
        return mpmath.mpf(0), va
    return va - vb, va


def crossing(a: Code | None, b: Code | None, K: int, M: int, lo: float, hi: float, dps: int = 40) -> Crossing:
    """The ell in [lo, hi] where branches a and b (None = total collapse) have equal value (a sign change of
    F_a - F_b must lie in the bracket), by bisection on log ell in float64 then the secant method in mpmath."""
    if M == 1 and (a is None) != (b is None):
        # M = 1 is convex (nuclear norm): the ETF wins below collapse and its margin a = log((1 - (K-1) s)/s) (the
        # ce-deep-etf closed form, s = ell) tends to 0 as K s -> 1: a continuous transition at ell = 1/K exactly
        with mpmath.workdps(dps + 10):
            left, right = (etf_code(K).name(), "total collapse") if a is not None else ("total collapse", etf_code(K).name())
            return Crossing(mpmath.mpf(1) / K, left, right, True, collapse_value(K), continuous=True)
    f_lo = float(_diff(a, b, K, M, lo, 20)[0])
    f_hi = float(_diff(a, b, K, M, hi, 20)[0])
    if f_lo * f_hi > 0:
        raise ValueError("no sign change of the value difference in the bracket")
    x0, x1 = _bisect(lambda x: float(_diff(a, b, K, M, math.exp(x), 20)[0]), math.log(lo), math.log(hi), f_lo, 30)
    f0, f1 = _diff(a, b, K, M, math.exp(x0), dps)[0], _diff(a, b, K, M, math.exp(x1), dps)[0]
    if mpmath.isinf(f0) or mpmath.isinf(f1):
        # a branch ends inside the bracket (M = 1: the ETF margin goes continuously to 0): locate where by
        # bisection at the working precision; the transition is continuous, not a crossing of two values
        with mpmath.workdps(dps + 10):
            y0, y1 = mpmath.mpf(x0), mpmath.mpf(x1)
            for _ in range(int(3.4 * dps) + 10):
                ym = (y0 + y1) / 2
                if mpmath.isinf(_diff(a, b, K, M, mpmath.exp(ym), dps)[0]) == mpmath.isinf(f0):
                    y0 = ym
                else:
                    y1 = ym
            ell = mpmath.exp((y0 + y1) / 2)
        na = "total collapse" if a is None else a.name()
        nb = "total collapse" if b is None else b.name()
        return Crossing(ell, na if f_lo < 0 else nb, nb if f_lo < 0 else na, False, collapse_value(K), continuous=True)
    with mpmath.workdps(dps + 10):
        y0, y1 = mpmath.mpf(x0), mpmath.mpf(x1)
        d0, d1 = _diff(a, b, K, M, mpmath.exp(y0), dps)[0], _diff(a, b, K, M, mpmath.exp(y1), dps)[0]
        same = mpmath.mpf(10) ** (-(dps - 5))
        if abs(d0) <= same and abs(d1) <= same:
            raise ValueError("the two branches have equal values across the bracket: one point, two codes")
        if d0 * d1 > 0:
            raise ValueError("no sign change of the refined value difference in the bracket")
        # bisection in log ell to dps + 2 digits (robust where the difference is flat or noisy at the root)
        while y1 - y0 > mpmath.mpf(10) ** (-(dps + 2)):
            ym = (y0 + y1) / 2
            dm = _diff(a, b, K, M, mpmath.exp(ym), dps)[0]
            if dm * d0 > 0:
                y0, d0 = ym, dm
            else:
                y1 = ym
        ell = mpmath.exp((y0 + y1) / 2)
        eps = mpmath.mpf(10) ** (-(dps - 5))
        d_lo = _diff(a, b, K, M, ell * (1 - eps), dps)[0]
        d_hi, v = _diff(a, b, K, M, ell * (1 + eps), dps)
        certified = d_lo * d_hi < 0
        left_wins_below = d_lo < 0
    na = "total collapse" if a is None else a.name()
    nb = "total collapse" if b is None else b.name()
    return Crossing(ell, na if left_wins_below else nb, nb if left_wins_below else na, bool(certified),
                    _diff(a, b, K, M, ell, dps)[1])


#: along a grid, codes without a point at the previous grid value (degenerate there) are retried from the cold
#: starts at every COLD_EVERY-th value (1: at every value; larger values miss branches that come and go)
COLD_EVERY = 1


def winners_on_grid(K: int, M: int, ells: Sequence[float], warm_from: float | None = None
                    ) -> list[tuple[float, str, Code | None]]:
    """(ell, winner name, winning code or None = total collapse) at each grid point (float64 values), each table
    started from the previous one (``warm_from``: the ell of an already computed table to start the first from)."""
    out = []
    warm: dict | None = None
    if warm_from is not None and (K, M, float(warm_from), 2) in _TABLES:
        warm = {c: th for c, _, th in _TABLES[(K, M, float(warm_from), 2)]}
    for i, e in enumerate(ells):
        table = _float_table(K, M, float(e), 2, warm, cold=(warm is None or i % COLD_EVERY == 0))
        warm = {c: th for c, _, th in table}
        code = float_winner(K, M, float(e), table)
        out.append((float(e), "total collapse" if code is None else code.name(), code))
    return out


def float_winner(K: int, M: int, ell: float, table: Sequence | None = None) -> Code | None:
    """The winning code at ell by the float64 values (None = total collapse; ``table``: an already computed
    ``_float_table``); codes tied within 1e-9 (one point described twice) are resolved by ``_preference``."""
    table = _float_table(K, M, float(ell), 2) if table is None else table
    if not table or table[0][1] >= math.log(K):
        return None
    f0 = table[0][1]
    tied = [c for c, f, _ in table if f <= f0 + 1e-9 * max(abs(f0), 1e-12)]
    return min(tied, key=_preference)


def phase_boundaries(K: int, M: int, lo: float = 1e-8, hi: float = 10.0, points: int = 60, dps: int = 40
                     ) -> list[Crossing]:
    """Every change of the global winner along ell in [lo, hi], each solved at ``dps`` digits. A log grid of
    ``points`` values, then every cell whose two ends have different winners is halved (in log ell) until its
    ends are within a factor ``RESOLVE`` (so a winner that holds on a window wider than that factor inside such
    a cell is found). A winner confined to a window inside a cell whose two ends agree is not seen."""
    grid = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]
    w = winners_on_grid(K, M, grid)
    cells: list[tuple] = []

    def split(a: tuple, b: tuple) -> None:
        if a[1] == b[1]:
            return
        if b[0] / a[0] <= RESOLVE:
            cells.append((a, b))
            return
        mid = winners_on_grid(K, M, [math.sqrt(a[0] * b[0])], warm_from=a[0])[0]
        split(a, mid)
        split(mid, b)

    for a, b in zip(w, w[1:]):
        split(a, b)
    out = []
    for a, b in cells:
        try:
            out.append(crossing(a[2], b[2], K, M, a[0], b[0], dps))
        except ValueError:  # the refined values do not change order: one point described by two codes
            continue
    return out


#: the cell width (ratio of ell) to which ``phase_boundaries`` resolves changes of the winner
RESOLVE = 1.01


def _bisect(fn, x0: float, x1: float, f0: float, steps: int) -> tuple[float, float]:
    """Bisection of a sign change of fn on [x0, x1] (f0 = fn(x0))."""
    for _ in range(steps):
        xm = 0.5 * (x0 + x1)
        fm = fn(xm)
        if fm * f0 > 0:
            x0, f0 = xm, fm
        else:
            x1 = xm
    return x0, x1


# ---------------------------------------------------------------------------------------------
# the phase table (theory/golden/ce_phase.json): boundaries in ell for K = 3..8, M = 1..6
GOLDEN = __import__("pathlib").Path(__file__).parent / "golden" / "ce_phase.json"
PHASE_RANGE = (1e-8, 10.0)


def phase_entry(K: int, M: int, dps: int = 32, points: int = 61) -> dict:
    """The winners along ell and the certified crossings of one (K, M) (JSON-ready)."""
    lo, hi = PHASE_RANGE
    crossings = phase_boundaries(K, M, lo, hi, points, dps)
    grid = [lo * (hi / lo) ** (i / (points - 1)) for i in range(points)]  # the same grid: its tables are cached
    return {"K": K, "M": M, "range": [lo, hi], "winner_at_lo": winners_on_grid(K, M, [lo])[0][1],
            "crossings": [{"ell": mpmath.nstr(c.ell, dps), "left": c.left, "right": c.right, "certified": c.certified,
                           "continuous": c.continuous} for c in crossings],
            "grid": [[e, n] for e, n, _ in winners_on_grid(K, M, grid)]}


_PHASE_CACHE: dict[float, dict] = {}


def load_phase_table() -> dict[tuple[int, int], dict]:
    """The recorded phase table {(K, M): entry} (empty when the file is missing; read once per file version)."""
    import json

    if not GOLDEN.exists():
        return {}
    stamp = GOLDEN.stat().st_mtime
    if stamp not in _PHASE_CACHE:
        _PHASE_CACHE.clear()
        _PHASE_CACHE[stamp] = {(e["K"], e["M"]): e for e in json.loads(GOLDEN.read_text())["entries"]}
    return _PHASE_CACHE[stamp]


def bands(entry: dict) -> list[tuple[float, float, str]]:
    """(ell from, ell to, winner) between the crossings of one phase-table entry, covering its range."""
    lo, hi = entry["range"]
    edges = [lo] + [float(c["ell"]) for c in entry["crossings"]] + [hi]
    names = [entry["winner_at_lo"]] + [c["right"] for c in entry["crossings"]]
    return [(edges[i], edges[i + 1], nm) for i, nm in enumerate(names)]


def recorded_winner(K: int, M: int, ell: float) -> str | None:
    """The global winner's name at ell from the recorded table ("total collapse" included); None when (K, M) is
    not recorded or ell is outside its range."""
    entry = load_phase_table().get((K, M))
    if entry is None:
        return None
    return next((nm for a, b, nm in bands(entry) if a <= ell <= b), None)


#: ``recorded_geometry`` defers to the full selection within this relative distance (in ell) of a recorded crossing
RECORDED_MARGIN = 1e-3


def recorded_geometry(K: int, M: int, ell, dps: int = 40) -> tuple[CodeValue | None, list[CodeValue]] | None:
    """``best_geometry`` from the recorded phase table (derived once per (K, M), certified at 30 digits): the code
    the table names at ell, refined at ``dps`` digits, with the simplex ETF refined beside it; (None, [...]) when
    the table names total collapse. None -- use ``best_geometry`` -- when (K, M) is not recorded, ell is outside the
    table's range or within ``RECORDED_MARGIN`` (relative) of a recorded crossing, or the named branch cannot be
    refined at ell."""
    entry = load_phase_table().get((K, M))
    e = float(ell)
    if entry is None or not entry["range"][0] <= e <= entry["range"][1]:
        return None
    if any(abs(e / float(c["ell"]) - 1) < RECORDED_MARGIN for c in entry["crossings"]):
        return None
    name = recorded_winner(K, M, e)
    etf = etf_code(K)
    try:
        vals = [refined_value(etf, M, ell, dps)]
    except (ArithmeticError, ZeroDivisionError):
        vals = []  # no ETF branch at ell (beyond its end)
    if name == "total collapse":
        return None, vals
    try:
        code = next((m.code for m in _models(K, M, 2) if m.code.name() == name), None)
        if code is None:
            return None
        win = vals[0] if (code == etf and vals) else refined_value(code, M, ell, dps)
    except (ArithmeticError, ZeroDivisionError):
        return None
    vals = sorted({id(v): v for v in vals + [win]}.values(), key=lambda c: (c.value, _preference(c.code)))
    return win, vals


def etf_region(K: int, M: int) -> list[tuple[float, float]]:
    """The ell intervals (within PHASE_RANGE) where the simplex ETF is the global minimizer, from the recorded
    table when (K, M) is in it, else computed. ([] when the ETF never wins there.)"""
    entry = load_phase_table().get((K, M)) or phase_entry(K, M, dps=25, points=30)
    etf = etf_code(K).name() if K >= 2 else ""
    return [(a, b) for a, b, nm in bands(entry) if nm == etf]


if __name__ == "__main__":  # python -m ncverify.theory.ce_codes: recompute the recorded phase table (several minutes)
    import json
    import sys

    entries = []
    for K_ in range(3, 9):
        for M_ in range(1, 7):
            entries.append(phase_entry(K_, M_))
            print(K_, M_, [(c["ell"][:12], c["right"]) for c in entries[-1]["crossings"]], file=sys.stderr, flush=True)
    GOLDEN.write_text(json.dumps({"description": "global winner of the reduced deep CE problem along ell = "
                                                 "(n lambda_H prod_j lambda_Wj)^(1/(M+1)); theory.ce_codes.phase_entry",
                                  "entries": entries}, indent=1) + "\n")
