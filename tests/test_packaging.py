"""Packaging: one import name (``ncverify``), every package folder shipped, the data files and the entry points
in the wheel, and no shadowing by a user's own ``theory/`` or ``numerics/`` folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"ncverify": "ncverify", "theory": "ncverify.theory", "numerics": "ncverify.numerics",
           "proofs_checks": "ncverify.proofs_checks"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _package_folders() -> set[str]:
    """Every folder with an __init__.py under the shipped folders, as its installed dotted name."""
    out = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            out.add(".".join((name, *rel)))
    return out


def test_every_package_folder_is_listed():
    cfg = _pyproject()["tool"]["setuptools"]
    assert set(cfg["packages"]) == _package_folders()
    assert cfg["package-dir"] == {name: folder for folder, name in FOLDERS.items()}


def test_wheel_installs_one_top_level_name_with_data_and_entry_points(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel without isolation needs setuptools")
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info",
                                                             "__pycache__", ".hypothesis", ".pytest_cache",
                                                             "ncverify-report", "tests", "benchmarks"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path / "whl"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "whl").glob("ncverify-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"ncverify", wheel.name.split("-py")[0] + ".dist-info"}
    for golden in (ROOT / "theory" / "golden").iterdir():
        assert f"ncverify/theory/golden/{golden.name}" in names, golden.name
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ncverify = ncverify.proofs_checks.cli:main" in entry and "ncverify = ncverify.pytest_plugin" in entry


def test_a_users_own_theory_and_numerics_folders_do_not_shadow_ncverify(tmp_path):
    for name in ("theory", "numerics", "proofs_checks"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} was imported')\n")
    code = ("import ncverify as nv; "
            "p = nv.derive('mse-deep', counts=[2, 2], lam_w=1e-2, lam_h=1e-2); print(float(p.objective.value))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout) > 0
    proc = subprocess.run([sys.executable, "-m", "ncverify", "list", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0 and '"dang2023.mse-deep"' in proc.stdout, proc.stderr[-2000:]


def test_an_uninstalled_source_checkout_imports_the_layers():
    """``python -m pytest`` in a checkout without ``pip install``: ``ncverify`` comes from the working directory and
    its layers resolve to the sibling folders (no installed finder involved)."""
    code = ("import sys; "
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "import ncverify.proofs_checks.catalogue as c, ncverify.theory.derive, ncverify.numerics.problem; "
            "print(c.__file__); print(len(c.THEOREMS))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    path, count = proc.stdout.split()
    assert Path(path).resolve() == ROOT / "proofs_checks" / "catalogue" / "__init__.py" and int(count) >= 12
