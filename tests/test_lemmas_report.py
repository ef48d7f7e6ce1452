"""The lemma section of `ncverify run` (results.json keys, report.md section, changed verdicts) and the
exit code of `ncverify lemmas` when a lemma's verdict differs from its record."""
from __future__ import annotations

import dataclasses
import json

from ncverify.proofs_checks import lemmas as L
from ncverify.proofs_checks import report
from ncverify.proofs_checks.catalogue import by_id
from ncverify.proofs_checks.search import Budget, TheoremResult


def _stub_search(theorem, budget, *, seed=0, solver="lbfgs", progress=None):
    """A canned theorem-level result (the theorem search itself is tested elsewhere)."""
    return TheoremResult(theorem, theorem.expected.verdict, "stub")


def _flip_relu_record(monkeypatch):
    """Record the (false) ReLU step as "holds": its verdict must then show up as changed."""
    flipped = [dataclasses.replace(lm, expected="holds") if lm.id == "relu-nuclear-norm" else lm for lm in L.LEMMAS]
    monkeypatch.setattr(L, "LEMMAS", flipped)


def test_run_report_has_a_lemma_section_and_tracks_lemma_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "search_theorem", _stub_search)
    _flip_relu_record(monkeypatch)  # a wrong record, so the changed-verdict path is exercised too
    th = by_id("tirer2022.extended-relu")
    data = report.run_catalogue([th], [], Budget.of("quick"), seed=0)
    ids = {r["id"] for r in data["lemmas"]}
    assert {"relu-nuclear-norm", "balancedness-relu-diagonal", "reduction:extended-relu", "factorization-identity"} <= ids
    assert all(th.id in r["used_by"] for r in data["lemmas"])
    assert data["changed_verdicts"] == ["lemma:relu-nuclear-norm"]
    w = data["wrong_lemmas"]
    assert w["caught"] == w["total"] > 0
    assert any(f["lemma"] == "relu-nuclear-norm" and f["finding"] for f in data["lemma_findings"])
    report.write_report(data, tmp_path, figures=False)
    md = (tmp_path / "report.md").read_text()
    assert "## Lemmas (proof steps)" in md and f"Wrong lemmas caught: {w['total']} of {w['total']}" in md
    assert "ncverify lemmas --only relu-nuclear-norm --budget quick --seed 0" in md
    saved = json.loads((tmp_path / "results.json").read_text())
    assert {"lemmas", "wrong_lemmas"} <= set(saved)
    assert "lemmas" not in report.run_catalogue([th], [], Budget.of("quick"), lemmas=False)


def test_cli_lemmas_exit_code_tracks_the_record(monkeypatch, capsys):
    from ncverify.proofs_checks.cli import main

    _flip_relu_record(monkeypatch)
    rc = main(["lemmas", "--json", "--budget", "quick", "--only", "relu-nuclear-norm", "--no-wrong"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["changed_verdicts"] == ["lemma:relu-nuclear-norm"]
    assert data["wrong_lemmas"]["total"] == 0
