"""``ncverify run``: verify the whole catalogue (and the seeded mutants) and write the report directory.

report.md    -- per theorem: source, instances tried, verdict (and the recorded one), worst error
                against its tolerance, counterexample with the command that reproduces it; the mutants line.
results.json -- the same data: {"theorems": [...], "mutants": {"caught": k, "total": m, ...}, "lemmas": [...],
                "wrong_lemmas": {"caught": k, "total": m, ...}, ...} (lemma section: ``proofs_checks.lemmas``).
figures/     -- predicted vs numeric singular values; NC metrics along gd iterations; a phase diagram.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

from ncverify.proofs_checks.statement import Theorem
from ncverify.proofs_checks.search import Budget, TheoremResult, search_theorem


def run_catalogue(theorems: list[Theorem], mutants: list[Theorem], budget: Budget, seed: int = 0,
                  solver: str = "lbfgs", progress: Callable[[str, int, int], None] | None = None,
                  lemmas: bool = True) -> dict:
    """Theorem-level verdicts for every theorem and mutant; returns the results.json structure.
    ``lemmas``: also check the proof steps used by these theorems (``proofs_checks.lemmas``, same budget
    name and seed): keys "lemmas", "wrong_lemmas", "lemma_findings"; lemma verdict changes are added to
    "changed_verdicts" as "lemma:<id>"."""
    t0 = time.perf_counter()
    todo = list(theorems) + list(mutants)
    results: list[TheoremResult] = []
    for i, th in enumerate(todo):
        if progress:
            progress(th.id, i, len(todo))
        results.append(search_theorem(th, budget, seed=seed, solver=solver,
                                      progress=(lambda msg, i=i: progress(msg, i, len(todo))) if progress else None))
    if progress:
        progress("done", len(todo), len(todo))
    thr = [r for r in results if not r.theorem.is_mutant]
    mut = [r for r in results if r.theorem.is_mutant]
    caught = [r for r in mut if r.verdict == "refuted"]
    changed = [r.theorem.id for r in results if r.verdict != r.theorem.expected.verdict]
    lem = None
    if lemmas:
        from ncverify.proofs_checks.lemmas import run_lemmas

        lem = run_lemmas(budget.name, seed=seed, theorems=[t.id for t in theorems],
                         progress=(lambda msg, i, n: progress(msg, len(todo), len(todo))) if progress else None)
        changed += lem["changed_verdicts"]
    return {
        "budget": budget.name, "seed": seed, "solver": solver, "seconds": round(time.perf_counter() - t0, 1),
        **({} if lem is None else {"lemmas": lem["lemmas"], "wrong_lemmas": lem["wrong_lemmas"],
                                   "lemma_findings": lem["findings"], "lemma_seconds": lem["seconds"]}),
        "theorems": [r.to_json() for r in thr],
        "mutants": {"caught": len(caught), "total": len(mut),
                    "missed": [r.theorem.id for r in mut if r.verdict != "refuted"],
                    "results": [r.to_json() for r in mut]},
        "changed_verdicts": changed,
        "_objects": results,
    }


def _fmt(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.{digits}g}"
    return str(x)


def write_markdown(data: dict, path: Path, figures: list[str]) -> None:
    lines = ["# ncverify report", "",
             f"Budget `{data['budget']}`, seed {data['seed']}, solver `{data['solver']}`, {data['seconds']} s.", "",
             "Verdicts: **verified** = an independent multi-start float64 minimizer matched the claim within derived "
             "tolerances (and the claim agreed with the exact derivation); **refuted** = a counterexample, with the "
             "command that reproduces it; **inconclusive** = the numerics could not settle it (reason given).", "",
             "| theorem | verdict | recorded | instances tried | worst error / tolerance |", "|---|---|---|---|---|"]
    for t in data["theorems"]:
        w = t["worst"]
        ws = "-" if w is None else f"{_fmt(w['error'])} / {_fmt(w['tolerance'])} ({w['quantity']})"
        lines.append(f"| `{t['id']}` | **{t['verdict']}** | {t['expected_verdict']} | {t['instances_tried']} | {ws} |")
    m = data["mutants"]
    lines += ["", f"**Mutants refuted: {m['caught']} of {m['total']}**"
              + (f" (missed: {', '.join(m['missed'])})" if m["missed"] else ""), ""]
    if data["changed_verdicts"]:
        lines += [f"**Changed verdicts (differ from the record): {', '.join(data['changed_verdicts'])}**", ""]
    for t in data["theorems"]:
        lines += [f"## {t['id']}: {t['title']}", "", f"- Source: {t['source']}", f"- Provenance: {t['provenance']}",
                  f"- Verdict: **{t['verdict']}** (recorded: {t['expected_verdict']}) — {t['reason']}",
                  f"- Instances tried: {t['instances_tried']} ({t['numeric_checks']} with full numerics)"]
        w = t["worst"]
        if w is not None:
            lines.append(f"- Worst compared quantity: {w['quantity']}: error {_fmt(w['error'])} vs tolerance "
                         f"{_fmt(w['tolerance'])} ({w['origin']})")
        if t["region"]:
            lines.append(f"- Recorded region where the claim fails: {t['region']}")
        ce = t["counterexample"]
        if ce:
            lines += [f"- Counterexample: {ce['reason']}", f"  - reproduce: `{ce['reproduce']}`"]
        lines.append("")
        lines += ["| instance | verdict | seconds | reason |", "|---|---|---|---|"]
        for c in t["checks"]:
            lines.append(f"| `{_instance_short(c['instance'])}` | {c['verdict']} | {c['seconds']} | {c['reason']} |")
        lines.append("")
    lines += ["## Mutants (seeded wrong claims)", "", "| mutant | mutation | verdict | reason |", "|---|---|---|---|"]
    for r in m["results"]:
        lines.append(f"| `{r['id']}` | {r['mutation']} | {r['verdict']} | {r['reason'][:160]} |")
    from ncverify.proofs_checks.lemmas import lemma_markdown

    lines += [""] + lemma_markdown(data)
    lines += [""] + ce_geometry_markdown()
    if figures:
        lines += ["", "## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    path.write_text("\n".join(lines) + "\n")


def ce_geometry_markdown() -> list[str]:
    """The recorded deep CE phase table (theory/golden/ce_phase.json) as a section: per (K, M) the winner at small
    ell and every certified change of the global geometry."""
    from ncverify.theory import ce_codes

    table = ce_codes.load_phase_table()
    if not table:
        return []
    lines = ["## Deep linear CE beyond the simplex ETF", "",
             "Global minimizer of the reduced problem F(Zbar) = (1/K) sum_k CE(zbar_k, k) + ((M+1)/2) ell sum_i "
             "sigma_i(Zbar)^(2/(M+1)), ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1)) (equal lambdas: lambda "
             "n^(1/(M+1))), over the logit codes of `theory.ce_codes`, cross-checked by the reduced numeric search "
             "(lemma `ce-codes-global`). Boundaries at 30 digits (certified: the value difference changes sign "
             "across ell (1 +- 1e-27) at 42 working digits; M = 1 from the closed form).", "",
             f"| K | M | winner for ell -> {ce_codes.PHASE_RANGE[0]:g} | changes of the global geometry (ell*: new winner) |",
             "|---|---|---|---|"]
    for (K, M), e in sorted(table.items()):
        ch = "; ".join(f"{c['ell'][:14]}: {c['right']}" + ("" if c["certified"] else " (not certified)")
                       for c in e["crossings"])
        lines.append(f"| {K} | {M} | {e['winner_at_lo']} | {ch} |")
    return lines


def _instance_short(d: dict) -> str:
    s = f"{d['loss']} counts={d['counts']} d={d['width']} M={d['depth']} lamW={d['lam_w']} lamH={d['lam_h']}"
    if d["bias"]:
        s += f" bias lamb={d['lam_b']}"
    if d["activation"]:
        s += f" s={d['activation']}"
    return s


def write_report(data: dict, out: Path, figures: bool = True, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> list[str]:
    """Write report.md, results.json and figures/ into ``out``; returns the figure paths."""
    out.mkdir(parents=True, exist_ok=True)
    figs: list[str] = []
    if figures:
        from ncverify.proofs_checks import figures as F

        figs = F.make_all(data, out / "figures", seed=seed, progress=progress)
        figs = [str(Path(f).relative_to(out)) for f in figs]
    clean = {k: v for k, v in data.items() if not k.startswith("_")}
    (out / "results.json").write_text(json.dumps(clean, indent=2, default=_json_default))
    write_markdown(clean, out / "report.md", figs)
    return figs


def _json_default(o):
    try:
        v = float(o)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return str(o)
