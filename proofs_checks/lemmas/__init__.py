"""The lemma registry: the proof steps behind the catalogue's theorems, each stated precisely, checked
on its own, and given a verdict.

A ``Lemma`` is frozen: id, title, statement (with its quantifiers and assumptions), ``used_by`` (the
catalogue theorem ids whose proofs use it), its checks (a function ``Ctx -> list[Outcome]``; symbolic
where SymPy decides it, property-based otherwise: random instances plus an adversarial search that
locally optimizes the violation), and the recorded expected verdict.

Verdicts: "holds" (every check passed on every try), "violated" (some check failed beyond its derived
float64 tolerance or SymPy found a nonzero difference; the smallest counterexample is reported with
its numbers), "inconclusive" (a check could not be settled, and why). Seeded wrong lemmas (a wrong
constant or exponent, a reversed inequality, a wrong balancedness statement) run through the same
checks and must come out "violated": a checker never seen to fail is not a checker.

The candidate ReLU step ||relu(X)||_* <= ||X||_* is recorded as "violated": it is false (smallest
counterexample found: 3 x 3). ``tirer2022.extended-relu``'s proof cannot rest on it.

Run: ``run_lemmas(budget, seed, only)`` or ``ncverify lemmas [--json] [--budget B] [--seed S] [--only IDS]``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ncverify.numerics.problem import InstanceError
from ncverify.proofs_checks.lemmas import ce_geometry as CG
from ncverify.proofs_checks.lemmas import reduction as RD
from ncverify.proofs_checks.lemmas import spectral as SP
from ncverify.proofs_checks.lemmas import stationarity as ST
from ncverify.proofs_checks.lemmas.core import Counterexample, Ctx, LemmaBudget, Outcome, single_thread

LEMMA_VERDICTS = ("holds", "violated", "inconclusive")

ALL_THEOREMS = ("dang2023.mse-deep", "dang2023.mse-deep-bias", "dang2023.ce-deep", "tirer2022.mse-ufm",
                "tirer2022.mse-ufm-bias", "tirer2022.extended-linear", "tirer2022.extended-relu", "ce-deep-etf-boundary")
CE_DEEP_THEOREMS = ("dang2023.ce-deep", "ce-deep-etf-boundary")
MSE_THEOREMS = ("dang2023.mse-deep", "dang2023.mse-deep-bias", "tirer2022.mse-ufm", "tirer2022.mse-ufm-bias",
                "tirer2022.extended-linear")


@dataclass(frozen=True)
class Lemma:
    """One proof step. ``checks(ctx)`` returns the outcomes; ``expected`` is the recorded verdict;
    ``finding`` explains a recorded violation; ``wrong_of``/``mutation`` mark a seeded wrong lemma."""

    id: str
    title: str
    statement: str
    used_by: tuple[str, ...]
    checks: Callable[[Ctx], list[Outcome]]
    expected: str = "holds"
    methods: str = ""
    finding: str = ""
    wrong_of: str | None = None
    mutation: str = ""

    @property
    def is_wrong(self) -> bool:
        return self.wrong_of is not None


@dataclass
class LemmaResult:
    lemma: Lemma
    verdict: str
    reason: str
    outcomes: list[Outcome] = field(default_factory=list)
    counterexample: Counterexample | None = None
    seconds: float = 0.0
    budget: str = "default"
    seed: int = 0

    @property
    def reproduce(self) -> str:
        return f"ncverify lemmas --only {self.lemma.id} --budget {self.budget} --seed {self.seed}"

    def to_json(self) -> dict:
        lm = self.lemma
        return {"id": lm.id, "title": lm.title, "statement": lm.statement, "used_by": list(lm.used_by),
                "verdict": self.verdict, "expected_verdict": lm.expected, "matches_record": self.verdict == lm.expected,
                "reason": self.reason, "methods": lm.methods, "finding": lm.finding if self.verdict == "violated" else "",
                "wrong_of": lm.wrong_of, "mutation": lm.mutation,
                "counterexample": None if self.counterexample is None else self.counterexample.to_json(),
                "evidence": [o.to_json() for o in self.outcomes], "seconds": round(self.seconds, 2),
                "reproduce": self.reproduce}


# =============================================================================================
# the registry
# =============================================================================================
_FACT_STATEMENT = (
    "For every m >= 1, lambda_1, ..., lambda_m > 0 and Z in R^{p x q}: over all factorizations A_m ... A_1 = Z "
    "with A_i in R^{d_i x d_{i-1}} (d_0 = q, d_m = p, intermediate widths d_i >= rank Z), "
    "min sum_i lambda_i/2 ||A_i||_F^2 = {c}(m/2) (prod_i lambda_i)^{1/m} sum_j sigma_j(Z)^{<e>/m}; the minimum is "
    "attained exactly at the balanced aligned factorizations A_i = sqrt(Lbar/lambda_i) Q_i Sigma^{1/m} Q_{i-1}^T "
    "(Z = U Sigma V^T, Q_0 = V, Q_m = U, Q_i with orthonormal columns, Lbar = (prod lambda_i)^{1/m}); "
    "for m = 2 it is sqrt(lambda_1 lambda_2) ||Z||_*.")


def _fact_statement(c: str = "", e: str = "2") -> str:
    """The factorization identity's statement with constant prefix ``c`` and exponent numerator ``e``."""
    return _FACT_STATEMENT.replace("{c}", c).replace("<e>", e)


LEMMAS: list[Lemma] = [
    Lemma(
        id="factorization-identity", title="Cheapest factorization of a fixed product (Schatten quasi-norm identity)",
        statement=_fact_statement(),
        used_by=ALL_THEOREMS,
        checks=lambda ctx: SP.check_factorization(SP.FactorizationClaim(), ctx),
        methods="symbolic (per-mode cost vs theory.reduced.eliminate_factorization; m = 2 nuclear norm; m = 2 sum of "
                "squares); constructed balanced factorizations (==); random factorizations (>=); L-BFGS descent on "
                "the penalty over factorizations of a fixed Z (A_1 = B^+ Z) never below the claimed minimum"),
    Lemma(
        id="balancedness", title="Every critical point of the deep linear objectives is balanced",
        statement=("For the deep linear objectives (MSE with or without an unregularized bias, CE with lambda_b >= 0; "
                   "any depth M >= 1, counts, width; also the extended UFM with s = identity) and EVERY point: "
                   "W_{j+1}^T dW_{j+1} - dW_j W_j^T = lambda_{W_{j+1}} W_{j+1}^T W_{j+1} - lambda_{W_j} W_j W_j^T "
                   "(j = 1..M-1) and W_1^T dW_1 - dH H^T = lambda_{W_1} W_1^T W_1 - lambda_H H H^T. Hence at every "
                   "critical point lambda_{W_{j+1}} W_{j+1}^T W_{j+1} = lambda_{W_j} W_j W_j^T and "
                   "lambda_{W_1} W_1^T W_1 = lambda_H H H^T."),
        used_by=("dang2023.mse-deep", "dang2023.mse-deep-bias", "dang2023.ce-deep", "tirer2022.mse-ufm",
                 "tirer2022.mse-ufm-bias", "tirer2022.extended-linear"),
        checks=lambda ctx: ST.check_balancedness(ctx),
        methods="symbolic (theory.foc.check_balancedness: MSE, MSE + bias, CE + bias, s = identity); numeric residuals "
                "at L-BFGS end points vs the bound ||W_{j+1}||_2 ||dW_{j+1}||_F + ||dW_j||_F ||W_j||_2 the identity gives"),
    Lemma(
        id="balancedness-relu-diagonal", title="Across a ReLU only the diagonal of the balancedness identity survives",
        statement=("For the extended UFM W_2 relu(W_1 H_1) (MSE), at every point where no pre-activation vanishes: "
                   "e_i^T (W_2^T dW_2 - dW_1 W_1^T) e_i = lambda_{W2} ||W_2 e_i||^2 - lambda_{W1} ||e_i^T W_1||^2 "
                   "(i = 1..d), so at critical points lambda_{W2} ||W_2 e_i||^2 = lambda_{W1} ||e_i^T W_1||^2; "
                   "the full matrix identity does NOT hold across the ReLU (and W_1^T W_1 vs H_1 H_1^T is as in the "
                   "linear case)."),
        used_by=("tirer2022.extended-relu",),
        checks=lambda ctx: ST.check_relu_balancedness(ctx),
        methods="symbolic (theory.foc: full identity fails, diagonal holds); numeric diagonal residuals at L-BFGS end "
                "points of ReLU instances"),
    Lemma(
        id="mse-feature-elimination", title="Elimination of H for fixed weights (MSE)",
        statement=("For the MSE objective with fixed W = W_M ... W_1 in R^{K x d} (any d, any rank) and fixed b in R^K "
                   "(or b = 0), the map H -> 1/(2N) ||W H + b 1_N^T - Y||_F^2 + lambda_H/2 ||H||_F^2 (lambda_H > 0) is "
                   "lambda_H-strongly convex with unique minimizer H* = W^T (W W^T + N lambda_H I_K)^{-1} (Y - b 1^T) "
                   "= (W^T W + N lambda_H I_d)^{-1} W^T (Y - b 1^T) and partial minimum "
                   "(lambda_H/2) tr((Y - b 1^T)^T (W W^T + N lambda_H I_K)^{-1} (Y - b 1^T)); bias-free this is "
                   "(lambda_H/2) tr((W W^T + N lambda_H I_K)^{-1} diag(n_1, ..., n_K)). (Derivation: the residual at H* "
                   "is -N lambda_H A^{-1} T, A = W W^T + N lambda_H I, T = Y - b 1^T; data term (N lambda_H^2/2) "
                   "tr(T^T A^{-2} T) plus penalty (lambda_H/2) tr(T^T A^{-1} T) - (N lambda_H^2/2) tr(T^T A^{-2} T).)"),
        used_by=MSE_THEOREMS,
        checks=lambda ctx: ST.check_feature_elimination(ctx),
        methods="symbolic (dH = 0 at H*; f(W, H*) equals the closed form and the push-through identity, generic W, b); "
                "constructed (float64 stationarity and value); random H; L-BFGS descent on H"),
    Lemma(
        id="bias-elimination", title="Elimination of an unregularized bias, and the centering it implies",
        statement=("(i) For fixed outputs Z = W_M ... W_1 H in R^{K x N}, b -> 1/(2N) ||Z + b 1_N^T - Y||_F^2 is "
                   "minimized exactly at b* = (Y - Z) 1_N / N with value 1/(2N) ||(Z - Y) C||_F^2, C = I_N - 1 1^T/N. "
                   "(ii) Centering: (Z C - Y) C = (Z - Y) C and ||H C||_F^2 = ||H||_F^2 - ||H 1_N||^2/N, so replacing H by "
                   "H C keeps the eliminated data term and lowers the penalty unless H 1_N = 0. At every critical point "
                   "of the MSE objective with an unregularized bias (any depth, any counts, lambda_H > 0): "
                   "H 1_N = (dH 1_N - W^T db)/lambda_H = 0 (zero global feature mean) and b = Y 1_N / N = (n_1..n_K)/N "
                   "(= 1/K balanced)."),
        used_by=("dang2023.mse-deep-bias", "tirer2022.mse-ufm-bias"),
        checks=lambda ctx: ST.check_bias_elimination(ctx),
        methods="symbolic (db = 0 at b*, partial minimum, C^2 = C, ||H C||^2 identity); constructed; random b; "
                "centering at L-BFGS end points vs the bounds the gradient norms allow"),
    Lemma(
        id="von-neumann-trace", title="von Neumann's trace inequality",
        statement=("For all p, q >= 1 and A, B in R^{p x q}: |tr(A^T B)| <= sum_{i=1}^{min(p,q)} sigma_i(A) sigma_i(B) "
                   "(singular values sorted decreasingly), with equality when A = U diag(a) V^T and B = U diag(b) V^T "
                   "share singular vectors in the same order. (SymPy cannot decide it in general: property-based.)"),
        used_by=MSE_THEOREMS,
        checks=lambda ctx: SP.check_von_neumann(ctx),
        methods="random pairs (Gaussian, rank one, nearly aligned); Adam ascent of (|tr| - sum sigma sigma)/(||A|| ||B||) "
                "from 1 x 1 upward; equality at a common SVD"),
    Lemma(
        id="mirsky-alignment", title="Mirsky's inequality: aligning Z with the labels (largest with largest)",
        statement=("For all Z, Y in R^{p x q}: ||Z - Y||_F^2 >= sum_i (sigma_i(Z) - sigma_i(Y))^2 (both sorted "
                   "decreasingly), with equality when Z and Y share singular vectors in the same order. In the "
                   "reduction (Y = labels, sigma(Y) = sqrt(n_k)) the data term of Z is therefore smallest when Z is "
                   "aligned with Y and its k-th largest singular value is paired with the k-th largest sqrt(n_k). "
                   "(A consequence of von Neumann's inequality.)"),
        used_by=MSE_THEOREMS,
        checks=lambda ctx: SP.check_mirsky(ctx),
        methods="random pairs (half with one-hot label matrices); Adam ascent of the normalized violation; equality "
                "at a common SVD"),
    Lemma(
        id="schur-horn-majorization", title="Schur's majorization (the Schur-Horn bound) and the rearrangement it gives",
        statement=("For every symmetric S in R^{K x K} with eigenvalues mu_1 >= ... >= mu_K and every orthogonal U: the "
                   "diagonal delta = diag(U^T S U) is majorized by mu: for k = 1..K the sum of the k largest entries of "
                   "delta is <= mu_1 + ... + mu_k (with equality at k = K). Consequently, for D = diag(d) with "
                   "d_1 >= ... >= d_K: tr(D U^T S U) <= sum_i d_i mu_i (Abel summation), with equality when U^T S U is "
                   "diagonal with decreasing entries. Used to decide which classes stay nonzero under imbalance: "
                   "the Gram W W^T is diagonal in the class basis (GOF) and its larger entries go to the larger n_k."),
        used_by=("dang2023.mse-deep",),
        checks=lambda ctx: SP.check_schur(ctx),
        methods="random symmetric (and PSD) S with Haar U; Adam ascent over U = exp(skew) and S, both parts"),
    Lemma(
        id="class-selection-monotone", title="Which classes stay nonzero: the per-mode minimizer is monotone in n_k",
        statement=("For phi(z; y) = (y - z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)} on z >= 0 (the per-mode problem of the "
                   "reduction; y = sqrt(n_k)), d^2 phi/(dz dy) = -1/N < 0, so (Topkis) every global minimizer z*(y_1) is "
                   "<= every global minimizer z*(y_2) when y_1 < y_2. Hence under imbalance the classes kept nonzero "
                   "are exactly those with the largest n_k (a threshold in n_k): if class k is nonzero and n_l >= n_k, "
                   "class l is nonzero."),
        used_by=("dang2023.mse-deep",),
        checks=lambda ctx: RD.check_class_selection(ctx),
        methods="symbolic cross derivative (theory.reduced.mode_objective, M = 1..4); numeric global minimizers at "
                "random label strengths and at pairs straddling the jump of z*(y)"),
]

#: the reductions recorded as violated (on the counterexamples their theorems record), with the finding
REDUCTION_FINDINGS = {
    "extended-relu": (
        "FALSE near the linear model's collapse threshold: the multi-start solver reaches points of the ReLU objective "
        "below the linear model's reduced minimum on the catalogue examples of tirer2022.extended-relu (K = 7, n = 1, "
        "d = 8, lambda_W = 1, lambda_H = 1.73105e-4: 0.4915887 < 0.4935897; K = 8, n = 1, d = 8, lambdas 0.14, 0.14, "
        "0.0061658: 0.4960063 < 0.4987438), the counterexamples of that theorem; away from the threshold the "
        "reduction held on every instance checked"),
    "ce-deep": (
        "FALSE in a narrow band for K = 4, M >= 2 just past the recorded crossing into total collapse: on "
        "ce-deep-etf-boundary's recorded counterexample (K = 4, n = 1, d = 4, M = 4, all lambdas 0.1314) the solver "
        "reaches 1.384186 < log 4 = 1.386294, the minimum of the reduced code problem (theory.ce_codes): the codes "
        "miss a rank-1 geometry of the class-mean logits (two antipodal pairs on one axis, unequal amplitudes)"),
}

for _key, _fam in RD.FAMILIES.items():
    _what = {"mse-deep": "the deep linear bias-free MSE objective (any counts)",
             "mse-deep-bias": "the deep linear MSE objective with an unregularized bias (balanced)",
             "ce-deep-etf": "the deep linear CE objective (balanced) where the simplex ETF wins (M = 1, or inside the "
                            "recorded ETF region of theory/golden/ce_phase.json), to the ETF margin problem",
             "ce-deep": "the deep linear CE objective (balanced, no bias) to the K x K logit problem and its codes",
             "extended-linear": "the extended UFM with s = identity",
             "extended-relu": "the extended UFM with s = ReLU (to the linear model's scalar problem)"}[_key]
    LEMMAS.append(Lemma(
        id=f"reduction:{_key}", title=f"Reduction of {_what} to its scalar problem",
        statement=(f"For every instance of {_what} (d >= K, all lambdas > 0): the global minimum of the full objective "
                   f"equals the minimum f* of the scalar (reduced) problem that theory.derive('{_fam.derive_family}') "
                   "solves; the aligned balanced point built from the derivation (theory.construct) has objective "
                   "exactly f* and zero gradient, and no point has a lower objective."),
        used_by=_fam.theorems, checks=(lambda ctx, k=_key: RD.check_reduction(k, ctx)),
        methods="symbolic (SymPy proof at the exact constructed point of a catalogue example); float64 constructed "
                "point; random points and perturbations of the constructed point; seeded multi-start L-BFGS",
        **({"expected": "violated", "finding": REDUCTION_FINDINGS[_key]} if _key in REDUCTION_FINDINGS else {})))

LEMMAS.append(Lemma(
    id="ce-class-averaging", title="Class averaging does not increase the singular values or the CE of the logits",
    statement=("For all K >= 2, n >= 1 and Z in R^{K x Kn} (n columns per class) with P the class-averaging projector "
               "(each column replaced by its class mean): sigma_i(Z P) <= sigma_i(Z) for every i (P is an orthogonal "
               "projector) and (1/N) sum_i CE(z_i P, y_i) <= (1/N) sum_i CE(z_i, y_i) (CE is convex). Hence the deep CE "
               "objective has a minimizer with NC1 and reduces to the K x K class-mean logits Zbar with the penalty "
               "((M+1)/2) L n^(1/(M+1)) sum_i sigma_i(Zbar)^(2/(M+1))."),
    used_by=CE_DEEP_THEOREMS, checks=lambda ctx: CG.check_class_averaging(ctx),
    methods="random logit matrices (Gaussian at scales 1e-2..1e2, and near-collapsed: class means plus small noise)"))
LEMMAS.append(Lemma(
    id="ce-codes-global", title="The least logit code is the global minimum of the reduced deep CE problem",
    statement=("For K = 3..6, M = 1..4 and ell in [1e-4, 0.2]: min over K x K Zbar of F(Zbar) = (1/K) sum_k CE(zbar_k, "
               "k) + ((M+1)/2) ell sum_i sigma_i(Zbar)^(2/(M+1)) equals the least value over the codes of "
               "theory.ce_codes and total collapse (log K). Each code value is the value of an explicit Zbar, so the least one "
               "is attained; checked: the reduced numeric search (numerics.ce_reduced, the factored K x K problem from "
               "the start portfolio) never ends below it (how often it reaches it is reported)."),
    used_by=CE_DEEP_THEOREMS, checks=lambda ctx: CG.check_codes_vs_search(ctx),
    methods="random (K, M, ell) plus the recorded counterexample of dang2023.ce-deep; batched multi-start L-BFGS on "
            "the factored reduced problem; no end point below the least code (at ce_reduced.SAME_POINT)"))
LEMMAS.append(Lemma(
    id="relu-nuclear-norm", title="Candidate step of the ReLU model's proof: the nuclear norm does not increase under ReLU",
    statement=("For all p, q >= 1 and X in R^{p x q}: ||relu(X)||_* <= ||X||_*, relu applied entrywise. (Candidate step "
               "for the ReLU model: with the m = 2 factorization identity it would give lambda_W1/2 ||W_1||^2 + "
               "lambda_H1/2 ||H_1||^2 >= sqrt(lambda_W1 lambda_H1) ||relu(W_1 H_1)||_*, i.e. the ReLU model's minimum "
               "would be at least the linear model's.)"),
    used_by=("tirer2022.extended-relu",),
    checks=lambda ctx: SP.check_relu_nuclear(ctx), expected="violated",
    methods="random matrices (Gaussian; PSD Gram matrices); the circulant Gram matrices of equally spaced planar unit "
            "vectors; Adam ascent of (||relu X||_* - ||X||_*)/||X||_F from 1 x 1 upward; counterexample simplified to "
            "entries in {-1, 0, 1} and re-checked at 50 digits",
    finding=("FALSE. Smallest counterexample found is 3 x 3 (the adversarial search found none at the smaller sizes "
             "1 x 1 ... 2 x 3, nor at 1 x 4, 2 x 4 at the default budget): X = [[1, 1, 0], [1, 0, 1], [0, 1, -1]] has "
             "eigenvalues 0, +-sqrt(3), so ||X||_* = 2 sqrt(3) "
             "= 3.4641016151..., while relu(X) = [[1, 1, 0], [1, 0, 1], [0, 1, 0]] has characteristic polynomial "
             "x^3 - x^2 - 2x + 1 (roots 2cos(pi/7), -2cos(2pi/7), 2cos(3pi/7)), so ||relu(X)||_* = 2cos(pi/7) + "
             "2cos(2pi/7) + 2cos(3pi/7) = 3.4939592074... > "
             "||X||_*. The circulant Gram matrix of 7 equally spaced unit vectors is another (7 x 7: 7.4939... > 7). "
             "A proof of tirer2022.extended-relu (the ReLU model's minimum equals the linear model's) cannot bound the "
             "ReLU features' nuclear norm by the pre-activations' this way; the theorem itself may still hold (its "
             "catalogue check is numeric), but this step needs a different argument."),
))

# seeded wrong lemmas: each must be reported "violated" with a counterexample
WRONG_LEMMAS: list[Lemma] = [
    Lemma(id="wrong:factorization-identity:m/3", title="WRONG: constant m/3 instead of m/2",
          statement=_fact_statement(c="(2/3) "), used_by=ALL_THEOREMS, expected="violated",
          checks=lambda ctx: SP.check_factorization(SP.FactorizationClaim(2 / 3, 2, "2/3"), ctx),
          wrong_of="factorization-identity", mutation="(m/3) instead of (m/2)"),
    Lemma(id="wrong:factorization-identity:+1%", title="WRONG: constant off by 1%",
          statement=_fact_statement(c="1.01 "), used_by=ALL_THEOREMS, expected="violated",
          checks=lambda ctx: SP.check_factorization(SP.FactorizationClaim(1.01, 2, "101/100"), ctx),
          wrong_of="factorization-identity", mutation="1.01 (m/2) instead of (m/2)"),
    Lemma(id="wrong:factorization-identity:exponent", title="WRONG: exponent 1/m instead of 2/m",
          statement=_fact_statement(e="1"), used_by=ALL_THEOREMS, expected="violated",
          checks=lambda ctx: SP.check_factorization(SP.FactorizationClaim(1.0, 1, "1"), ctx),
          wrong_of="factorization-identity", mutation="sigma^{1/m} instead of sigma^{2/m}"),
    Lemma(id="wrong:ce-class-averaging:reversed", title="WRONG: class averaging increases the singular values",
          statement="For all Z in R^{K x Kn}: sigma_i(Z P) >= sigma_i(Z).", used_by=("dang2023.ce-deep",),
          expected="violated", checks=lambda ctx: CG.check_class_averaging(ctx, reversed_=True),
          wrong_of="ce-class-averaging", mutation="the inequality reversed"),
    Lemma(id="wrong:ce-codes-global:etf", title="WRONG: the simplex ETF is the reduced global minimizer",
          statement=("For all K, M, ell: the simplex ETF (or total collapse) minimizes the reduced deep CE problem "
                     "(dang2023.ce-deep's claim at the reduced level)."), used_by=("dang2023.ce-deep",),
          expected="violated", checks=lambda ctx: CG.check_codes_vs_search(ctx, etf_only=True),
          wrong_of="ce-codes-global", mutation="the least code replaced by the simplex ETF"),
    Lemma(id="wrong:von-neumann-trace:reversed", title="WRONG: von Neumann with >=",
          statement="For all A, B in R^{p x q}: |tr(A^T B)| >= sum_i sigma_i(A) sigma_i(B).", used_by=MSE_THEOREMS,
          expected="violated", checks=lambda ctx: SP.check_von_neumann(ctx, reversed_=True),
          wrong_of="von-neumann-trace", mutation="the inequality reversed"),
    Lemma(id="wrong:balancedness:transpose", title="WRONG: balancedness with W_j^T W_j and lambda_H/2",
          statement=("At every critical point of the deep linear objectives: lambda_{W_{j+1}} W_{j+1}^T W_{j+1} = "
                     "lambda_{W_j} W_j^T W_j and lambda_{W_1} W_1^T W_1 = (lambda_H/2) H H^T."),
          used_by=("dang2023.mse-deep",), expected="violated", checks=lambda ctx: ST.check_balancedness(ctx, wrong=True),
          wrong_of="balancedness", mutation="W_j^T W_j in place of W_j W_j^T; lambda_H/2 in place of lambda_H"),
]


def by_id(lid: str) -> Lemma:
    for lm in LEMMAS + WRONG_LEMMAS:
        if lm.id == lid:
            return lm
    raise InstanceError(f"unknown lemma id {lid!r}; known: {', '.join(l.id for l in LEMMAS + WRONG_LEMMAS)}")


def select(only: Iterable[str] | None = None, theorems: Iterable[str] | None = None,
           include_wrong: bool = True) -> list[Lemma]:
    """The lemmas to run. ``only``: lemma ids or theorem ids (a theorem id selects the lemmas its proof
    uses); ``theorems``: restrict to lemmas used by these theorem ids. Wrong lemmas come with the lemma
    they mutate (or when named)."""
    pool = LEMMAS + (WRONG_LEMMAS if include_wrong else [])
    chosen = list(pool)
    if only:
        from ncverify.proofs_checks.catalogue import THEOREMS

        names = [s.strip() for s in only if s.strip()]
        known_t = set(ALL_THEOREMS) | {t.id for t in THEOREMS}
        for n in names:
            if n not in known_t and not any(l.id == n for l in LEMMAS + WRONG_LEMMAS):
                raise InstanceError(f"--only: {n!r} is neither a lemma id nor a theorem id; lemma ids: "
                                    f"{', '.join(l.id for l in LEMMAS + WRONG_LEMMAS)}")
        want = set(names)
        base = {l.id for l in LEMMAS if l.id in want or want & set(l.used_by)}
        chosen = [l for l in pool if l.id in want or (not l.is_wrong and l.id in base)
                  or (l.is_wrong and l.wrong_of in base)]
    if theorems is not None:
        th = set(theorems)
        base = {l.id for l in LEMMAS if th & set(l.used_by)}
        chosen = [l for l in chosen if (l.id in base) or (l.is_wrong and l.wrong_of in base)]
    return chosen


# =============================================================================================
# running
# =============================================================================================
def _ce_key(ce: Counterexample) -> tuple:
    numeric = ce.lhs is not None
    return (0 if numeric else 1, math.prod(int(x) for x in ce.size) if ce.size else 0, tuple(ce.size))


def decide(lemma: Lemma, outcomes: list[Outcome]) -> tuple[str, str, Counterexample | None]:
    """(verdict, reason, counterexample) from the outcomes (see the module docstring)."""
    fails = [o for o in outcomes if o.status == "fail"]
    if fails:
        ces = [o.counterexample for o in fails if o.counterexample is not None]
        ce = min(ces, key=_ce_key) if ces else None
        which = "; ".join(f"{o.kind}: {o.check}" for o in fails[:4])
        return "violated", (ce.summary() if ce else "a check failed") + f" [failed checks: {which}]", ce
    unsettled = [o for o in outcomes if o.status == "unsettled"]
    passed = [o for o in outcomes if o.status == "pass"]
    if unsettled or not passed:
        return "inconclusive", "; ".join(f"{o.check}: {o.detail}" for o in unsettled[:3]) or "no check ran", None
    tries = sum(o.tries for o in passed)
    kinds = sorted({o.kind for o in passed})
    ratios = [o.error / o.tolerance for o in passed if o.error is not None and o.tolerance and o.kind != "symbolic"]
    worst = f"; worst error/tolerance {max(ratios):.2g}" if ratios else ""
    return "holds", (f"{len(passed)} check{'s' if len(passed) != 1 else ''} passed ({', '.join(kinds)}; "
                     f"{tries} instances){worst}"), None


def run_lemma(lemma: Lemma, ctx: Ctx) -> LemmaResult:
    """Run one lemma's checks (an exception makes it inconclusive, never crashes the run)."""
    t0 = time.perf_counter()
    try:
        outcomes = lemma.checks(ctx)
    except Exception as exc:  # a crash in a check is reported, not hidden
        outcomes = [Outcome("running the checks", "error", "unsettled", detail=f"{type(exc).__name__}: {exc}")]
    verdict, reason, ce = decide(lemma, outcomes)
    return LemmaResult(lemma, verdict, reason, outcomes, ce, time.perf_counter() - t0, ctx.budget.name, ctx.seed)


def run_lemmas(budget: str = "default", seed: int = 0, only: Iterable[str] | None = None,
               theorems: Iterable[str] | None = None, include_wrong: bool = True,
               progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Verdicts of the selected lemmas and seeded wrong lemmas. Returns
    {"budget", "seed", "seconds", "lemmas": [...], "wrong_lemmas": {"caught", "total", "missed", "results"},
     "findings": [...], "changed_verdicts": ["lemma:<id>", ...]}."""
    t0 = time.perf_counter()
    LemmaBudget.of(budget)  # the budget name checked before any work
    todo = select(only, theorems, include_wrong)
    results: list[LemmaResult] = []
    for i, lm in enumerate(todo):
        if progress:
            progress(f"lemma {lm.id}", i, len(todo))
        results.append(lemma_task(lm.id, budget, seed))
    if progress:
        progress("lemmas done", len(todo), len(todo))
    return summarize(results, budget, seed, time.perf_counter() - t0)


def lemma_task(lemma_id: str, budget: str, seed: int, progress: Callable[[str], None] | None = None) -> LemmaResult:
    """One lemma's verdict (a task of ``ncverify run``: ``proofs_checks.distributed``), torch on one thread; its
    own seeded streams (``Ctx``) make it independent of every other lemma and of the process it runs in."""
    lm = by_lemma_id(lemma_id)
    with single_thread():
        return run_lemma(lm, Ctx(LemmaBudget.of(budget), int(seed)))


def by_lemma_id(lemma_id: str) -> Lemma:
    """The lemma or seeded wrong lemma with this id (InstanceError listing the ids otherwise)."""
    for lm in LEMMAS + WRONG_LEMMAS:
        if lm.id == lemma_id:
            return lm
    raise InstanceError(f"unknown lemma id {lemma_id!r}; lemma ids: {', '.join(l.id for l in LEMMAS + WRONG_LEMMAS)}")


def summarize(results: list[LemmaResult], budget: str, seed: int, seconds: float) -> dict:
    """The ``run_lemmas`` structure of these results (in the order given)."""
    true = [r for r in results if not r.lemma.is_wrong]
    wrong = [r for r in results if r.lemma.is_wrong]
    caught = [r for r in wrong if r.verdict == "violated" and r.counterexample is not None]
    return {
        "budget": budget, "seed": int(seed), "seconds": round(seconds, 1),
        "lemmas": [r.to_json() for r in true],
        "wrong_lemmas": {"caught": len(caught), "total": len(wrong),
                         "missed": [r.lemma.id for r in wrong if r not in caught],
                         "results": [r.to_json() for r in wrong]},
        "findings": [{"lemma": r.lemma.id, "used_by": list(r.lemma.used_by), "finding": r.lemma.finding,
                      "counterexample": None if r.counterexample is None else r.counterexample.to_json()}
                     for r in true if r.verdict == "violated"],
        "changed_verdicts": [f"lemma:{r.lemma.id}" for r in results if r.verdict != r.lemma.expected],
    }


# =============================================================================================
# presentation (markdown for the report; a short evidence line for tables)
# =============================================================================================
def evidence_line(r: dict) -> str:
    """One line: the counterexample of a violated lemma, else the passed checks and the worst ratio."""
    if r["verdict"] == "violated" and r.get("counterexample"):
        ce = r["counterexample"]
        if ce.get("lhs") is None:
            return f"{ce['dims']}: {ce['relation']} fails ({ce['found_by']})"
        return (f"{ce['dims']}: lhs {ce['lhs']:.10g} vs rhs {ce['rhs']:.10g}, violation {ce['violation']:.3g} > "
                f"tol {ce['tolerance']:.2g}")
    return r["reason"]


def _matrix_text(v) -> str:
    if isinstance(v, list) and v and isinstance(v[0], list):
        return "[" + "; ".join(", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in row) for row in v) + "]"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.6g}" if isinstance(x, float) else str(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:.12g}"
    return str(v)


def counterexample_lines(ce: dict, indent: str = "  ") -> list[str]:
    """The counterexample's numbers as markdown bullet lines."""
    lines = [f"{indent}- relation: `{ce['relation']}`; dimensions: {ce['dims']}; found by: {ce['found_by']}"]
    if ce.get("lhs") is not None:
        lines.append(f"{indent}- lhs = {ce['lhs']:.15g}, rhs = {ce['rhs']:.15g}, violation = {ce['violation']:.6g} "
                     f"(tolerance {ce['tolerance']:.3g}: {ce.get('origin', '')})")
    for k, v in (ce.get("data") or {}).items():
        if k == "found_first":
            continue
        if isinstance(v, list) and v and isinstance(v[0], list) and v[0] and isinstance(v[0][0], list):
            v = "; ".join(_matrix_text(m) for m in v)
        lines.append(f"{indent}- {k}: `{_matrix_text(v)}`")
    for k, v in (ce.get("exact") or {}).items():
        lines.append(f"{indent}- {k}: `{v}`")
    return lines


def lemma_markdown(data: dict) -> list[str]:
    """The lemma section of report.md (from the ``run_lemmas`` structure, or from a results.json that
    carries its "lemmas" and "wrong_lemmas" keys)."""
    lemmas, wrong = data.get("lemmas") or [], data.get("wrong_lemmas") or {}
    if not lemmas and not wrong.get("results"):
        return []
    lines = ["## Lemmas (proof steps)", "",
             "Each proof step is checked on its own: symbolically where SymPy decides it, otherwise on random "
             "instances plus an adversarial search (local optimization of the violation) from the smallest "
             "dimensions upward. **holds** = every check passed; **violated** = a counterexample beyond the derived "
             "float64 tolerance (or a nonzero symbolic difference); **inconclusive** = a check could not be settled.",
             "", "| lemma | verdict | recorded | used by | evidence |", "|---|---|---|---|---|"]
    for r in lemmas:
        lines.append(f"| `{r['id']}` | **{r['verdict']}** | {r['expected_verdict']} | {', '.join(r['used_by'])} | "
                     f"{evidence_line(r)[:220]} |")
    if wrong:
        lines += ["", f"**Wrong lemmas caught: {wrong['caught']} of {wrong['total']}**"
                  + (f" (missed: {', '.join(wrong['missed'])})" if wrong.get("missed") else ""), ""]
    for r in lemmas:
        lines += [f"### {r['id']}: {r['title']}", "", f"- Statement: {r['statement']}",
                  f"- Used by: {', '.join(r['used_by'])}", f"- Checks: {r['methods']}",
                  f"- Verdict: **{r['verdict']}** (recorded: {r['expected_verdict']}) — {r['reason']}"]
        if r.get("finding"):
            lines.append(f"- **Finding**: {r['finding']}")
        if r.get("counterexample"):
            lines.append("- Smallest counterexample:")
            lines += counterexample_lines(r["counterexample"], "  ")
        lines.append(f"- Reproduce: `{r['reproduce']}`")
        lines += ["", "| check | kind | status | tries | worst error | tolerance | detail |", "|---|---|---|---|---|---|---|"]
        for e in r["evidence"]:
            err = "-" if e["error"] is None else f"{e['error']:.3g}"
            tol = "-" if e["tolerance"] is None else f"{e['tolerance']:.3g}"
            lines.append(f"| {e['check']} | {e['kind']} | {e['status']} | {e['tries']} | {err} | {tol} | "
                         f"{e['detail'][:160]} |")
        lines.append("")
    if wrong.get("results"):
        lines += ["### Seeded wrong lemmas", "", "| wrong lemma | mutation | verdict | counterexample |", "|---|---|---|---|"]
        for r in wrong["results"]:
            lines.append(f"| `{r['id']}` | {r['mutation']} | {r['verdict']} | {evidence_line(r)[:200]} |")
        lines.append("")
    return lines
