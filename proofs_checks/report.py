"""``ncverify run``: verify the catalogue (and the seeded mutants, and the lemmas) and write the report directory.

report.md    -- one concise page: a summary table first (theorem, verdict, recorded verdict, coverage, worst error
                against its tolerance), then per theorem the verdict, coverage, worst error, counterexample with the
                command that reproduces it (the checked instances folded in ``<details>``); the mutants; the lemmas;
                the figures. Everything else is in results.json.
results.json -- the same data in full (``SCHEMA_VERSION``; keys below).
figures/     -- the png files of ``proofs_checks.figures`` and ``figures.json`` (the numbers they plot).

The directory is written atomically enough that a failure never leaves a half-written report: everything is
first written into a temporary directory inside ``out``, then moved into place (figures/, results.json, and
report.md last); on any error the temporary directory is removed and the previous report stays as it was.

results.json keys (schema_version 1; the number changes only when a key is removed or changes meaning):
  schema_version (int), suite_version (``ncverify.__version__``), commit (``git rev-parse HEAD`` of the
  package's repository when it is a git checkout, else null), commit_dirty (tracked files modified; null
  without git), created (UTC, ISO 8601), command (the command line that reproduces the run, or null), python,
  platform, versions ({"torch", "sympy", "mpmath", "numpy", "hypothesis", "matplotlib"}: installed versions),
  budget, seed, solver, seconds, executor ("in-process", "local Dask cluster (N workers)" or "Dask scheduler
  ADDRESS": where the tasks ran; the results do not depend on it),
  theorems: [{id, title, source, provenance, verdict, expected_verdict, matches_record, reason, instances_tried,
              numeric_checks, coverage {numeric, searched: {instances, K, depth, width, per_class, imbalance,
              lambda ([min, max] each), loss, bias} | null, assumptions: [str]},
              worst {check, quantity, status, error, tolerance, origin, detail} | null,
              counterexample {instance, reproduce, reason, verdict} | null, region, mutant_of, mutation,
              checks: [{theorem, instance, verdict, reason, evidence, claim, derivation, numerics, seconds,
              reproduce}], seconds}],
  mutants: {caught, total, missed: [id], results: [same rows as theorems]},
  lemmas, wrong_lemmas, lemma_findings, lemma_seconds (when the lemmas ran; ``proofs_checks.lemmas``),
  changed_verdicts: [theorem id or "lemma:<id>" whose verdict differs from the record];
  skipped: [{id, reason}] theorems and mutants left out because an optional extra is missing (the convex oracle).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ncverify.proofs_checks.search import Budget, TheoremResult, coverage_text, search_theorem
from ncverify.proofs_checks.statement import Theorem

#: results.json format version: bumped only on an incompatible change (a key removed or changing meaning)
SCHEMA_VERSION = 1

#: the phases of a run, in order, as the progress callback names them
PHASES = ("theorems", "mutants", "lemmas", "figures", "writing")

#: progress(phase, message, done, total): ``phase`` one of PHASES, ``done`` of ``total`` steps of that phase
RunProgress = Callable[[str, str, int, int], None]


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------
def run_catalogue(theorems: list[Theorem], mutants: list[Theorem], budget: Budget, seed: int = 0,
                  solver: str = "lbfgs", progress: RunProgress | None = None, lemmas: bool = True,
                  command: str | None = None, theorems_file: str | None = None, executor: Any = None) -> dict:
    """Theorem-level verdicts for every theorem and mutant; returns the results.json structure (plus the result
    objects under "_objects", never written).

    lemmas: also check the proof steps used by these theorems (``proofs_checks.lemmas``, same budget name and
    seed): keys "lemmas", "wrong_lemmas", "lemma_findings"; lemma verdict changes are added to
    "changed_verdicts" as "lemma:<id>". command: the command line recorded in results.json. theorems_file: the
    ``--theorems`` file the user theorems came from (their reproduce commands then name it).
    progress(phase, message, done, total) is called at every step of the phases theorems, mutants, lemmas.
    executor: where the tasks run (``distributed.executor``; default in this process, in order). Each theorem,
    mutant and lemma is one task; the results are gathered in catalogue order, so the structure is the same
    wherever the tasks ran (only the "seconds" differ)."""
    from ncverify.proofs_checks import distributed
    from ncverify.proofs_checks.lemmas import by_lemma_id, select, summarize

    from ncverify.numerics import convex

    t0 = time.perf_counter()
    skipped: list[dict] = []
    if not convex.available():  # theorems only the convex oracle can settle are skipped, with the install command
        skipped = [{"id": t.id, "reason": f"needs the convex oracle: {convex.INSTALL}"}
                   for t in theorems + mutants if t.needs_oracle]
        theorems = [t for t in theorems if not t.needs_oracle]
        mutants = [t for t in mutants if not t.needs_oracle]
    say = progress or (lambda phase, msg, i, n: None)
    ex = executor if executor is not None else distributed.InProcess()
    user = _user_ids(theorems + mutants) if theorems_file else set()
    source = distributed.theorems_source(theorems_file) if user else None
    distributed.remember_loaded(source, theorems + mutants)
    todo_lemmas = select(None, [t.id for t in theorems]) if lemmas else []
    phases = [("theorems", len(theorems)), ("mutants", len(mutants)), ("lemmas", len(todo_lemmas))]
    tasks: list[tuple[str, tuple]] = (
        [("theorems", (_theorem_task, (t.id, source if t.id in user else None, budget.name, seed, solver)))
         for t in theorems]
        + [("mutants", (_theorem_task, (t.id, source if t.id in user else None, budget.name, seed, solver)))
           for t in mutants]
        + [("lemmas", (_lemma_task, (lm.id, budget.name, seed))) for lm in todo_lemmas])
    first = {ph: sum(n for _, n in phases[:k]) for k, (ph, _) in enumerate(phases)}
    names = [t.id for t in theorems + mutants] + [f"lemma {lm.id}" for lm in todo_lemmas]
    total = dict(phases)
    done = {ph: 0 for ph in total}
    out: list[Any] = [None] * len(tasks)

    def step(i: int, msg: str) -> None:  # in-process: a task starts (msg = its name), then its inner steps
        ph = tasks[i][0]
        say(ph, msg, i - first[ph], total[ph])

    for ph, n in phases:
        if n and not isinstance(ex, distributed.InProcess):
            say(ph, f"{n} tasks on the {ex.description}", 0, n)
    for i, res in ex.map([task for _, task in tasks], names=names, progress=step):
        ph = tasks[i][0]
        out[i] = res
        done[ph] += 1
        say(ph, "done" if done[ph] == total[ph] else f"{names[i]} done", done[ph], total[ph])
    for ph, n in phases[:2]:
        if not n:
            say(ph, "done", 0, 0)
    reg = {t.id: t for t in theorems + mutants}
    results: list[TheoremResult] = out[:len(theorems) + len(mutants)]
    for r in results:
        r.theorem = reg[r.theorem]  # re-attach this process's theorem objects
    thr = [r for r in results if not r.theorem.is_mutant]
    mut = [r for r in results if r.theorem.is_mutant]
    caught = [r for r in mut if r.verdict == "refuted"]
    changed = [r.theorem.id for r in results if r.verdict != r.theorem.expected.verdict]
    lem = None
    if lemmas:
        lres = out[len(theorems) + len(mutants):]
        for r in lres:
            r.lemma = by_lemma_id(r.lemma)
        lem = summarize(lres, budget.name, seed, sum(r.seconds for r in lres))
        changed += lem["changed_verdicts"]

    def row(r: TheoremResult) -> dict:
        d = r.to_json()
        return _with_theorems_file(d, theorems_file) if r.theorem.id in user else d

    return {
        **run_metadata(command),
        "budget": budget.name, "seed": seed, "solver": solver, "seconds": round(time.perf_counter() - t0, 1),
        **({} if lem is None else {"lemmas": lem["lemmas"], "wrong_lemmas": lem["wrong_lemmas"],
                                   "lemma_findings": lem["findings"], "lemma_seconds": lem["seconds"]}),
        "theorems": [row(r) for r in thr],
        "mutants": {"caught": len(caught), "total": len(mut),
                    "missed": [r.theorem.id for r in mut if r.verdict != "refuted"],
                    "results": [row(r) for r in mut]},
        "changed_verdicts": changed,
        "skipped": skipped,
        "executor": ex.description,
        "_objects": results,
    }


def _theorem_task(theorem_id: str, source: tuple[str, str] | None, budget: str, seed: int, solver: str,
                  progress: Callable[[str], None] | None = None) -> TheoremResult:
    """One theorem's (or mutant's) search, a task of ``run_catalogue``: the result with the theorem detached (its
    id in ``.theorem``; the caller re-attaches its own object)."""
    from ncverify.proofs_checks import distributed

    th = distributed.resolve_theorem(theorem_id, source)
    res = search_theorem(th, Budget.of(budget), seed=seed, solver=solver, progress=progress)
    res.theorem = th.id  # type: ignore[assignment]
    return res


def _lemma_task(lemma_id: str, budget: str, seed: int, progress: Callable[[str], None] | None = None):
    """One lemma's verdict, a task of ``run_catalogue``: the lemma detached (its id in ``.lemma``)."""
    from ncverify.proofs_checks.lemmas import lemma_task

    res = lemma_task(lemma_id, budget, seed)
    res.lemma = lemma_id
    return res


def _user_ids(ths: Iterable[Theorem]) -> set[str]:
    """Ids not in the shipped catalogue (they came from a ``--theorems`` file)."""
    from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS

    shipped = {t.id for t in THEOREMS + MUTANTS}
    return {t.id for t in ths if t.id not in shipped}


def _with_theorems_file(d: dict, path: str) -> dict:
    """Reproduce commands of a user theorem name its file: ``ncverify check --theorems FILE ID ...``."""
    from ncverify.proofs_checks.verify import with_check_options

    def fix(cmd: str) -> str:
        return with_check_options(cmd, theorems_file=path) if cmd else cmd

    for c in d.get("checks", []):
        c["reproduce"] = fix(c.get("reproduce", ""))
    if d.get("counterexample"):
        d["counterexample"]["reproduce"] = fix(d["counterexample"]["reproduce"])
    return d


def command_line(args: Any) -> str:
    """The ``ncverify run`` command that reproduces a run from its parsed arguments (the defaults spelled out
    where they matter: budget, seed, solver)."""
    parts = ["ncverify", "run", "--budget", args.budget, "--seed", str(args.seed), "--solver", args.solver]
    for flag in ("theorems", "only", "out"):
        v = getattr(args, flag, None)
        if v:
            parts += [f"--{flag}", str(v)]
    for flag in ("no_figures", "no_lemmas"):
        if getattr(args, flag, False):
            parts.append("--" + flag.replace("_", "-"))
    return " ".join(shlex.quote(p) for p in parts)


def git_commit(timeout: float = 2.0) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the repository the ``ncverify`` package is imported from, when that is a git checkout
    (a ``.git`` next to the package folder); (None, None) otherwise, without git, or after ``timeout`` s."""
    import ncverify

    root = Path(ncverify.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=timeout)
        if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}", head.stdout.strip()):
            return None, None
        st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, timeout=timeout)
        return head.stdout.strip(), (bool(st.stdout.strip()) if st.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run_metadata(command: str | None = None) -> dict:
    """The provenance keys of results.json (see the module docstring); cheap: no heavy import."""
    import ncverify

    commit, dirty = git_commit()
    return {
        "schema_version": SCHEMA_VERSION, "suite_version": ncverify.__version__, "commit": commit,
        "commit_dirty": dirty, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "python": platform.python_version(), "platform": platform.platform(),
        "versions": {d: _version(d) for d in ("torch", "sympy", "mpmath", "numpy", "hypothesis", "matplotlib")},
    }


# ---------------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------------
def cell(x: Any, limit: int | None = None) -> str:
    """Text for one markdown table cell: one line, pipes escaped (``||Z||_*`` -> ``\\|\\|Z\\|\\|_*``), cut at a
    word boundary (never inside a number) after ``limit`` characters."""
    s = " ".join(str(x).split())
    if limit is not None and len(s) > limit:
        cut = s.rfind(" ", 0, limit)
        s = s[:cut if cut > 0 else limit].rstrip(",;:") + " …"
    return s.replace("|", "\\|")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.{digits}g}"
    return str(x)


def _worst_text(w: dict | None) -> str:
    if w is None:
        return "-"
    ok = w["error"] is not None and w["tolerance"] is not None and w["error"] <= w["tolerance"]
    return f"{_fmt(w['error'])} {'≤' if ok else '>'} {_fmt(w['tolerance'])} ({w['quantity']})"


def _coverage(t: dict) -> str:
    cov = (t.get("coverage") or {}).get("numeric")
    base = f"{t['instances_tried']} instances, {t['numeric_checks']} numeric"
    return base if cov is None else f"{base} ({coverage_text(cov)})"


def _run_line(data: dict) -> list[str]:
    bits = [f"budget `{data['budget']}`", f"seed {data['seed']}", f"solver `{data['solver']}`", f"{data['seconds']} s"]
    if data.get("executor") and data["executor"] != "in-process":
        bits.append(f"on a {data['executor']} (the same results as in-process)")
    if data.get("suite_version"):
        bits.append(f"ncverify {data['suite_version']}")
    if data.get("commit"):
        bits.append(f"commit `{data['commit'][:12]}`" + (" (modified)" if data.get("commit_dirty") else ""))
    if data.get("created"):
        bits.append(data["created"])
    out = [", ".join(bits) + "."]
    if data.get("command"):
        out.append(f"Reproduce the run: `{data['command']}`")
    return out


def markdown(data: dict, figures: list[str]) -> str:
    """report.md of a run (``data``: the results.json structure; ``figures``: png paths relative to the report)."""
    ths = data["theorems"]
    m = data["mutants"]
    counts = {v: sum(t["verdict"] == v for t in ths) for v in ("verified", "refuted", "inconclusive")}
    lines = ["# ncverify report", ""] + _run_line(data) + [""]
    head = (f"**{len(ths)} theorem{'s' if len(ths) != 1 else ''}: {counts['verified']} verified, {counts['refuted']} "
            f"refuted, {counts['inconclusive']} inconclusive.** Mutants refuted: {m['caught']} of {m['total']}.")
    if data.get("lemmas"):
        w = data.get("wrong_lemmas") or {}
        head += (f" Lemmas holding: {sum(r['verdict'] == 'holds' for r in data['lemmas'])} of {len(data['lemmas'])};"
                 f" wrong lemmas caught: {w.get('caught', 0)} of {w.get('total', 0)}.")
    lines.append(head)
    if data["changed_verdicts"]:
        lines.append(f"**Verdicts that differ from the record: {', '.join(data['changed_verdicts'])}**")
    for s in data.get("skipped", []):
        lines.append(f"Skipped {s['id']}: {s['reason']}")
    else:
        lines.append("Every verdict equals the recorded one.")
    lines += ["", "**verified** = an independent multi-start float64 minimizer matched the claim within derived "
              "tolerances and the claim agreed with the exact derivation (for a theorem about a convex program, "
              "thrampoulidis2022.seli and fang2021.lpm: the full program's minimum certified by a duality gap); "
              "**refuted** = a counterexample (below, "
              "with the command that reproduces it); **inconclusive** = the numerics could not settle it. Coverage "
              "= instances searched (claim vs exact derivation and the constructed claimed point) and, of these, "
              "checked with full numerics.", "",
              "| theorem | verdict | recorded | coverage | worst error vs tolerance |", "|---|---|---|---|---|"]
    for t in ths:
        mark = "" if t["verdict"] == t["expected_verdict"] else " ⚠"
        lines.append(f"| `{cell(t['id'])}` | **{t['verdict']}**{mark} | {t['expected_verdict']} | {_coverage(t)} | "
                     f"{cell(_worst_text(t['worst']), 90)} |")
    lines += ["", "## Theorems", ""]
    for t in ths:
        lines += _theorem_section(t)
    lines += _mutant_section(m)
    lines += lemma_section(data)
    if any(t["id"] in ("dang2023.ce-deep", "ce-deep-etf-boundary") for t in ths):
        lines += ce_geometry_markdown()
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _theorem_section(t: dict) -> list[str]:
    ce = t["counterexample"]
    why = "" if ce else f" — {' '.join(t['reason'].split())}"  # a refutation's reason is its counterexample's
    lines = [f"### `{t['id']}`: {t['title']}", "", f"**{t['verdict']}** (recorded: {t['expected_verdict']}){why}", "",
             f"- Source: {t['source']}",
             f"- Coverage: {t['instances_tried']} instances searched, {t['numeric_checks']} of them with full numerics"]
    cov = t.get("coverage") or {}
    if cov.get("numeric"):
        lines.append(f"- Checked numerically: {coverage_text(cov['numeric'])}")
    if cov.get("searched"):
        lines.append(f"- Searched (claim vs derivation): {coverage_text(cov['searched'])}")
    if cov.get("assumptions"):
        lines.append(f"- Stated domain: {'; '.join(cov['assumptions'])}")
    w = t["worst"]
    if w is not None:
        lines.append(f"- Worst compared quantity: {w['quantity']}: error {_fmt(w['error'])} vs tolerance "
                     f"{_fmt(w['tolerance'])}")
    if t["region"]:
        lines.append(f"- Recorded region where the claim fails: {t['region']}")
    if ce:
        lines += [f"- Counterexample: {' '.join(ce['reason'].split())}", f"- Reproduce: `{ce['reproduce']}`"]
    if t["checks"]:
        lines += ["", f"<details><summary>{len(t['checks'])} numeric checks (evidence in results.json)</summary>", "",
                  "| instance | verdict | s | reason |", "|---|---|---|---|"]
        for c in t["checks"]:
            why = "matched within derived tolerances" if c["verdict"] == "verified" else cell(c["reason"], 140)
            lines.append(f"| `{cell(_instance_short(c['instance']))}` | {c['verdict']} | {c['seconds']:.1f} | {why} |")
        lines += ["", "</details>"]
    return lines + [""]


def _mutant_section(m: dict) -> list[str]:
    if not m["total"]:
        return []
    lines = ["## Mutants (seeded wrong claims)", "",
             f"**Mutants refuted: {m['caught']} of {m['total']}**"
             + (f" (missed: {', '.join(m['missed'])})" if m["missed"] else "") + "", "",
             "<details><summary>every mutant</summary>", "", "| mutant | mutation | verdict |", "|---|---|---|"]
    for r in m["results"]:
        lines.append(f"| `{cell(r['id'])}` | {cell(r['mutation'], 100)} | {r['verdict']} |")
    lines += ["", "</details>", ""]
    for r in m["results"]:
        if r["verdict"] != "refuted":
            lines += [f"- Missed `{r['id']}` ({r['verdict']}): {' '.join(r['reason'].split())}"]
    return lines + ([""] if m["missed"] else [])


def lemma_section(data: dict) -> list[str]:
    """The concise lemma section: one table, the violated lemmas with their counterexample and reproduce
    command, the wrong-lemmas line (details: results.json, or ``ncverify lemmas``)."""
    from ncverify.proofs_checks.lemmas import counterexample_lines, evidence_line

    lemmas, wrong = data.get("lemmas") or [], data.get("wrong_lemmas") or {}
    if not lemmas and not wrong.get("results"):
        return []
    lines = ["## Lemmas (proof steps)", "",
             "**holds** = every check passed (symbolic where SymPy decides it, else random instances and an "
             "adversarial search); **violated** = a counterexample beyond the derived float64 tolerance; "
             "**inconclusive** = a check could not be settled.", "",
             "| lemma | verdict | recorded | used by | evidence |", "|---|---|---|---|---|"]
    for r in lemmas:
        lines.append(f"| `{cell(r['id'])}` | **{r['verdict']}** | {r['expected_verdict']} | "
                     f"{cell(', '.join(r['used_by']), 80)} | {cell(evidence_line(r), 120)} |")
    for r in lemmas:
        if r["verdict"] == "holds" and r["verdict"] == r["expected_verdict"]:
            continue
        lines += ["", f"### `{r['id']}`: {r['title']} — **{r['verdict']}** (recorded: {r['expected_verdict']})", "",
                  f"- Statement: {r['statement']}", f"- Used by: {', '.join(r['used_by'])}"]
        if r.get("finding"):
            lines.append(f"- **Finding**: {r['finding']}")
        if r.get("counterexample"):
            full = counterexample_lines(r["counterexample"], "  ")
            lines += ["- Smallest counterexample:"] + full[:2]
            if full[2:]:
                lines += ["", "<details><summary>its matrices and exact values</summary>", ""] + full[2:] + \
                         ["", "</details>", ""]
        else:
            lines.append(f"- Reason: {' '.join(r['reason'].split())}")
        lines.append(f"- Reproduce: `{r['reproduce']}`")
    if wrong:
        lines += ["", f"**Wrong lemmas caught: {wrong['caught']} of {wrong['total']}**"
                  + (f" (missed: {', '.join(wrong['missed'])})" if wrong.get("missed") else "")]
    return lines + [""]


def ce_geometry_markdown() -> list[str]:
    """The recorded deep CE phase table (theory/golden/ce_phase.json) as a folded section: per (K, M) the winner at
    small ell and every certified change of the global geometry."""
    from ncverify.theory import ce_codes

    table = ce_codes.load_phase_table()
    if not table:
        return []
    lines = ["## Deep linear CE beyond the simplex ETF", "",
             "Global minimizer of the reduced problem F(Zbar) = (1/K) sum_k CE(zbar_k, k) + ((M+1)/2) ell sum_i "
             "sigma_i(Zbar)^(2/(M+1)), ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)), over the logit codes of "
             "`theory.ce_codes` (lemma `ce-codes-global`); boundaries certified at 30 digits.", "",
             "<details><summary>the recorded phase table (K = 3..8, M = 1..6)</summary>", "",
             f"| K | M | winner for ell -> {ce_codes.PHASE_RANGE[0]:g} | changes of the global geometry (ell*: new winner) |",
             "|---|---|---|---|"]
    for (K, M), e in sorted(table.items()):
        ch = "; ".join(f"{float(c['ell']):.6g}: {c['right']}" + ("" if c["certified"] else " (not certified)")
                       for c in e["crossings"])
        lines.append(f"| {K} | {M} | {cell(e['winner_at_lo'])} | {cell(ch)} |")
    return lines + ["", "</details>", ""]


def _instance_short(d: dict) -> str:
    s = f"{d['loss']} counts={d['counts']} d={d['width']} M={d['depth']} lamW={d['lam_w']} lamH={d['lam_h']}"
    if d["bias"]:
        s += f" bias lamb={d['lam_b']}"
    if d["activation"]:
        s += f" s={d['activation']}"
    return s


# ---------------------------------------------------------------------------------------------
# writing the directory
# ---------------------------------------------------------------------------------------------
def results_json(data: dict) -> dict:
    """The results.json structure of ``data`` (without the in-memory objects)."""
    return {k: v for k, v in data.items() if not k.startswith("_")}


def write_report(data: dict, out: Path, figures: bool = True, seed: int = 0,
                 progress: RunProgress | None = None, theorems: Iterable[Theorem] | None = None) -> list[str]:
    """Write report.md, results.json and (``figures``) figures/ into ``out``; returns the figure paths relative
    to ``out``. ``theorems``: the catalogue the run used (default: the run's own theorem objects). Atomic enough:
    see the module docstring. progress(phase, message, done, total) for the phases figures and writing."""
    say = progress or (lambda phase, msg, i, n: None)
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".ncverify-partial-", dir=out))
    try:
        figs: list[str] = []
        if figures:
            from ncverify.proofs_checks import figures as F

            paths = F.make_all(data, stage / "figures", seed=seed, theorems=theorems,
                               progress=lambda msg, i, n: say("figures", msg, i, n))
            figs = [str(Path(p).relative_to(stage)) for p in paths]
        clean = results_json(data)
        steps = (["figures/"] if figures else []) + ["results.json", "report.md"]
        say("writing", "results.json and report.md", 0, len(steps))
        (stage / "results.json").write_text(json.dumps(clean, indent=1, default=_json_default) + "\n")
        (stage / "report.md").write_text(markdown(clean, figs))
        for i, name in enumerate(steps):  # publish; report.md last
            say("writing", f"moving {name} into {out}", i, len(steps))
            if name == "figures/":
                old = out / "figures"
                if old.is_dir() and not old.is_symlink():
                    old.rename(stage / "figures.previous")
                elif old.exists() or old.is_symlink():
                    old.unlink()
                (stage / "figures").rename(old)
            else:
                os.replace(stage / name, out / name)
        say("writing", f"report written to {out}", len(steps), len(steps))
        return figs
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _json_default(o: Any) -> Any:
    try:
        v = float(o)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return str(o)


# ---------------------------------------------------------------------------------------------
# progress on the terminal
# ---------------------------------------------------------------------------------------------
@contextmanager
def rich_progress(console: Any, disable: bool = False) -> Iterator[RunProgress]:
    """A ``RunProgress`` that shows one bar per phase of the run (theorems, mutants, lemmas, figures, writing), each
    with the current step's description and its done/total count, on the rich ``console``."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.fields[phase]:<8}"), TextColumn("{task.description}", justify="left"),
                  BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, disable=disable) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, message: str, done: int, total: int) -> None:
            text = escape(cell(message, 60).replace("\\|", "|"))
            if phase not in tasks:
                if total <= 0:  # an empty phase (no mutants, no lemmas): no bar
                    return
                tasks[phase] = bar.add_task(text, total=max(total, 0), phase=phase)
            bar.update(tasks[phase], description=text, completed=done, total=max(total, 0))

        yield update
