"""The minimizer on the simplex-ETF logit geometry, built from its margin a (shared by the CE family and
the ETF-margin loss variants).

Symbols: logits a (e_k - 1/K 1) for a class-k sample, K classes of n samples, depth M, z = a sqrt(n) the
K-1 equal singular values of the logit matrix; balanced factors W_j with singular values
s_j = sqrt(L/lambda_Wj) z^{1/(M+1)}, H with eta = sqrt(L/lambda_H) z^{1/(M+1)}, L = (lambda_H prod_j lambda_Wj)^{1/(M+1)}.
"""
from __future__ import annotations

from typing import Any, Callable

import mpmath
import sympy as sp

from . import reduced as R
from .errors import TheoryInputError
from .prediction import Exact, GramTarget
from .solve import to_mpf


def check_etf_instance(family: str, inst: Any) -> None:
    """The assumptions every simplex-ETF family shares (TheoryInputError naming the first one violated):
    balanced classes, K >= 2, width d >= K - 1, deep linear (no ReLU)."""
    if not inst.balanced:
        raise TheoryInputError(f"{family} needs balanced classes, got counts {list(inst.counts)}")
    if inst.K < 2:
        raise TheoryInputError(f"{family} needs K >= 2 classes, got K = {inst.K}")
    if inst.width < inst.K - 1:
        raise TheoryInputError(f"{family} needs width d >= K - 1 (the simplex ETF spans K - 1 dimensions), "
                               f"got d = {inst.width}")
    if inst.activation == "relu":
        raise TheoryInputError(f"{family} is deep linear: activation relu is not part of it")


def etf_minimizer(inst: Any, a_ex: Exact, L_e: sp.Expr, dps: int) -> dict[str, Any]:
    """Singular values, Gram targets, class-mean norms and true-class probability of the ETF point with
    margin ``a_ex`` (exact when ``a_ex.expr`` is given). ``inst``: an exact instance (counts, depth, lam_w,
    lam_h as rationals); ``L_e`` = L exactly. Returns {"zero", "z", "layers", "sigma", "eta",
    "class_mean_norm", "p_true", "gram", "collapsed"}."""
    M, K, n = inst.depth, len(inst.counts), inst.counts[0]
    n_e = sp.Integer(n)
    fe = R.eliminate_factorization(M)
    a_expr = a_ex.expr
    exact = a_expr is not None
    with mpmath.workdps(dps + 10):
        a_v = a_ex.value
        z_v = a_v * mpmath.sqrt(n)
        t_v = z_v ** (mpmath.mpf(1) / (M + 1))
        L_v = to_mpf(L_e, dps + 10)
        s_v = [mpmath.sqrt(L_v / to_mpf(inst.lam_w[j], dps + 10)) * t_v for j in range(M)]
        eta_v = mpmath.sqrt(L_v / to_mpf(inst.lam_h, dps + 10)) * t_v
        sig_v = mpmath.fprod(s_v)
        p_v = mpmath.exp(a_v) / (mpmath.exp(a_v) + K - 1)

    def E(expr_fn: Callable[[], sp.Expr], val: mpmath.mpf, note: str = "") -> Exact:
        return Exact(+val, expr_fn() if exact else None, note)

    sub = lambda: {R.z: a_expr * sp.sqrt(n_e), R.L: L_e, R.lam_H: inst.lam_h,  # noqa: E731
                   **{R.lam_W(j): inst.lam_w[j - 1] for j in range(1, M + 1)}}
    zero = Exact(mpmath.mpf(0), sp.Integer(0))
    sig_ex = E(lambda: sp.Mul(*[lv.subs(sub()) for lv in fe.layer_values]), sig_v)
    eta_ex = E(lambda: fe.feature_value.subs(sub()), eta_v)
    P_d = sp.Rational(K - 1, K)
    kind = "zero" if a_v == 0 else "ETF"
    sw = E(lambda: sig_ex.expr ** 2, sig_v ** 2)
    sh = E(lambda: eta_ex.expr ** 2 / n, eta_v ** 2 / n)
    return {
        "zero": zero,
        "z": E(lambda: a_expr * sp.sqrt(n_e), z_v),
        "layers": [[E(lambda j=j: fe.layer_values[j].subs(sub()), s_v[j])] * (K - 1) + [zero] for j in range(M)],
        "sigma": sig_ex,
        "eta": eta_ex,
        "class_mean_norm": E(lambda: fe.feature_value.subs(sub()) * sp.sqrt(sp.Rational(K - 1, K * n)),
                             eta_v * mpmath.sqrt(mpmath.mpf(K - 1) / (K * n)), "||hbar_k|| = eta sqrt((K-1)/(K n))"),
        "p_true": E(lambda: sp.exp(a_expr) / (sp.exp(a_expr) + K - 1), p_v,
                    "true-class softmax probability e^a/(e^a + K - 1)"),
        "gram": {
            "WWT": GramTarget(kind, [E(lambda: sw.expr * P_d, sw.value * P_d)] * K, scale=sw,
                              description="W W^T = sigma^2 (I - 1 1^T/K)"),
            "HbarTHbar": GramTarget(kind, [E(lambda: sh.expr * P_d, sh.value * P_d)] * K, scale=sh,
                                    description="Hbar^T Hbar = (eta^2 / n)(I - 1 1^T/K); the class means sum to 0"),
            "WHbar": GramTarget(kind, scale=a_ex, description="W hbar_k = a (e_k - 1/K 1): the logits"),
        },
        "collapsed": list(range(K)) if a_v == 0 else [],
    }
