"""The ``ncverify`` command line.

Subcommands:
  solve   -- numeric minimizers of one instance's full objective and their NC measurements;
  derive  -- the theory engine's exact derivation for a family or theorem id;
  list    -- the theorem catalogue;
  check   -- the verdict of one theorem on one instance;
  run     -- verify the whole catalogue (and the seeded mutants) and write the report.
  lemmas  -- check the proof steps (lemmas) behind the theorems, and the seeded wrong lemmas.

Bad input gives one line ``ncverify: error: <violated condition>`` on stderr and exit code 2.
Set NCVERIFY_DEBUG=1 to see tracebacks instead.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Sequence

from numerics.problem import InstanceError
from proofs_checks.instance_args import add_instance_args, instance_from_args


class UsageError(Exception):
    """A command-line usage error (exit code 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) so every bad input looks the same."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _json_default(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _finite_or_none(x: Any) -> Any:
    """JSON cannot hold NaN/inf: map them to None recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


def print_json(data: Any) -> None:
    print(json.dumps(_finite_or_none(data), indent=2, default=_json_default))


# ---------------------------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------------------------
def _add_solver_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("solver")
    g.add_argument("--solver", choices=["lbfgs", "gd"], default="lbfgs", help="default %(default)s")
    g.add_argument("--starts", type=int, default=3, help="random starts (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the first start (default %(default)s)")
    g.add_argument("--device", default="auto", help="auto (cuda when present), cpu or cuda")
    g.add_argument("--max-iter", type=int, default=None, help="iteration budget per start (solver default if unset)")
    g.add_argument("--grad-tol", type=float, default=None, help="gradient-norm tolerance (solver default if unset)")
    g.add_argument("--lr", type=float, default=0.1, help="gd learning rate (default %(default)s)")
    g.add_argument("--momentum", type=float, default=0.9, help="gd momentum (default %(default)s)")
    g.add_argument("--init-std", type=float, default=0.1, help="initialization N(0, std^2) (default %(default)s)")


def _check_solver_args(args: argparse.Namespace) -> None:
    if args.starts < 1:
        raise InstanceError(f"--starts must be >= 1, got {args.starts}")
    if args.max_iter is not None and args.max_iter < 1:
        raise InstanceError(f"--max-iter must be >= 1, got {args.max_iter}")
    for name in ("lr", "init_std"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v > 0):
            raise InstanceError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")
    if not (math.isfinite(args.momentum) and 0 <= args.momentum < 1):
        raise InstanceError(f"--momentum must be in [0, 1), got {args.momentum}")
    if args.grad_tol is not None and not (math.isfinite(args.grad_tol) and args.grad_tol > 0):
        raise InstanceError(f"--grad-tol must be a finite number > 0, got {args.grad_tol}")


def run_solve(inst, args: argparse.Namespace, console) -> dict:
    """Multi-start solve of ``inst`` with a progress bar; returns the JSON-ready result."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from numerics import metrics, solvers

    quiet = getattr(args, "json", False) or not console.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"{args.solver}: random starts", total=args.starts)
        res = solvers.solve(
            inst, solver=args.solver, starts=args.starts, seed=args.seed, device=args.device,
            init_std=args.init_std, max_iter=args.max_iter, grad_tol=args.grad_tol, lr=args.lr,
            momentum=args.momentum, progress=lambda i, run: progress.advance(task),
        )
    best = res.best
    out = metrics.measure(inst, best.params)
    geometry = getattr(args, "geometry", None)
    if geometry:
        out["metrics"]["requested_geometry"] = _geometry_check(inst, best.params, geometry)
    out.update({
        "instance": inst.as_dict(),
        "stop_reason": best.stop_reason,
        "solver": args.solver,
        "seed": args.seed,
        "best_start": res.runs.index(best),
        "iterations": best.iterations,
        "grad_evals": best.grad_evals,
        "grad_norm": best.grad_norm,
        "device": best.device,
        "runs": [{"start": i, "seed": r.seed, "stop_reason": r.stop_reason, "objective": r.objective,
                  "iterations": r.iterations, "grad_evals": r.grad_evals, "grad_norm": r.grad_norm,
                  "seconds": r.seconds} for i, r in enumerate(res.runs)],
    })
    return out


def _geometry_check(inst, params, geometry: str) -> dict:
    """NC2 of W W^T and of the class-mean Gram against the requested target (OF or ETF)."""
    from numerics import metrics

    inst.require_width_at_least_classes(f"an {geometry.upper()} target geometry of K = {inst.K} class means")
    p = params.to_numpy()
    Ws = p["weights"]
    W = Ws[-1]
    for Wj in reversed(Ws[:-1]):
        W = W @ Wj
    Hbar = metrics.class_means(p["H"], inst.counts)
    if inst.bias:
        Hbar = Hbar - Hbar.mean(axis=1, keepdims=True)
    target = geometry.upper()
    return {"target": target, "nc2_WWT": metrics.nc2(W @ W.T, target), "nc2_HbarTHbar": metrics.nc2(Hbar.T @ Hbar, target)}


def _fmt(v: Any, digits: int = 6) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x, digits) for x in v) + "]"
    return str(v)


def print_solve(out: dict, console) -> None:
    from rich.table import Table

    inst = out["instance"]
    console.print(f"[bold]Instance[/bold]: loss={inst['loss']} counts={inst['counts']} d={inst['width']} "
                  f"M={inst['depth']} lambda_W={inst['lam_w']} lambda_H={inst['lam_h']} bias={inst['bias']} "
                  f"lambda_b={inst['lam_b']} activation={inst['activation'] or 'none (deep linear)'}")
    runs = Table(title=f"{out['solver']} runs (seed {out['seed']})")
    for col in ("start", "stop reason", "iterations", "grad evals", "objective", "grad norm", "seconds"):
        runs.add_column(col)
    for r in out["runs"]:
        runs.add_row(str(r["start"]), r["stop_reason"], str(r["iterations"]), str(r["grad_evals"]),
                     _fmt(r["objective"], 15), _fmt(r["grad_norm"], 3), _fmt(r["seconds"], 3))
    console.print(runs)
    console.print(f"[bold]Best[/bold] (start {out['best_start']}): objective = {out['objective']:.15g}  "
                  f"stop = {out['stop_reason']}  |grad| = {_fmt(out['grad_norm'], 3)}")
    parts = out.get("objective_parts", {})
    if parts:
        console.print("  parts: " + ", ".join(f"{k} = {_fmt(v, 10)}" for k, v in parts.items()))
    sv = out["singular_values"]
    t = Table(title="Singular values")
    t.add_column("matrix")
    t.add_column("singular values")
    t.add_row("W = W_M...W_1", _fmt(sv["weights_product"]))
    for j, s in enumerate(sv["layers"], start=1):
        t.add_row(f"W_{j}", _fmt(s))
    t.add_row("output", _fmt(sv["output"]))
    if "class_mean_norms" in out:
        t.add_row("||hbar_k||", _fmt(out["class_mean_norms"]))
    console.print(t)
    m = Table(title="NC metrics at the best end point (0 = exact collapse geometry)")
    m.add_column("metric")
    m.add_column("value")
    for k, v in _flatten(out.get("metrics", {})):
        m.add_row(k, _fmt(v, 4))
    for k, v in _flatten({"balancedness": out.get("balancedness", {})}):
        m.add_row(k, _fmt(v, 4))
    console.print(m)


def _flatten(d: Any, prefix: str = ""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(d, list) and d and isinstance(d[0], dict):
        for i, v in enumerate(d, start=1):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, d


def cmd_solve(args: argparse.Namespace) -> int:
    from rich.console import Console

    inst = instance_from_args(args)
    _check_solver_args(args)
    console = Console(stderr=bool(args.json))
    out = run_solve(inst, args, Console(stderr=True))
    if args.json:
        print_json(out)
    else:
        print_solve(out, console)
    return 0


# ---------------------------------------------------------------------------------------------
# derive
# ---------------------------------------------------------------------------------------------
def cmd_derive(args: argparse.Namespace) -> int:
    from theory import render
    from theory.derive import derive

    theorems, _ = _catalogue(args)  # --theorems file.py registers its loss variants with the theory engine
    defaults = next((t.defaults for t in theorems if t.id == args.target), None)
    if defaults is None:  # a family id: the defaults of a theorem about it (e.g. the loss of a variant)
        defaults = next((t.defaults for t in theorems if t.family == args.target), {})
    inst = instance_from_args(args, defaults)
    pred = derive(args.target, inst, dps=args.dps)
    if args.json:
        print_json(render.to_json(pred))
    elif args.latex:
        print(render.to_latex(pred))
    else:
        print(render.to_text(pred))
    return 0


# ---------------------------------------------------------------------------------------------
# list / check / run
# ---------------------------------------------------------------------------------------------
def _catalogue(args: argparse.Namespace):
    from proofs_checks.catalogue import MUTANTS, THEOREMS, load_theorems

    extra = load_theorems(args.theorems) if getattr(args, "theorems", None) else []
    return THEOREMS + [t for t in extra if not t.is_mutant], MUTANTS + [t for t in extra if t.is_mutant]


def cmd_list(args: argparse.Namespace) -> int:
    theorems, mutants = _catalogue(args)
    rows = theorems + (mutants if args.mutants else [])
    if args.json:
        print_json({"theorems": [{"id": t.id, "title": t.title, "source": t.source,
                                  "expected_verdict": t.expected.verdict} for t in rows]})
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ncverify catalogue (ncverify list --json adds the sources)")
    for col in ("id", "recorded verdict", "title"):
        table.add_column(col, overflow="fold")
    for t in rows:
        table.add_row(t.id, t.expected.verdict, t.title)
    Console().print(table)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from proofs_checks import verify
    from proofs_checks.catalogue import by_id

    theorems, mutants = _catalogue(args)
    th = by_id(args.theorem, theorems + mutants)
    inst = instance_from_args(args, th.defaults)
    starts = max(4, th.min_starts) if args.starts is None else args.starts
    if starts < 1:
        raise InstanceError(f"--starts must be >= 1, got {starts}")
    res = verify.check(th, inst, solver=args.solver, starts=starts, seed=args.seed, device=args.device)
    if args.json:
        print_json(res.to_json())
        return 0
    from rich.console import Console
    from rich.markup import escape

    con = Console()
    color = {"verified": "green", "refuted": "red", "inconclusive": "yellow"}[res.verdict]
    con.print(f"[bold]{th.id}[/bold] on {inst.cli_flags()}")
    con.print(f"verdict: [bold {color}]{res.verdict}[/bold {color}] -- {escape(res.reason)}")
    marks = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "unsettled": "[yellow]UNSETTLED[/yellow]",
             "info": "[dim]info[/dim]"}
    for e in res.evidence:
        num = ""
        if e.error is not None and e.tolerance is not None:
            num = f": error {_fmt(e.error, 3)} {'<=' if e.status == 'pass' else 'vs'} tolerance {_fmt(e.tolerance, 3)}"
        con.print(f"{marks.get(e.status, e.status)} [bold]{escape(e.check)}[/bold] | {escape(e.quantity)}{num}",
                  highlight=False)
        for extra in (e.detail, f"tolerance: {e.origin}" if e.origin else ""):
            if extra:
                con.print(f"      {extra}", highlight=False, style="dim", markup=False)
    con.print(f"reproduce: {res.reproduce}  ({res.seconds:.1f} s)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from proofs_checks.report import run_catalogue, write_report
    from proofs_checks.search import Budget

    budget = Budget.of(args.budget)
    theorems, mutants = _catalogue(args)
    if args.only:
        keep = set(args.only.split(","))
        theorems = [t for t in theorems if t.id in keep]
        mutants = [t for t in mutants if t.id in keep or t.mutant_of in keep]
    err = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as progress:
        task = progress.add_task("catalogue", total=len(theorems) + len(mutants))

        def update(msg: str, i: int, total: int) -> None:
            progress.update(task, completed=i, description=msg[:70])

        data = run_catalogue(theorems, mutants, budget, seed=args.seed, solver=args.solver, progress=update,
                             lemmas=not args.no_lemmas)
        progress.update(task, description="figures")
        write_report(data, Path(args.out), figures=not args.no_figures, seed=args.seed,
                     progress=lambda m: progress.update(task, description=m))
    clean = {k: v for k, v in data.items() if not k.startswith("_")}
    if args.json:
        print_json(clean)
    else:
        _print_run_summary(clean, args.out)
    return 1 if clean["changed_verdicts"] else 0


def _print_run_summary(data: dict, out: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"ncverify run ({data['budget']}, {data['seconds']} s)")
    for col in ("theorem", "verdict", "recorded", "instances", "reason"):
        t.add_column(col, overflow="fold")
    for r in data["theorems"]:
        t.add_row(r["id"], r["verdict"], r["expected_verdict"], str(r["instances_tried"]), r["reason"][:140])
    con.print(t)
    m = data["mutants"]
    con.print(f"mutants refuted: {m['caught']} of {m['total']}")
    if data.get("lemmas"):  # lemma (proof-step) verdicts, see ``ncverify lemmas``
        odd = [f"{r['id']}: {r['verdict']}" for r in data["lemmas"] if r["verdict"] != "holds"]
        con.print(f"lemmas: {sum(r['verdict'] == 'holds' for r in data['lemmas'])} of {len(data['lemmas'])} hold"
                  + (f" ({'; '.join(odd)})" if odd else "") + f"; wrong lemmas caught: "
                  f"{data['wrong_lemmas']['caught']} of {data['wrong_lemmas']['total']}")
    if data["changed_verdicts"]:
        con.print(f"[bold red]verdicts that differ from the record: {', '.join(data['changed_verdicts'])}[/bold red]")
    con.print(f"report: {out}/report.md, {out}/results.json, {out}/figures/")


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ncverify", description="Verify neural-collapse theorems: exact derivations (SymPy) "
                "checked against independent numeric minimizers (torch).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("solve", help="numerically minimize one instance's full objective and measure NC")
    add_instance_args(s)
    _add_solver_args(s)
    s.add_argument("--geometry", choices=["of", "etf"], default=None,
                   help="also report NC2 against this target geometry (needs d >= K)")
    s.add_argument("--json", action="store_true", help="print the measurements as JSON")
    s.set_defaults(func=cmd_solve)

    d = sub.add_parser("derive", help="print the theory engine's derivation for a family or theorem id")
    d.add_argument("target", metavar="FAMILY-OR-THEOREM-ID")
    add_instance_args(d)
    d.add_argument("--dps", type=int, default=40, help="working precision in digits (default %(default)s)")
    d.add_argument("--theorems", help="load extra theorems (and their loss variants) from this Python file")
    fmt = d.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the derivation as JSON")
    fmt.add_argument("--latex", action="store_true", help="print the expressions as LaTeX")
    d.set_defaults(func=cmd_derive)

    ls = sub.add_parser("list", help="list the theorem catalogue")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--mutants", action="store_true", help="also list the seeded wrong claims")
    ls.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    ls.set_defaults(func=cmd_list)

    c = sub.add_parser("check", help="verdict of one theorem on one instance")
    c.add_argument("theorem", metavar="THEOREM-ID")
    add_instance_args(c)
    c.add_argument("--solver", choices=["lbfgs", "gd"], default="lbfgs")
    c.add_argument("--starts", type=int, default=None,
                   help="random starts, alternating init scales 0.1 and 1 (default 4, 6 for ReLU models)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto")
    c.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("run", help="verify the whole catalogue and write the report directory")
    r.add_argument("--budget", choices=["quick", "default", "thorough"], default="default")
    r.add_argument("--out", default="ncverify-report", help="report directory (default %(default)s)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--solver", choices=["lbfgs", "gd"], default="lbfgs")
    r.add_argument("--only", help="comma-separated theorem ids (their mutants included)")
    r.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--no-lemmas", action="store_true", help="skip the lemma (proof-step) checks")
    r.add_argument("--json", action="store_true", help="print results.json to stdout")
    r.set_defaults(func=cmd_run)

    from proofs_checks.lemma_checks.cli import add_parser as add_lemmas_parser

    add_lemmas_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, InstanceError, ValueError) as exc:
        if os.environ.get("NCVERIFY_DEBUG"):
            raise
        msg = " ".join(str(exc).split())  # one line
        print(f"ncverify: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ncverify: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
