"""`ncverify run` end to end on a small slice of the catalogue, and user theorems from a file."""
from __future__ import annotations

import json
import textwrap

from ncverify.proofs_checks.cli import main

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
