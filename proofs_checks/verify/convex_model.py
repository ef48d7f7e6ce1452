"""Checking a theorem about a convex program itself (``Theorem.model`` "max-margin" or "layer-peeled") instead of the
(W, H) training objective: the convex oracle (``numerics.convex``) is then the numerics.

* Exact side (``model_exact``): the claim, the exact derivation (``theory.families.convex_programs``) and the
  class-level program's certified minimum, with the claim's f* inside that interval (or refuted), the derived f*
  inside it (or unsettled), and the claim's equal / distinct rows of W checked by tying them (layer-peeled).
* Full-matrix side (``model_numerics``): the SAMPLE-level program (no NC1 assumed), certified at the lifted
  class-level point, and for N <= ``SAMPLE_SOLVE_MAX`` also solved from scratch by the convex solver; the claimed
  point (the claim's class-mean logits W Hbar, repeated over the samples) must be feasible and attain the certified
  minimum; "numeric match" = the claimed (or reference) f* lies in the full program's certified interval.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ncverify.numerics import convex
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks.statement import LPM_NORMALIZATION, MAX_MARGIN_NORMALIZATION
from ncverify.proofs_checks.verify.evidence import Check, Evidence, Status
from ncverify.proofs_checks.verify.oracle import Reference, interval_evidence, tying_evidence
from ncverify.proofs_checks.verify.stages import derivation_stage
from ncverify.theory.prediction import Prediction

MODELS = ("ufm", "max-margin", "layer-peeled")
#: the sample-level program is also solved from scratch (no NC1 start) up to this many samples (an SDP of size K + N)
SAMPLE_SOLVE_MAX = 48

OBJECTIVES = {"max-margin": MAX_MARGIN_NORMALIZATION, "layer-peeled": LPM_NORMALIZATION}


def rho(inst: Instance) -> float:
    """The layer-peeled model's nuclear-norm budget K sqrt(E_W E_H) (E_W = lam_w[0], E_H = lam_h)."""
    return inst.K * math.sqrt(inst.lam_w[0] * inst.lam_h)


def class_program(model: str, inst: Instance, tied: tuple = ()) -> convex.Certificate:
    if model == "max-margin":
        return convex.max_margin(inst.counts)
    return convex.layer_peeled(inst.counts, rho(inst), tied=tied)


def sample_program(model: str, inst: Instance) -> convex.Certificate:
    if model == "max-margin":
        return convex.max_margin(inst.counts, sample_level=True)
    return convex.layer_peeled(inst.counts, rho(inst), sample_level=True)


def _f(p: Prediction | None) -> float | None:
    return None if p is None or p.objective is None else float(p.objective.value)


def _rows_by_tying(model: str, claim: Prediction, inst: Instance, free: convex.Certificate) -> list[Evidence]:
    """Rows of W claimed equal / distinct, certified by tying them (``verify.oracle.tying_evidence``)."""
    if model != "layer-peeled":
        return []
    return [tying_evidence(ks, eq, free, class_program(model, inst, tied=(ks,)))
            for ks, eq in claim.rows_equal or () if len(ks) > 1]


def model_exact(theorem: Any, claim: Prediction, inst: Instance, dps: int, exact: bool = True
                ) -> tuple[Prediction, Any, Reference | None, list[Evidence], dict | None]:
    """The exact side of a convex-model theorem: (claim, derivation, reference, evidence, oracle summary)."""
    model = theorem.model
    deriv, ev = derivation_stage(theorem.family, claim, inst, dps, exact=exact)
    try:
        cert = class_program(model, inst)
    except convex.OracleUnavailable as exc:
        return claim, deriv, None, ev + [Evidence(Check.ORACLE, "convex oracle", Status.UNSETTLED,
                                                  detail=f"{exc}: a {model} theorem has no other numerics")], None
    except convex.OracleFailed as exc:
        return claim, deriv, None, ev + [Evidence(Check.ORACLE, "convex oracle", Status.UNSETTLED, detail=str(exc))], None
    ev.append(Evidence(Check.ORACLE, "certified minimum of the class-level convex program", Status.INFO,
                       detail=f"{cert.program}: minimum in [{cert.lower:.15g}, {cert.upper:.15g}] (duality gap "
                              f"{cert.gap:.2g})"))
    ev += interval_evidence("claimed", _f(claim), cert, Status.FAIL)
    ev += interval_evidence("derived", _f(deriv), cert, Status.UNSETTLED)
    ev += _rows_by_tying(model, claim, inst, cert)
    value = _f(claim)
    ref = Reference(value) if value is not None else Reference(cert.value, cert.radius, "convex oracle")
    return claim, deriv, ref, ev, {"class_level": cert.summary(), "_certificate": cert}


def _claimed_point(model: str, claim: Prediction, inst: Instance) -> np.ndarray | None:
    """The sample-level point of the claim: its class-mean logits W Hbar repeated over the samples (max-margin:
    z_i = zbar_k; layer-peeled: x_i = zbar_k / sqrt(n_k), whose logits sqrt(n_k) x_i = zbar_k)."""
    t = claim.gram_targets.get("WHbar")
    if t is None or t.matrix is None:
        return None
    Zb = np.array([[float(x) for x in r] for r in t.matrix])
    y = np.repeat(np.arange(inst.K), inst.counts)
    if model == "max-margin":
        return Zb[:, y]
    return (Zb / np.sqrt(np.asarray(inst.counts, dtype=float)))[:, y]


def _point_evidence(model: str, claim: Prediction, inst: Instance, cert: convex.Certificate) -> list[Evidence]:
    X = _claimed_point(model, claim, inst)
    if X is None:
        return [Evidence(Check.POINT, "claimed point", Status.INFO, detail="the claim states no class-mean logits")]
    y = np.repeat(np.arange(inst.K), inst.counts)
    nuc = float(np.linalg.svd(X, compute_uv=False).sum())
    rnd = 64 * np.finfo(float).eps * (1 + nuc) * X.size
    if model == "max-margin":
        margins = np.array([X[y[i], i] - X[c, i] for i in range(len(y)) for c in range(inst.K) if c != y[i]])
        feas, value, feas_txt = margins.min() >= 1 - rnd, nuc, f"smallest margin {margins.min():.15g} (>= 1)"
    else:
        Z = X * np.sqrt(np.asarray(inst.counts, dtype=float))[y]
        m = Z.max(axis=0)
        ce = m + np.log(np.exp(Z - m).sum(axis=0)) - Z[y, np.arange(len(y))]
        feas, value = nuc <= rho(inst) + rnd, float(ce.mean())
        feas_txt = f"||X||_* = {nuc:.15g} (<= rho = {rho(inst):.15g})"
    ev = [Evidence(Check.POINT, "claimed point feasible", Status.PASS if feas else Status.FAIL, detail=feas_txt)]
    err = max(cert.lower - value, value - cert.upper, 0.0)
    ev.append(Evidence(Check.POINT, "claimed point attains the certified minimum of the full program",
                       Status.PASS if err <= rnd else Status.FAIL, err, rnd + cert.radius,
                       "float64 rounding of the evaluation + the certified interval",
                       f"objective {value:.15g} vs [{cert.lower:.15g}, {cert.upper:.15g}]"))
    return ev


def model_numerics(theorem: Any, claim: Prediction, inst: Instance, ref: Reference | None, osum: dict | None
                   ) -> tuple[list[Evidence], dict]:
    """The full-matrix side of a convex-model theorem (see the module docstring)."""
    model = theorem.model
    ev: list[Evidence] = []
    num: dict = {"model": model}
    if osum is None:
        return [Evidence(Check.NUMERICS, "full program", Status.UNSETTLED, detail="no class-level certificate")], num
    num["class_level"] = osum["class_level"]
    lifted = convex.lift(osum["_certificate"], inst.counts)
    num["lifted"] = lifted.summary()
    ev.append(Evidence(Check.NUMERICS, "NC1 point certified in the full (sample-level) program", Status.INFO,
                       detail=f"the class-level solution repeated over the samples: minimum of the full program in "
                              f"[{lifted.lower:.15g}, {lifted.upper:.15g}] (gap {lifted.gap:.2g})"))
    full = lifted
    if inst.N <= SAMPLE_SOLVE_MAX:
        try:
            sample = sample_program(model, inst)
        except convex.OracleFailed as exc:
            ev.append(Evidence(Check.NUMERICS, "sample-level program from scratch", Status.UNSETTLED, detail=str(exc)))
        else:
            num["sample_level"] = sample.summary()
            nc1_gap = lifted.lower - sample.upper
            ev.append(Evidence(Check.NUMERICS, "sample-level program solved without assuming NC1 vs the NC1 point",
                               Status.FAIL if nc1_gap > 0 else Status.PASS, max(nc1_gap, 0.0), 0.0,
                               "certified intervals must overlap",
                               f"from scratch [{sample.lower:.15g}, {sample.upper:.15g}] vs NC1 point "
                               f"[{lifted.lower:.15g}, {lifted.upper:.15g}]"))
            y = np.repeat(np.arange(inst.K), inst.counts)  # the largest distance of a sample from its class mean
            means = np.stack([sample.X[:, y == k].mean(axis=1) for k in range(inst.K)], axis=1)
            num["within_class_spread"] = float(np.linalg.norm(sample.X - means[:, y], axis=0).max())
            if sample.upper - sample.lower < full.upper - full.lower:
                full = sample
    ev += _point_evidence(model, claim, inst, full)
    if ref is not None:
        err = max(full.lower - ref.value, ref.value - full.upper, 0.0)
        tol = ref.radius
        ev.append(Evidence(Check.MATCH, "the full program's certified minimum equals the claimed minimum",
                           Status.PASS if err <= tol else Status.FAIL, err, tol,
                           f"certified interval of the full program (gap {full.gap:.2g} + rounding {full.rounding:.2g})",
                           f"{ref.source} {ref.value:.15g} vs [{full.lower:.15g}, {full.upper:.15g}]"))
    return ev, num


__all__ = ["MODELS", "OBJECTIVES", "SAMPLE_SOLVE_MAX", "model_exact", "model_numerics", "class_program",
           "sample_program", "rho"]
