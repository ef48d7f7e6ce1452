"""Command-line instance flags shared by ``ncverify solve``, ``derive`` and ``check``.

Flag -> symbol: --counts n_1..n_K (or --classes K --per-class n), --width d, --depth M,
--lam-w lambda_{W_1..W_M} (one value for all layers or one per layer), --lam-h lambda_H,
--lam-b lambda_b, --bias (last-layer bias b), --activation s (extended UFM), --loss mse|ce|BASE:PARAMS,
--targets gauss:SEED (real-valued regression targets)
(a loss registered in ``numerics.losses``, e.g. ce-ls:0.1; validated by ``Instance``).

Also the checks of the other flags that every command runs before any work: ``parse_ids`` (--only),
``check_seed``, ``check_starts``, ``check_solver_options``, ``check_device``, ``check_out_dir`` (--out can be created and written).
"""
from __future__ import annotations

import argparse

from ncverify.numerics.problem import Instance, InstanceError
from ncverify.proofs_checks.errors import UsageError


def _int_list(text: str, what: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            out.append(int(part))
        except ValueError:
            raise InstanceError(f"{what} must be comma-separated integers, got {text!r}") from None
    return out


def _float_list(text: str, what: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise InstanceError(f"{what} must be comma-separated numbers, got {text!r}") from None
    return out


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise InstanceError(f"{what} must be an integer, got {text!r}") from None


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InstanceError(f"{what} must be a number, got {text!r}") from None


#: the instance flags' defaults on the command line (text, as typed; None: derived from the others or the theorem)
INSTANCE_FLAG_DEFAULTS = {"loss": None, "width": None, "depth": None, "lam_w": "5e-3", "lam_h": "5e-3", "lam_b": "0"}


def add_instance_args(p: argparse.ArgumentParser, *, defaults: dict | None = None) -> None:
    """Add the instance flags; values are parsed and validated later by ``instance_from_args``."""
    d = dict(INSTANCE_FLAG_DEFAULTS)
    d.update(defaults or {})
    g = p.add_argument_group("instance")
    g.add_argument("--loss", default=d["loss"], metavar="LOSS",
                   help="mse, ce, or a registered loss with its parameters, e.g. ce-ls:0.1 (label smoothing delta), "
                        "focal:2 (focusing gamma) (default: mse, or the theorem's loss for check)")
    g.add_argument("--counts", help="class counts n_1,...,n_K, e.g. 10,5,2 (imbalance allowed)")
    g.add_argument("--classes", help="number of classes K (with --per-class)")
    g.add_argument("--per-class", help="samples per class n (balanced, with --classes)")
    g.add_argument("--width", help="width d of H and of the hidden layers (default: K)", default=d["width"])
    g.add_argument("--depth", default=d["depth"],
                   help="depth M = number of weight matrices (default: 1, or the theorem's depth for check)")
    g.add_argument("--lam-w", help="lambda_W: one value or one per layer, comma-separated (default %(default)s)",
                   default=d["lam_w"])
    g.add_argument("--lam-h", help="lambda_H (default %(default)s)", default=d["lam_h"])
    g.add_argument("--lam-b", help="lambda_b >= 0 for the bias penalty lambda_b/2 ||b||^2 (default 0: unregularized)",
                   default=d["lam_b"])
    g.add_argument("--bias", action="store_true", help="add a last-layer bias b")
    g.add_argument("--activation", choices=["identity", "relu", "relu-deep"], default=None,
                   help="extended UFM: activation s between W_1 and W_2 (needs --depth >= 2); relu-deep: a ReLU "
                        "after every layer but the last (the deep unconstrained features model)")
    g.add_argument("--targets", default=None, metavar="gauss:SEED",
                   help="real-valued regression targets Y = T E (MSE only): T a K x K standard normal matrix from "
                        "numpy's default_rng(SEED), the n_k samples of group k sharing the target t_k")


def add_cluster_args(p: argparse.ArgumentParser) -> None:
    """--workers / --scheduler (``proofs_checks.distributed``; neither: in this process)."""
    g = p.add_argument_group("where the work runs (default: in this process; Dask: pip install 'ncverify[dask]')")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=_workers, default=None, metavar="N",
                   help="a local Dask cluster of N worker processes on 127.0.0.1 (one task per process)")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (its workers need this ncverify)")


def _workers(text: str) -> int:
    from ncverify.proofs_checks.distributed import MAX_LOCAL_WORKERS

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_LOCAL_WORKERS:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to {MAX_LOCAL_WORKERS}, got {text!r}")
    return n


def instance_from_args(args: argparse.Namespace, defaults: dict | None = None, numeric: bool = True) -> Instance:
    """Parse and validate the instance flags; raises InstanceError naming the violated condition (also beyond the
    command line's size limits, ``check_size``; ``numeric=False``: no parameter-count limit, for ``derive``).

    ``defaults`` (a theorem's, e.g. {"loss": "ce"} or {"activation": "relu", "depth": 2, "bias": True})
    fill the flags the user did not give.
    """
    defaults = defaults or {}
    loss = args.loss or defaults.get("loss", "mse")
    activation = args.activation or defaults.get("activation")
    bias = bool(args.bias or defaults.get("bias", False))
    if args.counts is not None:
        if args.classes is not None or args.per_class is not None:
            raise InstanceError("give either --counts or --classes/--per-class, not both")
        counts = _int_list(args.counts, "--counts")
    elif args.classes is not None and args.per_class is not None:
        K = _int(args.classes, "--classes")
        n = _int(args.per_class, "--per-class")
        if K < 1:
            raise InstanceError(f"number of classes K must be >= 1, got {K}")
        counts = [n] * K
    else:
        raise InstanceError("give the class counts: --counts n_1,...,n_K or --classes K --per-class n")
    depth = _int(str(args.depth), "--depth") if args.depth is not None else int(defaults.get("depth", 1))
    width = len(counts) if args.width is None else _int(str(args.width), "--width")
    lam_w = _float_list(args.lam_w, "--lam-w")
    inst = Instance.create(
        counts, width=width, depth=depth, lam_w=lam_w, lam_h=_float(args.lam_h, "--lam-h"),
        loss=loss, bias=bias, lam_b=_float(args.lam_b, "--lam-b"), activation=activation,
        targets=getattr(args, "targets", None) or defaults.get("targets"),
    )
    check_size(inst, numeric)
    return inst


# sizes the command line accepts: beyond them a check or solve would run for hours or exhaust memory (a typo such
# as --depth 100000 must not hang); the Python API has no such limits
MAX_DEPTH = 32
MAX_CLASSES = 1000
MAX_PARAMETERS = 10_000_000


def parameter_count(inst: Instance) -> int:
    """Scalars of the full objective: H (d x N), W_1 .. W_{M-1} (d x d), W_M (K x d), and b (K) with a bias."""
    return inst.width * inst.N + (inst.depth - 1) * inst.width ** 2 + inst.K * inst.width + (inst.K if inst.bias else 0)


def check_size(inst: Instance, numeric: bool = True) -> None:
    """InstanceError when the instance is beyond the command line's limits (MAX_DEPTH, MAX_CLASSES, and with
    ``numeric`` MAX_PARAMETERS), naming the limit."""
    if inst.depth > MAX_DEPTH:
        raise InstanceError(f"depth M = {inst.depth} is beyond the command line's limit M <= {MAX_DEPTH}")
    if inst.K > MAX_CLASSES:
        raise InstanceError(f"K = {inst.K} classes is beyond the command line's limit K <= {MAX_CLASSES}")
    P = parameter_count(inst)
    if numeric and P > MAX_PARAMETERS:
        raise InstanceError(f"the instance has {P} parameters (d N + (M-1) d^2 + K d), beyond the command line's "
                            f"limit of {MAX_PARAMETERS}")


# ---------------------------------------------------------------------------------------------
# validation of the other flags, before any work
# ---------------------------------------------------------------------------------------------
def parse_ids(text: str | None, flag: str = "--only") -> list[str] | None:
    """Comma-separated ids (``--only a,b``): None when the flag was not given; UsageError for an empty list or an
    empty item (``--only ""``, ``--only a,,b``, ``--only a,``). Whitespace around an id is ignored; duplicates
    are dropped (first occurrence kept)."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise UsageError(f"{flag} needs at least one id, got {text!r}")
    if not all(items):
        raise UsageError(f"{flag} has an empty id in {text!r} (ids are separated by single commas)")
    return list(dict.fromkeys(items))


def check_seed(seed: int, flag: str = "--seed") -> None:
    """Seeds are non-negative integers (they seed torch.Generator and Hypothesis)."""
    if seed < 0:
        raise UsageError(f"{flag} must be >= 0, got {seed}")


def check_starts(starts: int | None, flag: str = "--starts") -> None:
    """At least one start when given."""
    if starts is not None and starts < 1:
        raise UsageError(f"{flag} must be >= 1, got {starts}")


def check_solver_options(*, starts: object, seed: object, solver: str = "lbfgs", lr: object = 0.1,
                         momentum: object = 0.9, init_std: object = None, grad_tol: object = None,
                         max_iter: object = None, flags: bool = False) -> None:
    """The numeric settings of ``solve`` and ``check`` (command line and Python API alike): integer starts >= 1,
    seed >= 0, max_iter >= 1; finite lr, init_std, grad_tol > 0; momentum in [0, 1); solver lbfgs or gd.
    ``flags``: name them as command-line flags (``--max-iter``) instead of keywords (``max_iter``)."""
    import math

    def name(key: str) -> str:
        return "--" + key.replace("_", "-") if flags else key

    for key, v in (("starts", starts), ("seed", seed), ("max_iter", max_iter)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise UsageError(f"{name(key)} must be an integer, got {v!r}")
    check_starts(starts, name("starts"))  # type: ignore[arg-type]
    check_seed(seed, name("seed"))  # type: ignore[arg-type]
    if max_iter is not None and max_iter < 1:  # type: ignore[operator]
        raise UsageError(f"{name('max_iter')} must be >= 1, got {max_iter}")
    if solver not in ("lbfgs", "gd"):
        raise UsageError(f"{name('solver')} must be lbfgs or gd, got {solver!r}")
    for key, v in (("lr", lr), ("init_std", init_std), ("grad_tol", grad_tol)):
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise UsageError(f"{name(key)} must be a finite number > 0, got {v}")
    if not (isinstance(momentum, (int, float)) and math.isfinite(momentum) and 0 <= momentum < 1):
        raise UsageError(f"{name('momentum')} must be in [0, 1), got {momentum}")


def check_device(device: str) -> None:
    """auto, cpu, cuda or cuda:<index>, and CUDA present when asked for (imports torch)."""
    from ncverify.numerics.models import resolve_device

    resolve_device(device)


def check_out_dir(out: str, flag: str = "--out") -> None:
    """The report directory ``out`` can be created and written: created now (with its parents), a probe file
    written and removed; UsageError naming the reason otherwise. Runs before any work."""
    import os
    import tempfile
    from pathlib import Path

    if not out or not out.strip():
        raise UsageError(f"{flag} must name a directory, got {out!r}")
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {out!r} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {out!r}: cannot create the report directory: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".ncverify-write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{flag} {out!r}: cannot write into the report directory: {exc.strerror or exc}") from None
