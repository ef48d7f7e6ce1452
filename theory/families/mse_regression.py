"""Family ``mse-regression``: the plain MSE UFM (M = 1, no bias) with real-valued targets.

The instance's targets (``Instance.targets``, e.g. "gauss:7") give a K x K prototype matrix T (output k of group j's
target is T[k][j]); the samples of group j (n_j of them, ``counts``) share the target t_j, so Y = T E with E the
group indicator (K x N) and Y Y^T = T D T^T, D = diag(n_j): every positive semidefinite Sigma = Y Y^T / N arises.

Reduction (exact, convex at M = 1): the factorization elimination gives mu ||Z||_* with mu = sqrt(lambda_W lambda_H)
(penalties lambda/2 ||.||^2); von Neumann's trace inequality aligns Z with Y, so each singular value s_i of Y gives
the scalar problem (1/(2N))(s_i - z)^2 + mu z, z >= 0, minimized at z_i = (s_i - N mu)_+ (soft thresholding).
Balanced factors: W W^T = sqrt(lambda_H/lambda_W) (Z Z^T)^(1/2) = sqrt(N lambda_H/lambda_W)
(Sigma^(1/2) - sqrt(N lambda_W lambda_H) I)_+ in the output basis (a matrix, not up to rotation: the outputs are
fixed), f* = sum_i [(s_i - z_i)^2/(2N) + mu z_i]. The s_i^2 are the eigenvalues of T D T^T, computed with mpmath at
dps + 10 digits from the float64 prototypes (exact binary numbers).
"""
from __future__ import annotations

import mpmath
import sympy as sp

from ncverify.theory.errors import TheoryInputError
from ncverify.theory.instance import ExactInstance
from ncverify.theory.prediction import Exact, GramTarget, PhaseBoundary, Prediction, SingularValues
from ncverify.theory.solve import to_mpf

NAME = "mse-regression"


def check_regression(I: ExactInstance) -> None:
    if I.targets is None:
        raise TheoryInputError(f"{NAME} needs real-valued targets (--targets gauss:SEED)")
    if I.loss != "mse" or I.depth != 1 or I.bias or I.activation is not None:
        raise TheoryInputError(f"{NAME} is the plain MSE UFM: loss mse, depth M = 1, no bias, no activation")


def derive_regression(I: ExactInstance, dps: int) -> Prediction:
    """The global minimizer (see the module docstring)."""
    check_regression(I)
    K, N = I.K, I.N
    mu2 = I.lam_w[0] * I.lam_h
    with mpmath.workdps(dps + 10):
        T = mpmath.matrix([[mpmath.mpf(x) for x in row] for row in I.targets])
        D = mpmath.diag([mpmath.mpf(c) for c in I.counts])
        YYt = T * D * T.T
        ev, Q = mpmath.eigsy(YYt)
        mu = mpmath.sqrt(to_mpf(mu2, dps + 10))
        lw, lh = to_mpf(I.lam_w[0], dps + 10), to_mpf(I.lam_h, dps + 10)
        s = [mpmath.sqrt(max(ev[i], 0)) for i in range(K)]
        z = [max(si - N * mu, mpmath.mpf(0)) for si in s]
        f = mpmath.fsum((si - zi) ** 2 / (2 * N) + mu * zi for si, zi in zip(s, z))
        c = mpmath.sqrt(lh / lw)
        w2 = [c * zi for zi in z]  # eigenvalues of W W^T
        WWt = Q * mpmath.diag(w2) * Q.T
        G = [[+WWt[i, j] for j in range(K)] for i in range(K)]
        h2 = [zi / c for zi in z]  # eigenvalues of H H^T
    note = "mpmath eigsy of T D T^T at dps + 10 digits"
    order = sorted(range(K), key=lambda i: -s[i])
    thr = [PhaseBoundary("lambda_H (other parameters fixed)", Exact(s[i] ** 2 / (N ** 2 * to_mpf(I.lam_w[0], dps)),
                                                                      None, note), "global",
                         f"the target mode with singular value s = {mpmath.nstr(s[i], 8)} of Y is cut to 0 for "
                         "lambda_H >= s^2/(N^2 lambda_W)", instance_value=to_mpf(I.lam_h, dps))
           for i in order if s[i] > 0]
    return Prediction(
        family=NAME, instance=I.raw, objective=Exact(+f, None, "sum_i (s_i - z_i)^2/(2N) + mu z_i, " + note),
        scalars={"s": [Exact(+s[i], None, note) for i in order], "z": [Exact(+z[i]) for i in order]},
        singular_values=SingularValues([Exact(mpmath.sqrt(w2[i])) for i in order], [[Exact(mpmath.sqrt(w2[i])) for i in order]],
                                       [Exact(+z[i]) for i in order], [Exact(mpmath.sqrt(h2[i])) for i in order]),
        gram_targets={"WWT": GramTarget("general", [Exact(G[k][k]) for k in range(K)], matrix=G,
                                        description="W W^T = sqrt(N lambda_H/lambda_W)(Sigma^(1/2) - sqrt(N lambda_W "
                                                    "lambda_H) I)_+ in the output basis")},
        undetermined=("rotations of the hidden space: W -> W Q^T, H -> Q H",), phase_boundaries=thr, dps=dps,
        notes=["reduction: factorization elimination (mu = sqrt(lambda_W lambda_H)) -> alignment with Y -> soft "
               "thresholding of Y's singular values at N mu"],
        derivation={"reduced_text": ["min over Z of (1/(2N)) ||Z - Y||_F^2 + mu ||Z||_*, mu = sqrt(lambda_W lambda_H) "
                                     f"= {sp.sstr(sp.sqrt(mu2))}", "per singular value s_i of Y: (s_i - z)^2/(2N) + mu z"],
                    "stationary_text": ["z_i = (s_i - N mu)_+ (soft thresholding)"]})


class MseRegression:
    """The family ``mse-regression`` (see the module docstring)."""

    name = NAME
    description = "plain MSE UFM with real-valued (grouped) targets: W W^T as a matrix function of Sigma = Y Y^T/N"

    def check(self, I: ExactInstance) -> None:
        check_regression(I)

    def derive(self, I: ExactInstance, dps: int) -> Prediction:
        return derive_regression(I, dps)

    def critical_values(self, I: ExactInstance) -> dict[str, list[float]]:
        """lambda_H where a target mode is cut to zero: s_i^2/(N^2 lambda_W)."""
        return {"lam_h": sorted(float(b.value.value) for b in derive_regression(I, 20).phase_boundaries)}
