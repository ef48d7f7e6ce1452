"""The verdict of one check, as a pure function of its evidence (../shared/DESIGN.md, "verdict logic that cannot lie").

| evidence                                                            | verdict       |
|---------------------------------------------------------------------|---------------|
| any FAIL (claim vs derivation, claimed point, convex oracle, numerics) | refuted     |
| else any UNSETTLED, or no MATCH that PASSed                          | inconclusive  |
| else (a numeric minimizer reached the claimed minimum, all matched)  | verified      |

The reason names the first three failing (or unsettled) quantities, numerics first (an actual point is the
strongest evidence), then the convex oracle and the claimed point, then the derivation.
"""
from __future__ import annotations

from typing import Iterable

from ncverify.proofs_checks.verify.evidence import Check, Evidence, Status, Verdict

_ORDER = {Check.NUMERICS: 0, Check.MATCH: 0, Check.ORACLE: 1, Check.POINT: 1, Check.DERIVATION: 2}


def _numbers(e: Evidence, word: str) -> str:
    if e.error is None or e.tolerance is None:
        return ""
    return f" ({word} {e.error:.3g} > tol {e.tolerance:.3g})"


def decide(evidence: Iterable[Evidence]) -> tuple[Verdict, str]:
    """(verdict, reason) from the evidence of one check (see the module table)."""
    ev = list(evidence)
    fails = sorted((e for e in ev if e.status is Status.FAIL), key=lambda e: _ORDER.get(e.check, 3))
    if fails:
        return Verdict.REFUTED, "; ".join(f"{e.check.value}: {e.quantity}" + (f" ({e.detail})" if e.detail else "")
                                          + _numbers(e, "error") for e in fails[:3])
    unsettled = [e for e in ev if e.status is Status.UNSETTLED]
    matched = any(e.check is Check.MATCH and e.status is Status.PASS for e in ev)
    if unsettled or not matched:
        reason = "; ".join(e.quantity + (f": {e.detail}" if e.detail else "") + _numbers(e, "gap") for e in unsettled[:3])
        return Verdict.INCONCLUSIVE, reason or "no numeric comparison was possible"
    return Verdict.VERIFIED, "numeric minimizer matched the claim within derived tolerances"
