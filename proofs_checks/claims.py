"""The claims of ../shared/THEOREMS.md, written the way the papers (or their released code) state them.

Each claim maps an instance to a ``theory.prediction.Prediction`` holding only what the claim states;
fields it does not state are None (and are then not compared). Claims are computed in mpmath at
``DPS`` digits, independently of the theory engine's derivation (which they are compared against):
in particular the root rules and thresholds are the papers' rules, right or wrong.
"""
from __future__ import annotations

from typing import Callable

import mpmath as mp

from theory.prediction import Exact, Prediction

DPS = 40


def num(v) -> mp.mpf:
    """An instance parameter at DPS digits, read as the decimal number it prints as (1e-3 means 1/1000),
    the convention of the theory engine (``theory.reduced.exact_number``)."""
    if isinstance(v, int):
        return mp.mpf(v)
    return mp.mpf(repr(float(v)))


def _x(v) -> Exact:
    return Exact(mp.mpf(v))


def _mp_prod(values) -> mp.mpf:
    out = mp.mpf(1)
    for v in values:
        out *= mp.mpf(v)
    return out


def positive_real_roots(coeffs: list[mp.mpf]) -> list[mp.mpf]:
    """Positive real roots of the polynomial with ``coeffs`` (highest degree first), at DPS digits."""
    while coeffs and coeffs[0] == 0:
        coeffs = coeffs[1:]
    if len(coeffs) < 2:
        return []
    roots = mp.polyroots(coeffs, maxsteps=400, extraprec=4 * DPS)
    scale = max(1, max(abs(r) for r in roots))
    out = [mp.re(r) for r in roots if abs(mp.im(r)) <= mp.mpf(10) ** (-(DPS // 2)) * scale and mp.re(r) > 0]
    return sorted(out)


def dang_root_rule(n_k: int, b: mp.mpf, M: int, rule: str = "largest") -> mp.mpf:
    """x_k of [P1]: the largest positive real root of b/n_k = M x^{M-1} / (1 + x^M)^2, or 0 if none.

    The equation is cleared of denominators: b (1 + x^M)^2 - M n_k x^{M-1} = 0 (degree 2M).
    ``rule`` = "largest" is the paper's rule; "smallest" exists only for seeded wrong claims.
    """
    coeffs = [mp.mpf(0)] * (2 * M + 1)  # index = power
    coeffs[2 * M] += b
    coeffs[M] += 2 * b
    coeffs[0] += b
    coeffs[M - 1] -= M * mp.mpf(n_k)
    roots = positive_real_roots(list(reversed(coeffs)))
    if not roots:
        return mp.mpf(0)
    return roots[-1] if rule == "largest" else roots[0]


# ---------------------------------------------------------------------------------------------
# dang2023.mse-deep and dang2023.mse-deep-bias ([P1])
# ---------------------------------------------------------------------------------------------
def dang_mse_deep(inst, *, b_factor: mp.mpf = 1, exponent_shift: int = 0, rule: str = "largest",
                  normalization: mp.mpf = 2) -> Prediction:
    """[P1] deep linear bias-free MSE: per-class x_k, sigma_k^2 = N lambda_H x_k^M, GOF/OF geometry.

    Symbols: M = inst.depth, N = inst.N, n_k = inst.counts[k], lambda_{W_j} = inst.lam_w[j-1],
    lambda_H = inst.lam_h. Keyword arguments exist only to build seeded wrong claims (mutants):
    b_factor scales b, exponent_shift changes sigma^2 = N lambda_H x^{M + shift}, rule picks the root,
    normalization is the 2 of 1/(2N) in f*.
    """
    mp.mp.dps = DPS
    M, N = inst.depth, inst.N
    lam = [num(v) for v in inst.lam_w]
    lam_h = num(inst.lam_h)
    lbar = _mp_prod(lam) ** (mp.mpf(1) / M)
    b = M * N * (N * lam_h * _mp_prod(lam)) ** (mp.mpf(1) / M) * b_factor
    xs = [dang_root_rule(n_k, b, M, rule) for n_k in inst.counts]
    sig2 = [N * lam_h * x ** (M + exponent_shift) for x in xs]
    sig = [mp.sqrt(s) for s in sig2]
    layers = [[mp.sqrt(lbar * s ** (mp.mpf(2) / M) / lam[j]) for s in sig] for j in range(M)]
    mean_norms = [s / (s2 + N * lam_h) for s, s2 in zip(sig, sig2)]
    out_sv = [mp.sqrt(n_k) * x ** M / (1 + x ** M) for n_k, x in zip(inst.counts, xs)]
    f_star = sum(n_k / (1 + x ** M) + b * x for n_k, x in zip(inst.counts, xs)) / (normalization * N)
    kind = "OF" if inst.balanced else "GOF"
    return Prediction(
        family="mse-deep", instance=inst.as_dict(), objective=_x(f_star),
        scalars={"x": [_x(x) for x in xs], "b": [_x(b)]},
        singular_values={"weights_product": [_x(s) for s in sig],
                         "layers": [[_x(v) for v in row] for row in layers],
                         "output": [_x(v) for v in out_sv]},
        gram_targets={"WWT": {"kind": kind, "diag": [_x(v) for v in sig2]},
                      "HbarTHbar": {"kind": kind, "diag": [_x(v ** 2) for v in mean_norms]}},
        class_mean_norms=[_x(v) for v in mean_norms], bias=None,
        collapsed_classes=[k for k, x in enumerate(xs) if x == 0],
        notes=["claim: NC1 at every layer", "root rule: the largest positive real root, or 0 if none"],
    )


def dang_mse_deep_bias(inst, *, bias_value: mp.mpf | None = None, geometry: str = "ETF") -> Prediction:
    """[P1] deep linear MSE with an unregularized last-layer bias, balanced: b* = 1/K, simplex ETF.

    Symbols as in ``dang_mse_deep``; n = inst.n. ``bias_value``/``geometry`` only for mutants.
    """
    mp.mp.dps = DPS
    base = dang_mse_deep(inst)
    K, N, M, n = inst.K, inst.N, inst.depth, inst.n
    x = base.scalars["x"][0].value
    b = base.scalars["b"][0].value
    sig2 = N * num(inst.lam_h) * x ** M
    f_star = (K - 1) * (n / (1 + x ** M) + b * x) / (2 * N)
    bias = mp.mpf(1) / K if bias_value is None else mp.mpf(bias_value)
    sv = [mp.sqrt(sig2)] * (K - 1) + [mp.mpf(0)]
    lam = [num(v) for v in inst.lam_w]
    lbar = _mp_prod(lam) ** (mp.mpf(1) / M)
    layers = [[mp.sqrt(lbar * s ** (mp.mpf(2) / M) / lam[j]) for s in sv] for j in range(M)]
    diag = sig2 * (1 - mp.mpf(1) / K) if geometry == "ETF" else sig2
    return Prediction(
        family="mse-deep-bias", instance=inst.as_dict(), objective=_x(f_star),
        scalars={"x": [_x(x)], "b": [_x(b)]},
        singular_values={"weights_product": [_x(s) for s in sv], "layers": [[_x(v) for v in r] for r in layers],
                         "output": None},
        gram_targets={"WWT": {"kind": geometry, "diag": [_x(diag)] * K},
                      "HbarTHbar": {"kind": geometry, "diag": None}},
        class_mean_norms=None, bias=[_x(bias)] * K,
        collapsed_classes=list(range(K)) if x == 0 else [],
        notes=["claim: global feature mean 0 at every layer, NC1"],
    )


# ---------------------------------------------------------------------------------------------
# dang2023.ce-deep ([P1])
# ---------------------------------------------------------------------------------------------
def ce_margin_objective(a: mp.mpf, K: int, n: int, M: int, lt: mp.mpf) -> mp.mpf:
    """[P1]'s g(a) = log(1 + (K-1) e^{-a}) + ((M+1)/2) (K-1) lt (a sqrt n)^{2/(M+1)}."""
    return mp.log(1 + (K - 1) * mp.e ** (-a)) + mp.mpf(M + 1) / 2 * (K - 1) * lt * (a * mp.sqrt(n)) ** (mp.mpf(2) / (M + 1))


def minimize_on_halfline(g: Callable[[mp.mpf], mp.mpf], upper: mp.mpf, grid: int = 400) -> mp.mpf:
    """argmin of g over [0, upper] by a dense grid then golden-section refinement (claim-side helper)."""
    pts = [upper * (mp.mpf(i) / grid) ** 2 for i in range(grid + 1)]
    vals = [g(p) for p in pts]
    i = min(range(len(vals)), key=lambda j: vals[j])
    lo, hi = pts[max(i - 1, 0)], pts[min(i + 1, grid)]
    invphi = (mp.sqrt(5) - 1) / 2
    for _ in range(200):
        c, d = hi - invphi * (hi - lo), lo + invphi * (hi - lo)
        if g(c) < g(d):
            hi = d
        else:
            lo = c
        if hi - lo < mp.mpf(10) ** (-(DPS - 5)) * max(1, hi):
            break
    a = (lo + hi) / 2
    return mp.mpf(0) if g(mp.mpf(0)) <= g(a) else a


def dang_ce_deep(inst, *, s_factor: mp.mpf = 1, geometry: str = "ETF") -> Prediction:
    """[P1] deep linear CE, balanced: simplex ETF logits a (e_k - 1/K 1), a = argmin_{a>=0} g(a).

    lt = (lambda_H prod_j lambda_{W_j})^{1/(M+1)}. For M = 1 the claim is closed form: with
    s = sqrt(n lambda_W lambda_H), K s < 1 gives true-class probability 1 - (K-1) s, else W = H = 0.
    """
    mp.mp.dps = DPS
    K, n, M = inst.K, inst.n, inst.depth
    lam = [num(v) for v in inst.lam_w]
    lam_h = num(inst.lam_h)
    lt = (lam_h * _mp_prod(lam)) ** (mp.mpf(1) / (M + 1))
    if M == 1:
        s = mp.sqrt(n * lam[0] * lam_h) * s_factor
        # p_other = s  <=>  e^{-a} / (1 + (K-1) e^{-a}) = s  <=>  a = log((1 - (K-1) s) / s)
        a = mp.log((1 - (K - 1) * s) / s) if K * s < 1 else mp.mpf(0)
    else:
        g = lambda t: ce_margin_objective(t, K, n, M, lt * s_factor)  # noqa: E731
        a = minimize_on_halfline(g, upper=mp.mpf(60))
    f_star = ce_margin_objective(a, K, n, M, lt)
    z = a * mp.sqrt(n)  # the K-1 equal singular values of the logit matrix
    factor = lambda lam_j: mp.sqrt(lt / lam_j) * z ** (mp.mpf(1) / (M + 1))  # noqa: E731
    layers = [[factor(lam[j])] * (K - 1) + [mp.mpf(0)] for j in range(M)]
    w_sv = mp.sqrt(lt ** M / _mp_prod(lam)) * z ** (mp.mpf(M) / (M + 1))
    h_sv = factor(lam_h)  # singular value of H (K-1 modes); class means have h_sv / sqrt(n)
    mean_norm = h_sv / mp.sqrt(n) * mp.sqrt(1 - mp.mpf(1) / K)
    diag = (lambda v: v * (1 - mp.mpf(1) / K)) if geometry == "ETF" else (lambda v: v)
    bias = [_x(0)] * K if inst.bias else None
    return Prediction(
        family="ce-deep-etf", instance=inst.as_dict(), objective=_x(f_star),
        scalars={"a": [_x(a)], "p_true": [_x(1 / (1 + (K - 1) * mp.e ** (-a)))]},
        singular_values={"weights_product": [_x(w_sv)] * (K - 1) + [_x(0)],
                         "layers": [[_x(v) for v in r] for r in layers],
                         "output": [_x(z)] * (K - 1) + [_x(0)]},
        gram_targets={"WWT": {"kind": geometry, "diag": [_x(diag(w_sv ** 2))] * K},
                      "HbarTHbar": {"kind": geometry, "diag": [_x(mean_norm ** 2)] * K}},
        class_mean_norms=[_x(mean_norm)] * K, bias=bias,
        collapsed_classes=list(range(K)) if a == 0 else [],
        notes=["claim: NC1 at every layer, self-duality W^T proportional to centered class means, zero bias"],
    )


# ---------------------------------------------------------------------------------------------
# tirer2022.* ([P2])
# ---------------------------------------------------------------------------------------------
def tirer_mse_ufm(inst, *, geometry: str = "OF", c_factor: mp.mpf = 1, bias: bool = False) -> Prediction:
    """[P2] Thm 3.1 (M = 1, balanced), parametrization 1/(2Kn) = 1/(2N), lambda/2 penalties.

    c = K sqrt(n lambda_H lambda_W); c <= 1: Hbar^T Hbar = rho I_K, rho = (1 - c) sqrt(lambda_W/(n lambda_H)),
    W = sqrt(n lambda_H / lambda_W) Hbar^T; c > 1: (W, H) = (0, 0). The bias counterpart (``bias``):
    the same c and rho per nonzero mode, b* = 1/K, Grams rho (I - 11^T/K) (simplex ETF).
    """
    mp.mp.dps = DPS
    K, n = inst.K, inst.n
    lw, lh = num(inst.lam_w[0]), num(inst.lam_h)
    c = K * mp.sqrt(n * lh * lw) * c_factor
    rho = (1 - c) * mp.sqrt(lw / (n * lh)) if c <= 1 else mp.mpf(0)
    ratio = n * lh / lw  # W W^T = ratio * Hbar^T Hbar
    modes = K - 1 if bias else K
    shrink = (1 - mp.mpf(1) / K) if (geometry == "ETF") else 1
    sv_h = mp.sqrt(rho)
    return Prediction(
        family="mse-deep-bias" if bias else "mse-deep", instance=inst.as_dict(), objective=None,
        scalars={"c": [_x(c)], "rho": [_x(rho)]},
        singular_values={"weights_product": [_x(mp.sqrt(ratio) * sv_h)] * modes + [_x(0)] * (K - modes),
                         "layers": [[_x(mp.sqrt(ratio) * sv_h)] * modes + [_x(0)] * (K - modes)],
                         "output": None},
        gram_targets={"WWT": {"kind": geometry, "diag": [_x(ratio * rho * shrink)] * K},
                      "HbarTHbar": {"kind": geometry, "diag": [_x(rho * shrink)] * K}},
        class_mean_norms=[_x(mp.sqrt(rho * shrink))] * K,
        bias=[_x(mp.mpf(1) / K)] * K if bias else None,
        collapsed_classes=list(range(K)) if rho == 0 else [],
        notes=["claim: NC1; W = sqrt(n lambda_H/lambda_W) Hbar^T (self-duality)"],
    )
