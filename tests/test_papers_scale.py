"""Verdicts at the papers' own scale: the [P1] synthetic setting (K = 4, 100 per class, width 64, depth 3, every
lambda 5e-4: 34,048 parameters) and its imbalanced version get a verdict, not "inconclusive"; a seeded wrong claim
at that scale is refuted. The numerics there run with H eliminated (``numerics.eliminated``) and the curvature
from Hessian-vector products (``numerics.curvature``); every number is the full objective's.
"""
from __future__ import annotations

import pytest

from ncverify import api

P1 = dict(width=64, depth=3, lam_w=[5e-4] * 3, lam_h=5e-4)


@pytest.mark.parametrize("counts", [[100] * 4, [200, 100, 50, 50]])
def test_p1_setting_is_verified(counts):
    res = api.check("dang2023.mse-deep", counts=counts, starts=3, **P1)
    assert res.verdict == "verified", res.reason
    num = res.numerics
    assert num["hessian"]["method"] == "lanczos" and num["hessian"]["mu"] > 0
    assert any("features eliminated" in r["message"] for r in num["runs"])


def test_seeded_wrong_claim_at_p1_scale_is_refuted():
    res = api.check("mutant:dang2023.mse-deep:exponent", counts=[100] * 4, starts=2, **P1)
    assert res.verdict == "refuted", res.reason
