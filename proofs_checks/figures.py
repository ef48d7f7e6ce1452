"""Figures of the report (matplotlib, Agg backend).

* ``singular_values.png``: predicted (claim, else derivation) vs numeric singular values of W = W_M...W_1, one
  panel per theorem, one style and legend entry per checked instance;
* ``nc_along_gd.png``: NC1, NC2, NC3 along the papers' momentum gd, one balanced example per theorem; NC2 is
  measured against the Gram matrix the theorem's own prediction states for that instance (``nc2_target``);
* ``phase_diagram.png`` (when ``dang2023.mse-deep`` ran): a sweep of its lambda_H across the derived boundaries
  (``phase_diagram_figure``, drawn as ``sweep_figure``);
* ``ce_geometry_phases.png`` (when a deep CE theorem ran): the recorded deep CE phase table;
* ``field_theorems.png`` (when one of ``FIELD_THEOREMS`` ran): minority collapse of hong2023 (certified cost of
  tying the minority rows across the derived threshold), the jumps of liu2024, the layer-peeled minority collapse
  along R with R* by bisection, SELI's classifier norms along R, the eigenvalues of W W^T of regression collapse along
  lambda_H, the ReLU DUFM's numeric minimum against the best deep-neural-collapse value;
* ``phase_diagram.png`` of ``ncverify sweep`` (``sweep_figure``): any theorem's numeric verdicts on a grid of one
  or two parameters, with the derived boundaries drawn over them;
* ``figures.json``: the numbers each figure plots (the curves, their NC2 targets, the singular-value pairs).

Theorems are looked up in the catalogue the run used (``theorems`` or the run's result objects), never only in
the shipped one, so a user's ``--theorems FILE`` gets every figure too.
"""
from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import matplotlib
import matplotlib.patches  # noqa: F401  (legend patches)
import matplotlib.ticker  # noqa: F401  (integer axes)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"verified": "tab:green", "refuted": "tab:red", "inconclusive": "tab:orange"}

#: progress callback of the figure phase: (message, figures done, figures planned)
FigureProgress = Callable[[str, int, int], None]

_PALETTE = tuple(plt.get_cmap("tab10").colors)
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "v", "D", "x", "+")
#: curve_style(i) differs from curve_style(j) for all 0 <= i < j < STYLES (lcm of 10 colours, 4 line styles, 7 markers)
STYLES = 140


def curve_style(i: int) -> dict[str, Any]:
    """The matplotlib style of curve ``i``: colour, line style and marker all change with i, so the first
    ``STYLES`` curves have pairwise different (colour, line style, marker) triples."""
    return {"color": _PALETTE[i % len(_PALETTE)], "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
            "marker": _MARKERS[i % len(_MARKERS)]}


def run_theorems(data: dict, theorems: Iterable | None = None) -> list:
    """The ``Theorem`` objects of the run's theorems (``data["theorems"]`` ids, in order), looked up in
    ``theorems`` (the catalogue the run used), then in the run's result objects (``data["_objects"]``), then in
    the shipped catalogue; an id found nowhere (e.g. a results.json of a user file) is left out."""
    from ncverify.proofs_checks.catalogue import MUTANTS, THEOREMS

    reg: dict[str, Any] = {}
    for src in (THEOREMS + MUTANTS, [r.theorem for r in data.get("_objects", [])], list(theorems or [])):
        reg.update({t.id: t for t in src})
    return [reg[t["id"]] for t in data["theorems"] if t["id"] in reg]


def make_all(data: dict, out: Path, seed: int = 0, progress: FigureProgress | None = None,
             theorems: Iterable | None = None) -> list[str]:
    """Draw every figure of the run ``data`` into ``out`` (created); returns the paths of the png files.
    ``theorems``: the catalogue the run used (shipped plus ``--theorems``); progress(message, done, total)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda m, i, n: None)
    ths = run_theorems(data, theorems)
    ids = {t.id for t in ths}
    plotted: dict[str, Any] = {}

    def sv() -> str | None:
        rows = singular_value_rows(data)
        plotted["singular_values"] = [{"id": tid, "checks": r} for tid, r in rows]
        return singular_values_figure(data, out / "singular_values.png", rows=rows)

    def nc() -> str | None:
        recs = nc_along_gd_data(ths, seed=seed, results=data.get("_objects"))
        plotted["nc_along_gd"] = recs
        return nc_along_gd_figure(data, out / "nc_along_gd.png", seed=seed, records=recs)

    plan: list[tuple[str, Callable[[], str | None]]] = [("singular values", sv), ("NC metrics along gd", nc)]
    def phase() -> str | None:
        data = phase_diagram_figure(out / "phase_diagram.png", seed=seed)
        if data is None:
            return None
        plotted["phase_diagram"] = {"spec": data["spec"], "points": data["points"]}
        return data["figure"]

    if "dang2023.mse-deep" in ids:
        plan.append(("phase diagram of dang2023.mse-deep", phase))
    if any(t.family.startswith("ce-deep") for t in ths):
        plan.append(("deep CE geometries", lambda: ce_phase_figure(out / "ce_geometry_phases.png")))

    def field() -> str | None:
        d = field_theorems_data(ids)
        plotted["field_theorems"] = d
        return field_theorems_figure(d, out / "field_theorems.png")

    if ids & set(FIELD_THEOREMS):
        plan.append(("the field's other theorems", field))
    paths = []
    for i, (name, draw) in enumerate(plan):
        say(f"figure: {name}", i, len(plan))
        paths.append(draw())
    (out / "figures.json").write_text(json.dumps(plotted, indent=1, default=_json_default))
    say("figures done", len(plan), len(plan))
    return [p for p in paths if p]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    try:
        v = float(o)
    except (TypeError, ValueError):
        return str(o)
    return v if math.isfinite(v) else None


def _clean(o: Any) -> Any:
    """JSON-safe copy: numpy arrays to lists, non-finite floats to None."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


# ---------------------------------------------------------------------------------------------
# predicted vs numeric singular values
# ---------------------------------------------------------------------------------------------
def _sv_pairs(check: dict) -> dict | None:
    """{"predicted", "numeric", "source"} for the singular values of W: the claim's (else the derivation's)
    against the numeric minimizer's, both sorted descending (ReLU instances: the claim only); None when either is missing."""
    num = (check.get("numerics") or {}).get("singular_values") or {}
    ref, source = None, ""
    # the derivation of a ReLU instance is the linear model's (its W is not the ReLU network's): claim only
    relu = (check.get("instance") or {}).get("activation") == "relu"
    for source in ("claim",) if relu else ("claim", "derivation"):
        src = check.get(source)
        if src and (src.get("singular_values") or {}).get("weights_product"):
            ref = src["singular_values"]["weights_product"]
            break
    got = num.get("weights_product")
    if ref is None or got is None:
        return None
    ref = sorted(ref, reverse=True)
    got = sorted(got, reverse=True)[:len(ref)]
    got += [0.0] * (len(ref) - len(got))
    return {"predicted": ref, "numeric": got, "source": source, "verdict": check.get("verdict", ""),
            "instance": check.get("reproduce", "")}


def singular_value_rows(data: dict) -> list[tuple[str, list[dict]]]:
    """Per theorem of the run (with at least one pair): its id and the ``_sv_pairs`` of its checks."""
    rows = [(t["id"], [p for c in t["checks"] if (p := _sv_pairs(c))]) for t in data["theorems"]]
    return [(tid, pairs) for tid, pairs in rows if pairs]


def singular_values_figure(data: dict, path: Path, rows: list[tuple[str, list[dict]]] | None = None) -> str | None:
    """One panel per theorem: numeric vs predicted singular values of W, one style per checked instance
    (legend: instance number, verdict, and whether the prediction is the claim or the derivation)."""
    rows = singular_value_rows(data) if rows is None else rows
    if not rows:
        return None
    n = len(rows)
    cols = min(4, n)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 3.6 * nrows), squeeze=False)
    for ax, (tid, pairs) in zip(axes.flat, rows):
        allv = [v for p in pairs for v in p["predicted"] + p["numeric"]]
        hi = max(allv + [1e-12]) * 1.1
        ax.plot([0, hi], [0, hi], color="0.6", lw=1, ls="-", label="numeric = predicted")
        for i, p in enumerate(pairs):
            st = curve_style(i)
            ax.scatter(p["predicted"], p["numeric"], s=22, color=st["color"], marker=st["marker"],
                       label=f"instance {i + 1}: {p['verdict']} (vs {p['source']})")
        ax.set_title(tid, fontsize=8)
        ax.set_xlabel("predicted sigma_i(W)", fontsize=8)
        ax.set_ylabel("numeric sigma_i(W)", fontsize=8)
        ax.legend(fontsize=5.5, loc="upper left")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(textwrap.fill("Singular values of W = W_M...W_1: prediction (the claim, else the derivation) vs "
                               "numeric minimizer (instances in the order of results.json)", 50 * cols), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------------------------------------
# NC metrics along gd, NC2 against the predicted Gram
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nc2Target:
    """What NC2 is measured against, read off a theorem's prediction for one instance.

    gram: which numeric Gram is compared ("WWT" = W W^T, "HbarTHbar" = class means, centered with a bias;
      "H2barTH2bar" = post-activation class means; None = the prediction states no Gram);
    source: "claim" or "derivation"; kind: the stated geometry ("OF", "GOF", "ETF", "general", "zero");
    matrix: the stated K x K Gram T when its scale or entries are stated (None: only the shape ``kind``);
    relabel: T holds up to a relabelling of the classes (the distance is minimized over permutations);
    NC2 = || G/||G||_F - T/||T||_F ||_F (nan when G or T is 0: a predicted collapse has no shape).
    """

    gram: str | None
    source: str = ""
    kind: str = ""
    matrix: np.ndarray | None = field(default=None, compare=False)
    relabel: bool = False

    @property
    def label(self) -> str:
        from ncverify.theory.prediction import GRAM_NAMES

        if self.gram is None:
            return "no Gram stated"
        what = {"claim": "claimed", "derivation": "derived"}.get(self.source, self.source)
        return f"{GRAM_NAMES.get(self.gram, self.gram)} vs {what} {self.kind}"

    def distance(self, G: np.ndarray) -> float:
        """NC2 of the numeric Gram ``G`` against this target."""
        from ncverify.numerics import metrics
        from ncverify.proofs_checks.verify.stages import relabelled_distance

        if self.gram is None:
            return math.nan
        G = np.asarray(G, dtype=float)
        if self.matrix is not None:
            if self.relabel:
                nG, nT = float(np.linalg.norm(G)), float(np.linalg.norm(self.matrix))
                if not (nG > 0 and nT > 0 and math.isfinite(nG)):
                    return math.nan
                return relabelled_distance(G / nG, self.matrix / nT)[0]
            return metrics.nc2(G, self.matrix)
        if self.kind.upper() in ("OF", "ETF"):
            return metrics.nc2(G, self.kind.upper())
        if self.kind.upper() == "GOF":
            return metrics.nc2_diagonal(G)
        return math.nan

    def to_json(self) -> dict:
        return {"gram": self.gram, "source": self.source, "kind": self.kind, "relabel": self.relabel,
                "matrix": None if self.matrix is None else self.matrix.tolist(), "label": self.label}


def _target_from(pred, source: str, K: int, keys: Sequence[str]) -> Nc2Target | None:
    from ncverify.proofs_checks.verify.stages import gram_from_target

    for key in keys:
        t = pred.gram_targets.get(key)
        if t is None:
            continue
        if t.relabel and t.matrix is not None:
            M = np.array([[float(x) for x in r] for r in t.matrix])
            return Nc2Target(key, source, t.kind, M, relabel=True)
        M = gram_from_target(t, K)
        if M is not None:
            return Nc2Target(key, source, t.kind, M)
        if t.kind.upper() in ("OF", "ETF", "GOF"):
            return Nc2Target(key, source, t.kind.upper())
    return None


def nc2_target(theorem, inst) -> Nc2Target:
    """The Gram target of ``theorem`` on ``inst``: the claim's (W W^T first, then the class means, then the
    post-activation class means, then the shape claim "of_post"), else the exact derivation's;
    ``Nc2Target(None)`` when neither states one."""
    from ncverify.theory.derive import derive
    from ncverify.theory.errors import TheoryInputError

    theorem.prepare()
    keys = ("WWT", "HbarTHbar", "H2barTH2bar") if inst.activation is not None else ("WWT", "HbarTHbar")
    found = _target_from(theorem.claim(inst), "claim", inst.K, keys)
    if found is None and inst.activation is not None and "of_post" in theorem.shape_claims:
        found = Nc2Target("H2barTH2bar", "claim", "OF")  # the stated shape claim: post-activation means form an OF
    if found is None and inst.activation != "relu":  # a ReLU instance's derivation is the linear model's
        try:
            found = _target_from(derive(theorem.family, inst), "derivation", inst.K, keys)
        except TheoryInputError:
            found = None
    return found or Nc2Target(None)


def nc_trajectories(insts: list, targets: Sequence[Nc2Target], seed: int = 0, iters: int = 3000,
                    every: int = 50) -> list[dict]:
    """NC metrics along one gd run per instance (lr 0.1, momentum 0.9, init N(0, 0.1^2) from seed ``seed``), all
    runs in one batched solve (``numerics.batched``), measured every ``every`` steps.

    NC1 of the features (post-activation s(W_1 H) for the ReLU model, else H); NC2 of the Gram ``targets[i]``
    names against the Gram it states (``Nc2Target.distance``); NC3 duality of the classifier (W_2 for the ReLU
    model, else W = W_M...W_1) and the class means (centered with a bias or a loss other than MSE)."""
    import torch

    from ncverify.numerics import batched, metrics, models
    from ncverify.proofs_checks.verify.stages import _grams

    if len(targets) != len(insts):
        raise ValueError(f"need one NC2 target per instance, got {len(targets)} for {len(insts)}")
    problems = [batched.Problem(i, models.init_params(i, torch.Generator().manual_seed(seed)), seed=seed, kind="std 0.1")
                for i in insts]
    runs = batched.solve_problems(problems, solver="gd", max_iter=iters, grad_tol=0.0, snapshot_every=every)
    out = []
    for inst, target, run in zip(insts, targets, runs):
        rec: dict[str, Any] = {"it": [], "nc1": [], "nc2": [], "nc3": [], "objective": [],
                               "nc2_target": target.to_json()}
        center = inst.bias or inst.loss != "mse"
        for it, x in run.snapshots or []:
            p = models.Params.unflatten(inst, x).to_numpy()
            G = _grams(inst, p)
            if inst.activation == "relu":
                feats, W = G["H2"], metrics.product(p["weights"][1:])
            else:
                feats, W = p["H"], G["W"]
            Hbar = metrics.class_means(feats, inst.counts)
            if center:
                Hbar = Hbar - Hbar.mean(axis=1, keepdims=True)
            rec["it"].append(it)
            rec["nc1"].append(metrics.nc1(feats, inst.counts))
            rec["nc2"].append(target.distance(G[target.gram]) if target.gram in G else math.nan)
            rec["nc3"].append(metrics.nc3_duality(W, Hbar))
            rec["objective"].append(run.history[it] if it < len(run.history) else math.nan)
        out.append(rec)
    return out


def nc_trajectory(inst, target: Nc2Target, seed: int = 0, iters: int = 3000, every: int = 50) -> dict:
    """``nc_trajectories`` of one instance."""
    return nc_trajectories([inst], [target], seed=seed, iters=iters, every=every)[0]


def example_instance(theorem, results: Sequence | None = None):
    """The instance a figure shows for ``theorem``: its first balanced example, else its first example, else the
    first instance the run checked with full numerics (``results``: the run's ``TheoremResult`` objects)."""
    if theorem.examples:
        return next((e for e in theorem.examples if e.balanced), theorem.examples[0])
    for r in results or []:
        if r.theorem.id == theorem.id and r.checks:
            return r.checks[0].instance
    return None


def nc_along_gd_data(theorems: Sequence, seed: int = 0, iters: int = 3000, every: int = 50,
                     results: Sequence | None = None) -> list[dict]:
    """The curves of ``nc_along_gd.png``: per theorem about a training objective (with an instance to show; a theorem
    about a convex program, ``Theorem.model``, has no gradient descent to show) {"id", "instance" (its flags),
    "it", "nc1", "nc2", "nc3", "objective", "nc2_target"} (``nc_trajectories``; NC2 against ``nc2_target``)."""
    chosen = [(th, inst) for th in theorems if getattr(th, "model", "ufm") == "ufm"  # a convex program has no gd
              and (inst := example_instance(th, results)) is not None]
    if not chosen:
        return []
    targets = [nc2_target(th, inst) for th, inst in chosen]
    recs = nc_trajectories([inst for _, inst in chosen], targets, seed=seed, iters=iters, every=every)
    out = []
    for (th, inst), rec in zip(chosen, recs):
        f = predicted_objective(th, inst)
        last = rec["objective"][-1] if rec["objective"] else math.nan
        gap = (last - f) / max(abs(f), 1e-300) if f is not None and math.isfinite(last) else None
        out.append(_clean({"id": th.id, "instance": inst.cli_flags(), **rec, "predicted_objective": f,
                           "final_relative_gap": gap}))
    return out


def predicted_objective(theorem, inst) -> float | None:
    """f* of ``theorem``'s prediction on ``inst``: the claim's, else the exact derivation's (None if neither)."""
    from ncverify.theory.derive import derive
    from ncverify.theory.errors import TheoryInputError

    f = theorem.claim(inst).objective
    if f is None:
        try:
            f = derive(theorem.family, inst).objective
        except TheoryInputError:
            f = None
    return None if f is None else float(f)


#: a gd run whose last objective lies more than this (relative) above the predicted f* is marked in the legend
GAP_MARK = 1e-6


def _legend_label(rec: dict) -> str:
    gap = rec.get("final_relative_gap")
    tail = f"; gd ends {gap:.2g} above f*" if gap is not None and gap > GAP_MARK else ""
    return f"{rec['id']} ({rec['nc2_target']['label']}{tail})"


def nc_along_gd_figure(data: dict, path: Path, seed: int = 0, theorems: Iterable | None = None,
                       records: list[dict] | None = None) -> str | None:
    """NC1, NC2 (against each theorem's predicted Gram) and NC3 along gd; one style per theorem, shared legend
    (a run that ends above the predicted f* by more than ``GAP_MARK`` relative is marked: gd stopped at another
    critical point, so its NC2 need not reach 0)."""
    recs = nc_along_gd_data(run_theorems(data, theorems), seed=seed, results=data.get("_objects")) \
        if records is None else records
    if not recs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    handles = []
    for i, rec in enumerate(recs):
        st = curve_style(i)
        every = max(1, len(rec["it"]) // 8)
        for ax, key in zip(axes, ("nc1", "nc2", "nc3")):
            y = np.array([np.nan if v is None else v for v in rec[key]], dtype=float)
            y = np.where(np.isfinite(y), np.maximum(y, 1e-17), np.nan)
            line, = ax.semilogy(rec["it"], y, lw=1.2, ms=4, markevery=every, **st,
                                label=_legend_label(rec))
        handles.append(line)
    for ax, title in zip(axes, ("NC1 of the features (post-ReLU for the ReLU model)",
                                "NC2: the stated Gram vs the theorem's predicted Gram",
                                "NC3 duality ||W/|W| - Hbar^T/|Hbar|||")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("gd iteration (lr 0.1, momentum 0.9)", fontsize=8)
    fig.legend(handles=handles, loc="lower center", ncol=min(3, len(handles)), fontsize=7,
               title="theorem (NC2 target: Gram vs claimed / derived geometry; relative gap of gd's last objective "
                     "above the predicted f* when > 1e-6)", title_fontsize=7)
    rows = (len(handles) + 2) // 3
    fig.suptitle("NC metrics along gd, one balanced example per theorem (W = W_2 for the ReLU model; "
                 "a curve ends where W or the class means reach 0)", fontsize=10)
    fig.tight_layout(rect=(0, min(0.5, 0.06 + 0.05 * rows), 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def ce_phase_figure(path: Path) -> str | None:
    """Deep linear CE: the globally optimal logit geometry over (ell, M) for K = 3..8, from the recorded phase
    table (theory/golden/ce_phase.json; theory.ce_codes); certified crossings as ticks. ell = lambda n^(1/(M+1))
    for equal lambdas, so one panel covers every n."""
    from ncverify.theory import ce_codes

    table = ce_codes.load_phase_table()
    if not table:
        return None
    Ks = sorted({K for K, _ in table})

    def label(name: str) -> str:
        return "simplex ETF" if name.startswith("simplex ETF") else name

    def bands(e: dict) -> list[tuple[float, float, str]]:  # between the recorded crossings, not the sampling grid
        return [(a, b, label(n)) for a, b, n in ce_codes.bands(e)]

    names = sorted({n for e in table.values() for _, _, n in bands(e)}, key=lambda n: (n != "total collapse", n))
    cmap = plt.get_cmap("tab20")
    color = {n: ("0.85" if n == "total collapse" else ("black" if n == "simplex ETF" else cmap(i % 20)))
             for i, n in enumerate(names)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5), squeeze=False)
    for ax, K in zip(axes.flat, Ks):
        for M in sorted(M for k, M in table if k == K):
            e = table[(K, M)]
            for x0, x1, n0 in bands(e):
                ax.fill_between([x0, x1], M - 0.38, M + 0.38, color=color[n0], lw=0)
            for c in e["crossings"]:
                ax.plot([float(c["ell"])] * 2, [M - 0.45, M + 0.45], color="red", lw=1)
        ax.set_xscale("log")
        ax.set_title(f"K = {K}", fontsize=9)
        ax.set_xlabel("ell = (n lambda_H prod_j lambda_Wj)^(1/(M+1))", fontsize=8)
        ax.set_ylabel("depth M", fontsize=8)
        ax.set_yticks(range(1, 7))
    handles = [matplotlib.patches.Patch(color=color[n], label=n) for n in names]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7)
    fig.suptitle("Deep linear CE: globally optimal class-mean logit geometry (black: simplex ETF; red ticks: "
                 "certified boundaries)", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def phase_diagram_figure(path: Path, seed: int = 0, points: int = 10) -> dict | None:
    """dang2023.mse-deep at M = 2, K = 2 balanced (``ncverify sweep`` on lambda_H): ``points`` log-spaced values from a
    third of the first derived boundary to three times the last, plus 3% on either side of each boundary, 3 starts
    each; drawn by ``sweep_figure``. Returns the sweep's data (its "figure": the png path), None without
    boundaries."""
    from ncverify.numerics.problem import Instance
    from ncverify.proofs_checks.catalogue import by_id
    from ncverify.proofs_checks.statement.domains import critical_values
    from ncverify.proofs_checks.sweep import instances, make_spec, sweep_data

    th = by_id("dang2023.mse-deep")
    flags = {"classes": "2", "per_class": "2", "width": "2", "depth": "2", "lam_w": "0.01"}
    base = Instance.create([2, 2], width=2, depth=2, lam_w=1e-2, lam_h=1e-2)
    crit = sorted(critical_values("mse-deep", base)["lam_h"])
    if not crit:
        return None
    grid = np.geomspace(crit[0] / 3, crit[-1] * 3, points)
    grid = np.unique(np.concatenate([grid, [c * r for c in crit for r in (0.97, 1.03)]]))
    spec = make_spec(th, flags, ["lam-h=" + ",".join(repr(float(f"{v:.6g}")) for v in grid)], starts=3, seed=seed)
    data = sweep_data(spec, th, instances(spec, th))
    data["figure"] = sweep_figure(data, path)
    return data


def sweep_figure(data: dict, path: Path) -> str | None:
    """The phase diagram of an ``ncverify sweep`` (``proofs_checks.sweep``): the numeric verdict of every grid point
    with the derived phase boundaries drawn over them. One axis: the derived, claimed and numeric sigma_1(W) along
    it, the numeric smallest sigma(W) hollow (a partly collapsed end point shows), boundaries as vertical lines. Two axes: the verdicts on the grid, and on each row the derived boundaries of
    the first axis's parameter (lam-h or lam-b) as ticks (else those of the second axis's parameter)."""
    spec, points = data["spec"], data["points"]
    axes = spec["axes"]
    if not points:
        return None
    param = {"lam-h": "lam_h", "lam-b": "lam_b"}
    title = f"{spec['theorem']}: numeric verdicts and derived boundaries ({len(points)} points)"
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    first = lambda v: None if not v else float(v[0])  # noqa: E731
    if len(axes) == 1:
        a = axes[0]
        xs = [p["values"][a["name"]] for p in points]
        for key, style, label in (("derived", "-", "derived sigma_1(W)"), ("claimed", "--", "claimed sigma_1(W)")):
            ys = [first(p[key]["sigma_W"]) for p in points]
            if any(y is not None for y in ys):
                ax.plot(xs, [math.nan if y is None else y for y in ys], style, color="k" if key == "derived"
                        else "tab:blue", label=label)
        last = lambda v: None if not v else float(min(v))  # noqa: E731
        for v, col in COLORS.items():
            sel = [(x, first(p["numeric"]["sigma_W"]), last(p["numeric"]["sigma_W"]))
                   for x, p in zip(xs, points) if p["verdict"] == v and p["numeric"]["sigma_W"]]
            ax.scatter([x for x, _, _ in sel], [y for _, y, _ in sel], color=col, s=22, zorder=3,
                       label=f"numeric sigma_1(W), verdict {v} ({sum(p['verdict'] == v for p in points)})")
            ax.scatter([x for x, _, _ in sel], [y for _, _, y in sel], facecolors="none", edgecolors=col, s=40,
                       zorder=3)
        ax.scatter([], [], facecolors="none", edgecolors="0.3", s=40, label="numeric smallest sigma(W) (hollow)")
        key = param.get(a["name"])
        crit = sorted({c for p in points for c in (p["boundaries"].get(key, []) if key else [])
                       if min(xs) <= c <= max(xs)})
        for c in crit:
            ax.axvline(c, color="0.5", ls=":")
            ax.text(c, 0.02, f" {c:.4g}", transform=ax.get_xaxis_transform(), fontsize=7, color="0.3")
        ax.set_xlabel(a["name"] + ("" if not crit else " (dotted: derived phase boundaries)"))
        ax.set_ylabel("singular values of W = W_M...W_1 (largest; smallest hollow)")
        if a["log"]:
            ax.set_xscale("log")
    else:
        a, b = axes
        xs = [p["values"][a["name"]] for p in points]
        ys = [p["values"][b["name"]] for p in points]
        for v, col in COLORS.items():
            sel = [(x, y) for x, y, p in zip(xs, ys, points) if p["verdict"] == v]
            ax.scatter([x for x, _ in sel], [y for _, y in sel], color=col, s=18, marker="s", zorder=3,
                       label=f"verdict {v} ({len(sel)})")
        for along, across, mark in ((a, b, "|"), (b, a, "_")):  # one axis's parameter's boundaries, per row
            key = param.get(along["name"])
            if key is None:
                continue
            lo, hi = min(along["values"]), max(along["values"])
            rows = {p["values"][across["name"]]: p["boundaries"].get(key, []) for p in points}
            pts = [(c, r) for r, cs in rows.items() for c in cs if lo <= c <= hi]
            if along is not a:
                pts = [(r, c) for c, r in pts]
            ax.scatter([q[0] for q in pts], [q[1] for q in pts], marker=mark, s=400, color="k", linewidths=2,
                       zorder=4, label=f"derived boundary in {along['name']} ({len(pts)})")
            break
        ax.set_xlabel(a["name"])
        ax.set_ylabel(b["name"])
        for axis, which in ((a, ax.xaxis), (b, ax.yaxis)):
            if all(isinstance(v, int) for v in axis["values"]):
                which.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if a["log"]:
            ax.set_xscale("log")
        if b["log"]:
            ax.set_yscale("log")
    fixed = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in spec["flags"].items()
                      if v not in (None, False) and k.replace("_", "-") not in [x["name"] for x in axes])
    ax.set_title(textwrap.fill(title, 90) + ("\n" + textwrap.fill(fixed, 100) if fixed else ""), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


#: the theorems of ``field_theorems.png`` (one panel each)
FIELD_THEOREMS = ("hong2023.ce-minority-collapse", "liu2024.mse-deep-bias-imbalanced", "fang2021.lpm",
                  "thrampoulidis2022.seli", "andriopoulos2024.regression-collapse", "sukenik2023.dufm-binary")


def _tying(solve: Callable[..., Any]) -> dict:
    """Rows 3 and 4 of a class-level program ``solve(tied=...)``: their distance at the free solution, the certified
    cost of tying them (0 when tied rows attain the minimum) and the free program's gap."""
    free, tied = solve(), solve(tied=[[2, 3]])
    from ncverify.numerics.convex import tying_cost

    return {"tying_cost": max(tying_cost(free, tied), 0.0), "row_distance": float(np.linalg.norm(free.X[2] - free.X[3])),
            "gap": free.gap}


def field_theorems_data(ids: Iterable[str], points: int = 10) -> dict:
    """The numbers of ``field_theorems.png`` for the run's theorems among ``FIELD_THEOREMS`` (the convex oracle's
    panels are left out without CVXPY):

    * hong2023: n = [10, 10, 2, 2], lambda_b = 0.05, swept mu = sqrt(lambda_W lambda_H) around the
      derived threshold sqrt(n_B)/N: the certified cost of tying the minority rows (0 = minority collapse);
    * liu2024: n = [8, 4, 2], M = 2: the singular values s_i* of Z along lambda_H (the claim's global selection),
      with the jumps;
    * fang2021: K_A = K_B = 2, E_W = E_H = 1: the certified cost of tying the minority rows along R = n_A/n_B, with
      R* from bisection;
    * thrampoulidis2022: two groups [R, R, 1, 1]: classifier norms ||w_k||^2 (diagonal of (P D P)^(1/2)) along R."""
    from ncverify.numerics import convex
    from ncverify.numerics.problem import Instance

    want = [t for t in FIELD_THEOREMS if t in set(ids)]
    out: dict = {}
    oracle_ok = convex.available()
    if "hong2023.ce-minority-collapse" in want and oracle_ok:
        counts, lam_b = [10, 10, 2, 2], 0.05
        mu_star = math.sqrt(2) / 24
        mus = np.geomspace(mu_star / 3, mu_star * 3, points)
        rows = []
        for mu in mus:
            rows.append({"mu": float(mu), **_tying(lambda **kw: convex.ce_nuclear(counts, float(mu), bias=True,
                                                                                  lam_b=lam_b, **kw))})
        out["hong2023"] = {"counts": counts, "lam_b": lam_b, "threshold_mu": mu_star, "points": rows}
    if "liu2024.mse-deep-bias-imbalanced" in want:
        from ncverify.proofs_checks.catalogue.liu2024 import liu_prediction

        lams = np.geomspace(1e-3, 3e-1, 3 * points)
        rows = []
        for lam in lams:
            inst = Instance.create([8, 4, 2], width=3, depth=2, lam_w=1e-1, lam_h=float(f"{lam:.6g}"), bias=True)
            rows.append({"lam_h": inst.lam_h, "s": liu_prediction(inst).scalar_values("s")})
        out["liu2024"] = {"counts": [8, 4, 2], "depth": 2, "lam_w": 0.1, "points": rows}
    if "fang2021.lpm" in want and oracle_ok:
        from ncverify.proofs_checks.catalogue.fang2021 import R_STAR_NOTES, minority_collapse_ratio

        rows = []
        for R in np.geomspace(1.5, 8.0, points):
            rows.append({"R": float(R), **_tying(lambda **kw: convex.layer_peeled([R, R, 1, 1], 4.0, **kw))})
        bis = minority_collapse_ratio(lo=3.0, hi=4.0, tol=1e-4)
        out["fang2021"] = {"points": rows, "r_star_bracket": bis["bracket"], "r_star_notes": float(R_STAR_NOTES)}
    if "thrampoulidis2022.seli" in want:
        from ncverify.theory.derive import derive

        rows = []
        for R in (1, 2, 3, 5, 8, 12, 20, 40):
            p = derive("max-margin", Instance.create([R, R, 1, 1], width=4, loss="ce", lam_w=1.0, lam_h=1.0))
            d = p.gram_targets["WWT"].diag
            rows.append({"R": R, "majority_norm2": float(d[0].value), "minority_norm2": float(d[2].value),
                         "f": float(p.objective.value)})
        out["thrampoulidis2022"] = {"points": rows}
    if "andriopoulos2024.regression-collapse" in want:
        from ncverify.proofs_checks.catalogue.andriopoulos2024 import regression_prediction

        rows = []
        for lam in np.geomspace(1e-3, 1.0, 3 * points):
            inst = Instance.create([10, 6, 3], width=3, lam_w=0.05, lam_h=float(f"{lam:.6g}"), targets="gauss:1")
            ev = np.linalg.eigvalsh(np.array([[float(x) for x in r]
                                              for r in regression_prediction(inst).gram_targets["WWT"].matrix]))
            rows.append({"lam_h": inst.lam_h, "eigenvalues_WWT": sorted((float(e) for e in ev), reverse=True)})
        out["andriopoulos2024"] = {"counts": [10, 6, 3], "targets": "gauss:1", "lam_w": 0.05, "points": rows}
    if "sukenik2023.dufm-binary" in want:
        from ncverify.numerics.starts import solve_instances
        from ncverify.proofs_checks.catalogue.sukenik2023 import dnc_prediction

        insts = [Instance.create([3, 3], width=2, depth=3, lam_w=1e-2, lam_h=float(f"{lam:.4g}"), activation="relu-deep")
                 for lam in np.geomspace(1e-3, 0.3, points)]
        res = solve_instances(insts, starts=6, seed=0)
        out["sukenik2023"] = {"counts": [3, 3], "depth": 3, "lam_w": 0.01, "starts": 6, "points": [
            {"lam_h": i.lam_h, "dnc_value": float(dnc_prediction(i).objective.value), "numeric": r.best.objective}
            for i, r in zip(insts, res)]}
    return out


def _tying_panel(ax: Any, x: Sequence[float], points: Sequence[dict]) -> None:
    """Minority rows 3 and 4: their distance at the oracle's point and the certified cost of tying them."""
    ax.plot(x, [r["row_distance"] for r in points], "o-", color="tab:blue", label="||w_3 - w_4|| (oracle point)")
    ax.plot(x, [r["tying_cost"] for r in points], "s--", color="tab:red", label="certified cost of tying w_3 = w_4")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_ylim(bottom=0)


def field_theorems_figure(data: dict, path: Path) -> str | None:
    """``field_theorems.png``: one panel per theorem present in ``data`` (``field_theorems_data``)."""
    panels = [k for k in ("hong2023", "liu2024", "fang2021", "thrampoulidis2022", "andriopoulos2024", "sukenik2023")
              if k in data]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows_ = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(5.2 * cols, 3.9 * rows_), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, panels):
        d = data[key]
        if key == "hong2023":
            _tying_panel(ax, [r["mu"] for r in d["points"]], d["points"])
            ax.axvline(d["threshold_mu"], color="k", lw=1, label="derived sqrt(n_B)/N")
            ax.set_xlabel("mu = sqrt(lambda_W lambda_H)")
            ax.set_title("hong2023: minority collapse, n = [10,10,2,2]", fontsize=9)
        elif key == "liu2024":
            x = [r["lam_h"] for r in d["points"]]
            S = np.array([r["s"] for r in d["points"]])
            for i in range(S.shape[1] - 1):  # the last singular value of Yhat is 0
                ax.plot(x, S[:, i], ".-", label=f"s_{i + 1}* (mode {i + 1})")
            ax.set_xscale("log")
            ax.set_xlabel("lambda_H (lambda_W = 0.1)")
            ax.set_ylabel("singular value of Z")
            ax.set_title("liu2024: M = 2, n = [8,4,2]: jumps to 0", fontsize=9)
        elif key == "fang2021":
            _tying_panel(ax, [r["R"] for r in d["points"]], d["points"])
            if d["r_star_bracket"]:
                ax.axvline(float(np.mean(d["r_star_bracket"])), color="k", lw=1,
                           label=f"R* by bisection = {np.mean(d['r_star_bracket']):.5f}")
            ax.set_xlabel("R = n_A / n_B (K_A = K_B = 2, E_W = E_H = 1)")
            ax.set_title("fang2021: layer-peeled minority collapse", fontsize=9)
        elif key == "andriopoulos2024":
            x = [r["lam_h"] for r in d["points"]]
            E = np.array([r["eigenvalues_WWT"] for r in d["points"]])
            for i in range(E.shape[1]):
                ax.plot(x, E[:, i], ".-", label=f"eigenvalue {i + 1} of W W^T")
            ax.set_xscale("log")
            ax.set_xlabel("lambda_H (lambda_W = 0.05), targets gauss:1, n = [10,6,3]")
            ax.set_title("andriopoulos2024: W W^T = c (Sigma^1/2 - t I)_+", fontsize=9)
        elif key == "sukenik2023":
            x = [r["lam_h"] for r in d["points"]]
            ax.plot(x, [r["dnc_value"] for r in d["points"]], "-", color="k", label="best DNC point (claimed f*)")
            ax.plot(x, [r["numeric"] for r in d["points"]], "o", mfc="none", color="tab:blue",
                    label=f"numeric minimum ({d['starts']} starts)")
            ax.set_xscale("log")
            ax.set_xlabel("lambda_H (K = 2, n = 3, M = 3, lambda_W = 0.01)")
            ax.set_title("sukenik2023: ReLU DUFM, DNC value vs numerics", fontsize=9)
        else:
            x = [r["R"] for r in d["points"]]
            ax.plot(x, [r["majority_norm2"] for r in d["points"]], "o-", label="||w_k||^2, majority")
            ax.plot(x, [r["minority_norm2"] for r in d["points"]], "s-", label="||w_k||^2, minority")
            ax.set_xscale("log")
            ax.set_xlabel("R = n_A / n_B, counts [R, R, 1, 1]")
            ax.set_title("thrampoulidis2022: SELI classifier norms", fontsize=9)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
