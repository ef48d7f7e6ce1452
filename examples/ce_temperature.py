"""Tutorial variant (README.md, "Tutorial: checking a claim about a new loss"): cross-entropy with a temperature T.

    l(z, y) = log sum_c exp(z_c / T) - z_y / T          (T > 0; T = 1 is the plain cross-entropy)

Run it:
    ncverify check --theorems examples/ce_temperature.py mine.ce-temperature --classes 3 --per-class 2 \
        --lam-w 1e-2 --lam-h 1e-2 --loss ce-temp:2
    ncverify derive --theorems examples/ce_temperature.py ce-temperature --classes 3 --per-class 2 --loss ce-temp:2
    ncverify run --theorems examples/ce_temperature.py --only mine.ce-temperature --out /tmp/mine-report
"""
import sympy as sp

from ncverify import LossVariant, Param, etf_claim, logsumexp, variant_theorem


# (a) the loss, once, as a SymPy expression of the logits z (a K x 1 Matrix z_1..z_K) and the class index y
def ce_temperature(z: sp.Matrix, y: int, K: int, T: sp.Expr) -> sp.Expr:
    return logsumexp([zc / T for zc in z]) - z[y] / T


VARIANT = LossVariant(
    "ce-temperature",                      # the theory family: `ncverify derive ce-temperature ...`
    loss="ce-temp",                        # the numeric loss: `--loss ce-temp:T`
    sympy_loss=ce_temperature,             # torch version: translated from the SymPy expression and checked
    params=(Param("T", lambda v: v > 0, "temperature T must be > 0", example=2.0),),
    description="CE with temperature: log sum_c exp(z_c/T) - z_y/T",
)

# (b) the claim, in a few lines: the natural conjecture "the minimizer is the simplex ETF with the derived
# margin". (To state a closed form instead, pass margin=lambda inst: <your margin a>.)
claim = etf_claim(VARIANT, statement="CE with temperature: simplex ETF, margin minimizing the reduced problem")

# (c) the theorem(s) the CLI sees
THEOREMS = [
    variant_theorem(
        VARIANT, id="mine.ce-temperature", title="CE with temperature T, plain UFM: simplex ETF",
        source="tutorial example (README.md, 'Tutorial: checking a claim about a new loss')", claim=claim,
        param_values=[(2.0,), (0.5,)],     # the temperatures the search draws from
    ),
]
