"""``ncverify lemmas``: the verdict of every proof step (lemma) and of the seeded wrong lemmas.

  ncverify lemmas [--json] [--budget quick|default|thorough] [--seed S] [--only IDS] [--no-wrong]

--only takes comma-separated lemma ids or theorem ids (a theorem id selects the lemmas its proof uses).
Text mode prints a table (verdict, recorded verdict, used by, evidence) and every counterexample with
its numbers; a progress display goes to stderr. JSON: {"lemmas": [{"id", "statement", "used_by",
"verdict", "evidence", ...}], "wrong_lemmas": {"caught", "total", "missed", "results"}, "findings", ...}.
Exit code (``exitcodes.ExitCode``): 1 when a verdict differs from the one recorded in the registry, else 0;
2 for bad arguments (checked before any work).
"""
from __future__ import annotations

import argparse

from ncverify.proofs_checks.cli.args import check_seed, parse_ids
from ncverify.proofs_checks.cli.output import console, print_copyable, print_json
from ncverify.proofs_checks.exitcodes import ExitCode


def add_parser(sub) -> None:
    """Register the ``lemmas`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("lemmas", help="check the lemmas (proof steps) behind the theorems, and the seeded wrong lemmas")
    p.add_argument("--budget", choices=["quick", "default", "thorough"], default="default")
    p.add_argument("--seed", type=int, default=0, help="seed of every random stream (default %(default)s)")
    p.add_argument("--only", help="comma-separated lemma ids or theorem ids")
    p.add_argument("--no-wrong", action="store_true", help="skip the seeded wrong lemmas")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_lemmas)


def cmd_lemmas(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ncverify.proofs_checks.lemmas import run_lemmas, select

    check_seed(args.seed)
    only = parse_ids(args.only, "--only")
    n = len(select(only, include_wrong=not args.no_wrong))
    err = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("lemmas", total=n)
        data = run_lemmas(args.budget, args.seed, only=only, include_wrong=not args.no_wrong,
                          progress=lambda msg, i, total: progress.update(task, completed=i, description=msg[:60]))
    if args.json:
        print_json(data)
    else:
        print_lemmas(data)
    return ExitCode.DIFFERS if data["changed_verdicts"] else ExitCode.SUCCESS


def print_lemmas(data: dict) -> None:
    """The rich table, the counterexamples with their numbers, and the wrong-lemma line."""
    from rich.markup import escape
    from rich.table import Table

    from ncverify.proofs_checks.lemmas import counterexample_lines, evidence_line

    con = console()
    color = {"holds": "green", "violated": "red", "inconclusive": "yellow"}
    t = Table(title=f"ncverify lemmas (budget {data['budget']}, seed {data['seed']}, {data['seconds']} s)")
    t.add_column("lemma", no_wrap=True)  # ids are copied: never folded
    for col in ("verdict", "recorded", "used by", "evidence"):
        t.add_column(col, overflow="fold")
    for r in data["lemmas"]:
        c = color.get(r["verdict"], "white")
        t.add_row(r["id"], f"[{c}]{r['verdict']}[/{c}]", r["expected_verdict"], "\n".join(r["used_by"]),
                  escape(evidence_line(r)))
    con.print(t)
    w = data["wrong_lemmas"]
    if w["total"]:
        wt = Table(title="seeded wrong lemmas")
        for col in ("wrong lemma", "mutation", "verdict", "counterexample"):
            wt.add_column(col, overflow="fold")
        for r in w["results"]:
            c = "green" if r["verdict"] == "violated" else "red"
            wt.add_row(r["id"], r["mutation"], f"[{c}]{r['verdict']}[/{c}]", escape(evidence_line(r)))
        con.print(wt)
        con.print(f"[bold]wrong lemmas caught: {w['caught']} of {w['total']}[/bold]"
                  + (f" (missed: {', '.join(w['missed'])})" if w["missed"] else ""))
    for r in data["lemmas"]:
        if r["verdict"] != "violated":
            continue
        con.print(f"\n[bold red]{r['id']} is violated[/bold red]; proofs that use it: {', '.join(r['used_by'])}")
        if r.get("finding"):
            con.print(escape(r["finding"]), highlight=False)
        if r.get("counterexample"):
            for line in counterexample_lines(r["counterexample"]):
                con.print(escape(line), highlight=False)
        print_copyable(con, f"reproduce: {r['reproduce']}")
    if data["changed_verdicts"]:
        con.print(f"[bold red]verdicts that differ from the record: {', '.join(data['changed_verdicts'])}[/bold red]")
