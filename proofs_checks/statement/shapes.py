"""Shape claims: qualitative statements about any layer's features or weights, written as short names.

Grammar (``parse``; an unknown kind, layer or geometry is a ValueError when the theorem is made, never ignored):

    nc1:<features>                 within-class variability of that layer's features vanishes (NC1)
    gram:<features>=<geometry>     Gram of that layer's class means: OF, ETF, GOF (orthogonal, any norms) or zero
    gram:<weights>=<geometry>      Gram of the rows of W = W_M...W_1 ("W") or of the last layer W_M ("W_M")
    self_duality:<features>        A^T proportional to that layer's centered class means, A = the linear map from the
                                   layer to the logits (W_M...W_{j+1} for h_j; W_M...W_2 for "post")
    alignment:<j>                  W_{j+1}^T W_{j+1} commutes with W_j W_j^T (j >= 1) or with H H^T (j = 0): the
                                   factors' singular spaces are aligned

Feature layers: "H" (the free features), "h<j>" (j >= 1: W_j...W_1 H, deep linear layers; for the DUFM, activation
"relu-deep", the features after the j-th ReLU), "hidden" (every h<j>, j = 1..M-1: one claim per layer), "pre"
(W_1 H) and "post" (s(W_1 H), the features after the activation s; "pre" = "post" for the identity). Class means are centered
when the model has a bias, as for the claims' Gram targets.

The older names stay as aliases: ``nc1`` = ``nc1:H``, ``nc1_post`` = ``nc1:post``, ``of_post`` = ``gram:post=OF``,
``self_duality`` = ``self_duality:H``. Whether a layer exists depends on the instance (``h3`` needs depth >= 4,
``pre``/``post`` need depth >= 2); ``layer_error`` names the problem, and a check on such an instance is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ncverify.numerics.problem import Instance

KINDS = ("nc1", "gram", "self_duality", "alignment")
GEOMETRIES = ("OF", "ETF", "GOF", "zero")
ALIASES = {"nc1": "nc1:H", "nc1_post": "nc1:post", "of_post": "gram:post=OF", "self_duality": "self_duality:H"}
_FEATURE = re.compile(r"^(H|h[1-9][0-9]?|hidden|pre|post)$")
_WEIGHTS = ("W", "W_M")


@dataclass(frozen=True)
class ShapeClaim:
    """One parsed shape claim: ``kind`` in KINDS, ``layer`` (a feature layer, "W" / "W_M", or an interface index
    for alignment), ``geometry`` (gram only) and ``name`` as written."""

    kind: str
    layer: str
    geometry: str | None
    name: str

    def describe(self) -> str:
        what = {"nc1": f"NC1 of the features {self.layer}",
                "gram": f"class-mean Gram of {self.layer} is {self.geometry}",
                "self_duality": f"self-duality at {self.layer}",
                "alignment": f"alignment of the factors at interface {self.layer}"}[self.kind]
        return what if self.kind != "gram" or self.layer not in _WEIGHTS else f"row Gram of {self.layer} is {self.geometry}"


def parse(name: str) -> ShapeClaim:
    """``name`` as a ``ShapeClaim``; ValueError naming what is wrong (and the grammar) otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"a shape claim is a string, got {type(name).__name__}")
    full = ALIASES.get(name, name)
    kind, sep, rest = full.partition(":")
    hint = ("; shape claims are nc1:<layer>, gram:<layer>=OF|ETF|GOF|zero, self_duality:<layer>, alignment:<j> "
            f"with layers H, h1, h2, ..., pre, post (and W, W_M for gram), or the aliases {', '.join(ALIASES)}")
    if kind not in KINDS or not sep:
        raise ValueError(f"unknown shape claim {name!r}" + hint)
    if kind == "gram":
        layer, eq, geom = rest.partition("=")
        if not eq or geom not in GEOMETRIES:
            raise ValueError(f"unknown shape claim {name!r}: the geometry must be one of {', '.join(GEOMETRIES)}" + hint)
        if not (_FEATURE.match(layer) or layer in _WEIGHTS):
            raise ValueError(f"unknown shape claim {name!r}: unknown layer {layer!r}" + hint)
        return ShapeClaim(kind, layer, geom, name)
    if kind == "alignment":
        if not re.match(r"^[0-9]{1,2}$", rest):
            raise ValueError(f"unknown shape claim {name!r}: alignment takes an interface index j = 0, 1, ..." + hint)
        return ShapeClaim(kind, rest, None, name)
    if not _FEATURE.match(rest):
        raise ValueError(f"unknown shape claim {name!r}: unknown layer {rest!r}" + hint)
    if kind == "self_duality" and rest in ("pre", "hidden"):
        raise ValueError(f"shape claim {name!r}: the pre-activation features have no linear map to the logits; "
                         "use self_duality:post")
    return ShapeClaim(kind, rest, None, name)


def layer_error(sc: ShapeClaim, inst: Instance) -> str | None:
    """Why ``sc`` names a layer that ``inst`` does not have (None when it has it)."""
    M = inst.depth
    if sc.kind == "alignment":
        j = int(sc.layer)
        return None if j <= M - 1 else f"shape claim {sc.name!r} needs depth M >= {j + 1}, got {M}"
    if sc.layer in ("pre", "post"):
        return None if M >= 2 else f"shape claim {sc.name!r} needs a layer W_1 before the classifier (depth >= 2), got {M}"
    if sc.layer == "hidden":
        if inst.activation == "relu":
            return f"shape claim {sc.name!r}: the ReLU model's layers are H, pre and post"
        return None if M >= 2 else f"shape claim {sc.name!r} needs a hidden layer (depth >= 2), got {M}"
    if sc.layer.startswith("h"):
        j = int(sc.layer[1:])
        if inst.activation == "relu":
            return f"shape claim {sc.name!r}: the ReLU model's layers are H, pre and post"
        return None if j <= M - 1 else f"shape claim {sc.name!r} needs depth M >= {j + 1}, got {M}"
    return None


def expand(sc: ShapeClaim, inst: Instance) -> list[ShapeClaim]:
    """A claim about "hidden" as one claim per hidden layer h1..h_{M-1} of ``inst``; any other claim as itself."""
    if sc.layer != "hidden":
        return [sc]
    out = []
    for j in range(1, inst.depth):
        name = sc.name.replace("hidden", f"h{j}")
        out.append(ShapeClaim(sc.kind, f"h{j}", sc.geometry, name))
    return out
