"""The convex-oracle stage: a third source of truth beside the exact derivation and the nonconvex numerics.

For an instance whose objective is convex after the factorization elimination and class averaging (depth 1, plain
MSE or CE, d >= K), ``numerics.convex`` solves the class-level program and certifies its minimum with a duality gap:
the minimum lies in [lower, upper]. The stage compares the claim's and the derivation's minimal objective with that
interval, reports the oracle's equal / distinct rows of W next to the claim's, and hands the certified value on as
the reference minimum when neither the claim nor the derivation states one.

* A claimed f* outside the interval (by more than its rounding) refutes the claim (FAIL).
* A derived f* outside it is a disagreement between two sources of truth: UNSETTLED (never "verified").
* Rows of W claimed equal or distinct: the program solved again with those rows tied (``row_evidence``) certifies
  "distinct" when tying them raises the certified minimum, and "equal" to the certificates' resolution otherwise.
* CVXPY missing: one INFO line with the install command; the other stages still run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ncverify.numerics import convex
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.verify.evidence import Check, Evidence, Status
from ncverify.theory.prediction import Prediction


@dataclass(frozen=True)
class Reference:
    """The minimum the numerics are compared with: value, its certified uncertainty (0 for a claim or a derivation
    at 40 digits) and where it comes from."""

    value: float
    radius: float = 0.0
    source: str = "claim"


def program_for(inst: Instance) -> str | None:
    """Which convex program certifies ``inst`` ("ce-nuclear", "mse-nuclear"), or None when the instance is not
    convex after the reduction (depth >= 2, an activation, a registered loss, d < K, a regularized MSE bias or an
    unregularized CE bias)."""
    if inst.depth != 1 or inst.activation is not None or inst.width < inst.K:
        return None
    if inst.loss == "ce" and (not inst.bias or inst.lam_b > 0):
        return "ce-nuclear"
    if inst.loss == "mse" and (not inst.bias or inst.lam_b == 0):
        return "mse-nuclear"
    return None


def solve(inst: Instance) -> convex.Certificate:
    """The certified class-level optimum of ``inst`` (``program_for`` must name a program)."""
    mu = math.sqrt(inst.lam_w[0] * inst.lam_h)
    prog = program_for(inst)
    if prog == "ce-nuclear":
        return convex.ce_nuclear(inst.counts, mu, bias=inst.bias, lam_b=inst.lam_b)
    if prog == "mse-nuclear":
        return convex.mse_nuclear(inst.counts, mu, bias=inst.bias, targets=inst.target_prototypes())
    raise ValueError(f"no convex program for {inst.cli_flags()}")


def interval_evidence(what: str, value: float | None, cert: convex.Certificate, fail: Status) -> list[Evidence]:
    """``value`` (a claimed or derived f*) against the certified interval; ``fail``: the status when outside."""
    if value is None:
        return []
    lo, hi = cert.lower, cert.upper
    err = max(lo - value, value - hi, 0.0)
    return [Evidence(Check.ORACLE, f"{what} f* inside the certified interval", Status.PASS if err == 0 else fail,
                     err, cert.radius, f"duality gap {cert.gap:.2g} + float64 rounding {cert.rounding:.2g}",
                     f"{value:.15g} vs [{lo:.15g}, {hi:.15g}]")]


def tying_evidence(ks: tuple[int, ...], eq: bool, free: convex.Certificate, tied: convex.Certificate) -> Evidence:
    """A claim that the rows ``ks`` of W are equal (``eq``) or pairwise distinct, against the program solved free and
    with those rows tied (a convex constraint). If the tied program's certified lower bound exceeds the free
    program's upper bound, no minimizer has these rows equal (certified: "distinct"); if the two intervals overlap,
    equal rows attain the minimum to within the certificates' resolution ("equal", at that resolution). A claim of
    equal rows where they are certified distinct is refuted; a claim of distinct rows where equal rows attain the
    minimum is unsettled here (other stages decide it)."""
    excess = convex.tying_cost(free, tied)
    distinct = excess > 0
    status = (Status.FAIL if eq else Status.PASS) if distinct else (Status.PASS if eq else Status.UNSETTLED)
    return Evidence(Check.ORACLE, f"rows of W for classes {list(ks)} {'equal' if eq else 'pairwise distinct'}", status,
                    detail=(f"minimum with these rows tied in [{tied.lower:.15g}, {tied.upper:.15g}], free in "
                            f"[{free.lower:.15g}, {free.upper:.15g}]: " + (
                                f"tying them costs at least {excess:.3g} (certified distinct)" if distinct else
                                f"tied rows attain the minimum to within {tied.upper - free.lower:.2g}")))


def row_evidence(claim: Prediction, inst: Instance, cert: convex.Certificate) -> list[Evidence]:
    """The claim's equal / distinct rows of W (``tying_evidence``) on a CE instance."""
    if program_for(inst) != "ce-nuclear":
        return []
    return [tying_evidence(ks, eq, cert, convex.ce_nuclear(inst.counts, cert.details["mu"], bias=inst.bias,
                                                           lam_b=inst.lam_b, tied=[ks]))
            for ks, eq in claim.rows_equal or () if len(ks) > 1]


def oracle_stage(claim: Prediction, deriv: Prediction | None, inst: Instance
                 ) -> tuple[list[Evidence], Reference | None, dict | None]:
    """The oracle's evidence, its certified reference value, and its summary (None when it does not apply)."""
    if program_for(inst) is None:
        return [], None, None
    try:
        cert = solve(inst)
    except convex.OracleUnavailable as exc:
        return [Evidence(Check.ORACLE, "convex oracle", Status.INFO, detail=str(exc))], None, None
    except convex.OracleFailed as exc:
        return [Evidence(Check.ORACLE, "convex oracle", Status.UNSETTLED, detail=str(exc))], None, None
    ev = [Evidence(Check.ORACLE, "certified minimum of the class-level convex program", Status.INFO,
                   detail=f"{cert.program}: minimum in [{cert.lower:.15g}, {cert.upper:.15g}] (duality gap "
                          f"{cert.gap:.2g})")]
    ev += interval_evidence("claimed", _value(claim), cert, Status.FAIL)
    if deriv is not None:
        ev += interval_evidence("derived", _value(deriv), cert, Status.UNSETTLED)
    ev += row_evidence(claim, inst, cert)
    return ev, Reference(cert.value, cert.radius, "convex oracle"), cert.summary()


def _value(p: Prediction) -> float | None:
    return None if p.objective is None else float(p.objective.value)


__all__ = ["Reference", "program_for", "solve", "oracle_stage", "interval_evidence", "tying_evidence", "row_evidence"]
