"""Second example variant: the multiclass squared hinge loss, written with sp.Max.

    l(z, y) = sum_{c != y} max(0, 1 - (z_y - z_c))^2

It exercises the SymPy -> torch bridge on Max (SymPy 1.14's own torch printer mistranslates Max/Min; the
bridge maps sp.Max to torch.maximum itself) and a piecewise reduced problem (no closed form is attempted:
the stationary point comes from certified brackets). Run:

    ncverify check --theorems examples/squared_hinge.py mine.sq-hinge --classes 3 --per-class 2 --lam-w 1e-2 --lam-h 1e-2
"""
import sympy as sp

from ncverify import LossVariant, etf_claim, variant_theorem


def squared_hinge(z: sp.Matrix, y: int, K: int) -> sp.Expr:
    return sp.Add(*[sp.Max(0, 1 - (z[y] - z[c])) ** 2 for c in range(K) if c != y])


VARIANT = LossVariant("sq-hinge", loss="sqhinge", sympy_loss=squared_hinge,
                      description="multiclass squared hinge sum_{c != y} max(0, 1 - (z_y - z_c))^2")

THEOREMS = [
    variant_theorem(VARIANT, id="mine.sq-hinge", title="Multiclass squared hinge, plain UFM: simplex ETF",
                    source="example file (examples/squared_hinge.py)", claim=etf_claim(VARIANT)),
]
