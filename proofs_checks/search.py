"""Theorem-level verdicts: a Hypothesis-driven counterexample search over a theorem's domain.

* The cheap check (claim vs exact derivation, and the explicitly constructed claimed point) runs on every instance
  Hypothesis draws; Hypothesis shrinks an instance it refutes to a small one (fewest classes, smallest depth and
  width: the strategies are ordered so that smaller is simpler).
* The full check (adds multi-start float64 numerics, ``verify.check_many``: one batched solve per chunk of
  ``CHUNK`` instances) runs on the theorem's fixed examples and on the first ``numeric_instances`` drawn
  instances (at the default budget: every drawn instance), chunk by chunk until a chunk refutes the theorem
  (later draws cannot change a refuted verdict, and the first refuted draw, the one shrunk, is the same); a
  theorem the numerics already refuted on one of its fixed examples gets no numeric checks of drawn instances
  (the drawn instances still get the cheap check, which can find and shrink a refutation of the exact side). The exact side of a drawn instance is computed once
  (``verify.ExactCache``), with values only (``theory.derive(exact=False)``: the families that offer it solve
  their once-derived equations per instance at high precision without forming exact expressions).
* A refutation that only the numerics see is shrunk too (``_shrink_numeric``): the search is replayed with the
  same seed, so Hypothesis draws the same instances and fails on the first numerically refuted one, then shrinks it
  with full checks (at most ``Budget.shrink_checks`` of them).

A theorem is refuted when any instance refutes it (a mutant refuted on its own examples is not searched further).
It is verified when no instance refutes it, at least one full check verified, and at most ``MAX_INCONCLUSIVE`` of
its full checks are inconclusive; the verdict then reads "verified on N numeric instances (their ranges)", names the
inconclusive instances it does not count, and claims no more. Otherwise it is inconclusive.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from hypothesis import HealthCheck, Phase, given, seed as hseed, settings

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.errors import UsageError
from ncverify.proofs_checks.statement import Theorem


#: the largest fraction of a theorem's full checks that may be inconclusive in a "verified" (they are named, not counted)
MAX_INCONCLUSIVE = 0.25
#: drawn instances per batched numeric solve (progress is reported per chunk)
CHUNK = 25


@dataclass(frozen=True)
class Budget:
    """name; search_examples: instances drawn for the cheap check; numeric_instances: of which this many (the first
    drawn) also get the full numeric check; starts: numeric starts per instance; shrink_checks: full checks allowed
    while shrinking a refutation only the numerics see; shrink_cheap: cheap checks allowed while shrinking a
    refutation (after that every new candidate passes and Hypothesis keeps the smallest refuted one: a count, so
    the result does not depend on the machine's speed)."""

    name: str
    search_examples: int
    numeric_instances: int
    starts: int
    shrink_checks: int = 20
    shrink_cheap: int = 60

    @staticmethod
    def of(name: str) -> "Budget":
        table = {"quick": Budget("quick", 8, 4, 2, 6, 30), "default": Budget("default", 50, 50, 3, 20, 60),
                 "thorough": Budget("thorough", 200, 200, 6, 40, 300)}
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
    searched: list[Instance] = field(default_factory=list)  # the drawn instances (generate phase, before a refutation)

    @property
    def instances_tried(self) -> int:
        return self.cheap_tried + len(self.checks)

    def coverage(self) -> dict:
        """What the verdict rests on: ``coverage`` of the fully (numerically) checked instances and of the
        searched ones, next to the theorem's stated assumptions."""
        return {"numeric": coverage([c.instance for c in self.checks]),
                "verified": coverage([c.instance for c in self.checks if c.verdict == "verified"]),
                "searched": coverage(self.searched), "assumptions": list(self.theorem.assumptions)}

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
            "coverage": self.coverage(),
            "worst": None if w is None else w.to_json(),
            "counterexample": None if ce is None else {"instance": ce.instance.as_dict(), "reproduce": ce.reproduce,
                                                       "reason": ce.reason, "verdict": ce.verdict},
            "region": t.expected.region, "mutant_of": t.mutant_of, "mutation": t.mutation,
            "checks": [c.to_json() for c in self.checks], "seconds": round(self.seconds, 2),
        }


class _Refuted(AssertionError):
    pass


def _settings(budget: Budget):
    return settings(max_examples=budget.search_examples, deadline=None, database=None, derandomize=False,
                    phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False)


def search_theorem(theorem: Theorem, budget: Budget, *, seed: int = 0, solver: str = "lbfgs",
                   progress: Callable[[str], None] | None = None) -> TheoremResult:
    """The theorem-level verdict of ``theorem`` under ``budget`` (deterministic for a given seed)."""
    t0 = time.perf_counter()
    theorem.prepare()
    say = progress or (lambda msg: None)
    starts = max(budget.starts, theorem.min_starts)
    cache = verify.ExactCache(values_only=True)  # the search compares values; ``check`` shows the exact forms
    res = TheoremResult(theorem, "inconclusive", "")
    full = lambda insts, **kw: verify.check_many(theorem, insts, solver=solver, starts=starts, seed=seed,  # noqa: E731
                                                 cache=cache, **kw)
    # 1. full checks on the fixed examples (one batched solve)
    if theorem.examples:
        say(f"{theorem.id}: {len(theorem.examples)} examples")
        res.checks.extend(full(list(theorem.examples), record_history=True))
    if theorem.is_mutant and any(c.verdict == "refuted" for c in res.checks):
        _decide(res)  # a seeded wrong claim refuted on its own examples: settled, no search needed
        res.seconds = time.perf_counter() - t0
        return res
    # 2. cheap search with shrinking
    drawn = res.searched  # instances of the generate phase (before the first refutation)
    failing: list[Instance] = []
    errors: list[BaseException] = []  # anything but a refutation (a user's claim that raises, a bug)
    shrink_left = [budget.shrink_cheap]

    @_settings(budget)
    @hseed(seed)
    @given(theorem.strategy())
    def probe(inst: Instance) -> None:
        if _probe_refutes(inst):  # one raise site: Hypothesis tells failures apart by where they are raised
            raise _Refuted(inst.cli_flags())

    def _probe_refutes(inst: Instance) -> bool:
        if failing:  # shrinking: a bounded number of new candidates (derivations can cost seconds at K = 10)
            if inst in failing:
                return True
            if shrink_left[0] <= 0:
                return False
            shrink_left[0] -= 1
        res.cheap_tried += 1
        if not failing and inst not in drawn:
            drawn.append(inst)
        try:
            fails = verify.cheap_check(theorem, inst, cache=cache)
        except BaseException as exc:
            errors.append(exc)
            raise
        if fails:
            failing.append(inst)
        return bool(fails)

    say(f"{theorem.id}: searching ({budget.search_examples} instances)")
    try:
        probe()
    except _Refuted:
        pass
    if errors:  # never let Hypothesis report a refutation instead of an error raised on another instance
        raise errors[-1]
    on_examples = any(c.verdict == "refuted" for c in res.checks)
    if failing:  # refuted by the exact side: a few full checks, and the shrunk counterexample confirmed
        numeric = spread(drawn, min(2, budget.numeric_instances))
    elif on_examples:  # refuted by the numerics on a fixed example: settled, as no later check can change it
        numeric = []
        say(f"{theorem.id}: refuted on a fixed example; the drawn instances get the cheap check only")
    else:
        numeric = drawn[:budget.numeric_instances]
    for i in range(0, len(numeric), CHUNK):
        part = numeric[i:i + CHUNK]
        say(f"{theorem.id}: numeric checks {i + 1}-{i + len(part)} of {len(numeric)} (one batched solve)")
        res.checks.extend(full(part))
        if any(c.verdict == "refuted" for c in res.checks[-len(part):]):
            break  # refuted: more numeric checks cannot change the verdict (the first refuted draw is shrunk below)
    if failing:
        smallest = failing[-1]  # Hypothesis replays the shrunk example last
        say(f"{theorem.id}: confirming counterexample {smallest.cli_flags()}")
        res.checks.extend(full([smallest]))
    elif any(c.verdict == "refuted" for c in res.checks if c.instance in set(drawn)):
        say(f"{theorem.id}: shrinking a numeric refutation")
        res.checks.extend(_shrink_numeric(theorem, budget, res, seed=seed, full=full, cache=cache))
    _decide(res)
    res.seconds = time.perf_counter() - t0
    return res


def _shrink_numeric(theorem: Theorem, budget: Budget, res: TheoremResult, *, seed: int,
                    full: Callable[..., list[verify.CheckResult]], cache: verify.ExactCache) -> list[verify.CheckResult]:
    """Replay the search with the same seed: Hypothesis draws the same instances, fails on the first one the full
    check refuted, then shrinks it; each shrink candidate gets a full check (at most ``budget.shrink_checks``; after
    that candidates pass, so Hypothesis keeps the smallest refuted one). Returns the new refuting full checks."""
    refuted = {c.instance for c in res.checks if c.verdict == "refuted"}
    known = {c.instance for c in res.checks}
    new: list[verify.CheckResult] = []
    left = [budget.shrink_checks]

    @_settings(budget)
    @hseed(seed)
    @given(theorem.strategy())
    def replay(inst: Instance) -> None:
        if _replay_refutes(inst):  # one raise site (see ``probe``)
            raise _Refuted(inst.cli_flags())

    def _replay_refutes(inst: Instance) -> bool:
        if inst in refuted:
            return True
        if left[0] <= 0:  # budget spent: every new candidate passes, so Hypothesis stops shrinking at once
            return False
        if verify.cheap_check(theorem, inst, cache=cache):
            return True
        if inst in known:
            return False
        left[0] -= 1
        known.add(inst)
        (c,) = full([inst])
        if c.verdict == "refuted":
            new.append(c)
            refuted.add(inst)
            return True
        return False

    try:
        replay()
    except _Refuted:
        pass
    return new


def spread(items: list, k: int) -> list:
    """k items evenly spaced over ``items`` (Hypothesis draws the simplest instances first, so the
    full numeric checks are spread over the whole search instead of taking the first draws)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    step = (len(items) - 1) / max(k - 1, 1)
    return [items[round(i * step)] for i in range(k)] if k > 1 else [items[len(items) // 2]]


def coverage(insts: Sequence[Instance]) -> dict | None:
    """What a set of instances covers (None when empty): their number and the [min, max] of the classes K, the
    depth M, the width d, the samples per class n_k, the imbalance ratio max_k n_k / min_k n_k and every lambda
    (lambda_{W_j} and lambda_H), the losses and whether a bias occurs."""
    if not insts:
        return None
    span = lambda vals: [min(vals), max(vals)]  # noqa: E731
    return {"instances": len(insts), "K": span([i.K for i in insts]), "depth": span([i.depth for i in insts]),
            "width": span([i.width for i in insts]), "per_class": span([n for i in insts for n in i.counts]),
            "imbalance": span([max(i.counts) / min(i.counts) for i in insts]),
            "lambda": span([v for i in insts for v in (*i.lam_w, i.lam_h)]),
            "loss": sorted({i.loss for i in insts}), "bias": sorted({bool(i.bias) for i in insts})}


def coverage_text(cov: dict | None) -> str:
    """One line of ``coverage``: "K 2..3, depth 1..2, width 2..5, n_k 1..4, imbalance <= 3, lambda 1e-3..0.1"."""
    if cov is None:
        return "no instances"
    r = lambda k, f="{}": f.format(cov[k][0]) + ("" if cov[k][0] == cov[k][1] else ".." + f.format(cov[k][1]))  # noqa: E731
    imb = "balanced" if cov["imbalance"][1] == 1 else f"imbalance <= {cov['imbalance'][1]:.3g}"
    return (f"K {r('K')}, depth {r('depth')}, width {r('width')}, n_k {r('per_class')}, {imb}, "
            f"lambda {r('lambda', '{:.3g}')}")


def _decide(res: TheoremResult) -> None:
    refuted = [c for c in res.checks if c.verdict == "refuted"]
    ok = [c for c in res.checks if c.verdict == "verified"]
    inc = [c for c in res.checks if c.verdict == "inconclusive"]
    if refuted:
        # the smallest refuting instance: fewest classes, smallest depth, width, samples
        res.counterexample = min(refuted, key=lambda c: (c.instance.K, c.instance.depth, c.instance.width, c.instance.N))
        res.verdict, res.reason = "refuted", res.counterexample.reason
    elif ok and len(inc) <= MAX_INCONCLUSIVE * len(res.checks):
        res.verdict = "verified"
        res.reason = (f"verified on {len(ok)} numeric instances ({coverage_text(coverage([c.instance for c in ok]))}); "
                      f"{res.cheap_tried} searched instances agreed with the derivation")
        if inc:
            res.reason += (f"; {len(inc)} of {len(res.checks)} numeric instances inconclusive and not counted (first: "
                           f"{inc[0].instance.cli_flags()}: {inc[0].reason})")
    else:
        res.verdict = "inconclusive"
        if inc:
            res.reason = (f"{len(inc)} of {len(res.checks)} numeric instances inconclusive (more than "
                          f"{MAX_INCONCLUSIVE:.0%}); first: {inc[0].instance.cli_flags()}: {inc[0].reason}")
        else:
            res.reason = "no instance could be checked"
