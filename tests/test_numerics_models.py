"""Models: labels, parameters, objectives (values and autograd gradients), devices, layering."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ncverify.numerics import models
from ncverify.numerics.models import Params, flat_objective, init_params, labels, objective, objective_parts
from ncverify.numerics.problem import Instance, InstanceError


def test_labels_one_hot_class_by_class():
    Y = labels([3, 1, 2])
    assert Y.dtype == torch.float64 and Y.shape == (3, 6)
    assert torch.equal(Y.sum(0), torch.ones(6))
    assert Y.argmax(0).tolist() == [0, 0, 0, 1, 2, 2]
    s = torch.linalg.svdvals(Y)
    assert torch.allclose(torch.sort(s).values, torch.sqrt(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))


def test_params_roundtrip_and_init():
    inst = Instance.create([2, 3], width=3, depth=3, bias=True, lam_b=0.1)
    p = init_params(inst, torch.Generator().manual_seed(5))
    assert [tuple(t.shape) for t in p.tensors()] == [(3, 3), (3, 3), (2, 3), (3, 5), (2,)]
    assert torch.equal(p.b, torch.zeros(2))
    v = p.flatten()
    assert v.numel() == models.num_params(inst)
    q = Params.unflatten(inst, v)
    assert all(torch.equal(a, b) for a, b in zip(p.tensors(), q.tensors()))
    p2 = init_params(inst, torch.Generator().manual_seed(5))
    assert torch.equal(p2.flatten(), v)
    n = p.to_numpy()
    assert set(n) == {"weights", "H", "b"} and n["H"].dtype == np.float64
    assert torch.equal(Params.from_numpy(n).flatten(), v)
    with pytest.raises(InstanceError):
        Params.unflatten(inst, v[:-1])


def test_objective_parts_match_formula():
    inst = Instance.create([2, 3, 1], width=4, depth=2, lam_w=[0.1, 0.2], lam_h=0.3, bias=True, lam_b=0.4)
    p = init_params(inst, torch.Generator().manual_seed(1), std=0.7)
    p.b = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    parts = objective_parts(inst, p)
    W1, W2, H, b = p.weights[0], p.weights[1], p.H, p.b
    Z = W2 @ W1 @ H + b[:, None]
    Y = labels(inst.counts)
    N = 6
    assert parts["data"] == pytest.approx(float(((Z - Y) ** 2).sum() / (2 * N)), rel=1e-14)
    assert parts["weights"] == pytest.approx([0.05 * float((W1 ** 2).sum()), 0.1 * float((W2 ** 2).sum())], rel=1e-14)
    assert parts["features"] == pytest.approx(0.15 * float((H ** 2).sum()), rel=1e-14)
    assert parts["bias"] == pytest.approx(0.2 * float((b ** 2).sum()), rel=1e-14)
    assert parts["total"] == pytest.approx(float(objective(inst, p)), rel=1e-14)
    ce = inst.with_(loss="ce")
    expect = float(torch.nn.functional.cross_entropy(Z.T, Y.argmax(0)))
    assert objective_parts(ce, p)["data"] == pytest.approx(expect, rel=1e-14)


def test_forward_relu_between_w1_and_w2():
    inst = Instance.create([2, 2], width=3, depth=3, activation="relu")
    p = init_params(inst, torch.Generator().manual_seed(2), std=1.0)
    W1, W2, W3 = p.weights
    assert torch.allclose(models.forward(inst, p), W3 @ W2 @ torch.relu(W1 @ p.H))
    lin = inst.with_(activation="identity")
    assert torch.allclose(models.forward(lin, p), W3 @ W2 @ W1 @ p.H)


CASES = [
    dict(loss="mse"),
    dict(loss="mse", bias=True),
    dict(loss="mse", bias=True, lam_b=0.3),
    dict(loss="ce"),
    dict(loss="ce", bias=True, lam_b=0.2),
    dict(loss="mse", depth=3),
    dict(loss="ce", depth=3, bias=True),
    dict(loss="mse", depth=2, activation="identity"),
    dict(loss="mse", depth=2, activation="relu"),
    dict(loss="ce", depth=3, activation="relu", bias=True),
]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_autograd_gradient_matches_finite_differences(kw):
    kw = dict(kw)
    depth = kw.pop("depth", 1)
    inst = Instance.create([2, 3, 1], width=3, depth=depth, lam_w=[0.1 * (j + 1) for j in range(depth)],
                           lam_h=0.05, **kw)
    f = flat_objective(inst, labels(inst.counts))
    gen = torch.Generator().manual_seed(11)
    for _ in range(50):  # for ReLU: a point whose pre-activations are away from the kink
        p = init_params(inst, gen, std=0.8)
        if p.b is not None:
            p.b = torch.randn(inst.K, generator=gen, dtype=torch.float64)
        if inst.activation != "relu" or float((p.weights[0] @ p.H).abs().min()) > 1e-3:
            break
    else:  # pragma: no cover
        pytest.fail("no point away from the ReLU kink")
    x = p.flatten().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_resolve_device():
    assert models.resolve_device("cpu") == torch.device("cpu")
    assert models.resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(InstanceError, match="device must be one of"):
        models.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InstanceError, match="device cuda requested but CUDA is not available"):
            models.resolve_device("cuda")


def test_numerics_does_not_import_sympy():
    code = ("import sys, ncverify.numerics.models, ncverify.numerics.solvers, ncverify.numerics.metrics, ncverify.numerics.ground_truth; "
            "bad = [m for m in ('sympy', 'ncverify.theory', 'ncverify.proofs_checks') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ground_truth_is_numpy_only():
    code = ("import sys, ncverify.numerics.ground_truth; "
            "assert 'torch' not in sys.modules and 'sympy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
