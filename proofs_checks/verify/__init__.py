"""Checking one theorem on one instance: claim vs exact derivation vs constructed point vs numerics.

``check`` (``check_many``: many instances, one batched solve) runs the three stages of ``verify.stages`` (cheapest first) and decides the verdict with the pure
table of ``verify.decide``; ``cheap_check`` (used on every instance the search draws) runs the first two
stages only. Evidence and verdicts are typed (``verify.evidence``).
"""
from __future__ import annotations

import time
from typing import Any, Sequence

from ncverify.numerics.problem import Instance
from ncverify.theory.prediction import Prediction
from ncverify.proofs_checks.verify.convex_model import model_exact, model_numerics
from ncverify.proofs_checks.verify.decide import decide
from ncverify.proofs_checks.verify.oracle import Reference, oracle_stage
from ncverify.proofs_checks.verify.evidence import VERDICTS, Check, CheckResult, Evidence, Status, Verdict
from ncverify.proofs_checks.verify.stages import (compare_with_derivation, construct_claimed_point, derivation_stage,
                                         gram_from_target, numerics_stage, point_evidence, point_stage,
                                         prediction_json)


def reproduce_command(theorem, inst: Instance) -> str:
    """The command line that reproduces a check of ``theorem`` on ``inst``."""
    return f"ncverify check {theorem.id} {inst.cli_flags()}"


def with_check_options(command: str, *, theorems_file: str | None = None, solver: str = "lbfgs",
                       starts: int | None = None, seed: int = 0) -> str:
    """``command`` (a ``reproduce_command``) with the ``--theorems`` file (quoted) and the numeric settings that
    differ from ``check``'s defaults, so that running it gives the same verdict and numbers (to rounding: a check
    run alone can differ in the last bits from the same instance solved in a batch or on another thread count)."""
    import shlex

    if theorems_file:
        command = command.replace("ncverify check ", f"ncverify check --theorems {shlex.quote(str(theorems_file))} ", 1)
    return command + "".join(f" {flag} {value}" for flag, value, default in
                             (("--solver", solver, "lbfgs"), ("--starts", starts, None), ("--seed", seed, 0))
                             if value != default)


def evaluate_claim(theorem, inst: Instance) -> Prediction:
    """``theorem.claim(inst)``, required to be a ``Prediction``. An exception the claim raises propagates: it never
    becomes a verdict (a user's theorem, loaded by ``catalogue.load_theorems``, raises it as a one-line
    UserFileError naming its file and line; in the shipped catalogue it is a bug)."""
    pred = theorem.claim(inst)
    if not isinstance(pred, Prediction):
        raise TypeError(f"the claim of {theorem.id} returned {type(pred).__name__}, not a Prediction")
    return pred


def check(theorem, inst: Instance, *, solver: str = "lbfgs", starts: int = 3, seed: int = 0, device: str = "auto",
          max_iter: int | None = None, dps: int = 40, record_history: bool = False) -> CheckResult:
    """The verdict of ``theorem`` (a catalogue entry) on ``inst``: the three stages, then ``decide``."""
    return check_many(theorem, [inst], solver=solver, starts=starts, seed=seed, device=device, max_iter=max_iter,
                      dps=dps, record_history=record_history)[0]


class ExactCache:
    """The exact side of checks (claim, derivation, constructed point) memoized per (theorem id, instance, dps), so
    that an instance the cheap search checked costs nothing more when its full numeric check runs. Scoped to one
    search (``search.search_theorem``); entries are never mutated. ``values_only``: derivations with values only
    (``theory.derive(exact=False)``: the same numbers at ``dps`` digits without building exact expressions)."""

    def __init__(self, values_only: bool = False) -> None:
        self._d: dict = {}
        self.values_only = values_only

    def exact(self, theorem, inst: Instance, dps: int) -> tuple[Prediction, Any, Reference | None, list[Evidence], dict | None]:
        """``_exact`` of ``theorem`` on ``inst``: claim, derivation, reference minimum, evidence, oracle summary."""
        key = (theorem.id, inst, dps)
        if key not in self._d:
            self._d[key] = _exact(theorem, inst, dps, exact=not self.values_only)
        return self._d[key]


def _exact(theorem, inst: Instance, dps: int, exact: bool = True) -> tuple[Prediction, Any, Reference | None, list[Evidence],
                                                                         dict | None]:
    """(claim, derivation, reference minimum, evidence of the exact side, convex oracle summary or None)."""
    claim = evaluate_claim(theorem, inst)
    if getattr(theorem, "model", "ufm") != "ufm":
        return model_exact(theorem, claim, inst, dps, exact=exact)
    deriv, ev = derivation_stage(theorem.family, claim, inst, dps, exact=exact)
    oev, oref, osum = oracle_stage(claim, deriv, inst)
    claimed_f, pev = point_stage(claim, inst, deriv)
    ref = Reference(claimed_f) if claimed_f is not None else oref
    if claimed_f is None and oref is not None:
        pev.append(Evidence(Check.POINT, "reference minimum", Status.INFO,
                            detail=f"neither the claim nor the derivation states f*: the convex oracle's certified "
                                   f"value {oref.value:.15g} +- {oref.radius:.2g} is the reference"))
    return claim, deriv, ref, ev + oev + pev, osum


def check_many(theorem, insts: Sequence[Instance], *, solver: str = "lbfgs", starts: int = 3, seed: int = 0,
               device: str = "auto", max_iter: int | None = None, dps: int = 40, record_history: bool = False,
               cache: ExactCache | None = None) -> list[CheckResult]:
    """``check`` of ``theorem`` on every instance of ``insts``, with one batched solve for all their starts
    (``numerics.starts.solve_instances``); the same verdicts as checking them one by one, and the same numbers to
    rounding (a batch's composition moves end points in their last bits, e.g. sigma(W) 1.2e-24 vs 5.1e-25 at a
    collapsed point). ``cache``:
    reuse the exact side of instances already checked in this search."""
    from ncverify.numerics.starts import solve_instances

    t0 = time.perf_counter()
    theorem.prepare()
    staged = []
    for inst in insts:
        theorem.validate(inst)
        claim, deriv, ref, ev, osum = cache.exact(theorem, inst, dps) if cache is not None else _exact(theorem, inst, dps)
        staged.append((inst, claim, deriv, ref, ev, osum))
    t_exact = time.perf_counter() - t0
    if getattr(theorem, "model", "ufm") != "ufm":
        return [_model_result(theorem, inst, claim, deriv, ref, ev, osum, t_exact / max(1, len(insts)))
                for inst, claim, deriv, ref, ev, osum in staged]
    t1 = time.perf_counter()
    results = solve_instances(list(insts), starts=starts, seed=seed, solver=solver, device=device, max_iter=max_iter)
    t_solve = (time.perf_counter() - t1) / max(1, len(insts))
    out = []
    for (inst, claim, deriv, ref, ev, osum), res in zip(staged, results):
        t2 = time.perf_counter()
        nev, num, best = numerics_stage(theorem, claim, inst, deriv, None if ref is None else ref.value, solver=solver,
                                        starts=starts, seed=seed, device=device, max_iter=max_iter, result=res,
                                        ref_radius=0.0 if ref is None else ref.radius)
        if osum is not None:
            num["convex_oracle"] = osum
        ev = ev + nev
        verdict, reason = decide(ev)
        out.append(CheckResult(theorem=theorem.id, instance=inst, verdict=verdict, reason=reason, evidence=ev,
                               claim=prediction_json(claim), derivation=prediction_json(deriv), numerics=num,
                               seconds=t_exact / max(1, len(insts)) + t_solve + time.perf_counter() - t2,
                               reproduce=reproduce_command(theorem, inst),
                               history=getattr(best, "history", None) if record_history else None))
    return out


def _model_result(theorem, inst: Instance, claim: Prediction, deriv: Any, ref: Any, ev: list[Evidence], osum: Any,
                  seconds: float) -> CheckResult:
    """The check of a convex-model theorem (``verify.convex_model``): its numerics are the convex oracle's."""
    t0 = time.perf_counter()
    nev, num = model_numerics(theorem, claim, inst, ref, osum)
    ev = ev + nev
    verdict, reason = decide(ev)
    return CheckResult(theorem=theorem.id, instance=inst, verdict=verdict, reason=reason, evidence=ev,
                       claim=prediction_json(claim), derivation=prediction_json(deriv), numerics=num,
                       seconds=seconds + time.perf_counter() - t0, reproduce=reproduce_command(theorem, inst))


def cheap_check(theorem, inst: Instance, dps: int = 40, cache: ExactCache | None = None) -> list[Evidence]:
    """Claim vs derivation and the constructed claimed point (no solver); returns the failing evidence."""
    theorem.prepare()
    ev = (cache.exact(theorem, inst, dps) if cache is not None else _exact(theorem, inst, dps))[3]
    return [e for e in ev if e.status is Status.FAIL]


__all__ = ["check", "evaluate_claim", "check_many", "cheap_check", "ExactCache", "decide", "reproduce_command", "Check", "Status",
           "Verdict", "VERDICTS",
           "Evidence", "CheckResult", "compare_with_derivation", "construct_claimed_point", "point_evidence",
           "gram_from_target", "prediction_json", "derivation_stage", "point_stage", "numerics_stage"]
