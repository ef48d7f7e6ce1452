"""The theorem catalogue: one module per source, assembled here into the registry that the tests, the CLI and
the report iterate.

* ``dang2023`` -- [P1] deep linear MSE (bias-free, with bias) and CE;
* ``tirer2022`` -- [P2] plain UFM MSE (with and without bias), extended UFM (identity, ReLU);
* ``zhu2021`` -- [Z21] CE UFM with a regularized bias;
* ``zhou2022`` -- [Z22] MSE UFM with a regularized bias (natural conjecture);
* ``conjectures`` -- label smoothing and focal loss (conjectures written for this suite);
* ``ce_geometry`` -- deep CE beyond the simplex ETF: the corrected conjecture ``ce-deep-etf-boundary``.

Each module holds, per theorem, the statement, the claim as the paper states it, its mutants (transforms of
the claim's prediction), its assumptions and domain, and its recorded verdict; the vocabulary lives in
``proofs_checks.statement``. A user's own theorems come from ``--theorems FILE`` (``load_theorems``).
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Iterable

from ncverify.proofs_checks.catalogue import ce_geometry, conjectures, dang2023, tirer2022, zhou2022, zhu2021
from ncverify.proofs_checks.errors import UnknownIdError, UserFileError
from ncverify.proofs_checks.statement import (Expected, Theorem, assumptions, domain, instances, log_uniform, mixed,  # noqa: F401
                                     mutant)

SOURCES = (dang2023, tirer2022, zhu2021, conjectures, zhou2022, ce_geometry)
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


def family_theorem(family: str, registry: Iterable[Theorem] | None = None) -> Theorem | None:
    """A theorem about ``family`` (its defaults fill the flags of ``ncverify derive FAMILY``), or None."""
    return next((t for t in (THEOREMS if registry is None else registry) if t.family == family), None)


def load_theorems(path: str | Path) -> list[Theorem]:
    """Theorems from a user's Python file: it must define ``THEOREMS`` (a list of ``Theorem``). Any error in the
    file is a UserFileError naming the file, the line and the error."""
    p = Path(path)
    if not p.is_file():
        raise UserFileError(f"--theorems file {str(p)!r} does not exist")
    name = f"ncverify_user_{p.stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise UserFileError(f"cannot load {str(p)!r} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as exc:
        raise UserFileError(f"{str(p)!r} line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # the user's code: report it as a user-file error with its line
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(p)]
        where = f" line {frames[-1].lineno}" if frames else ""
        raise UserFileError(f"{str(p)!r}{where}: {type(exc).__name__}: {exc}") from None
    extra = getattr(mod, "THEOREMS", None)
    if not isinstance(extra, (list, tuple)) or not all(isinstance(t, Theorem) for t in extra):
        raise UserFileError(f"{str(p)!r} must define THEOREMS = [Theorem(...), ...]")
    known = {t.id for t in THEOREMS + MUTANTS}
    for t in extra:
        if t.id in known:
            raise UserFileError(f"theorem id {t.id!r} from {str(p)!r} is already in the catalogue")
    return list(extra)


__all__ = ["THEOREMS", "MUTANTS", "SOURCES", "by_id", "family_theorem", "load_theorems", "Theorem", "Expected",
           "mutant", "assumptions", "domain", "instances", "mixed", "log_uniform"]
