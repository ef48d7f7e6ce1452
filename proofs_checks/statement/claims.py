"""Helpers for writing claims as papers state them: precision, numbers, root rules, the one ETF geometry,
and the prediction transforms that mutants are made of.

Claims are computed in mpmath at ``DPS`` digits inside ``mp.workdps`` (never by setting the global
precision), independently of the theory engine's derivation that they are compared with.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import mpmath as mp
import numpy as np

from ncverify.numerics.problem import Instance
from ncverify.theory.numbers import mp_number as num  # noqa: F401  (the one exact-number rule: 1e-3 means 1/1000)
from ncverify.theory.prediction import Exact, GramTarget, Prediction, SingularValues, exact

DPS = 40
ETF_GEOMETRY = "etf-margin"  # the family tag of claims on the simplex-ETF logit geometry


def positive_real_roots(coeffs: list[mp.mpf]) -> list[mp.mpf]:
    """Positive real roots of the polynomial with ``coeffs`` (highest degree first), at the working precision."""
    while coeffs and coeffs[0] == 0:
        coeffs = coeffs[1:]
    if len(coeffs) < 2:
        return []
    roots = mp.polyroots(coeffs, maxsteps=400, extraprec=4 * DPS)
    scale = max(1, max(abs(r) for r in roots))
    out = [mp.re(r) for r in roots if abs(mp.im(r)) <= mp.mpf(10) ** (-(DPS // 2)) * scale and mp.re(r) > 0]
    return sorted(out)


def minimize_on_halfline(g: Callable[[mp.mpf], mp.mpf], upper: mp.mpf, grid: int = 400) -> mp.mpf:
    """argmin of g over [0, upper] by a dense grid (points upper (i/grid)^2) then golden-section refinement
    (claim-side helper). When g has a ``vectorized`` float64 version (numpy arrays) the grid is scanned with it
    and the five points around its argmin are re-evaluated with g itself before the bracket is chosen."""
    pts = [upper * (mp.mpf(i) / grid) ** 2 for i in range(grid + 1)]
    vec = getattr(g, "vectorized", None)
    vals: dict[int, mp.mpf] = {}
    if vec is not None:
        with np.errstate(all="ignore"):
            v = np.asarray(vec(np.array([float(p) for p in pts])), dtype=float)
        if np.all(np.isfinite(v)):
            i0 = int(np.argmin(v))
            near = range(max(0, i0 - 2), min(grid, i0 + 2) + 1)
            vals = {j: g(pts[j]) for j in near}
    if not vals:
        vals = {j: g(p) for j, p in enumerate(pts)}
    i = min(vals, key=lambda j: vals[j])
    lo, hi = pts[max(i - 1, 0)], pts[min(i + 1, grid)]
    invphi = (mp.sqrt(5) - 1) / 2
    c, d = hi - invphi * (hi - lo), lo + invphi * (hi - lo)
    gc, gd = g(c), g(d)
    for _ in range(200):
        if gc < gd:
            hi, d, gd = d, c, gc
            c = hi - invphi * (hi - lo)
            gc = g(c)
        else:
            lo, c, gc = c, d, gd
            d = lo + invphi * (hi - lo)
            gd = g(d)
        if hi - lo < mp.mpf(10) ** (-(DPS - 5)) * max(1, hi):
            break
    a = (lo + hi) / 2
    return mp.mpf(0) if g(mp.mpf(0)) <= g(a) else a


def mode_value(s: mp.mpf, s_i: mp.mpf, N: int, M: int, L: mp.mpf) -> mp.mpf:
    """The per-singular-value MSE problem: g(s) = (1/(2N)) (s_i - s)^2 + ((M+1)/2) L s^(2/(M+1)): the objective of one singular value s of Z."""
    return (s_i - s) ** 2 / (2 * N) + mp.mpf(M + 1) / 2 * L * s ** (mp.mpf(2) / (M + 1))


def mode_minimizer(s_i: mp.mpf, N: int, M: int, L: mp.mpf, rule: str = "global") -> mp.mpf:
    """The minimizer s* >= 0 of g: with t = s^(1/(M+1)) the stationary points are the positive roots of
    t^(2M) - s_i t^(M-1) + N L = 0; ``rule`` "global" compares g at 0 and at every root (the claim), "largest"
    takes the largest root when one exists (what a largest-root rule would say; a mutant)."""
    coeffs = [mp.mpf(0)] * (2 * M + 1)  # index = power of t
    coeffs[2 * M] += 1
    coeffs[M - 1] -= s_i
    coeffs[0] += N * L
    roots = [t ** (M + 1) for t in positive_real_roots(list(reversed(coeffs)))]
    if rule == "largest":
        return roots[-1] if roots else mp.mpf(0)
    return min([mp.mpf(0)] + roots, key=lambda s: (mode_value(s, s_i, N, M, L), -s))


def etf_prediction(inst: Instance, a: mp.mpf, f_star: mp.mpf, notes: Sequence[str] = (),
                   bias: Sequence[mp.mpf] | None = None, family: str = ETF_GEOMETRY) -> Prediction:
    """THE simplex-ETF claim geometry: logits a (e_k - 1/K 1) (simplex ETF, self-dual, NC1), minimal value f*.

    Symbols: K = inst.K, n = inst.n, M = inst.depth, lt = (lambda_H prod_j lambda_Wj)^{1/(M+1)}; the K-1
    singular values of W_j are sqrt(lt/lambda_Wj) (a sqrt n)^{1/(M+1)}, of H sqrt(lt/lambda_H) (a sqrt n)^{1/(M+1)}.
    ``bias``: the claimed bias entries (default 0 when the instance has a bias).
    """
    with mp.workdps(DPS):
        K, n, M = inst.K, inst.n, inst.depth
        a, f_star = mp.mpf(a), mp.mpf(f_star)
        lam = [num(v) for v in inst.lam_w]
        lam_h = num(inst.lam_h)
        lt = (lam_h * mp.fprod(lam)) ** (mp.mpf(1) / (M + 1))
        z = a * mp.sqrt(n)
        t = z ** (mp.mpf(1) / (M + 1))
        layers = [[mp.sqrt(lt / lam[j]) * t] * (K - 1) + [mp.mpf(0)] for j in range(M)]
        w_sv = mp.fprod(r[0] for r in layers)
        mean_norm = mp.sqrt(lt / lam_h) * t / mp.sqrt(n) * mp.sqrt(1 - mp.mpf(1) / K)
        shrink = 1 - mp.mpf(1) / K
        b = [exact(v) for v in (bias if bias is not None else [0] * K)] if inst.bias else None
        return Prediction(
            family=family, instance=inst.as_dict(), objective=exact(f_star),
            scalars={"a": [exact(a)], "p_true": [exact(1 / (1 + (K - 1) * mp.e ** (-a)))]},
            singular_values=SingularValues([exact(w_sv)] * (K - 1) + [exact(0)],
                                           [[exact(v) for v in r] for r in layers], [exact(z)] * (K - 1) + [exact(0)]),
            gram_targets={"WWT": GramTarget("ETF", [exact(w_sv ** 2 * shrink)] * K),
                          "HbarTHbar": GramTarget("ETF", [exact(mean_norm ** 2)] * K)},
            class_mean_norms=[exact(mean_norm)] * K, bias=b, collapsed_classes=list(range(K)) if a == 0 else [],
            notes=list(notes))


# ---------------------------------------------------------------------------------------------
# transforms of a prediction (what mutants are made of)
def with_geometry(p: Prediction, geometry: str) -> Prediction:
    """The same prediction with its Gram targets W W^T and Hbar^T Hbar stated as ``geometry`` ("OF" or
    "ETF") with the same scale: an OF of scale s has diagonal s, an ETF of scale s has diagonal s (1 - 1/K)."""
    K = len(p.instance["counts"])
    shrink = 1 - mp.mpf(1) / K
    out = {}
    for key, g in p.gram_targets.items():
        if key not in ("WWT", "HbarTHbar") or g.kind not in ("OF", "GOF", "ETF") or g.kind == geometry:
            out[key] = g
            continue
        factor = shrink if geometry == "ETF" else 1 / shrink
        diag = None if g.diag is None else [exact(e.value * factor) for e in g.diag]
        out[key] = GramTarget(geometry, diag, description=g.description, centered=g.centered)
    return p.with_(gram_targets=out)


def with_bias(p: Prediction, value: mp.mpf) -> Prediction:
    """The same prediction with every bias entry equal to ``value``."""
    K = len(p.instance["counts"])
    return p.with_(bias=[exact(value)] * K)


def with_objective_scaled(p: Prediction, factor: mp.mpf) -> Prediction:
    """The same prediction with its minimal objective multiplied by ``factor`` (a wrong normalization)."""
    return p.with_(objective=exact(p.objective.value * factor))


def with_singular_values(p: Prediction, **changes: Sequence[Exact] | None) -> Prediction:
    """The same prediction with some singular-value lists replaced."""
    return p.with_(singular_values=dataclasses.replace(p.singular_values, **changes))


def scalar(p: Prediction, name: str, i: int = 0) -> mp.mpf:
    """The value of scalar ``name`` (entry i) of a prediction."""
    return p.scalars[name][i].value


__all__ = ["DPS", "ETF_GEOMETRY", "num", "exact", "Exact", "positive_real_roots", "minimize_on_halfline", "mode_value",
           "mode_minimizer",
           "etf_prediction", "with_geometry", "with_bias", "with_objective_scaled", "with_singular_values", "scalar"]
