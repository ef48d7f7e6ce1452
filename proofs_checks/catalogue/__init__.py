"""The theorem catalogue: one module per source, assembled here into the registry that the tests, the CLI and
the report iterate.

* ``dang2023`` -- [P1] deep linear MSE (bias-free, with bias) and CE;
* ``tirer2022`` -- [P2] plain UFM MSE (with and without bias), extended UFM (identity, ReLU);
* ``zhu2021`` -- [Z21] CE UFM with a regularized bias;
* ``zhou2022`` -- [Z22] MSE UFM with a regularized bias (natural conjecture);
* ``conjectures`` -- label smoothing and focal loss (conjectures written for this suite);
* ``ce_geometry`` -- deep CE beyond the simplex ETF: the corrected conjecture ``ce-deep-etf-boundary``;
* ``liu2024`` -- [L24] deep linear MSE with an unregularized bias and imbalanced classes;
* ``hong2023`` -- [H23] imbalanced CE UFM with two class groups: minority collapse at a sharp threshold;
* ``thrampoulidis2022`` -- [T22] the SELI geometry of the max-margin program (checked by the convex oracle);
* ``fang2021`` -- [F21] the layer-peeled model, balanced and imbalanced (checked by the convex oracle);
* ``andriopoulos2024`` -- [A24] neural regression collapse: the MSE UFM with real-valued targets;
* ``sukenik2023`` -- [S23] the ReLU deep unconstrained features model, two classes: deep neural collapse.

Each module holds, per theorem, the statement, the claim as the paper states it, its mutants (transforms of
the claim's prediction), its assumptions and domain, and its recorded verdict; the vocabulary lives in
``proofs_checks.statement``. A user's own theorems come from ``--theorems FILE`` (``load_theorems``).
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from ncverify.proofs_checks.catalogue import (andriopoulos2024, ce_geometry, conjectures, dang2023, fang2021, hong2023,
                                              liu2024, sukenik2023, thrampoulidis2022, tirer2022, zhou2022, zhu2021)
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import (INPUT_ERRORS, UnknownIdError, UserFileError, register_user_file,
                                           user_code_error)
from ncverify.proofs_checks.statement import (Expected, Theorem, assumptions, domain, instances, log_uniform, mixed,  # noqa: F401
                                     mutant)
from ncverify.theory.prediction import Prediction

SOURCES = (dang2023, tirer2022, zhu2021, conjectures, zhou2022, ce_geometry, liu2024, hong2023, thrampoulidis2022,
           fang2021, andriopoulos2024, sukenik2023)
THEOREMS: list[Theorem] = [t for m in SOURCES for t in m.THEOREMS]
MUTANTS: list[Theorem] = [t for m in SOURCES for t in m.MUTANTS]


def by_id(tid: str, registry: Iterable[Theorem] | None = None) -> Theorem:
    """The theorem (or mutant) with id ``tid``; UnknownIdError listing the known ids otherwise."""
    reg = list(THEOREMS + MUTANTS if registry is None else registry)
    for t in reg:
        if t.id == tid:
            return t
    known = [t.id for t in reg if not t.is_mutant]
    raise UnknownIdError(f"unknown theorem id {tid!r}; known: {', '.join(known)}")


def resolve(theorem: "str | Theorem", extra: "str | Path | Iterable[Theorem] | None" = None) -> Theorem:
    """``theorem`` as a ``Theorem``: returned as it is, or looked up by id in the catalogue plus ``extra`` (a
    ``--theorems`` file path or theorems already loaded); UsageError for anything else, UnknownIdError for an
    unknown id."""
    from ncverify.proofs_checks.errors import UsageError

    if isinstance(theorem, Theorem):
        return theorem
    if not isinstance(theorem, str):
        raise UsageError(f"a theorem is given by its id (a string) or as a Theorem, got {type(theorem).__name__}")
    more = load_theorems(extra) if isinstance(extra, (str, os.PathLike)) else list(extra or [])
    return by_id(theorem, THEOREMS + MUTANTS + more)


def select_only(theorems: list[Theorem], mutants: list[Theorem], only: Iterable[str], what: str = "--only"
                ) -> tuple[list[Theorem], list[Theorem]]:
    """The theorems and mutants a run restricted to the ids ``only`` covers (a theorem brings its mutants);
    UnknownIdError naming every unknown id (``what`` names the option in the message)."""
    keep = list(only)
    known = {t.id for t in theorems + mutants}
    unknown = [i for i in keep if i not in known]
    if unknown:
        raise UnknownIdError(f"{what}: unknown theorem id(s) {', '.join(unknown)}; known: "
                             f"{', '.join(t.id for t in theorems)} (and their mutants, `ncverify list --mutants`)")
    return [t for t in theorems if t.id in keep], [t for t in mutants if t.id in keep or t.mutant_of in keep]


def family_theorem(family: str, registry: Iterable[Theorem] | None = None) -> Theorem | None:
    """A theorem about ``family`` (its defaults fill the flags of ``ncverify derive FAMILY``), or None."""
    return next((t for t in (THEOREMS if registry is None else registry) if t.family == family), None)


def load_theorems(path: str | Path) -> list[Theorem]:
    """Theorems from a user's Python file: it must define ``THEOREMS`` (a list of ``Theorem``).

    Any error in the file is a UserFileError (the CLI: one line, exit code 2) naming the file, the line and the
    problem: a syntax error or an exception while importing it, a missing or ill-typed THEOREMS, duplicate or
    catalogue ids. The theorems' own code (claim, assumptions, search domain) is guarded too: an exception it
    raises later, while ``check``/``run``/``derive`` evaluate it, is a UserFileError naming the file, the line,
    the theorem and the instance; a claim that returns something other than a ``Prediction`` is one as well."""
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise UserFileError(f"--theorems file {shown!r} does not exist")
    if not p.is_file():
        raise UserFileError(f"--theorems file {shown!r} is not a file")
    if p.suffix != ".py":
        raise UserFileError(f"--theorems file {shown!r} must be a Python file ending in .py")
    name = f"ncverify_user_{p.stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise UserFileError(f"cannot load {shown!r} as a Python module")
    register_user_file(shown)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(mod)
    except (Exception, SystemExit) as exc:  # the user's code: one line with the file and the line
        sys.modules.pop(name, None)
        raise user_code_error(exc, shown, "while importing the theorem file") from exc
    if not hasattr(mod, "THEOREMS"):
        raise UserFileError(f"{shown}: defines no THEOREMS; it must define THEOREMS = [Theorem(...), ...]")
    extra = getattr(mod, "THEOREMS")
    if not isinstance(extra, (list, tuple)):
        raise UserFileError(f"{shown}: THEOREMS must be a list of Theorem, got {type(extra).__name__}")
    for i, t in enumerate(extra):
        if not isinstance(t, Theorem):
            raise UserFileError(f"{shown}: THEOREMS[{i}] must be a Theorem, got {type(t).__name__}")
    if not extra:
        raise UserFileError(f"{shown}: THEOREMS is empty")
    known = {t.id for t in THEOREMS + MUTANTS}
    seen: set[str] = set()
    for t in extra:
        if t.id in known:
            raise UserFileError(f"{shown}: theorem id {t.id!r} is already in the catalogue")
        if t.id in seen:
            raise UserFileError(f"{shown}: theorem id {t.id!r} appears twice in THEOREMS")
        seen.add(t.id)
    return [_guarded(t, shown) for t in extra]


def _guarded(t: Theorem, path: str) -> Theorem:
    """``t`` with its user-written callables guarded: an exception they raise becomes a UserFileError naming
    ``path``, the line, the theorem and the instance (never a verdict, never a traceback). The assumptions'
    own InstanceError (the instance is outside the theorem's domain) passes through unchanged."""
    claim, validator, strategy = t.claim, t.validator, t.strategy

    def guarded_claim(inst: Instance) -> Prediction:
        try:
            pred = claim(inst)
        except UserFileError:
            raise
        except Exception as exc:
            raise user_code_error(exc, path, f"while evaluating the claim of {t.id} on {inst.cli_flags()}") from exc
        if not isinstance(pred, Prediction):
            raise UserFileError(f"{path}: the claim of {t.id} returned {type(pred).__name__}, not a Prediction "
                                f"(on {inst.cli_flags()})")
        return pred

    def guarded_validator(inst: Instance) -> None:
        try:
            validator(inst)
        except INPUT_ERRORS:
            raise
        except Exception as exc:
            raise user_code_error(exc, path, f"while checking the assumptions of {t.id} on {inst.cli_flags()}"
                                  ) from exc

    def guarded_strategy():
        try:
            return strategy()
        except UserFileError:
            raise
        except Exception as exc:
            raise user_code_error(exc, path, f"while building the search domain of {t.id}") from exc

    guarded_claim.__doc__ = claim.__doc__
    return replace(t, claim=guarded_claim, validator=guarded_validator, strategy=guarded_strategy)


__all__ = ["THEOREMS", "MUTANTS", "SOURCES", "by_id", "resolve", "select_only", "family_theorem", "load_theorems", "Theorem", "Expected",
           "mutant", "assumptions", "domain", "instances", "mixed", "log_uniform"]
