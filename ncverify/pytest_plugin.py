"""The ncverify pytest plugin (installed with the package through the ``pytest11`` entry point).

It gives researchers' test files, with no conftest of their own:

* the ``ncverify-dev``, ``ncverify-ci`` and ``ncverify-thorough`` Hypothesis profiles (``ncverify.testing``),
  selected with ``pytest --hypothesis-profile ncverify-ci`` (Hypothesis's own option) or ``--ncverify-profile``;
  ``--ncverify-profile auto`` picks ``ncverify-ci`` when the environment variable CI is set, else ``ncverify-dev``;
* the markers ``ncverify`` (a test that runs ncverify checks) and ``gpu`` (skipped without a CUDA device);
* fixtures ``ncverify_check`` (``ncverify.check``), ``assert_verifies`` / ``assert_refutes``
  (``ncverify.testing``) and ``ncverify_strategies`` (the module ``ncverify.strategies``).

Only Hypothesis is imported when pytest starts (torch and SymPy load when a check runs); a profile is
loaded only when asked for.
"""
from __future__ import annotations

import os
from typing import Any

import pytest

from ncverify import api, testing
from ncverify.testing import PROFILES, register_profiles

# registered at import, before Hypothesis's own plugin reads --hypothesis-profile in its pytest_configure
register_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ncverify", "ncverify (neural-collapse theorem checks)")
    group.addoption("--ncverify-profile", default=None, metavar="NAME",
                    help="load a Hypothesis profile: ncverify-dev, ncverify-ci, ncverify-thorough, or auto "
                         "(ncverify-ci when CI is set, else ncverify-dev)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ncverify: a test that runs ncverify checks (numeric solves: seconds each)")
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    name = config.getoption("--ncverify-profile")
    if name:
        if name == "auto":
            name = "ncverify-ci" if os.environ.get("CI") else "ncverify-dev"
        if name not in PROFILES:
            raise pytest.UsageError(f"--ncverify-profile must be one of {', '.join(PROFILES)} or auto, got {name!r}")
        from hypothesis import settings

        settings.load_profile(name)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu = [item for item in items if "gpu" in item.keywords]
    if not gpu or _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu:
        item.add_marker(skip)


@pytest.fixture
def ncverify_check() -> Any:
    """``ncverify.check``: the verdict of a theorem on one instance (a ``CheckResult``)."""
    return api.check


@pytest.fixture
def assert_verifies() -> Any:
    """``ncverify.testing.assert_verifies``."""
    return testing.assert_verifies


@pytest.fixture
def assert_refutes() -> Any:
    """``ncverify.testing.assert_refutes``."""
    return testing.assert_refutes


@pytest.fixture
def ncverify_strategies() -> Any:
    """The module ``ncverify.strategies`` (``instances(theorem_id, **domain_overrides)``)."""
    import ncverify.strategies as s  # imports the catalogue: only when a test asks for it

    return s
