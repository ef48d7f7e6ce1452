"""The ``ncverify`` subcommands solve, derive, list, check and run (lemmas: ``cli.lemmas``)."""
from __future__ import annotations

import argparse
from typing import Any

from ncverify.proofs_checks.cli.args import (check_device, check_out_dir, check_seed, check_solver_options,
                                             check_starts, instance_from_args, parse_ids)
from ncverify.proofs_checks.cli.output import console, fmt, print_copyable, print_json, shorten
from ncverify.numerics import resources
from ncverify.proofs_checks.exitcodes import ExitCode, check_exit_code


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
    g.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="refuse instances that need more memory than this, e.g. 8GB (default: NCVERIFY_MEMORY_BUDGET, "
                        "else half of this machine's memory)")
    g.add_argument("--init-std", type=float, default=None,
                   help="every start Gaussian N(0, std^2) (the papers' protocol) instead of the start portfolio "
                        "(Gaussian at several scales, balanced spectral, low-rank; numerics.starts)")


def _check_solver_args(args: argparse.Namespace) -> None:
    check_solver_options(starts=args.starts, seed=args.seed, solver=args.solver, lr=args.lr, momentum=args.momentum,
                         init_std=args.init_std, grad_tol=args.grad_tol, max_iter=args.max_iter, flags=True)
    check_device(args.device)


def run_solve(inst, args: argparse.Namespace, console) -> dict:
    """Multi-start solve of ``inst`` (``ncverify.solve``: the start portfolio, batched) with a progress bar; the
    JSON-ready result: the best end point's measurements, every run, and every distinct end point
    (``distinct_end_points``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ncverify.api import solve

    quiet = getattr(args, "json", False) or not console.is_terminal
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"{args.solver}: starts", total=args.starts)
        res = solve(inst, solver=args.solver, starts=args.starts, seed=args.seed, device=args.device,
                    init_std=args.init_std, max_iter=args.max_iter, grad_tol=args.grad_tol, lr=args.lr,
                    momentum=args.momentum, progress=lambda done, total: progress.update(task, completed=done))
    out = res.to_json()
    geometry = getattr(args, "geometry", None)
    if geometry:
        out["metrics"]["requested_geometry"] = _geometry_check(inst, res.best.params, geometry)
    return out


def _geometry_check(inst, params, geometry: str) -> dict:
    """NC2 of W W^T and of the class-mean Gram against the requested target (OF or ETF)."""
    from ncverify.numerics import metrics

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


def print_solve(out: dict, console) -> None:
    from rich.table import Table

    inst = out["instance"]
    console.print(f"[bold]Instance[/bold]: loss={inst['loss']} counts={inst['counts']} d={inst['width']} "
                  f"M={inst['depth']} lambda_W={inst['lam_w']} lambda_H={inst['lam_h']} bias={inst['bias']} "
                  f"lambda_b={inst['lam_b']} activation={inst['activation'] or 'none (deep linear)'}")
    runs = Table(title=f"{out['solver']} runs (seed {out['seed']}; seconds = batch time / starts)")
    for col in ("start", "init", "stop reason", "iterations", "grad evals", "objective", "grad norm", "seconds"):
        runs.add_column(col)
    for r in out["runs"]:
        runs.add_row(str(r["start"]), r["init"], r["stop_reason"], str(r["iterations"]), str(r["grad_evals"]),
                     fmt(r["objective"], 15), fmt(r["grad_norm"], 3), fmt(r["seconds"], 3))
    console.print(runs)
    ends = Table(title="Distinct end points (objective within 1e-9 relative; rank of W = W_M...W_1 H-class means)")
    for col in ("objective", "starts", "stop reasons", "rank of W", "collapsed classes"):
        ends.add_column(col)
    for e in out["distinct_end_points"]:
        ends.add_row(fmt(e["objective"], 15), ",".join(map(str, e["starts"])), ",".join(sorted(set(e["stop_reasons"]))),
                     str(e["rank"]), ",".join(map(str, e["collapsed_classes"])) or "none")
    console.print(ends)
    console.print(f"[bold]Best[/bold] (start {out['best_start']}): objective = {out['objective']:.15g}  "
                  f"stop = {out['stop_reason']}  |grad| = {fmt(out['grad_norm'], 3)}")
    parts = out.get("objective_parts", {})
    if parts:
        console.print("  parts: " + ", ".join(f"{k} = {fmt(v, 10)}" for k, v in parts.items()))
    sv = out["singular_values"]
    t = Table(title="Singular values")
    t.add_column("matrix")
    t.add_column("singular values")
    t.add_row("W = W_M...W_1", fmt(sv["weights_product"]))
    for j, s in enumerate(sv["layers"], start=1):
        t.add_row(f"W_{j}", fmt(s))
    t.add_row("output", fmt(sv["output"]))
    if "class_mean_norms" in out:
        t.add_row("||hbar_k||", fmt(out["class_mean_norms"]))
    console.print(t)
    m = Table(title="NC metrics at the best end point (0 = exact collapse geometry)")
    m.add_column("metric")
    m.add_column("value")
    for k, v in _flatten(out.get("metrics", {})):
        m.add_row(k, fmt(v, 4))
    for k, v in _flatten({"balancedness": out.get("balancedness", {})}):
        m.add_row(k, fmt(v, 4))
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
    from rich.console import Console  # the progress display on stderr

    inst = instance_from_args(args)
    _check_solver_args(args)
    resources.require_fits(inst, args.starts, args.memory_budget)
    out = run_solve(inst, args, Console(stderr=True))
    if args.json:
        print_json(out)
    else:
        print_solve(out, console())
    return ExitCode.SUCCESS


# ---------------------------------------------------------------------------------------------
# derive
# ---------------------------------------------------------------------------------------------
def cmd_derive(args: argparse.Namespace) -> int:
    """The theory engine's derivation for a family id, or for a theorem id resolved to its family
    (``ncverify.api.derivation_target``)."""
    from ncverify.api import derivation_target
    from ncverify.theory import render
    from ncverify.theory.derive import derive

    theorems, mutants = _catalogue(args)
    family, theorem, flags_from = derivation_target(args.target, theorems + mutants, args.dps, "--dps")
    inst = instance_from_args(args, flags_from.defaults if flags_from is not None else {}, numeric=False)
    if theorem is not None:
        theorem.validate(inst)
    pred = derive(family, inst, dps=args.dps)
    if theorem is not None:
        pred = pred.with_(requested_id=theorem.id)
    if args.json:
        print_json(render.to_json(pred))
    elif args.latex:
        print(render.to_latex(pred))
    else:
        print(render.to_text(pred))
    return ExitCode.SUCCESS


def _catalogue(args: argparse.Namespace):
    """(theorems, mutants) of the catalogue plus those of ``--theorems FILE``."""
    from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS, load_theorems

    extra = load_theorems(args.theorems) if getattr(args, "theorems", None) else []
    return THEOREMS + [t for t in extra if not t.is_mutant], MUTANTS + [t for t in extra if t.is_mutant]


def cmd_list(args: argparse.Namespace) -> int:
    theorems, mutants = _catalogue(args)
    rows = theorems + (mutants if args.mutants else [])
    if args.json:
        print_json({"theorems": [{"id": t.id, "title": t.title, "source": t.source,
                                  "expected_verdict": t.expected.verdict} for t in rows]})
        return ExitCode.SUCCESS
    from rich.table import Table

    table = Table(title="ncverify catalogue (ncverify list --json adds the sources)")
    table.add_column("id", no_wrap=True)  # ids are copied: never folded
    table.add_column("recorded verdict", no_wrap=True)
    table.add_column("title", overflow="fold")
    for t in rows:
        table.add_row(t.id, t.expected.verdict, t.title)
    console().print(table)
    return ExitCode.SUCCESS


def cmd_check(args: argparse.Namespace) -> int:
    from ncverify.api import check
    from ncverify.proofs_checks.catalogue import by_id

    check_starts(args.starts)
    check_seed(args.seed)
    theorems, mutants = _catalogue(args)
    th = by_id(args.theorem, theorems + mutants)
    inst = instance_from_args(args, th.defaults)
    th.validate(inst)
    check_device(args.device)  # every argument before any work
    res = check(th, inst, solver=args.solver, starts=args.starts, seed=args.seed, device=args.device,
                theorems_file=getattr(args, "theorems", None), memory_budget=args.memory_budget)
    code = check_exit_code(getattr(res.verdict, "value", res.verdict), args.expect)
    if args.json:
        print_json(res.to_json())
        _say_expectation(res, args.expect, code)
        return code
    from rich.markup import escape

    con = console()
    color = {"verified": "green", "refuted": "red", "inconclusive": "yellow"}[res.verdict]
    con.print(f"[bold]{th.id}[/bold] on {inst.cli_flags()}")
    con.print(f"verdict: [bold {color}]{res.verdict}[/bold {color}] -- {escape(res.reason)}")
    marks = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "unsettled": "[yellow]UNSETTLED[/yellow]",
             "info": "[dim]info[/dim]"}
    for e in res.evidence:
        num = ""
        if e.error is not None and e.tolerance is not None:
            num = f": error {fmt(e.error, 3)} {'<=' if e.status == 'pass' else 'vs'} tolerance {fmt(e.tolerance, 3)}"
        con.print(f"{marks.get(e.status, e.status)} [bold]{escape(e.check)}[/bold] | {escape(e.quantity)}{num}",
                  highlight=False)
        for extra in (e.detail, f"tolerance: {e.origin}" if e.origin else ""):
            if extra:
                con.print(f"      {extra}", highlight=False, style="dim", markup=False)
    print_copyable(con, f"reproduce: {res.reproduce}")
    con.print(f"({res.seconds:.1f} s)", highlight=False)
    _say_expectation(res, args.expect, code)
    return code


def _say_expectation(res, expect: str | None, code: int) -> None:
    """With --expect, one line on stderr when the verdict differs from it (exit code 1)."""
    if expect is not None and code == ExitCode.DIFFERS:
        import sys

        verdict = getattr(res.verdict, "value", res.verdict)
        print(f"ncverify: verdict {verdict} differs from --expect {expect} ({res.theorem})", file=sys.stderr)


SUMMARY_REASON_CHARS = 240  # the run summary's reasons are shortened at a word boundary beyond this


def cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from ncverify.proofs_checks.distributed import executor
    from ncverify.proofs_checks.report import command_line, rich_progress, run_catalogue, write_report

    budget, theorems, mutants = _validate_run_args(args)
    err = Console(stderr=True)
    with executor(args.workers, args.scheduler, say=lambda msg: err.print(msg, highlight=False, markup=False)) as ex, \
            rich_progress(err) as update:  # one bar per phase: theorems, mutants, lemmas, figures, writing
        data = run_catalogue(theorems, mutants, budget, seed=args.seed, solver=args.solver, progress=update,
                             lemmas=not args.no_lemmas, command=command_line(args), theorems_file=args.theorems,
                             executor=ex)
        write_report(data, Path(args.out), figures=not args.no_figures, seed=args.seed, progress=update,
                     theorems=theorems + mutants)
    clean = {k: v for k, v in data.items() if not k.startswith("_")}
    if args.json:
        print_json(clean)
    else:
        _print_run_summary(clean, args.out)
    return ExitCode.DIFFERS if clean["changed_verdicts"] else ExitCode.SUCCESS


def _validate_run_args(args: argparse.Namespace):
    """Every ``run`` argument checked before any work: the budget, the seed, the --theorems file, the --only ids
    (no empty id; theorem or mutant ids of the catalogue and the file) and the --out directory (created and
    written to). Returns (budget, theorems, mutants) with --only applied (a theorem brings its mutants)."""
    from ncverify.proofs_checks.distributed import check_cluster_args
    from ncverify.proofs_checks.search import Budget

    budget = Budget.of(args.budget)
    check_seed(args.seed)
    check_cluster_args(args.workers, args.scheduler)
    only = parse_ids(args.only, "--only")
    theorems, mutants = _catalogue(args)
    if only is not None:
        from ncverify.proofs_checks.catalogue import select_only

        theorems, mutants = select_only(theorems, mutants, only)
    check_out_dir(args.out)
    return budget, theorems, mutants


def _print_run_summary(data: dict, out: str) -> None:
    """The terminal summary of ``run``: a table (reasons shortened at a word boundary), the counterexamples' reproduce
    commands (one line each, never wrapped), the mutant and lemma lines, the changed verdicts, the report paths."""
    from rich.table import Table

    con = console()
    t = Table(title=f"ncverify run ({data['budget']}, {data['seconds']} s)")
    t.add_column("theorem", no_wrap=True)  # ids are copied: never folded
    for col in ("verdict", "recorded", "instances", "reason"):
        t.add_column(col, overflow="fold")
    for r in data["theorems"]:  # the reason shortened at a word boundary, never inside a number (full: report.md)
        t.add_row(r["id"], r["verdict"], r["expected_verdict"], str(r["instances_tried"]),
                  shorten(r["reason"], SUMMARY_REASON_CHARS))
    con.print(t)
    for r in data["theorems"]:
        ce = r.get("counterexample") or {}
        if ce.get("reproduce"):
            # run_catalogue already names the --theorems file in a user theorem's reproduce commands
            print_copyable(con, f"counterexample of {r['id']}: {ce['reproduce']}")
    m = data["mutants"]
    con.print(f"mutants refuted: {m['caught']} of {m['total']}")
    if data.get("lemmas"):  # lemma (proof-step) verdicts, see ``ncverify lemmas``
        odd = [f"{r['id']}: {r['verdict']}" for r in data["lemmas"] if r["verdict"] != "holds"]
        con.print(f"lemmas: {sum(r['verdict'] == 'holds' for r in data['lemmas'])} of {len(data['lemmas'])} hold"
                  + (f" ({'; '.join(odd)})" if odd else "") + f"; wrong lemmas caught: "
                  f"{data['wrong_lemmas']['caught']} of {data['wrong_lemmas']['total']}")
    for s in data.get("skipped", []):
        con.print(f"skipped {s['id']}: {s['reason']}", style="yellow", markup=False, highlight=False)
    if data["changed_verdicts"]:
        con.print("verdicts that differ from the record: " + ", ".join(data["changed_verdicts"]), style="bold red",
                  soft_wrap=True, markup=False, highlight=False)
    print_copyable(con, f"report: {out}/report.md, {out}/results.json, {out}/figures/")


