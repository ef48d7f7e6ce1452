"""Checking one theorem on one instance: claim vs exact derivation vs constructed point vs numerics.

Verdict rules (../shared/DESIGN.md), in the order the checks run (cheapest first):

1. the claim disagrees with the theory engine's exact derivation beyond high-precision tolerance
   -> refuted;
2. the point the claim describes, built explicitly, is not a critical point of the objective, or its
   objective differs from the claimed minimum -> refuted;
3. a numeric point (multi-start, float64) has an objective below the claimed minimum by more than the
   evaluation tolerance -> refuted (it is an actual point, so the claimed minimum is not the minimum);
4. the numeric best point matches the claimed minimum, but a claimed quantity (Gram matrices, singular
   values, collapse pattern, bias, NC1, ...) differs beyond its derived tolerance -> refuted (another
   global minimizer, or the global minimizer, looks different from the claim);
5. otherwise verified only when the numeric best point matched the claimed minimum within tolerance
   and every claimed quantity matched; unsettled numerics (no converged run at the claimed value,
   near-singular Hessian) -> inconclusive, with the reason.
Quantities the claim leaves undetermined (None in the claim) are not compared.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import mpmath as mp
import numpy as np

from numerics.problem import Instance
from proofs_checks import tolerances as tl
from theory.prediction import Prediction

VERDICTS = ("verified", "refuted", "inconclusive")


@dataclass
class Evidence:
    """One compared quantity. ``status``: "pass", "fail" (refutes), "unsettled" or "info"."""

    check: str
    quantity: str
    status: str
    error: float | None = None
    tolerance: float | None = None
    origin: str = ""
    detail: str = ""

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


@dataclass
class CheckResult:
    theorem: str
    instance: Instance
    verdict: str
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    claim: dict | None = None
    derivation: dict | None = None
    numerics: dict | None = None
    seconds: float = 0.0
    reproduce: str = ""
    history: list[float] | None = None

    def to_json(self) -> dict:
        return {"theorem": self.theorem, "instance": self.instance.as_dict(), "verdict": self.verdict,
                "reason": self.reason, "evidence": [e.to_json() for e in self.evidence], "claim": self.claim,
                "derivation": self.derivation, "numerics": self.numerics, "seconds": round(self.seconds, 3),
                "reproduce": self.reproduce}

    def worst(self) -> Evidence | None:
        """The compared quantity with the largest error / tolerance ratio."""
        scored = [e for e in self.evidence if e.error is not None and e.tolerance not in (None, 0)
                  and math.isfinite(e.error) and math.isfinite(e.tolerance or math.nan)]
        return max(scored, key=lambda e: e.error / e.tolerance, default=None)  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# helpers on predictions
# ---------------------------------------------------------------------------------------------
def _val(x: Any) -> float | None:
    if x is None:
        return None
    v = getattr(x, "value", x)
    return float(v)


def _mpval(x: Any) -> mp.mpf | None:
    if x is None:
        return None
    return mp.mpf(getattr(x, "value", x))


def _vals(xs: Any) -> list[float] | None:
    return None if xs is None else [_val(x) for x in xs]  # type: ignore[misc]


def gram_from_target(target: dict | None, K: int) -> np.ndarray | None:
    """The K x K Gram matrix a target describes: kind OF/GOF -> diag(d); ETF -> (d/(1-1/K)) (I - 11^T/K)
    with d the (common) diagonal entry; zero -> 0. None when the scale (diag) is not stated."""
    if not target or target.get("diag") is None:
        return None
    kind = str(target.get("kind", "")).upper()
    diag = np.array(_vals(target["diag"]), dtype=float)
    if kind in ("OF", "GOF"):
        return np.diag(diag)
    if kind == "ETF":
        P = np.eye(K) - np.ones((K, K)) / K
        return float(diag.mean()) / (1 - 1 / K) * P if K > 1 else np.zeros((1, 1))
    if kind == "ZERO":
        return np.zeros((K, K))
    return None


def prediction_json(p: Prediction | None) -> dict | None:
    """A compact JSON view of a claim or derivation (values only)."""
    if p is None:
        return None
    sv = p.singular_values or {}
    return {
        "objective": _val(p.objective),
        "singular_values": {"weights_product": _vals(sv.get("weights_product")),
                            "layers": None if sv.get("layers") is None else [_vals(r) for r in sv["layers"]],
                            "output": _vals(sv.get("output"))},
        "gram_targets": {k: {"kind": v.get("kind"), "diag": _vals(v.get("diag"))}
                         for k, v in (p.gram_targets or {}).items() if isinstance(v, dict)},
        "class_mean_norms": _vals(p.class_mean_norms),
        "bias": _vals(p.bias),
        "collapsed_classes": p.collapsed_classes,
        "scalars": {k: _vals(v) for k, v in (p.scalars or {}).items()},
    }


def _rel(a: mp.mpf, b: mp.mpf) -> mp.mpf:
    return abs(a - b) / max(abs(a), abs(b), mp.mpf(10) ** -30)


# ---------------------------------------------------------------------------------------------
# 1. claim vs derivation
# ---------------------------------------------------------------------------------------------
def compare_with_derivation(claim: Prediction, deriv: Prediction, dps: int) -> list[Evidence]:
    """Every quantity the claim states, against the exact derivation, at high precision."""
    ev: list[Evidence] = []
    t_obj, t_arg = tl.high_precision(dps, argmin=False), tl.high_precision(dps, argmin=True)
    if claim.objective is not None and deriv.objective is not None:
        e = _rel(_mpval(claim.objective), _mpval(deriv.objective))
        ev.append(Evidence("claim vs derivation", "minimal objective f*", "pass" if e <= t_obj.value else "fail",
                           float(e), t_obj.value, t_obj.origin,
                           f"claim {mp.nstr(_mpval(claim.objective), 20)} vs derived {mp.nstr(_mpval(deriv.objective), 20)}"))

    def cmp_lists(name: str, a: Any, b: Any, sort: bool) -> None:
        if a is None or b is None:
            return
        av, bv = [_mpval(x) for x in a], [_mpval(x) for x in b]
        if len(av) != len(bv):
            ev.append(Evidence("claim vs derivation", name, "fail", detail=f"lengths {len(av)} vs {len(bv)}"))
            return
        if sort:
            av, bv = sorted(av, reverse=True), sorted(bv, reverse=True)
        errs = [abs(x - y) / max(abs(x), abs(y), mp.mpf(1e-30)) if max(abs(x), abs(y)) > mp.mpf(10) ** -(dps // 2) else abs(x - y)
                for x, y in zip(av, bv)]
        e = max(errs) if errs else mp.mpf(0)
        ev.append(Evidence("claim vs derivation", name, "pass" if e <= t_arg.value else "fail", float(e), t_arg.value,
                           t_arg.origin, f"claim {[mp.nstr(x, 12) for x in av]} vs derived {[mp.nstr(x, 12) for x in bv]}"))

    csv, dsv = claim.singular_values or {}, deriv.singular_values or {}
    free = set(claim.undetermined or ())  # fields that only build the claimed point, not compared
    cmp_lists("singular values of W = W_M...W_1", csv.get("weights_product"), dsv.get("weights_product"),
              sort=not _class_indexed(claim, deriv))
    if csv.get("layers") is not None and dsv.get("layers") is not None and "layers" not in free:
        for j, (a, b) in enumerate(zip(csv["layers"], dsv["layers"]), start=1):
            cmp_lists(f"singular values of W_{j}", a, b, sort=True)
    cmp_lists("singular values of the output", csv.get("output"), dsv.get("output"), sort=True)
    if "class_mean_norms" not in free:
        cmp_lists("class-mean norms ||hbar_k||", claim.class_mean_norms, deriv.class_mean_norms, sort=False)
    cmp_lists("bias b", claim.bias, deriv.bias, sort=False)
    if claim.collapsed_classes is not None and deriv.collapsed_classes is not None:
        same = sorted(claim.collapsed_classes) == sorted(deriv.collapsed_classes)
        ev.append(Evidence("claim vs derivation", "collapsed classes", "pass" if same else "fail",
                           detail=f"claim {sorted(claim.collapsed_classes)} vs derived {sorted(deriv.collapsed_classes)}"))
    for key in ("WWT", "HbarTHbar"):
        ct, dt = (claim.gram_targets or {}).get(key), (deriv.gram_targets or {}).get(key)
        if not ct or not dt:
            continue
        ck, dk = str(ct.get("kind")).upper(), str(dt.get("kind")).upper()
        zero_d = dk == "ZERO" or (dt.get("diag") is not None and all(_val(v) == 0 for v in dt["diag"]))
        zero_c = ck == "ZERO" or (ct.get("diag") is not None and all(_val(v) == 0 for v in ct["diag"]))
        # a claim of shape only ("proportional to ...", no diag) holds with factor 0 at a collapsed minimizer
        scale_free = ct.get("diag") is None and zero_d
        same_kind = (ck == dk or (zero_c and zero_d) or scale_free
                     or ({ck, dk} == {"OF", "GOF"} and _is_scalar_diag(dt)))
        ev.append(Evidence("claim vs derivation", f"geometry of {_gram_name(key)}", "pass" if same_kind else "fail",
                           detail=f"claim {ck} vs derived {dk}"))
        if ct.get("diag") is not None and dt.get("diag") is not None:
            cmp_lists(f"diagonal of {_gram_name(key)}", ct["diag"], dt["diag"], sort=False)
    return ev


def _is_scalar_diag(t: dict) -> bool:
    d = _vals(t.get("diag"))
    return bool(d) and max(d) - min(d) <= 1e-12 * max(1.0, max(abs(x) for x in d))


def _class_indexed(a: Prediction, b: Prediction) -> bool:
    return a.family == b.family == "mse-deep"


def _gram_name(key: str) -> str:
    return {"WWT": "W W^T", "HbarTHbar": "Hbar^T Hbar"}.get(key, key)


# ---------------------------------------------------------------------------------------------
# numeric helpers
# ---------------------------------------------------------------------------------------------
def _hessian_info(inst: Instance, x) -> dict:
    """Hessian spectrum at the flat point x: ||Hess||_2, the smallest eigenvalue, and mu (the smallest
    eigenvalue above the symmetry cutoff sqrt(eps) ||Hess||_2)."""
    import torch

    from numerics import models

    Y = models.labels(inst.counts, dtype=x.dtype, device=x.device)
    f = models.flat_objective(inst, Y)
    if x.numel() > 3000:
        return {"available": False, "reason": f"{x.numel()} parameters: Hessian not formed"}
    Hm = torch.autograd.functional.hessian(f, x.detach())
    evals = torch.linalg.eigvalsh(0.5 * (Hm + Hm.T)).cpu().numpy()
    norm = float(np.max(np.abs(evals)))
    cutoff = math.sqrt(tl.EPS) * max(norm, 1e-300)
    above = evals[evals > cutoff]
    return {"available": True, "norm": norm, "min_eig": float(evals.min()), "cutoff": cutoff,
            "mu": float(above.min()) if above.size else 0.0, "zero_modes": int(np.sum(np.abs(evals) <= cutoff))}


def _objective_scale(inst: Instance, params) -> float:
    """S in the evaluation tolerance: the sum of |terms| plus the rounding scale of the data term
    (CE: log-sum-exp loses eps * max_j |z_ij| per sample; MSE: the residual loses eps |z_i| per sample,
    squared against |r_i|)."""
    import torch

    from numerics import models

    parts = models.objective_parts(inst, params)
    S = abs(parts["data"]) + sum(abs(v) for v in parts["weights"]) + abs(parts["features"]) + abs(parts.get("bias", 0.0))
    with torch.no_grad():
        Z = models.forward(inst, params)
        if inst.loss == "ce":
            S += float(Z.abs().amax(dim=0).mean())
        else:
            R = Z - models.labels(inst.counts, dtype=Z.dtype, device=Z.device)
            S += float((R.norm(dim=0) * Z.norm(dim=0)).mean())
    return S


def _grams(inst: Instance, p: dict) -> dict:
    """W = W_M...W_1, W W^T, class means (centered with a bias), their Gram, and (extended model)
    the features entering W_2."""
    from numerics import metrics

    Ws, H = p["weights"], p["H"]
    W = metrics.product(Ws)
    Hbar = metrics.class_means(H, inst.counts)
    Hc = Hbar - Hbar.mean(axis=1, keepdims=True) if inst.bias else Hbar
    out = {"W": W, "WWT": W @ W.T, "Hbar": Hbar, "HbarTHbar": Hc.T @ Hc}
    if inst.activation is not None:
        pre = Ws[0] @ H
        post = np.maximum(pre, 0.0) if inst.activation == "relu" else pre
        H2bar = metrics.class_means(post, inst.counts)
        out["H2"] = post
        out["H2barTH2bar"] = H2bar.T @ H2bar
    return out


def construct_claimed_point(claim: Prediction, inst: Instance) -> tuple[dict | None, str]:
    """The explicit float64 point {"weights", "H", "b"} the claim describes (aligned, balanced factors;
    class means from the claim, or from balancedness when the claim states no norms), or (None, why)
    when the claim leaves the scales free or the construction does not cover the case."""
    from theory import construct

    why = ""
    for features in ("prediction", "balanced"):
        try:
            m = construct.construct_numpy(claim, inst, features=features)
        except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError, IndexError) as exc:
            why = why or f"{type(exc).__name__}: {exc}"
            continue
        b = m.get("b")
        return {"weights": list(m["W"]), "H": m["H"], "b": None if b is None else np.asarray(b).reshape(-1)}, ""
    return None, why


def evaluate_point(inst: Instance, point: dict) -> dict:
    """Objective, gradient norm, gradient scale and Hessian norm at a float64 point."""
    import torch

    from numerics import models

    params = models.Params.from_numpy(point)
    x = params.flatten().detach().clone().requires_grad_(True)
    Y = models.labels(inst.counts, dtype=x.dtype)
    f = models.flat_objective(inst, Y)
    val = f(x)
    (g,) = torch.autograd.grad(val, x)
    # gradient scale: the data-term gradient and the penalty gradients separately (they cancel at a
    # critical point, and each is computed with its own rounding error)
    xp = [t.detach().clone().requires_grad_(True) for t in params.tensors()]
    pp = models.Params(xp[:inst.depth], xp[inst.depth], xp[inst.depth + 1] if inst.bias else None)
    pen = 0.5 * sum(l * (w ** 2).sum() for l, w in zip(inst.lam_w, pp.weights)) + 0.5 * inst.lam_h * (pp.H ** 2).sum()
    if pp.b is not None:
        pen = pen + 0.5 * inst.lam_b * (pp.b ** 2).sum()
    gp = torch.autograd.grad(pen, xp, allow_unused=True)
    gpen = math.sqrt(sum(float((t ** 2).sum()) for t in gp if t is not None))
    hess = _hessian_info(inst, x.detach())
    grad_scale = 2 * gpen + float(g.norm())
    if inst.loss != "mse":
        # softmax-type losses: exp(z (1 + e)) = exp(z)(1 + z e), so the data gradient carries a relative
        # rounding error of about max|z| eps on top of the operations' own
        with torch.no_grad():
            grad_scale *= 1.0 + float(models.forward(inst, params).abs().max())
    return {"objective": float(val.detach()), "grad_norm": float(g.norm()), "grad_scale": grad_scale,
            "theta_norm": float(x.detach().norm()), "hessian": hess, "scale": _objective_scale(inst, params),
            "P": x.numel()}


def point_evidence(inst: Instance, point: dict, claimed_f: float | None) -> tuple[list[Evidence], float]:
    """Is the constructed claimed point critical, with objective = the claimed minimum?  Returns the
    evidence and the claimed minimum (the objective at the point when the claim states none)."""
    ev: list[Evidence] = []
    at = evaluate_point(inst, point)
    eval_tol = tl.evaluation(at["scale"], at["P"])
    if claimed_f is not None:
        err = abs(at["objective"] - claimed_f)
        ev.append(Evidence("claimed point", "objective at the constructed point = claimed f*",
                           "pass" if err <= eval_tol.value else "fail", err, eval_tol.value, eval_tol.origin))
    else:
        claimed_f = at["objective"]
        ev.append(Evidence("claimed point", "implied claimed minimum (objective at the constructed point)", "info",
                           detail=f"{claimed_f:.15g}"))
    hn = at["hessian"].get("norm", 0.0) if at["hessian"].get("available") else 0.0
    gtol = tl.gradient_at_point(hn, at["theta_norm"], at["grad_scale"], at["P"])
    ev.append(Evidence("claimed point", "gradient norm at the constructed point (critical point?)",
                       "pass" if at["grad_norm"] <= gtol.value else "fail", at["grad_norm"], gtol.value, gtol.origin))
    return ev, claimed_f


INIT_KINDS = ("std 0.1", "balanced", "std 1", "balanced")  # balanced starts reach the small basins near boundaries


def balanced_start(inst: Instance, generator, device: str = "auto"):
    """A random start with the layer energies that balancedness imposes at critical points
    (lambda_{W_j} ||W_j||^2 equal across layers and to lambda_H ||H||^2) and every mode at the label scale:
    each factor A (decay lambda_A) is a random partial isometry (orthonormal rows or columns from the QR
    of a Gaussian matrix) times s_A = sqrt(L / lambda_A) n^{1/(2(M+1))}, L = (lambda_H prod_j
    lambda_{W_j})^{1/(M+1)}, n = the mean class size, so the product of the factors has all its singular
    values near sqrt(n), the size of the labels' singular values. Uses only the instance's lambdas and
    sizes (never a claim). Deep objectives have a local minimum at 0 for every mode separately; starting
    every mode at the label scale avoids the partly collapsed minima that Gaussian starts often reach."""
    import torch

    from numerics import models

    M = inst.depth
    L = math.exp((math.log(inst.lam_h) + sum(math.log(v) for v in inst.lam_w)) / (M + 1))
    t = (inst.N / inst.K) ** (1.0 / (2 * (M + 1)))

    def isometry(rows: int, cols: int) -> "torch.Tensor":
        G = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
        Q, R = torch.linalg.qr(G)
        Q = Q * torch.sign(torch.diagonal(R))  # a Haar-distributed orthonormal frame
        return Q if rows >= cols else Q.T

    shapes = models.shapes(inst)
    ws = [isometry(*shapes[j]) * (math.sqrt(L / lam) * t) for j, lam in enumerate(inst.lam_w)]
    H = isometry(inst.width, inst.N) * (math.sqrt(L / inst.lam_h) * t)
    b = torch.zeros(inst.K, dtype=torch.float64) if inst.bias else None
    return models.Params(ws, H, b).to(device=models.resolve_device(device))


def multistart(inst: Instance, *, solver: str, starts: int, seed: int, device: str = "auto",
               max_iter: int | None = None):
    """Seeded starts cycling through INIT_KINDS: the papers' N(0, 0.1^2), N(0, 1), and a balanced-energy
    start (``balanced_start``). Deep (M >= 2) objectives have a local minimum at W = H = 0 whose basin
    holds every small start when the regularization is strong; the other kinds reach the other basins.
    Start i uses the torch.Generator seed ``seed + i`` and kind ``INIT_KINDS[i % 4]``."""
    import torch

    from numerics import solvers

    runs = []
    for i in range(starts):
        kind = INIT_KINDS[i % len(INIT_KINDS)]
        if kind == "balanced":
            p0 = balanced_start(inst, torch.Generator().manual_seed(seed + i), device)
            run = (solvers.gd(inst, p0, seed=seed + i, start=i, **({} if max_iter is None else {"max_iter": max_iter}))
                   if solver == "gd" else
                   solvers.lbfgs(inst, p0, seed=seed + i, start=i, **({} if max_iter is None else {"max_iter": max_iter})))
        else:
            run = solvers.solve(inst, solver=solver, starts=1, seed=seed + i, device=device, max_iter=max_iter,
                                init_std=0.1 if kind == "std 0.1" else 1.0).runs[0]
        run.start = i
        run.message = (run.message + "; " if run.message else "") + f"init {kind}"
        runs.append(run)
    return solvers.MultiStartResult(runs)


# ---------------------------------------------------------------------------------------------
# the check
# ---------------------------------------------------------------------------------------------
def check(theorem, inst: Instance, *, solver: str = "lbfgs", starts: int = 3, seed: int = 0, device: str = "auto",
          max_iter: int | None = None, dps: int = 40, record_history: bool = False) -> CheckResult:
    """The verdict of ``theorem`` (a catalogue entry) on ``inst``; see the module docstring."""
    from numerics import metrics
    from theory.derive import derive

    t0 = time.perf_counter()
    theorem.validate(inst)
    ev: list[Evidence] = []
    claim = theorem.claim(inst)
    deriv = None
    try:
        deriv = derive(theorem.family, inst, dps=dps)
    except (ValueError, NotImplementedError) as exc:
        ev.append(Evidence("claim vs derivation", "derivation", "info", detail=f"no exact derivation: {exc}"))
    if deriv is not None:
        ev.extend(compare_with_derivation(claim, deriv, dps))

    # 2. the claimed point, built explicitly
    claimed_f = _val(claim.objective)
    point, why = construct_claimed_point(claim, inst)
    if point is not None:
        pev, claimed_f = point_evidence(inst, point, claimed_f)
        ev.extend(pev)
    else:
        ev.append(Evidence("claimed point", "construction", "info",
                           detail=f"no explicit point to evaluate (the claim leaves scales free, or: {why})"))
    if claimed_f is None and deriv is not None and deriv.objective is not None:
        claimed_f = _val(deriv.objective)
        ev.append(Evidence("claimed point", "reference minimum", "info",
                           detail="the claim states no value: the derived minimum is the reference"))

    # 3-4. numerics
    res = multistart(inst, solver=solver, starts=starts, seed=seed, device=device, max_iter=max_iter)
    best = res.best
    num = {"solver": solver, "starts": starts, "seed": seed, "init_kinds": list(INIT_KINDS),
           "runs": [r.summary() for r in res.runs],
           "best_objective": best.objective, "best_stop_reason": best.stop_reason, "best_grad_norm": best.grad_norm}
    p = best.params.to_numpy()
    scale = _objective_scale(inst, best.params)
    P = sum(int(np.prod(np.shape(a))) for a in p["weights"]) + p["H"].size + (0 if p["b"] is None else p["b"].size)
    eval_tol = tl.evaluation(scale, P)
    if not math.isfinite(best.objective):
        ev.append(Evidence("numerics", "solver runs", "unsettled", detail="every run diverged"))
        return _finish(theorem, inst, ev, claim, deriv, num, t0, best if record_history else None)
    hess = _hessian_info(inst, best.params.flatten())
    mu = hess.get("mu", 0.0) if hess.get("available") else 0.0
    num["hessian"] = hess
    if not hess.get("available"):
        ev.append(Evidence("numerics", "conditioning", "unsettled",
                           detail=f"{hess.get('reason', 'no Hessian')}: no curvature, so no derived match tolerance"))
    if claimed_f is not None:
        below = claimed_f - best.objective
        ev.append(Evidence("numerics", "numeric objective vs claimed minimum (a lower point refutes)",
                           "fail" if below > 2 * eval_tol.value else "pass", max(below, 0.0), 2 * eval_tol.value,
                           "2 x " + eval_tol.origin,
                           f"numeric {best.objective:.15g} (start {best.start}, seed {best.seed}) vs claimed {claimed_f:.15g}"))
    match_tol = tl.objective_match(eval_tol, best.grad_norm, mu)
    matched = claimed_f is not None and abs(best.objective - claimed_f) <= match_tol.value
    if deriv is not None and deriv.objective is not None:
        e = abs(best.objective - _val(deriv.objective))
        ev.append(Evidence("numerics", "numeric minimum vs derived minimum (the reduction is right)",
                           "pass" if e <= match_tol.value else ("fail" if best.objective < _val(deriv.objective) - 2 * eval_tol.value else "unsettled"),
                           e, match_tol.value, match_tol.origin))
    if matched:
        ev.append(Evidence("numerics", "numeric minimum reaches the claimed minimum", "pass",
                           abs(best.objective - claimed_f), match_tol.value, match_tol.origin))
    elif claimed_f is not None and best.objective > claimed_f:
        why = "solvers stopped above the claimed minimum"
        if best.stop_reason != "converged":
            why += f" (best run: {best.stop_reason}, |grad| = {best.grad_norm:.2g})"
        ev.append(Evidence("numerics", "numeric minimum reaches the claimed minimum", "unsettled",
                           best.objective - claimed_f, match_tol.value, match_tol.origin, why))
    if hess.get("available") and mu > 0 and mu < 1e-7 * hess["norm"]:
        ev.append(Evidence("numerics", "conditioning", "unsettled",
                           detail=f"smallest curvature mu = {mu:.3g} vs ||Hess|| = {hess['norm']:.3g}: "
                                  "near-singular Hessian (close to a phase boundary?)"))
    if matched:
        ev.extend(_compare_shapes(theorem, claim, inst, p, eval_tol, best.grad_norm, mu))
    m = metrics.measure(inst, best.params)
    num["metrics"] = m.get("metrics")
    num["singular_values"] = m.get("singular_values")
    return _finish(theorem, inst, ev, claim, deriv, num, t0, best if record_history else None)


def _compare_shapes(theorem, claim: Prediction, inst: Instance, p: dict, eval_tol: tl.Tol, g: float, mu: float) -> list[Evidence]:
    """Claimed quantities against the numeric best point (which matched the claimed minimum)."""
    from numerics import metrics

    ev: list[Evidence] = []
    dth = tl.argmin_distance(eval_tol, g, mu)
    if not math.isfinite(dth.value):
        return [Evidence("numerics", "claimed quantities", "unsettled", detail=dth.origin)]
    G = _grams(inst, p)
    norms = [float(np.linalg.norm(w, 2)) for w in p["weights"]]
    dW = tl.product_perturbation(norms, dth.value)
    Wn = float(np.linalg.norm(G["W"], 2))
    min_n = min(inst.counts)
    dh = dth.value / math.sqrt(min_n)
    hn = float(np.max(np.linalg.norm(G["Hbar"], axis=0))) if G["Hbar"].size else 0.0
    tol_W = tl.Tol(2 * Wn * dW + dW * dW, f"||Delta(WW^T)||_F <= 2||W|| dW + dW^2, dW = {dW:.2g} from {dth.origin}")
    tol_H = tl.Tol(math.sqrt(inst.K) * (2 * hn * dh + dh * dh) * (2 if inst.bias else 1),
                   f"||Delta(Hbar^T Hbar)||_F <= sqrt(K)(2 max||hbar|| dh + dh^2), dh = dtheta/sqrt(min n_k) = {dh:.2g}")
    for key, tol in (("WWT", tol_W), ("HbarTHbar", tol_H)):
        target = (claim.gram_targets or {}).get(key)
        if not target:
            continue
        Gc = gram_from_target(target, inst.K)
        Gn = G[key]
        if Gc is not None:
            err = float(np.linalg.norm(Gn - Gc))
            ev.append(Evidence("numerics", f"{_gram_name(key)} = claimed Gram ({target.get('kind')})",
                               "pass" if err <= tol.value else "fail", err, tol.value, tol.origin))
        elif target.get("kind"):
            nG = float(np.linalg.norm(Gn))
            if nG <= tol.value:
                ev.append(Evidence("numerics", f"{_gram_name(key)} geometry", "info", detail="zero at the numeric point"))
                continue
            err = metrics.nc2(Gn, str(target["kind"]).upper()) if str(target["kind"]).upper() in ("OF", "ETF") else metrics.nc2_diagonal(Gn)
            t = 2 * tol.value / nG
            ev.append(Evidence("numerics", f"{_gram_name(key)} shape = {target.get('kind')} (nc2)",
                               "pass" if err <= t else "fail", err, t, "2 ||Delta G|| / ||G|| with " + tol.origin))
    sv = claim.singular_values or {}
    free = set(claim.undetermined or ())  # fields that only build the claimed point, not compared
    if sv.get("layers") is not None and "layers" not in free:
        for j, (row, Wj) in enumerate(zip(sv["layers"], p["weights"]), start=1):
            c = sorted(_vals(row), reverse=True)
            s = metrics.singular_values(Wj)[:len(c)]
            s = list(s) + [0.0] * (len(c) - len(s))
            err = max(abs(a - b) for a, b in zip(c, s))
            ev.append(Evidence("numerics", f"singular values of W_{j}", "pass" if err <= dth.value else "fail", err,
                               dth.value, "Weyl: |Delta sigma| <= ||Delta W_j||_2 <= " + dth.origin))
    if sv.get("weights_product") is not None:
        c = sorted(_vals(sv["weights_product"]), reverse=True)
        s = list(metrics.singular_values(G["W"])[:len(c)])
        s += [0.0] * (len(c) - len(s))
        err = max(abs(a - b) for a, b in zip(c, s))
        ev.append(Evidence("numerics", "singular values of W = W_M...W_1", "pass" if err <= dW else "fail", err, dW,
                           "Weyl with the first-order product bound"))
    if claim.bias is not None and p["b"] is not None:
        err = float(np.max(np.abs(np.array(_vals(claim.bias)) - p["b"])))
        ev.append(Evidence("numerics", "bias b", "pass" if err <= dth.value else "fail", err, dth.value, dth.origin))
    if claim.collapsed_classes is not None:
        norms_k = np.linalg.norm(G["W"], axis=1)
        zero = [k for k in range(inst.K) if norms_k[k] <= dW]
        same = sorted(zero) == sorted(claim.collapsed_classes)
        ev.append(Evidence("numerics", "collapsed classes (rows of W that vanish)", "pass" if same else "fail",
                           detail=f"claimed {sorted(claim.collapsed_classes)}, numeric {zero} (zero: ||w_k|| <= {dW:.2g})"))
    for name in getattr(theorem, "shape_claims", ()):
        ev.extend(_shape_claim(name, inst, p, G, dth))
    return ev


def _shape_claim(name: str, inst: Instance, p: dict, G: dict, dth: tl.Tol) -> list[Evidence]:
    """Qualitative claims by name: nc1 (features H), nc1_relu (post-activation features), of_relu,
    self_duality, global_mean_zero."""
    from numerics import metrics

    out: list[Evidence] = []
    if name in ("nc1", "nc1_post"):
        feats = p["H"] if name == "nc1" else G.get("H2")
        if feats is None:
            return out
        Hbar = metrics.class_means(feats, inst.counts)
        centered = Hbar - Hbar.mean(axis=1, keepdims=True)
        ev_b = np.linalg.eigvalsh(centered @ centered.T / inst.K)
        lam_min = float(ev_b[ev_b > 1e-12 * max(ev_b.max(), 1e-300)].min()) if ev_b.max() > 0 else 0.0
        if lam_min == 0.0:
            out.append(Evidence("numerics", f"{name} (within-class variability)", "info", detail="class means collapsed to zero"))
            return out
        v = metrics.nc1(feats, inst.counts)
        tol = dth.value ** 2 / (inst.N * inst.K * lam_min) * 4
        out.append(Evidence("numerics", f"{name} = (1/K) tr(Sigma_W Sigma_B^+)", "pass" if v <= tol else "fail", v, tol,
                            f"||h - hbar|| <= 2 dtheta: nc1 <= 4 dtheta^2/(N K lambda_min(Sigma_B)), dtheta = {dth.value:.2g}"))
    elif name == "of_post":
        Gp = G.get("H2barTH2bar")
        if Gp is None:
            return out
        nG = float(np.linalg.norm(Gp))
        if nG <= dth.value:
            out.append(Evidence("numerics", "post-activation class means", "info", detail="zero"))
            return out
        v = metrics.nc2(Gp, "OF")
        tol = 2 * math.sqrt(inst.K) * 2 * math.sqrt(nG) * dth.value / nG
        out.append(Evidence("numerics", "post-activation class means form an OF (nc2)", "pass" if v <= tol else "fail", v, tol,
                            "2 ||Delta G||/||G|| with ||Delta G|| <= sqrt(K) 2 ||hbar|| dtheta"))
    elif name == "self_duality":
        W, Hbar = G["W"], G["Hbar"]
        Hc = Hbar - Hbar.mean(axis=1, keepdims=True)
        nW, nH = float(np.linalg.norm(W)), float(np.linalg.norm(Hc))
        if nW <= dth.value or nH <= dth.value:
            out.append(Evidence("numerics", "self-duality", "info", detail="W or the class means are zero"))
            return out
        v = metrics.nc3_duality(W, Hc)
        tol = 2 * (dth.value * len(p["weights"]) / nW + dth.value / nH)
        out.append(Evidence("numerics", "self-duality W^T proportional to centered class means (nc3)",
                            "pass" if v <= tol else "fail", v, tol, "first-order bound 2(dW/||W|| + dh/||Hbar||)"))
    return out


def _finish(theorem, inst: Instance, ev: list[Evidence], claim, deriv, num, t0: float, best_run) -> CheckResult:
    order = {"numerics": 0, "claimed point": 1, "claim vs derivation": 2}
    fails = sorted((e for e in ev if e.status == "fail"), key=lambda e: order.get(e.check, 3))
    unsettled = [e for e in ev if e.status == "unsettled"]
    numeric_match = any(e.quantity == "numeric minimum reaches the claimed minimum" and e.status == "pass" for e in ev)
    if fails:
        verdict = "refuted"
        reason = "; ".join(f"{e.check}: {e.quantity}" + (f" ({e.detail})" if e.detail else "") +
                           (f" (error {e.error:.3g} > tol {e.tolerance:.3g})" if e.error is not None and e.tolerance is not None else "")
                           for e in fails[:3])
    elif unsettled or not numeric_match:
        verdict = "inconclusive"
        reason = "; ".join(f"{e.quantity}" + (f": {e.detail}" if e.detail else "") +
                           (f" (gap {e.error:.3g} > tol {e.tolerance:.3g})" if e.error is not None and e.tolerance is not None else "")
                           for e in unsettled[:3]) or "no numeric comparison was possible"
    else:
        verdict = "verified"
        reason = "numeric minimizer matched the claim within derived tolerances"
    flags = inst.cli_flags()
    return CheckResult(theorem=theorem.id, instance=inst, verdict=verdict, reason=reason, evidence=ev,
                       claim=prediction_json(claim), derivation=prediction_json(deriv), numerics=num,
                       seconds=time.perf_counter() - t0, reproduce=f"ncverify check {theorem.id} {flags}",
                       history=getattr(best_run, "history", None))
