"""THE assumption builder: a theorem's stated assumptions as a validator that names the first violated one."""
from __future__ import annotations

from typing import Callable, Sequence

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.errors import InvalidInstanceError


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise InvalidInstanceError(msg)


def assumptions(tid: str, *, loss: str, balanced: bool = False, depths: Sequence[int] | None = None,
                bias: bool | None = False, lam_b: str | None = None, activation: str | None = None,
                classes: tuple[int, int] | None = None) -> Callable[[Instance], None]:
    """A validator for theorem ``tid``; it raises InvalidInstanceError naming the first violated condition.

    loss: the loss base name ("mse", "ce", "ce-ls", ...; parameters after ":" are not compared);
    balanced: n_1 = ... = n_K; depths: the allowed depths M (None = any; an activation implies M = 2);
    bias: True / False = the last-layer bias must / must not be there (None = either);
    lam_b: "zero" (unregularized bias), "positive" (lambda_b > 0 whenever a bias is used) or None;
    activation: None (deep linear model), "identity" / "relu" (the extended UFM, M = 2) or "relu-deep" (the DUFM, the
    depths it allows given by ``depths``); classes: (min, max) of K when the
    statement is restricted (None = any K >= 2).
    Width d >= K is always required (orthogonal frames and simplex ETFs of K class means need it).
    """
    def check(inst: Instance) -> None:
        base = str(inst.loss).partition(":")[0]
        what = f"the {loss.upper()} loss" if loss in ("mse", "ce") else f"the loss {loss}"
        _require(base == loss, f"{tid} is about {what}, got --loss {inst.loss}")
        _require(inst.activation == activation,
                 f"{tid} needs activation {activation or 'none (deep linear model)'}, got {inst.activation or 'none'}")
        if activation in ("identity", "relu"):
            _require(inst.depth == 2, f"{tid} is the extended UFM with two weight layers: needs depth M = 2, got {inst.depth}")
        if depths is not None:
            allowed = list(depths)
            _require(inst.depth in allowed, f"{tid} is the plain UFM: needs depth M = 1, got {inst.depth}" if allowed == [1]
                     else f"{tid} needs depth M in {allowed}, got {inst.depth}")
        if bias is not None:
            _require(inst.bias == bias, f"{tid} needs {'a' if bias else 'no'} last-layer bias{' (--bias)' if bias else ''}")
        if lam_b == "zero":
            _require(inst.lam_b == 0, f"{tid}: the bias is unregularized, needs lambda_b = 0, got {inst.lam_b}")
        elif lam_b == "positive" and inst.bias:
            _require(inst.lam_b > 0, f"{tid} needs lambda_b > 0 when a bias is used, got {inst.lam_b}")
        if classes is not None:
            _require(classes[0] <= inst.K <= classes[1],
                     f"{tid} is stated for {classes[0]} <= K <= {classes[1]} classes, got K = {inst.K}")
        if balanced:
            _require(inst.balanced, f"{tid} needs balanced classes, got counts {list(inst.counts)}")
        _require(inst.width >= inst.K, f"{tid} needs width d >= K, got d = {inst.width} < K = {inst.K}")
    return check
