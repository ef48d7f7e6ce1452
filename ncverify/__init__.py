"""ncverify: symbolic-plus-numeric verification of neural-collapse theorems.

The public Python API (the command line's operations; nothing heavy is imported until a function is called)::

    import ncverify as nv

    nv.theorems()                                   # the catalogue (Theorem objects: .id, .title, .source, ...)
    r = nv.check("tirer2022.mse-ufm", classes=3, per_class=2, lam_w=5e-3, lam_h=5e-3)
    r.verdict, r.reason, r.reproduce               # "verified" / "refuted" / "inconclusive"; every compared
    [(e.quantity, e.error, e.tolerance) for e in r.evidence]   # quantity with its error and derived tolerance
    p = nv.derive("mse-deep", counts=[3, 2], depth=2, lam_w=1e-2, lam_h=1e-2)   # exact derivation
    s = nv.solve(counts=[3, 2], depth=2, starts=4)  # numeric minimizers and NC metrics
    t = nv.search("tirer2022.mse-ufm", budget="quick")   # theorem-level verdict over its domain
    mine = nv.load_theorems("mine.py")             # a user's theorem file (THEOREMS = [...])
    w = nv.sweep("dang2023.mse-deep", ["lam-h=10:200:log:24"], classes=2, per_class=2, depth=2, lam_w=1e-2)
    m = nv.measure(features, labels, weights=W)     # NC metrics of a trained network's features
    nv.compare(m, "tirer2022.mse-ufm", lam_w=5e-4, lam_h=5e-4)   # measured vs derived geometry

Also: ``nv.instance`` (a validated instance), ``nv.run`` (the whole catalogue and the report; ``workers=`` /
``scheduler=`` for Dask), ``nv.sweep`` (a phase diagram: verdicts over a parameter grid), ``nv.lemmas``,
``nv.families``, ``nv.render_text``; ``ncverify.strategies`` (Hypothesis strategies of every theorem's domain),
``ncverify.testing`` (assertions and Hypothesis settings for researchers' own tests; the pytest plugin
``ncverify.pytest_plugin`` is installed with the package); loss variants: ``nv.LossVariant``, ``nv.Param``,
``nv.etf_claim``, ``nv.variant_theorem``, ``nv.logsumexp``, ``nv.softmax``; exit codes of the command line:
``nv.ExitCode``. The repository folders theory/, numerics/, proofs_checks/ install as ``ncverify.theory``,
``ncverify.numerics``, ``ncverify.proofs_checks`` (internal layers; the names above are the stable API).
"""
from __future__ import annotations

import importlib
import os
from typing import Any

__version__ = "0.2.0"

# Run from a source checkout without installing (``python -m pytest`` in the repository): the layer folders are
# siblings of this one, not subfolders, so let ``ncverify.theory`` & co. resolve there. An installed copy (wheel
# or editable) has them as subpackages or maps them itself, and this does nothing.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
if not os.path.isdir(os.path.join(_HERE, "theory")) and all(
        os.path.isfile(os.path.join(_ROOT, layer, "__init__.py")) for layer in ("theory", "numerics", "proofs_checks")):
    __path__.append(_ROOT)  # type: ignore[name-defined]  # noqa: F821

# public name -> (module, attribute); resolved on first use (PEP 562) so that ``import ncverify`` stays light
_LAZY: dict[str, tuple[str, str]] = {
    **{name: ("ncverify.api", name) for name in (
        "theorems", "get_theorem", "load_theorems", "instance", "check", "search", "run", "derive", "families",
        "render_text", "render_json", "solve", "SolveResult", "lemmas", "sweep")},
    "measure": ("ncverify.proofs_checks.measure", "measure"),
    "compare": ("ncverify.api", "compare"),
    "Instance": ("ncverify.numerics.problem", "Instance"),
    "Theorem": ("ncverify.proofs_checks.statement", "Theorem"),
    "Expected": ("ncverify.proofs_checks.statement", "Expected"),
    "Prediction": ("ncverify.theory.prediction", "Prediction"),
    "CheckResult": ("ncverify.proofs_checks.verify", "CheckResult"),
    "Evidence": ("ncverify.proofs_checks.verify", "Evidence"),
    "TheoremResult": ("ncverify.proofs_checks.search", "TheoremResult"),
    "LossVariant": ("ncverify.proofs_checks.variants", "LossVariant"),
    "Param": ("ncverify.proofs_checks.variants", "Param"),
    "etf_claim": ("ncverify.proofs_checks.variants", "etf_claim"),
    "variant_theorem": ("ncverify.proofs_checks.variants", "variant_theorem"),
    "logsumexp": ("ncverify.proofs_checks.variants", "logsumexp"),
    "softmax": ("ncverify.proofs_checks.variants", "softmax"),
    "ExitCode": ("ncverify.proofs_checks.exitcodes", "ExitCode"),
    "NcverifyError": ("ncverify.proofs_checks.errors", "NcverifyError"),
    "UsageError": ("ncverify.proofs_checks.errors", "UsageError"),
    "UnknownIdError": ("ncverify.proofs_checks.errors", "UnknownIdError"),
    "UserFileError": ("ncverify.proofs_checks.errors", "UserFileError"),
    "InstanceError": ("ncverify.numerics.problem", "InstanceError"),
    "TheoryInputError": ("ncverify.theory.errors", "TheoryInputError"),
    "INPUT_ERRORS": ("ncverify.proofs_checks.errors", "INPUT_ERRORS"),
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ncverify' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
