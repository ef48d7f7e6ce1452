"""Typed evidence of a check: what was compared (``Check``), how it came out (``Status``), and the verdict.

Enums are ``str`` subclasses, so they print and serialize as their words."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum

from ncverify.numerics.problem import Instance


class _Word(str, Enum):
    """A str enum that prints, formats and hashes as its word (so it can key dicts of plain strings)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:
        return hash(self.value)


class Check(_Word):
    """The stage a piece of evidence comes from."""

    DERIVATION = "claim vs derivation"  # the claim against the exact derivation (40 digits)
    POINT = "claimed point"  # the point the claim describes, built explicitly and evaluated in float64
    NUMERICS = "numerics"  # multi-start float64 minimizers of the full objective
    MATCH = "numeric match"  # did the best numeric point reach the claimed minimum (what "verified" needs)
    ORACLE = "convex oracle"  # a convex program's certified optimum (duality gap), a third source of truth


class Status(_Word):
    PASS = "pass"
    FAIL = "fail"  # refutes the claim
    UNSETTLED = "unsettled"  # the numerics cannot settle it
    INFO = "info"  # context, no bearing on the verdict


class Verdict(_Word):
    VERIFIED = "verified"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"


VERDICTS = tuple(v.value for v in Verdict)


@dataclass
class Evidence:
    """One compared quantity: its error against a derived tolerance (with the tolerance's origin)."""

    check: Check
    quantity: str
    status: Status
    error: float | None = None
    tolerance: float | None = None
    origin: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        self.check, self.status = Check(self.check), Status(self.status)

    def to_json(self) -> dict:
        d = asdict(self)
        d["check"], d["status"] = self.check.value, self.status.value
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


@dataclass
class CheckResult:
    theorem: str
    instance: Instance
    verdict: Verdict
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    claim: dict | None = None
    derivation: dict | None = None
    numerics: dict | None = None
    seconds: float = 0.0
    reproduce: str = ""
    history: list[float] | None = None

    def to_json(self) -> dict:
        return {"theorem": self.theorem, "instance": self.instance.as_dict(), "verdict": Verdict(self.verdict).value,
                "reason": self.reason, "evidence": [e.to_json() for e in self.evidence], "claim": self.claim,
                "derivation": self.derivation, "numerics": self.numerics, "seconds": round(self.seconds, 3),
                "reproduce": self.reproduce}

    def worst(self) -> Evidence | None:
        """The compared quantity with the largest error / tolerance ratio."""
        scored = [e for e in self.evidence if e.error is not None and e.tolerance not in (None, 0)
                  and math.isfinite(e.error) and math.isfinite(e.tolerance or math.nan)]
        return max(scored, key=lambda e: e.error / e.tolerance, default=None)  # type: ignore[operator]
