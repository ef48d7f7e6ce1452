"""``Theorem`` (one catalogue entry), ``Expected`` (its recorded verdict) and ``mutant`` (a seeded wrong claim).

A theorem holds its statement as the paper gives it: id, title, source, provenance, the objective with its
normalization, the assumptions (a validator and a readable list), the search domain, the claim (instance ->
``Prediction`` with what the paper states), qualitative shape claims checked numerically, fixed examples and
the recorded verdict. A mutant is made FROM a theorem by transforming its claim's prediction; the faithful
claim carries no sabotage knobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ncverify.numerics.problem import Instance
from ncverify.theory.prediction import Prediction

from ncverify.proofs_checks.statement import shapes

# qualitative claims the numeric stage checks (``verify.stages``): the grammar of ``statement.shapes`` (nc1:<layer>,
# gram:<layer>=<geometry>, self_duality:<layer>, alignment:<j>) and these short names; any other name is an error
SHAPE_CLAIMS = tuple(shapes.ALIASES)


@dataclass(frozen=True)
class Expected:
    """The recorded theorem-level verdict. ``region`` describes where the claim fails (if it does) and
    ``refutes(inst)`` says, per instance, whether the record expects a refutation there."""

    verdict: str
    counterexample: str = ""  # instance flags of a recorded counterexample
    region: str = ""
    refutes: Callable[[Instance], bool] | None = None

    def instance_verdict(self, inst: Instance) -> str:
        """"refuted" or "not refuted" (verified or inconclusive) as the record says for ``inst``."""
        if self.refutes is None:
            return "refuted" if self.verdict == "refuted" and not self.region else "not refuted"
        return "refuted" if self.refutes(inst) else "not refuted"


@dataclass(frozen=True)
class Theorem:
    """One catalogue entry (see the module docstring).

    family: the theory family its derivation is about (``theory.families``); validator(inst) raises
    InstanceError naming the first violated assumption; strategy() -> a Hypothesis strategy of valid
    instances (``statement.domain``); claim(inst) -> Prediction; defaults: instance flags the theorem
    implies (loss, bias, ...); variant: the loss variant the theorem needs registered (``variants``);
    min_starts: landscapes with spurious local minima (ReLU) need more random starts; shape_claims: qualitative
    claims about any layer (``statement.shapes``), checked at every numeric minimizer that reaches the claimed minimum;
    model: "ufm" (the training objective, solved by the torch solvers) or "max-margin" / "layer-peeled" (a convex
    program, whose numerics are the convex oracle's certificates, ``verify.convex_model``); requires: optional extras
    the check cannot do without ("convex" when only the oracle states the reference minimum).
    """

    id: str
    title: str
    source: str
    provenance: str
    family: str
    objective: str
    assumptions: tuple[str, ...]
    validator: Callable[[Instance], None]
    strategy: Callable[[], Any]
    claim: Callable[[Instance], Prediction]
    expected: Expected
    shape_claims: tuple[str, ...] = ()
    examples: tuple[Instance, ...] = ()  # instances always tried first
    mutant_of: str | None = None
    mutation: str = ""
    defaults: dict = field(default_factory=dict)
    min_starts: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)
    variant: Any = None  # a ``variants.LossVariant`` registered by ``prepare()``
    model: str = "ufm"  # "ufm" (the training objective) or a convex program checked by the oracle (``verify.convex_model``)
    requires: tuple[str, ...] = ()  # optional extras the check cannot do without ("convex": the convex oracle)

    def __post_init__(self) -> None:
        if isinstance(self.shape_claims, str):
            raise ValueError(f"{self.id}: shape_claims must be a tuple of names, got the string {self.shape_claims!r}")
        if self.model not in ("ufm", "max-margin", "layer-peeled"):
            raise ValueError(f"{self.id}: model must be ufm, max-margin or layer-peeled, got {self.model!r}")
        for name in self.shape_claims:
            try:
                shapes.parse(name)
            except ValueError as exc:
                raise ValueError(f"{self.id}: {exc}") from None

    def validate(self, inst: Instance) -> None:
        """Raise InstanceError naming the first violated assumption of this theorem."""
        self.validator(inst)

    def prepare(self) -> "Theorem":
        """Register what the theorem needs (its loss variant: torch loss, theory family, agreement check).
        Idempotent; every command that derives or solves calls it first."""
        if self.variant is not None:
            self.variant.register()
        return self

    @property
    def needs_oracle(self) -> bool:
        """Whether the check needs the convex oracle (``pip install 'ncverify[convex]'``) to settle anything."""
        return self.model != "ufm" or "convex" in self.requires

    @property
    def is_mutant(self) -> bool:
        return self.mutant_of is not None


def mutant(base: Theorem, tag: str, mutation: str, transform: Callable[[Instance, Prediction], Prediction],
           examples: tuple[Instance, ...] | None = None) -> Theorem:
    """A seeded wrong claim made from ``base``: its claim is ``transform(inst, base.claim(inst))``.

    tag: short name (the id becomes ``mutant:<base id>:<tag>``); mutation: what is wrong, in words;
    examples: instances where the error shows (default: the base theorem's examples)."""
    faithful = base.claim

    def claim(inst: Instance) -> Prediction:
        return transform(inst, faithful(inst))

    claim.__doc__ = f"MUTANT of {base.id}: {mutation}"
    return replace(base, id=f"mutant:{base.id}:{tag}", title=f"MUTANT of {base.id}: {mutation}", claim=claim,
                   mutant_of=base.id, mutation=mutation, expected=Expected("refuted"),
                   examples=examples if examples is not None else base.examples)
