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
