"""``ncverify sweep``: a theorem's verdict and derived quantities on every point of a parameter grid
(``proofs_checks.sweep``), with the phase diagram; resumable; in-process, or on Dask with --workers / --scheduler.

  ncverify sweep THEOREM --grid lam-h=1e-4:1e-1:log:40 [--grid depth=1..6] <fixed instance flags>
                 [--starts S] [--seed S] [--solver lbfgs|gd] [--batch B] [--out DIR] [--json] [--no-figure]
                 [--workers N | --scheduler ADDRESS] [--theorems FILE] [--memory-budget SIZE]

Every argument and every grid point is validated before any work (one line, exit code 2). Exit code 0 when the
sweep completed, whatever its verdicts (they are the output: the table, ``DIR/sweep.json``, ``--json``).
"""
from __future__ import annotations

import argparse

from ncverify.proofs_checks.cli.args import add_cluster_args, add_instance_args
from ncverify.proofs_checks.cli.output import console, fmt, print_copyable, print_json
from ncverify.proofs_checks.exitcodes import ExitCode

#: refuted / inconclusive points listed in the terminal summary (all of them are in sweep.json)
SHOWN_POINTS = 5


def add_parser(sub) -> None:
    """Register the ``sweep`` subcommand on an argparse subparsers object."""
    from ncverify.proofs_checks.sweep import AXES, DEFAULT_BATCH

    p = sub.add_parser("sweep", help="a theorem's verdict on every point of a parameter grid, with its phase diagram")
    p.add_argument("theorem", metavar="THEOREM-ID")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=VALUES",
                   help="an axis (one or two): NAME=lo:hi:log:n, NAME=lo:hi:lin:n, NAME=a..b or NAME=v1,v2,...; "
                        f"NAME one of {', '.join(AXES)}")
    add_instance_args(p)
    p.add_argument("--starts", type=int, default=None, help="starts per point (default as for check: 4, or more "
                   "for theorems that need them)")
    p.add_argument("--seed", type=int, default=0, help="the seed of every point's starts (default %(default)s)")
    p.add_argument("--solver", choices=["lbfgs", "gd"], default="lbfgs")
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                   help="points per task, one batched solve each (default %(default)s)")
    p.add_argument("--out", default="ncverify-sweep", help="output directory; the same one resumes an interrupted "
                   "sweep (default %(default)s)")
    p.add_argument("--no-figure", action="store_true", help="skip the phase diagram")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="refuse grid points whose check needs more memory than this (default: NCVERIFY_MEMORY_BUDGET, "
                        "else half of this machine's memory)")
    p.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    p.add_argument("--json", action="store_true", help="print sweep.json to stdout")
    add_cluster_args(p)
    p.set_defaults(func=cmd_sweep)


def flags_of(args: argparse.Namespace) -> dict:
    """The fixed instance flags of the command line (``sweep.FLAGS``)."""
    from ncverify.proofs_checks.sweep import FLAGS

    return {k: getattr(args, k) for k in FLAGS}


def cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ncverify.proofs_checks.catalogue import by_id
    from ncverify.proofs_checks.cli.args import check_out_dir
    from ncverify.proofs_checks.cli.commands import _catalogue
    from ncverify.proofs_checks.distributed import executor
    from ncverify.proofs_checks.figures import sweep_figure
    from ncverify.proofs_checks.sweep import prepare, run_sweep

    theorems, mutants = _catalogue(args)
    th = by_id(args.theorem, theorems + mutants)
    spec, insts = prepare(th, flags_of(args), args.grid, starts=args.starts, seed=args.seed, solver=args.solver,
                          batch=args.batch, theorems_file=args.theorems, workers=args.workers,
                          scheduler=args.scheduler, memory_budget=args.memory_budget)
    check_out_dir(args.out)
    err = Console(stderr=True)
    say = lambda msg: err.print(msg, highlight=False, markup=False)  # noqa: E731
    with executor(args.workers, args.scheduler, say=say) as ex, \
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("sweep", total=spec.size)
        data = run_sweep(spec, th, insts, Path(args.out), executor=ex, draw=None if args.no_figure else sweep_figure,
                         progress=lambda msg, done, total: bar.update(task, completed=done, description=msg[:60]))
    if args.json:
        print_json(data)
    else:
        print_sweep(data, args.out)
    return ExitCode.SUCCESS


def print_sweep(data: dict, out: str) -> None:
    """The terminal summary: verdict counts, the first refuted and inconclusive points with their commands."""
    from rich.markup import escape

    con = console()
    spec = data["spec"]
    v = data["verdicts"]
    shape = " x ".join(f"{a['name']} {len(a['values'])}" for a in spec["axes"])
    con.print(f"[bold]{escape(spec['theorem'])}[/bold] on {len(data['points'])} grid points ({shape}): "
              f"[green]{v['verified']} verified[/green], [red]{v['refuted']} refuted[/red], "
              f"[yellow]{v['inconclusive']} inconclusive[/yellow] ({data['seconds']} s, {data['executor']}"
              + (f"; {data['resumed']} points resumed from {out}" if data["resumed"] else "") + ")")
    for verdict in ("refuted", "inconclusive"):
        pts = [p for p in data["points"] if p["verdict"] == verdict]
        for p in pts[:SHOWN_POINTS]:
            where = ", ".join(f"{k}={fmt(x, 6)}" for k, x in p["values"].items())
            con.print(f"{verdict} at {where}: {escape(p['reason'][:200])}", highlight=False)
            print_copyable(con, f"  reproduce: {p['reproduce']}")
        if len(pts) > SHOWN_POINTS:
            con.print(f"... and {len(pts) - SHOWN_POINTS} more {verdict} points (sweep.json)")
    files = f"{out}/sweep.json" + (f", {data['figure']}" if data.get("figure") else "")
    print_copyable(con, f"results: {files}")
