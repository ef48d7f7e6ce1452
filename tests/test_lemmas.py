"""The lemma registry (proof steps): recorded verdicts, seeded wrong lemmas, the ReLU counterexample
re-checked independently, the checkers' own machinery, and the ``ncverify lemmas`` CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ncverify.proofs_checks import lemmas as L
from ncverify.proofs_checks.lemmas import spectral as SP
from ncverify.proofs_checks.lemmas.core import Ctx, LemmaBudget, Outcome, Property, Trial, run_property

SEED = 0


@pytest.fixture(scope="module")
def quick_run() -> dict:
    """One run of every lemma and wrong lemma at the quick budget (shared by the tests below)."""
    return L.run_lemmas("quick", seed=SEED)


def _by_id(run: dict) -> dict:
    return {r["id"]: r for r in run["lemmas"] + run["wrong_lemmas"]["results"]}


# ---------------------------------------------------------------------------------------------
# recorded verdicts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lemma_id", [lm.id for lm in L.LEMMAS])
def test_lemma_verdict_matches_record(quick_run, lemma_id):
    r = _by_id(quick_run)[lemma_id]
    lemma = L.by_id(lemma_id)
    assert r["verdict"] == lemma.expected, r["reason"]
    assert r["statement"] and r["used_by"] and r["evidence"]
    assert all(t in L.ALL_THEOREMS for t in r["used_by"])
    if r["verdict"] == "holds":
        assert all(e["status"] in ("pass", "info") for e in r["evidence"])
        # a holding lemma was actually tried numerically or proved symbolically
        assert any(e["status"] == "pass" for e in r["evidence"])


@pytest.mark.parametrize("lemma_id", [lm.id for lm in L.WRONG_LEMMAS])
def test_wrong_lemma_is_violated_with_a_counterexample(quick_run, lemma_id):
    r = _by_id(quick_run)[lemma_id]
    assert r["verdict"] == "violated", r["reason"]
    ce = r["counterexample"]
    assert ce is not None and ce["lhs"] is not None and ce["rhs"] is not None
    assert ce["violation"] > ce["tolerance"] >= 0
    assert ce["data"], "the counterexample carries its numbers"


def test_wrong_lemmas_all_caught_and_nothing_changed(quick_run):
    w = quick_run["wrong_lemmas"]
    assert w["caught"] == w["total"] == len(L.WRONG_LEMMAS) and not w["missed"]
    assert quick_run["changed_verdicts"] == []


def test_smallest_counterexamples_of_the_wrong_lemmas(quick_run):
    r = _by_id(quick_run)
    # a wrong constant or exponent already fails for a 1 x 1 product; the reversed von Neumann
    # inequality holds with equality for 1 x 1, so its smallest counterexample is 1 x 2
    for wid in ("wrong:factorization-identity:m/3", "wrong:factorization-identity:+1%",
                "wrong:factorization-identity:exponent"):
        assert r[wid]["counterexample"]["size"][1:] == [1, 1]
    vn = r["wrong:von-neumann-trace:reversed"]["counterexample"]
    assert vn["size"] == [1, 2]
    A, B = np.array(vn["data"]["A"]), np.array(vn["data"]["B"])
    s = np.linalg.svd(A, compute_uv=False) @ np.linalg.svd(B, compute_uv=False)
    assert s - abs(np.sum(A * B)) > 0.5


# ---------------------------------------------------------------------------------------------
# the ReLU finding, re-checked independently with numpy
# ---------------------------------------------------------------------------------------------
def _nuc(X: np.ndarray) -> float:
    return float(np.linalg.svd(X, compute_uv=False).sum())


def test_relu_nuclear_counterexample_rechecked_with_numpy(quick_run):
    r = _by_id(quick_run)["relu-nuclear-norm"]
    assert r["verdict"] == "violated" and "tirer2022.extended-relu" in r["used_by"] and r["finding"]
    ce = r["counterexample"]
    X = np.array(ce["data"]["X"], dtype=float)
    assert X.shape == (3, 3)
    lhs, rhs = _nuc(np.maximum(X, 0.0)), _nuc(X)
    assert lhs > rhs + 1e-3
    assert math.isclose(lhs, ce["lhs"], rel_tol=1e-12) and math.isclose(rhs, ce["rhs"], rel_tol=1e-12)
    assert any(f["lemma"] == "relu-nuclear-norm" for f in quick_run["findings"])


def test_relu_nuclear_integer_counterexample_exact():
    X = np.array([[1, 1, 0], [1, 0, 1], [0, 1, -1]], dtype=float)
    assert math.isclose(_nuc(X), 2 * math.sqrt(3), rel_tol=1e-14)
    heptagon = 2 * (math.cos(math.pi / 7) + math.cos(2 * math.pi / 7) + math.cos(3 * math.pi / 7))
    assert math.isclose(_nuc(np.maximum(X, 0)), heptagon, rel_tol=1e-14)
    assert heptagon - 2 * math.sqrt(3) > 0.029
    # the circulant Gram matrix of 7 equally spaced unit vectors: ||X||_* = 7 < ||relu X||_*
    t = 2 * np.pi * np.arange(7) / 7
    G = np.cos(t[:, None] - t[None, :])
    assert math.isclose(_nuc(G), 7.0, rel_tol=1e-12) and _nuc(np.maximum(G, 0)) > 7.4


def test_relu_nuclear_norm_holds_for_all_2_by_2_found():
    """The search finds no 2 x 2 violation (consistent with 3 x 3 being the smallest)."""
    rng = np.random.default_rng(1)
    for _ in range(2000):
        X = rng.standard_normal((2, 2))
        assert _nuc(np.maximum(X, 0)) <= _nuc(X) + 1e-12


# ---------------------------------------------------------------------------------------------
# machinery
# ---------------------------------------------------------------------------------------------
def test_factorization_claim_and_balanced_construction():
    rng = np.random.default_rng(3)
    claim = SP.FactorizationClaim()
    for m in (1, 2, 3, 4):
        lams = np.exp(rng.uniform(-3, 2, m))
        Z = rng.standard_normal((2, 3))
        A = SP.balanced_factorization(Z, lams, rng, extra=1)
        t = SP.factorization_trial(claim, A, lams, two_sided=True)
        assert not t.failed and np.allclose(t.data["Z"], Z)
        # m = 2 is the nuclear norm
        if m == 2:
            assert math.isclose(claim.value(np.linalg.svd(Z, compute_uv=False), lams),
                                math.sqrt(lams[0] * lams[1]) * _nuc(Z), rel_tol=1e-13)
    # random factorizations never beat it
    for _ in range(50):
        A = [rng.standard_normal((3, 2)), rng.standard_normal((2, 3))]
        assert not SP.factorization_trial(claim, A, np.array([0.5, 2.0]), two_sided=False).failed


def test_property_runner_stops_at_the_smallest_failing_size():
    seen = []

    def trials(size):
        seen.append(size)
        n = size[0]
        yield Trial(float(n), 2.5, 1e-12, "test", {"n": n})  # claim n <= 2.5 fails from n = 3 on

    prop = Property("n <= 2.5", [(1,), (2,), (3,), (4,)], lambda s: f"n = {s[0]}")
    out = run_property("toy", "random", prop, trials)
    assert out.status == "fail" and out.counterexample.size == (3,) and seen == [(1,), (2,), (3,)]
    assert out.counterexample.violation == pytest.approx(0.5)


def test_decide_rules():
    lm = L.by_id("von-neumann-trace")
    ok = Outcome("a", "random", "pass", tries=3, error=0.0, tolerance=1.0)
    assert L.decide(lm, [ok])[0] == "holds"
    assert L.decide(lm, [ok, Outcome("b", "symbolic", "unsettled", detail="SymPy could not decide")])[0] == "inconclusive"
    assert L.decide(lm, [Outcome("c", "symbolic", "info")])[0] == "inconclusive"
    assert L.decide(lm, [ok, Outcome("d", "random", "fail")])[0] == "violated"


def test_select_by_lemma_and_theorem_ids():
    ids = [lm.id for lm in L.select(["relu-nuclear-norm"])]
    assert ids == ["relu-nuclear-norm"]
    ids = {lm.id for lm in L.select(["tirer2022.extended-relu"])}
    assert {"relu-nuclear-norm", "balancedness-relu-diagonal", "reduction:extended-relu", "factorization-identity"} <= ids
    assert "wrong:factorization-identity:m/3" in ids  # the wrong lemmas of a selected lemma come along
    assert not {lm.id for lm in L.select(theorems=["user.my-theorem"])}
    from ncverify.numerics.problem import InstanceError

    with pytest.raises(InstanceError, match="neither a lemma id nor a theorem id"):
        L.select(["no-such-lemma"])


def test_budget_names():
    assert LemmaBudget.of("quick").random_trials < LemmaBudget.of("default").random_trials
    from ncverify.numerics.problem import InstanceError

    with pytest.raises(InstanceError):
        LemmaBudget.of("huge")


def test_seeded_streams_are_reproducible():
    ctx = Ctx(LemmaBudget.of("quick"), 5)
    assert np.array_equal(ctx.rng("a").standard_normal(3), ctx.rng("a").standard_normal(3))
    assert not np.array_equal(ctx.rng("a").standard_normal(3), ctx.rng("b").standard_normal(3))


# ---------------------------------------------------------------------------------------------
# report section and CLI
# ---------------------------------------------------------------------------------------------
def test_lemma_markdown_section(quick_run):
    md = "\n".join(L.lemma_markdown(quick_run))
    k = quick_run["wrong_lemmas"]["total"]
    assert f"Wrong lemmas caught: {k} of {k}" in md
    assert "relu-nuclear-norm" in md and "Reproduce: `ncverify lemmas --only relu-nuclear-norm" in md
    assert "Finding" in md and "tirer2022.extended-relu" in md


def test_cli_lemmas_json(capsys):
    from ncverify.proofs_checks.cli import main

    rc = main(["lemmas", "--json", "--budget", "quick", "--only", "von-neumann-trace,relu-nuclear-norm"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(data) >= {"lemmas", "wrong_lemmas", "findings", "changed_verdicts", "budget", "seed"}
    assert [r["id"] for r in data["lemmas"]] == ["von-neumann-trace", "relu-nuclear-norm"]
    for r in data["lemmas"]:
        assert {"id", "statement", "used_by", "verdict", "evidence"} <= set(r)
        assert r["verdict"] in L.LEMMA_VERDICTS
    assert set(data["wrong_lemmas"]) >= {"caught", "total", "missed", "results"}
    assert data["wrong_lemmas"]["caught"] == data["wrong_lemmas"]["total"] == 1


def test_cli_lemmas_text_and_errors(capsys):
    from ncverify.proofs_checks.cli import main

    assert main(["lemmas", "--budget", "quick", "--only", "wrong:von-neumann-trace:reversed"]) == 0
    out = capsys.readouterr().out
    assert "wrong lemmas caught: 1 of 1" in out
    assert main(["lemmas", "--only", "nope"]) == 2
    assert "neither a lemma id nor a theorem id" in capsys.readouterr().err
    assert main(["lemmas", "--seed", "-1"]) == 2
