"""Deep cross-entropy beyond the simplex ETF: codes, their values, the global selection, the boundary in ell,
the reduced numeric search, the ``ce-deep`` family and the catalogue entries built on them."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from ncverify.numerics import ce_reduced, models
from ncverify.numerics.problem import Instance, InstanceError
from ncverify.theory import ce_codes as C
from ncverify.theory.derive import derive

# from ../shared/THEOREMS.md (numbers found by the full-matrix numerics, not by this code): K = 4, n = 2, M = 3,
# all lambdas 0.002: a square of class-mean logits at 0.0372818 against the best ETF's 0.0404879
SPEC_SQUARE, SPEC_ETF = 0.0372818, 0.0404879
ELL_SPEC = 0.002 * 2 ** 0.25  # ell = (n lambda_H prod lambda_W)^(1/(M+1)) = lambda n^(1/4)


def _F_direct(Z: list[list], M: int, ell) -> mpmath.mpf:
    """F(Zbar) from the matrix itself: CE column by column and the Schatten quasi-norm from mpmath's SVD."""
    K = len(Z)
    ce = mpmath.fsum(mpmath.log(mpmath.fsum(mpmath.exp(Z[j][k] - Z[k][k]) for j in range(K))) for k in range(K)) / K
    s = mpmath.svd_r(mpmath.matrix(Z), compute_uv=False)
    p = mpmath.mpf(2) / (M + 1)
    tiny = mpmath.mpf(10) ** (-(mpmath.mp.dps - 10))
    return ce + (M + 1) * mpmath.mpf(ell) / 2 * mpmath.fsum(x ** p for x in s if x > tiny)


@pytest.mark.parametrize("K, M, ell", [(4, 3, ELL_SPEC), (5, 3, 0.003), (7, 3, 0.003), (8, 2, 0.01), (6, 4, 0.02)])
def test_every_refined_code_value_is_the_value_of_its_constructed_matrix(K, M, ell):
    """The code's bookkeeping (per-block CE rows, orbit singular values) against Zbar built and evaluated directly."""
    vals = [c for c in C.code_values(K, M, ell, 30) if c.refined][:6]
    assert vals
    with mpmath.workdps(40):
        for c in vals:
            Z = C.CodeModel(c.code, M).matrix(c.theta)
            assert abs(_F_direct(Z, M, ell) - c.value) < mpmath.mpf(10) ** -28, c.name
            s = sorted(mpmath.svd_r(mpmath.matrix(Z), compute_uv=False), reverse=True)[:len(c.singular_values)]
            assert all(abs(a - b) < mpmath.mpf(10) ** -25 for a, b in zip(s, c.singular_values)), c.name


@pytest.mark.parametrize("K, n, M, lam", [(3, 2, 2, 0.01), (4, 2, 3, 0.002), (5, 1, 4, 0.03), (6, 3, 2, 1e-4)])
def test_etf_code_equals_the_etf_family_derivation(K, n, M, lam):
    """Two independent computations of the ETF's best value: the code (amplitude Newton) and ce-deep-etf (margin)."""
    inst = Instance.create(classes=K, per_class=n, width=K, depth=M, lam_w=lam, lam_h=lam, loss="ce")
    ref = derive("ce-deep-etf", inst, dps=40).objective.value
    ell = lam * n ** (1.0 / (M + 1))
    with mpmath.workdps(60):  # lambda as the decimal it is written as (the theory engine reads it exactly)
        ell_mp = mpmath.mpf(str(lam)) * mpmath.mpf(n) ** (mpmath.mpf(1) / (M + 1))
    etf = next(c for c in C.code_values(K, M, ell_mp, 40) if c.code.is_etf)
    assert ell > 0 and abs(etf.value - ref) < mpmath.mpf(10) ** -30


def test_the_spec_counterexample_square_beats_the_etf():
    best, vals = C.best_geometry(4, 3, ELL_SPEC, 30)
    assert best is not None and not best.code.is_etf and best.rank == 2
    assert round(float(best.value), 7) == SPEC_SQUARE
    etf = next(c for c in vals if c.code.is_etf)
    assert round(float(etf.value), 7) == SPEC_ETF
    # the square: two singular values, equal
    assert len(best.singular_values) == 2 and abs(best.singular_values[0] - best.singular_values[1]) < 1e-25


@pytest.mark.parametrize("K", [3, 4, 5, 6, 7, 8])
def test_selection_agrees_with_the_independent_reduced_search(K):
    """Depth 3, n = 2, all lambdas 0.002: the reduced search (no codes, no ETF) reaches the selected value and never
    goes below it; the geometry's rank agrees."""
    best, _ = C.best_geometry(K, 3, ELL_SPEC, 30)
    res = ce_reduced.search(K, 3, ELL_SPEC, starts=32, seed=0)
    assert res.best.value >= float(best.value) - ce_reduced.SAME_POINT * float(best.value)
    assert abs(res.best.value - float(best.value)) <= ce_reduced.SAME_POINT * float(best.value)
    assert res.best.rank == best.rank


def test_k4_m2_boundary_values_equal_and_order_flips():
    """ETF below ell*, the square above: equal values at ell*, strict order on both sides, the reduced search's rank
    flips too (3 -> 2)."""
    etf, sq = C.etf_code(4), C.Code(((C.Block(2, (1,)), 2),))
    c = C.crossing(etf, sq, 4, 2, 0.005, 0.03, dps=30)
    assert c.certified and c.left == etf.name() and c.right == sq.name()
    with mpmath.workdps(40):
        ve, vs = C.refined_value(etf, 2, c.ell, 30).value, C.refined_value(sq, 2, c.ell, 30).value
        assert abs(ve - vs) < mpmath.mpf(10) ** -26
        for f, etf_lower in ((1 - mpmath.mpf(10) ** -3, True), (1 + mpmath.mpf(10) ** -3, False)):
            d = C.refined_value(etf, 2, c.ell * f, 30).value - C.refined_value(sq, 2, c.ell * f, 30).value
            assert (d < 0) == etf_lower
    assert ce_reduced.search(4, 2, float(c.ell) * 0.8, starts=16).best.rank == 3
    assert ce_reduced.search(4, 2, float(c.ell) * 1.25, starts=16).best.rank == 2


def test_depth_one_collapse_boundary_is_one_over_k():
    for K in (3, 5):
        c = C.crossing(C.etf_code(K), None, K, 1, 0.1, 0.9, dps=30)
        with mpmath.workdps(50):
            assert abs(c.ell - mpmath.mpf(1) / K) < mpmath.mpf(10) ** -35 and c.certified and c.continuous


def test_recorded_phase_table_matches_a_recomputation():
    table = C.load_phase_table()
    assert {(K, M) for K in range(3, 9) for M in range(1, 7)} <= set(table)
    rec = table[(4, 2)]
    again = C.phase_boundaries(4, 2, *C.PHASE_RANGE, 40, 32)
    assert [(c.left, c.right) for c in again] == [(x["left"], x["right"]) for x in rec["crossings"]]
    with mpmath.workdps(40):
        for c, x in zip(again, rec["crossings"]):
            assert abs(c.ell - mpmath.mpf(x["ell"])) < mpmath.mpf(10) ** -28


def test_family_reports_the_true_minimizer_and_the_etf_beside_it():
    inst = Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=0.002, lam_h=0.002, loss="ce")
    p = derive("ce-deep", inst)
    assert p.derivation["etf_optimal"] is False and p.derivation["rank"] == 2
    assert round(float(p.objective.value), 7) == SPEC_SQUARE
    assert round(float(p.scalars["etf_value"][0].value), 7) == SPEC_ETF
    assert any("NOT globally optimal" in n for n in p.notes)
    # the prediction's point is a full-matrix point with that objective (balanced aligned factors)
    zb = np.array([[float(v) for v in r] for r in p.gram_targets["WHbar"].matrix])
    pt = ce_reduced.balanced_point(zb, inst)
    f = float(models.objective(inst, models.Params.from_numpy(pt)))
    assert abs(f - float(p.objective.value)) < 1e-12
    # singular values of every layer and of the logits as stated
    for j, w in enumerate(pt["weights"]):
        assert np.allclose(np.linalg.svd(w, compute_uv=False), [float(x.value) for x in p.singular_values.layers[j]],
                           atol=1e-10)
    # ETF side: the ce-deep-etf prediction, marked optimal
    inst2 = Instance.create(classes=3, per_class=2, width=3, depth=2, lam_w=0.01, lam_h=0.01, loss="ce")
    p2 = derive("ce-deep", inst2)
    assert p2.derivation["etf_optimal"] is True
    assert p2.objective.value == derive("ce-deep-etf", inst2).objective.value


def test_family_rejects_bad_input_by_name():
    from ncverify.theory.errors import TheoryInputError

    with pytest.raises(TheoryInputError, match="width d >= K"):
        derive("ce-deep", Instance.create(classes=4, per_class=1, width=3, depth=2, loss="ce"))
    with pytest.raises(TheoryInputError, match="balanced"):
        derive("ce-deep", Instance.create([2, 1, 1], width=3, depth=2, loss="ce"))
    with pytest.raises(InstanceError, match="ell"):
        ce_reduced.reduced_instance(3, 2, -1.0)
    with pytest.raises(InstanceError, match="K >= 2"):
        ce_reduced.reduced_instance(1, 2, 0.1)


def test_full_matrix_numerics_reach_the_derived_minimum_and_never_go_below():
    """Independent full-matrix batched numerics (the start portfolio) on instances with different geometries."""
    from ncverify.numerics.starts import solve_instances

    insts = [Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=0.002, lam_h=0.002, loss="ce"),
             Instance.create(classes=5, per_class=1, width=5, depth=2, lam_w=[0.02, 0.05], lam_h=0.04, loss="ce"),
             Instance.create(classes=3, per_class=3, width=3, depth=1, lam_w=0.01, lam_h=0.02, loss="ce")]
    torch.manual_seed(0)
    for inst, res in zip(insts, solve_instances(insts, starts=8, seed=0)):
        d = float(derive("ce-deep", inst).objective.value)
        assert res.best.objective >= d - 1e-10, inst.cli_flags()
        assert abs(res.best.objective - d) <= 1e-8 * max(1.0, d), inst.cli_flags()


def test_describe_names_dead_and_coincident_classes():
    Z = np.array([[2.0, 2.0, -2.0, 0.0], [2.0, 2.0, -2.0, 0.0], [-2.0, -2.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    g = ce_reduced.describe(Z)
    assert g["rank"] == 1 and g["dead_classes"] == [3] and g["coincident_classes"] == [[0, 1]]
    assert not g["one_orbit"]


def test_dang_ce_deep_refuted_where_the_codes_say_and_the_conjecture_holds_on_both_sides():
    from ncverify.proofs_checks import verify
    from ncverify.proofs_checks.catalogue import by_id

    th, conj = by_id("dang2023.ce-deep"), by_id("ce-deep-etf-boundary")
    bad = Instance.create(classes=4, per_class=2, width=4, depth=3, lam_w=0.002, lam_h=0.002, loss="ce")
    assert th.expected.refutes(bad)
    res = verify.check(th, bad, starts=8, seed=0)
    assert res.verdict == "refuted"
    for inst in conj.examples[:2]:  # both sides of the K = 4, M = 2 boundary
        r = verify.check(conj, inst, starts=8, seed=0)
        assert r.verdict == "verified", (inst.cli_flags(), r.reason)
    for mut_id in ("mutant:ce-deep-etf-boundary:region*1.5", "mutant:ce-deep-etf-boundary:no-n"):
        m = by_id(mut_id)
        assert verify.check(m, m.examples[0], starts=8, seed=0).verdict == "refuted", mut_id


def test_relabelled_distance_sees_a_relabelling_and_not_a_different_geometry():
    from ncverify.proofs_checks.verify.stages import relabelled_distance

    rng = np.random.default_rng(3)
    for K in (4, 9):
        A = rng.normal(size=(K, K))
        G = A @ A.T
        p = rng.permutation(K)
        d, how = relabelled_distance(G[np.ix_(p, p)], G)
        assert d < 1e-12, how
        E = np.zeros((K, K))
        E[0, 1] = E[1, 0] = 0.5
        # a different matrix with the same diagonal: no relabelling reaches it (K = 4: exhaustive search)
        if K == 4:
            assert relabelled_distance(G + E, G)[0] > 0.1
    # K > 8: a lower bound (spectra and sorted diagonals), never above the distance of any one relabelling
    A = rng.normal(size=(9, 9))
    G, G2 = A @ A.T, (A + 0.1 * rng.normal(size=(9, 9))) @ (A + 0.1 * rng.normal(size=(9, 9))).T
    assert relabelled_distance(G2, G)[0] <= float(np.linalg.norm(G2 - G)) + 1e-12


def test_constructed_point_of_a_code_prediction_is_critical_with_value_f_star():
    """The logits layout of theory.construct (SVD of Zbar in mpmath) for codes with dead classes and coupling."""
    from ncverify.numerics import diagnostics
    from ncverify.proofs_checks.verify.stages import construct_claimed_point

    for inst in (Instance.create(classes=5, per_class=3, width=6, depth=3, lam_w=0.003, lam_h=0.003, loss="ce"),
                 Instance.create(classes=3, per_class=2, width=3, depth=2, lam_w=0.145, lam_h=0.145, loss="ce")):
        p = derive("ce-deep", inst)
        assert p.derivation["etf_optimal"] is False, inst.cli_flags()
        point, why = construct_claimed_point(p, inst)
        assert point is not None, why
        at = diagnostics.evaluate_point(inst, point)
        assert abs(at["objective"] - float(p.objective.value)) < 1e-12 * max(1.0, float(p.objective.value))
        assert at["grad_norm"] < 1e-9, (inst.cli_flags(), at["grad_norm"])


def test_derived_boundaries_are_the_recorded_crossings():
    inst = Instance.create(classes=4, per_class=2, width=4, depth=2, lam_w=0.002, lam_h=0.002, loss="ce")
    p = derive("ce-deep", inst)
    glob = [b for b in p.phase_boundaries if b.kind == "global" and b.parameter.startswith("ell")]
    rec = C.load_phase_table()[(4, 2)]["crossings"]
    with mpmath.workdps(40):
        assert [mpmath.nstr(b.value.value, 25) for b in glob] == [mpmath.nstr(mpmath.mpf(x["ell"]), 25) for x in rec]
    assert "simplex ETF on 4 (below)" in glob[0].description


def test_reduced_start_lifts_the_reduced_search_and_never_recurses():
    from ncverify.numerics import ce_lift, starts

    inst = Instance.create(classes=4, per_class=10, width=5, depth=5, lam_w=0.077545751, lam_h=0.077545751, loss="ce")
    assert ce_lift.liftable(inst) and starts.portfolio_kind(inst, starts.REDUCED_AT) == "reduced"
    red = ce_lift.reduced_instance(4, 5, ce_lift.ell_of(inst))
    assert not ce_lift.liftable(red) and starts.portfolio_kind(red, starts.REDUCED_AT) == starts.PORTFOLIO[starts.REDUCED_AT]
    for other in (inst.with_(loss="mse"), inst.with_(bias=True, lam_b=0.1), inst.with_(width=3),
                  Instance.create([3, 2, 2, 2], width=4, depth=2, loss="ce")):
        assert not ce_lift.liftable(other) and starts.portfolio_kind(other, starts.REDUCED_AT) == starts.PORTFOLIO[starts.REDUCED_AT]
    p0, kind = starts.portfolio_start(inst, starts.REDUCED_AT, seed=0, device="cpu")
    assert kind == "reduced"
    # the lifted point has the objective of the reduced search's best end point (balanced factorization)
    best = min(r.objective for r in starts.solve_instances([red], starts=starts.REDUCED_STARTS, seed=starts.REDUCED_AT,
                                                           device="cpu")[0].runs)
    assert abs(float(models.objective(inst, p0)) - best) < 1e-10 * max(1.0, best)
    # near total collapse it is the global minimum the derivation names
    assert abs(best - float(derive("ce-deep", inst).objective.value)) < 1e-9
    again, _ = starts.portfolio_start(inst, starts.REDUCED_AT, seed=0, device="cpu")
    assert torch.equal(again.flatten(), p0.flatten())


def test_with_a_bias_at_depth_two_the_codes_at_b0_are_not_the_global_minimum():
    """Why ce-deep refuses a bias at M >= 2: a class-dependent bias lowers the objective below every code at b = 0
    (full-matrix numerics); at M = 1 the ETF with b = 0 stays the derivation."""
    from ncverify.numerics.starts import solve_instances
    from ncverify.theory.errors import TheoryInputError

    inst = Instance.create(classes=4, per_class=2, width=4, depth=2, lam_w=0.0159, lam_h=0.0159, loss="ce", bias=True,
                           lam_b=0.001)
    with pytest.raises(TheoryInputError, match="depth M = 1 only"):
        derive("ce-deep", inst)
    at_b0 = float(derive("ce-deep", inst.with_(bias=False, lam_b=0.0)).objective.value)
    best = solve_instances([inst], starts=8, seed=0)[0].best
    assert best.objective < at_b0 - 1e-5, (best.objective, at_b0)
    assert float(np.abs(best.params.to_numpy()["b"]).max()) > 1e-3  # the bias is used
    m1 = Instance.create(classes=4, per_class=2, width=4, depth=1, lam_w=0.05, lam_h=0.05, loss="ce", bias=True,
                         lam_b=0.1)
    assert derive("ce-deep", m1).derivation["etf_optimal"] is True


def test_describe_names_the_shape_of_the_class_means():
    K = 5
    etf = 3.0 * (np.eye(K) - np.ones((K, K)) / K)
    pent = np.array([[math.cos(2 * math.pi * (j - k) / K) for k in range(K)] for j in range(K)])
    cross = np.kron(np.eye(2), np.array([[1.0, -1.0], [-1.0, 1.0]]))
    assert ce_reduced.describe(etf)["shape"] == "simplex ETF on 5"
    assert ce_reduced.describe(pent)["shape"] == "regular 5-gon"
    assert ce_reduced.describe(cross)["shape"] == "cross-polytope on 4"
    assert ce_reduced.describe(np.zeros((3, 3)))["shape"] == "total collapse"
    sub = np.zeros((4, 4))
    sub[:3, :3] = 2.0 * (np.eye(3) - np.ones((3, 3)) / 3)  # an ETF on a subset, the fourth class dead
    assert ce_reduced.describe(sub)["shape"] == "simplex ETF on 3 + 1 dead class"
    bent = pent.copy()
    bent[:, 0] *= 1.5  # one class farther out: not a regular polygon
    assert ce_reduced.describe(bent)["shape"].startswith("rank 2, 5 points, ")
