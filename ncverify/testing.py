"""Helpers for researchers' own tests: verdict assertions and Hypothesis settings for numeric checks.

``assert_verifies(theorem, inst)`` runs ``ncverify.check`` and fails with the verdict, the reason, every
failing or unsettled compared quantity (error vs tolerance) and the reproduce command unless the verdict is
"verified"; ``assert_refutes`` and ``assert_verdict`` likewise. A numeric check takes from a fraction of a second
to several seconds, more than Hypothesis's default 200 ms deadline: decorate property tests with
``numeric_settings()`` or select one of the profiles registered here (also by the pytest plugin):

* ``ncverify-dev``: 15 examples, no deadline;
* ``ncverify-ci``: 10 examples, derandomized (the same instances on every run), no deadline;
* ``ncverify-thorough``: 200 examples, no deadline.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, settings

if TYPE_CHECKING:  # pragma: no cover
    from ncverify.numerics.problem import Instance
    from ncverify.proofs_checks.verify import CheckResult

__all__ = ["assert_verifies", "assert_refutes", "assert_verdict", "numeric_settings", "PROFILES", "register_profiles"]

_COMMON: dict[str, Any] = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES: dict[str, dict[str, Any]] = {
    "ncverify-dev": dict(max_examples=15, **_COMMON),
    "ncverify-ci": dict(max_examples=10, derandomize=True, print_blob=True, database=None, **_COMMON),
    "ncverify-thorough": dict(max_examples=200, **_COMMON),
}


def register_profiles() -> None:
    """Register the ``ncverify-*`` Hypothesis profiles (idempotent); load one with
    ``settings.load_profile(name)`` or ``pytest --hypothesis-profile name``."""
    for name, kw in PROFILES.items():
        settings.register_profile(name, **kw)


register_profiles()


def numeric_settings(max_examples: int = 5, **kw: Any) -> settings:
    """Hypothesis settings for tests that run numeric checks: no deadline, no too-slow health check,
    ``max_examples`` instances (other keywords as ``hypothesis.settings``)."""
    return settings(**{**_COMMON, "max_examples": max_examples, **kw})


def _explain(res: "CheckResult", wanted: str) -> str:
    lines = [f"{res.theorem}: expected {wanted}, got {res.verdict} -- {res.reason}"]
    for e in res.evidence:
        if e.status in ("fail", "unsettled"):  # Status is a str enum
            num = f": error {e.error:.3g} vs tolerance {e.tolerance:.3g}" if e.error is not None and e.tolerance else ""
            lines.append(f"  {str(e.status).upper()} {e.check} | {e.quantity}{num}")
    lines.append(f"  reproduce: {res.reproduce}")
    return "\n".join(lines)


def assert_verdict(verdict: str, theorem: Any, inst: "Instance | None" = None, *,
                   theorems_file: str | Path | None = None, **kw: Any) -> "CheckResult":
    """Check ``theorem`` on ``inst`` (or on the instance built from keywords, as ``ncverify.check``) and
    raise AssertionError with the evidence unless the verdict is ``verdict``; returns the ``CheckResult``."""
    from ncverify.api import check
    from ncverify.proofs_checks.errors import UsageError

    if verdict not in ("verified", "refuted", "inconclusive"):
        raise UsageError(f"verdict must be verified, refuted or inconclusive, got {verdict!r}")
    res = check(theorem, inst, theorems_file=theorems_file, **kw)
    if res.verdict != verdict:
        raise AssertionError(_explain(res, verdict))
    return res


def assert_verifies(theorem: Any, inst: "Instance | None" = None, **kw: Any) -> "CheckResult":
    """``assert_verdict("verified", ...)``: the claim matched an independent numeric minimizer within derived
    tolerances on this instance."""
    return assert_verdict("verified", theorem, inst, **kw)


def assert_refutes(theorem: Any, inst: "Instance | None" = None, **kw: Any) -> "CheckResult":
    """``assert_verdict("refuted", ...)``: the derivation, the constructed point or the numerics refute the claim
    on this instance (use it to keep a seeded wrong claim that your tests must see fail)."""
    return assert_verdict("refuted", theorem, inst, **kw)
