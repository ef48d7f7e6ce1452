"""Integration: the point built from theory.derive's prediction is a critical point with f = f*.

Also cross-checks derive against this suite's own small-case references (test_theory_construct_refs).
"""
from __future__ import annotations

import dataclasses

import mpmath
import pytest

from ncverify.numerics.problem import Instance
from test_theory_construct_refs import ref_ce, ref_mse_bias, ref_mse_deep
from ncverify.theory import construct as C
from ncverify.theory.derive import derive



def with_layer(pred, j, values):
    """A copy of ``pred`` with the singular values of layer j+1 replaced (predictions are immutable)."""
    layers = list(pred.singular_values.layers)
    layers[j] = tuple(values)
    return pred.with_(singular_values=dataclasses.replace(pred.singular_values, layers=layers))

def I(counts, d, M=1, lam_w=0.01, lam_h=0.02, **kw):
    return Instance.create(list(counts), width=d, depth=M, lam_w=lam_w, lam_h=lam_h, **kw)


FAST = [
    ("mse-deep", I((2, 2), 2)),
    ("mse-deep", I((2, 1), 3, lam_w=0.05, lam_h=0.1)),
    ("mse-deep", I((3, 2, 1), 3, lam_w=0.2, lam_h=0.2)),  # class 3 collapses
    ("mse-deep", I((3, 1), 2, M=2, lam_w=[0.01, 0.02], lam_h=0.03)),
    ("mse-deep-bias", I((2, 2, 2), 3, bias=True)),
    ("mse-deep-bias", I((1, 1), 3, bias=True, lam_w=0.1, lam_h=0.1)),
    ("ce-deep-etf", I((2, 2, 2), 3, loss="ce")),
    ("ce-deep-etf", I((1, 1), 2, loss="ce", bias=True, lam_b=0.1)),
    ("extended-linear", I((2, 2, 2), 3, M=2, activation="identity")),
]
SLOW = [
    ("mse-deep", I((2, 1, 1), 4, M=2, lam_w=[0.01, 0.02], lam_h=0.03)),
    ("mse-deep-bias", I((2, 2), 3, M=2, bias=True)),
    ("extended-linear", I((2, 1, 1), 4, M=2, activation="relu")),
]


def _verify(fam, inst):
    pred = derive(fam, inst)
    rep = C.verify_construction(pred, inst)
    assert rep["objective_equal"], (fam, rep.get("objective_status"), rep["objective_difference"])
    assert rep["gradient_zero"], (fam, rep.get("gradient_status"), rep["max_abs_gradient"])
    for key, val in rep["consistency"].items():
        assert not isinstance(val, str) and val < mpmath.mpf(10) ** -30, (key, val)
    r64 = C.verify_construction(pred, inst, backend="float64")
    assert r64["objective_equal"] and r64["gradient_zero"], (r64["objective_difference"], r64["max_abs_gradient"])
    return pred, rep


@pytest.mark.parametrize("fam, inst", FAST, ids=[f"{f}-{i.counts}-M{i.depth}" for f, i in FAST])
def test_derived_point_is_critical_exactly(fam, inst):
    pred, rep = _verify(fam, inst)
    assert rep["backend"] == "sympy"


@pytest.mark.slow
@pytest.mark.parametrize("fam, inst", SLOW, ids=[f"{f}-{i.counts}-M{i.depth}" for f, i in SLOW])
def test_derived_point_is_critical_exactly_slow(fam, inst):
    _verify(fam, inst)


def test_derived_ce_depth_two_numeric():
    inst = I((2, 2, 2), 3, M=2, loss="ce")
    pred, rep = _verify("ce-deep-etf", inst)
    assert rep["backend"] == "mpmath" and rep["max_abs_gradient"] < mpmath.mpf(10) ** -30


def test_perturbed_derived_prediction_fails():
    inst = I((2, 1), 3, lam_w=0.05, lam_h=0.1)
    pred = derive("mse-deep", inst)
    from ncverify.theory.prediction import Exact
    e = pred.singular_values.layers[0][0]
    pred = with_layer(pred, 0, [Exact(e.value * mpmath.mpf("1.01"), e.expr * 101 / 100), *pred.singular_values.layers[0][1:]])
    assert not C.verify_construction(pred, inst)["gradient_zero"]
    assert not C.verify_construction(pred, inst, backend="float64")["gradient_zero"]


@pytest.mark.parametrize(
    "fam, inst, ref",
    [
        ("mse-deep", I((2, 1), 3, lam_w=0.05, lam_h=0.1), ref_mse_deep),
        ("mse-deep", I((3, 2, 1), 3, lam_w=0.2, lam_h=0.2), ref_mse_deep),
        ("mse-deep", I((3, 1), 2, M=2, lam_w=[0.01, 0.02], lam_h=0.03), ref_mse_deep),
        ("mse-deep-bias", I((2, 2, 2), 3, bias=True), ref_mse_bias),
        ("ce-deep-etf", I((2, 2, 2), 3, loss="ce"), ref_ce),
        ("ce-deep-etf", I((2, 2, 2), 3, M=2, loss="ce"), ref_ce),
    ],
)
def test_derive_agrees_with_independent_references(fam, inst, ref):
    a, b = derive(fam, inst), ref(inst)
    with mpmath.workdps(40):
        assert abs(a.objective.value - b.objective.value) < mpmath.mpf(10) ** -30
        for la, lb in zip(a.singular_values.layers, b.singular_values.layers):
            va = sorted(e.value for e in la if e.value != 0)
            vb = sorted(e.value for e in lb if e.value != 0)
            assert len(va) == len(vb) and all(abs(x - y) < mpmath.mpf(10) ** -30 for x, y in zip(va, vb))
        assert sorted(a.collapsed_classes) == sorted(b.collapsed_classes)


from hypothesis import given, strategies as st  # noqa: E402

_LAMS = st.sampled_from([0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5])


@given(counts=st.lists(st.integers(1, 4), min_size=2, max_size=3), extra=st.integers(0, 1), lw=_LAMS, lh=_LAMS,
       bias=st.booleans())
def test_property_depth_one_mse_construction_is_critical(counts, extra, lw, lh, bias):
    """Random depth-1 MSE instances (either side of the collapse thresholds): exact f = f*, dF = 0."""
    if bias:
        counts = [counts[0]] * len(counts)
    inst = I(counts, len(counts) + extra, lam_w=lw, lam_h=lh, bias=bias)
    pred = derive("mse-deep-bias" if bias else "mse-deep", inst)
    rep = C.verify_construction(pred, inst)
    assert rep["objective_equal"] and rep["gradient_zero"], (inst, rep["gradient_status"])
