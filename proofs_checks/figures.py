"""Figures of the report (matplotlib, Agg backend): predicted vs numeric singular values, NC metrics
along the gd iterations (the papers' protocol), and a phase diagram with numeric verdicts."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import matplotlib
import matplotlib.patches  # noqa: F401  (legend patches)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"verified": "tab:green", "refuted": "tab:red", "inconclusive": "tab:orange"}


def make_all(data: dict, out: Path, seed: int = 0, progress: Callable[[str], None] | None = None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda m: None)
    paths = []
    say("figure: singular values")
    paths.append(singular_values_figure(data, out / "singular_values.png"))
    say("figure: NC metrics along gd")
    paths.append(nc_along_gd_figure(data, out / "nc_along_gd.png", seed=seed))
    say("figure: phase diagram")
    paths.append(phase_diagram_figure(out / "phase_diagram.png", seed=seed))
    say("figure: deep CE geometries")
    paths.append(ce_phase_figure(out / "ce_geometry_phases.png"))
    return [p for p in paths if p]


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


def _sv_pairs(check: dict) -> tuple[list[float], list[float]] | None:
    num = (check.get("numerics") or {}).get("singular_values") or {}
    ref = None
    for src in (check.get("claim"), check.get("derivation")):
        if src and (src.get("singular_values") or {}).get("weights_product"):
            ref = src["singular_values"]["weights_product"]
            break
    got = num.get("weights_product")
    if ref is None or got is None:
        return None
    ref = sorted(ref, reverse=True)
    got = sorted(got, reverse=True)[:len(ref)]
    got += [0.0] * (len(ref) - len(got))
    return ref, got


def singular_values_figure(data: dict, path: Path) -> str | None:
    rows = [(t["id"], [p for c in t["checks"] if (p := _sv_pairs(c))]) for t in data["theorems"]]
    rows = [(tid, pairs) for tid, pairs in rows if pairs]
    if not rows:
        return None
    n = len(rows)
    cols = min(4, n)
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(3.6 * cols, 3.3 * ((n + cols - 1) // cols)), squeeze=False)
    for ax, (tid, pairs) in zip(axes.flat, rows):
        allv = [v for ref, got in pairs for v in ref + got]
        hi = max(allv + [1e-12]) * 1.1
        ax.plot([0, hi], [0, hi], color="0.7", lw=1)
        for ref, got in pairs:
            ax.scatter(ref, got, s=18)
        ax.set_title(tid, fontsize=8)
        ax.set_xlabel("predicted sigma(W)", fontsize=8)
        ax.set_ylabel("numeric sigma(W)", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Singular values of W = W_M...W_1: claim (or derivation) vs numeric minimizer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def nc_trajectories(insts: list, seed: int = 0, iters: int = 3000, every: int = 50) -> list[dict]:
    """NC metrics along one gd run per instance (lr 0.1, momentum 0.9, init N(0, 0.1^2) from seed ``seed``), all
    runs in one batched solve (``numerics.batched``), measured every ``every`` steps.

    Features and classifier as the claims use them: H and W = W_M...W_1 for the deep linear model;
    the post-ReLU features s(W_1 H) and W_2 for the ReLU model. NC2 target: OF (ETF with a bias or CE)."""
    import torch

    from ncverify.numerics import batched, metrics, models

    problems = [batched.Problem(i, models.init_params(i, torch.Generator().manual_seed(seed)), seed=seed, kind="std 0.1")
                for i in insts]
    runs = batched.solve_problems(problems, solver="gd", max_iter=iters, grad_tol=0.0, snapshot_every=every)
    out = []
    for inst, run in zip(insts, runs):
        rec: dict[str, list] = {"it": [], "nc1": [], "nc2_W": [], "nc3": [], "objective": []}
        target = "ETF" if (inst.bias or inst.loss == "ce") else "OF"
        for it, x in run.snapshots or []:
            p = models.Params.unflatten(inst, x).to_numpy()
            if inst.activation == "relu":
                feats = np.maximum(p["weights"][0] @ p["H"], 0.0)
                W = metrics.product(p["weights"][1:])
            else:
                feats, W = p["H"], metrics.product(p["weights"])
            Hbar = metrics.class_means(feats, inst.counts)
            if target == "ETF":
                Hbar = Hbar - Hbar.mean(axis=1, keepdims=True)
            rec["it"].append(it)
            rec["nc1"].append(metrics.nc1(feats, inst.counts))
            rec["nc2_W"].append(metrics.nc2(W @ W.T, target))
            rec["nc3"].append(metrics.nc3_duality(W, Hbar))
            rec["objective"].append(run.history[it] if it < len(run.history) else float("nan"))
        out.append(rec)
    return out


def nc_trajectory(inst, seed: int = 0, iters: int = 3000, every: int = 50) -> dict:
    """``nc_trajectories`` of one instance."""
    return nc_trajectories([inst], seed=seed, iters=iters, every=every)[0]


def nc_along_gd_figure(data: dict, path: Path, seed: int = 0) -> str | None:
    from ncverify.proofs_checks.catalogue import by_id

    ths = [by_id(t["id"]) for t in data["theorems"]]
    ths = [t for t in ths if t.examples]
    if not ths:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    insts = [next((e for e in th.examples if e.balanced), th.examples[0]) for th in ths]
    for th, rec in zip(ths, nc_trajectories(insts, seed=seed)):
        for ax, key in zip(axes, ("nc1", "nc2_W", "nc3")):
            y = np.maximum(np.array(rec[key], dtype=float), 1e-17)
            ax.semilogy(rec["it"], y, label=th.id)
    for ax, title in zip(axes, ("NC1 of the features (post-ReLU for the ReLU model)",
                                "NC2 of W W^T vs OF (ETF with a bias or CE)",
                                "NC3 duality ||W/|W| - Hbar^T/|Hbar|||")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("gd iteration (lr 0.1, momentum 0.9)")
    axes[0].legend(fontsize=6)
    fig.suptitle("NC metrics along gd, one balanced example per theorem (W = W_2 for the ReLU model)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def phase_diagram_figure(path: Path, seed: int = 0, points: int = 10) -> str | None:
    """dang2023.mse-deep at M = 2, K = 2 balanced: sweep lambda_H across the derived boundaries; plot the
    derived and the claimed singular value of W, the boundaries, and the numeric verdict at each point."""
    from ncverify.numerics.problem import Instance
    from ncverify.proofs_checks import verify
    from ncverify.proofs_checks.catalogue import by_id
    from ncverify.proofs_checks.statement.domains import critical_values
    from ncverify.theory.derive import derive

    th = by_id("dang2023.mse-deep")
    base = Instance.create([2, 2], width=2, depth=2, lam_w=1e-2, lam_h=1e-2)
    crit = sorted(critical_values("mse-deep", base)["lam_h"])
    if not crit:
        return None
    lo, hi = crit[0] / 3, crit[-1] * 3
    grid = np.geomspace(lo, hi, points)
    grid = np.unique(np.concatenate([grid, [c * r for c in crit for r in (0.97, 1.03)]]))
    xs, derived, claimed, verdicts = [], [], [], []
    for lam_h in grid:
        inst = base.with_(lam_h=float(lam_h))
        d = derive("mse-deep", inst)
        c = th.claim(inst)
        r = verify.check(th, inst, starts=3, seed=seed)
        xs.append(lam_h)
        derived.append(float(d.singular_values.weights_product[0].value))
        claimed.append(float(c.singular_values.weights_product[0].value))
        verdicts.append(r.verdict)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.semilogx(xs, derived, "-", color="k", label="derived global minimizer")
    ax.semilogx(xs, claimed, "--", color="tab:blue", label="claim (largest positive root)")
    for x, y, v in zip(xs, claimed, verdicts):
        ax.scatter([x], [y], color=COLORS[v], zorder=3, s=30)
    for c, name in zip(crit, ("global switch", "stationary points vanish")):
        ax.axvline(c, color="0.5", ls=":")
        ax.text(c, ax.get_ylim()[1] * 0.5, f" {name}\n lambda_H = {c:.4g}", fontsize=7, color="0.3")
    for v, col in COLORS.items():
        ax.scatter([], [], color=col, label=f"numeric verdict: {v}")
    ax.set_xlabel("lambda_H (K = 2, n = 2, M = 2, d = 2, lambda_W = 1e-2)")
    ax.set_ylabel("sigma(W) of each class")
    ax.set_title("dang2023.mse-deep: phase boundaries (dotted) and verdicts", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
