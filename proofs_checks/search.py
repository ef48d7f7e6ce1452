"""Theorem-level verdicts: a Hypothesis-driven counterexample search over a theorem's domain.

Two tiers, so the search can afford shrinking:
* the cheap check (claim vs exact derivation, and the explicitly constructed claimed point) runs on
  every instance Hypothesis draws, and Hypothesis shrinks any instance it refutes to a small one
  (fewest classes, smallest depth and width: the strategies are ordered so that smaller is simpler);
* the full check (adds multi-start float64 numerics, ``verify.check``) runs on the theorem's fixed
  examples, on the first ``numeric_instances`` drawn instances, and on the shrunk counterexample.
A theorem is refuted when any instance refutes it; verified when every full check verified and no
instance refuted; inconclusive otherwise.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from hypothesis import HealthCheck, Phase, given, seed as hseed, settings

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.errors import UsageError
from ncverify.proofs_checks.statement import Theorem


@dataclass(frozen=True)
class Budget:
    name: str
    search_examples: int  # instances drawn for the cheap check
    numeric_instances: int  # of which this many also get the full numeric check
    starts: int

    @staticmethod
    def of(name: str) -> "Budget":
        table = {"quick": Budget("quick", 8, 1, 2), "default": Budget("default", 25, 2, 3),
                 "thorough": Budget("thorough", 150, 8, 6)}
        if name not in table:
            raise UsageError(f"budget must be one of {', '.join(table)}, got {name!r}")
        return table[name]


@dataclass
class TheoremResult:
    theorem: Theorem
    verdict: str
    reason: str
    checks: list[verify.CheckResult] = field(default_factory=list)
    cheap_tried: int = 0
    counterexample: verify.CheckResult | None = None
    seconds: float = 0.0

    @property
    def instances_tried(self) -> int:
        return self.cheap_tried + len(self.checks)

    def worst(self) -> verify.Evidence | None:
        cands = [c.worst() for c in self.checks if c.worst() is not None]
        return max(cands, key=lambda e: e.error / e.tolerance, default=None)  # type: ignore[operator]

    def to_json(self) -> dict:
        t = self.theorem
        w = self.worst()
        ce = self.counterexample
        return {
            "id": t.id, "title": t.title, "source": t.source, "provenance": t.provenance, "verdict": self.verdict,
            "expected_verdict": t.expected.verdict, "matches_record": self.verdict == t.expected.verdict,
            "reason": self.reason, "instances_tried": self.instances_tried, "numeric_checks": len(self.checks),
            "worst": None if w is None else w.to_json(),
            "counterexample": None if ce is None else {"instance": ce.instance.as_dict(), "reproduce": ce.reproduce,
                                                       "reason": ce.reason, "verdict": ce.verdict},
            "region": t.expected.region, "mutant_of": t.mutant_of, "mutation": t.mutation,
            "checks": [c.to_json() for c in self.checks], "seconds": round(self.seconds, 2),
        }


class _Refuted(AssertionError):
    pass


def search_theorem(theorem: Theorem, budget: Budget, *, seed: int = 0, solver: str = "lbfgs",
                   progress: Callable[[str], None] | None = None) -> TheoremResult:
    """The theorem-level verdict of ``theorem`` under ``budget`` (deterministic for a given seed)."""
    t0 = time.perf_counter()
    theorem.prepare()
    say = progress or (lambda msg: None)
    starts = max(budget.starts, theorem.min_starts)
    res = TheoremResult(theorem, "inconclusive", "")
    # 1. full checks on the fixed examples (one batched solve)
    if theorem.examples:
        say(f"{theorem.id}: {len(theorem.examples)} examples")
        res.checks.extend(verify.check_many(theorem, theorem.examples, solver=solver, starts=starts, seed=seed,
                                            record_history=True))
    # 2. cheap search with shrinking; the first drawn instances also get the full check
    drawn: list[Instance] = []  # instances of the generate phase (before the first refutation)
    failing: list[Instance] = []
    errors: list[BaseException] = []  # anything but a refutation (a user's claim that raises, a bug)

    @settings(max_examples=budget.search_examples, deadline=None, database=None, derandomize=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @hseed(seed)
    @given(theorem.strategy())
    def probe(inst: Instance) -> None:
        res.cheap_tried += 1
        if not failing and inst not in drawn:
            drawn.append(inst)
        try:
            fails = verify.cheap_check(theorem, inst)
        except BaseException as exc:
            errors.append(exc)
            raise
        if fails:
            failing.append(inst)
            raise _Refuted(inst.cli_flags())

    say(f"{theorem.id}: searching ({budget.search_examples} instances)")
    try:
        probe()
    except _Refuted:
        pass
    if errors:  # never let Hypothesis report a refutation instead of an error raised on another instance
        raise errors[-1]
    numeric = spread(drawn, budget.numeric_instances)
    if numeric:
        say(f"{theorem.id}: numeric checks of {len(numeric)} drawn instances (one batched solve)")
        res.checks.extend(verify.check_many(theorem, numeric, solver=solver, starts=starts, seed=seed))
    if failing:
        smallest = failing[-1]  # Hypothesis replays the shrunk example last
        say(f"{theorem.id}: confirming counterexample {smallest.cli_flags()}")
        ce = verify.check(theorem, smallest, solver=solver, starts=starts, seed=seed)
        res.checks.append(ce)
    _decide(res)
    res.seconds = time.perf_counter() - t0
    return res


def spread(items: list, k: int) -> list:
    """k items evenly spaced over ``items`` (Hypothesis draws the simplest instances first, so the
    full numeric checks are spread over the whole search instead of taking the first draws)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    step = (len(items) - 1) / max(k - 1, 1)
    return [items[round(i * step)] for i in range(k)] if k > 1 else [items[len(items) // 2]]


def _decide(res: TheoremResult) -> None:
    refuted = [c for c in res.checks if c.verdict == "refuted"]
    if refuted:
        # the smallest refuting instance: fewest classes, smallest depth, width, samples
        res.counterexample = min(refuted, key=lambda c: (c.instance.K, c.instance.depth, c.instance.width, c.instance.N))
        res.verdict, res.reason = "refuted", res.counterexample.reason
    elif res.checks and all(c.verdict == "verified" for c in res.checks):
        res.verdict = "verified"
        res.reason = f"{len(res.checks)} numeric checks verified; {res.cheap_tried} searched instances agreed with the derivation"
    else:
        inc = [c for c in res.checks if c.verdict == "inconclusive"]
        res.verdict = "inconclusive"
        res.reason = inc[0].reason if inc else "no instance could be checked"
