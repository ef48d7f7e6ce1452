"""The extension path for new loss variants (the user API): one SymPy loss -> reduced problem, torch loss, theorem.

A variant author writes ONE Python file (see ``examples/ce_temperature.py`` and README.md, "Tutorial: checking a
claim about a new loss")::

    import sympy as sp
    from ncverify.proofs_checks.variants import LossVariant, Param, etf_claim, logsumexp, variant_theorem

    def ce_temperature(z, y, K, T):             # z: K x 1 sympy Matrix (z_1..z_K), y: class index 0..K-1
        return logsumexp([zc / T for zc in z]) - z[y] / T

    VARIANT = LossVariant("ce-temperature", loss="ce-temp", sympy_loss=ce_temperature,
                          params=(Param("T", lambda v: v > 0, "temperature T must be > 0", example=2.0),))
    THEOREMS = [variant_theorem(VARIANT, id="mine.ce-temperature", title="...", source="...",
                                claim=etf_claim(VARIANT))]

* ``LossVariant`` (``variants.loss``) records the loss; when a command needs it, it is registered with the
  numerics (a torch per-sample loss: built-in, registered, given, or translated by the explicit SymPy -> torch
  bridge, ``variants.bridge``) and with the theory engine (``theory.families.etf_margin``), after SymPy and torch
  were checked to agree on random logits.
* ``variant_theorem`` turns the variant and a claim into a catalogue ``Theorem`` (assumptions, a search domain
  aimed at both sides of the derived collapse threshold, examples, recorded verdict).
* ``etf_claim`` is the natural conjecture "every global minimizer is the simplex ETF with the margin that
  minimizes the reduced problem" (or with the margin the author states, ``margin=``).

Only the numerics can tell whether the ETF is optimal: the reduced problem is derived ON the ETF.
Symbols -> names: K classes (``K``), n samples per class, depth M, lambda_Wj = ``inst.lam_w[j-1]``,
lambda_H = ``inst.lam_h``, the margin a (logits a (e_y - 1/K 1)), L = (lambda_H prod_j lambda_Wj)^{1/(M+1)}.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import mpmath as mp

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import VariantError
from ncverify.proofs_checks.statement import (DPS, Expected, Theorem, assumptions, domain, etf_prediction, minimize_on_halfline,
                                     num)
from ncverify.proofs_checks.variants.loss import AGREEMENT_RTOL, Agreement, LossVariant, Param, exact_param, logsumexp, softmax
from ncverify.theory.prediction import Prediction

CLAIM_DPS = DPS
VARIANT_RATIOS = (0.8, 0.95, 1.05, 1.25)


_MARGIN_LOSS: dict[tuple, tuple[Callable, Callable]] = {}


def _margin_loss(variant: LossVariant, K: int, params: dict) -> tuple[Callable, Callable]:
    """lbar(a) = (1/K) sum_y l(a (e_y - 1/K 1), y) lambdified to mpmath and to numpy, once per (loss, K, params)."""
    import sympy as sp

    from ncverify.theory.families.etf_margin import logit_symbols

    key = (variant.name, K, tuple(sorted((k, str(v)) for k, v in params.items())))
    if key not in _MARGIN_LOSS:
        exprs = variant.expressions(K, params)
        z = logit_symbols(K)
        aa = sp.Symbol("a", real=True)
        per = [e.xreplace({z[c]: (aa * sp.Rational(K - 1, K) if c == y else -aa / K) for c in range(K)})
               for y, e in enumerate(exprs)]
        lbar = sp.Add(*per) / K
        _MARGIN_LOSS[key] = (sp.lambdify(aa, lbar, modules="mpmath"), sp.lambdify(aa, lbar, modules="numpy"))
    return _MARGIN_LOSS[key]


def margin_objective(variant: LossVariant, inst: Instance) -> Callable[[mp.mpf], mp.mpf]:
    """g(a) = (1/K) sum_y l(a (e_y - 1/K 1), y) + ((M+1)/2)(K-1) lt (a sqrt n)^{2/(M+1)}, claim-side (mpmath,
    straight from the SymPy loss, no simplification). ``g.vectorized`` is the same g in float64 on numpy arrays
    (for the dense grid of ``minimize_on_halfline``)."""
    K, n, M = inst.K, inst.n, inst.depth
    fl, fl_np = _margin_loss(variant, K, variant.param_values(inst))
    with mp.workdps(CLAIM_DPS):
        lt = (num(inst.lam_h) * mp.fprod(num(v) for v in inst.lam_w)) ** (mp.mpf(1) / (M + 1))
    coef = float(mp.mpf(M + 1) / 2 * (K - 1) * lt)

    def g(t: mp.mpf) -> mp.mpf:
        with mp.workdps(CLAIM_DPS):
            return fl(t) + mp.mpf(M + 1) / 2 * (K - 1) * lt * (t * mp.sqrt(n)) ** (mp.mpf(2) / (M + 1))

    def g_float(t):  # numpy arrays
        return fl_np(t) + coef * (t * n ** 0.5) ** (2 / (M + 1))
    g.vectorized = g_float  # type: ignore[attr-defined]
    return g


def etf_claim(variant: LossVariant, margin: Callable[[Instance], Any] | None = None,
              statement: str = "") -> Callable[[Instance], Prediction]:
    """The claim "every global minimizer is the simplex ETF (NC1, self-duality, zero bias) with margin a".

    margin(inst) -> a: the margin as the author states it (e.g. a closed form); default: the natural
    conjecture "a minimizes the reduced problem g(a) on the ETF", computed claim-side by a dense grid plus
    golden-section search (``statement.minimize_on_halfline``), independently of the theory engine's roots.
    """
    def claim(inst: Instance) -> Prediction:
        with mp.workdps(CLAIM_DPS):
            g = margin_objective(variant, inst)
            a = mp.mpf(margin(inst)) if margin is not None else minimize_on_halfline(g, upper=mp.mpf(60))
            a = max(a, mp.mpf(0))
            return etf_prediction(inst, a, g(a), notes=[statement or f"claim: the {variant.name} minimizer is the "
                                                        "simplex ETF (NC1, self-duality, zero bias) with the stated margin"])
    return claim


def variant_theorem(variant: LossVariant, *, id: str, title: str, source: str, claim: Callable[[Instance], Prediction],
                    provenance: str = "", expected: Any = None, param_values: Sequence[Sequence[float]] | None = None,
                    examples: Sequence[Instance] | None = None, depths: Sequence[int] = (1,), bias: bool = False,
                    lam_b: Sequence[float] = (0.0,), K=(2, 10), n=(1, 50), lam=(1e-4, 1.0),
                    notes: Sequence[str] = (), shape_claims: Sequence[str] = ("nc1", "self_duality")) -> Theorem:
    """A catalogue ``Theorem`` for a loss variant on the simplex-ETF geometry.

    param_values: parameter tuples the search draws from (default: the examples of the ``Param``s);
    examples: instances always checked first (default: K = 3, n = 2, d = 3, lambda = 1e-2, first parameters);
    expected: the recorded ``Expected`` (default: verified); depths / bias / lam_b / K / n / lam: the domain of
    the search (log-uniform lambdas in ``lam``), half of the draws aimed at the derived collapse thresholds.
    """
    pv = [tuple(p) for p in (param_values or [tuple(p.example for p in variant.params)])]
    losses = [variant.loss_name(*p) for p in pv]
    if examples is None:
        examples = (Instance.create(classes=3, per_class=2, width=3, depth=depths[0], lam_w=1e-2, lam_h=1e-2,
                                    loss=losses[0], bias=bias, lam_b=lam_b[0] if bias else 0.0),)
    penalty = " + lambda_b/2 ||b||^2" if bias else ""
    return Theorem(
        id=id, title=title, source=source,
        provenance=provenance or "the natural conjecture (ETF with the derived scale); stated in the variant file",
        family=variant.name,
        objective=(f"(1/N) sum_i l(W_M...W_1 h_i{' + b' if bias else ''}, y_i) + sum_j lambda_Wj/2 ||W_j||_F^2 + "
                   f"lambda_H/2 ||H||_F^2{penalty};  l = {variant.description} (--loss {variant.loss}"
                   + (":" + ",".join(p.name.upper() for p in variant.params) if variant.params else "") + ")"),
        assumptions=("balanced", "d >= K", f"M in {list(depths)}", "bias with lambda_b > 0" if bias else "no bias"),
        validator=assumptions(id, loss=variant.loss, balanced=True, depths=depths, bias=bias,
                              lam_b="positive" if bias else None),
        strategy=domain(variant.name, losses=tuple(losses), balanced=True, depths=tuple(depths), K=tuple(K), n=tuple(n),
                        bias=bias, lam_b=tuple(lam_b), lam=tuple(lam), per_layer=False, ratios=VARIANT_RATIOS),
        claim=claim, expected=expected if expected is not None else Expected("verified"),
        shape_claims=tuple(shape_claims), examples=tuple(examples),
        defaults={"loss": losses[0], **({"bias": True} if bias else {})},
        notes=tuple(notes) + (f"torch loss: {variant.torch_origin}; SymPy vs torch agreement checked on random logits "
                              f"at registration (tolerance {AGREEMENT_RTOL:g})",),
        variant=variant)


def __getattr__(name: str) -> Any:
    """The bridge's names (``sympy_to_torch``, ``BridgeError``) load SymPy and torch code: only on demand."""
    if name in ("sympy_to_torch", "BridgeError"):
        from ncverify.proofs_checks.variants import bridge

        return getattr(bridge, name)
    raise AttributeError(f"module 'ncverify.proofs_checks.variants' has no attribute {name!r}")


__all__ = ["LossVariant", "Param", "Agreement", "AGREEMENT_RTOL", "VariantError", "logsumexp", "softmax",
           "exact_param", "etf_claim", "etf_prediction", "margin_objective", "variant_theorem", "CLAIM_DPS",
           "sympy_to_torch", "BridgeError"]
