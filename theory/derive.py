"""``derive(family, inst, dps)``: the theory engine's own global minimizer of an objective family.

Looks the family up in the registry (``theory.families``), reads the instance exactly
(``theory.instance.read_instance``), checks the family's assumptions and calls its derivation at
``dps`` digits. The result is always derived from the objective; a theorem's claimed formulas are never
used here, and the theory engine knows no theorem ids (``ncverify derive THEOREM-ID`` resolves the id to
its family in the catalogue). See ../shared/THEOREMS.md for notation and normalizations.
"""
from __future__ import annotations

from typing import Any

import mpmath

from ncverify.theory import families
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.instance import read_instance
from ncverify.theory.prediction import Prediction


def derive(family: str, inst: Any, dps: int = 40, exact: bool = True) -> Prediction:
    """The global minimizer of the instance's objective for ``family``.

    family: a registered family id (``theory.families.names()``).
    inst: any object with the attributes of numerics.problem.Instance.
    dps: decimal digits of every reported value (>= 20; candidates compared at this precision).
    exact=False: values only where the family offers it (``derive_values``: the same reduction and global
    selection, each structure's equations derived once in symbols and solved per instance at high precision, every
    ``Exact.expr`` None; for searches, which compare values). Other families derive exactly either way.
    Raises TheoryInputError for an unknown family or an instance outside its assumptions (the message
    names the condition).
    """
    fam = families.get(family)
    if dps < 20:
        raise TheoryInputError(f"dps must be >= 20, got {dps}")
    I = read_instance(inst)
    fam.check(I)
    # all mpmath arithmetic of the assembly runs at dps + 10 digits (values keep their precision after)
    with mpmath.workdps(dps + 10):
        if not exact and hasattr(fam, "derive_values"):
            return fam.derive_values(I, dps)
        return fam.derive(I, dps)


def known_ids() -> list[str]:
    """Every family id that ``derive`` accepts."""
    return families.names()
