"""Phase boundaries in instance terms, used to aim the search at both sides of every boundary.

Computed here in mpmath from the scaled scalar problems (a test checks them against the theory
engine's own phase boundaries, so the two computations confirm each other):

* MSE (deep linear, M+1 factors; also the bias and extended-linear families): one mode with label
  singular value sqrt(n) has, with z = sqrt(n) u, the scaled objective
      psi(u) = (1 - u)^2 + (M+1) kappa u^{2/(M+1)},  kappa = N L / n^{M/(M+1)},  L = (lambda_H prod_j lambda_Wj)^{1/(M+1)}.
  Stationary points satisfy kappa = h(u) = (1 - u) u^{(M-1)/(M+1)}; they exist iff kappa <= kappa_e = max h
  (at u = (M-1)/(2M)), and the global minimizer leaves 0 iff kappa < kappa_g = h((M-1)/M)
  = (1/M) ((M-1)/M)^{(M-1)/(M+1)} (from psi(u) = psi(0) at a stationary point). For M = 1 both are 1.
* CE on the simplex ETF: g(a) = log(1 + (K-1) e^{-a}) + ((M+1)/2)(K-1) gamma a^{2/(M+1)} with
  gamma = L n^{1/(M+1)}; thresholds gamma_g (global) and gamma_e (existence) found numerically.
"""
from __future__ import annotations

import functools

import mpmath as mp

DPS = 40


def mse_kappa_thresholds(M: int) -> dict[str, mp.mpf]:
    """{"global": kappa_g, "existence": kappa_e} of the MSE mode problem for depth M."""
    mp.mp.dps = DPS
    p = mp.mpf(M - 1) / (M + 1)
    h = lambda u: (1 - u) * u ** p if u > 0 else (mp.mpf(1) if M == 1 else mp.mpf(0))  # noqa: E731
    ug, ue = mp.mpf(M - 1) / M, mp.mpf(M - 1) / (2 * M)
    return {"global": h(ug) if M > 1 else mp.mpf(1), "existence": h(ue) if M > 1 else mp.mpf(1)}


@functools.lru_cache(maxsize=64)
def ce_gamma_thresholds(K: int, M: int) -> dict[str, mp.mpf]:
    """{"global": gamma_g, "existence": gamma_e} of the CE margin problem (ETF geometry)."""
    mp.mp.dps = DPS
    q = mp.mpf(2) / (M + 1)
    if M == 1:
        v = mp.mpf(1) / K
        return {"global": v, "existence": v}
    # stationary gamma as a function of a > 0:  gamma(a) = s(a) / a^{q-1},  s(a) = e^{-a}/(1+(K-1)e^{-a}) / q ... scaled
    ell = lambda a: mp.log(1 + (K - 1) * mp.e ** (-a))  # noqa: E731
    dell = lambda a: -(K - 1) * mp.e ** (-a) / (1 + (K - 1) * mp.e ** (-a))  # noqa: E731
    c = mp.mpf(M + 1) / 2 * (K - 1)
    gam = lambda a: -dell(a) / (c * q * a ** (q - 1))  # noqa: E731
    a_e = mp.findroot(lambda a: mp.diff(gam, a), _argmax_bracket(gam))
    # global: g(a; gamma(a)) = log K at the larger stationary point
    G = lambda a: ell(a) + c * gam(a) * a ** q - mp.log(K)  # noqa: E731
    a_g = mp.findroot(G, (a_e * 1.0001, mp.mpf(60)), solver="anderson")
    return {"global": gam(a_g), "existence": gam(a_e)}


def _argmax_bracket(f, lo: float = 1e-6, hi: float = 60.0, n: int = 600) -> mp.mpf:
    best, arg = None, None
    for i in range(n + 1):
        a = mp.mpf(lo) * (mp.mpf(hi) / lo) ** (mp.mpf(i) / n)
        v = f(a)
        if best is None or v > best:
            best, arg = v, a
    return arg


def critical_lam_h(family: str, inst) -> list[float]:
    """lambda_H values where some class of ``inst`` (other parameters fixed) crosses a boundary."""
    mp.mp.dps = DPS
    M = inst.depth
    prod_w = mp.mpf(1)
    for v in inst.lam_w:
        prod_w *= mp.mpf(repr(float(v)))
    out: set[float] = set()
    if family in ("mse-deep", "mse-deep-bias", "extended-linear"):
        thr = mse_kappa_thresholds(M)
        for n_k in sorted(set(inst.counts)):
            for kappa in thr.values():
                # kappa = N L / n^{M/(M+1)}  =>  L = kappa n^{M/(M+1)} / N  =>  lambda_H = L^{M+1} / prod_w
                L = kappa * mp.mpf(n_k) ** (mp.mpf(M) / (M + 1)) / inst.N
                out.add(float(L ** (M + 1) / prod_w))
    elif family == "ce-deep-etf":
        thr = ce_gamma_thresholds(inst.K, M)
        n = inst.counts[0]
        for gamma in thr.values():
            L = gamma / mp.mpf(n) ** (mp.mpf(1) / (M + 1))
            out.add(float(L ** (M + 1) / prod_w))
    return sorted(out)
