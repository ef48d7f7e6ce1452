"""Diagnostics at a parameter point: Hessian spectrum, objective rounding scale, gradient scale.

torch and numpy only (never SymPy). Notation as in ``numerics.models``: the flat parameter vector
theta = (vec W_1, ..., vec W_M, vec H[, b]) (``Params.flatten`` order) of an instance ``inst``;
f = ``models.objective``; P = the number of scalars in theta.

* ``hessian_info(inst, x)``: ||Hess f(theta)||_2, its smallest eigenvalue, and mu, the smallest
  eigenvalue above the symmetry cutoff sqrt(eps) ||Hess f||_2 (eigenvalues at or below the cutoff in
  absolute value are counted as zero modes: flat directions of the symmetry orbit); dense up to
  ``DENSE_MAX_PARAMS`` parameters, above that Hessian-free (``numerics.curvature``: Lanczos on Hessian-vector
  products with the symmetry orbit projected out, mu a lower bound from the Ritz residual);
* ``objective_scale(inst, params)``: S, the rounding scale of f in the evaluation tolerance;
* ``evaluate_point(inst, point)``: objective, ||grad f||, the gradient's rounding scale, ||theta||,
  ``hessian_info``, S and P at a float64 point;
* ``parameter_count(params_numpy)``: P of a ``Params.to_numpy()`` dict.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ncverify.numerics import losses, metrics, models
from ncverify.numerics.curvature import DENSE_MAX_PARAMS
from ncverify.numerics.problem import Instance

#: float64 machine epsilon (2^-52).
EPS = float(np.finfo(np.float64).eps)
#: ``hessian_info`` forms the dense P x P Hessian up to ``DENSE_MAX_PARAMS`` (defined in ``numerics.curvature``)
#: ``evaluate_point`` needs only ||Hess||: above this P it takes the Lanczos estimate (``curvature.hessian_norm``,
#: a few percent below ||Hess||; it scales a rounding-level gradient tolerance) instead of the dense spectrum
POINT_DENSE_MAX = 100
#: Default ``max_params`` of ``hessian_info``: no curvature above this P. Below it the Lanczos steps are capped so
#: that their vectors fit in the memory budget (``resources.lanczos_steps``: (k + 1) P float64 numbers)
HESSIAN_MAX_PARAMS = 20_000_000


def hessian_info(inst: Instance, x: torch.Tensor, max_params: int = HESSIAN_MAX_PARAMS,
                 dense_max: int = DENSE_MAX_PARAMS) -> dict:
    """Hessian spectrum of f at the flat point ``x`` (= theta, ``Params.flatten`` order for ``inst``).

    Returns {"available": True, "method": "dense", "norm": ||Hess||_2 (max |eigenvalue|), "min_eig": the smallest
    eigenvalue, "cutoff": sqrt(eps) ||Hess||_2 (eps = ``EPS``), "mu": the smallest eigenvalue above
    ``cutoff`` (0.0 if none), "zero_modes": the number of eigenvalues with |lambda| <= ``cutoff``} when P <=
    ``dense_max``; above it ``curvature.transverse_curvature(inst, x, above_cutoff=True)`` (method "lanczos": the
    same mu, from Hessian-vector products, as a lower bound with its residual; "zero_modes" there is the dimension
    of the projected symmetry orbit); {"available": False, "reason": ...} when ``x`` has more than ``max_params``
    entries (the reason names the parameter count).
    """
    Y = models.targets(inst, dtype=x.dtype, device=x.device)
    f = models.flat_objective(inst, Y)
    if x.numel() > max_params:
        return {"available": False, "reason": f"{x.numel()} parameters: above the curvature limit of {max_params}"}
    if x.numel() > dense_max:
        from ncverify.numerics import curvature, resources

        steps = resources.lanczos_steps(x.numel())
        if steps < resources.MIN_LANCZOS_STEPS:
            return {"available": False, "reason": f"{x.numel()} parameters: {steps} Lanczos vectors fit in the memory "
                                                  f"budget of {resources.human(resources.memory_budget())} "
                                                  f"(fewer than {resources.MIN_LANCZOS_STEPS})"}
        return curvature.transverse_curvature(inst, x.detach(), above_cutoff=True, max_iter=steps)
    try:  # all P Hessian-vector products in one vectorized backward pass (about 10x faster than P passes)
        Hm = torch.autograd.functional.hessian(f, x.detach(), vectorize=True)
    except RuntimeError:  # a registered loss whose operations vmap does not support
        Hm = torch.autograd.functional.hessian(f, x.detach())
    evals = torch.linalg.eigvalsh(0.5 * (Hm + Hm.T)).cpu().numpy()
    norm = float(np.max(np.abs(evals)))
    cutoff = math.sqrt(EPS) * max(norm, 1e-300)
    above = evals[evals > cutoff]
    return {"available": True, "method": "dense", "norm": norm, "min_eig": float(evals.min()), "cutoff": cutoff,
            "mu": float(above.min()) if above.size else 0.0, "zero_modes": int(np.sum(np.abs(evals) <= cutoff))}


def objective_scale(inst: Instance, params: models.Params) -> float:
    """S in the evaluation tolerance at ``params``: the sum of |terms| of f (``models.objective_parts``:
    |data| + sum_j |lambda_{W_j}/2 ||W_j||^2| + |lambda_H/2 ||H||^2| + |lambda_b/2 ||b||^2|) plus the
    rounding scale of the data term, with Z = ``models.forward(inst, params)`` and Y the labels:
    CE (and registered losses): log-sum-exp loses eps * max_j |z_ij| per sample, S += mean_i max_j |z_ij|;
    MSE: the residual r_i = z_i - y_i loses eps |z_i| per sample, squared against |r_i|:
    S += mean_i ||r_i|| ||z_i||."""
    parts = models.objective_parts(inst, params)
    S = abs(parts["data"]) + sum(abs(v) for v in parts["weights"]) + abs(parts["features"]) + abs(parts.get("bias", 0.0))
    with torch.no_grad():
        Z = models.forward(inst, params)
        if inst.loss == "ce":
            S += float(Z.abs().amax(dim=0).mean())
        else:
            R = Z - models.targets(inst, dtype=Z.dtype, device=Z.device)
            S += float((R.norm(dim=0) * Z.norm(dim=0)).mean())
    return S


def data_gradient_terms(inst: Instance, params: models.Params, Y: torch.Tensor) -> float:
    """The size of the terms that the data term's gradient sums, which its float64 rounding is relative to:
    with D = dL/dZ (K x N, the logits' gradient, 1/N included) and Z = A F (+ b 1^T), A = W_M...W_1 (or
    W_M...W_2 after a ReLU), F = H (or s(W_1 H)):  || |D| 1 ||_2 + ||D||_F (||A||_F + ||F||_F).

    The gradient itself can be 0 while these terms are not: at W = H = 0, b = 0 of cross-entropy with a
    bias, db = D 1 sums N entries (1/K - y_ki)/N that cancel exactly, and float64 leaves about 1e-17. A
    tolerance built only from ||grad f|| and the penalty gradients would then be about 1e-30. Likewise D itself
    can cancel (p_y - 1 when p_y is close to 1): for a registered loss with registered term magnitudes
    (``losses.gradient_terms``) D is replaced by the larger of |D| and those terms (1/N included)."""
    Z, _, D = _logit_gradient(inst, params, Y)
    if inst.loss not in losses.BUILTIN:  # a registered loss: the magnitudes of the terms D sums, when registered
        with torch.no_grad():
            T = losses.gradient_terms(inst.loss, Z, Y.argmax(dim=0))
        if T is not None:
            D = torch.maximum(D.abs(), T / Z.shape[1])
    return _propagated(inst, params, D)


def _logit_gradient(inst: Instance, params: models.Params, Y: torch.Tensor, create_graph: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Z, Z with grad, D = dL/dZ) at ``params``; ``create_graph`` keeps D differentiable in Z."""
    with torch.no_grad():
        Z = models.forward(inst, params)
    Zr = Z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (D,) = torch.autograd.grad(models.data_term(inst, Zr, Y), Zr, create_graph=create_graph)
    return Z, Zr, D


def _propagated(inst: Instance, params: models.Params, D: torch.Tensor) -> float:
    """|| |D| 1 ||_2 + ||D||_F (||A||_F + ||F||_F) for a K x N matrix D of logit-gradient terms (see
    ``data_gradient_terms``)."""
    Ws = list(params.weights)
    if inst.activation == "relu-deep":  # F = the features entering W_M
        F = params.H
        for j, W in enumerate(Ws[:-1]):
            F = models.activation_fn(inst)(W @ F)
        Ws = Ws[-1:]
    elif inst.activation is not None and inst.depth > 1:
        F = models.activation_fn(inst)(Ws[0] @ params.H)
        Ws = Ws[1:]
    else:
        F = params.H
    A_norm = float(np.linalg.norm(metrics.product(Ws)))
    return float(D.abs().sum(dim=1).norm() + D.norm() * (A_norm + F.norm()))


def loss_rounding_terms(inst: Instance, params: models.Params, Y: torch.Tensor) -> float:
    """For a registered loss (its formula is not known here): the rounding of its logit gradient that comes from
    relative rounding of the logits it computes with. A relative error e_i z_i (|e_i| <= eps) of the logits the
    loss sees (z, or z / T inside a temperature, ...) moves D = dL/dZ by Hess_Z L (e z), so its size is bounded by
    E = |Hess_Z L| |Z| (per sample: |H_i| |z_i|, the K x K Hessian of that sample's loss, 1/N included; K
    Hessian-vector products give every H_i's columns at once), propagated to the parameters like D:
    || |E| 1 || + ||E|| (||A|| + ||F||). For cross-entropy with a temperature T this is about max|z|/T times
    the data-gradient terms: the built-in factor 1 + max|z| (derived for log-softmax(z)) misses the 1/T."""
    Z, Zr, D = _logit_gradient(inst, params, Y, create_graph=True)
    E = torch.zeros_like(Z)
    with torch.enable_grad():
        for c in range(inst.K):
            V = torch.zeros_like(Z)
            V[c] = 1.0
            (Hc,) = torch.autograd.grad(D, Zr, grad_outputs=V, retain_graph=True)  # Hc[:, i] = H_i[:, c]
            E = E + Hc.detach().abs() * Z[c].abs()[None, :]
    return _propagated(inst, params, E)


def evaluate_point(inst: Instance, point: dict) -> dict:
    """Objective, gradient norm, gradient scale and Hessian norm at a float64 point.

    ``point`` = {"weights": [W_1, ..., W_M], "H": H, "b": b or None} (numpy arrays, the
    ``Params.to_numpy`` layout). Returns {"objective": f(theta), "grad_norm": ||grad f(theta)||_2,
    "grad_scale": 2 ||grad pen|| + ||grad f|| + ``data_gradient_terms`` (pen = the penalty terms; times
    1 + max|z| for non-MSE losses; plus ``loss_rounding_terms`` for registered losses), "theta_norm": ||theta||_2, "hessian": ``hessian_info`` at theta (above
    ``POINT_DENSE_MAX`` only its "norm", from ``curvature.hessian_norm``), "scale": S =
    ``objective_scale``, "P": the number of parameters}.
    """
    params = models.Params.from_numpy(point)
    x = params.flatten().detach().clone().requires_grad_(True)
    Y = models.targets(inst, dtype=x.dtype)
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
    if x.numel() > POINT_DENSE_MAX:  # only ||Hess|| is needed here
        from ncverify.numerics import curvature

        hess = {"available": True, "method": "lanczos-norm", "norm": curvature.hessian_norm(inst, x.detach())}
    else:
        hess = hessian_info(inst, x.detach())
    grad_scale = 2 * gpen + float(g.norm()) + data_gradient_terms(inst, params, Y)
    if inst.loss != "mse":
        # softmax-type losses: exp(z (1 + e)) = exp(z)(1 + z e), so the data gradient carries a relative
        # rounding error of about max|z| eps on top of the operations' own
        with torch.no_grad():
            grad_scale *= 1.0 + float(models.forward(inst, params).abs().max())
        if inst.loss != "ce":  # a registered loss: its own rounding sensitivity (e.g. a temperature's 1/T)
            grad_scale += loss_rounding_terms(inst, params, Y)
    return {"objective": float(val.detach()), "grad_norm": float(g.norm()), "grad_scale": grad_scale,
            "theta_norm": float(x.detach().norm()), "hessian": hess, "scale": objective_scale(inst, params),
            "P": x.numel()}


def parameter_count(params_numpy: dict) -> int:
    """P: the number of scalars in ``params_numpy`` = {"weights": [W_1, ..., W_M], "H": H, "b": b or None}
    (sum_j size(W_j) + size(H) + size(b), b counting 0 when None)."""
    p = params_numpy
    return int(sum(int(np.prod(np.shape(a))) for a in p["weights"]) + np.size(p["H"])
               + (0 if p["b"] is None else np.size(p["b"])))
