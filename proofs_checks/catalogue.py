"""The theorem catalogue: one registry that the tests, the CLI and the report all iterate.

Each ``Theorem`` is frozen: id (fixed, from ../shared/THEOREMS.md), title, source and provenance,
the objective with its normalization, an assumption validator (raises InstanceError naming the
violated condition), a Hypothesis strategy building only valid instances, the claim (instance ->
``Prediction`` holding what the paper states), qualitative claims checked numerically
(``shape_claims``), and the recorded expected verdict (with the counterexample and the region where
the claim fails, when it fails).

To add a theorem: write its claim (see ``proofs_checks.claims``), then add one ``Theorem(...)`` to
``THEOREMS`` below, or put ``THEOREMS = [Theorem(...), ...]`` in your own file and pass
``--theorems your_file.py``.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import mpmath as mp
from hypothesis import strategies as st

from numerics.problem import Instance, InstanceError
from proofs_checks import claims as C
from theory.prediction import Prediction

MSE_NORMALIZATION = ("MSE: 1/(2N) ||W_M...W_1 H (+ b 1^T) - Y||_F^2 + sum_j lambda_Wj/2 ||W_j||_F^2 "
                     "+ lambda_H/2 ||H||_F^2 (bias unregularized)")
CE_NORMALIZATION = ("CE: (1/N) sum_i CE(W_M...W_1 h_i + b, y_i) + sum_j lambda_Wj/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 "
                    "+ lambda_b/2 ||b||^2")
EXT_NORMALIZATION = ("extended UFM: 1/(2N) ||W_2 s(W_1 H_1) - Y||_F^2 + lambda_W2/2 ||W_2||^2 + lambda_W1/2 ||W_1||^2 "
                     "+ lambda_H1/2 ||H_1||^2 ([P2] writes 1/(2Kn) = 1/(2N), balanced)")


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
    id: str
    title: str
    source: str
    provenance: str
    family: str  # theory engine family (``theory.derive``)
    objective: str
    assumptions: tuple[str, ...]
    validator: Callable[[Instance], None]
    strategy: Callable[[], st.SearchStrategy[Instance]]
    claim: Callable[[Instance], Prediction]
    expected: Expected
    shape_claims: tuple[str, ...] = ()
    examples: tuple[Instance, ...] = ()  # instances always tried first
    mutant_of: str | None = None
    mutation: str = ""
    defaults: dict = field(default_factory=dict)  # instance flags implied by the theorem (loss, bias, ...)
    min_starts: int = 1  # landscapes with spurious local minima (ReLU) need more random starts
    notes: tuple[str, ...] = field(default_factory=tuple)

    def validate(self, inst: Instance) -> None:
        """Raise InstanceError naming the first violated assumption of this theorem."""
        self.validator(inst)

    @property
    def is_mutant(self) -> bool:
        return self.mutant_of is not None


# ---------------------------------------------------------------------------------------------
# assumption validators
# ---------------------------------------------------------------------------------------------
def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise InstanceError(msg)


def validator(tid: str, *, loss: str, balanced: bool = False, depth1: bool = False, bias: bool | None = False,
              activation: str | None = None, bias_regularized: bool | None = None) -> Callable[[Instance], None]:
    def check(inst: Instance) -> None:
        _require(inst.loss == loss, f"{tid} is about the {loss.upper()} loss, got --loss {inst.loss}")
        _require(inst.activation == activation,
                 f"{tid} needs activation {activation or 'none (deep linear model)'}, got {inst.activation or 'none'}")
        if activation is not None:
            _require(inst.depth == 2, f"{tid} is the extended UFM with two weight layers: needs depth M = 2, got {inst.depth}")
        if depth1:
            _require(inst.depth == 1, f"{tid} is the plain UFM: needs depth M = 1, got {inst.depth}")
        if bias is not None:
            _require(inst.bias == bias, f"{tid} needs {'a' if bias else 'no'} last-layer bias"
                                        f"{' (--bias)' if bias else ''}")
        if bias_regularized is False:
            _require(inst.lam_b == 0, f"{tid}: the bias is unregularized, needs lambda_b = 0, got {inst.lam_b}")
        if bias_regularized is True and inst.bias:
            _require(inst.lam_b > 0, f"{tid} needs lambda_b > 0 when a bias is used, got {inst.lam_b}")
        if balanced:
            _require(inst.balanced, f"{tid} needs balanced classes, got counts {list(inst.counts)}")
        inst.require_width_at_least_classes(tid)
    return check


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------
def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """lambda values over several orders of magnitude (rounded to 3 significant digits for readable repros)."""
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(f"{10 ** e:.3g}"))


@st.composite
def instances(draw, *, loss: str = "mse", balanced: bool = False, depths=(1, 2, 3), K=(2, 4), n=(1, 6),
              bias: bool = False, lam_b: float = 0.0, activation: str | None = None, lam=(1e-3, 1e-1),
              per_layer: bool = True, extra_width: int = 1) -> Instance:
    k = draw(st.integers(*K))
    if balanced:
        counts = [draw(st.integers(*n))] * k
    else:
        counts = draw(st.lists(st.integers(*n), min_size=k, max_size=k))
    M = draw(st.sampled_from(depths))
    d = k + draw(st.integers(0, extra_width))
    lam_w = [draw(log_uniform(*lam)) for _ in range(M)] if per_layer else [draw(log_uniform(*lam))] * M
    lam_h = draw(log_uniform(*lam))
    return Instance.create(counts, width=d, depth=M, lam_w=lam_w, lam_h=lam_h, loss=loss, bias=bias, lam_b=lam_b,
                           activation=activation)


def near_boundaries(base: st.SearchStrategy[Instance], family: str,
                    critical: Callable[[str, Instance], list[float]] | None = None,
                    ratios: tuple[float, ...] = (0.8, 0.95, 0.99, 1.01, 1.05, 1.25)) -> st.SearchStrategy[Instance]:
    """Move lambda_H of a drawn instance to ``ratios`` of one of the derived phase boundaries (below and
    above), so both sides of every boundary are sampled. ``critical(family, inst)`` gives the critical
    lambda_H values (default: ``proofs_checks.boundaries.critical_lam_h``)."""
    if critical is None:
        from proofs_checks.boundaries import critical_lam_h as critical

    @st.composite
    def strat(draw):
        inst = draw(base)
        crit = critical(family, inst)
        if not crit:
            return inst
        lam_c = draw(st.sampled_from(sorted(crit)))
        ratio = draw(st.sampled_from(list(ratios)))
        return inst.with_(lam_h=float(f"{lam_c * ratio:.6g}"))
    return strat()


def mixed(base: st.SearchStrategy[Instance], family: str) -> Callable[[], st.SearchStrategy[Instance]]:
    return lambda: st.one_of(base, near_boundaries(base, family))


# ---------------------------------------------------------------------------------------------
# expected-verdict regions (recorded findings)
# ---------------------------------------------------------------------------------------------
def dang_root_rule_fails(inst: Instance) -> bool:
    """Where [P1]'s "largest positive root, else 0" rule is not the global minimizer of the per-class
    problem: for M >= 2 some class has positive stationary points whose objective exceeds the value at 0."""
    if inst.depth < 2:
        return False
    mp.mp.dps = C.DPS
    M, N = inst.depth, inst.N
    lam = C._mp_prod(C.num(v) for v in inst.lam_w)
    b = M * N * (N * C.num(inst.lam_h) * lam) ** (mp.mpf(1) / M)
    for n_k in inst.counts:
        x = C.dang_root_rule(n_k, b, M)
        if x > 0 and n_k / (1 + x ** M) + b * x > n_k:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------
P1 = "[P1] Dang, Tran, Osher, Tran-The, Ho, Nguyen, ICML 2023, arXiv 2301.00437"
P2 = "[P2] Tirer, Bruna, ICML 2022, arXiv 2202.08087"

_mse_deep_strategy = instances(loss="mse", depths=(1, 2, 3))
_mse_bias_strategy = instances(loss="mse", balanced=True, depths=(1, 2, 3), bias=True)
_ce_strategy = instances(loss="ce", balanced=True, depths=(1, 2), n=(1, 4), K=(2, 3))
_tirer_strategy = instances(loss="mse", balanced=True, depths=(1,))
_tirer_bias_strategy = instances(loss="mse", balanced=True, depths=(1,), bias=True)
_ext_lin_strategy = instances(loss="mse", balanced=True, depths=(2,), activation="identity", K=(2, 3), n=(1, 4))
_ext_relu_strategy = instances(loss="mse", balanced=True, depths=(2,), activation="relu", K=(2, 3), n=(1, 4))


def _claim_ext(inst: Instance, relu: bool) -> Prediction:
    """[P2] Thm 4.1 / 4.2 as recalled: the claim states geometry only (no scales, no threshold constant)."""
    return Prediction(
        family="extended-linear", instance=inst.as_dict(), objective=None, scalars={},
        singular_values={"weights_product": None, "layers": None, "output": None},
        # ReLU: the claim is about the post-activation features only; H_1's geometry is left free
        gram_targets={} if relu else {"HbarTHbar": {"kind": "OF", "diag": None}}, class_mean_norms=None, bias=None,
        collapsed_classes=None,
        notes=["claim: NC1 of H_1 and of the features entering W_2; their class means form orthogonal frames; "
               "W_2 aligned with them" + ("; minimum value equals the linear model's" if relu else "")])


def _relu_claim(inst: Instance) -> Prediction:
    """[P2] Thm 4.2: the ReLU model's minimum equals the linear model's (taken from the theory engine's
    derivation of the linear model, which the linear theorem's check verifies separately)."""
    from theory.derive import derive

    p = _claim_ext(inst, relu=True)
    lin = derive("extended-linear", inst.with_(activation="identity"))
    p.objective = lin.objective
    # the linear minimizer, realized with non-negative post-activation features of disjoint supports
    # (theory.construct), is a ReLU point with the linear value: the claimed point that gets evaluated
    # (those scales only build the point: the ReLU model leaves W_1 and H_1 free, so they are not compared)
    p.singular_values = {"weights_product": None, "layers": lin.singular_values["layers"], "output": None}
    p.class_mean_norms = lin.class_mean_norms
    p.undetermined = ["layers", "class_mean_norms"]
    return p


THEOREMS: list[Theorem] = [
    Theorem(
        id="dang2023.mse-deep", title="Deep linear bias-free MSE: OF (balanced) / GOF (imbalanced) at every layer",
        source=P1 + ", main MSE results (balanced: OF; imbalanced: GOF)",
        provenance="closed-form rule as the authors' released code computes the targets of its figures",
        family="mse-deep", objective=MSE_NORMALIZATION,
        assumptions=("M >= 1", "d >= K", "all lambdas > 0", "no bias"),
        validator=validator("dang2023.mse-deep", loss="mse"),
        strategy=mixed(_mse_deep_strategy, "mse-deep"), claim=C.dang_mse_deep,
        shape_claims=("nc1",),
        expected=Expected(
            "refuted", counterexample="--counts 100,4 --width 2 --depth 2 --lam-w 0.0104 --lam-h 0.0104",
            region="depth M >= 2 and some class k whose per-class problem has positive stationary points "
                   "but whose global minimizer is 0: between the existence threshold and the global threshold "
                   "(for M = 2: 1/2 < b/n_k <= 9/(8 sqrt 3)); the largest-root rule then predicts a nonzero "
                   "class where the global minimizer collapses it",
            refutes=dang_root_rule_fails),
        examples=(Instance.create([4, 2, 1], width=3, depth=1, lam_w=2e-2, lam_h=2e-2),
                  Instance.create([3, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2),
                  # the recorded counterexample: class 2 lies between the M = 2 thresholds
                  Instance.create([100, 4], width=2, depth=2, lam_w=0.0104, lam_h=0.0104)),
    ),
    Theorem(
        id="dang2023.mse-deep-bias", defaults={"bias": True}, title="Deep linear MSE with unregularized bias, balanced: simplex ETF, b* = 1/K",
        source=P1 + ", MSE with last-layer bias (balanced)", provenance="paper statement",
        family="mse-deep-bias", objective=MSE_NORMALIZATION,
        assumptions=("M >= 1", "d >= K", "balanced", "bias, unregularized"),
        validator=validator("dang2023.mse-deep-bias", loss="mse", balanced=True, bias=True, bias_regularized=False),
        strategy=mixed(_mse_bias_strategy, "mse-deep-bias"), claim=C.dang_mse_deep_bias, shape_claims=("nc1",),
        expected=Expected("refuted", counterexample="--counts 1,1 --width 2 --depth 2 --lam-w 0.1 --lam-h 0.789062 --bias",
                          region="as dang2023.mse-deep: M >= 2 between the existence and global thresholds",
                          refutes=dang_root_rule_fails),
        examples=(Instance.create(classes=3, per_class=3, width=3, depth=1, lam_w=1e-2, lam_h=1e-2, bias=True),),
    ),
    Theorem(
        id="dang2023.ce-deep", defaults={"loss": "ce"}, title="Deep linear CE, balanced: simplex ETF, self-duality, zero bias",
        source=P1 + ", CE result (balanced)", provenance="paper statement; M = 1 closed form via s = sqrt(n lambda_W lambda_H)",
        family="ce-deep-etf", objective=CE_NORMALIZATION,
        assumptions=("M >= 1", "d >= K", "balanced", "lambda_b > 0 if a bias is used"),
        validator=validator("dang2023.ce-deep", loss="ce", balanced=True, bias=None, bias_regularized=True),
        strategy=mixed(_ce_strategy, "ce-deep-etf"), claim=C.dang_ce_deep, shape_claims=("nc1", "self_duality"),
        expected=Expected("verified"),
        examples=(Instance.create(classes=3, per_class=2, width=3, depth=1, lam_w=1e-2, lam_h=1e-2, loss="ce"),),
    ),
    Theorem(
        id="tirer2022.mse-ufm", title="Plain UFM MSE (M = 1), balanced: OF class means, W = sqrt(n lambda_H/lambda_W) Hbar^T",
        source=P2 + ", Theorem 3.1 (read via a restatement)",
        provenance="restatement; parametrization 1/(2Kn) data term and lambda/2 penalties (not the lambda/(2K) variant)",
        family="mse-deep", objective=MSE_NORMALIZATION, assumptions=("M = 1", "balanced", "d >= K"),
        validator=validator("tirer2022.mse-ufm", loss="mse", balanced=True, depth1=True),
        strategy=mixed(_tirer_strategy, "mse-deep"), claim=C.tirer_mse_ufm, shape_claims=("nc1",),
        expected=Expected("verified"),
        examples=(Instance.create(classes=3, per_class=4, width=3, lam_w=1e-2, lam_h=1e-2),),
    ),
    Theorem(
        id="tirer2022.mse-ufm-bias", defaults={"bias": True}, title="Plain UFM MSE with unregularized bias: simplex ETF, b* = 1/K",
        source=P2 + ", bias counterpart (recalled)", provenance="recalled; 'same rho' read as Gram = rho (I - 11^T/K)",
        family="mse-deep-bias", objective=MSE_NORMALIZATION, assumptions=("M = 1", "balanced", "d >= K", "bias"),
        validator=validator("tirer2022.mse-ufm-bias", loss="mse", balanced=True, depth1=True, bias=True,
                            bias_regularized=False),
        strategy=mixed(_tirer_bias_strategy, "mse-deep-bias"),
        claim=functools.partial(C.tirer_mse_ufm, geometry="ETF", bias=True), shape_claims=("nc1",),
        expected=Expected("verified"),
        examples=(Instance.create(classes=3, per_class=4, width=3, lam_w=1e-2, lam_h=1e-2, bias=True),),
    ),
    Theorem(
        id="tirer2022.extended-linear", defaults={"activation": "identity", "depth": 2}, title="Extended UFM, identity activation: NC1 and OF at both layers",
        source=P2 + ", Theorem 4.1 (recalled)", provenance="recalled; the threshold constant is not stated in the recollection",
        family="extended-linear", objective=EXT_NORMALIZATION, assumptions=("balanced", "d >= K", "s = identity"),
        validator=validator("tirer2022.extended-linear", loss="mse", balanced=True, activation="identity"),
        strategy=mixed(_ext_lin_strategy, "extended-linear"),
        claim=functools.partial(_claim_ext, relu=False), shape_claims=("nc1", "nc1_post", "of_post"),
        expected=Expected("verified"),
        examples=(Instance.create(classes=3, per_class=2, width=3, depth=2, lam_w=1e-2, lam_h=1e-2, activation="identity"),),
    ),
    Theorem(
        id="tirer2022.extended-relu", defaults={"activation": "relu", "depth": 2}, title="Extended UFM, ReLU: same minimum as the linear model; post-ReLU NC1 and OF",
        source=P2 + ", Theorem 4.2 (recalled)", provenance="recalled",
        family="extended-linear", objective=EXT_NORMALIZATION, assumptions=("balanced", "d >= K", "s = ReLU"),
        validator=validator("tirer2022.extended-relu", loss="mse", balanced=True, activation="relu"),
        strategy=mixed(_ext_relu_strategy, "extended-linear"), claim=_relu_claim,
        shape_claims=("nc1_post", "of_post"), expected=Expected("verified"), min_starts=6,
        examples=(Instance.create(classes=3, per_class=2, width=3, depth=2, lam_w=1e-2, lam_h=1e-2, activation="relu"),),
    ),
]


# ---------------------------------------------------------------------------------------------
# seeded wrong claims (mutants): each must be refuted by the default run
# ---------------------------------------------------------------------------------------------
def _mutant(base_id: str, tag: str, mutation: str, claim: Callable[[Instance], Prediction],
            examples: tuple[Instance, ...] | None = None) -> Theorem:
    base = by_id(base_id, THEOREMS)
    return replace(base, id=f"mutant:{base_id}:{tag}", title=f"MUTANT of {base_id}: {mutation}", claim=claim,
                   mutant_of=base_id, mutation=mutation, expected=Expected("refuted"),
                   examples=examples if examples is not None else base.examples)


def by_id(tid: str, registry: list[Theorem] | None = None) -> Theorem:
    reg = THEOREMS + MUTANTS if registry is None else registry
    for t in reg:
        if t.id == tid:
            return t
    raise InstanceError(f"unknown theorem id {tid!r}; known: {', '.join(t.id for t in (registry or THEOREMS))}")


MUTANTS: list[Theorem] = []
MUTANTS += [
    _mutant("dang2023.mse-deep", "b+1%", "the constant b off by 1%",
            functools.partial(C.dang_mse_deep, b_factor=mp.mpf("1.01"))),
    _mutant("dang2023.mse-deep", "exponent", "sigma_k^2 = N lambda_H x_k^(M+1) (wrong exponent)",
            functools.partial(C.dang_mse_deep, exponent_shift=1)),
    _mutant("dang2023.mse-deep", "smallest-root", "the smallest positive root instead of the largest",
            functools.partial(C.dang_mse_deep, rule="smallest"),
            examples=(Instance.create([6, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2),)),
    _mutant("dang2023.mse-deep", "1/N", "f* normalized with 1/N instead of 1/(2N)",
            functools.partial(C.dang_mse_deep, normalization=1)),
    _mutant("dang2023.mse-deep-bias", "bias0", "b* = 0 instead of 1/K",
            functools.partial(C.dang_mse_deep_bias, bias_value=0)),
    _mutant("dang2023.mse-deep-bias", "OF", "orthogonal frame instead of simplex ETF",
            functools.partial(C.dang_mse_deep_bias, geometry="OF")),
    _mutant("dang2023.ce-deep", "s*1.05", "s = sqrt(n lambda_W lambda_H) off by 5%",
            functools.partial(C.dang_ce_deep, s_factor=mp.mpf("1.05"))),
    _mutant("dang2023.ce-deep", "OF", "orthogonal frame instead of simplex ETF",
            functools.partial(C.dang_ce_deep, geometry="OF")),
    _mutant("tirer2022.mse-ufm", "ETF", "simplex ETF instead of orthogonal frame",
            functools.partial(C.tirer_mse_ufm, geometry="ETF")),
    _mutant("tirer2022.mse-ufm", "threshold", "the threshold c = K sqrt(n lambda_H lambda_W) off by 10%",
            functools.partial(C.tirer_mse_ufm, c_factor=mp.mpf("1.1"))),
    _mutant("tirer2022.mse-ufm-bias", "OF", "orthogonal frame instead of simplex ETF (with bias)",
            functools.partial(C.tirer_mse_ufm, geometry="OF", bias=True)),
]


# ---------------------------------------------------------------------------------------------
# loss variants (issue 6): the shipped examples and their mutants (proofs_checks.claims_variants);
# a user's own variants come through ``--theorems file.py`` (proofs_checks.variants)
# ---------------------------------------------------------------------------------------------
from proofs_checks import claims_variants as _claims_variants  # noqa: E402

THEOREMS += _claims_variants.theorems()
MUTANTS += _claims_variants.mutants()


def load_theorems(path: str | Path) -> list[Theorem]:
    """Theorems from a user's Python file: it must define ``THEOREMS`` (a list of ``Theorem``)."""
    p = Path(path)
    if not p.is_file():
        raise InstanceError(f"--theorems file {str(p)!r} does not exist")
    spec = importlib.util.spec_from_file_location(f"ncverify_user_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise InstanceError(f"cannot load {str(p)!r} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    extra = getattr(mod, "THEOREMS", None)
    if not isinstance(extra, (list, tuple)) or not all(isinstance(t, Theorem) for t in extra):
        raise InstanceError(f"{str(p)!r} must define THEOREMS = [Theorem(...), ...]")
    known = {t.id for t in THEOREMS + MUTANTS}
    for t in extra:
        if t.id in known:
            raise InstanceError(f"theorem id {t.id!r} from {str(p)!r} is already in the catalogue")
    return list(extra)
