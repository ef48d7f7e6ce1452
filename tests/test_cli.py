"""The ncverify command line: JSON keys, one-line errors with exit code 2, reproducibility."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ncverify.proofs_checks.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_solve_json_has_the_documented_keys(capsys):
    rc, out, _ = run_cli(capsys, "solve", "--counts", "4,2", "--width", "3", "--depth", "2", "--starts", "2", "--json")
    assert rc == 0
    data = json.loads(out)
    for key in ("objective", "singular_values", "metrics", "stop_reason"):
        assert key in data
    assert set(data["singular_values"]) >= {"weights_product", "layers", "output"}
    assert len(data["singular_values"]["layers"]) == 2
    assert data["stop_reason"] == "converged"
    assert data["objective"] == pytest.approx(min(r["objective"] for r in data["runs"]), rel=0, abs=0)


def test_solve_same_seed_same_numbers(capsys):
    args = ("solve", "--classes", "3", "--per-class", "2", "--depth", "2", "--starts", "1", "--seed", "7", "--json")
    a = json.loads(run_cli(capsys, *args)[1])
    b = json.loads(run_cli(capsys, *args)[1])
    assert a["objective"] == b["objective"] and a["singular_values"] == b["singular_values"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["solve", "--counts", "3,0"], "n_2 must be >= 1"),
        (["solve", "--counts", "3,-2"], "n_2 must be >= 1"),
        (["solve", "--counts", "3,2", "--width", "0"], "width d must be >= 1"),
        (["solve", "--counts", "3,2", "--depth", "0"], "depth M must be >= 1"),
        (["solve", "--counts", "3,2", "--lam-h", "-1"], "lambda_H must be > 0"),
        (["solve", "--counts", "3,2", "--lam-w", "nan"], "lambda_W1 must be finite"),
        (["solve", "--counts", "3,2", "--depth", "2", "--lam-w", "1e-3,1e-3,1e-3"], "one lambda_W per layer"),
        (["solve", "--counts", "3,3,3", "--width", "2", "--geometry", "of"], "needs width d >= K"),
        (["solve", "--counts", "a,b"], "--counts must be comma-separated integers"),
        (["solve", "--counts", "3,2", "--device", "tpu"], "device must be one of"),
        (["solve", "--counts", "3,2", "--starts", "0"], "--starts must be >= 1"),
        (["solve", "--counts", "3,2", "--bogus"], "unrecognized arguments"),
        (["solve"], "give the class counts"),
        (["solve", "--classes", "10", "--per-class", "500", "--width", "512", "--depth", "3", "--memory-budget", "1GB"],
         "above the memory budget of 1 GB"),
        (["check", "dang2023.mse-deep", "--classes", "10", "--per-class", "500", "--width", "512", "--depth", "3",
          "--lam-w", "5e-4,5e-4,5e-4", "--lam-h", "5e-4", "--memory-budget", "2GB"], "3089408 parameters"),
        (["check", "dang2023.mse-deep", "--classes", "4", "--per-class", "2", "--width", "4", "--depth", "2",
          "--memory-budget", "lots"], "--memory-budget must be a size like 8GB"),
        (["derive", "mse-deep", "--counts", "3,3", "--depth", "1000"], "beyond the command line's limit M <= 32"),
        (["solve", "--classes", "3", "--per-class", "10000000"], "beyond the command line's limit"),
        (["derive", "mse-deep-bias", "--bias", "--counts", ",".join(str(k) for k in range(1, 61))],
         "at most K = 48 classes, got K = 60"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, fragment):
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ncverify: error:") and fragment in lines[0], err
    assert "Traceback" not in err


def test_console_script_exit_code_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "ncverify", "solve", "--counts", "2,0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "n_2 must be >= 1" in proc.stderr


def test_derive_json_keys_and_collapse(capsys):
    rc, out, _ = run_cli(capsys, "derive", "dang2023.mse-deep", "--counts", "100,4", "--width", "2", "--depth", "2",
                         "--lam-w", "0.0104", "--lam-h", "0.0104", "--json")
    data = json.loads(out)
    assert rc == 0
    assert {"objective", "singular_values", "collapsed_classes", "phase_boundaries"} <= set(data)
    assert set(data["singular_values"]) >= {"weights_product", "layers", "output"}
    # the class with n_2 = 4 sits between the M = 2 thresholds 1/16 < rho <= 27/256: it collapses
    assert data["collapsed_classes"] == [1]


def test_derive_theorem_defaults_and_unknown_id(capsys):
    rc, out, _ = run_cli(capsys, "derive", "tirer2022.extended-relu", "--classes", "2", "--per-class", "2", "--json")
    assert rc == 0 and json.loads(out)["collapsed_classes"] == []
    rc, _, err = run_cli(capsys, "derive", "nope.theorem", "--counts", "2,2")
    assert rc == 2 and "nope.theorem" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("seed", range(6))
def test_solve_best_start_is_any_start(capsys, seed):
    """The best run may be any start (the crash was a tensor comparison when it was not start 0)."""
    rc, out, _ = run_cli(capsys, "solve", "--counts", "2,2", "--seed", str(seed), "--json")
    assert rc == 0
    data = json.loads(out)
    objs = {r["start"]: r["objective"] for r in data["runs"]}
    assert objs[data["best_start"]] == min(objs.values())
    ends = data["distinct_end_points"]
    assert sorted(s for e in ends for s in e["starts"]) == [0, 1, 2]
    assert ends[0]["objective"] == min(objs.values()) and ends[0]["rank"] == 2 and ends[0]["collapsed_classes"] == []


def test_solve_default_reaches_the_derived_global_minimum_of_a_deep_imbalanced_instance(capsys):
    flags = ["--loss", "mse", "--counts", "9,6,3,2", "--width", "6", "--depth", "3", "--lam-w", "0.003,0.006,0.004",
             "--lam-h", "0.005"]
    rc, out, _ = run_cli(capsys, "derive", "mse-deep", *flags, "--json")
    assert rc == 0
    fstar = float(json.loads(out)["objective"]["value"])
    rc, out, _ = run_cli(capsys, "solve", *flags, "--json")
    assert rc == 0
    data = json.loads(out)
    assert data["objective"] == pytest.approx(fstar, rel=1e-10) and data["stop_reason"] == "converged"
    assert data["distinct_end_points"][0]["collapsed_classes"] == []  # every class alive at the global minimum


def test_solve_absurd_lambda_is_a_clear_error(capsys):
    rc, _, err = run_cli(capsys, "solve", "--counts", "2,2", "--width", "2", "--lam-h", "1e308")
    assert rc == 2
    assert "every start diverged" in err and "Traceback" not in err
