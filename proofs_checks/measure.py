"""NC metrics of a trained network's features, and their comparison with a theorem's derived geometry.

``measure(features, labels, ...)`` streams every feature layer (``numerics.features``) and returns a
``Measurement``; ``compare(measurement, theorem, lam_w=..., lam_h=..., ...)`` builds the instance of the same
K, class counts n_k and feature width d (plus the given depth M and lambdas), derives the global minimizer of the
theorem's **family** with ``theory.derive.derive`` (the derivation, never the theorem's claim) and compares the
measured class-mean Gram Hbar^T Hbar, classifier Gram W W^T and singular values (of Hbar, W, each W_j, W Hbar and
the outputs W H) with the predicted ones, each row with the measured value, the prediction and the error:

* shape: || G/||G||_F - Gp/||Gp||_F ||_F (the nc2 distance), minimized over relabellings of the classes when the
  prediction is stated up to relabelling (``verify.stages.relabelled_distance``);
* scale: | ||G||_F / ||Gp||_F - 1 | for Grams; max_i |s_i - p_i| / max_i p_i for singular values (and for
  class-mean norms), both sorted descending.

With a bias in the instance (the minimizer's features then have global mean 0 and the bias absorbs any shift),
the class means are centered by hbar_G before comparing: the Gram, the singular values of Hbar, W Hbar and the
outputs W H, and the class-mean norms.

A trained network is not at an exact minimizer: this is a comparison report, not a verdict.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ncverify.numerics import features as F
from ncverify.numerics import metrics
from ncverify.proofs_checks.errors import NcverifyError, UsageError


class MeasureInputError(NcverifyError):
    """Features, labels, weights, bias or options of ``measure`` / ``compare`` that cannot be used (one line
    naming the file and the violated condition; the CLI prints it with exit code 2)."""


def _wrap(fn: Callable, *a: Any, **kw: Any) -> Any:
    try:
        return fn(*a, **kw)
    except F.FeatureInputError as exc:
        raise MeasureInputError(str(exc)) from None


def _name(src: Any, i: int, n: int) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return "features" if n == 1 else f"features[{i}]"


@dataclass
class Measurement:
    """The measured NC geometry of one or more feature layers (the last one feeds the classifier W).

    layers: ``numerics.features.LayerMetrics`` per feature source, in the given order; labels: the class
    mapping (``values[k]`` is the label of class k); counts n_k; weights_layout: how W was read (None without W);
    notes: what was not streamed; seconds: wall time."""

    layers: list[F.LayerMetrics]
    labels: F.LabelMap
    layout: str
    chunk_size: int
    global_mean: str
    weights_layout: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def K(self) -> int:
        return self.labels.K

    @property
    def counts(self) -> list[int]:
        return [int(c) for c in self.labels.counts]

    @property
    def last(self) -> F.LayerMetrics:
        return self.layers[-1]

    def to_json(self) -> dict:
        return {"K": self.K, "N": self.labels.N, "counts": self.counts,
                "label_mapping": self.labels.mapping(), "layout": self.layout, "chunk_size": self.chunk_size,
                "global_mean": self.global_mean, "weights_layout": self.weights_layout,
                "layers": [l.to_json() for l in self.layers], "notes": list(self.notes),
                "seconds": round(self.seconds, 3)}


def measure(features: Any, labels: Any, *, weights: Any = None, bias: Any = None, layout: str = "nd",
            key: str | None = None, labels_key: str | None = None, chunk_size: int = F.CHUNK_SIZE,
            global_mean: str = "sample", weights_layout: str = "auto", weights_key: Any = None,
            bias_key: str | None = None, progress: Callable[[str, int, int], None] | None = None) -> Measurement:
    """NC metrics of features given with labels in any order, streamed in chunks.

    features: one source or a list of them (= layers, the last one feeding W): a path to .npy (memory-mapped),
      .npz (member ``key``), .pt (tensor, or dict entry ``key``), a numpy array or a torch tensor; rows are
      samples (``layout="nd"``, N x d) or columns (``layout="dn"``, d x N).
    labels: N labels (path or array; any integers, or strings in .npy) mapped to classes 0..K-1 by sorted value;
      ``labels_key`` picks the array of an .npz / dict .pt file.
    weights: the classifier W (K x d, or d x K transposed: detected by shape, ``weights_layout`` "out-in" /
      "in-out" when ambiguous) or a list [W_1, ..., W_M] whose product W = W_M ... W_1 is used; bias: b (K).
      ``weights_key`` (one name for every weight file, or one per file) and ``bias_key`` pick the array of an
      .npz / dict .pt file, e.g. "fc.weight" and "fc.bias" of a saved state_dict.
    chunk_size: samples read per chunk (memory: one chunk in the stored dtype, unless the file is memory-mapped,
      plus float64 work arrays of at most numerics.features.BLOCK rows, plus K x d + d x d floats and the labels);
    global_mean: "sample" or "class" (the mean of the class means), as ``numerics.metrics``.
    progress(layer name, done, N): called after every chunk.
    Raises MeasureInputError (one line naming the file) for unusable input."""
    t0 = time.perf_counter()
    if layout not in F.LAYOUTS:
        raise MeasureInputError(f"layout must be 'nd' (rows are samples) or 'dn' (columns are), got {layout!r}")
    if int(chunk_size) < 1:
        raise MeasureInputError(f"chunk size must be >= 1, got {chunk_size}")
    gm = _wrap(F._global_mean_kind, global_mean)
    sources = list(features) if isinstance(features, (list, tuple)) else [features]
    if not sources:
        raise MeasureInputError("no feature sources given")
    lab = _wrap(F.encode_labels, labels, key=labels_key)
    weight_list = None if weights is None else (list(weights) if isinstance(weights, (list, tuple)) else [weights])
    if bias is not None and weight_list is None:
        raise MeasureInputError("a bias needs the classifier weights (--weights)")
    out: list[F.LayerMetrics] = []
    notes: list[str] = []
    wl = None
    for i, src in enumerate(sources):
        nm = _name(src, i, len(sources))
        cb = None if progress is None else (lambda done, total, nm=nm: progress(nm, done, total))
        stats, fs = _wrap(F.stream_class_stats, src, lab, layout=layout, key=key, chunk_size=int(chunk_size),
                          name=nm, progress=cb)
        if fs.note and not fs.note.startswith("member"):
            notes.append(f"{nm}: {fs.note}")
        W = mats = b = None
        if i == len(sources) - 1 and weight_list is not None:
            wnames = [str(w) if isinstance(w, (str, os.PathLike)) else f"weights[{j}]" for j, w in enumerate(weight_list)]
            wkeys = (list(weights_key) if isinstance(weights_key, (list, tuple)) else [weights_key] * len(weight_list))
            if len(wkeys) != len(weight_list):
                raise MeasureInputError(f"{len(wkeys)} weight keys for {len(weight_list)} weight files: give one key, "
                                        "or one per file")
            W, mats, wl = _wrap(F.classifier, weight_list, stats.d, lab.K, weights_layout=weights_layout, names=wnames,
                                keys=wkeys)
            if bias is not None:
                b = _wrap(F.bias_vector, bias, lab.K, key=bias_key,
                          name=str(bias) if isinstance(bias, (str, os.PathLike)) else "bias")
        out.append(F.layer_metrics(stats, name=nm, global_mean=gm, W=W, layers=mats, b=b,
                                   note="" if fs.note.startswith("member") else fs.note))
    return Measurement(out, lab, layout, int(chunk_size), gm, wl, notes, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# comparison with a theorem's derived prediction
# ---------------------------------------------------------------------------------------------
@dataclass
class ComparisonRow:
    """One compared quantity: aspect "shape" or "scale" (or "collapse" for NC1), measured and predicted values
    (numbers or lists), the error (see the module docstring) and how it was computed."""

    quantity: str
    aspect: str
    measured: Any
    predicted: Any
    error: float | None
    how: str = ""

    def to_json(self) -> dict:
        return {"quantity": self.quantity, "aspect": self.aspect, "measured": self.measured,
                "predicted": self.predicted, "error": self.error, "how": self.how}


@dataclass
class Comparison:
    """The measured geometry of one layer against the derived global minimizer of the instance."""

    theorem: str
    family: str
    instance: dict
    reproduce: str
    layer: str
    rows: list[ComparisonRow]
    objective: float | None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"theorem": self.theorem, "family": self.family, "instance": self.instance,
                "derive_command": self.reproduce, "layer": self.layer, "predicted_objective": self.objective,
                "rows": [r.to_json() for r in self.rows], "notes": list(self.notes),
                "kind": "comparison of a trained network with the derived global minimizer (not a verdict)"}


def _f(x: Any) -> float:
    return float(getattr(x, "value", x))


def _sorted_desc(xs: Iterable[float]) -> list[float]:
    return sorted((float(x) for x in xs), reverse=True)


def _sv_error(measured: Sequence[float], predicted: Sequence[float]) -> tuple[list[float], list[float], float | None]:
    p = _sorted_desc(predicted)
    m = _sorted_desc(measured)[:len(p)]
    m += [0.0] * (len(p) - len(m))
    top = max(p) if p else 0.0
    if not p:
        return m, p, None
    err = max(abs(a - b) for a, b in zip(m, p))
    return m, p, (err / top if top > 0 else err)


def _predicted_gram(target: Any, K: int) -> np.ndarray | None:
    from ncverify.proofs_checks.verify.stages import gram_from_target

    if target is None:
        return None
    if target.matrix is not None:
        return np.array([[float(x) for x in r] for r in target.matrix])
    return gram_from_target(target, K)


def _gram_rows(name: str, G: np.ndarray, target: Any, K: int) -> list[ComparisonRow]:
    """Shape and scale rows of one measured Gram against the predicted target."""
    from ncverify.proofs_checks.verify.stages import relabelled_distance

    rows: list[ComparisonRow] = []
    Gp = _predicted_gram(target, K)
    nG = float(np.linalg.norm(G))
    kind = target.kind.upper()
    if Gp is None and kind in ("OF", "ETF"):  # the shape only is stated
        Gp_shape = metrics.target_gram(kind, K)
    else:
        Gp_shape = Gp
    nP = float(np.linalg.norm(Gp)) if Gp is not None else None
    zero_pred = kind == "ZERO" or (nP is not None and nP == 0.0)
    if Gp_shape is not None and not zero_pred and nG > 0:
        A, B = G / nG, Gp_shape / float(np.linalg.norm(Gp_shape))
        if target.relabel:
            err, how = relabelled_distance(A, B)
            how = f"||G/||G|| - P Gp P^T/||Gp|| ||_F {how}"
        else:
            err, how = float(np.linalg.norm(A - B)), "||G/||G||_F - Gp/||Gp||_F||_F (nc2 distance)"
        rows.append(ComparisonRow(f"{name} shape", "shape", "G/||G||_F", f"{target.kind}"
                                  + (" (up to relabelling)" if target.relabel else ""), float(err), how))
    elif nG == 0:
        rows.append(ComparisonRow(f"{name} shape", "shape", "zero", target.kind, None, "the measured Gram is 0"))
    if Gp is not None:
        if zero_pred:
            rows.append(ComparisonRow(f"{name} scale ||G||_F", "scale", nG, 0.0, nG,
                                      "predicted 0 (collapsed): the error is ||G||_F itself"))
        else:
            rows.append(ComparisonRow(f"{name} scale ||G||_F", "scale", nG, nP, abs(nG / nP - 1),
                                      f"|ratio - 1|, ratio measured/predicted = {nG / nP:.6g}"))
    return rows


def compare(measurement: Measurement, theorem: Any, *, depth: int | None = None, lam_w: Any = None,
            lam_h: float | None = None, lam_b: float = 0.0, bias: bool | None = None, loss: str | None = None,
            width: int | None = None, activation: str | None = None, layer: int = -1, theorems: Any = None,
            dps: int = 30) -> Comparison:
    """Compare a measurement with the derived global minimizer of ``theorem``'s family on the same instance.

    theorem: an id of the catalogue (or of ``theorems``: a --theorems file path or a list of Theorem), or a
      Theorem. The instance: counts n_k and K from the measurement, width d = the layer's feature width (or
      ``width``), depth M (``depth``, else the theorem's default, else the number of weight matrices, else 1),
      lambda_W (``lam_w``: one value or one per layer) and lambda_H (``lam_h``) -- both required --, lambda_b
      (``lam_b``), ``bias`` / ``loss`` / ``activation`` (default: the theorem's ``defaults``).
    layer: which measured layer is compared (default the last, the one feeding W).
    Returns a Comparison; raises the project's input errors (bad instance, unknown id, assumptions)."""
    from ncverify.numerics.problem import Instance
    from ncverify.theory.derive import derive

    from ncverify.proofs_checks.catalogue import resolve

    th = resolve(theorem, theorems)
    th.prepare()
    if lam_w is None or lam_h is None:
        raise UsageError("comparing with a theorem needs the instance's lambdas: lambda_W (--lam-w) and lambda_H (--lam-h)")
    try:
        L = measurement.layers[layer]
    except IndexError:
        raise UsageError(f"layer {layer} does not exist ({len(measurement.layers)} measured)") from None
    dflt = th.defaults
    n_w = len(L.sv_layers) if L.sv_layers is not None else (1 if L.W is not None else 0)
    M = int(depth) if depth is not None else int(dflt.get("depth", n_w if n_w > 1 else 1))
    lw = list(lam_w) if isinstance(lam_w, (list, tuple)) else float(lam_w)
    inst = Instance.create(measurement.counts, width=int(width) if width is not None else L.d, depth=M, lam_w=lw,
                           lam_h=float(lam_h), loss=loss or dflt.get("loss", "mse"),
                           bias=bool(dflt.get("bias", False)) if bias is None else bool(bias), lam_b=float(lam_b),
                           activation=activation or dflt.get("activation"))
    th.validate(inst)
    pred = derive(th.family, inst, dps=dps)
    K = inst.K
    rows: list[ComparisonRow] = []
    notes: list[str] = []
    if "nc1" in th.shape_claims and L.nc1 is not None:
        rows.append(ComparisonRow("NC1 = (1/K) tr(Sigma_W Sigma_B^+)", "collapse", L.nc1, 0.0, L.nc1,
                                  "every sample at its class mean at the minimizer"))
    # class means
    tH = pred.gram_targets.get("HbarTHbar")
    centered = bool(inst.bias) if tH is None else bool(tH.centered or inst.bias)
    G = L.gram_centered if centered else L.gram
    cname = "class-mean Gram Hbar^T Hbar" + (" (centered)" if centered else "")
    if tH is not None:
        rows += _gram_rows(cname, G, tH, K)
        Gp = _predicted_gram(tH, K)
        if Gp is not None:
            sv_p = np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (Gp + Gp.T)), 0.0, None))
            m, p, e = _sv_error(L.sv_Hbar_centered if centered else L.sv_Hbar, sv_p)
            rows.append(ComparisonRow("singular values of Hbar" + (" (centered)" if centered else ""), "scale", m, p, e,
                                      "max_i |s_i - p_i| / max p (p: square roots of the predicted Gram's eigenvalues)"))
    if pred.class_mean_norms is not None:
        p = [_f(x) for x in pred.class_mean_norms]
        m = list(L.class_mean_norms_centered if centered else L.class_mean_norms)
        relabel = tH is not None and tH.relabel
        if relabel:
            p, m = _sorted_desc(p), _sorted_desc(m)
        top = max(p) if p else 0.0
        err = max(abs(a - b) for a, b in zip(m, p)) if p else None
        rows.append(ComparisonRow("class-mean norms ||hbar_k" + (" - hbar_G||" if centered else "||"), "scale", m, p,
                                  None if err is None else (err / top if top > 0 else err),
                                  "max_k |m_k - p_k| / max p" + (" (sorted: classes interchangeable)" if relabel else
                                                                  " (class order: sorted label values)")))
    if L.W is None:
        notes.append("no classifier weights given: W W^T, the singular values of W, W Hbar and W H not compared")
    else:
        tW = pred.gram_targets.get("WWT")
        if tW is not None:
            rows += _gram_rows("classifier Gram W W^T", L.gram_W, tW, K)
        sv = pred.singular_values
        if sv.weights_product is not None:
            m, p, e = _sv_error(L.sv_W, [_f(x) for x in sv.weights_product])
            rows.append(ComparisonRow("singular values of W = W_M...W_1", "scale", m, p, e, "max_i |s_i - p_i| / max p"))
        if sv.layers is not None and L.sv_layers is not None and len(L.sv_layers) == len(sv.layers):
            for j, (ms, ps) in enumerate(zip(L.sv_layers, sv.layers), start=1):
                m, p, e = _sv_error(ms, [_f(x) for x in ps])
                rows.append(ComparisonRow(f"singular values of W_{j}", "scale", m, p, e, "max_i |s_i - p_i| / max p"))
        elif sv.layers is not None and len(sv.layers) > 1:
            notes.append(f"per-layer singular values not compared: give the {len(sv.layers)} weight matrices W_1..W_M")
        p_wh = _predicted_w_hbar(pred, inst)
        if p_wh is not None:
            m, p, e = _sv_error(L.sv_WHbar_centered if centered else L.sv_WHbar, p_wh[0])
            rows.append(ComparisonRow("singular values of W Hbar" + (" (centered)" if centered else ""), "scale", m, p, e,
                                      f"max_i |s_i - p_i| / max p ({p_wh[1]})"))
        if sv.output is not None and L.sv_output is not None:
            m, p, e = _sv_error(L.sv_output_centered if centered else L.sv_output, [_f(x) for x in sv.output])
            rows.append(ComparisonRow("singular values of the outputs W H" + (" (centered)" if centered else "")
                                      + " (all samples)", "scale", m, p, e, "max_i |s_i - p_i| / max p"))
        if pred.bias is not None:
            p = [_f(x) for x in pred.bias]
            if L.bias is None:
                notes.append("the prediction has a bias b; give --bias FILE to compare it")
            else:
                top = max(abs(x) for x in p)
                b = np.asarray(L.bias)
                name = "bias b"
                if centered:  # the bias seen by centered features: the same logits W h + b = W (h - hbar_G) + b_c
                    b = b + L.W @ L.hbar_G
                    name = "bias b + W hbar_G (of centered features)"
                meas = [float(v) for v in b]
                err = max(abs(a - c) for a, c in zip(meas, p))
                rows.append(ComparisonRow(name, "scale", meas, p, err / top if top > 0 else err,
                                          "max_k |b_k - p_k| / max |p|" if top > 0 else "max_k |b_k| (predicted b = 0)"))
    flags = inst.cli_flags()
    return Comparison(th.id, th.family, {"flags": flags, "counts": list(inst.counts), "width": inst.width,
                                         "depth": inst.depth, "lam_w": list(inst.lam_w), "lam_h": inst.lam_h,
                                         "lam_b": inst.lam_b, "bias": inst.bias, "loss": inst.loss,
                                         "activation": inst.activation},
                      f"ncverify derive {th.id} {flags}", L.name, rows,
                      None if pred.objective is None else _f(pred.objective), notes)


def _predicted_w_hbar(pred: Any, inst: Any) -> tuple[list[float], str] | None:
    """Predicted singular values of W Hbar (K x K): from the stated matrix, from the diagonal of a GOF/OF
    target (W hbar_k = w_k e_k), or for balanced classes from the outputs' (sv(W H) = sqrt(n) sv(W Hbar) when
    every sample sits at its class mean)."""
    t = pred.gram_targets.get("WHbar")
    if t is not None and t.matrix is not None:
        A = np.array([[float(x) for x in r] for r in t.matrix])
        return metrics.singular_values(A), "from the predicted W Hbar"
    if t is not None and t.kind.upper() in ("OF", "GOF") and t.diag is not None:
        return [abs(_f(x)) for x in t.diag], "|w_k| of the predicted W hbar_k = w_k e_k"
    out = pred.singular_values.output
    if out is not None and len(set(inst.counts)) == 1:
        n = inst.counts[0]
        return [_f(x) / math.sqrt(n) for x in out], "outputs' singular values / sqrt(n)"
    return None


__all__ = ["measure", "compare", "Measurement", "Comparison", "ComparisonRow", "MeasureInputError"]
