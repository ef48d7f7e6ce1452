"""Shape claims about any layer (``statement.shapes``): parsed when the theorem is made, checked at every numeric
minimizer that reaches the claimed minimum, refuted when false, an error when malformed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.catalogue import by_id
from ncverify.proofs_checks.errors import UsageError
from ncverify.proofs_checks.statement import shapes
from ncverify.proofs_checks.verify import shapes as vshapes
from ncverify.proofs_checks.verify.evidence import Status


@pytest.mark.parametrize("name", ["nc1_pre_activation", "nc1:h", "gram:H=ETFF", "gram:Q=OF", "gram:H", "alignment:x",
                                  "self_duality:pre", "bogus:H", "self_duality:W"])
def test_malformed_shape_claims_are_refused_when_the_theorem_is_made(name):
    with pytest.raises(ValueError, match="shape claim"):
        dataclasses.replace(by_id("tirer2022.extended-relu"), shape_claims=(name,))


def test_aliases_and_layers_parse():
    assert shapes.parse("of_post") == shapes.ShapeClaim("gram", "post", "OF", "of_post")
    assert shapes.parse("nc1").layer == "H" and shapes.parse("gram:h3=GOF").geometry == "GOF"
    sc = shapes.parse("nc1:h3")
    assert shapes.layer_error(sc, Instance.create([2, 2], width=2, depth=2)) is not None
    assert shapes.layer_error(sc, Instance.create([2, 2], width=2, depth=4)) is None


def test_a_layer_the_instance_lacks_is_an_error_not_a_silent_pass():
    inst = Instance.create([2, 2], width=2, depth=2)
    p = {"weights": [np.eye(2), np.eye(2)], "H": np.eye(2), "b": None}
    with pytest.raises(UsageError, match="needs depth M >= 4"):
        vshapes.at_minimizers(["nc1:h3"], inst, [("start 0", p, 1e-8)])


def _check(theorem_id, extra, inst, starts):
    th = by_id(theorem_id)
    t = dataclasses.replace(th, shape_claims=th.shape_claims + extra)
    r = verify.check(t, inst, starts=starts)
    return r, {e.quantity.split(":")[0] + ":" + e.quantity.split(":")[1]: e for e in r.evidence
               if e.quantity.split(":")[0] in ("nc1", "gram", "self_duality", "alignment")}


def test_relu_pre_activation_geometry_gets_a_verdict():
    """The ReLU model's post-activation class means form an OF ([P2]); the pre-activation ones do not (the minimum
    leaves the negative parts free): a claim about them is refuted, never silently passed."""
    th = by_id("tirer2022.extended-relu")
    r, ev = _check("tirer2022.extended-relu", ("gram:pre=OF", "nc1:pre"), th.examples[0], th.min_starts)
    assert r.verdict == "refuted" and "gram:pre=OF" in r.reason
    assert ev["gram:pre=OF"].status == Status.FAIL and ev["gram:pre=OF"].error > 100 * ev["gram:pre=OF"].tolerance
    assert ev["nc1:pre"].status == Status.PASS  # NC1 does hold at the pre-activation layer


def test_deep_layer_claims_hold_where_the_theory_says_and_fail_where_it_does_not():
    """Deep linear MSE, imbalanced: every layer collapses (NC1) and the factors align, the layer-2 class means
    form a GOF (orthogonal, unequal norms) but not an OF."""
    inst = Instance.create([5, 3, 2], width=4, depth=3, lam_w=1e-2, lam_h=1e-2)
    extra = ("nc1:h1", "nc1:h2", "alignment:1", "alignment:2", "gram:h2=GOF", "gram:W_M=GOF", "gram:h1=OF")
    r, ev = _check("dang2023.mse-deep", extra, inst, 3)
    for name in extra[:-1]:
        assert ev[name].status == Status.PASS, (name, ev[name])
    assert ev["gram:h1=OF"].status == Status.FAIL and r.verdict == "refuted"


def test_a_claim_two_minimizers_disagree_on_is_refuted_as_undetermined():
    """Two points at the same minimum that disagree: the claim is reported as not determined by the minimum."""
    inst = Instance.create([1, 1], width=2, depth=1)
    a = {"weights": [np.eye(2)], "H": np.eye(2), "b": None}
    b = {"weights": [np.eye(2)], "H": np.array([[1.0, 0.5], [0.0, 1.0]]), "b": None}
    (ev,) = vshapes.at_minimizers(["gram:H=OF"], inst, [("start 0", a, 1e-9), ("start 1", b, 1e-9)])
    assert ev.status == Status.FAIL and "not determined by the minimum" in ev.detail
    assert "start 0" in ev.detail and "start 1" in ev.detail
