"""The ``ncverify`` command line.

Subcommands (``cli.commands``, ``cli.lemmas``, ``cli.sweep``, ``cli.measure``):
  solve   -- numeric minimizers of one instance's full objective and their NC measurements;
  derive  -- the theory engine's exact derivation for a family or theorem id;
  list    -- the theorem catalogue;
  check   -- the verdict of one theorem on one instance (``--expect VERDICT`` for CI);
  run     -- verify the whole catalogue (and the seeded mutants) and write the report;
  sweep   -- one theorem's verdict on every point of a parameter grid, with its phase diagram (``cli.sweep``);
  lemmas  -- check the proof steps (lemmas) behind the theorems, and the seeded wrong lemmas.
``ncverify --version`` prints ``ncverify <version>``.

Exit codes: ``proofs_checks.exitcodes.ExitCode`` (0 success, 1 a verdict differs from the record or from
``--expect``, 2 bad input, 3 internal error, 4 / 5 ``check`` refuted / inconclusive, 130 interrupted,
141 broken pipe). Every argument is validated before any work. Bad input (the project's own errors,
``proofs_checks.errors.INPUT_ERRORS``, and any exception raised by the code of a user's ``--theorems`` file)
gives one line ``ncverify: error: <violated condition>`` on stderr and exit code 2. Any other exception is a
bug: one line saying so, exit code 3 (set NCVERIFY_DEBUG=1 to see the traceback). A reader that closes the
pipe (``ncverify run --json | head``) ends the command quietly.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ncverify.proofs_checks.cli import commands as C
from ncverify.proofs_checks.cli.args import add_cluster_args, add_instance_args
from ncverify.proofs_checks.cli.lemmas import add_parser as add_lemmas_parser
from ncverify.proofs_checks.cli.measure import add_parser as add_measure_parser
from ncverify.proofs_checks.cli.sweep import add_parser as add_sweep_parser
from ncverify.proofs_checks.errors import INPUT_ERRORS, UsageError

from ncverify import __version__
from ncverify.proofs_checks.errors import user_code_error, user_frame
from ncverify.proofs_checks.exitcodes import ExitCode

# kept for callers of the former constants
EXIT_BAD_INPUT = ExitCode.USAGE
EXIT_BUG = ExitCode.INTERNAL


SUBCOMMANDS = ("solve", "derive", "list", "check", "run", "sweep", "lemmas", "measure")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) so every bad input looks the same."""

    subcommand: str | None = None  # set by main: unrecognized flags are reported by the top-level parser

    def error(self, message: str) -> None:  # type: ignore[override]
        prog = f"{self.prog} {self.subcommand}" if self.subcommand and " " not in self.prog else self.prog
        raise UsageError(f"{message} (see `{prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ncverify", description="Verify neural-collapse theorems: exact derivations (SymPy) "
                "checked against independent numeric minimizers (torch).",
                epilog="exit codes: 0 success; 1 a verdict differs from the record (run, lemmas) or from "
                       "check --expect; 2 usage error or bad input (also errors in a --theorems file); 3 internal "
                       "error; 4 check: refuted; 5 check: inconclusive; 130 interrupted; 141 broken pipe")
    p.add_argument("--version", action="version", version=f"ncverify {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("solve", help="numerically minimize one instance's full objective and measure NC")
    add_instance_args(s)
    C._add_solver_args(s)
    s.add_argument("--geometry", choices=["of", "etf"], default=None,
                   help="also report NC2 against this target geometry (needs d >= K)")
    s.add_argument("--json", action="store_true", help="print the measurements as JSON")
    s.set_defaults(func=C.cmd_solve)

    d = sub.add_parser("derive", help="print the theory engine's derivation for a family or theorem id")
    d.add_argument("target", metavar="FAMILY-OR-THEOREM-ID")
    add_instance_args(d)
    d.add_argument("--dps", type=int, default=40, help="working precision in digits (default %(default)s)")
    d.add_argument("--theorems", help="load extra theorems (and their loss variants) from this Python file")
    fmt = d.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the derivation as JSON")
    fmt.add_argument("--latex", action="store_true", help="print the expressions as LaTeX")
    d.set_defaults(func=C.cmd_derive)

    ls = sub.add_parser("list", help="list the theorem catalogue")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--mutants", action="store_true", help="also list the seeded wrong claims")
    ls.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    ls.set_defaults(func=C.cmd_list)

    c = sub.add_parser("check", help="verdict of one theorem on one instance")
    c.add_argument("theorem", metavar="THEOREM-ID")
    add_instance_args(c)
    c.add_argument("--solver", choices=["lbfgs", "gd"], default="lbfgs")
    c.add_argument("--starts", type=int, default=None,
                   help="starts from the portfolio of numerics.starts (default 4, 6 for ReLU models)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto")
    c.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="refuse instances whose check needs more memory than this, e.g. 8GB (default: "
                        "NCVERIFY_MEMORY_BUDGET, else half of this machine's memory)")
    c.add_argument("--theorems", help="load extra theorems from this Python file (defines THEOREMS)")
    c.add_argument("--expect", choices=["verified", "refuted", "inconclusive"], default=None,
                   help="for CI: exit 0 when the verdict is this one, 1 otherwise (without it: 0 verified, "
                        "4 refuted, 5 inconclusive)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=C.cmd_check)

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
    add_cluster_args(r)
    r.set_defaults(func=C.cmd_run)

    add_sweep_parser(sub)
    add_lemmas_parser(sub)
    add_measure_parser(sub)
    return p



def _say_error(line: str) -> None:
    """One line on stderr (quietly nothing when stderr itself is gone)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        pass


def _broken_pipe() -> int:
    """stdout's reader went away: send the rest of the output to os.devnull (so that the interpreter's final flush
    finds nothing to complain about) and end quietly with ExitCode.BROKEN_PIPE."""
    for stream in (sys.stdout, sys.stderr):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # a stream without a file descriptor (e.g. under pytest)
            pass
    return ExitCode.BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit code (``exitcodes.ExitCode``)."""
    debug = bool(os.environ.get("NCVERIFY_DEBUG"))
    try:
        parser = build_parser()
        words = list(sys.argv[1:] if argv is None else argv)
        if isinstance(parser, _Parser):
            parser.subcommand = next((w for w in words if w in SUBCOMMANDS), None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.USAGE)
            sys.stdout.flush()
            return code
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except INPUT_ERRORS as exc:
        if debug:
            raise
        _say_error(f"ncverify: error: {' '.join(str(exc).split())}")  # one line
        return ExitCode.USAGE
    except KeyboardInterrupt:
        _say_error("ncverify: interrupted")
        return ExitCode.INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if user_frame(exc) is not None:  # raised by the code of a user's --theorems file: the user's error
            err = user_code_error(exc, None, "in code of the theorem file, called by ncverify")
            _say_error(f"ncverify: error: {' '.join(str(err).split())}")
            return ExitCode.USAGE
        msg = " ".join(str(exc).split())[:300]  # a bug, never disguised as bad input
        _say_error(f"ncverify: internal error (a bug in ncverify, please report it): {type(exc).__name__}: {msg}; "
                   "rerun with NCVERIFY_DEBUG=1 for the traceback")
        return ExitCode.INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
