"""`ncverify run` end to end on a small slice of the catalogue, and user theorems from a file; the report
(concise report.md, escaped tables, results.json provenance keys, atomic writing, progress of every phase) and the
figures' NC2 targets."""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ncverify
from ncverify.proofs_checks import figures as F
from ncverify.proofs_checks import lemmas as L
from ncverify.proofs_checks import report
from ncverify.proofs_checks.catalogue import MUTANTS, by_id
from ncverify.proofs_checks.cli import main
from ncverify.proofs_checks.search import Budget, TheoremResult

ROOT = Path(__file__).resolve().parents[1]

USER_FILE = textwrap.dedent('''
    """A user's theorem file: the plain UFM claim with the threshold constant written as K^2 instead of K."""
    from dataclasses import replace
    from ncverify.proofs_checks.catalogue import Expected, by_id
    from ncverify.proofs_checks.catalogue.tirer2022 import threshold_c, ufm_prediction

    base = by_id("tirer2022.mse-ufm")
    THEOREMS = [
        replace(base, id="user.tirer-k2", title="plain UFM with a K^2 threshold (wrong)",
                claim=lambda inst: ufm_prediction(inst, threshold_c(inst) * inst.K, bias=False),
                expected=Expected("{expected}")),
    ]
''')


def _write(tmp_path, expected: str):
    p = tmp_path / "my_theorems.py"
    p.write_text(USER_FILE.replace("{expected}", expected))
    return str(p)


def test_run_writes_report_and_exit_code_tracks_the_record(tmp_path, capsys):
    out = tmp_path / "rep"
    rc = main(["run", "--budget", "quick", "--only", "tirer2022.mse-ufm", "--out", str(out), "--no-figures", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["changed_verdicts"] == []
    assert [t["id"] for t in data["theorems"]] == ["tirer2022.mse-ufm"]
    assert data["theorems"][0]["verdict"] == "verified"
    assert data["mutants"]["caught"] == data["mutants"]["total"] == 2
    saved = json.loads((out / "results.json").read_text())
    assert saved["theorems"][0]["verdict"] == "verified"
    md = (out / "report.md").read_text()
    assert "Mutants refuted: 2 of 2" in md and "tirer2022.mse-ufm" in md
    # provenance keys of results.json
    assert saved["schema_version"] == 1 and isinstance(saved["schema_version"], int)
    assert saved["suite_version"] == ncverify.__version__
    assert saved["commit"] == _git_head()
    assert set(saved["versions"]) >= {"torch", "sympy"} and saved["versions"]["sympy"]
    assert saved["python"].count(".") == 2 and saved["seed"] == 0 and saved["budget"] == "quick"
    assert saved["command"].startswith("ncverify run --budget quick --seed 0") and "--only tirer2022.mse-ufm" in saved["command"]
    # one concise report: the summary table comes first, tables are well formed, the checks are folded
    assert len(md.encode()) < 8000, len(md.encode())
    summary = md.index("| theorem | verdict | recorded | coverage | worst error vs tolerance |")
    assert summary < md.index("## Theorems") < md.index("## Mutants") < md.index("## Lemmas")
    row = next(line for line in md.splitlines() if line.startswith("| `tirer2022.mse-ufm` |"))
    assert "**verified**" in row and "instances, " in row and " numeric (K " in row and "lambda " in row
    assert "<details>" in md and md.count("<details>") == md.count("</details>")
    _assert_tables_well_formed(md)


def _git_head() -> str | None:
    """HEAD of the repository the tests run from (None when it is not a git checkout)."""
    if not (ROOT / ".git").exists():
        return None
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row (a pipe preceded by a backslash is text, not a separator)."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def _assert_tables_well_formed(md: str) -> None:
    """Every row of every table has as many cells as its header."""
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|"):
            n = len(_cells(lines[i]))
            assert set(lines[i + 1].replace("|", "")) <= set("-: "), lines[i + 1]
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert len(_cells(lines[j])) == n, (lines[i], lines[j])
                j += 1
            i = j
        else:
            i += 1


def _row(tid: str, **over) -> dict:
    """A results.json theorem row whose free text is full of pipes (norms written ||Z||_*)."""
    ev = {"check": "numerics", "quantity": "||Z||_* = sum_i sigma_i(Z)", "status": "fail", "error": 0.5,
          "tolerance": 1e-9, "origin": "||Delta Z||_F <= ...", "detail": "|a| vs |b|"}
    inst = {"loss": "mse", "counts": [2, 2], "width": 2, "depth": 1, "lam_w": [0.01], "lam_h": 0.01, "bias": False,
            "lam_b": 0.0, "activation": None}
    row = {"id": tid, "title": "a claim on ||W||_F | and ||H||_*", "source": "notes | 2025", "provenance": "p",
           "verdict": "refuted", "expected_verdict": "refuted", "matches_record": True,
           "reason": "||Z||_* of the numeric point 1.23 < claimed 1.25 | lower", "instances_tried": 9,
           "numeric_checks": 1, "worst": ev,
           "counterexample": {"instance": inst, "reproduce": "ncverify check x --counts 2,2", "reason": "|x| < |y|",
                              "verdict": "refuted"},
           "region": "where ||x|| > 1", "mutant_of": None, "mutation": "", "seconds": 1.0,
           "checks": [{"theorem": tid, "instance": inst, "verdict": "refuted", "reason": "||Z||_* too small | yes",
                       "evidence": [ev], "seconds": 0.5, "reproduce": "ncverify check x --counts 2,2"}]}
    row.update(over)
    return row


def test_markdown_escapes_pipes_in_every_table():
    lemma = {"id": "nuclear|norm", "title": "||relu(X)||_* <= ||X||_*", "statement": "||relu(X)||_* <= ||X||_*",
             "used_by": ["t|1"], "verdict": "violated", "expected_verdict": "violated", "reason": "||X||_* | found",
             "methods": "m", "finding": "f", "counterexample": None, "reproduce": "ncverify lemmas --only x",
             "evidence": []}
    data = {"budget": "quick", "seed": 0, "solver": "lbfgs", "seconds": 1.0, "changed_verdicts": [],
            "theorems": [_row("t|1"), _row("t2", worst=None, counterexample=None, verdict="verified",
                                           expected_verdict="verified")],
            "mutants": {"caught": 1, "total": 1, "missed": [], "results": [_row("mutant:t|1:x", mutation="a |b| c")]},
            "lemmas": [lemma], "wrong_lemmas": {"caught": 0, "total": 0, "missed": [], "results": []}}
    md = report.markdown(data, [])
    _assert_tables_well_formed(md)
    assert "\\|\\|Z\\|\\|_*" in md  # escaped inside table cells
    assert report.cell("||Z||_*") == "\\|\\|Z\\|\\|_*"
    # cut at a word boundary, never inside a number
    assert report.cell("error 0.123456789 vs 1e-9", 12) == "error …"


def test_report_writing_is_atomic(tmp_path, monkeypatch):
    """A failure while drawing the figures leaves the previous report as it was (and no partial files)."""
    out = tmp_path / "rep"
    data = {"budget": "quick", "seed": 0, "solver": "lbfgs", "seconds": 1.0, "changed_verdicts": [],
            "theorems": [_row("t1")], "mutants": {"caught": 0, "total": 0, "missed": [], "results": []}}
    report.write_report(data, out, figures=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"report.md", "results.json"}

    def broken(data, out, **kw):
        out.mkdir(parents=True)
        (out / "singular_values.png").write_bytes(b"partial")
        raise RuntimeError("figure failed")

    monkeypatch.setattr(F, "make_all", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        report.write_report({**data, "seed": 1}, out, figures=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    fresh = tmp_path / "new"
    with pytest.raises(RuntimeError):
        report.write_report(data, fresh, figures=True)
    assert not fresh.exists()


def _stub_search(theorem, budget, *, seed=0, solver="lbfgs", progress=None):
    """A canned theorem-level result (the search itself is tested above): reports two steps of progress."""
    if progress:
        progress(f"{theorem.id}: searching")
        progress(f"{theorem.id}: numeric checks")
    return TheoremResult(theorem, theorem.expected.verdict, "stub")


def test_progress_covers_every_phase(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "search_theorem", _stub_search)
    keep = {"mirsky-alignment", "von-neumann-trace"}  # two cheap lemmas of tirer2022.mse-ufm
    monkeypatch.setattr(L, "LEMMAS", [lm for lm in L.LEMMAS if lm.id in keep])
    calls: list[tuple[str, str, int, int]] = []
    th = by_id("tirer2022.mse-ufm")
    muts = [m for m in MUTANTS if m.mutant_of == th.id]
    data = report.run_catalogue([th], muts, Budget.of("quick"), progress=lambda *a: calls.append(a))
    report.write_report(data, tmp_path, figures=True, progress=lambda *a: calls.append(a))
    phases = [c[0] for c in calls]
    assert [p for i, p in enumerate(phases) if p not in phases[:i]] == list(report.PHASES)
    for phase in report.PHASES:
        steps = [(done, total) for ph, _, done, total in calls if ph == phase]
        total = steps[-1][1]
        assert total >= 1 and steps[-1][0] == total, (phase, steps)
        assert [d for d, _ in steps] == sorted(d for d, _ in steps), (phase, steps)  # counts only advance
        assert len({d for d, _ in steps}) == total + 1, (phase, steps)  # every step reported
    totals = {ph: t for ph, _, _, t in calls}
    assert totals["mutants"] == 2 and totals["lemmas"] == 3  # 2 lemmas and the wrong von Neumann trace inequality
    assert (tmp_path / "figures" / "nc_along_gd.png").stat().st_size > 0


@pytest.mark.parametrize("tid", ["ce-label-smoothing", "ce-focal"])
def test_nc2_is_measured_against_the_predicted_gram(tid):
    """The NC2 curve of the label-smoothing and focal runs is measured against the Gram their prediction states (a
    simplex ETF with the derived scale), so it ends near 0; an orthogonal-frame target would stay near 0.6."""
    th = by_id(tid)
    inst = F.example_instance(th)
    target = F.nc2_target(th, inst)
    assert target.gram == "WWT" and target.source == "claim" and target.kind.upper() == "ETF"
    K = inst.K
    assert np.allclose(target.matrix * K / np.trace(target.matrix), (K * np.eye(K) - 1) / (K - 1))
    rec = F.nc_along_gd_data([th])[0]
    assert rec["id"] == tid and rec["nc2_target"]["label"] == "W W^T vs claimed ETF"
    assert rec["nc2"][-1] < 1e-4 and rec["nc2"][-1] < rec["nc2"][0]
    G = K * np.eye(K) - 1  # the simplex ETF against the orthogonal frame: what the old hard-coded target measured
    assert F.Nc2Target("WWT", "claim", "OF").distance(G) > 0.5


def test_nc2_target_with_relabelled_matrix_and_curve_styles():
    T = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    t = F.Nc2Target("WWT", "derivation", "general", T, relabel=True)
    perm = [2, 0, 1]
    assert t.distance(3 * T[np.ix_(perm, perm)]) < 1e-12  # any relabelling of the classes, any scale
    assert t.distance(np.eye(3)) > 0.1
    assert np.isnan(t.distance(np.zeros((3, 3))))  # collapsed: no shape
    styles = {tuple(sorted((k, str(v)) for k, v in F.curve_style(i).items())) for i in range(F.STYLES)}
    assert len(styles) == F.STYLES


def test_user_theorem_file_check_list_and_changed_verdict(tmp_path, capsys):
    path = _write(tmp_path, "verified")  # a wrong record: the claim is false
    assert main(["list", "--theorems", path, "--json"]) == 0
    ids = [t["id"] for t in json.loads(capsys.readouterr().out)["theorems"]]
    assert "user.tirer-k2" in ids
    rc = main(["check", "--theorems", path, "user.tirer-k2", "--classes", "3", "--per-class", "2", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 4 and res["verdict"] == "refuted"  # check's exit code for refuted (exitcodes)
    rc = main(["run", "--budget", "quick", "--theorems", path, "--only", "user.tirer-k2", "--out", str(tmp_path / "r"),
               "--no-figures", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["changed_verdicts"] == ["user.tirer-k2"]


def test_bad_theorem_file_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "empty.py"
    p.write_text("X = 1\n")
    assert main(["list", "--theorems", str(p)]) == 2
    assert "must define THEOREMS" in capsys.readouterr().err
    assert main(["list", "--theorems", str(tmp_path / "missing.py")]) == 2
