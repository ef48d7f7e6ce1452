"""The command line as a CI gate: exit codes, --expect, --version, argument validation before any work, quiet
broken pipes, one-line errors for a user's theorem file, copied output that never wraps, summaries that never cut
a number."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ncverify
from ncverify.proofs_checks.cli import main
from ncverify.proofs_checks.cli.output import shorten
from ncverify.proofs_checks.exitcodes import ExitCode, check_exit_code

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which("ncverify") or str(Path(sys.executable).with_name("ncverify"))

# cheap instances (a few seconds each): the plain UFM verifies; a mutant claiming an ETF on it is refuted; the
# same UFM exactly at its derived collapse threshold rho = N^2 lambda_H lambda_W = 1 (N = 2: lambdas 1/2) has a
# degenerate Hessian at the collapsed minimizer, so the numerics cannot settle it (inconclusive)
VERIFIED = ["tirer2022.mse-ufm", "--classes", "2", "--per-class", "2", "--starts", "1"]
REFUTED = ["mutant:tirer2022.mse-ufm:ETF", "--classes", "2", "--per-class", "2", "--starts", "1"]
INCONCLUSIVE = ["tirer2022.mse-ufm", "--classes", "2", "--per-class", "1", "--lam-w", "0.5", "--lam-h", "0.5",
                "--starts", "1"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ncverify: error: "), err
    assert "Traceback" not in err
    return lines[0]


def subprocess_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NCVERIFY_DEBUG"}
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# exit codes
# ---------------------------------------------------------------------------------------------
def test_exit_code_values_are_the_documented_ones():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130, 141]
    doc = sys.modules[ExitCode.__module__].__doc__
    for c in ExitCode:  # every code is documented in the module table
        assert re.search(rf"\|\s*{int(c)}\s*\|\s*{c.name}\s*\|", doc), c


@pytest.mark.parametrize("verdict, expect, code", [
    ("verified", None, 0), ("refuted", None, 4), ("inconclusive", None, 5),
    ("verified", "verified", 0), ("refuted", "refuted", 0), ("inconclusive", "inconclusive", 0),
    ("verified", "refuted", 1), ("refuted", "verified", 1), ("inconclusive", "verified", 1),
])
def test_check_exit_code_table(verdict, expect, code):
    assert check_exit_code(verdict, expect) == code


@pytest.mark.parametrize("flags, verdict, code", [
    (VERIFIED, "verified", ExitCode.SUCCESS),
    (REFUTED, "refuted", ExitCode.REFUTED),
    (INCONCLUSIVE, "inconclusive", ExitCode.INCONCLUSIVE),
], ids=["verified-0", "refuted-4", "inconclusive-5"])
def test_check_exit_code_follows_the_verdict(capsys, flags, verdict, code):
    rc, out, err = run_cli(capsys, "check", *flags, "--json")
    assert json.loads(out)["verdict"] == verdict
    assert rc == code
    # --expect: 0 when the verdict is the expected one, 1 (and one line saying so) when not
    rc, out, err = run_cli(capsys, "check", *flags, "--json", "--expect", verdict)
    assert rc == ExitCode.SUCCESS and json.loads(out)["verdict"] == verdict and err == ""
    other = "refuted" if verdict != "refuted" else "verified"
    rc, out, err = run_cli(capsys, "check", *flags, "--expect", other)
    assert rc == ExitCode.DIFFERS
    assert f"verdict {verdict} differs from --expect {other}" in err


def test_console_script_check_refuted_exits_4_and_expect_refuted_exits_0():
    """As CI sees it: the installed entry point's process exit status."""
    proc = subprocess.run([EXE, "check", *REFUTED], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 4, proc.stderr
    assert "refuted" in proc.stdout and "Traceback" not in proc.stderr
    proc = subprocess.run([EXE, "check", *REFUTED, "--expect", "refuted"], capture_output=True, text=True,
                          env=subprocess_env())
    assert proc.returncode == 0, proc.stderr


def test_run_exit_code_1_when_a_verdict_differs_from_the_record(tmp_path, capsys):
    """A user theorem whose record says verified but whose claim is refuted on its own example instance."""
    mine = tmp_path / "mine.py"
    mine.write_text(textwrap.dedent('''
        from dataclasses import replace
        from ncverify.numerics.problem import Instance
        from ncverify.proofs_checks.catalogue import Expected, by_id, mutant

        base = by_id("mutant:tirer2022.mse-ufm:ETF")
        THEOREMS = [replace(base, id="mine.etf-claim", mutant_of=None, expected=Expected("verified"),
                            examples=(Instance.create([2, 2], width=2),))]
    '''))
    rc, out, _ = run_cli(capsys, "run", "--theorems", str(mine), "--only", "mine.etf-claim", "--budget", "quick",
                         "--no-figures", "--no-lemmas", "--out", str(tmp_path / "rep"), "--json")
    data = json.loads(out)
    assert data["changed_verdicts"] == ["mine.etf-claim"] and rc == ExitCode.DIFFERS


def test_internal_error_is_exit_3_one_line(monkeypatch, capsys):
    from ncverify.proofs_checks.cli import commands

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(commands, "cmd_list", broken)
    monkeypatch.delenv("NCVERIFY_DEBUG", raising=False)
    rc, _, err = run_cli(capsys, "list")
    assert rc == ExitCode.INTERNAL
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "internal error" in lines[0] and "ZeroDivisionError: a bug" in lines[0]


def test_interrupt_is_exit_130(monkeypatch, capsys):
    from ncverify.proofs_checks.cli import commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "cmd_list", interrupted)
    rc, _, err = run_cli(capsys, "list")
    assert rc == ExitCode.INTERRUPTED and err.strip() == "ncverify: interrupted"


# ---------------------------------------------------------------------------------------------
# --version
# ---------------------------------------------------------------------------------------------
def test_version_prints_the_package_version_without_heavy_imports():
    probe = ("import sys; from ncverify.proofs_checks.cli import main; rc = main(['--version']); "
             "print('heavy', sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sympy'})); print('rc', rc)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env())
    lines = proc.stdout.splitlines()
    assert lines[0] == f"ncverify {ncverify.__version__}"
    assert "heavy []" in lines and "rc 0" in lines, proc.stdout + proc.stderr
    proc = subprocess.run([EXE, "--version"], capture_output=True, text=True, env=subprocess_env())
    assert proc.returncode == 0 and proc.stdout.strip() == f"ncverify {ncverify.__version__}"


# ---------------------------------------------------------------------------------------------
# every argument validated before any work (these must fail in well under a second of work)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragment", [
    (["run", "--only", "no-such-id"], "unknown theorem id(s) no-such-id"),
    (["run", "--only", ""], "--only needs at least one id"),
    (["run", "--only", ","], "--only needs at least one id"),
    (["run", "--only", "tirer2022.mse-ufm,,zhu2021.ce-ufm"], "--only has an empty id"),
    (["run", "--only", "tirer2022.mse-ufm,"], "--only has an empty id"),
    (["run", "--only", "tirer2022.mse-ufm,mutant:nope"], "unknown theorem id(s) mutant:nope"),
    (["run", "--only", "tirer2022.mse-ufm", "--out", "/proc/ncverify-report"], "cannot create the report directory"),
    (["run", "--only", "tirer2022.mse-ufm", "--out", ""], "--out must name a directory"),
    (["run", "--only", "tirer2022.mse-ufm", "--seed", "-1"], "--seed must be >= 0"),
    (["run", "--budget", "huge"], "invalid choice: 'huge'"),
    (["run", "--theorems", "no-such-file.py"], "does not exist"),
    (["lemmas", "--only", ""], "--only needs at least one id"),
    (["lemmas", "--only", "balancedness,,x"], "--only has an empty id"),
    (["lemmas", "--seed", "-2"], "--seed must be >= 0"),
    (["check", *VERIFIED, "--seed", "-1"], "--seed must be >= 0"),
    (["check", *VERIFIED, "--starts", "0"], "--starts must be >= 1"),
    (["check", *VERIFIED, "--device", "tpu"], "device must be one of"),
    (["check", *VERIFIED, "--expect", "true"], "invalid choice: 'true'"),
    (["check", "no-such-id", "--classes", "2", "--per-class", "2"], "unknown theorem id 'no-such-id'"),
    (["check", "tirer2022.mse-ufm", "--classes", "2", "--per-class", "2", "--depth", "2"], "needs depth M = 1"),
    (["derive", "tirer2022.mse-ufm", "--classes", "2", "--per-class", "2", "--dps", "100000"], "--dps must be an integer in [20, 1000], got 100000"),
    (["solve", "--counts", "2,2", "--seed", "-1"], "--seed must be >= 0"),
    (["solve", "--counts", "2,2", "--momentum", "1"], "--momentum must be in [0, 1)"),
    (["list", "--bogus"], "unrecognized arguments: --bogus (see `ncverify list --help`)"),
    (["check", *VERIFIED, "--max-iter", "3"], "unrecognized arguments: --max-iter 3 (see `ncverify check --help`)"),
    (["solve", "--counts", "2,2", "--depth", "100000"], "beyond the command line's limit M <= 32"),
    (["check", "tirer2022.mse-ufm", "--counts", "99999999999,99999999999"], "parameters"),
    (["solve", "--classes", "5000", "--per-class", "1"], "limit K <= 1000"),
    (["solve", "--counts", "2,2", "--width", "2.5"], "--width must be an integer, got '2.5'"),
    (["check"], "required: THEOREM-ID"),
    ([], "required: command"),
])
def test_bad_arguments_fail_before_any_work(capsys, argv, fragment):
    t0 = time.perf_counter()
    rc, out, err = run_cli(capsys, *argv)
    assert rc == ExitCode.USAGE and out == ""
    assert fragment in one_error_line(err)
    assert time.perf_counter() - t0 < 10  # no search, no solve (the generous bound is for a loaded machine)


def test_device_cuda_without_cuda_fails_before_work(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    rc, _, err = run_cli(capsys, "check", *VERIFIED, "--device", "cuda")
    assert rc == ExitCode.USAGE and "CUDA is not available" in one_error_line(err)


def test_run_out_directory_is_validated_before_the_run(tmp_path, capsys, monkeypatch):
    """An unwritable --out, a file as --out: exit 2 before run_catalogue is ever called."""
    from ncverify.proofs_checks import report

    def no_work(*a, **k):
        raise AssertionError("the run started before its arguments were validated")

    monkeypatch.setattr(report, "run_catalogue", no_work)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    rc, _, err = run_cli(capsys, "run", "--only", "tirer2022.mse-ufm", "--out", str(a_file))
    assert rc == 2 and "exists and is not a directory" in one_error_line(err)
    rc, _, err = run_cli(capsys, "run", "--only", "tirer2022.mse-ufm", "--out", str(a_file / "sub"))
    assert rc == 2 and "cannot create the report directory" in one_error_line(err)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "read-only"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            rc, _, err = run_cli(capsys, "run", "--only", "tirer2022.mse-ufm", "--out", str(ro / "rep"))
            assert rc == 2 and "--out" in one_error_line(err)
        finally:
            ro.chmod(0o700)


def test_run_only_accepts_mutant_ids_and_spaces(tmp_path, capsys, monkeypatch):
    """--only takes theorem and mutant ids (spaces around commas ignored); the selection reaches the run."""
    from ncverify.proofs_checks import report

    seen = {}

    def record(theorems, mutants, budget, **kw):
        seen["ids"] = [t.id for t in theorems] + [t.id for t in mutants]
        raise KeyboardInterrupt  # stop here: the selection is what this test is about

    monkeypatch.setattr(report, "run_catalogue", record)
    rc = main(["run", "--only", "zhu2021.ce-ufm , mutant:tirer2022.mse-ufm:ETF", "--out", str(tmp_path / "r")])
    assert rc == ExitCode.INTERRUPTED
    assert "zhu2021.ce-ufm" in seen["ids"] and "mutant:tirer2022.mse-ufm:ETF" in seen["ids"]
    assert all(i == "zhu2021.ce-ufm" or i.startswith("mutant:") for i in seen["ids"])
    assert "tirer2022.mse-ufm" not in seen["ids"]


# ---------------------------------------------------------------------------------------------
# broken pipes: quiet, in a real pipe
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["list", "--mutants", "--json"], ["list", "--mutants"], ["--help"]])
def test_broken_pipe_is_quiet(argv):
    """The reader closes the pipe before ncverify writes (it is still importing): no traceback, no 'Exception
    ignored' at interpreter exit, exit code 141 (or 0 if everything fitted before the close)."""
    proc = subprocess.Popen([EXE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    assert err.strip() == ""
    assert rc in (ExitCode.BROKEN_PIPE, ExitCode.SUCCESS)


def test_broken_pipe_through_head_in_a_shell():
    """``ncverify list --mutants --json | head -n 1``: the shell pipeline of the issue."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    cmd = f"'{EXE}' list --mutants --json | head -n 1; echo \"status=${{PIPESTATUS[0]}}\" >&2"
    proc = subprocess.run([bash, "-c", cmd], capture_output=True, text=True, env=subprocess_env())
    assert proc.stdout == "{\n"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    status = int(proc.stderr.strip().splitlines()[-1].split("=")[1])
    assert status in (ExitCode.BROKEN_PIPE, ExitCode.SUCCESS)


# ---------------------------------------------------------------------------------------------
# errors in a user's --theorems file: one line naming the file, the line and the problem; exit 2
# ---------------------------------------------------------------------------------------------
GOOD_HEAD = '''from dataclasses import replace
from ncverify.proofs_checks.catalogue import by_id
from ncverify.proofs_checks.catalogue.tirer2022 import threshold_c, ufm_prediction

base = by_id("tirer2022.mse-ufm")
'''


def _user_file(tmp_path: Path, body: str) -> tuple[str, int]:
    """Write mine.py = GOOD_HEAD + body; returns its path and the line number of the line marked ``# HERE``."""
    text = GOOD_HEAD + textwrap.dedent(body)
    p = tmp_path / "mine.py"
    p.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "# HERE" in s)
    return str(p), line


CHECK_MINE = ["--classes", "2", "--per-class", "2", "--starts", "1"]


@pytest.mark.parametrize("body, fragment", [
    ("x = (1,  # HERE\n", "SyntaxError"),
    ("def f(:  # HERE\n    pass\n", "SyntaxError"),
    ("y = foo  # HERE\n", "NameError: name 'foo' is not defined (while importing the theorem file)"),
    ("import no_such_module_for_ncverify  # HERE\n", "ModuleNotFoundError"),
    ("z = 1 / 0  # HERE\n", "ZeroDivisionError: division by zero (while importing the theorem file)"),
    ("raise SystemExit(3)  # HERE\n", "SystemExit"),
])
def test_user_file_import_errors_are_one_line_with_file_and_line(tmp_path, capsys, body, fragment):
    path, line = _user_file(tmp_path, body)
    for argv in (["list", "--theorems", path], ["check", "--theorems", path, "mine.x", *CHECK_MINE],
                 ["run", "--theorems", path, "--only", "mine.x", "--out", str(tmp_path / "r")],
                 ["derive", "--theorems", path, "mse-deep", "--counts", "2,2"]):
        rc, out, err = run_cli(capsys, *argv)
        msg = one_error_line(err)
        assert rc == ExitCode.USAGE and f"{path}:{line}: " in msg and fragment in msg, msg
    assert not (tmp_path / "r" / "report.md").exists()


@pytest.mark.parametrize("body, fragment", [
    ("X = 1\n", "defines no THEOREMS"),
    ("THEOREMS = base\n", "THEOREMS must be a list of Theorem, got Theorem"),
    ("THEOREMS = [base, 'mine.y']\n", "THEOREMS[1] must be a Theorem, got str"),
    ("THEOREMS = []\n", "THEOREMS is empty"),
    ("THEOREMS = [base]\n", "'tirer2022.mse-ufm' is already in the catalogue"),
    ("THEOREMS = [replace(base, id='mine.x'), replace(base, id='mine.x')]\n", "'mine.x' appears twice"),
])
def test_user_file_without_valid_theorems_is_one_line(tmp_path, capsys, body, fragment):
    path, _ = _user_file(tmp_path, body + "# HERE\n")
    rc, _, err = run_cli(capsys, "list", "--theorems", path)
    msg = one_error_line(err)
    assert rc == ExitCode.USAGE and path in msg and fragment in msg, msg


def test_user_file_that_is_not_a_python_file(tmp_path, capsys):
    d = tmp_path / "dir.py"
    d.mkdir()
    rc, _, err = run_cli(capsys, "list", "--theorems", str(d))
    assert rc == 2 and "is not a file" in one_error_line(err)
    t = tmp_path / "mine.txt"
    t.write_text("THEOREMS = []\n")
    rc, _, err = run_cli(capsys, "list", "--theorems", str(t))
    assert rc == 2 and "must be a Python file" in one_error_line(err)


RAISING_CLAIM = '''
def claim(inst):
    if inst.K >= 2:
        return ufm_prediction(inst, threshold_c(inst) * undefined_name, bias=False)  # HERE
    return ufm_prediction(inst, threshold_c(inst), bias=False)

THEOREMS = [replace(base, id="mine.x", claim=claim)]
'''


def test_claim_that_raises_is_one_line_in_check(tmp_path, capsys):
    path, line = _user_file(tmp_path, RAISING_CLAIM)
    rc, out, err = run_cli(capsys, "check", "--theorems", path, "mine.x", *CHECK_MINE, "--json")
    msg = one_error_line(err)
    assert rc == ExitCode.USAGE and out == ""
    assert f"{path}:{line}: NameError: name 'undefined_name' is not defined" in msg
    assert "while evaluating the claim of mine.x on --loss mse --counts 2,2" in msg


def test_claim_that_raises_never_becomes_a_verdict_in_run(tmp_path, capsys):
    """In the search (Hypothesis draws, shrinking, refutations of other instances) the claim's exception stops
    the run with the one line: never a verdict, never a report."""
    path, line = _user_file(tmp_path, RAISING_CLAIM.replace("inst.K >= 2", "inst.K >= 3") + textwrap.dedent('''
        from ncverify.proofs_checks.catalogue import Expected
        THEOREMS = [replace(base, id="mine.x", claim=claim, examples=(), expected=Expected("verified"))]
    '''))
    out_dir = tmp_path / "rep"
    rc, out, err = run_cli(capsys, "run", "--theorems", path, "--only", "mine.x", "--budget", "quick", "--no-figures",
                           "--no-lemmas", "--out", str(out_dir), "--json")
    msg = one_error_line(err.splitlines()[-1])  # the progress display may precede the error line
    assert rc == ExitCode.USAGE and out == ""
    assert f"{path}:{line}: NameError" in msg and "while evaluating the claim of mine.x" in msg
    assert not (out_dir / "results.json").exists()


def test_claim_returning_no_prediction_and_raising_assumptions(tmp_path, capsys):
    path, _ = _user_file(tmp_path, '''
        def validator(inst):
            return inst.lam_w[5]  # HERE
        THEOREMS = [replace(base, id="mine.x", claim=lambda inst: None),
                    replace(base, id="mine.v", validator=validator)]
    ''')
    rc, _, err = run_cli(capsys, "check", "--theorems", path, "mine.x", *CHECK_MINE)
    msg = one_error_line(err)
    assert rc == 2 and "the claim of mine.x returned NoneType, not a Prediction" in msg and path in msg
    rc, _, err = run_cli(capsys, "check", "--theorems", path, "mine.v", *CHECK_MINE)
    msg = one_error_line(err)
    line = next(i for i, s in enumerate(Path(path).read_text().splitlines(), 1) if "# HERE" in s)
    assert rc == 2 and f"{path}:{line}: IndexError" in msg and "while checking the assumptions of mine.v" in msg


def test_user_variant_loss_that_raises_in_derive(tmp_path, capsys):
    """A loss variant whose SymPy loss raises when the derivation evaluates it: one line with the file's line."""
    p = tmp_path / "mine.py"
    text = textwrap.dedent('''
        from ncverify.proofs_checks.variants import LossVariant, Param, etf_claim, logsumexp, variant_theorem

        def bad_loss(z, y, K, T):
            return logsumexp([zc / T for zc in z]) - z[y] / T + oops  # HERE

        VARIANT = LossVariant("ce-bad", loss="ce-bad", sympy_loss=bad_loss,
                              params=(Param("T", lambda v: v > 0, "T must be > 0", example=2.0),),
                              description="broken")
        THEOREMS = [variant_theorem(VARIANT, id="mine.bad", title="t", source="s", claim=etf_claim(VARIANT),
                                    param_values=[(2.0,)])]
    ''')
    p.write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "# HERE" in s)
    rc, _, err = run_cli(capsys, "derive", "--theorems", str(p), "mine.bad", "--classes", "2", "--per-class", "2",
                         "--loss", "ce-bad:2")
    msg = one_error_line(err)
    assert rc == ExitCode.USAGE and f"{p}:{line}: NameError: name 'oops' is not defined" in msg


def test_user_file_errors_in_a_fresh_process(tmp_path):
    """The console script: exit status 2 and exactly one stderr line (no traceback) for an import-time error."""
    path, line = _user_file(tmp_path, "y = foo  # HERE\n")
    proc = subprocess.run([EXE, "check", "--theorems", path, "mine.x", *CHECK_MINE], capture_output=True, text=True,
                          env=subprocess_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr) == (f"ncverify: error: {path}:{line}: NameError: name 'foo' is not defined "
                                           "(while importing the theorem file)")


# ---------------------------------------------------------------------------------------------
# copied output never wraps; summaries never cut a number
# ---------------------------------------------------------------------------------------------
def test_check_output_piped_with_columns_40_keeps_the_reproduce_command_on_one_line():
    proc = subprocess.run([EXE, "check", *REFUTED], capture_output=True, text=True,
                          env=subprocess_env(COLUMNS="40"))
    assert proc.returncode == ExitCode.REFUTED, proc.stderr
    rep = [l for l in proc.stdout.splitlines() if l.startswith("reproduce: ")]
    assert len(rep) == 1
    cmd = rep[0][len("reproduce: "):]
    assert cmd.startswith("ncverify check mutant:tirer2022.mse-ufm:ETF ") and cmd.rstrip().endswith("--starts 1")
    assert "--lam-h 0.005" in cmd and len(rep[0]) > 40  # it would have been wrapped
    # the copied command reproduces the verdict and the numbers
    proc2 = subprocess.run([EXE, *cmd.split()[1:], "--json"], capture_output=True, text=True, env=subprocess_env())
    again = json.loads(proc2.stdout)
    assert again["verdict"] == "refuted" and again["reproduce"] == cmd.rstrip()


def test_list_piped_with_columns_40_never_folds_ids():
    proc = subprocess.run([EXE, "list", "--mutants"], capture_output=True, text=True, env=subprocess_env(COLUMNS="40"))
    assert proc.returncode == 0
    ids = [t["id"] for t in json.loads(subprocess.run([EXE, "list", "--mutants", "--json"], capture_output=True,
                                                      text=True, env=subprocess_env()).stdout)["theorems"]]
    for tid in ids:  # each id whole on one line
        assert re.search(rf"(^|[\s│|]){re.escape(tid)}([\s│|]|$)", proc.stdout, re.M), tid


def test_json_is_never_wrapped(capsys):
    proc = subprocess.run([EXE, "list", "--json"], capture_output=True, text=True, env=subprocess_env(COLUMNS="20"))
    data = json.loads(proc.stdout)
    long_titles = [t["title"] for t in data["theorems"] if len(t["title"]) > 20]
    assert long_titles and all(json.dumps(t) in proc.stdout for t in long_titles)


def test_run_summary_shortens_long_reasons_at_a_word_boundary(capsys):
    from ncverify.proofs_checks.cli import commands

    reason = ("numerics: numeric objective vs claimed minimum (a lower point refutes) (numeric 0.0904067182985314 "
              "(start 1, seed 1) vs claimed 0.0915316886836624) (error 0.00112 > tol 7.15e-15); claim vs derivation: "
              "minimal objective f* (claim 0.091531688683662390527 vs derived 0.090406718298531418831) "
              "(error 0.0123 > tol 1e-30)")
    data = {"budget": "quick", "seconds": 1.0, "mutants": {"caught": 0, "total": 0}, "changed_verdicts": [],
            "theorems": [{"id": "x.y", "verdict": "refuted", "expected_verdict": "refuted", "instances_tried": 3,
                          "reason": reason}]}
    commands._print_run_summary(data, "rep")
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if "x.y" in l)  # piped: the row is one line, never folded
    cell = row.split("│")[-2].strip()
    assert cell.endswith(" …") and len(cell) <= commands.SUMMARY_REASON_CHARS + 2
    kept = cell[:-2]
    assert reason.startswith(kept) and reason[len(kept)] == " "  # cut between words: no number is split
    # a short reason is shown whole; a counterexample's command on one line (a user theorem's with its file,
    # named once: run_catalogue adds it to the results, the summary prints them as they are)
    from ncverify.proofs_checks.report import _with_theorems_file

    data["theorems"][0]["reason"] = "numeric minimizer matched the claim within derived tolerances"
    cmd = "ncverify check x.y --loss mse --counts 1,1 --width 2 --depth 2 --lam-w 0.1,0.1 --lam-h 1.05469"
    data["theorems"][0]["counterexample"] = {"reproduce": cmd}
    _with_theorems_file(data["theorems"][0], "my file.py")
    commands._print_run_summary(data, "rep")
    out = capsys.readouterr().out
    assert "matched the claim within derived tolerances " in out
    assert "counterexample of x.y: " + cmd.replace("check ", "check --theorems 'my file.py' ") in out.splitlines()
    assert out.count("--theorems") == 1


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(repr),
                                st.integers().map(str), st.sampled_from(["vs", "error", "tol", "(claim", "x;"])),
                      min_size=1, max_size=60),
       limit=st.integers(min_value=1, max_value=200))
def test_shorten_never_splits_a_word(words, limit):
    text = " ".join(words)
    short = shorten(text, limit)
    if len(text) <= limit or len(words) == 1:
        assert short == text
        return
    assert short.endswith(" \N{HORIZONTAL ELLIPSIS}")
    kept = short[:-2].split()
    j = len(kept) - 1
    assert kept[:j] == words[:j] and kept[j] == words[j].rstrip(";,:(")  # whole words only
    assert len(short) - 2 <= limit or j == 0  # within the limit unless the first word alone is longer


def test_reproduce_command_in_a_narrow_terminal_is_never_broken_by_rich():
    """On a real terminal (a pty) 40 columns wide, tables fold but the reproduce line is written as one line (the
    terminal may show it soft-wrapped; copying gives the whole command)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([EXE, "check", *REFUTED], stdout=slave, stderr=subprocess.DEVNULL,
                                env=subprocess_env(COLUMNS="40", TERM="xterm"), close_fds=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=120)
    finally:
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace")).replace("\r", "")
    assert rc == ExitCode.REFUTED
    lines = text.splitlines()
    assert max(len(l) for l in lines if not l.startswith("reproduce: ")) <= 40  # the rest is laid out in 40 columns
    rep = [l for l in lines if l.startswith("reproduce: ")]
    assert len(rep) == 1 and len(rep[0]) > 40
    assert rep[0].startswith("reproduce: ncverify check mutant:tirer2022.mse-ufm:ETF --loss mse --counts 2,2")
    assert rep[0].endswith("--starts 1")


def test_print_copyable_never_wraps_on_a_narrow_console():
    import io

    from rich.console import Console

    from ncverify.proofs_checks.cli.output import print_copyable

    buf = io.StringIO()
    con = Console(file=buf, width=30, force_terminal=True, color_system=None)
    cmd = "ncverify check dang2023.mse-deep --loss mse --counts 100,4 --width 2 --depth 2 --lam-w 0.0104,0.0104"
    print_copyable(con, f"reproduce: {cmd}")
    con.print(f"reproduce: {cmd}")  # what rich does to the same line without it
    out = buf.getvalue().splitlines()
    assert out[0] == f"reproduce: {cmd}"
    assert len(out) > 2  # the plain print was wrapped: the test can tell the difference
