"""``ncverify measure``: NC metrics of a trained network's features, optionally compared with a theorem's derived
geometry (``proofs_checks.measure``).

  ncverify measure FEATURES [FEATURES ...] --labels FILE [--labels-key NAME] [--weights FILE [FILE ...]]
      [--weights-key NAME [NAME ...]] [--weights-layout auto|out-in|in-out] [--bias FILE] [--bias-key NAME] [--layout nd|dn] [--key NAME] [--chunk-size N]
      [--global-mean sample|class] [--theorem ID [--theorems FILE] --lam-w L --lam-h L [--lam-b L]
      [--depth M] [--bias-term] [--loss LOSS] [--width d]] [--json]

Several FEATURES files are several layers (metrics per layer; the last one feeds the classifier). ``--bias FILE``
is the classifier's bias vector b; ``--bias-term`` sets the compared instance's bias (the model has a last-layer
bias b; default: the theorem's). Output: tables (rich) or ``--json`` ({"measurement": ..., "comparison": ...}).
Exit code 0, or 2 with one line ``ncverify: error: ...`` for bad input. Progress goes to stderr when it is a
terminal. torch and sympy are imported only when the command runs.
"""
from __future__ import annotations

import argparse

from ncverify.proofs_checks.cli.args import _float, _float_list, _int_list
from ncverify.proofs_checks.cli.output import console, fmt, print_json
from ncverify.proofs_checks.errors import UsageError


def add_parser(sub) -> None:
    """Register the ``measure`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("measure", help="NC metrics of a network's features (any sample order, streamed), "
                                       "optionally against a theorem's derived geometry")
    p.add_argument("features", nargs="+", metavar="FEATURES",
                   help="feature files (.npy, .npz, .pt), one per layer; the last one feeds the classifier")
    p.add_argument("--labels", required=True, metavar="FILE", help="labels (.npy, .npz, .pt): N integers or strings")
    p.add_argument("--labels-key", metavar="NAME", help="array of an .npz / dict .pt labels file")
    p.add_argument("--weights", nargs="+", metavar="FILE",
                   help="classifier W (K x d or d x K), or W_1 ... W_M in order (product W_M...W_1 is used)")
    p.add_argument("--weights-layout", choices=["auto", "out-in", "in-out"], default="auto",
                   help="out-in: each W_j is (outputs x inputs) as torch's nn.Linear.weight; in-out: transposed; "
                        "auto (default): by shape, refused when ambiguous")
    p.add_argument("--weights-key", nargs="+", metavar="NAME",
                   help="array of an .npz / dict .pt weights file, e.g. fc.weight of a state_dict (one for all files, "
                        "or one per file)")
    p.add_argument("--bias", metavar="FILE", help="classifier bias vector b (K entries)")
    p.add_argument("--bias-key", metavar="NAME", help="array of an .npz / dict .pt bias file, e.g. fc.bias")
    p.add_argument("--layout", choices=["nd", "dn"], default="nd",
                   help="nd (default): rows are samples (N x d); dn: columns are (d x N)")
    p.add_argument("--key", metavar="NAME", help="array of an .npz / dict .pt features file")
    p.add_argument("--chunk-size", default="65536", metavar="N", help="samples per chunk (default %(default)s)")
    p.add_argument("--global-mean", choices=["sample", "class"], default="sample",
                   help="global mean: the sample mean (default) or the mean of the class means")
    g = p.add_argument_group("comparison with a theorem (the derived global minimizer of its family)")
    g.add_argument("--theorem", metavar="ID", help="theorem id: compare with its family's derivation")
    g.add_argument("--theorems", metavar="FILE", help="load extra theorems from this Python file (defines THEOREMS)")
    g.add_argument("--lam-w", help="lambda_W: one value or one per layer, comma-separated (required with --theorem)")
    g.add_argument("--lam-h", help="lambda_H (required with --theorem)")
    g.add_argument("--lam-b", default="0", help="lambda_b >= 0 (default 0: unregularized bias)")
    g.add_argument("--depth", help="depth M (default: the theorem's, else the number of --weights files, else 1)")
    g.add_argument("--bias-term", action="store_true", help="the instance has a last-layer bias (default: the theorem's)")
    g.add_argument("--loss", help="loss of the instance (default: the theorem's)")
    g.add_argument("--width", help="width d of the instance (default: the measured feature width)")
    p.add_argument("--json", action="store_true", help="print the measurement (and comparison) as JSON")
    p.set_defaults(func=cmd_measure)


def _validate(args: argparse.Namespace) -> dict:
    """Check every flag before any work; returns the parsed comparison options."""
    chunk = _int_list(args.chunk_size, "--chunk-size")
    if len(chunk) != 1 or chunk[0] < 1:
        raise UsageError(f"--chunk-size must be one integer >= 1, got {args.chunk_size!r}")
    args.chunk_size = chunk[0]
    if args.weights_key and not args.weights:
        raise UsageError("--weights-key needs --weights FILE")
    if args.bias_key and not args.bias:
        raise UsageError("--bias-key needs --bias FILE")
    cmp_flags = [f for f, v in (("--lam-w", args.lam_w), ("--lam-h", args.lam_h), ("--depth", args.depth),
                                ("--bias-term", args.bias_term), ("--loss", args.loss), ("--width", args.width),
                                ("--theorems", args.theorems)) if v]
    if args.theorem is None:
        if cmp_flags:
            raise UsageError(f"{', '.join(cmp_flags)} only apply with --theorem ID")
        return {}
    if args.lam_w is None or args.lam_h is None:
        raise UsageError("--theorem needs the instance's lambdas: --lam-w and --lam-h")
    lam_w = _float_list(args.lam_w, "--lam-w")
    opts = {"lam_w": lam_w if len(lam_w) > 1 else lam_w[0], "lam_h": _float(args.lam_h, "--lam-h"),
            "lam_b": _float(args.lam_b, "--lam-b"), "bias": True if args.bias_term else None, "loss": args.loss}
    if args.depth is not None:
        d = _int_list(args.depth, "--depth")
        if len(d) != 1 or d[0] < 1:
            raise UsageError(f"--depth must be one integer >= 1, got {args.depth!r}")
        opts["depth"] = d[0]
    if args.width is not None:
        w = _int_list(args.width, "--width")
        if len(w) != 1 or w[0] < 1:
            raise UsageError(f"--width must be one integer >= 1, got {args.width!r}")
        opts["width"] = w[0]
    return opts


def cmd_measure(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ncverify.proofs_checks.measure import compare, measure

    opts = _validate(args)
    th = None
    if args.theorem is not None:  # an unknown id or a broken --theorems file fails before the stream
        from ncverify.proofs_checks.catalogue import resolve

        th = resolve(args.theorem, args.theorems)
    err = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                  TimeElapsedColumn(), console=err, transient=True, disable=not err.is_terminal) as progress:
        tasks: dict = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name[-40:], total=total)
            progress.update(tasks[name], completed=done)

        m = measure(args.features if len(args.features) > 1 else args.features[0], args.labels,
                    weights=args.weights if args.weights and len(args.weights) > 1 else
                    (args.weights[0] if args.weights else None),
                    bias=args.bias, layout=args.layout, key=args.key, labels_key=args.labels_key,
                    chunk_size=args.chunk_size, global_mean=args.global_mean, weights_layout=args.weights_layout,
                    weights_key=None if not args.weights_key else
                    (args.weights_key[0] if len(args.weights_key) == 1 else args.weights_key),
                    bias_key=args.bias_key, progress=report)
    comp = compare(m, th, **opts) if th is not None else None
    if args.json:
        print_json({"measurement": m.to_json(), "comparison": None if comp is None else comp.to_json()})
    else:
        print_measurement(m, comp)
    return 0


def _f(v, digits: int = 4) -> str:
    if isinstance(v, list) and len(v) > 8:
        return fmt(v[:8], digits)[:-1] + f", ... ({len(v)})]"
    return fmt(v, digits)


def print_measurement(m, comp=None) -> None:
    """Tables: the labels, per-layer metrics, the classifier, and the comparison rows."""
    from rich.markup import escape
    from rich.table import Table

    con = console()  # never wrapped when piped; a closed pipe ends quietly
    mp = m.labels.mapping()
    items = list(mp.items())
    shown = ", ".join(f"{k} -> {v}" for k, v in items[:10]) + (f", ... ({len(items)} classes)" if len(items) > 10 else "")
    con.print(f"[bold]ncverify measure[/bold]: N = {m.labels.N}, K = {m.K}, counts {_f(m.counts)}, "
              f"chunk {m.chunk_size}, global mean {m.global_mean}, {m.seconds:.2f} s", highlight=False)
    con.print(escape(f"labels -> classes: {shown}"), highlight=False)
    for n in m.notes:
        con.print(escape(f"note: {n}"), style="dim", highlight=False)
    t = Table(title="NC metrics per layer")
    t.add_column("metric", overflow="fold")
    for L in m.layers:
        t.add_column(escape(L.name), overflow="fold")
    rows = [
        ("d", lambda L: str(L.d)),
        ("NC1 (1/K) tr(Sigma_W Sigma_B^+)", lambda L: _f(L.nc1)),
        ("tr Sigma_W / tr Sigma_B", lambda L: f"{_f(L.tr_sigma_w)} / {_f(L.tr_sigma_b)}"),
        ("NC2 Hbar centered vs ETF / OF", lambda L: f"{_f(L.nc2_Hbar['centered']['ETF'])} / {_f(L.nc2_Hbar['centered']['OF'])}"),
        ("NC2 Hbar uncentered vs ETF / OF", lambda L: f"{_f(L.nc2_Hbar['uncentered']['ETF'])} / {_f(L.nc2_Hbar['uncentered']['OF'])}"),
        ("sv of Hbar centered", lambda L: _f(L.sv_Hbar_centered)),
        ("sv of Hbar uncentered", lambda L: _f(L.sv_Hbar)),
        ("class-mean norms", lambda L: _f(L.class_mean_norms)),
    ]
    for label, fn in rows:
        t.add_row(escape(label), *[escape(fn(L)) for L in m.layers])
    con.print(t)
    L = m.last
    if L.W is not None:
        c = Table(title=f"classifier W (K x d = {L.W.shape[0]} x {L.W.shape[1]}, layout {m.weights_layout}) on {escape(L.name)}")
        c.add_column("metric", overflow="fold")
        c.add_column("value", overflow="fold")
        crow = [("NC2 W W^T vs ETF / OF / diagonal", f"{_f(L.nc2_W['ETF'])} / {_f(L.nc2_W['OF'])} / {_f(L.nc2_W['diag'])}"),
                ("NC3 ||W/||W|| - Hbar^T/||Hbar|| || uncentered / centered",
                 f"{_f(L.nc3['duality'])} / {_f(L.nc3['duality_centered'])}"),
                ("NC3 W Hbar vs OF / W (Hbar - hbar_G) vs ETF", f"{_f(L.nc3['product_OF'])} / {_f(L.nc3['product_ETF'])}"),
                ("sv of W", _f(L.sv_W))]
        if L.sv_layers:
            crow += [(f"sv of W_{j}", _f(s)) for j, s in enumerate(L.sv_layers, start=1)]
        crow += [("sv of W Hbar", _f(L.sv_WHbar)), ("sv of outputs W H (all samples)", _f(L.sv_output))]
        if L.bias is not None:
            crow += [("bias b", _f(L.bias)), ("sv of W Hbar + b 1^T", _f(L.sv_logits)),
                     ("sv of outputs W H + b 1^T", _f(L.sv_output_bias))]
        for a, b in crow:
            c.add_row(escape(a), escape(b))
        con.print(c)
    if comp is None:
        return
    ct = Table(title=f"measured vs derived global minimizer of {escape(comp.theorem)} (family {escape(comp.family)}), "
                     f"layer {escape(comp.layer)}")
    for col in ("quantity", "aspect", "measured", "predicted", "error"):
        ct.add_column(col, overflow="fold")
    for r in comp.rows:
        ct.add_row(escape(r.quantity), r.aspect, escape(_f(r.measured) if not isinstance(r.measured, str) else r.measured),
                   escape(_f(r.predicted) if not isinstance(r.predicted, str) else r.predicted), escape(_f(r.error, 3)))
    con.print(ct)
    con.print(escape(f"instance: {comp.instance['flags']}; predicted f* = {_f(comp.objective, 8)}"), highlight=False)
    con.print(escape(f"derivation: {comp.reproduce}"), highlight=False, soft_wrap=True)
    for n in comp.notes:
        con.print(escape(f"note: {n}"), style="dim", highlight=False)
    con.print("errors: shape = normalized Frobenius distance of the Grams; scale = |norm ratio - 1| or "
              "max |s_i - p_i| / max p (see --json 'how'). A comparison with the exact minimizer, not a verdict.",
              style="dim", highlight=False)
