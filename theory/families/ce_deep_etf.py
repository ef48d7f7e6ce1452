"""Family ``ce-deep-etf``: deep linear cross-entropy restricted to the simplex-ETF logit geometry, balanced.

Logits a (e_k - 1/K 1) give CE = log(1 + (K-1) e^{-a}); Z has K-1 singular values a sqrt(n), whose
cheapest factorization is the penalty; a = u^(M+1) makes the reduced problem g(u) smooth. The ETF geometry
is an ASSUMPTION of this family (not derived); only the numerics test it.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory import reduced as R
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.etf import check_etf_instance, etf_minimizer
from ncverify.theory.families.mse_deep import ROTATIONS, sx
from ncverify.theory.instance import ExactInstance
from ncverify.theory.phase import ce_phase_boundaries, lam_h_values
from ncverify.theory.prediction import Exact, Prediction, SingularValues
from ncverify.theory.solve import solve_ce

FAMILY = "ce-deep-etf"


def check_ce(I: ExactInstance) -> None:
    """The family's assumptions (TheoryInputError naming the first one violated)."""
    fam = FAMILY
    if I.loss != "ce":
        raise TheoryInputError(f"{fam} needs loss ce, got {I.loss!r}")
    check_etf_instance(fam, I)


def derive_ce(I: ExactInstance, dps: int) -> Prediction:
    """The best simplex-ETF point: global minimizer of g(a) over a >= 0 (see the module docstring)."""
    check_ce(I)
    fam = FAMILY
    M, K, n = I.depth, I.K, I.counts[0]
    n_e = sp.Integer(n)
    L_pow = I.lam_h * sp.Mul(*I.lam_w)
    L_e = L_pow ** sp.Rational(1, M + 1)
    sol = solve_ce(M, K, n_e, L_pow, dps)
    red = R.ce_etf_reduction(M)
    fe = R.eliminate_factorization(M)
    notes = ["reduction: logits a (e_k - 1/K 1) -> CE = log(1 + (K-1) e^{-a}); Z = a (I - 1 1^T/K) Y has K-1 "
             "singular values a sqrt(n) -> factorization cost -> g(a); a = u^(M+1) makes the penalty smooth",
             "the simplex-ETF geometry is an assumption of this family (not derived); numerics check it"]
    notes += sol.notes
    undetermined = [ROTATIONS]
    a_note = ("closed form (M = 1)" if M == 1 else "stationary points bracketed on a dense grid + the peak of h, "
              "refined with mpmath.findroot")
    if sol.a is not None:
        a_ex = sx(sol.a, dps, a_note)
    else:
        st = [s for s in sol.stationary if abs(s["a"] - sol.a_value) <= mpmath.mpf(10) ** (-(dps - 5)) * max(1, sol.a_value)]
        br = st[0] if st else None
        a_ex = Exact(sol.a_value, None, a_note + (f"; u in grid bracket [{mpmath.nstr(br['grid_bracket'][0], 15)}, "
                                                  f"{mpmath.nstr(br['grid_bracket'][1], 15)}], certified bracket "
                                                  f"[{mpmath.nstr(br['tight_bracket'][0], dps)}, "
                                                  f"{mpmath.nstr(br['tight_bracket'][1], dps)}]" if br else ""))
    geo = etf_minimizer(I, a_ex, L_e, dps)
    zero, z_ex, layers, sig_ex, eta_ex = geo["zero"], geo["z"], geo["layers"], geo["sigma"], geo["eta"]
    cm, p_ex, gram = geo["class_mean_norm"], geo["p_true"], geo["gram"]
    u_ex = Exact(sol.u_value, sol.a ** sp.Rational(1, M + 1) if sol.a is not None else None)
    ell_ex = sx(sol.ell, dps)
    bias = None
    if I.bias:
        bias = [zero] * K
        notes.append("bias: for the permutation-symmetric logits the CE is convex in b and strictly convex on 1^perp "
                     "(softmax covariance), so b lies along 1, where CE is constant"
                     + ("; lambda_b > 0 then gives b = 0" if I.lam_b > 0 else "; with lambda_b = 0 its size is free"))
        if I.lam_b == 0:
            undetermined.append("bias component along 1 (lambda_b = 0: any b = beta 1 is optimal; reported 0)")
    g_expr = sol.g_expr
    objective = Exact(sol.g_value, g_expr, "g(a*) (CE + factorization cost, with the 1/N normalization)")
    boundaries = ce_phase_boundaries(K, M, n_e, L_pow, I.lam_w, I.lam_h, dps)
    derivation = {"ce": red.ce, "g": red.g, "g_u": red.g_u, "h_u": red.h_u, "factorization_cost": fe.cost,
                  "stationary_u": sp.Eq(R.ell, red.h_u), "ell_value": sol.ell, "peak_u": sol.peak,
                  "brackets": [{k: v for k, v in s.items()} for s in sol.stationary]}
    if M == 1:
        derivation["closed_form"] = R.ce_closed_form_M1()
    return Prediction(
        family=fam, instance=I.raw, objective=objective,
        scalars={"a": [a_ex], "u": [u_ex], "ell": [ell_ex], "p_true": [p_ex], "z": [z_ex]},
        singular_values=SingularValues([sig_ex] * (K - 1) + [zero], layers, [z_ex] * (K - 1) + [zero],
                                       [eta_ex] * (K - 1) + [zero]),
        gram_targets=gram, class_mean_norms=[cm] * K, bias=bias,
        collapsed_classes=geo["collapsed"], undetermined=undetermined,
        phase_boundaries=boundaries, candidates={"margin": sol.candidates}, reduced_problem=red.g,
        stationary_equation=sp.Eq(R.ell, red.h_u), notes=notes, dps=dps, derivation=derivation)


class CeDeepEtf:
    """The family ``ce-deep-etf``."""

    name = FAMILY
    description = "deep linear CE on the simplex-ETF logit geometry, balanced"

    def check(self, I: ExactInstance) -> None:
        check_ce(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_ce(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        M = I.depth
        b = ce_phase_boundaries(I.K, M, sp.Integer(I.counts[0]), I.lam_h * sp.Mul(*I.lam_w), I.lam_w, I.lam_h, 40)
        return {"lam_h": lam_h_values(b)}
