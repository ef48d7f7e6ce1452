"""Loss variants through the command line: the tutorial file gives a verdict; bad parameters give
one-line errors with exit code 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ncverify.proofs_checks.cli import main

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "examples" / "ce_temperature.py"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_tutorial_check_gives_a_verdict_in_a_fresh_process(tmp_path):
    """As a new user would: a copy of the tutorial file, the installed ``ncverify`` entry point, another cwd."""
    mine = tmp_path / "mine.py"
    shutil.copy(TUTORIAL, mine)
    exe = shutil.which("ncverify") or str(Path(sys.executable).with_name("ncverify"))
    proc = subprocess.run([exe, "check", "--theorems", str(mine), "mine.ce-temperature", "--classes", "3",
                           "--per-class", "2", "--lam-w", "1e-2", "--lam-h", "1e-2", "--loss", "ce-temp:2",
                           "--starts", "3", "--json"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "NCVERIFY_DEBUG": ""})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["theorem"] == "mine.ce-temperature"
    assert data["verdict"] in ("verified", "refuted", "inconclusive")
    assert data["verdict"] == "verified", data["reason"]


def test_tutorial_derive_and_run(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "derive", "--theorems", str(TUTORIAL), "ce-temperature", "--classes", "3",
                         "--per-class", "2", "--loss", "ce-temp:0.5")
    assert rc == 0 and "STATIONARY EQUATION" in out and "closed form" in out
    rc, out, _ = run_cli(capsys, "run", "--theorems", str(TUTORIAL), "--only", "mine.ce-temperature", "--budget",
                         "quick", "--no-figures", "--out", str(tmp_path / "rep"), "--json")
    data = json.loads(out)
    row = [t for t in data["theorems"] if t["id"] == "mine.ce-temperature"][0]
    assert row["verdict"] == "verified" and rc == 0


def test_squared_hinge_example_max_through_the_bridge(capsys):
    """sp.Max in the loss: bridged to torch.maximum (not SymPy's torch printer); piecewise reduced problem."""
    rc, out, _ = run_cli(capsys, "check", "--theorems", str(ROOT / "examples" / "squared_hinge.py"), "mine.sq-hinge",
                         "--classes", "3", "--per-class", "2", "--lam-w", "1e-2", "--lam-h", "1e-2", "--starts", "3",
                         "--json")
    data = json.loads(out)
    assert rc == 0 and data["verdict"] == "verified", data["reason"]
    assert abs(data["derivation"]["scalars"]["a"][0] - (1 - (2 * 1e-4) ** 0.5 / 2)) < 1e-12  # a = 1 - ell/2


@pytest.mark.parametrize("argv, fragment", [
    (["check", "ce-label-smoothing", "--classes", "3", "--per-class", "2", "--loss", "ce-ls:1.5"],
     "label smoothing delta must be in [0, 1), got delta = 1.5"),
    (["check", "ce-focal", "--classes", "3", "--per-class", "2", "--loss", "focal:-2"], "focal loss gamma must be >= 0"),
    (["solve", "--classes", "3", "--per-class", "2", "--loss", "focal:two"], "gamma must be a number"),
    (["solve", "--classes", "3", "--per-class", "2", "--loss", "ce-ls"], "needs 1 parameter(s) (delta)"),
    (["solve", "--classes", "3", "--per-class", "2", "--loss", "squared-hinge"], "loss must be one of"),
    (["check", "--theorems", str(TUTORIAL), "mine.ce-temperature", "--classes", "3", "--per-class", "2", "--loss",
      "ce-temp:0"], "temperature T must be > 0"),
    (["check", "ce-focal", "--classes", "3", "--per-class", "2", "--loss", "ce-ls:0.1"], "is about the loss focal"),
    (["check", "zhou2022.mse-ufm-bias", "--classes", "3", "--per-class", "2"], "lambda_b > 0"),
    (["check", "ce-focal", "--counts", "3,2", "--loss", "focal:2"], "needs balanced classes"),
])
def test_bad_variant_parameters_are_one_line_exit_2(capsys, argv, fragment):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ncverify: error:") and fragment in lines[0], err


def test_shipped_variant_check_and_derive(capsys):
    rc, out, _ = run_cli(capsys, "check", "zhou2022.mse-ufm-bias", "--classes", "3", "--per-class", "2", "--lam-w",
                         "1e-2", "--lam-h", "1e-2", "--lam-b", "0.5", "--starts", "3", "--json")
    assert rc == 4 and json.loads(out)["verdict"] == "refuted"  # check's exit code for refuted (exitcodes)
    rc, out, _ = run_cli(capsys, "derive", "ce-focal", "--classes", "3", "--per-class", "2", "--json")
    data = json.loads(out)
    assert rc == 0 and data["family"] == "ce-focal" and data["instance"]["loss"] == "focal:2"
