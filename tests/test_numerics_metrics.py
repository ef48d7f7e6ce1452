"""NC metrics: exactly 0 on constructed OF / simplex-ETF / GOF geometries, positive on perturbed ones,
nc1 never negative."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ncverify.numerics import metrics
from ncverify.numerics.models import Params
from ncverify.numerics.problem import Instance

ZERO = 1e-12  # exact constructions: only float64 rounding of O(1) entries remains
CLEAR = 1e-3  # a 10% perturbation moves every metric far above rounding


def _orthonormal(rng: np.random.Generator, d: int, K: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((d, K)))
    return Q * np.sign(np.diag(R))


def _geometry(kind: str, rng: np.random.Generator, d: int, K: int):
    """Class means Hbar (d x K) with Gram proportional to the target T, and T's argument for nc2."""
    Q = _orthonormal(rng, d, K)
    if kind == "OF":
        return 1.7 * Q, "OF"
    if kind == "ETF":
        return 0.8 * Q @ (np.eye(K) - np.ones((K, K)) / K), "ETF"
    t = rng.uniform(0.2, 2.0, size=K)
    t[-1] = 0.0  # a class collapsed to zero (GOF allows it)
    return Q * t, t ** 2


def _features(Hbar: np.ndarray, counts) -> np.ndarray:
    return np.repeat(Hbar, counts, axis=1)


@pytest.mark.parametrize("kind", ["OF", "ETF", "GOF"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_vanish_on_exact_geometry(kind, seed):
    rng = np.random.default_rng(seed)
    K, d = 4, 6
    counts = [3, 5, 2, 4]
    Hbar, target = _geometry(kind, rng, d, K)
    H = _features(Hbar, counts)
    assert np.allclose(metrics.class_means(H, counts), Hbar, atol=ZERO)
    G = Hbar.T @ Hbar
    W = 2.5 * Hbar.T  # self-dual classifier
    assert metrics.nc1(H, counts) <= ZERO
    assert metrics.nc2(G, target) <= ZERO
    assert metrics.nc2(W @ W.T, target) <= ZERO
    assert metrics.nc2_diagonal(G) <= (ZERO if kind != "ETF" else 1.0)
    duality, prod = metrics.nc3(W, Hbar, target)
    assert duality <= ZERO
    assert prod <= ZERO  # W Hbar = 2.5 G, proportional to T


@pytest.mark.parametrize("kind", ["OF", "ETF", "GOF"])
def test_metrics_positive_on_perturbed_geometry(kind):
    rng = np.random.default_rng(7)
    K, d = 4, 6
    counts = [3, 5, 2, 4]
    Hbar, target = _geometry(kind, rng, d, K)
    Hp = Hbar + 0.1 * np.linalg.norm(Hbar) / np.sqrt(Hbar.size) * rng.standard_normal(Hbar.shape)
    H = _features(Hp, counts) + 0.1 * rng.standard_normal((d, sum(counts)))
    W = 2.5 * Hbar.T + 0.1 * rng.standard_normal((K, d))
    assert metrics.nc1(H, counts) > CLEAR
    assert metrics.nc2(Hp.T @ Hp, target) > CLEAR
    assert metrics.nc2(W @ W.T, target) > CLEAR
    assert metrics.nc3_duality(W, Hp) > CLEAR
    assert metrics.nc3_product(W, Hp, "OF" if kind != "ETF" else "ETF") > CLEAR
    if kind != "ETF":
        assert metrics.nc2_diagonal(Hp.T @ Hp) > CLEAR


def test_wrong_target_is_detected():
    rng = np.random.default_rng(3)
    Hbar, _ = _geometry("OF", rng, 5, 4)
    assert metrics.nc2(Hbar.T @ Hbar, "ETF") > 0.1
    Hbar, _ = _geometry("ETF", rng, 5, 4)
    assert metrics.nc2(Hbar.T @ Hbar, "OF") > 0.1


@given(
    K=st.integers(1, 5),
    d=st.integers(1, 6),
    n=st.lists(st.integers(1, 4), min_size=5, max_size=5),
    data=st.data(),
)
def test_nc1_never_negative(K, d, n, data):
    counts = n[:K]
    H = data.draw(arrays(np.float64, (d, sum(counts)), elements=st.floats(-1e3, 1e3, allow_subnormal=False)))
    v = metrics.nc1(H, counts)
    assert v >= 0.0
    assert metrics.nc1(H, counts, global_mean="class_means") >= 0.0


def test_nc1_zero_for_identical_samples_and_matches_naive_formula():
    rng = np.random.default_rng(0)
    counts = [4, 6, 3]
    Hbar = rng.standard_normal((5, 3))
    assert 0.0 <= metrics.nc1(_features(Hbar, counts), counts) <= 1e-24  # rounding of the class means only
    H = _features(Hbar, counts) + 0.3 * rng.standard_normal((5, 13))
    # naive (1/K) tr(Sigma_W pinv(Sigma_B)) on a well-conditioned example
    mu = metrics.class_means(H, counts)
    Hc = H - np.repeat(mu, counts, axis=1)
    SW = Hc @ Hc.T / H.shape[1]
    D = mu - H.mean(axis=1, keepdims=True)
    SB = D @ D.T / 3
    naive = np.trace(SW @ np.linalg.pinv(SB, rcond=1e-10, hermitian=True)) / 3
    assert metrics.nc1(H, counts) == pytest.approx(naive, rel=1e-9)


def test_zero_matrices_are_flagged():
    assert np.isnan(metrics.nc2(np.zeros((3, 3)), "OF"))
    assert np.isnan(metrics.nc2_diagonal(np.zeros((3, 3))))
    assert np.isnan(metrics.nc3_duality(np.zeros((3, 4)), np.ones((4, 3))))
    assert metrics.nc1(np.zeros((4, 6)), [2, 2, 2]) == 0.0


def test_measure_structure_and_collapsed_to_zero():
    inst = Instance.create([3, 2, 4], width=4, depth=2, lam_w=1e-2, lam_h=1e-2)
    rng = np.random.default_rng(1)
    p = {"weights": [rng.standard_normal((4, 4)), rng.standard_normal((3, 4))], "H": rng.standard_normal((4, 9)),
         "b": None}
    out = metrics.measure(inst, p)
    json.dumps(out)  # JSON-serialisable
    assert set(out) >= {"objective", "objective_parts", "singular_values", "class_mean_norms", "metrics", "layers",
                        "balancedness", "bias"}
    assert len(out["singular_values"]["layers"]) == 2
    assert [entry["name"] for entry in out["layers"]] == ["H_1", "H_2"]
    assert len(out["balancedness"]["pairs"]) == 2
    assert out["objective"] == pytest.approx(out["objective_parts"]["total"])
    zero = {"weights": [np.zeros((4, 4)), np.zeros((3, 4))], "H": np.zeros((4, 9)), "b": None}
    z = metrics.measure(inst, zero)
    assert z["metrics"]["nc2_W_OF"] is None and z["metrics"]["notes"]["W"] == metrics.COLLAPSED
    assert z["metrics"]["nc1"] is None and z["metrics"]["notes"]["Hbar"] == metrics.COLLAPSED
    json.dumps(z)


def test_measure_extended_model_stages_and_params_input():
    import torch

    inst = Instance.create([3, 3, 3], width=4, depth=3, lam_w=1e-2, lam_h=1e-2, activation="relu", bias=True)
    g = torch.Generator().manual_seed(0)
    from ncverify.numerics.models import init_params

    p = init_params(inst, g, std=0.5)
    out = metrics.measure(inst, p)
    names = [e["name"] for e in out["layers"]]
    assert names == ["H_1", "W_1 H_1 (pre-activation)", "s(W_1 H_1) (relu)", "H_3"]
    assert out["layers"][2]["classifier"] == "W_3 W_2"
    assert out["bias"] == [0.0, 0.0, 0.0]
    assert isinstance(p, Params)
