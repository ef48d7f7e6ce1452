"""The pytest plugin and the README's example user test file, run as a researcher would: a fresh folder with
no conftest, plain ``pytest``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- example user test file: tests/test_pytest_plugin.py runs it -->"


def readme_example() -> str:
    """The python block that follows the marker in README.md (the file a researcher copies)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARK in text, "README.md lost the example user test file"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARK):], re.S)
    assert block, "no python block after the marker"
    return block.group(1)


def _pytest(folder: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYPOTHESIS_PROFILE", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_readme_example_test_file_passes_under_plain_pytest(tmp_path):
    (tmp_path / "test_my_theorems.py").write_text(readme_example(), encoding="utf-8")
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    m = re.search(r"(\d+) passed", proc.stdout)
    assert m and int(m.group(1)) >= 4, proc.stdout[-2000:]
    assert "failed" not in proc.stdout and "error" not in proc.stdout.lower().split("passed")[-1]


def test_the_example_fails_when_a_claim_is_wrong(tmp_path):
    """The same assertion helpers fail (with the evidence) on a seeded wrong claim: the example cannot pass
    vacuously."""
    src = ("from ncverify.testing import assert_verifies\n\n"
           "def test_wrong_claim():  # the mutant claims a simplex ETF where the theorem has an orthogonal frame\n"
           "    assert_verifies('mutant:tirer2022.mse-ufm:ETF', classes=3, per_class=2)\n")
    (tmp_path / "test_wrong.py").write_text(src, encoding="utf-8")
    proc = _pytest(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "expected verified, got refuted" in proc.stdout and "reproduce: ncverify check" in proc.stdout


def test_plugin_profiles_option_and_fixtures(tmp_path):
    (tmp_path / "test_fixtures.py").write_text(
        "from hypothesis import settings\n\n"
        "def test_profile_loaded():\n"
        "    assert settings.default.deadline is None and settings.default.derandomize\n\n"
        "def test_fixtures(ncverify_check, assert_verifies, assert_refutes, ncverify_strategies):\n"
        "    import ncverify\n"
        "    assert ncverify_check is ncverify.check\n"
        "    assert callable(assert_verifies) and callable(assert_refutes)\n"
        "    assert hasattr(ncverify_strategies, 'instances')\n", encoding="utf-8")
    proc = _pytest(tmp_path, "--ncverify-profile", "ncverify-ci")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    proc = _pytest(tmp_path, "--hypothesis-profile", "ncverify-ci")  # Hypothesis's own option sees our profiles
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    bad = _pytest(tmp_path, "--ncverify-profile", "fast")
    assert bad.returncode != 0 and "--ncverify-profile must be one of" in bad.stderr


def test_plugin_is_registered_by_the_installed_distribution():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="pytest11") if ep.name == "ncverify"]
    assert eps and eps[0].value == "ncverify.pytest_plugin"


@pytest.mark.parametrize("name", ["ncverify-dev", "ncverify-ci", "ncverify-thorough"])
def test_profiles_have_no_deadline(name):
    from hypothesis import settings

    import ncverify.testing  # noqa: F401 (registers the profiles)

    assert settings.get_profile(name).deadline is None


def test_every_theorem_strategy_works_under_hypothesis_defaults(tmp_path):
    """No profile, no settings: Hypothesis's defaults (100 examples, 200 ms deadline, too-slow health check) on
    every catalogue theorem's domain strategy, near-boundary draws included."""
    import ncverify as nv

    ids = [t.id for t in nv.theorems()]
    (tmp_path / "test_draws.py").write_text(
        "import pytest\nfrom hypothesis import given\nfrom ncverify.strategies import instances\n\n"
        f"@pytest.mark.parametrize('tid', {ids!r})\n"
        "def test_draws(tid):\n"
        "    th = __import__('ncverify').get_theorem(tid)\n\n"
        "    @given(instances(tid))\n"
        "    def inner(inst):\n"
        "        th.validate(inst)\n"
        "    inner()\n", encoding="utf-8")
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert f"{len(ids)} passed" in proc.stdout
