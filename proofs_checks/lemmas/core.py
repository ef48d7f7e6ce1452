"""Machinery shared by the lemma checks: budgets, seeded generators, outcomes, counterexamples and
the property runner (random instances plus adversarial local optimization of the violation).

Conventions.

* Every numeric claim is written ``lhs <= rhs`` (an inequality) or ``lhs == rhs`` (an equality,
  ``Trial.two_sided``). A *trial* evaluates both sides in float64 numpy at one concrete instance and
  carries the tolerance derived for exactly those numbers (float64 rounding of the compared
  quantities, ``proofs_checks.tolerances`` style: a value plus the sentence that derives it).
  The violation is ``lhs - rhs`` (or ``|lhs - rhs|``); a trial fails only when the violation exceeds
  its tolerance.
* Sizes are tuples ordered "smallest first": the runner walks them in that order and stops at the
  first size where some trial fails, so the counterexample it reports has the smallest dimensions
  that the search reached.
* The adversarial search (``ascend``) only *proposes* points: torch drives the local optimization,
  then every proposal is re-evaluated independently in numpy float64 as a trial.
"""
from __future__ import annotations

import math
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ncverify.proofs_checks import tolerances as tl

EPS = tl.EPS
SAFETY = tl.SAFETY
STATUSES = ("pass", "fail", "unsettled", "info")


# ---------------------------------------------------------------------------------------------
# budgets and randomness
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LemmaBudget:
    """How hard each lemma is tried.

    random_trials: random instances per size; adversarial_starts: local-optimization starts per size
    (batched); adversarial_steps: optimizer steps per start; max_dim: largest matrix side searched by
    the matrix lemmas; max_factors: largest number of factors m in the factorization identity;
    solver_instances / solver_starts: full-objective instances (and random starts each) solved by
    ``numerics.solvers``; integer_limit: largest number of small-integer matrices enumerated when a
    counterexample is simplified; symbolic: 0 = only the SymPy checks that take well under a second
    (quick), 1 = the standard set, 2 = also the slower, larger identities.
    """

    name: str
    random_trials: int
    adversarial_starts: int
    adversarial_steps: int
    max_dim: int
    max_factors: int
    solver_instances: int
    solver_starts: int
    integer_limit: int
    symbolic: int

    @staticmethod
    def of(name: str) -> "LemmaBudget":
        table = {
            "quick": LemmaBudget("quick", 12, 12, 120, 3, 3, 1, 2, 20_000, 0),
            "default": LemmaBudget("default", 40, 32, 250, 4, 4, 2, 3, 20_000, 1),
            "thorough": LemmaBudget("thorough", 300, 96, 600, 5, 5, 5, 5, 300_000, 2),
        }
        if name not in table:
            from ncverify.numerics.problem import InstanceError

            raise InstanceError(f"budget must be one of {', '.join(table)}, got {name!r}")
        return table[name]


@dataclass(frozen=True)
class Ctx:
    """What a check receives: the budget and the run's seed. ``rng(tag)`` / ``torch_gen(tag)`` give
    generators seeded from (seed, crc32(tag)), so every check has its own reproducible stream."""

    budget: LemmaBudget
    seed: int = 0

    def _key(self, tag: str) -> int:
        return (zlib.crc32(tag.encode()) ^ (self.seed * 0x9E3779B1)) & 0x7FFFFFFF

    def rng(self, tag: str) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(tag.encode())]))

    def torch_gen(self, tag: str):
        import torch

        return torch.Generator().manual_seed(self._key(tag))


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
def _clean(x: Any) -> Any:
    """JSON-ready: numpy arrays -> nested lists, non-finite floats -> None."""
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        return _clean(x.item())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass
class Counterexample:
    """A point where the claimed relation fails beyond its tolerance.

    size: ordering key (smaller = simpler); dims: the dimensions in words; relation: the claimed
    relation "lhs <= rhs" / "lhs == rhs" in the lemma's symbols; lhs, rhs: its two sides (float64);
    violation = lhs - rhs (or |lhs - rhs|) and the tolerance it exceeds; data: the numbers (matrices,
    lambdas, ...); exact: a high-precision / exact re-check of the same point when available.
    """

    size: tuple
    dims: str
    relation: str
    lhs: float | None
    rhs: float | None
    violation: float | None
    tolerance: float | None
    data: dict = field(default_factory=dict)
    exact: dict | None = None
    found_by: str = ""
    origin: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["size"] = list(self.size)
        return _clean(d)

    def summary(self) -> str:
        if self.lhs is None:
            return f"{self.dims}: {self.relation} fails ({self.found_by})"
        return (f"{self.dims}: {self.relation} fails: lhs = {self.lhs:.12g}, rhs = {self.rhs:.12g}, "
                f"violation {self.violation:.3g} > tol {self.tolerance:.3g} ({self.found_by})")


@dataclass
class Outcome:
    """One check of a lemma. kind: "symbolic", "random", "adversarial", "constructed" or "solver";
    status: "pass", "fail", "unsettled" or "info"; tries: instances evaluated; error / tolerance:
    the worst trial (largest violation / tolerance ratio) and its tolerance; origin: how that
    tolerance was derived."""

    check: str
    kind: str
    status: str
    tries: int = 0
    error: float | None = None
    tolerance: float | None = None
    origin: str = ""
    detail: str = ""
    counterexample: Counterexample | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return _clean({"check": self.check, "kind": self.kind, "status": self.status, "tries": self.tries,
                       "error": self.error, "tolerance": self.tolerance, "origin": self.origin,
                       "detail": self.detail, "seconds": round(self.seconds, 3),
                       "counterexample": None if self.counterexample is None else self.counterexample.to_json()})


@dataclass
class Trial:
    """One evaluated instance of a claimed relation ``lhs <= rhs`` (``two_sided``: ``lhs == rhs``).

    tol / origin: the float64 rounding tolerance of the compared quantities and its derivation;
    data: the numbers (kept for the counterexample); note: free text (e.g. how close a descent got).
    """

    lhs: float
    rhs: float
    tol: float
    origin: str
    data: dict = field(default_factory=dict)
    two_sided: bool = False
    note: str = ""

    @property
    def violation(self) -> float:
        v = abs(self.lhs - self.rhs) if self.two_sided else self.lhs - self.rhs
        return v if math.isfinite(v) else math.inf

    @property
    def failed(self) -> bool:
        return self.violation > self.tol

    @property
    def ratio(self) -> float:
        return self.violation / self.tol if self.tol > 0 else (math.inf if self.violation > 0 else 0.0)


# ---------------------------------------------------------------------------------------------
# the property runner
# ---------------------------------------------------------------------------------------------
@dataclass
class Property:
    """A numeric relation checked size by size.

    relation: the relation in words ("||relu(X)||_* <= ||X||_*"); sizes: the sizes, smallest first;
    describe(size): the dimensions in words; trials(size, ctx, tag): an iterable of ``Trial`` for one
    size (random instances, adversarial proposals or constructed points, depending on the check);
    evaluate(data): re-evaluates a data dict as a ``Trial`` (used when simplifying a counterexample);
    integer_candidates(size, limit): small-integer instances of that size (data dicts), or None;
    exact(data): a high-precision re-check of a counterexample, or None.
    """

    relation: str
    sizes: Sequence[tuple]
    describe: Callable[[tuple], str]
    evaluate: Callable[[dict], Trial] | None = None
    integer_candidates: Callable[[tuple, int], Iterable[dict] | None] | None = None
    exact: Callable[[dict], dict | None] | None = None


def run_property(name: str, kind: str, prop: Property, trials: Callable[[tuple], Iterable[Trial]],
                 stop_at_failure: bool = True) -> Outcome:
    """Evaluate ``trials(size)`` for every size of ``prop`` (smallest first). At the first size with a
    failing trial (when ``stop_at_failure``) the search stops; the counterexample is the failing
    trial with the largest violation at that size, simplified to small integers when possible."""
    t0 = time.perf_counter()
    tries = 0
    worst: Trial | None = None
    fails: list[tuple[tuple, Trial]] = []
    notes: list[str] = []
    for size in prop.sizes:
        size_fails: list[Trial] = []
        for tr in trials(size):
            tries += 1
            if worst is None or tr.ratio > worst.ratio:
                worst = tr
            if tr.failed:
                size_fails.append(tr)
            if tr.note:
                notes.append(tr.note)
        if size_fails:
            fails.append((size, max(size_fails, key=lambda t: t.violation)))
            if stop_at_failure:
                break
    out = Outcome(name, kind, "pass", tries=tries)
    if worst is not None:  # error = how far the worst try went past its claimed side (0 if it stayed inside)
        out.error, out.tolerance, out.origin = max(worst.violation, 0.0), worst.tol, worst.origin
    if fails:
        size, tr = fails[0]
        out.status = "fail"
        out.counterexample = _counterexample(prop, size, tr, f"{kind}: {name}")
        out.detail = f"smallest failing size {prop.describe(size)}"
    elif tries == 0:
        out.status = "unsettled"
        out.detail = "no instance could be evaluated"
    else:
        out.detail = f"{tries} instances over {len(prop.sizes)} sizes (up to {prop.describe(prop.sizes[-1])})"
    if notes:
        out.detail += "; " + notes[-1]
    out.seconds = time.perf_counter() - t0
    return out


def _counterexample(prop: Property, size: tuple, tr: Trial, found_by: str) -> Counterexample:
    simple = simplify(prop, size, tr)
    tr2, how = (simple if simple is not None else (tr, found_by))
    ce = Counterexample(size=size, dims=prop.describe(size), relation=prop.relation, lhs=tr2.lhs, rhs=tr2.rhs,
                        violation=tr2.violation, tolerance=tr2.tol, data=dict(tr2.data), found_by=how,
                        origin=tr2.origin)
    if prop.exact is not None:
        try:
            ce.exact = prop.exact(tr2.data)
        except Exception as exc:  # pragma: no cover - the exact re-check is an extra
            ce.exact = {"error": f"{type(exc).__name__}: {exc}"}
    if simple is not None:
        ce.data["found_first"] = {"lhs": tr.lhs, "rhs": tr.rhs, "violation": tr.violation, "data": _clean(tr.data)}
    return ce


def simplify(prop: Property, size: tuple, tr: Trial, limit: int = 20_000) -> tuple[Trial, str] | None:
    """A simpler failing instance of the same size: small-integer matrices (entries in {-1, 0, 1},
    enumerated when there are at most ``limit`` of them; the failing one with the smallest sum of
    |entries|, then the largest violation). None when no integer instance fails."""
    if prop.integer_candidates is None or prop.evaluate is None:
        return None
    cands = prop.integer_candidates(size, limit)
    if cands is None:
        return None
    best: tuple[tuple, Trial] | None = None
    for data in cands:
        t = prop.evaluate(data)
        if t.failed:
            mats = [np.asarray(v) for v in data.values() if isinstance(v, np.ndarray)]
            l1 = sum(float(np.abs(v).sum()) for v in mats)
            asym = sum(1 for v in mats if v.shape[0] != v.shape[1] or not np.array_equal(v, v.T))
            key = (l1, asym, -t.violation)
            if best is None or key < best[0]:
                best = (key, t)
    if best is None:
        return None
    return best[1], ("simplified: among the failing matrices with entries in {-1, 0, 1}, the smallest sum of "
                     "|entries| (symmetric preferred)")


def integer_matrices(shapes: Sequence[tuple[str, tuple[int, int]]], limit: int) -> Iterable[dict] | None:
    """Every assignment of entries in {-1, 0, 1} to the named matrices (None if more than ``limit``)."""
    sizes = [r * c for _, (r, c) in shapes]
    total = 3 ** sum(sizes)
    if total > limit:
        return None

    def gen():
        n = sum(sizes)
        for code in range(total):
            vals = np.empty(n)
            c = code
            for i in range(n):
                vals[i] = c % 3 - 1
                c //= 3
            out, k = {}, 0
            for (nm, (r, cc)), s in zip(shapes, sizes):
                out[nm] = vals[k:k + s].reshape(r, cc).copy()
                k += s
            yield out
    return gen()


def skipped(name: str, why: str) -> Outcome:
    """A check not run at this budget (information only: never part of a verdict)."""
    return Outcome(name, "symbolic", "info", detail=f"skipped: {why}")


def symbolic_outcome(name: str, fn: Callable[[], tuple[bool, str, dict]], relation: str = "") -> Outcome:
    """Run a SymPy decision ``fn() -> (holds, detail, data)``: pass when SymPy proves the identity,
    fail (with the nonzero symbolic difference as counterexample) when it does not vanish, unsettled
    when SymPy raises."""
    t0 = time.perf_counter()
    try:
        holds, detail, data = fn()
    except Exception as exc:  # SymPy could not decide: never a verdict either way
        return Outcome(name, "symbolic", "unsettled", detail=f"SymPy could not decide: {type(exc).__name__}: {exc}",
                       seconds=time.perf_counter() - t0)
    out = Outcome(name, "symbolic", "pass" if holds else "fail", tries=1, error=0.0 if holds else None,
                  tolerance=0.0, origin="exact (SymPy: the difference simplifies to 0)", detail=detail,
                  seconds=time.perf_counter() - t0)
    if not holds:
        out.counterexample = Counterexample(size=tuple(data.get("size", (0,))), dims=str(data.get("dims", "symbolic")),
                                            relation=relation or name, lhs=None, rhs=None, violation=None,
                                            tolerance=0.0, data={k: v for k, v in data.items() if k not in ("size", "dims")},
                                            found_by="symbolic: nonzero difference")
    return out


# ---------------------------------------------------------------------------------------------
# adversarial local optimization (torch)
# ---------------------------------------------------------------------------------------------
def ascend(params: list, objective: Callable[[list], Any], steps: int, lr: float = 0.02) -> list:
    """Maximize ``objective`` (a batched function returning one value per start, shape (S,)) by Adam
    from the batched starting tensors ``params``; returns, per start, the parameters at the best value
    seen (detached). Non-finite values are ignored."""
    import torch

    ps = [p.detach().clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(ps, lr=lr)
    with torch.no_grad():
        best_val = torch.full((ps[0].shape[0],), -math.inf, dtype=ps[0].dtype)
        best = [p.detach().clone() for p in ps]
    for _ in range(steps + 1):
        val = objective(ps)
        with torch.no_grad():
            v = torch.where(torch.isfinite(val), val, torch.full_like(val, -math.inf))
            better = v > best_val
            best_val = torch.where(better, v, best_val)
            for b, p in zip(best, ps):
                b[better] = p.detach()[better]
        loss = -torch.where(torch.isfinite(val), val, torch.zeros_like(val)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return best


# ---------------------------------------------------------------------------------------------
# tolerance helpers (float64 rounding of the compared quantities)
# ---------------------------------------------------------------------------------------------
def svd_error(X: np.ndarray) -> float:
    """Absolute error bound of each computed singular value of X (LAPACK's backward-stable SVD plus
    Weyl's inequality): SAFETY * max(p, q) * eps * ||X||_2."""
    if X.size == 0:
        return 0.0
    return SAFETY * max(X.shape) * EPS * float(np.linalg.norm(X, 2))


def product_error(factors: Sequence[np.ndarray]) -> float:
    """||fl(A_m ... A_1) - A_m ... A_1||_F <= (m-1) d_max eps prod ||A_i||_F, times SAFETY."""
    if len(factors) <= 1:
        return 0.0
    dmax = max(max(A.shape) for A in factors)
    return SAFETY * (len(factors) - 1) * dmax * EPS * float(np.prod([np.linalg.norm(A) for A in factors]))


def sum_error(total: float, n: int) -> float:
    """Rounding of a float64 sum of n nonnegative terms: SAFETY * n * eps * total."""
    return SAFETY * max(n, 1) * EPS * abs(total)


def sv(X: np.ndarray) -> np.ndarray:
    """Singular values of X, decreasing (an empty vector for an empty matrix)."""
    if X.size == 0:
        return np.zeros(0)
    return np.linalg.svd(X, compute_uv=False)


def descend_lbfgs(params: list, objective: Callable[[list], Any], max_iter: int) -> list:
    """Minimize ``objective`` (batched, one value per start; the starts are independent, so the sum is
    minimized) by torch L-BFGS with a strong-Wolfe line search; returns the detached end points."""
    import torch

    ps = [p.detach().clone().requires_grad_(True) for p in params]
    opt = torch.optim.LBFGS(ps, max_iter=max_iter, line_search_fn="strong_wolfe", tolerance_grad=1e-13,
                            tolerance_change=1e-16, history_size=30)

    def closure():
        opt.zero_grad()
        v = objective(ps).sum()
        v.backward()
        return v

    opt.step(closure)
    return [p.detach().clone() for p in ps]


@contextmanager
def single_thread():
    """Run torch on one intra-op thread (restored afterwards): the lemma checks use many tiny batched
    ops, for which thread start-up dominates and oversubscription on a busy 2-core machine costs 10x."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
