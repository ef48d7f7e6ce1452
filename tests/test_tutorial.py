"""The README tutorial ("## Tutorial: ...") end to end, as a new user runs it: its Python file written verbatim from
the README into ``mine.py`` in an empty directory, then every ``ncverify`` command of its bash blocks (derive,
check, run with figures) through the installed entry point; exit codes, outputs, the report directory and the
figures are checked. The fast test runs every command, ``run`` with ``--budget quick``; the slow one runs ``run`` verbatim."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def tutorial() -> tuple[str, list[list[str]]]:
    """(the tutorial's Python file, its ncverify commands as argument lists) read from README.md."""
    text = README.read_text()
    start = re.search(r"^## Tutorial\b.*$", text, flags=re.M)
    assert start, "README.md has no '## Tutorial' section"
    end = re.search(r"^## ", text[start.end():], flags=re.M)
    section = text[start.end(): start.end() + end.start() if end else len(text)]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    files = [code for lang, code in blocks if lang == "python" and "THEOREMS" in code]
    assert len(files) == 1, "the tutorial should show exactly one file defining THEOREMS"
    commands = []
    for lang, code in blocks:
        if lang in ("bash", "sh", "console"):
            joined = code.replace("\\\n", " ")
            commands += [shlex.split(line) for line in joined.splitlines() if line.strip().startswith("ncverify ")]
    return files[0], commands


def _exe() -> str:
    return shutil.which("ncverify") or str(Path(sys.executable).with_name("ncverify"))


def _run_tutorial(tmp_path: Path, quick: bool) -> None:
    """quick: every command, ``run`` with ``--budget quick``; else only ``run``, verbatim (the others are verbatim
    in the quick test already)."""
    source, commands = tutorial()
    names = [c[1] for c in commands]
    assert names == ["derive", "check", "run"], names
    (tmp_path / "mine.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "NCVERIFY_DEBUG"}
    for argv in commands:
        argv = list(argv)
        if quick and argv[1] == "run":
            argv += ["--budget", "quick"]
        elif not quick and argv[1] != "run":
            continue
        proc = subprocess.run([_exe()] + argv[1:], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
        if argv[1] == "derive":
            assert "STATIONARY EQUATION" in proc.stdout and "ce-temperature" in proc.stdout
        elif argv[1] == "check":
            lines = proc.stdout.splitlines()
            assert "mine.ce-temperature" in lines[0] and "verdict: verified" in proc.stdout, lines[:3]
        else:
            out = tmp_path / argv[argv.index("--out") + 1]
            _check_report_directory(out)


def _check_report_directory(out: Path) -> None:
    md = (out / "report.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert [t["id"] for t in data["theorems"]] == ["mine.ce-temperature"]
    assert data["theorems"][0]["verdict"] == "verified" and data["changed_verdicts"] == []
    assert "| `mine.ce-temperature` | **verified** |" in md
    figs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {Path(f).name for f in figs} >= {"singular_values.png", "nc_along_gd.png"}, figs
    for f in figs:
        p = out / f
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f
    # the NC curves of the user's theorem: NC2 measured against the W W^T its claim states, reaching it along gd
    plotted = json.loads((out / "figures" / "figures.json").read_text())
    rec = next(r for r in plotted["nc_along_gd"] if r["id"] == "mine.ce-temperature")
    assert rec["nc2_target"]["source"] == "claim" and rec["nc2_target"]["kind"] == "ETF"
    assert rec["nc2"][-1] < 1e-4
    assert not [p for p in out.iterdir() if p.name.startswith(".ncverify-partial-")]


def test_tutorial_commands_end_to_end_quick(tmp_path):
    _run_tutorial(tmp_path, quick=True)


@pytest.mark.slow
def test_tutorial_commands_verbatim(tmp_path):
    """Step 4 exactly as the README prints it (``run`` with the default budget)."""
    _run_tutorial(tmp_path, quick=False)
