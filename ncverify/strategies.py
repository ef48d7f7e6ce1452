"""Hypothesis strategies of every theorem's domain, for researchers' own property-based tests.

``instances(theorem_id)`` draws ``Instance`` objects from the theorem's stated domain exactly as
``ncverify run`` does: the whole domain, and (half of the draws) instances placed just below and above every
phase boundary the theory engine derives. Narrow or widen a catalogue domain with the fields of
``ncverify.proofs_checks.statement.Domain`` (``K=(2, 3)`` classes, ``n=(1, 4)`` samples per class,
``depths=(1, 2)``, ``lam=(1e-3, 1e-1)`` every lambda log-uniform, ``extra_width=1`` for d = K + 0..1, ...)::

    from hypothesis import given
    from ncverify.strategies import instances
    from ncverify.testing import assert_verifies, numeric_settings

    @numeric_settings(max_examples=3)
    @given(instances("tirer2022.mse-ufm", K=(2, 3), n=(1, 3)))
    def test_mse_ufm(inst):
        assert_verifies("tirer2022.mse-ufm", inst)

Drawing near a boundary runs a derivation (SymPy), so draws can take a second: use ``numeric_settings``
(no deadline, no too-slow health check) or the plugin's profiles (``pytest --hypothesis-profile ncverify-ci``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ncverify.proofs_checks.statement.domains import Domain, domain, log_uniform  # noqa: F401 (public)

__all__ = ["instances", "theorem_domain", "domain", "Domain", "log_uniform"]


def theorem_domain(theorem: Any, *, theorems_file: str | Path | None = None, **overrides: Any) -> Domain:
    """The ``Domain`` of a theorem (an id or a ``Theorem``), with some fields replaced by ``overrides``."""
    from ncverify.api import get_theorem
    from ncverify.proofs_checks.errors import UsageError

    th = get_theorem(theorem, theorems_file=theorems_file)
    dom = th.strategy
    if not isinstance(dom, Domain):
        if overrides:
            raise UsageError(f"{th.id}: its search strategy is not a Domain, so it cannot be narrowed "
                             f"(got overrides {', '.join(sorted(overrides))})")
        raise UsageError(f"{th.id}: its search strategy is not a Domain; use instances({th.id!r}) instead")
    fields = {f.name for f in dataclasses.fields(Domain)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UsageError(f"unknown domain field(s) {', '.join(unknown)}; fields: {', '.join(sorted(fields))}")
    return dataclasses.replace(dom, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def instances(theorem: Any, *, near_boundaries: bool = True, theorems_file: str | Path | None = None,
              **overrides: Any) -> Any:
    """A Hypothesis strategy of valid instances of ``theorem``'s domain (see the module docstring).

    ``near_boundaries=False`` draws from the whole domain only (no derivation while drawing)."""
    from ncverify.api import get_theorem

    th = get_theorem(theorem, theorems_file=theorems_file)
    th.prepare()  # a loss variant's theory family is needed to place draws near its boundaries
    if not overrides and not isinstance(th.strategy, Domain):
        return th.strategy()
    dom = theorem_domain(th, **overrides)
    if near_boundaries:
        _warm_up(dom)
        return dom()
    return dom.base()


#: the most (K, loss, depth) combinations ``_warm_up`` derives up front for a loss with parameters
WARM_UP_MAX = 64


def _warm_up(dom: Domain) -> None:
    """Derive the phase boundaries once, when the strategy is built, instead of inside the first draws (which
    Hypothesis's too-slow health check times under default settings): the domain's smallest instance at every depth
    (the first derivation of a family pays for importing SymPy and building its reduced problem, about a second, and
    each depth M's thresholds are derived once, up to a second for M = 6) and, for a
    loss with parameters (a registered variant: its boundaries depend only on K, the parameters and M, each
    combination a SymPy reduction of 0.15-0.3 s), every (K, loss, M) of the domain, when there are at most
    ``WARM_UP_MAX`` of them (36 for ``ce-focal``: about 8 s)."""
    from ncverify.numerics.problem import Instance
    from ncverify.proofs_checks.errors import INPUT_ERRORS
    from ncverify.proofs_checks.statement.domains import critical_values

    n = dom.n[0]
    lam = (dom.lam[0] * dom.lam[1]) ** 0.5
    lam_b = (dom.lam_b_range[0] if dom.lam_b_range else dom.lam_b[0])
    corners = [(dom.K[0], dom.losses[0], M) for M in sorted(set(dom.depths))]  # thresholds are derived per depth
    combos = [(K, loss, M) for loss in dom.losses if ":" in loss for K in range(dom.K[0], dom.K[1] + 1)
              for M in sorted(set(dom.depths))]
    if len(combos) <= WARM_UP_MAX:
        corners += combos
    for K, loss, M in corners:
        try:
            inst = Instance.create([n] * K, width=K, depth=M, lam_w=lam, lam_h=lam, loss=loss, bias=dom.bias,
                                   lam_b=lam_b, activation=dom.activation)
            critical_values(dom.family, inst)
        except INPUT_ERRORS:  # outside the family's derivations: nothing to warm up
            pass
