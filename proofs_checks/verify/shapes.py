"""Shape claims (``statement.shapes``) at numeric minimizers, each with a derived tolerance.

Every tolerance comes from dtheta, the argmin distance of the run (``tolerances.argmin_distance``): every factor
of the point moves by at most dtheta (Frobenius) to reach a minimizer. Products of factors then move by at most
``tolerances.product_perturbation`` (norms: spectral), dF; class means Fbar = F E (E averages each class,
||E||_2 = 1/sqrt(min n_k)) by dF / sqrt(min n_k); a Gram G = Fbar^T Fbar by 2 ||Fbar|| dFbar + dFbar^2; a
normalized distance ||X/||X|| - T/||T|| || by 2 ||Delta X|| / ||X||.

``at_minimizers`` evaluates a claim at every numeric end point that reaches the claimed minimum: a claim that holds
at one such minimizer and fails at another is refuted as *not determined by the minimum* (the pair is named).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ncverify.numerics import metrics
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import tolerances as tl
from ncverify.proofs_checks.errors import UsageError
from ncverify.proofs_checks.statement.shapes import ShapeClaim, expand, layer_error, parse
from ncverify.proofs_checks.verify.evidence import Check, Evidence, Status


def _spec(A: np.ndarray) -> float:
    return float(np.linalg.norm(A, 2)) if A.size else 0.0


def features(inst: Instance, p: dict, layer: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The features F of ``layer`` at the point ``p`` and the factors whose product gives them (for the
    perturbation bound): H; h_j = W_j...W_1 H; pre = W_1 H; post = s(W_1 H) (s is 1-Lipschitz, so post moves
    no more than pre)."""
    Ws, H = p["weights"], p["H"]
    if layer == "H":
        return H, [H]
    if layer in ("pre", "post"):
        pre = Ws[0] @ H
        post = np.maximum(pre, 0.0) if (layer == "post" and inst.activation == "relu") else pre
        return post, [Ws[0], H]
    j = int(layer[1:])
    if inst.activation == "relu-deep":  # after the j-th ReLU (1-Lipschitz: the same perturbation bound)
        X = H
        for W in Ws[:j]:
            X = np.maximum(W @ X, 0.0)
        return X, [*Ws[:j], H]
    return metrics.product(Ws[:j]) @ H, [*Ws[:j], H]


def to_logits(inst: Instance, p: dict, layer: str) -> list[np.ndarray]:
    """The factors of the linear map A from ``layer``'s features to the logits (A = W_M...W_{j+1})."""
    Ws = p["weights"]
    if layer == "H":
        return list(Ws)
    if layer == "post":
        return list(Ws[1:])
    return list(Ws[int(layer[1:]):])


def _means(inst: Instance, F: np.ndarray) -> np.ndarray:
    Fbar = metrics.class_means(F, inst.counts)
    return Fbar - Fbar.mean(axis=1, keepdims=True) if inst.bias else Fbar


def evaluate(sc: ShapeClaim, inst: Instance, p: dict, dtheta: float) -> Evidence:
    """One shape claim at the point ``p`` ({"weights", "H", "b"} numpy) whose argmin distance is ``dtheta``."""
    q = f"{sc.name}: {sc.describe()}"
    min_n = min(inst.counts)
    if sc.kind == "alignment":
        j = int(sc.layer)
        Ws = p["weights"]
        L, R = Ws[j], (Ws[j - 1] if j >= 1 else p["H"])
        X, Y = L.T @ L, R @ R.T
        dX, dY = 2 * _spec(L) * dtheta + dtheta ** 2, 2 * _spec(R) * dtheta + dtheta ** 2
        nX, nY = float(np.linalg.norm(X)), float(np.linalg.norm(Y))
        if nX <= dX or nY <= dY:
            return Evidence(Check.NUMERICS, q, Status.INFO, detail="a factor is zero at the numeric point")
        v = float(np.linalg.norm(X @ Y - Y @ X)) / (nX * nY)
        tol = 2 * (dX * nY + nX * dY + dX * dY) / ((nX - dX) * (nY - dY))
        return Evidence(Check.NUMERICS, q + " (||[X, Y]|| / (||X|| ||Y||))", Status.PASS if v <= tol else Status.FAIL,
                        v, tol, f"||Delta X|| <= 2||L||_2 dtheta + dtheta^2, dtheta = {dtheta:.2g}")
    if sc.kind == "gram" and sc.layer in ("W", "W_M"):
        Ws = p["weights"]
        A = metrics.product(Ws) if sc.layer == "W" else Ws[-1]
        dA = tl.product_perturbation([_spec(w) for w in Ws], dtheta) if sc.layer == "W" else dtheta
        return _gram(sc, q, A @ A.T, float(np.linalg.norm(A)), dA, f"rows move by <= {dA:.2g} (dtheta = {dtheta:.2g})")
    F, factors = features(inst, p, sc.layer)
    dF = tl.product_perturbation([_spec(a) for a in factors], dtheta)
    Fbar = _means(inst, F)
    dbar = dF / math.sqrt(min_n)
    origin = f"dF = {dF:.2g} (product bound, dtheta = {dtheta:.2g}), class means move by dF/sqrt(min n_k)"
    if sc.kind == "gram":
        return _gram(sc, q, Fbar.T @ Fbar, float(np.linalg.norm(Fbar)), dbar, origin)
    if sc.kind == "nc1":
        c = Fbar - Fbar.mean(axis=1, keepdims=True)
        ev_b = np.linalg.eigvalsh(c @ c.T / inst.K)
        lam_min = float(ev_b[ev_b > 1e-12 * max(ev_b.max(), 1e-300)].min()) if ev_b.max() > 0 else 0.0
        if lam_min == 0.0 or float(np.linalg.norm(Fbar)) <= dbar:
            return Evidence(Check.NUMERICS, q, Status.INFO, detail="class means collapsed to zero")
        v = metrics.nc1(F, inst.counts)
        tol = 4 * dF ** 2 / (inst.N * inst.K * lam_min)
        return Evidence(Check.NUMERICS, q + " = (1/K) tr(Sigma_W Sigma_B^+)", Status.PASS if v <= tol else Status.FAIL,
                        v, tol, f"||F - Fbar||_F <= 2 dF: nc1 <= 4 dF^2/(N K lambda_min(Sigma_B)); {origin}")
    # self-duality: A^T proportional to the centered class means
    Afac = to_logits(inst, p, sc.layer)
    A = metrics.product(Afac)
    dA = tl.product_perturbation([_spec(a) for a in Afac], dtheta)
    Fc = Fbar - Fbar.mean(axis=1, keepdims=True)  # NC3 as the ETF literature states it: centered class means
    nA, nF = float(np.linalg.norm(A)), float(np.linalg.norm(Fc))
    if nA <= dA or nF <= dbar:
        return Evidence(Check.NUMERICS, q, Status.INFO, detail="the map to the logits or the class means are zero")
    v = metrics.nc3_duality(A, Fc)
    tol = 2 * (dA / nA + dbar / nF)
    return Evidence(Check.NUMERICS, q + " (nc3)", Status.PASS if v <= tol else Status.FAIL, v, tol,
                    f"2 (dA/||A|| + dFbar/||Fbar||), dA = {dA:.2g}; {origin}")


def _gram(sc: ShapeClaim, q: str, G: np.ndarray, nrows: float, drows: float, origin: str) -> Evidence:
    dG = 2 * nrows * drows + drows ** 2  # ||Delta(X^T X)||_F <= 2 ||X||_F ||Delta X||_F + ||Delta X||_F^2
    nG = float(np.linalg.norm(G))
    if sc.geometry == "zero":
        return Evidence(Check.NUMERICS, q + " (||G||_F)", Status.PASS if nG <= dG else Status.FAIL, nG, dG,
                        f"||Delta G|| <= 2||X|| dX + dX^2; {origin}")
    if nG <= dG:
        return Evidence(Check.NUMERICS, q, Status.INFO, detail="zero at the numeric point (no geometry to compare)")
    v = metrics.nc2_diagonal(G) if sc.geometry == "GOF" else metrics.nc2(G, sc.geometry)
    t = 2 * dG / nG
    return Evidence(Check.NUMERICS, q + " (nc2)", Status.PASS if v <= t else Status.FAIL, v, t,
                    f"2 ||Delta G|| / ||G||, ||Delta G|| <= 2||X|| dX + dX^2; {origin}")


def at_minimizers(names: Sequence[str], inst: Instance, points: Sequence[tuple[str, dict, float]]) -> list[Evidence]:
    """Every shape claim in ``names`` at every minimizer in ``points`` = [(label, point, dtheta), ...] (the
    numeric end points that reach the claimed minimum, best first). One evidence per claim: PASS if it holds at
    all of them; FAIL if it fails at all of them, or -- *not determined by the minimum* -- at some but not others;
    INFO when it does not apply (a zero layer). A layer the instance lacks is a UsageError."""
    out: list[Evidence] = []
    claims = []
    for name in names:
        sc = parse(name)
        why = layer_error(sc, inst)
        if why:
            raise UsageError(f"{why} (instance {inst.cli_flags()})")
        claims += expand(sc, inst)
    for sc in claims:
        evs = [(label, evaluate(sc, inst, pt, dth)) for label, pt, dth in points]
        decided = [(lb, e) for lb, e in evs if e.status in (Status.PASS, Status.FAIL)]
        if not decided:
            out.append(evs[0][1])
            continue
        fails = [(lb, e) for lb, e in decided if e.status == Status.FAIL]
        passes = [(lb, e) for lb, e in decided if e.status == Status.PASS]
        if fails and passes:
            (lp, ep), (lf, ef) = passes[0], fails[0]
            out.append(Evidence(ef.check, ef.quantity, Status.FAIL, ef.error, ef.tolerance, ef.origin,
                                f"not determined by the minimum: two numeric minimizers reach the claimed minimum and "
                                f"disagree ({lp}: {ep.error:.3g} <= {ep.tolerance:.3g}; {lf}: {ef.error:.3g} > "
                                f"{ef.tolerance:.3g})"))
        else:
            worst = max((e for _, e in decided), key=lambda e: e.error / max(e.tolerance, 1e-300))
            n = len(decided)
            out.append(Evidence(worst.check, worst.quantity, worst.status, worst.error, worst.tolerance, worst.origin,
                                (worst.detail + "; " if worst.detail else "") + f"worst of {n} numeric minimizer(s) "
                                "at the claimed minimum"))
    return out
