"""Reduction lemmas: each theorem family's full objective reduces to the scalar problem the theory
engine solves (``theory.derive``), and the per-mode minimizer is monotone in the label strength
(which classes stay nonzero under imbalance).

Symbols -> names: f (full objective, ``numerics.models.objective``), f* (the derived reduced
minimum, ``theory.derive(family, inst).objective``), the constructed point (``theory.construct``),
phi(z; y) = (y - z)^2/(2N) + ((M+1)/2) L z^{2/(M+1)} (``theory.reduced.mode_objective(M)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import tolerances as tl
from ncverify.proofs_checks.lemmas.core import (EPS, SAFETY, Ctx, Outcome, Property, Trial, run_property, skipped,
                                             symbolic_outcome)

DPS = 40


@dataclass(frozen=True)
class Family:
    """A reduction: the family the theory engine derives (``derive_family``), the model the objective
    is evaluated on (``activation``), the theorems whose proofs reduce this way, and random instances."""

    key: str
    derive_family: str
    theorems: tuple[str, ...]
    make: Callable[[np.random.Generator], Instance]


def _lam(rng: np.random.Generator, lo: float = 3e-3, hi: float = 5e-2) -> float:
    return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")


def _mk_mse(rng):
    K = int(rng.integers(2, 4))
    M = int(rng.integers(1, 4))
    return Instance.create([int(rng.integers(1, 5)) for _ in range(K)], width=K + int(rng.integers(0, 2)), depth=M,
                           lam_w=[_lam(rng) for _ in range(M)], lam_h=_lam(rng))


def _mk_bias(rng):
    K = int(rng.integers(2, 4))
    M = int(rng.integers(1, 3))
    return Instance.create([int(rng.integers(1, 4))] * K, width=K + int(rng.integers(0, 2)), depth=M,
                           lam_w=[_lam(rng) for _ in range(M)], lam_h=_lam(rng), bias=True)


def _mk_ce(rng):
    # K <= 3, M <= 2, n <= 2, lambdas <= 5e-2: ell <= 2^(1/3) 0.05 = 0.063, inside the ETF region (K = 3, M = 2: the
    # ETF wins below ell = 0.1735; K = 2 and M = 1: everywhere below collapse), where this reduction is claimed
    K = int(rng.integers(2, 4))
    M = int(rng.integers(1, 3))
    return Instance.create([int(rng.integers(1, 3))] * K, width=K, depth=M, lam_w=[_lam(rng) for _ in range(M)],
                           lam_h=_lam(rng), loss="ce")


def _mk_ce_deep(rng):
    K = int(rng.integers(3, 6))
    M = int(rng.integers(1, 5))
    return Instance.create([int(rng.integers(1, 4))] * K, width=K, depth=M, lam_w=[_lam(rng, 1e-4) for _ in range(M)],
                           lam_h=_lam(rng, 1e-4), loss="ce")


def _mk_ext(activation: str):
    def mk(rng):
        K = int(rng.integers(2, 4))
        return Instance.create([int(rng.integers(1, 3))] * K, width=K, depth=2, lam_w=[_lam(rng), _lam(rng)],
                               lam_h=_lam(rng), activation=activation)
    return mk


FAMILIES = {
    "mse-deep": Family("mse-deep", "mse-deep", ("dang2023.mse-deep", "tirer2022.mse-ufm"), _mk_mse),
    "mse-deep-bias": Family("mse-deep-bias", "mse-deep-bias", ("dang2023.mse-deep-bias", "tirer2022.mse-ufm-bias"),
                            _mk_bias),
    "ce-deep-etf": Family("ce-deep-etf", "ce-deep-etf", ("ce-deep-etf-boundary",), _mk_ce),
    "ce-deep": Family("ce-deep", "ce-deep", ("dang2023.ce-deep", "ce-deep-etf-boundary"), _mk_ce_deep),
    "extended-linear": Family("extended-linear", "extended-linear", ("tirer2022.extended-linear",), _mk_ext("identity")),
    "extended-relu": Family("extended-relu", "extended-linear", ("tirer2022.extended-relu",), _mk_ext("relu")),
}


#: the fewest solver starts on a recorded counterexample (the default search budget's starts)
RECORDED_STARTS = 3


def _recorded_refuted(fam: Family, inst: Instance) -> bool:
    """Does a theorem of ``fam`` record a refutation on ``inst``?"""
    from ncverify.proofs_checks.catalogue import THEOREMS

    return any(t.id in fam.theorems and t.expected.instance_verdict(inst) == "refuted" for t in THEOREMS)


def _example_instances(fam: Family) -> list[Instance]:
    """The catalogue's fixed examples of the family's theorems (read only)."""
    from ncverify.proofs_checks.catalogue import THEOREMS

    out = []
    for t in THEOREMS:
        if t.id in fam.theorems:
            out.extend(t.examples)
    if fam.derive_family == "ce-deep-etf":  # the ETF reduction holds only where the ETF wins
        from ncverify.proofs_checks.catalogue.ce_geometry import on_etf_side

        out = [i for i in out if on_etf_side(i)]
    return out


def _derive(fam: Family, inst: Instance):
    from ncverify.theory.derive import derive

    src = inst.with_(activation="identity") if inst.activation == "relu" else inst
    return derive(fam.derive_family, src, dps=DPS)


def _size(inst: Instance) -> tuple:
    return (inst.K, inst.width, inst.depth, inst.N)


def _describe(s: tuple) -> str:
    return f"K = {s[0]}, d = {s[1]}, M = {s[2]}, N = {s[3]}"


def _objective(inst: Instance, point: dict) -> tuple[float, float, str]:
    """f at a float64 point, and twice its evaluation tolerance (``tolerances.evaluation``)."""
    from ncverify.numerics import models
    from ncverify.numerics.diagnostics import objective_scale as _objective_scale

    params = models.Params.from_numpy(point)
    f = float(models.objective(inst, params).detach())
    P = sum(int(np.asarray(w).size) for w in point["weights"]) + int(np.asarray(point["H"]).size)
    t = tl.evaluation(_objective_scale(inst, params), P)
    return f, 2 * t.value, "2 x " + t.origin


def _point(m: dict) -> dict:
    b = m.get("b")
    return {"weights": [np.asarray(w, float) for w in m["W"]], "H": np.asarray(m["H"], float),
            "b": None if b is None else np.asarray(b, float).reshape(-1)}


def check_reduction(key: str, ctx: Ctx) -> list[Outcome]:
    """For the family ``key``: symbolic (SymPy proof that the exactly constructed point has objective f*
    and zero gradient; for the extended model also that s = identity is the 3-factor deep form),
    constructed float64 point (== f*), random points and perturbations of the constructed point
    (>= f*), and seeded multi-start L-BFGS end points (>= f*)."""
    from ncverify.theory import construct, reduced

    fam = FAMILIES[key]
    b = ctx.budget
    rng = ctx.rng(f"reduction/{key}")
    examples = list(_example_instances(fam))
    # the first examples, and always those a theorem using this reduction records as refuted: its counterexamples,
    # solved with at least RECORDED_STARTS starts (the number the theorem-level search used when it found them)
    recorded = {i for i in examples if _recorded_refuted(fam, i)}
    insts = examples[: max(1, b.solver_instances)] + [i for i in examples[max(1, b.solver_instances):] if i in recorded]
    insts += [fam.make(rng) for _ in range(b.solver_instances)]
    insts = sorted(insts, key=_size)
    preds = {}
    for inst in insts:
        preds[inst] = _derive(fam, inst)
    out: list[Outcome] = []

    if key.startswith("extended"):
        out.append(symbolic_outcome("symbolic: the extended UFM with s = identity is the 3-factor deep linear objective",
                                    lambda: (bool(reduced.extended_linear_as_factor_form()),
                                             "theory.reduced.extended_linear_as_factor_form (K = 2, d = 2, N = 3)",
                                             {"size": (2, 2, 2, 3), "dims": "K = 2, d = 2, N = 3"})))
    # catalogue examples have short rationals (fast exact SymPy); depth 1 first (the cheapest)
    examples = sorted(_example_instances(fam), key=lambda i: (i.depth, _size(i)))
    sym_inst = examples[0] if examples else insts[0]
    if sym_inst not in preds:
        preds[sym_inst] = _derive(fam, sym_inst)

    def sym():
        rep = construct.verify_construction(preds[sym_inst], sym_inst, exact=True)
        ok = bool(rep.get("objective_equal")) and bool(rep.get("gradient_zero"))
        return (ok, f"{rep.get('backend')}: objective at the exact constructed point == f* "
                    f"({rep.get('objective_status', rep.get('objective_equal'))}), gradient zero: {rep.get('gradient_zero')} "
                    f"on {sym_inst.cli_flags()}",
                {"size": _size(sym_inst), "dims": _describe(_size(sym_inst)), "instance": sym_inst.cli_flags(),
                 "difference": str(rep.get("objective_difference"))})

    name = "exact constructed point: objective == f*, gradient == 0"
    if b.symbolic >= 1 or sym_inst.depth == 1:
        out.append(symbolic_outcome(name, sym))
    else:
        out.append(skipped(name, "SymPy at depth 2 takes about a second; run at the default budget"))

    by_size: dict = {}
    for inst in insts:
        by_size.setdefault(_size(inst), []).append(inst)
    sizes = sorted(by_size)
    rel = "f* (derived reduced minimum) <= f(point)"

    def fstar(inst) -> float:
        return float(preds[inst].objective.value)

    def built(inst) -> dict | None:
        try:
            return _point(construct.construct_numpy(preds[inst], inst))
        except (ValueError, KeyError, TypeError, IndexError, NotImplementedError):
            return None

    def constructed(size) -> Iterable[Trial]:
        for inst in by_size[size]:
            pt = built(inst)
            if pt is None:
                continue
            f, tol, origin = _objective(inst, pt)
            fs = fstar(inst)
            yield Trial(fs, f, tol + abs(fs) * tl.high_precision(DPS, False).value, origin + " + derivation precision",
                        {"instance": inst.cli_flags(), "f*": fs, "f(constructed)": f}, two_sided=True)

    out.append(run_property("float64 constructed point: f == f*", "constructed",
                            Property("f(constructed point) == f*", sizes, _describe), constructed))
    rng_r = ctx.rng(f"reduction/{key}/random")

    def random_t(size) -> Iterable[Trial]:
        from ncverify.numerics import models

        for inst in by_size[size]:
            base = built(inst)
            fs = fstar(inst)
            for i in range(max(6, b.random_trials // 4)):
                kind = i % 3
                if kind == 0 or base is None:
                    s = float(10 ** rng_r.uniform(-2, 0.3))
                    shp = models.shapes(inst)
                    pt = {"weights": [rng_r.standard_normal(sh) * s for sh in shp[:inst.depth]],
                          "H": rng_r.standard_normal(shp[inst.depth]) * s,
                          "b": rng_r.standard_normal(inst.K) * s if inst.bias else None}
                    how = f"random N(0, {s:.3g}^2)"
                elif kind == 1:
                    e = float(10 ** rng_r.uniform(-6, -1))
                    pt = {"weights": [w + e * rng_r.standard_normal(w.shape) for w in base["weights"]],
                          "H": base["H"] + e * rng_r.standard_normal(base["H"].shape),
                          "b": None if base["b"] is None else base["b"] + e * rng_r.standard_normal(base["b"].shape)}
                    how = f"constructed point + {e:.2g} N(0, 1)"
                else:
                    t = float(rng_r.uniform(0.8, 1.2))
                    pt = {"weights": [t * w for w in base["weights"]], "H": t * base["H"], "b": base["b"]}
                    how = f"constructed point with factors scaled by {t:.3f}"
                f, tol, origin = _objective(inst, pt)
                yield Trial(fs, f, tol, origin, {"instance": inst.cli_flags(), "point": how, "f*": fs, "f": f})

    out.append(run_property("random points and perturbations of the constructed point never below f*", "random",
                            Property(rel, sizes, _describe), random_t))

    gaps: list[float] = []

    def solver_t(size) -> Iterable[Trial]:
        from ncverify.numerics.starts import solve_instances

        insts = by_size[size]
        starts = max(b.solver_starts, 6 if any(i.activation == "relu" for i in insts) else 0,
                     RECORDED_STARTS if any(i in recorded for i in insts) else 0)
        for inst, res in zip(insts, solve_instances(insts, solver="lbfgs", starts=starts, seed=ctx.seed)):
            fs = fstar(inst)
            for r in res.runs:
                p = r.params.to_numpy()
                f, tol, origin = _objective(inst, p)
                gaps.append(f - fs)
                yield Trial(fs, f, tol, origin, {"instance": inst.cli_flags(), "run": r.summary(), "f*": fs, "f": f},
                            note=f"best end point above f* by {min(gaps):.2g} (0 = the solvers reach f*)")

    out.append(run_property("multi-start L-BFGS end points never below f*", "solver", Property(rel, sizes, _describe),
                            solver_t))
    return out


# ---------------------------------------------------------------------------------------------
# which classes stay nonzero: monotonicity of the per-mode minimizer
# ---------------------------------------------------------------------------------------------
def _phi(z: np.ndarray, y: float, N: float, L: float, M: int) -> np.ndarray:
    return (y - z) ** 2 / (2 * N) + (M + 1) / 2 * L * np.abs(z) ** (2.0 / (M + 1))


def mode_argmin(y: float, N: float, L: float, M: int) -> float:
    """Global minimizer of phi(.; y) on [0, y] (phi increases beyond y): a 4001-point grid, then golden
    section on the bracket around the best grid point (ties go to the smaller z)."""
    z = np.linspace(0.0, y, 4001)
    v = _phi(z, y, N, L, M)
    i = int(np.argmin(v))
    lo, hi = z[max(i - 1, 0)], z[min(i + 1, len(z) - 1)]
    g = (math.sqrt(5) - 1) / 2
    a, c = lo, hi
    for _ in range(80):
        x1, x2 = c - g * (c - a), a + g * (c - a)
        if _phi(np.array(x1), y, N, L, M) <= _phi(np.array(x2), y, N, L, M):
            c = x2
        else:
            a = x1
    zr = (a + c) / 2
    return float(zr if _phi(np.array(zr), y, N, L, M) <= v[i] else z[i])


def check_class_selection(ctx: Ctx) -> list[Outcome]:
    """Symbolic: d^2 phi / (dz dy) = -1/N < 0 (strictly decreasing differences: Topkis' monotone
    comparative statics). Numeric: z*(y) nondecreasing over random label strengths and over pairs
    straddling the jump (the global threshold where the minimizer leaves 0)."""
    import sympy as sp

    from ncverify.theory import reduced as R

    b = ctx.budget

    def sym():
        bad = []
        for M in range(1, b.max_factors + 1):
            d = sp.simplify(sp.diff(R.mode_objective(M), R.z, R.y) + 1 / R.N)
            if d != 0:
                bad.append((M, sp.sstr(d)))
        return (not bad, f"d^2 phi/(dz dy) + 1/N == 0 for M = 1..{b.max_factors} (theory.reduced.mode_objective)",
                {"size": (bad[0][0],) if bad else (0,), "dims": f"M = {bad[0][0]}" if bad else "",
                 "difference": bad[0][1] if bad else "0"})

    out = [symbolic_outcome("symbolic: decreasing differences of phi(z; y)", sym)]
    sizes = [(M,) for M in range(1, b.max_factors + 1)]
    rel = "z*(y_1) <= z*(y_2) for y_1 < y_2 (global minimizers of the per-mode problem)"
    tol = SAFETY * math.sqrt(EPS)
    origin = f"argmin of a 1-D float64 minimization: {SAFETY:g} sqrt(eps) relative to y"

    def pair(y1, y2, N, L, M, how) -> Trial:
        z1, z2 = mode_argmin(y1, N, L, M), mode_argmin(y2, N, L, M)
        return Trial(z1, z2, tol * max(y1, y2), origin, {"M": M, "N": N, "L": L, "y_1": y1, "y_2": y2, "z*(y_1)": z1,
                                                         "z*(y_2)": z2, "pair": how})

    rng = ctx.rng("class-selection/random")

    def random_t(size) -> Iterable[Trial]:
        M = size[0]
        for _ in range(max(2, b.random_trials // 4)):
            N, L = float(rng.integers(2, 30)), float(10 ** rng.uniform(-3, -1))
            ys = np.sort(10 ** rng.uniform(-1, 1.5, 8))
            for y1, y2 in zip(ys[:-1], ys[1:]):
                yield pair(float(y1), float(y2), N, L, M, "random")

    out.append(run_property("random label strengths", "random", Property(rel, sizes, lambda s: f"M = {s[0]}"), random_t))
    rng_a = ctx.rng("class-selection/adversarial")

    def near_jump(size) -> Iterable[Trial]:
        M = size[0]
        for _ in range(max(2, b.random_trials // 8)):
            N, L = float(rng_a.integers(2, 30)), float(10 ** rng_a.uniform(-3, -1))
            lo, hi = 1e-3, 1e3
            if mode_argmin(hi, N, L, M) == 0.0:
                continue
            for _ in range(60):  # bisection for the jump of z*(y) away from 0
                mid = math.sqrt(lo * hi)
                if mode_argmin(mid, N, L, M) > 0:
                    hi = mid
                else:
                    lo = mid
            for r in (1e-6, 1e-4, 1e-2):
                yield pair(hi * (1 - r), hi * (1 + r), N, L, M, f"straddling the jump at y = {hi:.6g} (+-{r:g})")

    out.append(run_property("pairs straddling the jump of z*(y)", "adversarial",
                            Property(rel, sizes, lambda s: f"M = {s[0]}"), near_jump))
    return out
