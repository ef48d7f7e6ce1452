"""Instance validation: every violated condition gives an InstanceError naming it."""
import math

import pytest

from ncverify.numerics.problem import Instance, InstanceError


def test_create_balanced_and_per_layer():
    inst = Instance.create(classes=3, per_class=4, width=5, depth=2, lam_w=[1e-3, 2e-3], lam_h=1e-2)
    assert inst.counts == (4, 4, 4) and inst.K == 3 and inst.N == 12 and inst.balanced and inst.n == 4
    assert inst.lam_w == (1e-3, 2e-3)
    assert Instance.create([3, 2], width=2, depth=3, lam_w=0.1).lam_w == (0.1, 0.1, 0.1)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(counts=[3, 0], width=2), "n_2 must be >= 1"),
        (dict(counts=[3, -1], width=2), "n_2 must be >= 1"),
        (dict(counts=[3, 2], width=0), "width d must be >= 1"),
        (dict(counts=[3, 2], width=2, depth=0), "depth M must be >= 1"),
        (dict(counts=[3, 2], width=2, lam_h=-1.0), "lambda_H must be > 0"),
        (dict(counts=[3, 2], width=2, lam_h=math.nan), "lambda_H must be finite"),
        (dict(counts=[3, 2], width=2, lam_w=math.inf), "lambda_W1 must be finite"),
        (dict(counts=[3, 2], width=2, depth=2, lam_w=[1e-3, 1e-3, 1e-3]), "one lambda_W per layer"),
        (dict(counts=[3, 2], width=2, bias=True, lam_b=-0.5), "lambda_b must be >= 0"),
        (dict(counts=[3, 2], width=2, loss="hinge"), "loss must be one of"),
        (dict(counts=[3, 2], width=2, activation="relu"), "needs depth M >= 2"),
        (dict(counts=[2.5, 2], width=2), "n_1 must be an integer"),
    ],
)
def test_bad_instances_name_the_condition(kwargs, fragment):
    with pytest.raises(InstanceError, match=fragment):
        Instance.create(**kwargs)


def test_width_requirement():
    inst = Instance.create([2, 2, 2], width=2)
    with pytest.raises(InstanceError, match="d >= K"):
        inst.require_width_at_least_classes("an orthogonal frame")


def test_cli_flags_round_trip_fields():
    inst = Instance.create([5, 3], width=4, depth=2, lam_w=[1e-3, 5e-4], lam_h=2e-3, loss="ce", bias=True, lam_b=1e-3)
    flags = inst.cli_flags()
    assert "--counts 5,3" in flags and "--lam-w 0.001,0.0005" in flags and "--bias" in flags
