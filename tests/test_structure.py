"""The restructured pieces on their own: the pure verdict table, mutants as prediction transforms, immutable
predictions, the family registry, the error hierarchy and its exit codes, theorem ids resolved by the catalogue."""
from __future__ import annotations

import dataclasses

import pytest

from ncverify.numerics.problem import Instance, InstanceError
from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS, by_id
from ncverify.proofs_checks.cli import main
from ncverify.proofs_checks.errors import InvalidInstanceError, UnknownIdError
from ncverify.proofs_checks.statement import mutant, with_geometry
from ncverify.proofs_checks.verify import Check, Evidence, Status, Verdict, decide
from ncverify.theory import families
from ncverify.theory.errors import TheoryInputError
from ncverify.theory.prediction import GramTarget, Prediction, SingularValues, exact


# -- the verdict table ---------------------------------------------------------------------------
def _ev(check: Check, status: Status, q: str = "q") -> Evidence:
    return Evidence(check, q, status, 1.0, 0.5, "origin")


def test_decide_refutes_on_any_failure_and_names_numerics_first():
    v, reason = decide([_ev(Check.DERIVATION, Status.FAIL, "f*"), _ev(Check.NUMERICS, Status.FAIL, "lower point"),
                        _ev(Check.MATCH, Status.PASS)])
    assert v is Verdict.REFUTED and reason.startswith("numerics: lower point")


def test_decide_needs_a_numeric_match_to_verify():
    assert decide([_ev(Check.DERIVATION, Status.PASS), _ev(Check.POINT, Status.PASS)])[0] is Verdict.INCONCLUSIVE
    assert decide([])[0] is Verdict.INCONCLUSIVE
    assert decide([_ev(Check.MATCH, Status.PASS), _ev(Check.NUMERICS, Status.UNSETTLED, "conditioning")]) == \
        (Verdict.INCONCLUSIVE, "conditioning (gap 1 > tol 0.5)")
    assert decide([_ev(Check.MATCH, Status.PASS), _ev(Check.POINT, Status.INFO)])[0] is Verdict.VERIFIED


def test_a_match_label_in_words_does_not_verify():
    """The verdict reads the typed check, never an English label."""
    fake = Evidence(Check.NUMERICS, "numeric minimum reaches the claimed minimum", Status.PASS)
    assert decide([fake])[0] is Verdict.INCONCLUSIVE


# -- predictions and mutants ---------------------------------------------------------------------
def _pred() -> Prediction:
    return Prediction(family="mse-deep", instance={"counts": [2, 2]}, objective=exact(1),
                      singular_values=SingularValues([exact(1), exact(2)]),
                      gram_targets={"WWT": GramTarget("ETF", [exact(0.5), exact(0.5)])})


def test_predictions_are_immutable():
    p = _pred()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.objective = exact(2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.gram_targets["HbarTHbar"] = GramTarget("OF")  # type: ignore[index]
    assert isinstance(p.singular_values.weights_product, tuple)
    with pytest.raises(TypeError, match="SingularValues"):
        Prediction(family="x", instance={}, objective=None, singular_values={"weights_product": []})  # type: ignore


def test_with_geometry_rescales_the_diagonal():
    q = with_geometry(_pred(), "OF")
    assert q.gram_targets["WWT"].kind == "OF" and float(q.gram_targets["WWT"].diag[0].value) == pytest.approx(1.0)
    assert _pred().gram_targets["WWT"].kind == "ETF"  # the original is untouched


def test_mutants_transform_the_faithful_claim():
    base = by_id("tirer2022.mse-ufm")
    m = mutant(base, "t", "objective doubled", lambda inst, p: p.with_(scalars={**p.scalars, "tag": [exact(7)]}))
    inst = base.examples[0]
    assert m.id == "mutant:tirer2022.mse-ufm:t" and m.mutant_of == base.id and m.expected.verdict == "refuted"
    assert m.claim(inst).scalar_values("tag") == [7.0]
    assert "tag" not in base.claim(inst).scalars
    assert all(t.mutant_of in {b.id for b in THEOREMS} for t in MUTANTS)


def test_unknown_shape_claim_is_an_error_not_ignored():
    with pytest.raises(ValueError, match="unknown shape claim"):
        dataclasses.replace(by_id("tirer2022.extended-relu"), shape_claims=("nc1_pre_activation",))


# -- registry, errors, ids -----------------------------------------------------------------------
def test_family_registry_names_known_families():
    with pytest.raises(TheoryInputError, match="known families: mse-deep"):
        families.get("dang2023.mse-deep")  # a theorem id is not a family


def test_assumption_errors_are_invalid_instance_errors():
    th = by_id("tirer2022.mse-ufm")
    with pytest.raises(InvalidInstanceError, match="needs depth M = 1") as e:
        th.validate(Instance.create([2, 2], width=2, depth=2))
    assert isinstance(e.value, InstanceError)
    with pytest.raises(UnknownIdError, match="unknown theorem id"):
        by_id("no-such.id")


def test_every_listed_theorem_id_derives(capsys):
    for t in THEOREMS:
        inst = t.examples[0]
        flags = inst.cli_flags().split()
        assert main(["derive", t.id, *flags, "--json"]) == 0, t.id
        assert f'"requested_id": "{t.id}"' in capsys.readouterr().out


def test_unknown_only_id_is_bad_input(capsys, tmp_path):
    assert main(["run", "--only", "no-such-id", "--out", str(tmp_path / "r"), "--no-figures"]) == 2
    assert "unknown theorem id" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_bug_is_reported_as_a_bug(monkeypatch, capsys):
    from ncverify.proofs_checks.cli import commands

    def broken(args):
        raise KeyError("internal")
    monkeypatch.setattr(commands, "cmd_list", broken)
    monkeypatch.delenv("NCVERIFY_DEBUG", raising=False)
    assert main(["list"]) == 3
    err = capsys.readouterr().err
    assert "internal error (a bug" in err and "KeyError" in err and "Traceback" not in err


def test_a_broken_user_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "mine.py"
    f.write_text("x = 1\nraise RuntimeError('oops')\n")
    assert main(["list", "--theorems", str(f)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{f}:2: RuntimeError: oops" in err  # FILE:LINE: (the format)


def test_a_crash_while_building_the_claimed_point_is_not_swallowed(monkeypatch):
    from ncverify.proofs_checks.verify import stages

    def broken(*a, **k):
        raise KeyError("bug in the construction")
    monkeypatch.setattr(stages.construct, "construct_numpy", broken)
    th = by_id("tirer2022.mse-ufm")
    with pytest.raises(KeyError):
        stages.construct_claimed_point(th.claim(th.examples[0]), th.examples[0])

