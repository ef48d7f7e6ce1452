"""The full matrix objectives of the (deep linear / extended) unconstrained-features model, in torch.

Notation (../shared/THEOREMS.md) and argument names:

* K classes, counts n_1..n_K (``inst.counts``), N = sum_k n_k, samples ordered class by class;
* Y in R^{K x N}: one-hot labels (``labels``);
* H in R^{d x N}: free features (``Params.H``); W_1..W_M (``Params.weights[0..M-1]``), W_j in R^{d x d}
  for j < M and W_M in R^{K x d}; b in R^K (``Params.b``, only when ``inst.bias``);
* lambda_{W_j} = ``inst.lam_w[j-1]``, lambda_H = ``inst.lam_h``, lambda_b = ``inst.lam_b``.

Model output (logits for CE):  Z = W_M ... W_2 s(W_1 H) + b 1_N^T, with s = identity for the deep
linear UFM (``inst.activation`` None or "identity") and s = ReLU (entrywise) for the extended UFM with
``activation="relu"`` ([P2]: the activation sits between W_1 and W_2 only).

Objective (normalizations exactly as THEOREMS.md):

    f = data + sum_j lambda_{W_j}/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2
    data = 1/(2N) ||Z - Y||_F^2                                   (MSE)
    data = (1/N) sum_i CE(z_i, y_i) = -(1/N) sum_i <y_i, log softmax(z_i)>   (CE)

The bias penalty is lambda_b/2 ||b||^2 (lambda_b = 0: unregularized bias).
Everything is float64 by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ncverify.numerics import losses
from ncverify.numerics.problem import Instance, InstanceError

DEVICES = ("auto", "cpu", "cuda")


def labels(counts: Sequence[int], dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Y in R^{K x N}: one-hot columns, n_k columns equal to e_k, classes in order (K = len(counts))."""
    counts = [int(c) for c in counts]
    idx = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    Y = torch.zeros(len(counts), sum(counts), dtype=dtype)
    Y[idx, torch.arange(idx.numel())] = 1.0
    return Y.to(device)


def targets(inst: Instance, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """Y of ``inst``: the one-hot labels, or Y = T E for real-valued targets (``Instance.target_prototypes``)."""
    Y = labels(inst.counts, dtype=dtype)
    T = inst.target_prototypes()
    if T is not None:
        Y = torch.tensor(T, dtype=dtype) @ Y
    return Y.to(device)


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda when available else cpu; "cpu"; "cuda" (raises InstanceError without CUDA)."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise InstanceError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InstanceError("device cuda requested but CUDA is not available")
        return torch.device(name)
    raise InstanceError(f"device must be one of {', '.join(DEVICES)} (or cuda:<index>), got {device!r}")


def shapes(inst: Instance) -> list[tuple[int, ...]]:
    """Shapes of (W_1, ..., W_M, H[, b]) in the order used by ``Params.flatten``."""
    d, K, M = inst.width, inst.K, inst.depth
    out: list[tuple[int, ...]] = [(d, d)] * (M - 1) + [(K, d), (d, inst.N)]
    if inst.bias:
        out.append((K,))
    return out


def num_params(inst: Instance) -> int:
    """Total number of scalar parameters of ``inst``."""
    return int(sum(int(np.prod(s)) for s in shapes(inst)))


@dataclass
class Params:
    """Parameters of one model: ``weights`` = [W_1, ..., W_M], ``H`` (d x N), ``b`` (K) or None."""

    weights: list[torch.Tensor]
    H: torch.Tensor
    b: torch.Tensor | None = None

    @property
    def depth(self) -> int:
        return len(self.weights)

    def tensors(self) -> list[torch.Tensor]:
        """(W_1, ..., W_M, H[, b]) in flattening order."""
        return list(self.weights) + [self.H] + ([self.b] if self.b is not None else [])

    def flatten(self) -> torch.Tensor:
        """One vector: vec(W_1), ..., vec(W_M), vec(H)[, b] (row-major), differentiable."""
        return torch.cat([t.reshape(-1) for t in self.tensors()])

    @classmethod
    def unflatten(cls, inst: Instance, vec: torch.Tensor) -> "Params":
        """Inverse of ``flatten`` for ``inst``'s shapes; returns views of ``vec`` (differentiable)."""
        shp = shapes(inst)
        sizes = [int(np.prod(s)) for s in shp]
        if vec.numel() != sum(sizes):
            raise InstanceError(f"parameter vector has {vec.numel()} entries, the instance needs {sum(sizes)}")
        parts = [p.view(s) for p, s in zip(torch.split(vec, sizes), shp)]
        M = inst.depth
        return cls(weights=parts[:M], H=parts[M], b=parts[M + 1] if inst.bias else None)

    def detach(self) -> "Params":
        """A copy detached from autograd (cloned, so later in-place updates do not leak)."""
        return Params([w.detach().clone() for w in self.weights], self.H.detach().clone(),
                      None if self.b is None else self.b.detach().clone())

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "Params":
        """Moved / cast copy."""
        f = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
        return Params([f(w) for w in self.weights], f(self.H), None if self.b is None else f(self.b))

    def to_numpy(self) -> dict:
        """{"weights": [W_1, ..., W_M], "H": H, "b": b or None} as float64 numpy arrays (on the CPU)."""
        f = lambda t: t.detach().to("cpu", torch.float64).numpy().copy()  # noqa: E731
        return {"weights": [f(w) for w in self.weights], "H": f(self.H), "b": None if self.b is None else f(self.b)}

    @classmethod
    def from_numpy(cls, data: dict, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> "Params":
        """Inverse of ``to_numpy`` (e.g. to evaluate the objective at a constructed point)."""
        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).to(device=device, dtype=dtype)  # noqa: E731
        b = data.get("b")
        return cls([f(w) for w in data["weights"]], f(data["H"]), None if b is None else f(b))


def check_params(inst: Instance, params: Params) -> None:
    """Raise InstanceError unless ``params`` has ``inst``'s shapes."""
    got = [tuple(t.shape) for t in params.tensors()]
    if got != shapes(inst) or (params.b is None) == inst.bias:
        raise InstanceError(f"parameter shapes {got} do not match the instance's {shapes(inst)}")


def init_params(inst: Instance, generator: torch.Generator, std: float = 0.1,
                dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> Params:
    """Random start: every entry of W_1..W_M and H i.i.d. N(0, std^2); the bias b starts at 0.

    Draws in float64 on the CPU from ``generator`` (in the order W_1, ..., W_M, H), then casts and
    moves, so every device and dtype starts from the same point for the same generator state.
    """
    ws = []
    for s in shapes(inst)[: inst.depth]:
        ws.append(torch.randn(s, generator=generator, dtype=torch.float64) * std)
    H = torch.randn((inst.width, inst.N), generator=generator, dtype=torch.float64) * std
    b = torch.zeros(inst.K, dtype=torch.float64) if inst.bias else None
    return Params(ws, H, b).to(device=device, dtype=dtype)


def activation_fn(inst: Instance):
    """s: identity (None / "identity") or ReLU ("relu", "relu-deep")."""
    return torch.relu if inst.activation in ("relu", "relu-deep") else (lambda x: x)


def activated(inst: Instance, j: int) -> bool:
    """Whether s follows layer W_{j+1} (0-based j < M - 1): after W_1 for the extended UFM, after every layer but
    the last for the DUFM ("relu-deep")."""
    return j < inst.depth - 1 and (j == 0 or inst.activation == "relu-deep")


def forward(inst: Instance, params: Params) -> torch.Tensor:
    """Z = W_M ... W_2 s(W_1 H) + b 1_N^T  (K x N; s = identity unless ``inst.activation`` is a ReLU), or
    W_M s(W_{M-1} ... s(W_1 H)) + b 1_N^T for the DUFM ("relu-deep")."""
    s = activation_fn(inst)
    X = params.H
    for j, W in enumerate(params.weights):
        X = W @ X
        if activated(inst, j):
            X = s(X)
    if params.b is not None:
        X = X + params.b[:, None]
    return X


def data_term(inst: Instance, Z: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """MSE: 1/(2N) ||Z - Y||_F^2;  CE: -(1/N) sum_i <y_i, log softmax(z_i)> (mean cross-entropy);
    a registered loss (``numerics.losses``, e.g. "ce-ls:0.1"): (1/N) sum_i loss(z_i, y_i)."""
    N = Z.shape[1]
    if inst.loss == "mse":
        return 0.5 * ((Z - Y) ** 2).sum() / N
    if inst.loss == "ce":
        return -(Y * torch.log_softmax(Z, dim=0)).sum() / N
    return losses.data_term(inst.loss, Z, Y)


def objective(inst: Instance, params: Params, Y: torch.Tensor | None = None) -> torch.Tensor:
    """f(W_1..W_M, H, b) (scalar tensor, differentiable); see the module docstring for the formula.

    Y: the label matrix (``targets(inst)`` on the parameters' device/dtype if None).
    """
    if Y is None:
        Y = targets(inst, dtype=params.H.dtype, device=params.H.device)
    f = data_term(inst, forward(inst, params), Y)
    for lam, W in zip(inst.lam_w, params.weights):
        f = f + 0.5 * lam * (W * W).sum()
    f = f + 0.5 * inst.lam_h * (params.H * params.H).sum()
    if params.b is not None and inst.lam_b > 0:
        f = f + 0.5 * inst.lam_b * (params.b * params.b).sum()
    return f


def objective_parts(inst: Instance, params: Params) -> dict:
    """{"data", "weights" (list: lambda_{W_j}/2 ||W_j||^2), "features" (lambda_H/2 ||H||^2),
    "bias" (lambda_b/2 ||b||^2, 0 without a bias), "total"} as Python floats (float64 arithmetic)."""
    with torch.no_grad():
        p = params.to(dtype=torch.float64)
        Y = targets(inst, dtype=torch.float64, device=p.H.device)
        data = float(data_term(inst, forward(inst, p), Y))
        weights = [float(0.5 * lam * (W * W).sum()) for lam, W in zip(inst.lam_w, p.weights)]
        features = float(0.5 * inst.lam_h * (p.H * p.H).sum())
        bias = float(0.5 * inst.lam_b * (p.b * p.b).sum()) if p.b is not None else 0.0
    return {"data": data, "weights": weights, "features": features, "bias": bias,
            "total": data + sum(weights) + features + bias}


def flat_objective(inst: Instance, Y: torch.Tensor):
    """x -> f(unflatten(x)): the objective as a function of one flat parameter vector."""
    def f(x: torch.Tensor) -> torch.Tensor:
        return objective(inst, Params.unflatten(inst, x), Y)
    return f
