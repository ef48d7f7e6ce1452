"""The public Python API (``import ncverify``): light import, the CLI's operations with the same numbers,
structured results, one clear error class per bad input, the Hypothesis strategies and test helpers."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import ncverify as nv
from ncverify.proofs_checks.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ce_temperature.py"
SMALL = dict(classes=3, per_class=2, lam_w=5e-3, lam_h=5e-3)


def _cli_json(capsys, *argv: str) -> dict:
    main(list(argv))
    out, _ = capsys.readouterr()
    return json.loads(out)


def test_import_is_light_and_every_public_name_resolves():
    code = ("import sys, ncverify; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sympy', 'hypothesis'}); "
            "print(heavy, ncverify.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split("]")[0] + "]" == "[]", out
    for name in nv.__all__:
        assert getattr(nv, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nv.nope  # noqa: B018


def test_version_matches_the_installed_distribution():
    from importlib.metadata import version

    assert nv.__version__ == version("ncverify")


def test_check_gives_a_structured_verdict_equal_to_the_cli(capsys):
    res = nv.check("tirer2022.mse-ufm", starts=3, seed=2, **SMALL)
    assert isinstance(res, nv.CheckResult)
    assert res.reproduce.endswith(" --starts 3 --seed 2")  # the copied command gives the same numbers
    assert res.verdict == "verified"
    scored = [e for e in res.evidence if e.error is not None and e.tolerance is not None]
    assert scored and all(e.error <= e.tolerance for e in scored if e.status == "pass")
    assert all(e.origin for e in scored), "every tolerance names its origin"
    assert res.reproduce.startswith("ncverify check tirer2022.mse-ufm --loss mse --counts 2,2,2")
    cli = _cli_json(capsys, *res.reproduce.split()[1:], "--json")
    assert cli["verdict"] == res.verdict
    assert cli["numerics"]["best_objective"] == res.numerics["best_objective"]  # same seed, same numbers
    assert json.loads(json.dumps(res.to_json()))["theorem"] == "tirer2022.mse-ufm"


def test_check_refutes_a_wrong_claim_and_the_assertion_helper_says_why():
    from ncverify.testing import assert_verifies

    mutant = next(t for t in nv.theorems(mutants=True) if t.is_mutant and t.mutant_of == "tirer2022.mse-ufm")
    inst = mutant.examples[0] if mutant.examples else nv.instance(**SMALL)
    with pytest.raises(AssertionError) as info:
        assert_verifies(mutant, inst)
    msg = str(info.value)
    assert "expected verified, got refuted" in msg and "FAIL" in msg and "reproduce: ncverify check mutant:" in msg


def test_check_fills_the_flags_the_theorem_implies():
    p = nv.derive("zhu2021.ce-ufm", classes=3, per_class=2, lam_w=1e-2, lam_h=1e-2, lam_b=1e-2)
    assert p.requested_id == "zhu2021.ce-ufm"
    th = nv.get_theorem("zhu2021.ce-ufm")
    assert th.defaults.get("loss") == "ce" and th.defaults.get("bias") is True
    inst = nv.api._instance_for(th, None, dict(classes=3, per_class=2, lam_b=1e-2))
    assert inst.loss == "ce" and inst.bias


def test_derive_equals_the_cli_derivation(capsys):
    p = nv.derive("mse-deep", counts=[3, 2], depth=2, lam_w=1e-2, lam_h=1e-2)
    cli = _cli_json(capsys, "derive", "mse-deep", "--counts", "3,2", "--depth", "2", "--lam-w", "1e-2",
                    "--lam-h", "1e-2", "--json")
    assert nv.render_json(p) == cli
    assert "REDUCED PROBLEM" in nv.render_text(p)
    assert "mse-deep" in nv.families()


def test_solve_same_numbers_as_the_cli(capsys):
    s = nv.solve(counts=[3, 2], depth=2, starts=2, seed=3)
    assert isinstance(s, nv.SolveResult) and s.best.stop_reason == "converged"
    cli = _cli_json(capsys, "solve", "--counts", "3,2", "--depth", "2", "--starts", "2", "--seed", "3", "--json")
    assert s.objective == cli["objective"]
    assert s.measurements["singular_values"] == cli["singular_values"]
    assert [e["objective"] for e in s.end_points] == [e["objective"] for e in cli["distinct_end_points"]]
    assert math.isfinite(s.to_json()["objective"])


@pytest.mark.parametrize("call, error, fragment", [
    (lambda: nv.check("no.such-theorem", **SMALL), "UnknownIdError", "unknown theorem id 'no.such-theorem'"),
    (lambda: nv.check("tirer2022.mse-ufm", starts=0, **SMALL), "UsageError", "starts must be >= 1, got 0"),
    (lambda: nv.check("tirer2022.mse-ufm", colour=3, **SMALL), "UsageError", "unknown instance keyword(s) colour"),
    (lambda: nv.check("tirer2022.mse-ufm", counts=[2, 0]), "InstanceError", "n_2 must be >= 1"),
    (lambda: nv.check("tirer2022.mse-ufm", counts=[3, 2]), "InvalidInstanceError", "balanced"),
    (lambda: nv.check("tirer2022.mse-ufm", nv.instance(**SMALL), classes=2), "UsageError", "not both"),
    (lambda: nv.instance(classes=0, per_class=2), "InstanceError", "K must be >= 1"),
    (lambda: nv.instance(classes=2.5, per_class=2), "InstanceError", "must be an integer"),
    (lambda: nv.search("tirer2022.mse-ufm", budget="huge"), "UsageError", "budget must be one of"),
    (lambda: nv.run(only=[]), "UsageError", "only is empty"),
    (lambda: nv.run(only="tirer2022.mse-ufm"), "UsageError", "list of theorem ids"),
    (lambda: nv.run(only=["no-such-id"]), "UnknownIdError", "no-such-id"),
    (lambda: nv.run(only=["tirer2022.mse-ufm"], out="/proc/ncverify-x"), "UsageError", "cannot create"),
    (lambda: nv.derive("no-family", **SMALL), "UnknownIdError", "unknown family or theorem id"),
    (lambda: nv.derive("mse-deep", dps=3, **SMALL), "UsageError", "dps"),
    (lambda: nv.solve(counts=[2, 2], lr=-1.0), "UsageError", "lr must be a finite number > 0"),
    (lambda: nv.load_theorems("/no/such/file.py"), "UserFileError", "does not exist"),
])
def test_bad_input_raises_an_input_error_naming_the_condition(call, error, fragment):
    with pytest.raises(nv.INPUT_ERRORS) as info:
        call()
    assert type(info.value).__name__ == error
    assert fragment in str(info.value)


def test_user_theorem_file_through_the_api():
    mine = nv.load_theorems(EXAMPLE)
    assert [t.id for t in mine if not t.is_mutant] == ["mine.ce-temperature"]
    assert "mine.ce-temperature" in [t.id for t in nv.theorems(theorems_file=EXAMPLE)]
    p = nv.derive("mine.ce-temperature", theorems_file=EXAMPLE, classes=3, per_class=2, lam_w=1e-2, lam_h=1e-2,
                  loss="ce-temp:2")
    assert p.objective is not None and p.requested_id == "mine.ce-temperature"


def test_search_gives_the_theorem_level_verdict_with_its_coverage():
    r = nv.search("tirer2022.mse-ufm", budget="quick", seed=0)
    assert isinstance(r, nv.TheoremResult)
    assert r.verdict == "verified" and r.instances_tried >= len(r.checks) >= 1
    assert r.to_json()["numeric_checks"] == len(r.checks)
    # coverage: recomputed here from the checked instances; the verdict's reason names the same ranges
    cov = r.to_json()["coverage"]
    insts = [c.instance for c in r.checks]
    num = cov["numeric"]
    assert num["instances"] == len(insts)
    assert num["K"] == [min(i.K for i in insts), max(i.K for i in insts)]
    assert num["depth"] == [min(i.depth for i in insts), max(i.depth for i in insts)]
    lams = [v for i in insts for v in (*i.lam_w, i.lam_h)]
    assert num["lambda"] == [min(lams), max(lams)]
    assert cov["searched"]["instances"] == len(r.searched) >= 1
    assert cov["assumptions"] == list(nv.get_theorem("tirer2022.mse-ufm").assumptions)
    assert r.reason.startswith(f"verified on {len(insts)} numeric instances (K {num['K'][0]}")


# -- strategies ------------------------------------------------------------------------------------
def test_strategies_draw_the_theorem_domain_and_can_be_narrowed():
    from ncverify.strategies import instances, theorem_domain

    th = nv.get_theorem("dang2023.mse-deep")
    seen = []

    @settings(max_examples=25, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(instances("dang2023.mse-deep", K=(2, 3), depths=[2], near_boundaries=False))
    def draw(inst):
        th.validate(inst)  # every draw satisfies the theorem's stated assumptions
        seen.append(inst)

    draw()
    assert seen and all(2 <= i.K <= 3 and i.depth == 2 for i in seen)
    assert theorem_domain("dang2023.mse-deep").depths == th.strategy.depths  # no override: the catalogue's own
    with pytest.raises(nv.UsageError, match="unknown domain field"):
        theorem_domain("dang2023.mse-deep", colour=1)


def test_strategies_place_draws_near_the_derived_boundaries():
    from ncverify.proofs_checks.statement.domains import LAM_H_RATIOS, critical_values
    from ncverify.strategies import instances

    drawn = []

    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(instances("tirer2022.extended-linear"))
    def draw(inst):
        drawn.append(inst)

    draw()
    fam = nv.get_theorem("tirer2022.extended-linear").family

    def at_a_boundary(inst) -> bool:  # lambda_H = ratio x a derived critical lambda_H (6 digits)
        crit = critical_values(fam, inst).get("lam_h", [])
        return any(abs(inst.lam_h - float(f"{c * r:.6g}")) <= 1e-12 * inst.lam_h for c in crit for r in LAM_H_RATIOS)

    assert sum(map(at_a_boundary, drawn)) >= 2, [i.cli_flags() for i in drawn]


def test_measure_and_compare_a_numeric_minimizer_given_in_data_order():
    """nv.solve's global minimizer, its features shuffled into data order, measured and compared through the
    public API with the same lambdas: every shape and scale error is at rounding level."""
    import numpy as np

    s = nv.solve(classes=3, per_class=4, width=5, lam_w=5e-3, lam_h=5e-3, starts=3, seed=0)
    p = s.best.params.to_numpy()
    H, W = p["H"], p["weights"][0]  # d x N grouped class by class, K x d
    y = np.repeat(np.arange(3), 4)
    order = np.random.default_rng(1).permutation(len(y))
    m = nv.measure(H.T[order], y[order], weights=W)
    c = nv.compare(m, "tirer2022.mse-ufm", lam_w=5e-3, lam_h=5e-3)
    assert c.rows and max(r.error for r in c.rows if r.error is not None) < 1e-6
    wrong = nv.compare(m, "tirer2022.mse-ufm", lam_w=5e-3, lam_h=2e-2)
    assert max(r.error for r in wrong.rows if r.aspect == "scale" and r.error is not None) > 0.1


def test_run_writes_the_report_for_a_user_theorem(tmp_path):
    seen = []
    data = nv.run(only=["mine.ce-temperature"], theorems_file=EXAMPLE, budget="quick", out=tmp_path / "r",
                  lemmas=False, progress=lambda phase, msg, i, n: seen.append(phase))
    assert [t["id"] for t in data["theorems"]] == ["mine.ce-temperature"] and not data["changed_verdicts"]
    assert data["command"].startswith("ncverify run --budget quick") and "--theorems" in data["command"]
    assert (tmp_path / "r" / "report.md").is_file() and (tmp_path / "r" / "results.json").is_file()
    assert any((tmp_path / "r" / "figures").glob("*.png"))
    assert {"theorems", "figures", "writing"} <= set(seen)


def test_lemmas_through_the_api_include_the_seeded_wrong_version():
    d = nv.lemmas(budget="quick", only=["von-neumann-trace"])
    assert [(r["id"], r["verdict"]) for r in d["lemmas"]] == [("von-neumann-trace", "holds")]
    assert d["wrong_lemmas"]["caught"] == d["wrong_lemmas"]["total"] == 1  # the reversed inequality is violated


def test_a_refutation_only_the_numerics_see_is_shrunk_to_a_small_instance():
    """A claim with no derivation to compare and no point to build (only a too-high minimum value): the cheap search
    passes everywhere, the full numeric checks of the drawn instances refute it, and the replayed search shrinks the
    refutation with full checks to a small instance."""
    import dataclasses

    from ncverify.proofs_checks.search import Budget, search_theorem
    from ncverify.proofs_checks.verify import cheap_check
    from ncverify.theory.prediction import Exact, Prediction

    base = nv.get_theorem("tirer2022.extended-linear")  # depth 2: no convex oracle (it would see the value at M = 1)

    def too_high(inst):  # half the labels' energy: above the true minimum (< 1/2) everywhere but deep collapse
        return Prediction(family="ce-deep", instance=inst.as_dict(), objective=Exact(0.75, None, "wrong"))

    th = dataclasses.replace(base, id="test.numeric-only", family="ce-deep", claim=too_high, shape_claims=(),
                             examples=())  # family ce-deep: no derivation for an MSE instance
    inst = base.examples[0]
    assert not cheap_check(th, inst)  # nothing for the cheap check to see
    r = search_theorem(th, Budget("t", 6, 6, 2, 6), seed=0)
    assert r.verdict == "refuted"
    drawn_refuted = [c for c in r.checks if c.verdict == "refuted" and c.instance in r.searched]
    assert drawn_refuted, "the full checks of the drawn instances refute it"
    ce = r.counterexample.instance
    assert ce.K == min(c.instance.K for c in r.checks if c.verdict == "refuted")
    assert ce.K <= min(c.instance.K for c in drawn_refuted) and ce.N <= min(c.instance.N for c in drawn_refuted)


def test_default_domains_cover_the_stated_domain():
    """The catalogue's searches draw K up to 10, depths up to 6 where any depth is allowed, n_k up to 50 (and
    imbalance up to 100), widths to K + 8, lambdas over four decades; a narrower statement is enforced by its
    validator."""
    th = nv.get_theorem("dang2023.mse-deep")
    d = th.strategy
    assert d.K == (2, 10) and max(d.depths) >= 6 and d.n[1] >= 50 and d.n_max[1] >= 100 and d.extra_width >= 8
    assert d.lam[1] / d.lam[0] >= 1e4
    narrow = nv.get_theorem("ce-deep-etf-boundary")
    assert narrow.strategy.K == (3, 8) and "3 <= K <= 8" in " ".join(narrow.assumptions)
    with pytest.raises(nv.InstanceError, match="3 <= K <= 8"):
        narrow.validate(nv.instance([2] * 9, width=9, depth=2, loss="ce"))
