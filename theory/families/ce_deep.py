"""Family ``ce-deep``: deep linear cross-entropy, balanced, global minimizer over logit geometries.

The objective reduces exactly to the K x K problem of ``theory.ce_codes`` (F depends on K, M and
ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) only). The derivation evaluates every code there (the simplex
ETF, polygons, cross-polytopes, antiprisms, bipyramids, ...) and total collapse (W = H = 0, value log K),
refines the competitive ones at ``dps`` digits and selects the least. When the simplex ETF wins (or collapse)
the prediction is the ETF family's (``ce-deep-etf``); otherwise it describes the winning code: the logit
matrix Zbar (classes in the code's block order: any permutation of the classes is equally optimal), the
singular values of Z, of every layer, of W and of H from the balanced factorization, and the Gram matrices.
The ETF's value is reported beside it, with the ETF phase boundaries in ell.

Assumptions (checked): loss ce, balanced, K >= 2, width d >= K (every rank is reachable), deep linear; a bias
only at depth M = 1 (lambda_b > 0: convex, the ETF with b = 0). At M >= 2 a class-dependent bias can lower a
non-transitive geometry below every code at b = 0 (found: K = 4, n = 2, M = 2, all lambdas 0.0159,
lambda_b = 0.001: the full numerics end 1.9e-4 below the best code at b = 0), so no derivation is given there.
"""
from __future__ import annotations

import dataclasses

import mpmath
import sympy as sp

from ncverify.theory import ce_codes
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.families.ce_deep_etf import check_ce, derive_ce
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Candidate, Exact, GramTarget, PhaseBoundary, Prediction, SingularValues
from ncverify.theory.solve import to_mpf

FAMILY = "ce-deep"


def ell_of(I: ExactInstance, dps: int) -> mpmath.mpf:
    """ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) at dps + 10 digits."""
    M, n = I.depth, I.counts[0]
    return to_mpf((sp.Integer(n) * I.lam_h * sp.Mul(*I.lam_w)) ** sp.Rational(1, M + 1), dps + 10)


def check(I: ExactInstance) -> None:
    check_ce(I)
    if I.width < I.K:
        raise TheoryInputError(f"{FAMILY} needs width d >= K (the reduction must reach every rank of the "
                               f"K x K logits), got d = {I.width}, K = {I.K}")
    if I.bias and I.lam_b <= 0:
        raise TheoryInputError(f"{FAMILY} with a bias needs lambda_b > 0, got {I.lam_b}")
    if I.bias and I.depth >= 2:
        raise TheoryInputError(f"{FAMILY} with a bias is derived at depth M = 1 only: at M >= 2 a class-dependent bias "
                               "can lower a non-transitive logit geometry below every code at b = 0 (e.g. K = 4, "
                               "n = 2, M = 2, lambdas 0.0159, lambda_b = 0.001), so the K x K reduction does not give "
                               "the global minimum")


def geometry_boundaries(I: ExactInstance, etf_pred: Prediction, dps: int) -> tuple[PhaseBoundary, ...]:
    """Where the global geometry changes along ell (and along lambda_H, others fixed): the recorded crossings of
    (K, M) in theory/golden/ce_phase.json (kind "global"), then the ETF branch's own thresholds (kind
    "ETF branch": where the ETF would give way to collapse if no other geometry competed)."""
    K, M, n = I.K, I.depth, I.counts[0]
    ell_inst = ell_of(I, dps)
    prod_w = sp.Mul(*I.lam_w)
    entry = ce_codes.load_phase_table().get((K, M))
    out = []
    for c in (entry or {}).get("crossings", []):
        how = "continuous: a branch ends" if c["continuous"] else "the two values cross"
        what = (f"the global minimizer switches from {c['left']} (below) to {c['right']} (above); {how}; "
                f"{'certified' if c['certified'] else 'NOT certified'} at 30 digits (theory/golden/ce_phase.json)")
        with mpmath.workdps(dps + 5):
            ell_c = mpmath.mpf(c["ell"])
            lam_c = ell_c ** (M + 1) / (n * to_mpf(prod_w, dps))
        out.append(PhaseBoundary(f"ell = (n lambda_H prod_j lambda_Wj)^(1/{M + 1})", Exact(+ell_c, None, what), "global", what,
                                 (), ell_inst))
        out.append(PhaseBoundary("lambda_H (other parameters fixed)",
                                 Exact(+lam_c, None, "lambda_H* = ell_c^(M+1) / (n prod_j lambda_Wj)"), "global",
                                 what, (), to_mpf(I.lam_h, dps)))
    etf_own = tuple(dataclasses.replace(b, kind="ETF branch", description="the ETF branch alone: " + b.description)
                    for b in etf_pred.phase_boundaries)
    return tuple(out) + etf_own


def _mat_power(S: list[list], q) -> mpmath.matrix:
    """S^q for a symmetric positive semidefinite mpmath matrix (eigen-decomposition; eigenvalues <= 0 -> 0)."""
    E, Q = mpmath.eigsy(mpmath.matrix(S))
    K = len(S)
    tiny = mpmath.mpf(10) ** (-(mpmath.mp.dps - 5)) * max(1, max(abs(E[i]) for i in range(K)))
    D = mpmath.diag([E[i] ** q if E[i] > tiny else 0 for i in range(K)])
    return Q * D * Q.T


def _rows(M: mpmath.matrix, K: int) -> list[list]:
    return [[M[i, j] for j in range(K)] for i in range(K)]


def _code_prediction(I: ExactInstance, win: ce_codes.CodeValue, etf_pred: Prediction, values: list, ell,
                     dps: int) -> Prediction:
    """The prediction of a non-ETF winning code (see the module docstring)."""
    K, M, n = I.K, I.depth, I.counts[0]
    model = ce_codes.CodeModel(win.code, M)
    with mpmath.workdps(dps + 10):
        Lv = to_mpf(I.lam_h * sp.Mul(*I.lam_w), dps + 10) ** (mpmath.mpf(1) / (M + 1))
        lam = [to_mpf(v, dps + 10) for v in I.lam_w]
        lam_h = to_mpf(I.lam_h, dps + 10)
        q = mpmath.mpf(1) / (M + 1)
        zbar_sv = list(win.singular_values) + [mpmath.mpf(0)] * (K - len(win.singular_values))
        z_sv = [mpmath.sqrt(n) * s for s in zbar_sv]
        layers = [[mpmath.sqrt(Lv / lam[j]) * s ** q for s in z_sv] for j in range(M)]
        w_sv = [mpmath.fprod(layers[j][i] for j in range(M)) for i in range(K)]
        h_sv = [mpmath.sqrt(Lv / lam_h) * s ** q for s in z_sv]
        Zb = model.matrix(win.theta)
        Zm = mpmath.matrix(Zb)
        c_w = Lv ** M / mpmath.fprod(lam)
        WWT = _mat_power(_rows(Zm * Zm.T * n, K), M * q) * c_w
        HTH = _mat_power(_rows(Zm.T * Zm, K), q) * (Lv / lam_h) * mpmath.mpf(n) ** (q - 1)
        norms = [mpmath.sqrt(HTH[k, k]) for k in range(K)]
        dead = [k for k in range(K) if all(Zb[j][k] == 0 for j in range(K))]
        value = win.value
    E = lambda v: Exact(+v)  # noqa: E731
    etf_val = etf_pred.objective.value
    notes = [f"global selection over the {len(ce_codes.enumerate_codes(K))} logit codes of theory.ce_codes and total "
             f"collapse ({len(values)} within {ce_codes.PRUNE_MARGIN:g} of the best refined at {dps} digits): the winner is "
             f"{win.name} (rank {win.rank}), f* = {mpmath.nstr(value, 20)}",
             f"the simplex ETF is NOT globally optimal here: its best value is {mpmath.nstr(etf_val, 20)} "
             f"(higher by {mpmath.nstr(etf_val - value, 6)})",
             f"ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) = {mpmath.nstr(ell, 20)}; F depends on K, M, ell only",
             "classes are listed in the code's block order: any permutation of the classes is equally optimal",
             "reduction: factorization identity + class averaging (lemmas ce-class-averaging, reduction:ce-deep); every code value is the value "
             "of an explicit point (an upper bound on f*); the least is selected; the reduced numeric search "
             "(numerics.ce_reduced) cross-checks that no other structure is lower"]
    gram = {"WWT": GramTarget("general", [E(WWT[k, k]) for k in range(K)], matrix=_rows(WWT, K), relabel=True,
                              description="W W^T = (L^M / prod_j lambda_Wj) (Z Z^T)^(M/(M+1)), Z Z^T = n Zbar Zbar^T"),
            "HbarTHbar": GramTarget("general", [E(HTH[k, k]) for k in range(K)], matrix=_rows(HTH, K), relabel=True,
                                    description="Hbar^T Hbar = (L / lambda_H) n^(1/(M+1) - 1) (Zbar^T Zbar)^(1/(M+1))"),
            "WHbar": GramTarget("general", matrix=Zb, relabel=True, description=f"W Hbar = Zbar, the class-mean logits ({win.name})")}
    cands = {"geometry": [Candidate(c.name + ("" if c.refined else " (float64 only)"), tuple(c.theta), c.value,
                                    c is win) for c in values[:12]]
             + [Candidate("total collapse W = H = 0", (), ce_codes.collapse_value(K), False)]}
    return Prediction(
        family=FAMILY, instance=I.raw, objective=Exact(+value, None, f"{win.name}: Newton in mpmath on the code's "
                                                                     f"amplitudes, |grad| = {mpmath.nstr(win.residual, 3)}"),
        scalars={"theta": [E(t) for t in win.theta], "ell": [E(ell)], "etf_value": [E(etf_val)]},
        singular_values=SingularValues([E(v) for v in w_sv], [[E(v) for v in row] for row in layers],
                                       [E(v) for v in z_sv], [E(v) for v in h_sv]),
        gram_targets=gram, class_mean_norms=[E(v) for v in norms],
        bias=None, collapsed_classes=dead,
        undetermined=["rotations between layers and of the features", "the assignment of classes to the code's "
                      "positions (any permutation)"],
        phase_boundaries=geometry_boundaries(I, etf_pred, dps), candidates=cands, notes=notes, dps=dps,
        derivation={"geometry": win.name, "rank": win.rank, "etf_optimal": False, "ell": ell,
                    "reduced_objective": "(1/K) sum_k CE(zbar_k, k) + ((M+1)/2) ell sum_i sigma_i(Zbar)^(2/(M+1))"})


def derive(I: ExactInstance, dps: int) -> Prediction:
    """The global minimizer over the codes (see the module docstring)."""
    check(I)
    K, M = I.K, I.depth
    etf_pred = derive_ce(I, dps)
    ell = ell_of(I, dps)
    recorded = ce_codes.recorded_geometry(K, M, ell, dps)  # the selection derived once per (K, M), if recorded
    win, values = recorded if recorded is not None else ce_codes.best_geometry(K, M, ell, dps)
    refined = [c for c in values if c.refined]
    competitors = [c for c in refined if not c.code.is_etf]
    etf_wins = win is None or win.code.is_etf or (
        win.value >= etf_pred.objective.value - mpmath.mpf(10) ** (-(dps - 8)))
    if etf_wins:
        best_other = competitors[0] if competitors else None
        notes = list(etf_pred.notes) + [
            "global selection over the logit codes of theory.ce_codes: the simplex ETF (or total collapse) wins"
            + (f"; the best other geometry is {best_other.name} at {mpmath.nstr(best_other.value, 20)}"
               if best_other is not None else "")]
        cands = dict(etf_pred.candidates)
        cands["geometry"] = tuple(Candidate(c.name, tuple(c.theta), c.value, False) for c in refined[:12])
        return etf_pred.with_(family=FAMILY, notes=notes, candidates=cands,
                              phase_boundaries=geometry_boundaries(I, etf_pred, dps),
                              derivation={**dict(etf_pred.derivation), "geometry": "simplex ETF", "etf_optimal": True,
                                          "reduction": "etf-margin"})
    return _code_prediction(I, win, etf_pred, refined, ell, dps)


class CeDeep:
    """The family ``ce-deep``."""

    name = FAMILY
    description = "deep linear CE, balanced: global minimizer over logit geometries (ETF, polygons, cross-polytopes, ...)"

    def check(self, I: ExactInstance) -> None:
        check(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        """lambda_H values (others fixed) where the global geometry changes: the recorded crossings in ell of
        theory/golden/ce_phase.json when (K, M) is there, else none (computing a phase diagram,
        ``theory.ce_codes.phase_entry``, takes minutes for K >= 9: searches are not aimed there)."""
        M, n = I.depth, I.counts[0]
        prod_w = float(sp.Mul(*I.lam_w))
        entry = ce_codes.load_phase_table().get((I.K, M))
        if entry is None:
            return {}
        return {"lam_h": sorted(float(c["ell"]) ** (M + 1) / (n * prod_w) for c in entry["crossings"])}
