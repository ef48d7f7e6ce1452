"""Item 5 of issue 3: explicit matrices realizing a prediction; objective == f* and gradient == 0 there.

Predictions come from this suite's own small-case derivations (test_theory_construct_refs) and,
as integration tests, from theory.derive. Exact cases are proved in SymPy (``exact_zero``);
numeric ones are checked at the prediction's precision (mpmath) and in float64.
A perturbed prediction must be seen to fail.
"""
from __future__ import annotations

import dataclasses

import subprocess
import sys

import mpmath
import numpy as np
import pytest
import sympy as sp

from ncverify.numerics.problem import Instance
from test_theory_construct_refs import ex, ref_ce, ref_mse_bias, ref_mse_deep
from ncverify.theory import construct as C
from ncverify.theory import objective as O
from ncverify.theory.prediction import Exact



def with_layer(pred, j, values):
    """A copy of ``pred`` with the singular values of layer j+1 replaced (predictions are immutable)."""
    layers = list(pred.singular_values.layers)
    layers[j] = tuple(values)
    return pred.with_(singular_values=dataclasses.replace(pred.singular_values, layers=layers))

def I(counts, d, M=1, lam_w=0.01, lam_h=0.02, **kw):
    return Instance.create(list(counts), width=d, depth=M, lam_w=lam_w, lam_h=lam_h, **kw)


# -- objective.py ------------------------------------------------------------------------------
def test_labels_and_symbolic_params():
    Y = O.labels((2, 1))
    assert Y == sp.Matrix([[1, 1, 0], [0, 0, 1]])
    Ws, H, b = O.symbolic_params(K=2, d=3, N=3, M=2, bias=True)
    assert [W.shape for W in Ws] == [(3, 3), (2, 3)] and H.shape == (3, 3) and b.shape == (2, 1)
    assert all(s.is_real for s in H.free_symbols)
    assert O.symbolic_params(2, 3, 3, 1, False)[2] is None


def test_exact_number_uses_decimal_literal():
    assert O.exact_number(1e-3) == sp.Rational(1, 1000)
    assert O.exact_number(0.1) == sp.Rational(1, 10)
    assert O.exact_number(3) == 3


def test_mse_objective_by_hand():
    inst = I((1, 1), 2, lam_w=0.5, lam_h=0.25)
    W = sp.Matrix([[1, 0], [0, 2]])
    H = sp.Matrix([[1, 0], [0, 1]])
    # residual WH - Y = diag(0, 1): 1/(2N) * 1 = 1/4; penalties 0.5/2*5 + 0.25/2*2 = 1.25 + 0.25
    assert O.objective(inst, [W], H) == sp.Rational(1, 4) + sp.Rational(5, 4) + sp.Rational(1, 4)


def test_mse_bias_and_ce_objectives_by_hand():
    inst = I((1, 1), 2, lam_w=0.5, lam_h=0.25, bias=True, lam_b=0.5)
    W, H, b = sp.zeros(2, 2), sp.zeros(2, 2), sp.Matrix([1, 0])
    # Z = b 1^T; Z - Y = [[0, 1], [0, -1]]: data 2/(2*2) = 1/2; bias penalty 0.5/2 * 1
    assert O.objective(inst, [W], H, b) == sp.Rational(1, 2) + sp.Rational(1, 4)
    ce = I((1, 2), 2, loss="ce")
    f = O.objective(ce, [sp.zeros(2, 2)], sp.zeros(2, 3))
    assert sp.simplify(f - sp.log(2)) == 0  # uniform softmax: log K


def test_relu_objective_uses_max():
    inst = I((1, 1), 2, M=2, activation="relu")
    Ws, H, _ = O.symbolic_params(2, 2, 2, 2)
    assert O.objective(inst, Ws, H).has(sp.Max)
    assert not O.objective(I((1, 1), 2, M=2, activation="identity"), Ws, H).has(sp.Max)


def test_helmert_basis_is_exactly_orthogonal():
    for K in (2, 3, 4):
        Q = C.helmert_basis(K)
        assert sp.simplify(Q.T * Q - sp.eye(K)) == sp.zeros(K, K)
        assert all(sp.simplify(sum(Q[:, i])) == 0 for i in range(K - 1))


# -- construction from the suite's own predictions -------------------------------------------------
EXACT_CASES = [
    ("mse M1 balanced", I((2, 2), 2), ref_mse_deep),
    ("mse M1 imbalanced d=K+1", I((2, 1), 3, lam_w=0.05, lam_h=0.1), ref_mse_deep),
    ("mse M1 K3 imbalanced, one class collapsed", I((3, 2, 1), 3, lam_w=0.2, lam_h=0.2), ref_mse_deep),
    ("mse M2 imbalanced", I((3, 1), 2, M=2, lam_w=[0.01, 0.02], lam_h=0.03), ref_mse_deep),
    ("mse bias M1 K3", I((2, 2, 2), 3, bias=True), ref_mse_bias),
    ("mse bias M1 K2 d=K+1", I((1, 1), 3, bias=True, lam_w=0.1, lam_h=0.1), ref_mse_bias),
    ("ce M1 K3 ETF", I((2, 2, 2), 3, loss="ce"), ref_ce),
    ("ce M1 K2 regularized bias", I((1, 1), 2, loss="ce", bias=True, lam_b=0.1), ref_ce),
    ("extended identity M2", I((2, 2, 2), 3, M=2, activation="identity"), ref_mse_deep),
]
SLOW_EXACT = [
    ("mse M2 K3 imbalanced d=K+1", I((2, 1, 1), 4, M=2, lam_w=[0.01, 0.02], lam_h=0.03), ref_mse_deep),
    ("mse bias M2 K2", I((2, 2), 3, M=2, bias=True), ref_mse_bias),
    ("extended relu M2 imbalanced", I((2, 1, 1), 4, M=2, activation="relu"), ref_mse_deep),
]


def _check_exact(inst, ref):
    pred = ref(inst)
    rep = C.verify_construction(pred, inst)
    assert rep["backend"] == "sympy"
    assert rep["objective_equal"], (rep["objective_status"], rep["objective_difference"])
    assert rep["gradient_zero"], rep["gradient_status"]
    r64 = C.verify_construction(pred, inst, backend="float64")
    assert r64["objective_equal"] and r64["gradient_zero"], (r64["objective_difference"], r64["max_abs_gradient"])
    return pred, rep


@pytest.mark.parametrize("name, inst, ref", EXACT_CASES, ids=[c[0] for c in EXACT_CASES])
def test_construction_exact(name, inst, ref):
    pred, rep = _check_exact(inst, ref)
    for key, val in rep["consistency"].items():
        assert val < mpmath.mpf(10) ** -30, (key, val)


@pytest.mark.slow
@pytest.mark.parametrize("name, inst, ref", SLOW_EXACT, ids=[c[0] for c in SLOW_EXACT])
def test_construction_exact_slow(name, inst, ref):
    _check_exact(inst, ref)


def test_collapsed_class_is_zero_in_the_construction():
    inst = I((3, 2, 1), 3, lam_w=0.2, lam_h=0.2)
    pred = ref_mse_deep(inst)
    assert pred.collapsed_classes == (2,)
    m = C.construct(pred, inst)
    assert all(x == 0 for x in m["W"][0][2, :]) and all(x == 0 for x in m["H"][:, 5])


def test_ce_depth_two_numeric_to_40_digits():
    inst = I((2, 2, 2), 3, M=2, loss="ce")
    pred = ref_ce(inst)
    rep = C.verify_construction(pred, inst)
    assert rep["backend"] == "mpmath"
    assert rep["objective_difference"] < mpmath.mpf(10) ** -30
    assert rep["gradient_zero"] and rep["max_abs_gradient"] < mpmath.mpf(10) ** -30
    assert C.verify_construction(pred, inst, backend="float64")["gradient_zero"]


def test_relu_acts_as_identity_on_constructed_features():
    inst = I((2, 1, 1), 4, M=2, activation="relu")
    m = C.construct(ref_mse_deep(inst), inst)
    Z1 = m["W"][0] * m["H"]
    assert all(z >= 0 for z in Z1) and all(h >= 0 for h in m["H"])
    # disjoint supports: each hidden unit is active for one class only
    classes = (0, 0, 1, 2)
    for r in range(Z1.rows):
        active = {classes[col] for col in range(Z1.cols) if Z1[r, col] != 0}
        assert len(active) <= 1


@pytest.mark.parametrize("features", ["balanced", "argmin"])
def test_feature_rules_agree_with_the_prediction(features):
    inst = I((3, 1), 3, lam_w=0.01, lam_h=0.03)
    pred = ref_mse_deep(inst)
    a = C.construct(pred, inst)["H"]
    b = C.construct(pred, inst, features=features)["H"]
    assert all(C.exact_zero(x) == "zero" for x in (a - b))


@pytest.mark.parametrize("diagonal", [True, False])
def test_class_mean_argmin_equals_the_sample_argmin(diagonal):
    """``_argmin_Hbar`` (class means; diagonal G inverted entrywise, else the push-through identity) equals the
    sample-level H = (W^T W + N lambda_H I)^{-1} W^T (Y - b 1^T) of a direct mpmath inverse, column by column."""
    from ncverify.theory.construct import _argmin_Hbar, spec_of

    inst = I((3, 1, 2), 5, M=2, lam_w=[0.01, 0.02], lam_h=0.03, bias=True, lam_b=0.1)
    spec, kit = spec_of(inst), C._Kit(False, 40)
    rng = np.random.default_rng(0)
    with mpmath.workdps(40):
        mp_arr = lambda A: np.array([[mpmath.mpf(float(x)) for x in r] for r in A], dtype=object)  # noqa: E731
        W1 = np.diag(rng.uniform(0.5, 2, 5)) if diagonal else rng.normal(size=(5, 5))
        W2 = np.hstack([np.diag(rng.uniform(0.5, 2, 3)), np.zeros((3, 2))]) if diagonal else rng.normal(size=(3, 5))
        Ws, b = [mp_arr(W1), mp_arr(W2)], mp_arr(rng.normal(size=(3, 1)))
        Hbar = _argmin_Hbar(spec, Ws, b, kit)
        W = Ws[1] @ Ws[0]
        G = mpmath.matrix((W.T @ W).tolist()) + 6 * mpmath.mpf("0.03") * mpmath.eye(5)
        Y = np.array([[mpmath.mpf(int(k == c)) for c in (0, 0, 0, 1, 2, 2)] for k in range(3)], dtype=object)
        H = np.array((G ** -1).tolist(), dtype=object) @ W.T @ (Y - b @ np.ones((1, 6), dtype=object))
        for col, c in enumerate((0, 0, 0, 1, 2, 2)):
            assert max(abs(H[r, col] - Hbar[r, c]) for r in range(5)) < mpmath.mpf(10) ** -30


def test_argmin_features_need_mse():
    inst = I((2, 2), 2, loss="ce")
    with pytest.raises(ValueError, match="needs the MSE loss"):
        C.construct(ref_ce(inst), inst, features="argmin")


def test_entrywise_and_matrix_gradients_agree_at_the_point():
    inst = I((2, 1), 2, M=2, lam_w=[0.01, 0.02], lam_h=0.03)
    pred = ref_mse_deep(inst, perturb=(0, 0, sp.Rational(11, 10)))  # a non-critical point
    m = C.construct(pred, inst)
    f1, g1 = C.evaluate(inst, m, backend="sympy")
    f2, g2 = C.evaluate(inst, m, backend="sympy-entrywise")
    assert C.exact_zero(f1 - f2) == "zero"
    for A, B in zip(g1["W"] + [g1["H"]], g2["W"] + [g2["H"]]):
        assert all(C.exact_zero(x) == "zero" for x in (A - B))
    fm, gm = C.evaluate(inst, m, backend="mpmath", dps=50)
    with mpmath.workdps(50):
        assert abs(fm - mpmath.mpf(sp.N(f1, 60)._to_mpmath(200))) < mpmath.mpf(10) ** -45
        assert abs(gm["H"][0, 0] - mpmath.mpf(sp.N(g1["H"][0, 0], 60)._to_mpmath(200))) < mpmath.mpf(10) ** -45


# -- seeded wrong predictions must fail -----------------------------------------------------------
@pytest.mark.parametrize(
    "inst, make",
    [
        (I((2, 1), 3, lam_w=0.05, lam_h=0.1), lambda i: ref_mse_deep(i, perturb=(0, 1, sp.Rational(101, 100)))),
        (I((3, 1), 2, M=2, lam_w=[0.01, 0.02], lam_h=0.03),
         lambda i: ref_mse_deep(i, perturb=(1, 0, sp.Rational(101, 100)))),
    ],
)
def test_perturbed_singular_value_gives_nonzero_gradient(inst, make):
    pred = make(inst)
    rep = C.verify_construction(pred, inst)
    assert not rep["gradient_zero"] and rep["gradient_status"]["nonzero"] > 0
    r64 = C.verify_construction(pred, inst, backend="float64")
    assert not r64["gradient_zero"] and r64["max_abs_gradient"] > 1e-6


def test_perturbed_ce_margin_fails_numerically():
    inst = I((2, 2, 2), 3, M=2, loss="ce")
    pred = ref_ce(inst)
    bad = [Exact(value=e.value * mpmath.mpf("1.01")) for e in pred.singular_values.layers[1]]
    pred = with_layer(pred, 1, bad)
    rep = C.verify_construction(pred, inst)
    assert not rep["gradient_zero"] and not rep["objective_equal"]


def test_wrong_objective_value_is_detected():
    inst = I((2, 2), 2)
    pred = ref_mse_deep(inst)
    pred = pred.with_(objective=ex(pred.objective.expr * sp.Rational(1001, 1000)))
    rep = C.verify_construction(pred, inst)
    assert rep["gradient_zero"] and not rep["objective_equal"] and rep["objective_status"] == "nonzero"


def test_wrong_bias_is_detected():
    inst = I((2, 2, 2), 3, bias=True)
    pred = ref_mse_bias(inst)
    pred = pred.with_(bias=[ex(sp.Rational(1, 2))] * 3)
    assert not C.verify_construction(pred, inst)["gradient_zero"]


# -- conventions and errors -----------------------------------------------------------------------
def test_etf_lists_with_a_zero_mode_are_accepted():
    inst = I((2, 2, 2), 3, bias=True)
    rep = C.verify_construction(ref_mse_bias(inst, with_zero_mode=True), inst)
    assert rep["objective_equal"] and rep["gradient_zero"]


def test_etf_lists_without_zero_are_rejected():
    inst = I((2, 2), 2, bias=True)
    pred = ref_mse_bias(inst)
    pred = with_layer(pred, 0, pred.singular_values.layers[0] * 2)  # K nonzero values
    with pytest.raises(ValueError, match="rank K-1"):
        C.construct(pred, inst)


def test_width_below_K_is_rejected():
    inst = I((1, 1, 1), 2)
    pred = ref_mse_deep(I((1, 1, 1), 3))
    with pytest.raises(ValueError, match="d >= K"):
        C.construct(pred, inst)


def test_float64_export():
    inst = I((2, 1), 3, M=2, lam_w=[0.01, 0.02], lam_h=0.03)
    pred = ref_mse_deep(inst)
    m = C.construct_numpy(pred, inst)
    assert m["backend"] == "float64"
    assert [W.shape for W in m["W"]] == [(3, 3), (2, 3)] and m["H"].shape == (3, 3) and m["b"] is None
    assert all(A.dtype == np.float64 for A in m["W"] + [m["H"]])
    exact = C.construct(pred, inst)
    assert np.allclose(C.to_float64(exact)["H"], m["H"], rtol=1e-15, atol=0)
    f, g = C.evaluate(inst, m)
    assert abs(f - float(pred.objective.value)) < 1e-15


def test_construct_is_mpmath_when_no_exact_expression():
    inst = I((2, 2), 2, bias=True)
    pred = ref_mse_bias(inst)
    pred = with_layer(pred, 0, [Exact(value=e.value) for e in pred.singular_values.layers[0]])
    m = C.construct(pred, inst)
    assert m["backend"] == "mpmath" and isinstance(m["H"][0, 0], mpmath.mpf)


def test_theory_modules_do_not_import_torch():
    code = ("import sys; import ncverify.theory.construct, ncverify.theory.foc, ncverify.theory.objective; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not any(m == 'ncverify.numerics' or m.startswith('ncverify.numerics.') for m in sys.modules), 'numerics imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(_root()))
    assert res.returncode == 0, res.stderr


def _root():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]
