"""The public Python API behind ``import ncverify`` (the same operations as the command line).

Symbols and arguments (the normalizations are those of ``ncverify list`` / the README; every claim names its own):

* K classes with counts n_1..n_K (``counts``; or ``classes`` = K and ``per_class`` = n), N = sum_k n_k samples;
* d the width of H and of the hidden layers (``width``, default K), M the depth = number of weight matrices
  (``depth``), W = W_M ... W_1;
* lambda_W1..lambda_WM (``lam_w``: one value for every layer, or one per layer), lambda_H (``lam_h``),
  lambda_b (``lam_b``, 0 = an unregularized bias) with a last-layer bias b (``bias=True``);
* ``loss``: "mse", "ce" or a registered variant with its parameters ("ce-ls:0.1", "focal:2");
  ``activation``: "identity" or "relu" for the extended model W_M ... W_2 s(W_1 H) (depth >= 2).

Every function validates its input first; bad input raises one of ``ncverify.INPUT_ERRORS`` (``UsageError``,
``InstanceError``, ``UnknownIdError``, ``UserFileError``, ``TheoryInputError``) whose message names the violated
condition; anything else is a bug.
Nothing heavy (torch, SymPy) is imported before a function that needs it is called.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ncverify.proofs_checks.cli.args import check_solver_options  # light: no torch, no SymPy

if TYPE_CHECKING:  # pragma: no cover
    from ncverify.numerics.problem import Instance
    from ncverify.proofs_checks.search import TheoremResult
    from ncverify.proofs_checks.statement import Theorem
    from ncverify.proofs_checks.verify import CheckResult
    from ncverify.theory.prediction import Prediction

_INSTANCE_KEYS = ("counts", "classes", "per_class", "width", "depth", "lam_w", "lam_h", "lam_b", "bias", "loss",
                  "activation")


# ---------------------------------------------------------------------------------------------
# the catalogue
# ---------------------------------------------------------------------------------------------
def load_theorems(path: str | Path) -> list["Theorem"]:
    """The theorems (and mutants) a user's Python file defines in ``THEOREMS`` (as ``--theorems FILE``).

    Any error in the file raises ``UserFileError`` naming the file, the line and the problem."""
    from ncverify.proofs_checks.catalogue import load_theorems as _load

    return _load(path)


def theorems(*, mutants: bool = False, theorems_file: str | Path | None = None) -> list["Theorem"]:
    """The catalogue (plus the theorems of ``theorems_file``); ``mutants=True`` adds the seeded wrong claims."""
    from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS

    extra = load_theorems(theorems_file) if theorems_file else []
    out = list(THEOREMS) + [t for t in extra if not t.is_mutant]
    if mutants:
        out += list(MUTANTS) + [t for t in extra if t.is_mutant]
    return out


def get_theorem(theorem: "str | Theorem", *, theorems_file: str | Path | None = None) -> "Theorem":
    """The catalogue entry with this id (a ``Theorem`` is returned as it is); ``UnknownIdError`` otherwise."""
    from ncverify.proofs_checks.catalogue import resolve

    return resolve(theorem, theorems_file)


# ---------------------------------------------------------------------------------------------
# instances
# ---------------------------------------------------------------------------------------------
def instance(counts: Sequence[int] | None = None, *, classes: int | None = None, per_class: int | None = None,
             width: int | None = None, depth: int = 1, lam_w: float | Sequence[float] = 5e-3, lam_h: float = 5e-3,
             lam_b: float = 0.0, bias: bool = False, loss: str = "mse", activation: str | None = None) -> "Instance":
    """A validated problem instance (the CLI's instance flags; defaults as the CLI's: lambdas 5e-3, d = K).

    ``counts`` = (n_1, ..., n_K), or ``classes`` = K with ``per_class`` = n; ``width`` = d; ``depth`` = M;
    ``lam_w`` = lambda_W (one value or one per layer); ``lam_h`` = lambda_H; ``lam_b`` = lambda_b; ``bias``: a
    last-layer bias b; ``loss``: "mse", "ce", or "BASE:PARAMS"; ``activation``: "identity"/"relu" (extended
    model). Raises ``InstanceError`` naming the first violated condition."""
    from ncverify.numerics.problem import Instance, InstanceError

    if counts is None:
        if classes is None or per_class is None:
            raise InstanceError("give the class counts, or both the number of classes and the per-class count")
        counts = [per_class] * _int(classes, "number of classes K")
    elif classes is not None or per_class is not None:
        raise InstanceError("give either the class counts or classes/per-class, not both")
    counts = list(counts)
    return Instance.create(counts, width=len(counts) if width is None else width, depth=depth, lam_w=lam_w,
                           lam_h=lam_h, loss=loss, bias=bias, lam_b=lam_b, activation=activation)


def _int(v: Any, what: str) -> int:
    from ncverify.numerics.problem import InstanceError

    if isinstance(v, bool) or not isinstance(v, (int,)) and not (isinstance(v, float) and v.is_integer()):
        raise InstanceError(f"{what} must be an integer, got {v!r}")
    if int(v) < 1:
        raise InstanceError(f"{what} must be >= 1, got {v}")
    return int(v)


def _instance_for(th: "Theorem | None", inst: "Instance | None", kw: dict) -> "Instance":
    """``inst``, or an instance built from keywords with the theorem's implied flags (loss, bias, depth,
    activation) filled in where not given."""
    from ncverify.proofs_checks.errors import UsageError

    unknown = sorted(set(kw) - set(_INSTANCE_KEYS))
    if unknown:
        raise UsageError(f"unknown instance keyword(s) {', '.join(unknown)}; known: {', '.join(_INSTANCE_KEYS)}")
    if inst is not None:
        if kw:
            raise UsageError("give either an instance or instance keywords, not both")
        return inst
    defaults = dict(th.defaults) if th is not None else {}
    for key in ("loss", "bias", "depth", "activation"):
        if kw.get(key) is None and key in defaults:
            kw[key] = defaults[key]
    kw = {k: v for k, v in kw.items() if v is not None or k in ("counts", "classes", "per_class", "width")}
    return instance(**kw)


# ---------------------------------------------------------------------------------------------
# checking theorems
# ---------------------------------------------------------------------------------------------
def check(theorem: "str | Theorem", inst: "Instance | None" = None, *, starts: int | None = None,
          solver: str = "lbfgs", seed: int = 0, device: str = "auto", theorems_file: str | Path | None = None,
          memory_budget: "str | int | None" = None, **instance_kw: Any) -> "CheckResult":
    """The verdict of ``theorem`` on one instance (``ncverify check``).

    The instance is ``inst`` or built from ``instance_kw`` (see ``instance``; the flags the theorem implies are
    filled in). ``starts``: portfolio starts (default 4, more for landscapes with spurious minima); the same
    ``seed`` gives the same numbers. ``memory_budget`` (bytes or "8GB"; default ``NCVERIFY_MEMORY_BUDGET``, else half
    of this machine's memory): an instance whose check would need more is refused up front with an InstanceError
    naming both sizes (``numerics.resources``). Returns a ``CheckResult``: ``.verdict`` ("verified", "refuted",
    "inconclusive"), ``.reason``, ``.evidence`` (every compared quantity with ``error``, ``tolerance`` and the
    tolerance's ``origin``), ``.reproduce`` (the command line), ``.to_json()``."""
    from ncverify.proofs_checks import verify

    th = get_theorem(theorem, theorems_file=theorems_file)
    inst = _instance_for(th, inst, dict(instance_kw))
    n = max(4, th.min_starts) if starts is None else starts
    check_solver_options(starts=n, seed=seed, solver=solver)
    th.validate(inst)
    from ncverify.numerics import resources

    resources.require_fits(inst, n, memory_budget)
    res = verify.check(th, inst, solver=solver, starts=n, seed=seed, device=device)
    res.reproduce = verify.with_check_options(res.reproduce, theorems_file=theorems_file, solver=solver,
                                              starts=starts, seed=seed)
    return res


def search(theorem: "str | Theorem", *, budget: str = "default", seed: int = 0, solver: str = "lbfgs",
           theorems_file: str | Path | None = None, progress: Callable[[str], None] | None = None
           ) -> "TheoremResult":
    """The theorem-level verdict (``ncverify run --only ID`` without the report): a Hypothesis search of the
    theorem's domain with shrinking, full numeric checks on some of the drawn instances and on any
    counterexample. ``budget``: "quick", "default" or "thorough". Returns a ``TheoremResult``: ``.verdict``,
    ``.reason``, ``.checks`` (the full checks), ``.counterexample``, ``.instances_tried``, ``.coverage()`` (the
    ranges of K, depth, width, n_k, imbalance and lambda of the numerically checked and of the searched instances,
    next to the theorem's assumptions), ``.to_json()``."""
    from ncverify.proofs_checks.search import Budget, search_theorem

    from ncverify.proofs_checks.distributed import task_context

    th = get_theorem(theorem, theorems_file=theorems_file)
    b = Budget.of(budget)
    check_solver_options(starts=1, seed=seed, solver=solver)
    with task_context():  # as a task of ``run``: the same numbers as the run's result for this theorem
        return search_theorem(th, b, seed=seed, solver=solver, progress=progress)


def run(*, budget: str = "default", out: str | Path | None = None, seed: int = 0, solver: str = "lbfgs",
        only: Sequence[str] | None = None, theorems_file: str | Path | None = None, lemmas: bool = True,
        figures: bool = True, progress: Callable[[str, str, int, int], None] | None = None,
        workers: int | None = None, scheduler: str | None = None) -> dict:
    """The whole catalogue (``ncverify run``): every theorem (or those in ``only``, their mutants included) and
    the mutants, plus the lemmas; returns the results.json structure and writes the report to ``out`` when
    given (``report.md``, ``results.json``, ``figures/`` unless ``figures=False``, written atomically). A verdict
    that differs from the record is listed in ``result["changed_verdicts"]``. ``progress(phase, message, done,
    total)`` is called through every phase (theorems, mutants, lemmas, figures, writing). ``workers`` (a local
    Dask cluster of that many processes) or ``scheduler`` (an existing Dask scheduler's address): run the theorems,
    mutants and lemmas as Dask tasks (``pip install 'ncverify[dask]'``); the results are the same as in-process."""
    from ncverify.proofs_checks import distributed
    from ncverify.proofs_checks.catalogue import select_only
    from ncverify.proofs_checks.errors import UsageError
    from ncverify.proofs_checks.report import command_line, run_catalogue, write_report
    from ncverify.proofs_checks.search import Budget

    b = Budget.of(budget)
    check_solver_options(starts=1, seed=seed, solver=solver)
    distributed.check_cluster_args(workers, scheduler)
    if out is not None:  # the report directory must be writable before any work
        from ncverify.proofs_checks.cli.args import check_out_dir

        check_out_dir(str(out), flag="out")
    all_ = theorems(mutants=True, theorems_file=theorems_file)
    ths, muts = [t for t in all_ if not t.is_mutant], [t for t in all_ if t.is_mutant]
    if only is not None:
        if isinstance(only, str):
            raise UsageError("only must be a list of theorem ids, not a string")
        if not only:
            raise UsageError("only is empty: give at least one theorem id")
        ths, muts = select_only(ths, muts, only, what="only")
    command = command_line(SimpleNamespace(budget=budget, seed=seed, solver=solver, theorems=theorems_file,
                                           only=None if only is None else ",".join(only), out=out,
                                           no_figures=not figures, no_lemmas=not lemmas))
    with distributed.executor(workers, scheduler) as ex:
        data = run_catalogue(ths, muts, b, seed=seed, solver=solver, progress=progress, lemmas=lemmas,
                             command=command, theorems_file=None if theorems_file is None else str(theorems_file),
                             executor=ex)
    if out is not None:
        write_report(data, Path(out), figures=figures, seed=seed, progress=progress, theorems=ths + muts)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def sweep(theorem: "str | Theorem", grid: Sequence[str], *, out: str | Path = "ncverify-sweep",
          starts: int | None = None, seed: int = 0, solver: str = "lbfgs", batch: int | None = None,
          theorems_file: str | Path | None = None, figure: bool = True, workers: int | None = None,
          scheduler: str | None = None, memory_budget: "str | int | None" = None,
          progress: Callable[[str, int, int], None] | None = None, **instance_kw: Any) -> dict:
    """``ncverify sweep``: the verdict and derived quantities of ``theorem`` on every point of a grid of one or two
    parameters (``grid``: axis specs such as "lam-h=1e-4:1e-1:log:40", "depth=1..6", "width=4,8,16"; see
    ``proofs_checks.sweep``), every other instance flag fixed by ``instance_kw`` (as ``instance``: counts or
    classes/per_class, width, depth, lam_w, lam_h, lam_b, bias, loss, activation; the theorem's implied flags
    filled in). Each point is checked as ``check`` would (the same ``seed`` and ``starts`` everywhere), ``batch``
    points per task (one batched solve). Writes ``out``/sweep.json, ``out``/phase_diagram.png (``figure``) and
    the resumable ``out``/points.jsonl: called again with the same ``out`` and settings, it skips finished points.
    ``workers`` / ``scheduler``: as for ``run``. ``progress(message, points done, points)``. Returns the sweep.json
    structure: "points" (each: "values", "instance", "verdict", "reason", "derived", "claimed", "numeric",
    "boundaries", "worst", "reproduce"), "verdicts" (counts), "resumed", "figure"."""
    from ncverify.proofs_checks import distributed
    from ncverify.proofs_checks.errors import UsageError
    from ncverify.proofs_checks.sweep import DEFAULT_BATCH, prepare, run_sweep

    th = get_theorem(theorem, theorems_file=theorems_file)
    if isinstance(grid, str):
        raise UsageError("grid must be a list of axis specs, e.g. ['lam-h=1e-4:1e-1:log:40'], not a string")
    unknown = sorted(set(instance_kw) - set(_INSTANCE_KEYS))
    if unknown:
        raise UsageError(f"unknown instance keyword(s) {', '.join(unknown)}; known: {', '.join(_INSTANCE_KEYS)}")
    spec, insts = prepare(th, {k: _flag_text(v) for k, v in instance_kw.items()}, list(grid), starts=starts,
                          seed=seed, solver=solver, batch=DEFAULT_BATCH if batch is None else batch,
                          theorems_file=None if theorems_file is None else str(theorems_file), workers=workers,
                          scheduler=scheduler, memory_budget=memory_budget)
    draw = None
    if figure:
        from ncverify.proofs_checks.figures import sweep_figure as draw
    with distributed.executor(workers, scheduler) as ex:
        return run_sweep(spec, th, insts, Path(out), executor=ex, draw=draw, progress=progress)


def _flag_text(v: Any) -> Any:
    """An instance keyword as its command-line text (lists comma-separated; None stays None)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (list, tuple)):
        return ",".join(repr(x) if isinstance(x, float) else str(x) for x in v)
    return repr(v) if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# the theory engine and the numerics
# ---------------------------------------------------------------------------------------------
def families() -> list[str]:
    """The theory families ``derive`` knows (loss variants of loaded theorems join when prepared)."""
    from ncverify.theory import families as F

    return list(F.names())


MAX_DPS = 1000  # derivations at more digits take minutes and tell nothing more


def derivation_target(target: str, registry: Sequence["Theorem"], dps: int = 40, dps_name: str = "dps"
                      ) -> tuple[str, "Theorem | None", "Theorem | None"]:
    """What ``derive``/``ncverify derive`` works on: (family, the theorem whose id is ``target`` or None, the
    theorem whose implied flags fill the instance or None). A theorem id resolves to its family; a family id
    prepares the theorems about it (a loss variant's family is registered by its theorems). ``dps`` is checked
    here too (20..MAX_DPS working digits; ``dps_name`` names it in the error)."""
    from ncverify.proofs_checks.errors import UnknownIdError, UsageError
    from ncverify.theory import families as F

    if isinstance(dps, bool) or not isinstance(dps, int) or not 20 <= dps <= MAX_DPS:
        raise UsageError(f"{dps_name} must be an integer in [20, {MAX_DPS}], got {dps!r}")
    th = next((t for t in registry if t.id == target), None)
    if th is not None:
        return th.prepare().family, th, th
    about = [t for t in registry if t.family == target and not t.is_mutant]
    for t in about:
        t.prepare()
    if target not in F.names():
        raise UnknownIdError(f"unknown family or theorem id {target!r}; families: {', '.join(F.names())}; "
                             f"theorems: {', '.join(t.id for t in registry if not t.is_mutant)}")
    return target, None, about[0] if about else None


def derive(target: str, inst: "Instance | None" = None, *, dps: int = 40, theorems_file: str | Path | None = None,
           **instance_kw: Any) -> "Prediction":
    """The theory engine's exact derivation (``ncverify derive``) for a family (``families()``) or a theorem id
    (resolved to its family; never the theorem's claim). ``dps``: working digits (20..1000). Returns a
    ``Prediction``: ``.objective`` (f*), ``.singular_values``, Gram targets, ``.candidates`` of the global
    selection, ``.boundaries`` (phase boundaries with the instance's side), ...; ``ncverify.render_text(p)`` /
    ``render_json(p)`` print it."""
    from ncverify.theory.derive import derive as _derive

    family, th, flags_from = derivation_target(target, theorems(mutants=True, theorems_file=theorems_file), dps)
    inst = _instance_for(flags_from, inst, dict(instance_kw))
    if th is not None:
        th.validate(inst)
    pred = _derive(family, inst, dps=dps)
    return pred if th is None else pred.with_(requested_id=th.id)


def render_text(pred: "Prediction") -> str:
    """A derivation as the text ``ncverify derive`` prints."""
    from ncverify.theory import render

    return render.to_text(pred)


def render_json(pred: "Prediction") -> dict:
    """A derivation as the JSON object ``ncverify derive --json`` prints."""
    from ncverify.theory import render

    return render.to_json(pred)


@dataclass
class SolveResult:
    """Numeric minimizers of one instance (``ncverify solve``).

    ``runs``: every start (start kind ``init``, ``stop_reason``, ``objective``, ``iterations``, ``grad_evals``,
    ``grad_norm``, ``params``); ``best``: the lowest run that did not diverge; ``measurements``: at the best
    point, the objective and its parts, singular values of every W_j, of W and of the output, class-mean
    norms, NC1/NC2/NC3 and balancedness; ``end_points``: the distinct end points (objective, starts, rank of W,
    collapsed classes). ``to_json()`` is exactly what ``ncverify solve --json`` prints."""

    instance: "Instance"
    runs: list
    best: Any
    measurements: dict
    end_points: list[dict] = field(default_factory=list)
    solver: str = "lbfgs"
    seed: int = 0

    @property
    def objective(self) -> float:
        return float(self.best.objective)

    def to_json(self) -> dict:
        b = self.best
        out = dict(self.measurements)
        out.update({
            "instance": self.instance.as_dict(), "stop_reason": b.stop_reason, "solver": self.solver,
            "seed": self.seed, "best_start": b.start, "iterations": b.iterations, "grad_evals": b.grad_evals,
            "grad_norm": b.grad_norm, "device": b.device,
            "runs": [{"start": r.start, "seed": r.seed, "init": r.init, "stop_reason": r.stop_reason,
                      "objective": r.objective, "iterations": r.iterations, "grad_evals": r.grad_evals,
                      "grad_norm": r.grad_norm, "seconds": r.seconds} for r in self.runs],
            "distinct_end_points": self.end_points,
        })
        return out


def solve(inst: "Instance | None" = None, *, starts: int = 3, solver: str = "lbfgs", seed: int = 0,
          device: str = "auto", init_std: float | None = None, max_iter: int | None = None,
          grad_tol: float | None = None, lr: float = 0.1, momentum: float = 0.9,
          progress: Callable[[int, int], None] | None = None, memory_budget: "str | int | None" = None,
          **instance_kw: Any) -> SolveResult:
    """Numeric minimizers of the full objective from the first ``starts`` starts of the portfolio, solved in
    one batched call (start i uses seed ``seed + i``; same seed, same numbers). ``init_std``: every start
    Gaussian N(0, init_std^2) (the papers' protocol); ``solver`` "gd" is the papers' momentum gradient descent
    (``lr``, ``momentum``); ``progress(done, total)``; ``memory_budget`` as in ``check``. Raises ``UsageError``
    when every start diverges."""
    from ncverify.numerics import metrics, resources, starts as S
    from ncverify.proofs_checks.errors import UsageError

    inst = _instance_for(None, inst, dict(instance_kw))
    check_solver_options(starts=starts, seed=seed, solver=solver, lr=lr, momentum=momentum, init_std=init_std,
                         grad_tol=grad_tol, max_iter=max_iter)
    resources.require_fits(inst, starts, memory_budget)
    res = S.multistart(inst, solver=solver, starts=starts, seed=seed, device=device, init_std=init_std,
                       max_iter=max_iter, grad_tol=grad_tol, lr=lr, momentum=momentum, progress=progress)
    best = res.best
    if best.stop_reason == "diverged" or not math.isfinite(best.objective):
        raise UsageError(f"every start diverged (non-finite objective or gradient) on this instance; the parameters "
                         f"are outside what float64 can represent (lambda_H = {inst.lam_h:g}, "
                         f"lambda_W = {', '.join(f'{v:g}' for v in inst.lam_w)})")
    return SolveResult(instance=inst, runs=list(res.runs), best=best, measurements=metrics.measure(inst, best.params),
                       end_points=metrics.distinct_end_points(inst, res.runs), solver=solver, seed=seed)


def lemmas(*, budget: str = "default", seed: int = 0, only: Sequence[str] | None = None) -> dict:
    """The proof-step checks (``ncverify lemmas``): ``{"lemmas": [...], "wrong_lemmas": {...}}`` with each lemma's
    statement, the theorems that use it, its verdict ("holds", "violated", "inconclusive") and evidence."""
    from ncverify.proofs_checks.errors import UsageError
    from ncverify.proofs_checks.lemmas import run_lemmas

    if budget not in ("quick", "default", "thorough"):
        raise UsageError(f"budget must be one of quick, default, thorough, got {budget!r}")
    if only is not None and isinstance(only, str):
        raise UsageError("only must be a list of lemma ids, not a string")
    return run_lemmas(budget=budget, seed=seed, only=None if only is None else list(only))


# ---------------------------------------------------------------------------------------------
# trained networks
# ---------------------------------------------------------------------------------------------
def compare(measurement: Any, theorem: "str | Theorem", *, theorems_file: str | Path | None = None,
            **kw: Any) -> Any:
    """Measured geometry (``ncverify.measure``) against the derived global minimizer of ``theorem``'s family on
    the same instance (``ncverify measure --theorem``): K, counts and width d come from the measurement; give
    ``lam_w`` (lambda_W) and ``lam_h`` (lambda_H), optionally ``depth`` (M), ``lam_b``, ``bias``, ``loss``,
    ``width``, ``layer``. Returns a ``Comparison`` whose ``.rows`` hold (quantity, aspect "shape"/"scale",
    measured, predicted, error); a comparison report, never a verdict."""
    from ncverify.proofs_checks.measure import compare as _compare

    return _compare(measurement, theorem, theorems=None if theorems_file is None else str(theorems_file), **kw)
