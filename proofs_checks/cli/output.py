"""Output helpers of the command line: JSON (NaN/inf as null), number formatting, consoles that never wrap copied
lines, and reasons shortened without splitting a number.

Copied output never wraps: JSON is printed with ``print`` (no console); ``console()`` gives a rich Console of the
terminal's width on a terminal and of unlimited width when piped or redirected (``COLUMNS`` is then ignored), so
piped tables and lines are never folded; ``print_copyable`` prints a line (a reproduce command, an id) with soft
wrap (never broken by rich, whatever the width; a terminal shows it soft-wrapped and copies it as one line).
"""
from __future__ import annotations

import json
import math
from typing import Any

# the width of a console whose output is piped: wide enough that nothing is ever wrapped
UNWRAPPED_WIDTH = 1_000_000


def _json_default(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _finite_or_none(x: Any) -> Any:
    """JSON cannot hold NaN/inf: map them to None recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


def print_json(data: Any) -> None:
    print(json.dumps(_finite_or_none(data), indent=2, default=_json_default))


def fmt(v: Any, digits: int = 6) -> str:
    """A number (or list of numbers) with ``digits`` significant digits; "-" for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)


def console(stderr: bool = False):
    """A rich Console for stdout (or stderr): the terminal's width on a terminal; unlimited width otherwise, so
    that piped or redirected output is never wrapped (``COLUMNS`` does not apply to it). A closed pipe raises
    BrokenPipeError (the CLI's main ends quietly with ExitCode.BROKEN_PIPE) instead of rich's own exit code 1."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    con = _Console(stderr=stderr)
    if not con.is_terminal:
        con = _Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)
    return con


def print_copyable(con, text: str, style: str | None = None) -> None:
    """Print ``text`` (a reproduce command, an id, flags) on one line that rich never wraps or crops."""
    con.print(text, soft_wrap=True, markup=False, highlight=False, emoji=False, style=style)


def shorten(text: str, limit: int = 200, ellipsis: str = " \N{HORIZONTAL ELLIPSIS}") -> str:
    """``text`` if it has at most ``limit`` characters; else its longest prefix that ends at a word boundary
    (whitespace) within ``limit`` characters, followed by ``ellipsis``. Never cuts inside a word, so never inside a
    number (a text without whitespace before ``limit`` keeps its whole first word)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    if cut <= 0:  # one long first word: keep it whole
        cut = text.find(" ")
        if cut < 0:
            return text
    head = text[:cut].rstrip(" ;,:(")
    return head + ellipsis
