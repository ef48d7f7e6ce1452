"""Independent reference predictions for small instances (used by the construction tests).

These are this test suite's own derivations, not theory/derive.py:

* deep linear MSE, bias-free (class layout): per class the reduced problem
  f_k(x) = (1/(2N)) [n_k / (1 + x^M) + beta x], beta = M N (N lambda_H prod_j lambda_{W_j})^{1/M}, x >= 0;
  candidates x = 0 and the positive roots of beta (1 + x^M)^2 = M n_k x^{M-1} (exact: a closed form for
  M = 1, CRootOf for M >= 2), the global one chosen by value. sigma_k^2 = N lambda_H x_k^M,
  lambda_{W_j} s_{j,k}^2 = lbar sigma_k^{2/M}, ||hbar_k|| = sigma_k / (sigma_k^2 + N lambda_H).
  (For M = 1 this was re-derived by hand: for fixed sigma the best class mean is
  sigma/(sigma^2 + N lambda_H) and the value n_k lambda_H / (2 (sigma^2 + N lambda_H)) + lambda_W sigma^2 / 2.)
* the same with an unregularized bias (balanced): K-1 modes of size n on the complement of 1_K, b = 1_K/K.
* CE on the simplex ETF (balanced): logits a (e_k - 1_K/K); for M = 1 with s = sqrt(n lambda_W lambda_H),
  a = log((1 - (K-1) s)/s) if K s < 1 else 0 (closed form); for M >= 2 the margin minimizes
  g(a) = log(1 + (K-1) e^{-a}) + (K-1) (M+1)/2 L a^{2/(M+1)}, L = (n lambda_H prod_j lambda_{W_j})^{1/(M+1)},
  solved with mpmath (values only, no exact expressions). Per mode lambda_j t_j^2 = n lambda_H t_H^2 = L a^{2/(M+1)}.
* the extended UFM (identity or ReLU) with depth 2 has the deep linear MSE (M = 2) prediction.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory.objective import spec_of
from ncverify.theory.prediction import Exact, Prediction, SingularValues

DPS = 40
x = sp.Symbol("x", positive=True)


def ex(e: sp.Expr | None, value: mpmath.mpf | None = None) -> Exact:
    if e is None:
        return Exact(value=mpmath.mpf(value))
    with mpmath.workdps(DPS):
        return Exact(value=mpmath.mpf(sp.N(e, DPS + 10)._to_mpmath(mpmath.mp.prec + 40)) if e != 0 else mpmath.mpf(0),
                     expr=sp.sympify(e))


def _best_x(beta: sp.Expr, n: int, M: int, N: int, q: sp.Expr) -> sp.Expr:
    """Global minimizer of n/(1 + x^M) + beta x over x >= 0 (beta = M N q^{1/M}, q = N lambda_H prod lambda).

    For M >= 2 the stationary equation beta (1 + x^M)^2 = M n x^{M-1} has rational coefficients in
    y = x / q^{(M-1)/M}: N (1 + q^{M-1} y^M)^2 = n q^{M-2} y^{M-1}.
    """
    if M == 1:
        cands = [sp.Integer(0)]
        r = sp.sqrt(sp.Rational(n) / beta) - 1
        if r > 0:
            cands.append(r)
    else:
        poly = sp.Poly(sp.expand(N * (1 + q ** (M - 1) * x ** M) ** 2 - n * q ** (M - 2) * x ** (M - 1)), x)
        cands = [sp.Integer(0)] + [q ** sp.Rational(M - 1, M) * r for r in poly.real_roots() if r > 0]

    def val(c: sp.Expr) -> sp.Float:
        return sp.N(n / (1 + c ** M) + beta * c, 60)

    return min(cands, key=val)


def _pred(family, inst, f, xs, sig, layers, norms, bias, collapsed, out=None) -> Prediction:
    return Prediction(family=family, instance=inst.as_dict(), objective=f, scalars={"x": xs},
                      singular_values=SingularValues(sig, layers, out or []),
                      gram_targets={}, class_mean_norms=norms, bias=bias, collapsed_classes=collapsed, dps=DPS)


def ref_mse_deep(inst, perturb: tuple[int, int, sp.Expr] | None = None) -> Prediction:
    """Bias-free deep linear MSE (also the extended UFM with M = 2). perturb = (layer j, class k, factor)."""
    sp_ = spec_of(inst)
    K, N, M = sp_.K, sp_.N, sp_.depth
    lam = sp_.lam_w
    prod = sp.Mul(*lam)
    lbar = prod ** sp.Rational(1, M)
    beta = M * N * (N * sp_.lam_h * prod) ** sp.Rational(1, M)
    xs, sig, norms, fk = [], [], [], []
    layers = [[] for _ in range(M)]
    for k, n in enumerate(sp_.counts):
        xk = _best_x(beta, n, M, N, N * sp_.lam_h * prod)
        s2 = N * sp_.lam_h * xk ** M
        s = sp.sqrt(s2)
        xs.append(xk)
        sig.append(s)
        norms.append(s / (s2 + N * sp_.lam_h))
        fk.append(n / (1 + xk ** M) + beta * xk)
        for j in range(M):
            layers[j].append(sp.sqrt(lbar * s2 ** sp.Rational(1, M) / lam[j]))
    if perturb:
        j, k, fac = perturb
        layers[j][k] = layers[j][k] * fac
    f = sp.Add(*fk) / (2 * N)
    collapsed = [k for k, v in enumerate(xs) if v == 0]
    fam = "extended-linear" if sp_.activation else "mse-deep"
    return _pred(fam, inst, ex(f), [ex(v) for v in xs], [ex(v) for v in sig],
                 [[ex(v) for v in L] for L in layers], [ex(v) for v in norms], None, collapsed)


def ref_mse_bias(inst, with_zero_mode: bool = False) -> Prediction:
    """Deep linear MSE with an unregularized bias, balanced: K-1 ETF modes, b = 1_K / K."""
    sp_ = spec_of(inst)
    K, N, M = sp_.K, sp_.N, sp_.depth
    n = sp_.counts[0]
    lam = sp_.lam_w
    prod = sp.Mul(*lam)
    lbar = prod ** sp.Rational(1, M)
    beta = M * N * (N * sp_.lam_h * prod) ** sp.Rational(1, M)
    xk = _best_x(beta, n, M, N, N * sp_.lam_h * prod)
    s2 = N * sp_.lam_h * xk ** M
    s = sp.sqrt(s2)
    t = s / (s2 + N * sp_.lam_h)
    norm = t * sp.sqrt(sp.Rational(K - 1, K))
    extra = [sp.Integer(0)] if with_zero_mode else []
    layers = [[sp.sqrt(lbar * s2 ** sp.Rational(1, M) / lam[j])] * (K - 1) + extra for j in range(M)]
    f = sp.Rational(K - 1, 2 * N) * (n / (1 + xk ** M) + beta * xk)
    return _pred("mse-deep-bias", inst, ex(f), [ex(xk)] * (K - 1), [ex(s)] * (K - 1) + [ex(v) for v in extra],
                 [[ex(v) for v in L] for L in layers], [ex(norm)] * K, [ex(sp.Rational(1, K))] * K,
                 [] if xk != 0 else list(range(K)))


def ref_ce(inst) -> Prediction:
    """Deep linear CE on the simplex ETF, balanced (exact for M = 1, mpmath values for M >= 2)."""
    sp_ = spec_of(inst)
    K, N, M = sp_.K, sp_.N, sp_.depth
    n = sp_.counts[0]
    lam = sp_.lam_w
    bias = [ex(sp.Integer(0))] * K if sp_.bias else None
    if M == 1:
        s = sp.sqrt(n * lam[0] * sp_.lam_h)
        a = sp.log((1 - (K - 1) * s) / s) if K * s < 1 else sp.Integer(0)
        tW = sp.sqrt(s * a / lam[0])
        tH = sp.sqrt(s * a / (n * sp_.lam_h))
        f = sp.log(1 + (K - 1) * sp.exp(-a)) + (K - 1) * s * a
        return _pred("ce-deep-etf", inst, ex(f), [ex(a)], [ex(tW)] * (K - 1), [[ex(tW)] * (K - 1)],
                     [ex(tH * sp.sqrt(sp.Rational(K - 1, K)))] * K, bias, [] if a != 0 else list(range(K)))
    with mpmath.workdps(DPS + 10):
        mp = lambda e: mpmath.mpf(sp.N(e, DPS + 20)._to_mpmath(mpmath.mp.prec))  # noqa: E731
        L = mp((n * sp_.lam_h * sp.Mul(*lam)) ** sp.Rational(1, M + 1))
        p = mpmath.mpf(2) / (M + 1)

        def g(a):
            return mpmath.log(1 + (K - 1) * mpmath.exp(-a)) + (K - 1) * (M + 1) / mpmath.mpf(2) * L * a ** p

        def dg(a):
            return -(K - 1) * mpmath.exp(-a) / (1 + (K - 1) * mpmath.exp(-a)) + (K - 1) * L * a ** (p - 1)

        grid = [mpmath.mpf(10) ** (mpmath.mpf(i) / 20) for i in range(-200, 61)]
        cands = [mpmath.mpf(0)]
        for lo, hi in zip(grid, grid[1:]):
            if dg(lo) * dg(hi) < 0:
                cands.append(mpmath.findroot(dg, (lo, hi), solver="anderson"))
        a = min(cands, key=g)
        c = L * a ** p
        layers = [[Exact(value=mpmath.sqrt(c / mp(lam[j])))] * (K - 1) for j in range(M)]
        tH = mpmath.sqrt(c / (n * mp(sp_.lam_h)))
        sig = mpmath.fprod(L_.value for L_ in (col[0] for col in layers))
        return _pred("ce-deep-etf", inst, Exact(value=g(a)), [Exact(value=a)], [Exact(value=sig)] * (K - 1),
                     layers, [Exact(value=tH * mpmath.sqrt(mpmath.mpf(K - 1) / K))] * K, bias,
                     [] if a != 0 else list(range(K)))


# -- the references themselves -------------------------------------------------------------------
import pytest  # noqa: E402

from ncverify.numerics.problem import Instance  # noqa: E402


@pytest.mark.parametrize("counts, M, lw, lh", [((2, 1), 1, 0.05, 0.1), ((3, 2, 1), 1, 0.2, 0.2),
                                              ((3, 1), 2, [0.01, 0.02], 0.03)])
def test_mse_reference_matches_dense_one_dimensional_minimization(counts, M, lw, lh):
    """f* = (1/(2N)) sum_k min_{x >= 0} [n_k/(1 + x^M) + beta x], minimized on a dense grid + refinement."""
    inst = Instance.create(list(counts), width=len(counts), depth=M, lam_w=lw, lam_h=lh)
    pred = ref_mse_deep(inst)
    N = inst.N
    with mpmath.workdps(40):
        lam = [mpmath.mpf(repr(v)) for v in inst.lam_w]
        beta = M * N * (N * mpmath.mpf(repr(inst.lam_h)) * mpmath.fprod(lam)) ** (mpmath.mpf(1) / M)
        total = mpmath.mpf(0)
        for n in counts:
            f = lambda t: n / (1 + t ** M) + beta * t  # noqa: E731
            grid = [mpmath.mpf(i) / 200 for i in range(0, 4001)]
            i0 = min(range(len(grid)), key=lambda i: f(grid[i]))
            if i0 == 0:
                best = f(0)
            else:
                t = mpmath.findroot(lambda t: mpmath.diff(f, t), grid[i0])
                best = min(f(t), f(0))
            total += best
        assert abs(total / (2 * N) - pred.objective.value) < mpmath.mpf(10) ** -25


def test_ce_reference_closed_form_matches_numeric_margin():
    inst = Instance.create([2, 2, 2], width=3, depth=1, lam_w=0.01, lam_h=0.02, loss="ce")
    pred = ref_ce(inst)
    K, n = 3, 2
    with mpmath.workdps(40):
        L = mpmath.sqrt(n * mpmath.mpf("0.01") * mpmath.mpf("0.02"))
        g = lambda a: mpmath.log(1 + (K - 1) * mpmath.exp(-a)) + (K - 1) * L * a  # noqa: E731
        a = mpmath.findroot(lambda a: mpmath.diff(g, a), 5)
        assert abs(g(a) - pred.objective.value) < mpmath.mpf(10) ** -30
        assert abs(a - pred.scalars["x"][0].value) < mpmath.mpf(10) ** -30
