"""Exit codes of the ``ncverify`` command line, defined once (the CLI and its tests import them from here).

| code | name           | meaning                                                                            |
|------|----------------|------------------------------------------------------------------------------------|
| 0    | SUCCESS        | ``check``: verified, or the verdict equals ``--expect``; ``run`` / ``lemmas``:      |
|      |                | every verdict equals the recorded one; ``list``, ``derive``, ``solve``: done        |
| 1    | DIFFERS        | a verdict differs from the record (``run``, ``lemmas``) or from                     |
|      |                | ``check --expect VERDICT``                                                          |
| 2    | USAGE          | usage error or bad input, including any error in a user's ``--theorems`` file       |
|      |                | (one line ``ncverify: error: <violated condition>`` on stderr, no work done when    |
|      |                | the arguments are at fault: they are validated before any work)                     |
| 3    | INTERNAL       | internal error: a bug in ncverify (one line; ``NCVERIFY_DEBUG=1`` for the traceback)|
| 4    | REFUTED        | ``check`` without ``--expect``: the verdict is refuted                              |
| 5    | INCONCLUSIVE   | ``check`` without ``--expect``: the verdict is inconclusive                         |
| 130  | INTERRUPTED    | interrupted (Ctrl-C, SIGINT)                                                        |
| 141  | BROKEN_PIPE    | the reader of stdout went away (``ncverify ... --json | head``): the rest of the    |
|      |                | output is dropped quietly; 141 = 128 + SIGPIPE, what a shell reports for a program  |
|      |                | that a closed pipe stopped                                                          |

For CI: ``ncverify run`` fails the job exactly when a recorded verdict changed (1) or the job itself is wrong
(2, 3); ``ncverify check ID ... --expect refuted`` pins one verdict (0 when it holds, 1 when not).
"""
from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The process exit codes of ``ncverify`` (see the module table)."""

    SUCCESS = 0
    DIFFERS = 1
    USAGE = 2
    INTERNAL = 3
    REFUTED = 4
    INCONCLUSIVE = 5
    INTERRUPTED = 130
    BROKEN_PIPE = 141


# the exit code of ``check`` without --expect, by verdict
CHECK_VERDICT_CODES: dict[str, ExitCode] = {
    "verified": ExitCode.SUCCESS,
    "refuted": ExitCode.REFUTED,
    "inconclusive": ExitCode.INCONCLUSIVE,
}


def check_exit_code(verdict: str, expect: str | None = None) -> ExitCode:
    """The exit code of ``ncverify check``: with ``expect`` (``--expect VERDICT``) SUCCESS when ``verdict`` equals
    it and DIFFERS otherwise; without, SUCCESS / REFUTED / INCONCLUSIVE for verified / refuted / inconclusive."""
    if verdict not in CHECK_VERDICT_CODES:
        raise ValueError(f"unknown verdict {verdict!r}; known: {', '.join(CHECK_VERDICT_CODES)}")
    if expect is not None:
        return ExitCode.SUCCESS if verdict == expect else ExitCode.DIFFERS
    return CHECK_VERDICT_CODES[verdict]


__all__ = ["ExitCode", "CHECK_VERDICT_CODES", "check_exit_code"]
