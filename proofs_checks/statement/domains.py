"""THE domain builder: the instances a theorem's search draws (Hypothesis), aimed at both sides of every
derived phase boundary. Hypothesis is imported only when a search asks for the strategy."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ncverify.numerics.problem import Instance

LAM_H_RATIOS = (0.8, 0.95, 0.99, 1.01, 1.05, 1.25)


def log_uniform(lo: float, hi: float) -> Any:
    """lambda values over several orders of magnitude (rounded to 3 significant digits for readable repros)."""
    from hypothesis import strategies as st

    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(f"{10 ** e:.3g}"))


def critical_values(family: str, inst: Instance) -> dict[str, list[float]]:
    """Where ``inst``, moved along one parameter, crosses a phase boundary of ``family`` (the theory engine's
    own derivation: ``theory.families``)."""
    from ncverify.theory import families
    from ncverify.theory.instance import read_instance

    return families.get(family).critical_values(read_instance(inst))


@dataclass(frozen=True)
class Domain:
    """A theorem's search domain; calling it gives the Hypothesis strategy.

    The defaults are the whole of a typical theorem's stated domain as far as the numerics can check it at the
    default budget: K = 2..10 classes, n = 1..50 samples per class (balanced), imbalanced counts n_k = 1..n_max
    with n_max = 1..``n_max`` (imbalance ratios up to ``n_max`` = 100), widths d = K..K + 8, every lambda
    log-uniform over four decades [1e-4, 1]. A theorem whose assumptions are narrower states them (and its
    validator enforces them); its domain then draws from exactly those.

    losses: full --loss strings drawn from; balanced; depths: the depths M drawn from (any of them); K, n:
    (min, max) classes and samples per class (balanced); n_max: (min, max) of the largest class when imbalanced;
    extra_width: d = K + 0..extra_width; lam: log-uniform range of every lambda; per_layer: one lambda_W per
    layer (else one for all); bias; lam_b: values drawn from, or lam_b_range (log-uniform); activation; two_groups:
    counts of two class groups, K_A >= 1 classes of n_A and K_B >= 2 of n_B < n_A (n_A up to n_max[1]); targets:
    real-valued regression targets "gauss:SEED" with a drawn seed; family:
    the theory family whose boundaries are aimed at; aim: the parameters moved to ``ratios`` x a boundary value
    (half of the draws), e.g. ("lam_h",) or ("lam_b",).
    """

    family: str
    losses: tuple[str, ...] = ("mse",)
    balanced: bool = False
    depths: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    K: tuple[int, int] = (2, 10)
    n: tuple[int, int] = (1, 50)
    n_max: tuple[int, int] = (1, 100)
    extra_width: int = 8
    lam: tuple[float, float] = (1e-4, 1.0)
    per_layer: bool = True
    bias: bool = False
    lam_b: tuple[float, ...] = (0.0,)
    lam_b_range: tuple[float, float] | None = None
    activation: str | None = None
    two_groups: bool = False
    targets: bool = False
    aim: tuple[str, ...] = ("lam_h",)
    ratios: tuple[float, ...] = LAM_H_RATIOS

    def base(self) -> Any:
        """Instances drawn from the whole domain (no aiming)."""
        from hypothesis import strategies as st

        @st.composite
        def draw_instance(draw) -> Instance:
            k = draw(st.integers(*self.K))
            if self.two_groups:  # K_A majority classes of n_A and K_B >= 2 minority classes of n_B < n_A
                k = max(k, 3)
                k_b = draw(st.integers(2, k - 1))
                n_b = draw(st.integers(1, max(1, self.n_max[1] // 2)))
                n_a = draw(st.integers(n_b + 1, max(n_b + 1, self.n_max[1])))
                counts = [n_a] * (k - k_b) + [n_b] * k_b
            elif self.balanced:
                counts = [draw(st.integers(*self.n))] * k
            else:
                top = draw(st.integers(*self.n_max))
                counts = draw(st.lists(st.integers(1, top), min_size=k, max_size=k))
            M = draw(st.sampled_from(list(self.depths)))
            d = k + draw(st.integers(0, self.extra_width))
            lam_w = [draw(log_uniform(*self.lam)) for _ in range(M)] if self.per_layer else [draw(log_uniform(*self.lam))] * M
            lam_h = draw(log_uniform(*self.lam))
            loss = draw(st.sampled_from(list(self.losses)))
            lam_b = draw(log_uniform(*self.lam_b_range)) if self.lam_b_range else draw(st.sampled_from(list(self.lam_b)))
            targets = f"gauss:{draw(st.integers(0, 10 ** 6))}" if self.targets else None
            return Instance.create(counts, width=d, depth=M, lam_w=lam_w, lam_h=lam_h, loss=loss, bias=self.bias,
                                   lam_b=lam_b, activation=self.activation, targets=targets)
        return draw_instance()

    def near_boundaries(self, base: Any) -> Any:
        """Move one ``aim`` parameter of a drawn instance to ``ratios`` of a derived boundary value, when that value
        lies in the domain's range for the parameter (``lam``, or ``lam_b_range`` for lambda_b): aiming never leaves
        the stated domain (boundaries outside it are not aimed at; the drawn instance is kept)."""
        from hypothesis import strategies as st

        @st.composite
        def strat(draw) -> Instance:
            inst = draw(base)
            crit = critical_values(self.family, inst)
            params = [p for p in self.aim if crit.get(p)]
            if not params:
                return inst
            p = draw(st.sampled_from(params))
            value = draw(st.sampled_from(sorted(crit[p])))
            ratio = draw(st.sampled_from(list(self.ratios)))
            moved = float(f"{value * ratio:.6g}")
            lo, hi = self.lam_b_range if (p == "lam_b" and self.lam_b_range) else self.lam
            return inst.with_(**{p: moved}) if lo <= moved <= hi else inst
        return strat()

    def __call__(self) -> Any:
        from hypothesis import strategies as st

        base = self.base()
        return st.one_of(base, self.near_boundaries(base))


def domain(family: str, **kw: Any) -> Domain:
    """A ``Domain`` of ``family`` (keywords as the fields of ``Domain``; sequences become tuples)."""
    return Domain(family, **{k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()})


def instances(*, loss: str = "mse", balanced: bool = False, depths: Sequence[int] = (1, 2, 3), K=(2, 4), n=(1, 6),
              bias: bool = False, lam_b: float = 0.0, activation: str | None = None, lam=(1e-3, 1e-1),
              per_layer: bool = True, extra_width: int = 1, family: str = "mse-deep") -> Any:
    """The whole domain without aiming, as a strategy (kept for user files written against the old API)."""
    return domain(family, losses=(loss,), balanced=balanced, depths=tuple(depths), K=K, n=n, n_max=n, bias=bias, lam_b=(lam_b,),
                  activation=activation, lam=lam, per_layer=per_layer, extra_width=extra_width).base()


def mixed(base: Any, family: str) -> Any:
    """A strategy factory: ``base`` or ``base`` moved to both sides of ``family``'s lambda_H boundaries (old API)."""
    from hypothesis import strategies as st

    d = Domain(family)
    return lambda: st.one_of(base, d.near_boundaries(base))
