"""The project's errors. The CLI turns exactly these (and the layers' own input errors) into one line and
exit code 2; anything else is a bug and is reported as one (exit code 3)."""
from __future__ import annotations

from ncverify.numerics.problem import InstanceError
from ncverify.theory.errors import TheoryInputError


class NcverifyError(Exception):
    """Base of the verification layer's errors; the message names the violated condition."""


class UsageError(NcverifyError):
    """A command-line usage error (a flag, a combination of flags)."""


class UnknownIdError(NcverifyError):
    """A theorem, lemma or family id that is not known (the message lists the known ones)."""


class InvalidInstanceError(NcverifyError, InstanceError):
    """An instance outside a theorem's stated assumptions (also an ``InstanceError``, like every bad instance)."""


class UserFileError(NcverifyError):
    """A ``--theorems`` file (or a variant definition in it) that cannot be used: it does not exist, does not
    import, defines no THEOREMS, or a theorem or loss variant in it is malformed."""


class VariantError(UserFileError, ValueError):
    """A loss-variant definition violates a stated condition (the message names it)."""


# every error that is bad input, not a bug: numerics' and theory's input errors included
INPUT_ERRORS: tuple[type[BaseException], ...] = (NcverifyError, InstanceError, TheoryInputError)


# ---------------------------------------------------------------------------------------------
# errors raised by a user's own code (a ``--theorems`` file): one line naming the file, the line and the problem
# ---------------------------------------------------------------------------------------------
_USER_FILES: dict[str, str] = {}  # real path of a loaded theorem file -> the path as the user gave it


def register_user_file(path: str) -> None:
    """Remember ``path`` as a user's theorem file: errors raised by code in it are the user's (exit code 2)."""
    import os

    _USER_FILES[os.path.realpath(path)] = str(path)


def user_frame(exc: BaseException, path: str | None = None) -> tuple[str, int] | None:
    """(file as the user gave it, line) of the innermost frame of ``exc``'s traceback that runs code of ``path``
    (default: of any registered user file), following the exception's cause/context chain; None when the error
    never passed through such a file. A SyntaxError in the file itself names its own line."""
    import os
    import traceback

    files = {os.path.realpath(path): str(path)} if path is not None else _USER_FILES
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, SyntaxError) and e.filename and os.path.realpath(e.filename) in files:
            return files[os.path.realpath(e.filename)], int(e.lineno or 0)
        hits = [f for f in traceback.extract_tb(e.__traceback__) if os.path.realpath(f.filename) in files]
        if hits:
            return files[os.path.realpath(hits[-1].filename)], int(hits[-1].lineno or 0)
        e = e.__cause__ or e.__context__
    return None


def user_code_error(exc: BaseException, path: str | None, doing: str) -> "UserFileError":
    """A one-line UserFileError for ``exc`` raised by the user's code: ``FILE:LINE: Type: message (doing)``.
    ``path``: the theorem file the failing code belongs to (its line is found in the traceback); with None, any
    registered user file the traceback passes through."""
    where = user_frame(exc, path)
    if where is None:
        loc = f"{path}: " if path is not None else ""
    else:
        loc = f"{where[0]}:{where[1]}: " if where[1] else f"{where[0]}: "
    msg = " ".join(str(exc).split())
    if isinstance(exc, SyntaxError):
        msg = exc.msg or msg
    return UserFileError(f"{loc}{type(exc).__name__}: {msg}" + (f" ({doing})" if doing else ""))
