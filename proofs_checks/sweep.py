"""``ncverify sweep``: one theorem's verdict and derived quantities on every point of a parameter grid, drawn as a
phase diagram (the derived boundaries over the numeric verdicts), resumable, in-process or on Dask.

Grid axes (``--grid``, one or two; ``parse_axis``)::

    lam-h=1e-4:1e-1:log:40     40 log-spaced values from 1e-4 to 1e-1 (both ends included)
    lam-w=0.001:0.01:lin:10    10 evenly spaced values
    depth=1..6                 the integers 1, 2, ..., 6
    width=4,8,16               these values

Axis names: ``AXES`` (the instance flags without the dashes: lam-h, lam-w, lam-b, depth, width, classes,
per-class). Every other instance flag is fixed (as for ``ncverify check``). A point's instance is what
``ncverify check THEOREM <fixed flags> --<axis> <value>`` would check, and its record is that check's verdict and
numbers: the same ``--seed`` and ``--starts`` on every point, the exact side with values only (40 digits).

Points are numbered row-major over the axes (the first axis varies slowest) and cut into batches of ``batch``
consecutive points; a batch is one task (``proofs_checks.distributed``: one batched solve for all its points'
starts). A point's numbers do not depend on where its task ran (``distributed.task_context``); they can depend on
its batch in the last bits (the batched solver's end points change with the batch's composition at the rounding
level, e.g. sigma(W) 1.2e-24 vs 5.1e-25 at a collapsed point; verdicts do not), so the batch size is part of the
sweep's settings and a resumed sweep keeps the original batches.

The output directory holds ``sweep-spec.json`` (what was asked; a resumed sweep must ask the same),
``points.jsonl`` (one line per finished point, appended and flushed as each batch completes: an interrupted sweep
loses at most the batches that were running), then ``sweep.json`` (everything, points in order) and
``phase_diagram.png``. Started again with the same directory, a sweep skips the batches whose points are all in
``points.jsonl``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import UsageError

#: axis name -> the attribute of the instance flags (``cli.args.add_instance_args``)
AXES = {"lam-h": "lam_h", "lam-w": "lam_w", "lam-b": "lam_b", "depth": "depth", "width": "width",
        "classes": "classes", "per-class": "per_class"}
INTEGER_AXES = ("depth", "width", "classes", "per-class")
#: a sweep's axes are drawn as a phase diagram: at most two
MAX_AXES = 2
#: points per sweep (every one is validated up front)
MAX_POINTS = 100_000
#: points per task by default (one batched solve each)
DEFAULT_BATCH = 8
#: the instance flags a sweep fixes (the rest of ``add_instance_args``)
FLAGS = ("loss", "counts", "classes", "per_class", "width", "depth", "lam_w", "lam_h", "lam_b", "bias", "activation")
SPEC_FILE, POINTS_FILE, RESULT_FILE, FIGURE_FILE = "sweep-spec.json", "points.jsonl", "sweep.json", "phase_diagram.png"
#: sweep.json format version (bumped only when a key is removed or changes meaning)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``name`` (a key of ``AXES``), its ``values`` in order, ``log`` (drawn on a log scale) and the
    ``spec`` text it was parsed from."""

    name: str
    values: tuple
    log: bool
    spec: str

    def to_json(self) -> dict:
        return {"name": self.name, "values": list(self.values), "log": self.log, "spec": self.spec}


def _number(text: str, axis: str, integer: bool) -> float | int:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--grid {axis}: {text!r} is not a number") from None
    if not math.isfinite(v):
        raise UsageError(f"--grid {axis}: {text!r} is not finite")
    if integer:
        if v != int(v):
            raise UsageError(f"--grid {axis}: {axis} takes integers, got {text!r}")
        return int(v)
    return v


def parse_axis(text: str) -> Axis:
    """An ``Axis`` from "name=lo:hi:log:n", "name=lo:hi:lin:n", "name=a..b" (integers) or "name=v1,v2,...";
    UsageError naming what is wrong."""
    if "=" not in text:
        raise UsageError(f"--grid {text!r}: expected NAME=VALUES, e.g. lam-h=1e-4:1e-1:log:40 or depth=1..6")
    name, rest = (s.strip() for s in text.split("=", 1))
    if name not in AXES:
        raise UsageError(f"--grid {name!r}: unknown axis; axes: {', '.join(AXES)}")
    integer = name in INTEGER_AXES
    if not rest:
        raise UsageError(f"--grid {name}: no values")
    m = re.fullmatch(r"([^:]+):([^:]+):(log|lin):(\d+)", rest)
    if m:
        lo, hi = _number(m.group(1), name, False), _number(m.group(2), name, False)
        n = int(m.group(4))
        if not 1 <= n <= MAX_POINTS:
            raise UsageError(f"--grid {name}: the number of values must be from 1 to {MAX_POINTS}, got {n}")
        log = m.group(3) == "log"
        if log and (lo <= 0 or hi <= 0):
            raise UsageError(f"--grid {name}: a log axis needs positive ends, got {lo:g} and {hi:g}")
        if n == 1:
            vals = [lo]
        elif log:
            vals = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (n - 1)) for i in range(n)]
            vals[0], vals[-1] = lo, hi
        else:
            vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
            vals[-1] = hi
        if integer:
            ints = sorted({int(round(v)) for v in vals})
            vals = ints
        return Axis(name, tuple(vals), log, text)
    m = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", rest)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b < a:
            raise UsageError(f"--grid {name}: {rest!r} is an empty range (end before start)")
        if b - a + 1 > MAX_POINTS:
            raise UsageError(f"--grid {name}: {rest!r} has more than {MAX_POINTS} values")
        return Axis(name, tuple(range(a, b + 1)), False, text)
    vals = [_number(v.strip(), name, integer) for v in rest.split(",")]
    if len(set(vals)) != len(vals):
        raise UsageError(f"--grid {name}: repeated values in {rest!r}")
    log = not integer and len(vals) > 2 and min(vals) > 0 and max(vals) / min(vals) >= 10
    return Axis(name, tuple(vals), log, text)


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep checks: ``theorem`` (id; ``theorems_file`` for a user's theorem), the fixed instance ``flags``
    (``FLAGS``: strings as on the command line, None where not given), the ``axes``, and the numeric settings
    (``starts`` per point, ``seed``, ``solver``) and ``batch`` (points per task)."""

    theorem: str
    flags: dict
    axes: tuple[Axis, ...]
    starts: int
    seed: int = 0
    solver: str = "lbfgs"
    batch: int = DEFAULT_BATCH
    theorems_file: str | None = None

    def to_json(self) -> dict:
        return {"theorem": self.theorem, "theorems_file": self.theorems_file, "flags": dict(self.flags),
                "axes": [a.to_json() for a in self.axes], "starts": self.starts, "seed": self.seed,
                "solver": self.solver, "batch": self.batch}

    @property
    def size(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    def grid(self) -> list[dict]:
        """The points' axis values, row-major (the first axis varies slowest)."""
        return [dict(zip([a.name for a in self.axes], combo))
                for combo in itertools.product(*[a.values for a in self.axes])]

    def batches(self) -> list[list[int]]:
        n = self.size
        return [list(range(i, min(i + self.batch, n))) for i in range(0, n, self.batch)]


def make_spec(theorem, flags: dict, grids: Sequence[str], *, starts: int | None = None, seed: int = 0,
              solver: str = "lbfgs", batch: int = DEFAULT_BATCH, theorems_file: str | None = None) -> SweepSpec:
    """A validated ``SweepSpec``: the axes parsed (one or two, distinct, none of them also a fixed flag the user
    gave), ``starts`` defaulting as ``ncverify check`` (4, more for theorems that need them), batch >= 1."""
    from ncverify.proofs_checks.cli.args import INSTANCE_FLAG_DEFAULTS, check_solver_options

    if not grids:
        raise UsageError("give at least one --grid NAME=VALUES, e.g. --grid lam-h=1e-4:1e-1:log:40")
    axes = tuple(parse_axis(g) for g in grids)
    if len(axes) > MAX_AXES:
        raise UsageError(f"at most {MAX_AXES} --grid axes (the phase diagram is drawn over them), got {len(axes)}")
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise UsageError(f"--grid: the axis {next(n for n in names if names.count(n) > 1)} is given twice")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"--batch must be an integer >= 1, got {batch!r}")
    n = max(4, theorem.min_starts) if starts is None else starts
    check_solver_options(starts=n, seed=seed, solver=solver)
    flags = {k: INSTANCE_FLAG_DEFAULTS.get(k) if flags.get(k) is None else flags[k] for k in FLAGS}
    flags["bias"] = bool(flags["bias"])
    for k in ("lam_w", "lam_h", "lam_b"):  # one spelling per value ("1e-2" and 0.01 are the same sweep)
        flags[k] = _canonical_floats(flags[k])
    if ("classes" in names or "per-class" in names) and flags.get("counts") is not None:
        raise UsageError("sweeping classes or per-class needs the fixed instance as --classes K --per-class n, "
                         "not --counts")
    spec = SweepSpec(theorem.id, flags, axes, n, seed, solver, batch, theorems_file)
    if spec.size > MAX_POINTS:
        raise UsageError(f"the grid has {spec.size} points, more than {MAX_POINTS}")
    return spec


def prepare(theorem, flags: dict, grids: Sequence[str], *, starts: int | None = None, seed: int = 0,
            solver: str = "lbfgs", batch: int = DEFAULT_BATCH, theorems_file: str | None = None,
            workers: Any = None, scheduler: Any = None, memory_budget: str | int | None = None
            ) -> tuple[SweepSpec, list[Instance]]:
    """Everything ``ncverify sweep`` and ``api.sweep`` check before any work (and before a cluster starts): the
    spec (``make_spec``), the cluster flags, and every grid point (``instances``). Returns (spec, instances)."""
    from ncverify.proofs_checks.distributed import check_cluster_args

    spec = make_spec(theorem, flags, grids, starts=starts, seed=seed, solver=solver, batch=batch,
                     theorems_file=theorems_file)
    check_cluster_args(workers, scheduler)
    return spec, instances(spec, theorem, memory_budget)


def _canonical_floats(text: Any) -> Any:
    """"1e-2,5e-3" as "0.01,0.005" (Python's shortest round-trip form); text that is not a list of numbers is left
    as it is (``instances`` names the problem)."""
    try:
        return ",".join(repr(float(v)) for v in str(text).split(","))
    except ValueError:
        return text


def instances(spec: SweepSpec, theorem, memory_budget: str | int | None = None) -> list[Instance]:
    """Every point's instance, each validated as ``ncverify check`` validates it (the instance flags, the command
    line's size limits, the theorem's assumptions, the memory budget) before any work; the first invalid point
    is a one-line error naming its axis values."""
    from ncverify.numerics import resources
    from ncverify.proofs_checks.cli.args import instance_from_args
    from ncverify.proofs_checks.errors import INPUT_ERRORS

    out = []
    for values in spec.grid():
        ns = argparse.Namespace(**spec.flags)
        for name, v in values.items():
            attr = AXES[name]
            setattr(ns, attr, repr(v) if isinstance(v, float) else str(v))
        where = ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())
        try:
            inst = instance_from_args(ns, theorem.defaults)
            theorem.validate(inst)
            resources.require_fits(inst, spec.starts, memory_budget)
        except INPUT_ERRORS as exc:
            raise UsageError(f"grid point {where}: {' '.join(str(exc).split())}") from None
        out.append(inst)
    return out


def _fmt(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------
# one task: a batch of points
# ---------------------------------------------------------------------------------------------
def sweep_task(theorem_id: str, source: tuple[str, str] | None, indices: list[int], values: list[dict],
               insts: list[Instance], starts: int, seed: int, solver: str,
               progress: Callable[[str], None] | None = None) -> list[dict]:
    """The records of a batch of points (one batched solve): ``point_record`` of each check."""
    from ncverify.proofs_checks import distributed, verify

    th = distributed.resolve_theorem(theorem_id, source)
    if progress:
        progress(f"points {indices[0] + 1}-{indices[-1] + 1}: one batched solve")
    checks = verify.check_many(th, insts, solver=solver, starts=starts, seed=seed,
                               cache=verify.ExactCache(values_only=True))
    theorems_file = None if source is None else source[0]
    return [point_record(i, v, th, c, starts=starts, seed=seed, solver=solver, theorems_file=theorems_file)
            for i, v, c in zip(indices, values, checks)]


def point_record(index: int, values: dict, theorem, c, *, starts: int, seed: int, solver: str,
                 theorems_file: str | None) -> dict:
    """One point: its axis values and instance, the verdict and reason, the derived, claimed and numeric
    objective and singular values of W = W_M...W_1, the derived phase boundaries through the point
    (``critical_values``: where the instance, moved along one parameter, changes branch), the worst compared
    quantity (error / tolerance), the command that reproduces it, and the seconds it took."""
    from ncverify.proofs_checks import verify
    from ncverify.proofs_checks.statement.domains import critical_values

    def sv(pred: dict | None) -> list | None:
        return None if not pred else pred["singular_values"]["weights_product"]

    num = c.numerics or {}
    w = c.worst()
    try:
        bounds = critical_values(theorem.family, c.instance)
    except NotImplementedError:
        bounds = {}
    return {
        "index": index, "values": values, "instance": c.instance.as_dict(), "verdict": str(getattr(c.verdict, "value", c.verdict)),
        "reason": c.reason,
        "derived": {"objective": (c.derivation or {}).get("objective"), "sigma_W": sv(c.derivation)},
        "claimed": {"objective": (c.claim or {}).get("objective"), "sigma_W": sv(c.claim)},
        "numeric": {"objective": num.get("best_objective"), "sigma_W": (num.get("singular_values") or {}).get(
            "weights_product"), "grad_norm": num.get("best_grad_norm")},
        "boundaries": {k: [float(x) for x in v] for k, v in bounds.items()},
        "worst": None if w is None else {"check": w.check, "quantity": w.quantity, "error": w.error,
                                         "tolerance": w.tolerance},
        "reproduce": verify.with_check_options(c.reproduce, theorems_file=theorems_file, solver=solver,
                                               starts=starts, seed=seed),
        "seconds": round(c.seconds, 3),
    }


# ---------------------------------------------------------------------------------------------
# the output directory (resumable)
# ---------------------------------------------------------------------------------------------
class Store:
    """``out``/sweep-spec.json and ``out``/points.jsonl: what was asked and every finished point."""

    def __init__(self, out: Path, spec: SweepSpec) -> None:
        from ncverify.proofs_checks.cli.args import check_out_dir

        check_out_dir(str(out))
        self.out = Path(out)
        self.spec = spec
        spec_path = self.out / SPEC_FILE
        want = json.loads(json.dumps(spec.to_json()))
        if spec_path.exists():
            try:
                have = json.loads(spec_path.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"{spec_path} cannot be read ({exc}): remove it or use another --out") from None
            if have != want:
                diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
                raise UsageError(f"{self.out} holds a sweep with other settings ({', '.join(diff)} differ): "
                                 "use another --out to start a new sweep, or the same command to resume")
        else:
            _write_atomic(spec_path, json.dumps(want, indent=1))

    def finished(self) -> dict[int, dict]:
        """The records in points.jsonl by index (a line cut short by an interruption is ignored)."""
        path = self.out / POINTS_FILE
        done: dict[int, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("index"), int) and 0 <= rec["index"] < self.spec.size:
                    done[rec["index"]] = rec
        return done

    def add(self, records: list[dict]) -> None:
        """Append a batch's records (one write, flushed to disk)."""
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
        with open(self.out / POINTS_FILE, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
#: progress(message, points done, points in all)
SweepProgress = Callable[[str, int, int], None]


def run_sweep(spec: SweepSpec, theorem, insts: list[Instance], out: str | Path, *, executor: Any = None,
              draw: Callable[[dict, Path], str | None] | None = None, progress: SweepProgress | None = None) -> dict:
    """Check every point of ``spec`` (``insts``: its validated instances, ``prepare``), skipping those already in
    ``out``; write ``out``/sweep.json and, with ``draw`` (``figures.sweep_figure``), the phase diagram; return the
    sweep.json structure: {schema_version, spec, points (in order), verdicts (count per verdict), resumed (points
    found finished), computed, seconds, figure, executor}."""
    t0 = time.perf_counter()
    say = progress or (lambda msg, i, n: None)
    store = Store(Path(out), spec)
    done = store.finished()
    resumed = len(done)
    if resumed:
        say(f"resuming: {resumed} of {spec.size} points already done", resumed, spec.size)
    data = sweep_data(spec, theorem, insts, executor=executor, done=done, on_batch=store.add, progress=progress)
    data.update(resumed=resumed, computed=spec.size - resumed, seconds=round(time.perf_counter() - t0, 2))
    if draw is not None:
        say("drawing the phase diagram", spec.size, spec.size)
        data["figure"] = draw(data, Path(out) / FIGURE_FILE)
    _write_atomic(Path(out) / RESULT_FILE, json.dumps(data, indent=1, default=_json_default))
    return data


def sweep_data(spec: SweepSpec, theorem, insts: list[Instance], *, executor: Any = None,
               done: dict[int, dict] | None = None, on_batch: Callable[[list[dict]], None] | None = None,
               progress: SweepProgress | None = None) -> dict:
    """The sweep.json structure of ``spec`` (no files): the batches with a point not in ``done`` checked as tasks
    on ``executor`` (default in-process), ``on_batch(records)`` called as each completes."""
    from ncverify.proofs_checks import distributed

    say = progress or (lambda msg, i, n: None)
    done = dict(done or {})
    grid = spec.grid()
    todo = [b for b in spec.batches() if not all(i in done for i in b)]
    ex = executor if executor is not None else distributed.InProcess()
    source = distributed.theorems_source(spec.theorems_file) if spec.theorems_file else None
    distributed.remember_loaded(source, [theorem])
    total = spec.size
    tasks = [(sweep_task, (spec.theorem, source, b, [grid[i] for i in b], [insts[i] for i in b], spec.starts,
                           spec.seed, spec.solver)) for b in todo]
    names = [f"points {b[0] + 1}-{b[-1] + 1}" for b in todo]
    say(f"{len(tasks)} tasks of up to {spec.batch} points ({ex.description})", len(done), total)
    for j, records in ex.map(tasks, names=names, progress=lambda j, msg: say(msg, len(done), total)):
        if on_batch is not None:
            on_batch(records)
        done.update((r["index"], r) for r in records)
        say(f"{names[j]} done", len(done), total)
    points = [done[i] for i in range(total)]
    verdicts = {v: sum(p["verdict"] == v for p in points) for v in ("verified", "refuted", "inconclusive")}
    return {"schema_version": SCHEMA_VERSION, "spec": spec.to_json(), "theorem_title": theorem.title,
            "family": theorem.family, "verdicts": verdicts, "points": points, "resumed": 0, "computed": len(points),
            "seconds": None, "executor": ex.description, "figure": None}
