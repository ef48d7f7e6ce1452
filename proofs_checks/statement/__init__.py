"""The vocabulary of the catalogue: ``Theorem``, ``Expected``, ``mutant``, the one assumption builder
(``assumptions``), the one domain builder (``domain``), the one exact-number rule (``num``), the one ETF claim
geometry (``etf_prediction``) and the prediction transforms of mutants. Catalogue modules import from here;
nothing here imports the catalogue."""
from ncverify.proofs_checks.statement.assumptions import assumptions
from ncverify.proofs_checks.statement.claims import (DPS, ETF_GEOMETRY, etf_prediction, exact, minimize_on_halfline,
                                                     mode_minimizer, mode_value, num, positive_real_roots, scalar,
                                                     with_bias, with_geometry, with_objective_scaled,
                                                     with_singular_values)
from ncverify.proofs_checks.statement.domains import Domain, domain, instances, log_uniform, mixed
from ncverify.proofs_checks.statement.theorem import SHAPE_CLAIMS, Expected, Theorem, mutant

MSE_NORMALIZATION = ("MSE: 1/(2N) ||W_M...W_1 H (+ b 1^T) - Y||_F^2 + sum_j lambda_Wj/2 ||W_j||_F^2 "
                     "+ lambda_H/2 ||H||_F^2 (bias unregularized)")
CE_NORMALIZATION = ("CE: (1/N) sum_i CE(W_M...W_1 h_i + b, y_i) + sum_j lambda_Wj/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 "
                    "+ lambda_b/2 ||b||^2")
EXT_NORMALIZATION = ("extended UFM: 1/(2N) ||W_2 s(W_1 H_1) - Y||_F^2 + lambda_W2/2 ||W_2||^2 + lambda_W1/2 ||W_1||^2 "
                     "+ lambda_H1/2 ||H_1||^2 ([P2] writes 1/(2Kn) = 1/(2N), balanced)")
MAX_MARGIN_NORMALIZATION = (
    "UF-SVM: min 1/2 (||W||_F^2 + ||H||_F^2) s.t. (w_{y_i} - w_c)^T h_i >= 1 for all i, c != y_i (= min ||W H||_* under "
    "the same margins, d >= K - 1); the vanishing-regularization limit of the bias-free CE UFM")
LPM_NORMALIZATION = ("layer-peeled model: min (1/N) sum_{k,i} CE(W h_{k,i}, k) s.t. (1/K) sum_k ||w_k||^2 <= E_W, "
                     "(1/K) sum_k (1/n_k) sum_i ||h_{k,i}||^2 <= E_H (no bias); --lam-w carries E_W, --lam-h E_H")

__all__ = ["Theorem", "Expected", "mutant", "SHAPE_CLAIMS", "assumptions", "Domain", "domain", "instances", "mixed",
           "log_uniform", "DPS", "ETF_GEOMETRY", "num", "exact", "positive_real_roots", "minimize_on_halfline",
           "mode_value", "mode_minimizer",
           "etf_prediction", "with_geometry", "with_bias", "with_objective_scaled", "with_singular_values", "scalar",
           "MSE_NORMALIZATION", "CE_NORMALIZATION", "EXT_NORMALIZATION", "MAX_MARGIN_NORMALIZATION", "LPM_NORMALIZATION"]
