"""The family registry: every objective family the theory engine derives, behind one protocol.

A family (one module per family in this folder) is an object with

* ``name``: the family id (``ncverify derive NAME``); ``description``: one line;
* ``check(I)``: raise ``TheoryInputError`` naming the first violated assumption of the exact instance ``I``
  (``theory.instance.ExactInstance``);
* ``derive(I, dps) -> Prediction``: the global minimizer of I's objective, its reduced problem, stationary
  equation, candidates and phase boundaries, every value at ``dps`` digits;
* ``critical_values(I) -> {parameter: [values]}``: where I, moved along one parameter ("lam_h", "lam_b")
  with the others fixed, crosses a derived phase boundary (the search aims at both sides of these).

The built-in families are registered here; further ones (the ETF-margin families of loss variants) are
registered at run time by the command that needs them (``register``). The theory engine knows families only,
never theorem ids: theorem ids are resolved to families by the catalogue (``proofs_checks``).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.families.ce_deep import CeDeep
from ncverify.theory.families.ce_deep_etf import CeDeepEtf
from ncverify.theory.families.ce_imbalanced import CeImbalanced
from ncverify.theory.families.convex_programs import LayerPeeled, MaxMargin
from ncverify.theory.families.dufm import Dufm
from ncverify.theory.families.mse_regression import MseRegression
from ncverify.theory.families.etf_margin import EtfMarginFamily
from ncverify.theory.families.extended_linear import ExtendedLinear
from ncverify.theory.families.mse_bias_regularized import MseBiasRegularized
from ncverify.theory.families.mse_deep import MseDeep
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Prediction


@runtime_checkable
class Family(Protocol):
    """What a family provides (see the module docstring)."""

    name: str
    description: str

    def check(self, I: ExactInstance) -> None: ...

    def derive(self, I: ExactInstance, dps: int) -> Prediction: ...

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]: ...


BUILTIN: tuple[Family, ...] = (
    MseDeep("mse-deep", centered=False, description="deep linear bias-free MSE, any depth and counts"),
    MseDeep("mse-deep-bias", centered=True, description="deep linear MSE with an unregularized last-layer bias"),
    CeDeepEtf(),
    CeDeep(),
    ExtendedLinear(),
    MseBiasRegularized(),
    CeImbalanced(),
    MaxMargin(),
    LayerPeeled(),
    MseRegression(),
    Dufm(),
)
_REGISTRY: dict[str, Family] = {f.name: f for f in BUILTIN}


def register(family: Family, replace: bool = False) -> Family:
    """Add a family (e.g. an ``EtfMarginFamily`` of a loss variant). A built-in id cannot be replaced; another
    registered id only with ``replace=True`` (re-registering the same definition is a no-op)."""
    if not isinstance(family, Family):
        raise TypeError(f"{family!r} does not implement the Family protocol (name, description, check, derive, "
                        "critical_values)")
    if any(f.name == family.name for f in BUILTIN):
        raise TheoryInputError(f"family id {family.name!r} is built in")
    old = _REGISTRY.get(family.name)
    if old is not None and old != family and not replace:
        raise TheoryInputError(f"family {family.name!r} is already registered; pass replace=True")
    _REGISTRY[family.name] = family
    return family


def get(name: str) -> Family:
    """The family with id ``name``; TheoryInputError naming the known ids otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TheoryInputError(f"unknown family {name!r}; known families: {', '.join(names())}") from None


def names() -> list[str]:
    """Every registered family id (built-in first)."""
    return list(_REGISTRY)


__all__ = ["Family", "EtfMarginFamily", "register", "get", "names", "BUILTIN"]
