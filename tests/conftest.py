"""Shared test configuration of the suite's own tests: Hypothesis profiles and the golden-file option.

Profiles: ``dev`` (default locally), ``ci`` (deterministic, small budget; loaded when CI is set),
``thorough`` (select with HYPOTHESIS_PROFILE=thorough): the ``ncverify-*`` profiles of ``ncverify.testing``
(the same ones the pytest plugin gives researchers). The ``gpu`` marker and its skip come from the plugin
(``ncverify.pytest_plugin``, installed with the package). Solver-running tests use deadline=None.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import settings

from ncverify.testing import PROFILES


def _plugin_installed() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value == "ncverify.pytest_plugin" for ep in entry_points(group="pytest11"))


# the plugin comes with the installed package; from an uninstalled source checkout load it here
pytest_plugins = [] if _plugin_installed() else ["ncverify.pytest_plugin"]

for _name in ("dev", "ci", "thorough"):
    settings.register_profile(_name, **PROFILES[f"ncverify-{_name}"])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


# -- golden files of the theory engine (issue 3) -------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite theory/golden/*.txt from the current derivations (never done implicitly)")


@pytest.fixture
def update_golden(request) -> bool:
    """True when pytest runs with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


def pytest_report_header(config) -> list[str]:
    if _plugin_installed():
        return []
    return ["ncverify is NOT installed: the tests of the console script, the pytest plugin and the wheel will fail; "
            "install first: pip install -e '.[test]' (see README)"]
