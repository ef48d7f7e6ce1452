"""The field's other theorems (issue 16): the convex oracle's certificates against closed forms and against the
exact derivations on random instances, the CE minority-collapse threshold on both sides, the deep MSE jump with an
imbalanced bias, SELI and the layer-peeled model through their convex programs, and what happens without CVXPY."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ncverify.numerics import convex
from ncverify.numerics.problem import Instance
from ncverify.proofs_checks import verify
from ncverify.proofs_checks.catalogue import by_id
from ncverify.proofs_checks.catalogue.fang2021 import R_STAR_NOTES, minority_collapse_ratio
from ncverify.proofs_checks.catalogue.liu2024 import largest_root_differs
from ncverify.proofs_checks.verify import oracle
from ncverify.theory.derive import derive

pytestmark = pytest.mark.skipif(not convex.available(), reason="needs the convex extra (cvxpy)")


def _inside(value: float, cert: convex.Certificate) -> bool:
    return cert.lower <= value <= cert.upper


# ---------------------------------------------------------------------------------------------
# the oracle against closed forms
def test_ce_oracle_matches_the_balanced_closed_form():
    """Balanced CE UFM (M = 1): the ETF with wrong-class probability s = sqrt(n) mu, value
    log(1 + (K-1) e^-a) + (K-1) mu a sqrt(n) (zhu2021's closed form), inside the certified interval, class and
    sample level, with and without a penalized bias."""
    for K, n, mu in ((3, 2, 0.01), (5, 3, 0.02), (4, 1, 0.1)):
        s = math.sqrt(n) * mu
        a = math.log((1 - (K - 1) * s) / s)
        f = math.log(1 + (K - 1) * math.exp(-a)) + (K - 1) * mu * a * math.sqrt(n)
        for kw in ({}, {"bias": True, "lam_b": 0.05}, {"sample_level": True}):
            c = convex.ce_nuclear([n] * K, mu, **kw)
            assert _inside(f, c), (K, n, mu, kw, c.summary())
            assert c.gap < 1e-9 and c.radius < 1e-9


def test_mse_oracle_matches_soft_thresholding():
    """MSE UFM (M = 1, no bias, any counts): per class (1/(2N))(sqrt(n_k) - s)^2 + mu s at s = (sqrt(n_k) - N mu)_+."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        counts = [int(c) for c in rng.integers(1, 20, size=rng.integers(2, 6))]
        N, mu = sum(counts), float(10 ** rng.uniform(-3, -1))
        f = sum((math.sqrt(c) - max(math.sqrt(c) - N * mu, 0)) ** 2 / (2 * N) + mu * max(math.sqrt(c) - N * mu, 0)
                for c in counts)
        c = convex.mse_nuclear(counts, mu)
        assert _inside(f, c), (counts, mu, c.summary())


def test_max_margin_and_layer_peeled_closed_forms():
    counts = [5, 5, 2, 1]
    P = np.eye(4) - 1 / 4
    seli = float(np.linalg.svd(P @ np.diag(np.sqrt(counts)), compute_uv=False).sum())
    for c in (convex.max_margin(counts), convex.max_margin(counts, sample_level=True)):
        assert _inside(seli, c) and c.gap < 1e-8
    K, e_w, e_h = 4, 0.5, 2.0
    etf = math.log(1 + (K - 1) * math.exp(-K * math.sqrt(e_w * e_h) / (K - 1)))
    for c in (convex.layer_peeled([3] * K, K * math.sqrt(e_w * e_h)),
              convex.layer_peeled([3] * K, K * math.sqrt(e_w * e_h), sample_level=True)):
        assert _inside(etf, c) and c.gap < 1e-9


def test_lifted_certificate_is_a_certificate_of_the_sample_level_program():
    """The class-level solution repeated over the samples is certified in the sample-level program, and the
    sample-level program solved from scratch lands in the same interval."""
    counts = [6, 6, 2, 2]
    for cls, sample, kw in ((convex.ce_nuclear(counts, 0.03, bias=True, lam_b=0.1),
                             convex.ce_nuclear(counts, 0.03, bias=True, lam_b=0.1, sample_level=True),
                             {"mu": 0.03, "lam_b": 0.1}),
                            (convex.layer_peeled(counts, 4.0), convex.layer_peeled(counts, 4.0, sample_level=True), {}),
                            (convex.max_margin(counts), convex.max_margin(counts, sample_level=True), {})):
        lifted = convex.lift(cls, counts, **kw)
        assert lifted.lower <= sample.upper and sample.lower <= lifted.upper, (lifted.summary(), sample.summary())
        assert lifted.gap < 1e-8


def test_certificate_catches_a_wrong_point():
    """The certificate is computed here, not read from the solver: a perturbed point widens the interval, which
    still contains the minimum (weak duality), and a far point cannot fake a small gap."""
    counts = [4, 4, 1]
    good = convex.ce_nuclear(counts, 0.02)
    y, ny, w = np.arange(3), np.array(counts, float), np.array(counts) / 9
    X = good.X + 0.3
    p, d, rnd, _ = convex._ce_certificate(X, None, y, w, 1 / np.sqrt(ny), 0.02, None)
    assert p - d > 1e-3
    assert d - rnd <= good.upper and good.lower <= p + rnd


# ---------------------------------------------------------------------------------------------
# the oracle against the exact derivations, on random instances
def test_oracle_agrees_with_the_exact_derivations_on_random_instances():
    """mse-deep and mse-deep-bias at M = 1 (exact closed forms) and ce-ufm-imbalanced at total collapse: the derived
    f* lies in the oracle's certified interval; ce-ufm-imbalanced's equal / distinct rows agree with tying them."""
    rng = np.random.default_rng(1)
    for i in range(8):
        K = int(rng.integers(2, 6))
        counts = [int(c) for c in rng.integers(1, 30, size=K)]
        lam = float(f"{10 ** rng.uniform(-3, -0.5):.3g}")
        bias = bool(i % 2)
        inst = Instance.create(counts, width=K, lam_w=lam, lam_h=lam, bias=bias)
        d = derive("mse-deep-bias" if bias else "mse-deep", inst)
        c = oracle.solve(inst)
        assert _inside(float(d.objective.value), c), (inst.cli_flags(), float(d.objective.value), c.summary())
    for i in range(6):
        k_a, k_b = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        n_b = int(rng.integers(1, 6))
        n_a = n_b + int(rng.integers(1, 20))
        counts = [n_a] * k_a + [n_b] * k_b
        N = sum(counts)
        mu_star = math.sqrt(n_b) / N
        ratio = (0.5, 2.0)[i % 2]
        lam = float(f"{mu_star * ratio:.4g}")
        inst = Instance.create(counts, width=len(counts), lam_w=lam, lam_h=lam, loss="ce", bias=True, lam_b=0.1)
        d = derive("ce-ufm-imbalanced", inst)
        free = oracle.solve(inst)
        minority = tuple(range(k_a, k_a + k_b))
        derived_equal = dict(d.rows_equal)[minority]
        tied = convex.ce_nuclear(counts, free.details["mu"], bias=True, lam_b=0.1, tied=[minority])
        certified_distinct = tied.lower > free.upper
        assert derived_equal == (not certified_distinct) == (ratio > 1), (inst.cli_flags(), tied.lower - free.upper)
        if d.objective is not None:  # total collapse: the value at W = H = 0 with the optimal bias
            assert _inside(float(d.objective.value), free)


def test_minority_collapse_threshold_both_sides_on_the_recorded_cases():
    """[D]: the minority rows coincide iff sqrt(lambda_W lambda_H) >= sqrt(n_B)/N, on n = [10,10,2,2] and
    [20,20,20,3,3,3], checked by the full-matrix numerics (the theorem's check) just below and above."""
    th = by_id("hong2023.ce-minority-collapse")
    for counts in ([10, 10, 2, 2], [20, 20, 20, 3, 3, 3]):
        mu_star = math.sqrt(min(counts)) / sum(counts)
        for ratio, equal in ((0.8, False), (1.25, True)):
            lam = float(f"{mu_star * ratio:.6g}")
            inst = Instance.create(counts, width=len(counts), lam_w=lam, lam_h=lam, loss="ce", bias=True, lam_b=0.05)
            res = verify.check(th, inst, starts=3)
            assert res.verdict == "verified", (inst.cli_flags(), res.reason)
            rows = [e for e in res.evidence if e.check == "numerics" and e.quantity.startswith("rows of W")]
            assert rows and rows[0].status == "pass" and ("equal" in rows[0].quantity) == equal
            assert any(e.check == "convex oracle" and e.quantity.startswith("rows of W") and e.status == "pass"
                       for e in res.evidence)


def test_hong_mutant_threshold_off_by_two_is_refuted_by_the_oracle_and_the_numerics():
    m = by_id("mutant:hong2023.ce-minority-collapse:no-1/2")
    res = verify.check(m, m.examples[0], starts=3)
    assert res.verdict == "refuted"
    failing = {(e.check, e.status) for e in res.evidence if e.quantity.startswith("rows of W")}
    assert ("convex oracle", "fail") in failing and ("numerics", "fail") in failing and ("claim vs derivation", "fail") in failing


# ---------------------------------------------------------------------------------------------
# liu2024: the jump
def test_liu_largest_root_mutant_fails_exactly_in_the_jump_band():
    base, mut = by_id("liu2024.mse-deep-bias-imbalanced"), by_id("mutant:liu2024.mse-deep-bias-imbalanced:largest-root")
    inst = mut.examples[0]
    assert largest_root_differs(inst)
    assert verify.check(base, inst, starts=4).verdict == "verified"
    assert verify.check(mut, inst, starts=4).verdict == "refuted"
    below = inst.with_(lam_w=(0.05, 0.05), lam_h=0.05)  # both rules agree below the band
    assert not largest_root_differs(below)
    assert verify.check(mut, below, starts=4).verdict == "verified"


# ---------------------------------------------------------------------------------------------
# SELI and the layer-peeled model
def test_seli_verified_and_its_claimed_point_attains_the_certificate():
    th = by_id("thrampoulidis2022.seli")
    res = verify.check(th, th.examples[0])
    assert res.verdict == "verified", res.reason
    q = {e.quantity: e.status for e in res.evidence}
    assert q["claimed point attains the certified minimum of the full program"] == "pass"
    assert q["sample-level program solved without assuming NC1 vs the NC1 point"] == "pass"


def test_layer_peeled_minority_collapse_ratio_by_bisection():
    """R* for K_A = K_B = 2, E_W = E_H = 1, located on the certified program, agrees with the notes' 3.3805."""
    r = minority_collapse_ratio(lo=3.0, hi=4.0, tol=1e-3)
    lo, hi = r["bracket"]
    assert lo <= float(R_STAR_NOTES) + 1e-3 and float(R_STAR_NOTES) - 1e-3 <= hi
    assert all(e["gap"] < 1e-10 for e in r["evaluations"])


# ---------------------------------------------------------------------------------------------
# without CVXPY
def test_without_cvxpy_the_oracle_says_how_to_install_it(monkeypatch):
    def missing():
        raise convex.OracleUnavailable(f"the convex oracle needs CVXPY, which is not installed: {convex.INSTALL}")

    monkeypatch.setattr(convex, "require_cvxpy", missing)
    seli = by_id("thrampoulidis2022.seli")
    res = verify.check(seli, seli.examples[0])
    assert res.verdict == "inconclusive" and "ncverify[convex]" in res.reason
    hong = by_id("hong2023.ce-minority-collapse")
    res = verify.check(hong, hong.examples[0], starts=3)
    assert res.verdict == "inconclusive"
    assert any(e.check == "convex oracle" and "ncverify[convex]" in e.detail for e in res.evidence)


# ---------------------------------------------------------------------------------------------
# regression targets
def test_regression_targets_are_validated_and_reproducible(capsys):
    from ncverify.numerics import models
    from ncverify.numerics.problem import InstanceError
    from ncverify.proofs_checks.cli import main

    inst = Instance.create([3, 2], width=2, targets="gauss:5")
    assert inst.target_prototypes() == Instance.create([3, 2], width=2, targets="gauss:5").target_prototypes()
    Y = models.targets(inst).numpy()
    T = np.asarray(inst.target_prototypes())
    assert np.allclose(Y[:, :3], T[:, [0]]) and np.allclose(Y[:, 3:], T[:, [1]])
    assert "--targets gauss:5" in inst.cli_flags()
    for bad, fragment in (("normal:1", "gauss:SEED"), ("gauss:x", "gauss:SEED")):
        with pytest.raises(InstanceError, match=fragment):
            Instance.create([3, 2], width=2, targets=bad)
    with pytest.raises(InstanceError, match="need the MSE loss"):
        Instance.create([3, 2], width=2, targets="gauss:1", loss="ce")
    code = main(["check", "andriopoulos2024.regression-collapse", "--counts", "4,2,2", "--width", "3", "--lam-w", "0.01",
                 "--lam-h", "0.02", "--targets", "gauss:11"])
    assert code == 0, capsys.readouterr().out
    code = main(["check", "andriopoulos2024.regression-collapse", "--counts", "4,2,2", "--width", "3"])
    err = capsys.readouterr().err
    assert code == 2 and "--targets" in err and "Traceback" not in err


def test_regression_oracle_agrees_with_the_derivation_on_random_instances():
    rng = np.random.default_rng(3)
    for _ in range(6):
        K = int(rng.integers(2, 6))
        counts = [int(c) for c in rng.integers(1, 25, size=K)]
        lam = float(f"{10 ** rng.uniform(-3, 0):.3g}")
        inst = Instance.create(counts, width=K, lam_w=lam, lam_h=lam / 2, targets=f"gauss:{int(rng.integers(0, 999))}")
        d = derive("mse-regression", inst)
        assert _inside(float(d.objective.value), oracle.solve(inst)), inst.cli_flags()


# ---------------------------------------------------------------------------------------------
# the deep unconstrained features model (a ReLU after every layer but the last)
def test_batched_dufm_value_and_gradient_match_autograd():
    """Mixed groups (DUFM of depths 2..4, the two-layer ReLU model) padded into one batch: the hand-written
    backpropagation through every ReLU equals torch autograd on the reference objective."""
    import torch

    from ncverify.numerics import batched, models

    insts = [Instance.create([3, 3], width=3, depth=4, lam_w=1e-2, lam_h=1e-2, activation="relu-deep"),
             Instance.create([3, 3], width=2, depth=2, lam_w=1e-2, lam_h=1e-2, activation="relu-deep"),
             Instance.create([2, 2, 2], width=3, depth=3, lam_w=1e-2, lam_h=1e-2, activation="relu"),
             Instance.create([3, 1], width=3, depth=3, lam_w=1e-2, lam_h=2e-2, activation="relu-deep", bias=True)]
    g = batched.Group(insts, dtype=torch.float64, device="cpu")
    ps = [models.init_params(i, torch.Generator().manual_seed(k), std=1.0) for k, i in enumerate(insts)]
    X = g.pad([p.flatten() for p in ps])
    f, G = g._value_and_grad(X)
    for k, (inst, p) in enumerate(zip(insts, ps)):
        x = p.flatten().clone().requires_grad_(True)
        v = models.flat_objective(inst, models.targets(inst))(x)
        (gr,) = torch.autograd.grad(v, x)
        v = v.detach()
        assert abs(float(v) - float(f[k])) <= 1e-14 * max(1.0, abs(float(v)))
        assert float((g.unpad(G, k) - gr).abs().max()) <= 1e-13
        assert abs(float(g.objective(X)[k]) - float(v)) <= 1e-14 * max(1.0, abs(float(v)))


def test_hidden_shape_claims_expand_per_layer():
    from ncverify.proofs_checks.statement.shapes import expand, layer_error, parse

    inst = Instance.create([2, 2], width=2, depth=4, activation="relu-deep")
    assert [c.name for c in expand(parse("gram:hidden=OF"), inst)] == ["gram:h1=OF", "gram:h2=OF", "gram:h3=OF"]
    relu = Instance.create([2, 2], width=2, depth=2, activation="relu")
    assert "pre and post" in layer_error(parse("nc1:hidden"), relu)
    with pytest.raises(ValueError, match="self_duality"):
        parse("self_duality:hidden")


def test_dufm_binary_verified_on_its_examples_and_its_mutants_refuted():
    th = by_id("sukenik2023.dufm-binary")
    res = verify.check(th, th.examples[1], starts=6)
    assert res.verdict == "verified", res.reason
    names = {e.quantity.split(":")[0] + ":" + e.quantity.split(":")[1] for e in res.evidence if e.quantity.startswith(("nc1:", "gram:"))}
    assert {"nc1:H", "nc1:h1", "nc1:h2", "gram:h1=OF", "gram:h2=OF"} <= names
    m = by_id("mutant:sukenik2023.dufm-binary:shallow-value")
    assert verify.check(m, m.examples[0], starts=6).verdict == "refuted"
