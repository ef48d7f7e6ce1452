"""Item 6 of issue 3: matrix-form gradients and balancedness, confirmed entry by entry in SymPy.

Every identity is also shown to FAIL for a seeded wrong formula (a checker never seen to fail is
not a checker).
"""
from __future__ import annotations

import pytest

from ncverify.theory import foc

KEYS = {"check", "identity", "sizes", "holds", "difference", "difference_str", "seconds"}


def _all_hold(reports):
    assert reports, "no reports"
    for r in reports:
        assert KEYS <= set(r), r.keys()
        assert r["holds"], f"{r['check']}: {r['identity']} fails with difference {r['difference_str']}"
        assert all(x == 0 for x in r["difference"])


@pytest.mark.parametrize("M", [1, 2])
@pytest.mark.parametrize("counts, d", [((2, 1), 2), ((1, 1), 3)])
def test_mse_gradients_bias_free(counts, d, M):
    reps = foc.check_mse_gradients(counts, d, M)
    _all_hold(reps)
    assert [r["check"].split(":")[1] for r in reps] == [f"dW_{j}" for j in range(1, M + 1)] + ["dH"]
    assert reps[0]["sizes"]["N"] == sum(counts) and reps[0]["sizes"]["M"] == M


def test_mse_gradients_K3_d3_M2():
    _all_hold(foc.check_mse_gradients((1, 1, 1), 3, 2))


@pytest.mark.parametrize("M", [1, 2])
def test_mse_gradients_with_unregularized_bias(M):
    reps = foc.check_mse_bias_gradients((2, 1), 2, M)
    _all_hold(reps)
    assert reps[-1]["check"].endswith(":db") and reps[-1]["sizes"]["lam_b"] == "0"


def test_mse_gradients_with_regularized_bias():
    reps = foc.check_mse_bias_gradients((1, 2), 3, 1, regularized_bias=True)
    _all_hold(reps)
    assert reps[-1]["sizes"]["lam_b"] == "lambda_b"


@pytest.mark.parametrize("M", [1, 2])
def test_ce_gradients(M):
    _all_hold(foc.check_ce_gradients((2, 1), 2, M))


def test_ce_gradients_K3_with_bias():
    _all_hold(foc.check_ce_gradients((1, 1, 1), 3, 1, bias=True))


@pytest.mark.slow
def test_ce_gradients_K3_M2():
    _all_hold(foc.check_ce_gradients((1, 1, 1), 3, 2))


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_extended_gradients(activation):
    _all_hold(foc.check_extended_gradients(activation, (2, 1), 2, 2))


# -- seeded wrong formulas must be detected -----------------------------------------------------
@pytest.mark.parametrize(
    "check, kwargs, variant",
    [
        (foc.check_mse_gradients, dict(counts=(2, 1), d=2, M=1), "no-1/N"),
        (foc.check_mse_gradients, dict(counts=(2, 1), d=2, M=2), "no-transpose"),
        (foc.check_mse_gradients, dict(counts=(2, 1), d=2, M=2), "half-lambda"),
        (foc.check_mse_bias_gradients, dict(counts=(2, 1), d=2, M=1), "no-1/N"),
        (foc.check_ce_gradients, dict(counts=(2, 1), d=2, M=1), "no-softmax"),
        (foc.check_ce_gradients, dict(counts=(2, 1), d=2, M=1), "no-1/N"),
        (foc.check_extended_gradients, dict(activation="relu", counts=(2, 1), d=2, M=2), "no-1/N"),
        (foc.check_extended_gradients, dict(activation="identity", counts=(2, 1), d=2, M=2), "half-lambda"),
    ],
)
def test_wrong_gradient_formula_is_detected(check, kwargs, variant):
    reps = check(variant=variant, **kwargs)
    failed = [r for r in reps if not r["holds"]]
    assert failed, f"seeded error {variant!r} was not detected"
    assert all(r["variant"] == variant for r in reps)
    assert any(x != 0 for x in failed[0]["difference"])


def test_no_transpose_only_breaks_the_inner_layer():
    reps = {r["check"].split(":")[1]: r["holds"] for r in foc.check_mse_gradients((2, 1), 2, 2, variant="no-transpose")}
    assert reps == {"dW_1": True, "dW_2": False, "dH": True}


def test_unknown_variant_rejected():
    with pytest.raises(ValueError, match="unknown variant"):
        foc.check_mse_gradients(variant="typo")


# -- balancedness ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(loss="mse", counts=(2, 1), d=2, M=1),
        dict(loss="mse", counts=(2, 1), d=2, M=2),
        dict(loss="mse", counts=(1, 2), d=2, M=2, bias=True),
        dict(loss="ce", counts=(2, 1), d=2, M=2, bias=True),
        dict(loss="mse", counts=(2, 1), d=2, M=2, activation="identity"),
    ],
)
def test_balancedness_identity(kwargs):
    reps = foc.check_balancedness(**kwargs)
    _all_hold(reps)
    M = kwargs["M"]
    assert [r["check"].split(":")[1] for r in reps] == [f"W{j + 1}/W{j}" for j in range(1, M)] + ["W1/H"]
    assert all(r["bias_gradient_enters"] is False for r in reps)
    assert "lambda_H H H^T" in reps[-1]["consequence"]


@pytest.mark.slow
def test_balancedness_K3_with_bias():
    _all_hold(foc.check_balancedness("mse", (1, 1, 1), 3, 2, bias=True))


def test_balancedness_relu_only_diagonal():
    reps = {r["check"].split(":")[1]: r for r in foc.check_balancedness("mse", (2, 1), 2, 2, activation="relu")}
    w21 = reps["W2/W1"]
    assert w21["holds"] is False and w21["expected_to_hold"] is False
    assert w21["diagonal_holds"] is True
    assert reps["W1/H"]["holds"] is True


@pytest.mark.parametrize("loss, M", [("mse", 2), ("ce", 1)])
def test_balancedness_wrong_rhs_detected(loss, M):
    reps = foc.check_balancedness(loss, (2, 2), 2, M, wrong=True)
    assert not all(r["holds"] for r in reps)


# -- other stationary conditions ------------------------------------------------------------------
@pytest.mark.parametrize("bias", [False, True])
def test_optimal_features_for_fixed_W(bias):
    _all_hold(foc.check_optimal_features_mse((2, 1), 2, bias=bias))


def test_bias_stationarity():
    _all_hold(foc.check_bias_stationarity((2, 1), 2, 2))


def test_identity_holds_sees_relu_normal_form():
    import sympy as sp
    z = sp.Symbol("z", real=True)
    ok, _ = foc.identity_holds(sp.Matrix([[sp.Max(0, z) - z * sp.Heaviside(z)]]))
    assert ok
    ok, _ = foc.identity_holds(sp.Matrix([[sp.Max(0, z) - z]]))
    assert not ok


@pytest.mark.slow
def test_run_all_foc_checks():
    reps = foc.run_all_foc_checks()
    assert len(reps) > 40
    for r in reps:
        assert KEYS <= set(r)
        if r.get("expected_to_hold", True):
            assert r["holds"], r["check"]
        else:
            assert r["diagonal_holds"], r["check"]
