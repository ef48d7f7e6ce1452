"""``ncverify measure``: NC metrics of features given with labels in any order, streamed in chunks
(numerics.features), their comparison with a theorem's derived geometry (proofs_checks.measure) and the CLI."""
from __future__ import annotations

import json
import math
import tracemalloc

import numpy as np
import pytest
import torch

from ncverify.numerics import features as F
from ncverify.numerics import metrics
from ncverify.numerics.problem import Instance
from ncverify.numerics.starts import multistart
from ncverify.proofs_checks.cli import main
from ncverify.proofs_checks.measure import MeasureInputError, compare, measure


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _etf_means(K: int, d: int, scale: float, seed: int) -> np.ndarray:
    """Class means (K x d) forming a simplex ETF of norm ``scale``: rows of sqrt(K/(K-1)) (I - 11^T/K) rotated
    into R^d by a random orthonormal frame."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.normal(size=(d, K)))
    M = math.sqrt(K / (K - 1)) * (np.eye(K) - np.ones((K, K)) / K)
    return scale * M @ U.T


def _dataset(counts, d, seed, noise=0.3, offset=0.0):
    """(X shuffled N x d, y shuffled class indices, X grouped d x N in class order)."""
    rng = np.random.default_rng(seed)
    K = len(counts)
    means = rng.normal(size=(K, d)) + offset
    y = np.repeat(np.arange(K), counts)
    X = means[y] + noise * rng.normal(size=(len(y), d))
    perm = rng.permutation(len(y))
    return X[perm], y[perm], X.T


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------------------------------------
# 1. exact collapse in shuffled order
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", [0.0, 1e-9])
def test_collapsed_etf_in_shuffled_order(noise):
    K, d, n, s = 5, 8, 13, 2.5
    means = _etf_means(K, d, s, seed=1)
    y = np.repeat(np.arange(K), n)
    rng = np.random.default_rng(2)
    X = means[y] + noise * rng.normal(size=(K * n, d))
    perm = rng.permutation(K * n)
    labels = (y * 11 - 40)[perm]  # any integer values
    m = measure(X[perm], labels, chunk_size=7)
    L = m.last
    assert m.labels.values == tuple(sorted(set(labels.tolist())))
    assert L.nc1 <= (1e-20 if noise == 0 else 1e-14)
    # the ETF Gram by hand: ||hbar_k||^2 = s^2 on the diagonal, -s^2/(K-1) off it
    G_etf = s * s * (np.eye(K) * (1 + 1 / (K - 1)) - np.ones((K, K)) / (K - 1))
    assert np.abs(L.gram_centered - G_etf).max() <= 1e-12 * s * s + 10 * noise
    assert L.nc2_Hbar["centered"]["ETF"] <= 1e-12 + 10 * noise
    assert L.nc2_Hbar["centered"]["OF"] > 0.3  # and not an orthogonal frame
    sv = L.sv_Hbar_centered
    assert sv[:K - 1] == pytest.approx([s * math.sqrt(K / (K - 1))] * (K - 1), rel=1e-10 + 1e3 * noise)
    assert sv[K - 1] <= 1e-10
    # the same shuffled features given to numerics.metrics as if grouped: the silent wrong answer measure avoids
    assert metrics.nc1(X[perm].T, [n] * K) > 1.0


# ---------------------------------------------------------------------------------------------
# 2. streaming = one chunk = numerics.metrics on grouped data
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("global_mean", ["sample", "class"])
def test_streaming_equals_one_chunk_and_grouped_metrics(global_mean):
    counts = [17, 5, 29, 11]
    X, y, Hgrouped = _dataset(counts, d=6, seed=3)
    lab = F.encode_labels(y)
    one, _ = F.stream_class_stats(X, lab, chunk_size=10_000)
    for cs in (1, 7, 64):
        st, _ = F.stream_class_stats(X, lab, chunk_size=cs)
        assert _rel(st.means, one.means) <= 1e-12 and _rel(st.scatter, one.scatter) <= 1e-12
        assert np.array_equal(st.counts, one.counts)
    L = F.layer_metrics(st, global_mean=global_mean)
    L1 = F.layer_metrics(one, global_mean=global_mean)
    assert L.nc1 == pytest.approx(L1.nc1, rel=1e-12)
    gm = "sample" if global_mean == "sample" else "class_means"
    ref = metrics.nc1(Hgrouped, counts, global_mean=gm)
    assert L.nc1 == pytest.approx(ref, rel=1e-12)
    Hbar = metrics.class_means(Hgrouped, counts)
    assert _rel(L.Hbar, Hbar) <= 1e-12
    Hc = Hbar - metrics.global_mean_of(Hgrouped, counts, gm)[:, None]
    assert L.nc2_Hbar["centered"]["ETF"] == pytest.approx(metrics.nc2(Hc.T @ Hc, "ETF"), rel=1e-12)
    assert L.nc2_Hbar["uncentered"]["OF"] == pytest.approx(metrics.nc2(Hbar.T @ Hbar, "OF"), rel=1e-12)
    # classifier metrics against numerics.metrics, and the outputs' singular values against the samples
    W = np.random.default_rng(4).normal(size=(4, 6))
    b = np.array([0.5, -1.0, 2.0, 0.0])
    LW = F.layer_metrics(st, global_mean=global_mean, W=W, b=b)
    assert LW.nc3["duality"] == pytest.approx(metrics.nc3_duality(W, Hbar), rel=1e-12)
    assert LW.nc3["product_OF"] == pytest.approx(metrics.nc3_product(W, Hbar, "OF"), rel=1e-12)
    assert LW.nc2_W["ETF"] == pytest.approx(metrics.nc2(W @ W.T, "ETF"), rel=1e-12)
    assert LW.sv_output == pytest.approx(metrics.singular_values(W @ Hgrouped), rel=1e-10)
    assert LW.sv_output_bias == pytest.approx(metrics.singular_values(W @ Hgrouped + b[:, None]), rel=1e-10)
    assert LW.sv_logits == pytest.approx(metrics.singular_values(W @ Hbar + b[:, None]), rel=1e-12)


def test_stable_update_with_a_large_offset_and_merge():
    """Features at 1e8 with spread 1: raw sums of squares lose every digit (eps * 1e16 ~ 1); the pairwise
    update keeps the scatter to ~1e-8 relative."""
    counts = [300, 200, 500]
    X, y, Hg = _dataset(counts, d=3, seed=5, noise=1.0, offset=1e8)
    lab = F.encode_labels(y)
    st, _ = F.stream_class_stats(X, lab, chunk_size=37)
    ref = np.zeros((3, 3))
    for k in range(3):
        Xk = X[y == k]
        C = Xk - Xk.mean(axis=0)
        ref += C.T @ C
    assert _rel(st.scatter, ref) <= 1e-6
    naive = sum((X[y == k].T @ X[y == k]) - counts[k] * np.outer(X[y == k].mean(0), X[y == k].mean(0)) for k in range(3))
    assert _rel(naive, ref) > 1e-3  # the raw-sums formula really fails here (so the test can fail)
    a, b = F.ClassStatsAccumulator(3, 3), F.ClassStatsAccumulator(3, 3)
    a.update(X[:400], lab.y[:400])
    b.update(X[400:], lab.y[400:])
    a.merge(b)
    assert _rel(a.scatter, ref) <= 1e-6 and _rel(a.means, st.means) <= 1e-14


# ---------------------------------------------------------------------------------------------
# 3. files and layouts
# ---------------------------------------------------------------------------------------------
def test_file_formats_and_layouts_agree(tmp_path):
    counts = [9, 4, 7]
    X, y, _ = _dataset(counts, d=5, seed=6)
    ref = measure(X, y, chunk_size=4).last
    paths = {}
    np.save(tmp_path / "f.npy", X.astype(np.float64)); paths["npy"] = ([str(tmp_path / "f.npy")], {})
    np.save(tmp_path / "fT.npy", X.T.copy()); paths["npy dn"] = ([str(tmp_path / "fT.npy")], {"layout": "dn"})
    np.savez(tmp_path / "a.npz", feats=X, other=np.zeros(2)); paths["npz"] = ([str(tmp_path / "a.npz")], {"key": "feats"})
    np.savez_compressed(tmp_path / "c.npz", X); paths["npz compressed"] = ([str(tmp_path / "c.npz")], {})
    np.savez(tmp_path / "t.npz", feats=X.T); paths["npz dn"] = ([str(tmp_path / "t.npz")], {"layout": "dn"})
    np.save(tmp_path / "fortran.npy", np.asfortranarray(X)); paths["npy fortran"] = ([str(tmp_path / "fortran.npy")], {})
    torch.save(torch.tensor(X), tmp_path / "f.pt"); paths["pt"] = ([str(tmp_path / "f.pt")], {})
    torch.save({"h": torch.tensor(X), "w": torch.zeros(2)}, tmp_path / "d.pt"); paths["pt dict"] = ([str(tmp_path / "d.pt")], {"key": "h"})
    paths["tensor"] = ([torch.tensor(X)], {})
    paths["tensor dn"] = ([torch.tensor(X.T.copy())], {"layout": "dn"})
    np.save(tmp_path / "y.npy", y)
    for what, (src, kw) in paths.items():
        L = measure(src[0], str(tmp_path / "y.npy"), chunk_size=4, **kw).last
        assert L.nc1 == pytest.approx(ref.nc1, rel=1e-12), what
        assert _rel(L.gram, ref.gram) <= 1e-12, what
    # half-precision tensors, and the progress callback
    calls = []
    Lh = measure(torch.tensor(X, dtype=torch.bfloat16), y, chunk_size=8, progress=lambda nm, a, b: calls.append((a, b))).last
    Xh = torch.tensor(X, dtype=torch.bfloat16).double().numpy()
    assert Lh.nc1 == pytest.approx(measure(Xh, y).last.nc1, rel=1e-12)
    assert calls[-1] == (len(y), len(y)) and len(calls) == math.ceil(len(y) / 8)
    # float32 features are accumulated in float64
    np.save(tmp_path / "f32.npy", X.astype(np.float32))
    L32 = measure(str(tmp_path / "f32.npy"), y).last
    X32 = X.astype(np.float32).astype(np.float64)
    assert L32.nc1 == pytest.approx(measure(X32, y).last.nc1, rel=1e-12)


def test_string_labels_and_label_files(tmp_path):
    X, y, _ = _dataset([3, 5, 4], d=4, seed=7)
    names = np.array(["zebra", "ant", "moth"])[y]
    np.save(tmp_path / "s.npy", names)
    m = measure(X, str(tmp_path / "s.npy"))
    assert m.labels.values == ("ant", "moth", "zebra")
    assert m.counts == [5, 4, 3]  # ant = old class 1, moth = 2, zebra = 0
    torch.save(torch.tensor(y), tmp_path / "y.pt")
    np.savez(tmp_path / "y.npz", labels=y, extra=y)
    a = measure(X, str(tmp_path / "y.pt")).last.nc1
    b = measure(X, str(tmp_path / "y.npz"), labels_key="labels").last.nc1
    assert a == pytest.approx(b, rel=1e-15)


def test_several_layers_and_deep_classifier(tmp_path):
    counts = [6, 8, 5]
    X1, y, _ = _dataset(counts, d=7, seed=8)
    rng = np.random.default_rng(9)
    A = rng.normal(size=(7, 4))
    X2 = np.tanh(X1 @ A)  # a second layer of width 4, same sample order
    np.save(tmp_path / "l1.npy", X1); np.save(tmp_path / "l2.npy", X2); np.save(tmp_path / "y.npy", y)
    W1, W2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 5))
    np.save(tmp_path / "W1.npy", W1); np.save(tmp_path / "W2.npy", W2)
    m = measure([str(tmp_path / "l1.npy"), str(tmp_path / "l2.npy")], str(tmp_path / "y.npy"),
                weights=[str(tmp_path / "W1.npy"), str(tmp_path / "W2.npy")], chunk_size=5)
    assert [L.d for L in m.layers] == [7, 4]
    assert m.layers[0].nc1 == pytest.approx(measure(X1, y).last.nc1, rel=1e-12)
    assert m.layers[0].W is None and m.last.W is not None
    assert _rel(m.last.W, W2 @ W1) <= 1e-15 and m.weights_layout == "out-in"
    assert m.last.sv_layers[0] == pytest.approx(metrics.singular_values(W1))
    # the same weights given transposed (in-out, as d x K kernels) are detected by shape
    mt = measure(X2, y, weights=[W1.T, W2.T])
    assert mt.weights_layout == "in-out" and _rel(mt.last.W, W2 @ W1) <= 1e-15
    js = m.to_json()
    assert json.loads(json.dumps(js))["layers"][1]["singular_values"]["W"] == pytest.approx(m.last.sv_W)


def test_memory_mapped_npy_streams_with_bounded_peak(tmp_path):
    """A 30 MB float32 .npy file (61 MB as float64) streamed in chunks of 2048 rows: the Python-side peak
    (tracemalloc: numpy's buffers are tracked, the memory map is not) stays a small fraction of it."""
    N, d, K = 120_000, 64, 4
    path = tmp_path / "big.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(N, d))
    rng = np.random.default_rng(10)
    y = rng.integers(0, K, size=N).astype(np.int8)
    for s in range(0, N, 10_000):
        mm[s:s + 10_000] = rng.normal(size=(10_000, d)).astype(np.float32) + y[s:s + 10_000, None]
    mm.flush()
    del mm
    tracemalloc.start()
    try:
        m = measure(str(path), y, chunk_size=2048)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert m.labels.N == N and m.last.d == d
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB while streaming a {N * d * 4 / 1e6:.0f} MB file"
    # sanity: the mean of class k is about k in every coordinate
    assert np.abs(m.last.Hbar - np.arange(K)[None, :]).max() < 0.05


# ---------------------------------------------------------------------------------------------
# 4. errors: one line, exit code 2
# ---------------------------------------------------------------------------------------------
def _cli_error(capsys, argv):
    rc = main(argv)
    out = capsys.readouterr()
    lines = [l for l in out.err.splitlines() if l.strip()]
    assert rc == 2, (rc, out.err)
    assert len(lines) == 1 and lines[0].startswith("ncverify: error: "), out.err
    assert "Traceback" not in out.err
    return lines[0]


@pytest.fixture()
def files(tmp_path):
    X, y, _ = _dataset([4, 3, 5], d=6, seed=11)
    p = {k: str(tmp_path / f"{k}.npy") for k in ("X", "y", "W", "Wsq", "b", "nan", "empty", "yf", "y1", "cplx", "Xdn")}
    np.save(p["X"], X); np.save(p["y"], y); np.save(p["W"], np.ones((3, 6))); np.save(p["Wsq"], np.ones((6, 6)))
    np.save(p["b"], np.ones(4))
    Xn = X.copy(); Xn[5, 2] = np.nan; Xn[9, 0] = np.inf
    np.save(p["nan"], Xn); np.save(p["empty"], np.zeros((0, 6))); np.save(p["yf"], y.astype(float))
    np.save(p["y1"], np.zeros(12, dtype=int)); np.save(p["cplx"], X.astype(complex)); np.save(p["Xdn"], X.T.copy())
    p["txt"] = str(tmp_path / "f.csv")
    open(p["txt"], "w").write("1,2\n")
    return p


def test_errors_are_one_line_with_exit_code_2(capsys, files):
    p = files
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"][:-4] + "_missing.npy"])
    assert "no such file" in e
    e = _cli_error(capsys, ["measure", p["nan"], "--labels", p["y"]])
    assert p["nan"] in e and "2 of 12 samples" in e and "first: sample 5" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y1"]])
    assert "at least 2 classes" in e and p["y1"] in e
    e = _cli_error(capsys, ["measure", p["empty"], "--labels", p["y"]])
    assert p["empty"] in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["yf"]])
    assert "integers or strings" in e and "float64" in e
    e = _cli_error(capsys, ["measure", p["cplx"], "--labels", p["y"]])
    assert "real numbers" in e and p["cplx"] in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["W"]])  # a 3 x 6 matrix as labels
    assert "1-D" in e
    e = _cli_error(capsys, ["measure", p["Xdn"], "--labels", p["y"]])
    assert "6 feature rows but 12 labels" in e and "--layout dn" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--layout", "dn"])
    assert "use layout 'nd'" in e
    e = _cli_error(capsys, ["measure", p["txt"], "--labels", p["y"]])
    assert "unsupported file type" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--weights", p["Wsq"]])
    assert "do not chain" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--weights", p["W"], "--bias", p["b"]])
    assert "K = 3 entries" in e and p["b"] in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--bias", p["b"]])
    assert "needs the classifier weights" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--chunk-size", "0"])
    assert "--chunk-size" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--lam-w", "0.1"])
    assert "only apply with --theorem" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--theorem", "tirer2022.mse-ufm"])
    assert "--lam-w and --lam-h" in e
    e = _cli_error(capsys, ["measure", p["X"], "--labels", p["y"], "--theorem", "no.such", "--lam-w", "1", "--lam-h", "1"])
    assert "unknown theorem id" in e


def test_state_dict_weights_and_bias(capsys, tmp_path):
    """A torch model's features and its saved state_dict: W and b picked by key (the usual workflow)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x = torch.randn(40, 5)
    y = torch.randint(0, 3, (40,))
    y[:3] = torch.tensor([0, 1, 2])
    with torch.no_grad():
        feats = model[1](model[0](x))  # penultimate features, N x d
    torch.save(feats, tmp_path / "feats.pt")
    torch.save(y, tmp_path / "y.pt")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    argv = ["measure", str(tmp_path / "feats.pt"), "--labels", str(tmp_path / "y.pt"), "--weights",
            str(tmp_path / "model.pt"), "--weights-key", "2.weight", "--bias", str(tmp_path / "model.pt"),
            "--bias-key", "2.bias", "--json"]
    assert main(argv) == 0
    L = json.loads(capsys.readouterr().out)["measurement"]["layers"][0]
    W, b = model[2].weight.detach().double().numpy(), model[2].bias.detach().double().numpy()
    assert L["bias"] == pytest.approx(b.tolist(), rel=1e-7)
    Z = feats.double().numpy() @ W.T + b  # outputs over the samples, N x K
    assert L["singular_values"]["output_W_H_plus_b"] == pytest.approx(metrics.singular_values(Z), rel=1e-9)
    e = _cli_error(capsys, argv[:6] + ["--json"])  # a state_dict without a key
    assert "--weights-key" in e and "model.pt" in e


def test_ambiguous_square_weights_need_a_layout():
    X, y, _ = _dataset([4, 4, 4], d=3, seed=12)
    W = np.arange(9.0).reshape(3, 3)
    with pytest.raises(MeasureInputError, match="fit both"):
        measure(X, y, weights=W)
    assert _rel(measure(X, y, weights=W, weights_layout="in-out").last.W, W.T) == 0.0
    assert _rel(measure(X, y, weights=W, weights_layout="out-in").last.W, W) == 0.0


# ---------------------------------------------------------------------------------------------
# 5. the CLI table and --json
# ---------------------------------------------------------------------------------------------
def test_cli_table_and_json(capsys, files):
    p = files
    assert main(["measure", p["X"], "--labels", p["y"], "--weights", p["W"], "--chunk-size", "5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    api = measure(p["X"], p["y"], weights=p["W"], chunk_size=5)
    L = data["measurement"]["layers"][0]
    assert data["comparison"] is None and data["measurement"]["counts"] == [4, 3, 5]
    assert L["nc1"] == pytest.approx(api.last.nc1, rel=1e-15)
    assert L["singular_values"]["W"] == pytest.approx(api.last.sv_W)
    assert set(data["measurement"]["label_mapping"]) == {"0", "1", "2"}
    assert main(["measure", p["X"], "--labels", p["y"], "--weights", p["W"]]) == 0
    out = capsys.readouterr().out
    assert "NC metrics per layer" in out and "classifier W" in out and "NC1" in out


# ---------------------------------------------------------------------------------------------
# 6. comparison with a theorem at a minimizer computed by the suite's numerics
# ---------------------------------------------------------------------------------------------
CASES = {
    "tirer2022.mse-ufm": Instance.create((5, 5, 5), width=5, depth=1, lam_w=0.01, lam_h=0.02),
    "dang2023.mse-deep": Instance.create((6, 4, 3), width=4, depth=2, lam_w=0.005, lam_h=0.005),
}


@pytest.fixture(scope="module")
def minimizers():
    out = {}
    for tid, inst in CASES.items():
        res = multistart(inst, solver="lbfgs", starts=2, seed=0)
        out[tid] = res.best.params.to_numpy()
    return out


def _write_minimizer(tmp_path, inst, p):
    """Shuffled last-layer features H (N x d) with labels 100 + 7k, and W_1..W_M, as files."""
    y = np.repeat(np.arange(inst.K), inst.counts)
    perm = np.random.default_rng(13).permutation(len(y))
    np.save(tmp_path / "H.npy", p["H"].T[perm])
    np.save(tmp_path / "y.npy", 100 + 7 * y[perm])
    ws = []
    for j, W in enumerate(p["weights"], start=1):
        np.save(tmp_path / f"W{j}.npy", W)
        ws.append(str(tmp_path / f"W{j}.npy"))
    return str(tmp_path / "H.npy"), str(tmp_path / "y.npy"), ws


@pytest.mark.parametrize("tid", list(CASES))
def test_compare_at_a_numeric_minimizer(capsys, tmp_path, minimizers, tid):
    inst = CASES[tid]
    H, y, ws = _write_minimizer(tmp_path, inst, minimizers[tid])
    lam_w = ",".join(str(x) for x in inst.lam_w)
    argv = ["measure", H, "--labels", y, "--weights", *ws, "--theorem", tid, "--lam-w", lam_w,
            "--lam-h", str(inst.lam_h), "--depth", str(inst.depth), "--chunk-size", "4", "--json"]
    assert main(argv) == 0
    comp = json.loads(capsys.readouterr().out)["comparison"]
    rows = {r["quantity"]: r for r in comp["rows"]}
    assert comp["instance"]["counts"] == list(inst.counts) and comp["instance"]["width"] == inst.width
    assert "verified" not in json.dumps(comp)
    shape = [r for r in comp["rows"] if r["aspect"] == "shape"]
    scale = [r for r in comp["rows"] if r["aspect"] == "scale"]
    assert len(shape) == 2 and len(scale) >= 6
    for r in comp["rows"]:
        assert r["error"] is not None and r["error"] <= 1e-7, r
    assert "singular values of W_2" in rows if inst.depth == 2 else "singular values of W = W_M...W_1" in rows
    # the printed table carries the same comparison
    assert main(argv[:-1]) == 0
    text = capsys.readouterr().out
    assert "measured vs derived global minimizer" in text and "verified" not in text

    # a wrong lambda_H: the shape may still match (same geometry), the scale clearly does not
    m = measure(H, y, weights=ws)
    wrong = compare(m, tid, lam_w=list(inst.lam_w), lam_h=4 * inst.lam_h, depth=inst.depth)
    worst = max(r.error for r in wrong.rows if r.aspect == "scale")
    assert worst > 0.1, [(r.quantity, r.error) for r in wrong.rows]
    gram_scale = next(r for r in wrong.rows if r.quantity.startswith("class-mean Gram") and r.aspect == "scale")
    assert gram_scale.error > 0.05 and gram_scale.measured != pytest.approx(gram_scale.predicted, rel=0.01)


def test_compare_validates_the_instance(minimizers, tmp_path):
    inst = CASES["dang2023.mse-deep"]
    H, y, ws = _write_minimizer(tmp_path, inst, minimizers["dang2023.mse-deep"])
    m = measure(H, y, weights=ws)
    from ncverify.proofs_checks.errors import INPUT_ERRORS

    with pytest.raises(INPUT_ERRORS, match="balanced"):  # tirer2022.mse-ufm assumes balanced classes
        compare(m, "tirer2022.mse-ufm", lam_w=0.005, lam_h=0.005, depth=1)
    with pytest.raises(INPUT_ERRORS, match="depth"):  # depth from the two weight matrices
        compare(m, "tirer2022.mse-ufm", lam_w=0.005, lam_h=0.005)


def test_compare_up_to_relabelling_of_a_non_etf_geometry():
    """Deep CE at K = 4, M = 3 (all lambdas 0.002, n = 2): the derived global minimizer is a square (rank 2),
    stated up to relabelling. Exactly collapsed features whose class means and classifier have that Gram with
    the classes permuted compare with shape error ~0; the same Grams without the relabelling do not match."""
    from ncverify.theory.derive import derive

    inst = Instance.create((2, 2, 2, 2), width=4, depth=3, lam_w=0.002, lam_h=0.002, loss="ce")
    pred = derive("ce-deep", inst)
    tH, tW = pred.gram_targets["HbarTHbar"], pred.gram_targets["WWT"]
    assert tH.relabel and tH.matrix is not None
    perm = [2, 0, 3, 1]

    def factor(G):  # A with A^T A = G (rows: coordinates)
        e, V = np.linalg.eigh(G)
        return (V * np.sqrt(np.clip(e, 0, None))).T

    GH = np.array(tH.matrix, dtype=float)[np.ix_(perm, perm)]
    GW = np.array(tW.matrix, dtype=float)[np.ix_(perm, perm)]
    Hbar = factor(GH)  # d x K
    W = factor(GW).T  # K x d, W W^T = GW
    y = np.repeat(np.arange(4), 2)
    order = np.random.default_rng(14).permutation(8)
    m = measure(Hbar.T[y][order], y[order], weights=W, weights_layout="out-in")
    c = compare(m, "dang2023.ce-deep", lam_w=0.002, lam_h=0.002, depth=3)
    rows = {r.quantity: r for r in c.rows}
    shape = [r for r in c.rows if r.aspect == "shape"]
    assert len(shape) == 2 and all(r.error <= 1e-10 for r in shape), shape
    assert rows["singular values of Hbar"].error <= 1e-10
    assert rows["singular values of W = W_M...W_1"].error <= 1e-10
    assert rows["class-mean Gram Hbar^T Hbar scale ||G||_F"].error <= 1e-12
    # without the relabelling the measured Gram is far from the stated matrix
    assert metrics.normalized_distance(m.last.gram, np.array(tH.matrix, dtype=float)) > 0.5


def test_compare_with_a_user_theorem_file_and_rescaling(capsys, tmp_path):
    """--theorems FILE (the tutorial's loss variant): simplex-ETF features compare with shape error ~0 whatever
    their scale; rescaling them by the reported norm ratio makes the class-mean Gram's scale error vanish."""
    from pathlib import Path

    user = str(Path(__file__).resolve().parent.parent / "examples" / "ce_temperature.py")
    K, n = 3, 2
    M = math.sqrt(K / (K - 1)) * (np.eye(K) - np.ones((K, K)) / K)
    y = np.repeat(np.arange(K), n)
    np.save(tmp_path / "H.npy", M[y]); np.save(tmp_path / "y.npy", y)
    argv = ["measure", str(tmp_path / "H.npy"), "--labels", str(tmp_path / "y.npy"), "--theorems", user,
            "--theorem", "mine.ce-temperature", "--lam-w", "0.01", "--lam-h", "0.01", "--json"]
    assert main(argv) == 0
    comp = json.loads(capsys.readouterr().out)["comparison"]
    assert "--loss ce-temp:2" in comp["instance"]["flags"]  # the theorem's default loss
    rows = {r["quantity"]: r for r in comp["rows"]}
    assert rows["class-mean Gram Hbar^T Hbar shape"]["error"] <= 1e-12
    sc = rows["class-mean Gram Hbar^T Hbar scale ||G||_F"]
    assert sc["error"] == pytest.approx(abs(sc["measured"] / sc["predicted"] - 1), rel=1e-12)
    # the Gram scales quadratically with the features
    np.save(tmp_path / "H.npy", M[y] * math.sqrt(sc["predicted"] / sc["measured"]))
    assert main(argv) == 0
    rows = {r["quantity"]: r for r in json.loads(capsys.readouterr().out)["comparison"]["rows"]}
    assert rows["class-mean Gram Hbar^T Hbar scale ||G||_F"]["error"] <= 1e-12
    assert rows["singular values of Hbar"]["error"] <= 1e-12 and rows["class-mean norms ||hbar_k||"]["error"] <= 1e-12


def test_bias_model_compares_centered_features():
    """tirer2022.mse-ufm-bias at a numeric minimizer (features with global mean 0): shifting every feature by a
    vector c and the bias by -W c is the same network; the comparison (centered class means, the bias of
    centered features) is unchanged and matches the derivation."""
    inst = Instance.create((4, 4, 4), width=4, depth=1, lam_w=0.01, lam_h=0.01, bias=True)
    p = multistart(inst, solver="lbfgs", starts=2, seed=0).best.params.to_numpy()
    W, H, b = p["weights"][0], p["H"], p["b"]
    y = np.repeat(np.arange(3), 4)
    c = np.array([3.0, -1.0, 0.5, 2.0])
    for shift in (np.zeros(4), c):
        m = measure(H.T + shift, y, weights=W, bias=b - W @ shift)
        comp = compare(m, "tirer2022.mse-ufm-bias", lam_w=0.01, lam_h=0.01)
        names = [r.quantity for r in comp.rows]
        assert "bias b + W hbar_G (of centered features)" in names and any("(centered)" in n for n in names)
        for r in comp.rows:
            assert r.error is not None and r.error <= 1e-7, (shift, r)
    assert max(m.last.class_mean_norms) > 2.0  # the uncentered means did move


def test_measure_table_is_not_wrapped_when_piped(tmp_path):
    """Piped output (a file, `| less`) keeps every row on one line whatever COLUMNS says."""
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(12), 3))
    np.save(tmp_path / "f.npy", rng.standard_normal((36, 5)))
    np.save(tmp_path / "y.npy", y)
    env = dict(os.environ, COLUMNS="40")
    proc = subprocess.run([sys.executable, "-m", "ncverify", "measure", str(tmp_path / "f.npy"), "--labels",
                           str(tmp_path / "y.npy")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    mapping = [line for line in proc.stdout.splitlines() if line.startswith("labels -> classes:")]
    assert len(mapping) == 1 and "9 -> 9" in mapping[0], proc.stdout[:2000]
