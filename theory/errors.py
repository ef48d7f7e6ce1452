"""The theory engine's one error type for bad input (no imports, so every layer above can name it)."""


class TheoryInputError(ValueError):
    """A family id or an instance outside a family's assumptions; the message names the violated condition.

    Anything else the theory engine raises is a bug, not bad input."""
