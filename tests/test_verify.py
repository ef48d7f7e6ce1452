"""The verification engine: per-theorem property tests against the recorded verdicts, mutants refuted,
bad instances rejected with clear errors, the papers' gd protocol end to end, and the tolerances."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncverify.numerics.problem import Instance, InstanceError
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS, by_id
from ncverify.proofs_checks.catalogue.dang2023 import dang_root_rule_fails
from ncverify.proofs_checks.cli import main
from ncverify.proofs_checks.search import Budget, search_theorem

IDS = [t.id for t in THEOREMS]


def test_catalogue_has_every_fixed_id():
    assert set(IDS) == {"dang2023.mse-deep", "dang2023.mse-deep-bias", "dang2023.ce-deep", "tirer2022.mse-ufm",
                        "tirer2022.mse-ufm-bias", "tirer2022.extended-linear", "tirer2022.extended-relu",
                        # the shipped loss variants (issue 6, proofs_checks.claims_variants)
                        "zhu2021.ce-ufm", "ce-label-smoothing", "ce-focal", "zhou2022.mse-ufm-bias",
                        # deep CE beyond the simplex ETF (the corrected conjecture)
                        "ce-deep-etf-boundary",
                        # the field's other theorems (issue 16)
                        "liu2024.mse-deep-bias-imbalanced", "hong2023.ce-minority-collapse", "thrampoulidis2022.seli",
                        "fang2021.lpm", "andriopoulos2024.regression-collapse", "sukenik2023.dufm-binary"}
    for t in THEOREMS:
        assert t.source and t.provenance and t.objective and t.examples
        for inst in t.examples:
            t.validate(inst)


@pytest.mark.parametrize("tid", IDS)
def test_verdict_on_drawn_instances_matches_the_record(tid):
    """Per theorem: on instances its strategy draws (incl. both sides of the derived phase boundaries),
    the per-instance verdict is what the record says (refuted exactly where the record says so)."""
    th = by_id(tid)

    @settings(max_examples=4, deadline=None, derandomize=True, database=None)
    @given(th.strategy())
    def prop(inst: Instance) -> None:
        res = verify.check(th, inst, starts=max(3, th.min_starts), seed=0)
        want = th.expected.instance_verdict(inst)
        if want == "refuted":
            assert res.verdict == "refuted", (inst.cli_flags(), res.reason)
        else:
            assert res.verdict != "refuted", (inst.cli_flags(), res.reason)
            # an unsettled result must say why; a verified one must carry a passing numeric match
            if res.verdict == "verified":
                assert any(e.check == "numeric match" and e.status == "pass" for e in res.evidence)
            else:
                assert res.reason

    prop()


@pytest.mark.parametrize("tid", IDS)
def test_examples_verdicts(tid):
    th = by_id(tid)
    for inst in th.examples:
        res = verify.check(th, inst, starts=max(3, th.min_starts))
        assert res.verdict == ("refuted" if th.expected.instance_verdict(inst) == "refuted" else "verified"), res.reason


@pytest.mark.parametrize("mid", [m.id for m in MUTANTS])
def test_every_mutant_is_refuted_with_a_counterexample(mid):
    res = search_theorem(by_id(mid), Budget.of("quick"), seed=0)
    assert res.verdict == "refuted", res.reason
    assert res.counterexample is not None and res.counterexample.reproduce.startswith(f"ncverify check {mid} ")


def test_mse_deep_counterexample_is_refuted_by_numerics_too():
    """The finding: for M = 2 the largest-root rule keeps a class that the global minimizer collapses."""
    th = by_id("dang2023.mse-deep")
    inst = Instance.create([1, 1], width=2, depth=2, lam_w=0.1, lam_h=1.05469)
    assert dang_root_rule_fails(inst)
    res = verify.check(th, inst, starts=3)
    assert res.verdict == "refuted"
    lower = [e for e in res.evidence if e.check == "numerics" and e.quantity.startswith("numeric objective vs claimed")]
    assert lower and lower[0].status == "fail" and lower[0].error > 0.03  # 0.5 (W = H = 0) vs claimed 0.537


def test_largest_root_rule_is_fine_below_both_thresholds():
    th = by_id("dang2023.mse-deep")
    inst = Instance.create([1, 1], width=2, depth=2, lam_w=0.1, lam_h=0.5)
    assert not dang_root_rule_fails(inst)
    assert verify.check(th, inst, starts=3).verdict == "verified"


@pytest.mark.parametrize(
    "tid, inst, fragment",
    [
        ("dang2023.mse-deep-bias", dict(counts=[3, 2], width=2, bias=True), "needs balanced classes"),
        ("dang2023.mse-deep", dict(counts=[3, 2, 2], width=2), "needs width d >= K"),
        ("dang2023.ce-deep", dict(counts=[2, 2], width=2), "is about the CE loss"),
        ("dang2023.ce-deep", dict(counts=[2, 2], width=2, loss="ce", bias=True), "needs lambda_b > 0"),
        ("tirer2022.mse-ufm", dict(counts=[2, 2], width=2, depth=2), "needs depth M = 1"),
        ("tirer2022.extended-relu", dict(counts=[2, 2], width=2, depth=2, activation="identity"), "needs activation relu"),
        ("tirer2022.mse-ufm-bias", dict(counts=[2, 2], width=2, bias=True, lam_b=0.1), "needs lambda_b = 0"),
    ],
)
def test_bad_instances_get_clear_errors(tid, inst, fragment):
    with pytest.raises(InstanceError, match=fragment):
        by_id(tid).validate(Instance.create(**inst))


def test_check_cli_bad_instance_is_one_line(capsys):
    rc = main(["check", "dang2023.mse-deep-bias", "--counts", "3,2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "needs balanced classes" in err[0]


@pytest.mark.parametrize("tid, flags", [
    ("dang2023.mse-deep", dict(counts=[2, 1], width=2, depth=2, lam_w=0.02, lam_h=0.02)),
    ("dang2023.ce-deep", dict(counts=[2, 2], width=2, depth=1, lam_w=0.01, lam_h=0.01, loss="ce")),
    # ReLU with d = K ends in dead-unit minima from most starts; d = 2K is the usual over-parametrized setting
    ("tirer2022.extended-relu", dict(counts=[2, 2], width=4, depth=2, lam_w=0.01, lam_h=0.01, activation="relu")),
    ("tirer2022.extended-linear", dict(counts=[2, 2], width=2, depth=2, lam_w=0.01, lam_h=0.01, activation="identity")),
    ("dang2023.mse-deep-bias", dict(counts=[2, 2], width=2, depth=1, lam_w=0.01, lam_h=0.01, bias=True)),
])
def test_gd_protocol_end_to_end(tid, flags):
    """The papers' protocol (momentum gd, lr 0.1, init N(0, 0.1^2)) reaches a verified verdict."""
    th = by_id(tid)
    res = verify.check(th, Instance.create(**flags), solver="gd", starts=max(2, th.min_starts), seed=0)
    assert res.verdict == "verified", res.reason
    assert res.numerics["solver"] == "gd"


def test_check_json_keys(capsys):
    rc = main(["check", "tirer2022.mse-ufm", "--classes", "2", "--per-class", "2", "--json", "--starts", "2"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and {"theorem", "instance", "verdict", "evidence"} <= set(data)
    assert data["verdict"] in ("verified", "refuted", "inconclusive")
    e = [x for x in data["evidence"] if x["tolerance"] is not None]
    assert e and all(x["origin"] for x in e)  # every tolerance says where it came from


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in data["theorems"]] == IDS
    assert all({"id", "title", "source", "expected_verdict"} <= set(t) for t in data["theorems"])


@settings(max_examples=20, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(0, 1e-3), st.floats(1e-6, 10))
def test_tolerances_are_positive_and_finite(S, g, mu):
    from ncverify.proofs_checks import tolerances as tl

    ev = tl.evaluation(S, 100)
    m = tl.objective_match(ev, g, mu)
    d = tl.argmin_distance(ev, g, mu)
    assert 0 < ev.value < m.value < math.inf and 0 < d.value < math.inf
    assert ev.origin and m.origin and d.origin
