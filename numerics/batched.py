"""Batched float64 minimizers: B independent problems (instances x starts) minimized in one call.

torch only (never SymPy). Each problem is an instance of ``numerics.models`` with its own starting point;
the objective, notation and normalizations are exactly those of ``numerics.models`` (f = data term +
sum_j lambda_{W_j}/2 ||W_j||_F^2 + lambda_H/2 ||H||_F^2 + lambda_b/2 ||b||^2).

Layout (``Group``). Every problem with a built-in loss (MSE or CE, any depth, bias, activation) can share a
batch; a registered loss shares only with the same loss and K (``group_key``). ``buckets`` splits the problems
into batches of similar size. Inside a batch every problem is padded exactly to the largest K, d, N and depth:
padded entries of W_1..W_M, H and b are zero and stay zero (their gradient is masked), padded samples carry
weight 0 in the data term (the 1/N of each problem uses its own N), padded classes get logit -inf before the
softmax (CE) and a zero target (MSE), a shallower problem's missing layers are frozen identities with no
penalty, and a per-problem flag selects the loss and the ReLU. So padding changes no objective and no gradient
(tests check both against ``numerics.models``). The gradient of the built-in losses is written out (chain rule
through the weight products); a registered loss uses autograd.

Solvers (per problem: own step, line search, memory, stop reason, counts, gradient norm, history):

* L-BFGS (``_lbfgs_run``) in the compact representation (Byrd, Nocedal, Schnabel 1994): a step streams the
  memory twice whatever m, and the small m x m matrices are updated without reading it. It runs in scaled
  variables u = x / c, c constant on each block W_j, H, b (``block_scales``: c_A = sqrt(lambda_ref / lambda_A),
  so every block has curvature of one scale); the iterate, f, grad f and every stop test stay in x. Per-problem
  backtracking Armijo line searches run *asynchronously*: every outer step evaluates one trial point per
  problem; a rejected problem shrinks its own step and retries at the next outer step while the others move
  on. A trial whose objective moved by no more than rounding level (``POLISH_SLACK`` |f|) is judged by
  ||grad f|| instead; after ``FLAT_STEPS`` such trials, or a line search that fails twice (the memory is reset
  after the first failure), the problem goes to a Newton-CG polish (``_polish``): conjugate gradients on
  Hessian-vector products from ``torch.func.vjp`` of ``torch.func.grad`` (the Hessian is symmetric), each
  Newton step accepted only if ||grad f|| decreases and f stays within rounding level.
* ``gd`` (``_gd_run``): the papers' full-batch gradient descent with heavy-ball momentum
  (v <- mu v + g, x <- x - lr v).

Stop reasons as in ``numerics.solvers``: "converged" (||grad f||_2 <= grad_tol), "budget", "diverged"
(non-finite objective or gradient: the returned point is the last finite one, never NaN; +inf if none).
Active-set compaction: finished problems leave the working arrays whenever fewer than half remain; once a
batch is down to its slowest rows (``TAIL_ROWS``, ``TAIL_FRACTION``), those rows of every batch run together in
one batch padded to them (``_merge``), so a few hard problems cost one batch's steps and never hold others back.

Entry point: ``solve_problems(problems, solver=...)`` -> one ``numerics.solvers.RunResult`` per problem, in
order. Same inputs, same numbers (deterministic kernels, no randomness inside the solver).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ncverify.numerics import losses, models
from ncverify.numerics.models import Params, check_params, resolve_device
from ncverify.numerics.problem import Instance, InstanceError
from ncverify.numerics.solvers import (GD_GRAD_TOL, GD_MAX_ITER, LBFGS_GRAD_TOL, LBFGS_MAX_ITER, POLISH_PATIENCE,
                              POLISH_SLACK, RunResult)

#: L-BFGS memory m (pairs). A step streams the (2m x n) memory twice, about half its cost in large batches. On
#: the benchmark's 768 problems (block-scaled variables) m = 6, 8, 10, 15 all took 8.6-11.4 s, within this
#: machine's run-to-run noise; m = 15 needs the fewest iterations (53.8k; 57.0k at m = 10, 59.1k at m = 6).
HISTORY = 15
#: steps between exact recomputations of S^T Y and Y^T Y (see ``_lbfgs_run``)
REFRESH = 50
#: Armijo constant and the largest number of consecutive step reductions before a line search "fails".
ARMIJO_C1 = 1e-4
MAX_BACKTRACKS = 40
#: A curvature pair (s, y) is stored only when s^T y > PAIR_COS ||s|| ||y|| (scale-free; torch's L-BFGS uses
#: an absolute 1e-10, which freezes the memory near a minimizer).
PAIR_COS = 1e-10
#: after this many trial points at rounding level (no decrease of f beyond POLISH_SLACK |f|) since the last
#: Armijo step, a problem goes to the polish
FLAT_STEPS = 3
#: Newton-CG polish: at most POLISH_STEPS Newton steps, CG to relative residual POLISH_CG_RTOL, CG_MAX iterations.
POLISH_STEPS = 60
POLISH_CG_RTOL = 1e-2
CG_MAX = 100


@dataclass(frozen=True)
class Problem:
    """One problem of a batch: ``inst`` started at ``params0``; ``seed``/``start``/``kind`` only label the run."""

    inst: Instance
    params0: Params
    seed: int | None = None
    start: int = 0
    kind: str = ""


def group_key(inst: Instance) -> tuple:
    """Problems with equal keys can share one padded batch (see the module docstring): every problem with a
    built-in loss (MSE or CE, any depth, bias, activation) shares one key; a registered loss needs equal K."""
    base, _ = losses.parse_loss(inst.loss)
    return ("builtin",) if base in losses.BUILTIN else ("registered", inst.loss, inst.K)


def _dims(inst: Instance) -> tuple[int, int, int, int, int]:
    """(M, K, d, N, bias) of one instance: the sizes that padding takes the maximum of."""
    return inst.depth, inst.K, inst.width, inst.N, int(inst.bias)


def _size(dims: tuple[int, int, int, int, int]) -> int:
    M, K, d, N, bias = dims
    return (M - 1) * d * d + K * d + d * N + K * bias


def padded_size(insts: Sequence[Instance]) -> int:
    """Length n of one padded flat vector for a group of ``insts`` (see ``Group``)."""
    return _size(tuple(max(col) for col in zip(*map(_dims, insts))))  # type: ignore[arg-type]


def block_scales(inst: Instance) -> list[float]:
    """The L-BFGS variable scaling c_A of each block A of W_1..W_M, H[, b] (the solver runs in u = x / c).

    c_A = sqrt(lambda_ref / lambda_A), lambda_ref = the geometric mean of lambda_{W_1..W_M}, lambda_H (1 for the
    bias). Why: at a critical point the layers are balanced (lambda_A ||A||^2 equal across factors), so the
    curvature of f in block A, regularizer and data term alike, scales like lambda_A; with lambdas decades apart
    the plain L-BFGS start H_0 = gamma I is off by that ratio between blocks, and in u every block's curvature
    has one scale. On the benchmark's 768 problems: 53.8k L-BFGS iterations instead of 160k unscaled."""
    lams = list(inst.lam_w) + [inst.lam_h]
    ref = math.exp(sum(math.log(v) for v in lams) / len(lams))
    return [math.sqrt(ref / v) for v in lams] + ([1.0] if inst.bias else [])


def buckets(insts: Sequence[Instance], waste: float = 3.0) -> list[list[int]]:
    """Indices of ``insts`` split into batches: first by ``group_key``, then (sorted by size, largest first) so
    that a batch's padded size is at most ``waste`` times the real size of its smallest member; fewer batches
    cost fewer kernel launches per step, tighter batches less arithmetic on padding."""
    by_key: dict[tuple, list[int]] = {}
    for i, inst in enumerate(insts):
        by_key.setdefault(group_key(inst), []).append(i)
    out: list[list[int]] = []
    for members in by_key.values():
        cur: list[int] = []
        dims = (0, 0, 0, 0, 0)  # running maxima over the current batch
        for i in sorted(members, key=lambda i: -models.num_params(insts[i])):
            new = tuple(max(a, b) for a, b in zip(dims, _dims(insts[i])))
            if cur and _size(new) > waste * models.num_params(insts[i]):  # type: ignore[arg-type]
                out.append(cur)
                cur, new = [], _dims(insts[i])
            cur.append(i)
            dims = new  # type: ignore[assignment]
        out.append(cur)
    return out


# ---------------------------------------------------------------------------------------------
# a padded group of problems
# ---------------------------------------------------------------------------------------------
_PER_PROBLEM = ("mask", "fill", "y", "w", "cls", "lam_w", "lam_h", "lam_b", "is_ce", "relu", "deep", "Y", "sc")


class Group:
    """B problems padded to one structure: depth M = the largest depth, (K, d, N) = the largest of each, a bias
    slot when any problem has a bias; flat length ``n``.

    Flat layout of one padded problem: vec(W_1), ..., vec(W_M), vec(H)[, b], row-major with the padded shapes
    (d x d, ..., K x d, d x N, K). A problem of depth M_p < M keeps its W_1..W_{M_p - 1} in slots 1..M_p - 1 and
    its last layer in slot M; slots M_p..M-1 hold the identity, frozen (masked) and unpenalized (lambda 0), so
    the product W_M I ... I W_{M_p-1} ... W_1 is exactly the problem's own. Per-problem data (labels, sample
    weights 1/N_p, class mask, lambdas, loss and activation flags, coordinate mask and fill) carry a leading
    batch dimension, so ``subset`` is a few index_selects.
    """

    def __init__(self, insts: Sequence[Instance], device: torch.device, dtype: torch.dtype = torch.float64) -> None:
        keys = {group_key(i) for i in insts}
        if len(keys) != 1:
            raise InstanceError(f"one group needs one structure, got {sorted(map(str, keys))}")
        first = insts[0]
        self.insts = list(insts)
        self.device, self.dtype = device, dtype
        self.M = max(i.depth for i in insts)
        self.loss = first.loss
        self.base = losses.parse_loss(first.loss)[0]
        self.registered = self.base not in losses.BUILTIN
        self.bias = any(i.bias for i in insts)
        self.K = max(i.K for i in insts)
        self.d = max(i.width for i in insts)
        self.N = max(i.N for i in insts)
        K, d, N, M = self.K, self.d, self.N, self.M
        self.shapes = [(d, d)] * (M - 1) + [(K, d), (d, N)] + ([(K,)] if self.bias else [])
        sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(sizes[:j]) for j in range(len(sizes))]
        self.sizes = sizes
        self.n = sum(sizes)
        B = len(insts)
        self.index = [self._index(i) for i in insts]
        mask = torch.zeros(B, self.n, dtype=dtype)
        fill = torch.zeros(B, self.n, dtype=dtype)
        y = torch.zeros(B, N, dtype=torch.long)
        w = torch.zeros(B, N, dtype=dtype)
        cls = torch.zeros(B, K, 1, dtype=dtype)
        lam_w = torch.zeros(B, M, dtype=dtype)
        lam_h = torch.zeros(B, dtype=dtype)
        lam_b = torch.zeros(B, dtype=dtype)
        is_ce = torch.zeros(B, dtype=torch.bool)
        relu = torch.zeros(B, dtype=torch.bool)
        deep = torch.zeros(B, dtype=torch.bool)
        eye = torch.eye(d, dtype=dtype).reshape(-1)
        for p, inst in enumerate(insts):
            mask[p, self.index[p]] = 1.0
            for j in range(inst.depth - 1, M - 1):  # frozen identity slots
                fill[p, self.offsets[j]:self.offsets[j] + d * d] = eye
            lab = torch.repeat_interleave(torch.arange(inst.K), torch.tensor(list(inst.counts)))
            y[p, : inst.N] = lab
            w[p, : inst.N] = 1.0 / inst.N
            cls[p, inst.K:, 0] = -math.inf
            lam_w[p, : inst.depth - 1] = torch.tensor(list(inst.lam_w[:-1]), dtype=dtype)
            lam_w[p, M - 1] = inst.lam_w[-1]
            lam_h[p] = inst.lam_h
            lam_b[p] = inst.lam_b if inst.bias else 0.0
            is_ce[p] = inst.loss == "ce"
            relu[p] = inst.activation in ("relu", "relu-deep") and inst.depth > 1
            deep[p] = inst.activation == "relu-deep" and inst.depth > 2
        sc = torch.ones(B, self.n, dtype=dtype)
        for p, inst in enumerate(insts):
            for j, scale in zip(self._slots(inst), block_scales(inst)):
                sc[p, self.offsets[j]:self.offsets[j] + self.sizes[j]] = scale
        Y = torch.zeros(B, K, N, dtype=dtype)
        Y.scatter_(1, y[:, None, :], 1.0)
        Y = Y * (w[:, None, :] > 0)
        for p, inst in enumerate(insts):  # real-valued targets: Y = T E
            T = inst.target_prototypes()
            if T is not None:
                Y[p, : inst.K, : inst.N] = torch.tensor(T, dtype=dtype) @ Y[p, : inst.K, : inst.N]
        to = lambda t: t.to(device)  # noqa: E731
        self.mask, self.fill, self.y, self.w, self.cls = to(mask), to(fill), to(y), to(w), to(cls)
        self.lam_w, self.lam_h, self.lam_b, self.Y, self.sc = to(lam_w), to(lam_h), to(lam_b), to(Y), to(sc)
        self.is_ce, self.relu, self.deep = to(is_ce), to(relu), to(deep)
        self.any_deep = bool(deep.any())
        self.any_ce, self.any_mse = bool(is_ce.any()), bool((~is_ce).any())
        self.any_relu = bool(relu.any())
        self.padded_classes = any(i.K < K for i in insts)
        self._spec = losses.registered()[self.base] if self.registered else None
        self._loss_params = losses.parse_loss(self.loss)[1]

    def _slots(self, inst: Instance) -> list[int]:
        """The padded blocks that hold W_1..W_M, H[, b] of ``inst`` (in ``Params.flatten`` order)."""
        return list(range(inst.depth - 1)) + [self.M - 1, self.M] + ([self.M + 1] if inst.bias else [])

    def _index(self, inst: Instance) -> torch.Tensor:
        slots = self._slots(inst)
        real = [(inst.width, inst.width)] * (inst.depth - 1) + [(inst.K, inst.width), (inst.width, inst.N)]
        if inst.bias:
            real.append((inst.K,))
        parts = []
        for j, r in zip(slots, real):
            shp = self.shapes[j]
            grid = torch.arange(self.sizes[j]).view(shp) + self.offsets[j]
            parts.append((grid[: r[0], : r[1]] if len(shp) == 2 else grid[: r[0]]).reshape(-1))
        return torch.cat(parts)

    # -- subsets (active-set compaction) --------------------------------------------------------------
    def subset(self, rows: torch.Tensor) -> "Group":
        """The same group restricted to problems ``rows`` (a LongTensor on the group's device)."""
        g = object.__new__(Group)
        g.__dict__.update(self.__dict__)
        for name in _PER_PROBLEM:
            setattr(g, name, getattr(self, name).index_select(0, rows))
        rl = rows.tolist()
        g.insts = [self.insts[r] for r in rl]
        g.index = [self.index[r] for r in rl]
        return g

    # -- padding -------------------------------------------------------------------------------
    def pad(self, flats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Padded (B, n) matrix from each problem's flat vector (``Params.flatten`` order)."""
        X = self.fill.to("cpu").clone()
        for p, v in enumerate(flats):
            X[p, self.index[p]] = v.detach().to("cpu", self.dtype)
        return X.to(self.device)

    def unpad(self, X: torch.Tensor, p: int) -> torch.Tensor:
        """Problem ``p``'s flat vector (``Params.flatten`` order) from row p of a padded matrix."""
        return X[p].index_select(0, self.index[p].to(X.device))

    # -- the objective ------------------------------------------------------------------------------
    def parts(self, X: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """Views (W_1..W_M, H, b) of a padded (B, n) matrix."""
        B = X.shape[0]
        views = [X[:, o:o + s].view(B, *shp) for o, s, shp in zip(self.offsets, self.sizes, self.shapes)]
        return views[: self.M], views[self.M], (views[self.M + 1] if self.bias else None)

    def _activated(self, j: int) -> torch.Tensor:
        """(B,) bool: does a ReLU follow slot j (0-based, j < M - 1)? After slot 0 for the ReLU models, after every
        slot but the last for the DUFM (on a shallower DUFM's frozen identity slots it acts on nonnegative features
        and changes nothing)."""
        return self.relu if j == 0 else self.deep

    def _deep_forward(self, Ws: list[torch.Tensor], H: torch.Tensor) -> tuple[list, torch.Tensor]:
        """Layer by layer (the DUFM): ([(input, pre-activation, ReLU flags) per hidden slot], features entering
        the last slot)."""
        cache, X = [], H
        for j, W in enumerate(Ws[:-1]):
            pre = torch.bmm(W, X)
            act = self._activated(j)
            cache.append((X, pre, act))
            X = torch.where(act[:, None, None], torch.relu(pre), pre)
        return cache, X

    def objective(self, X: torch.Tensor) -> torch.Tensor:
        """f of every problem (a (B,) tensor) at the padded points X (B, n)."""
        Ws, H, b = self.parts(X)
        if self.any_deep:
            feats, rest = self._deep_forward(Ws, H)[1], Ws[-1:]
        elif self.any_relu:
            pre = torch.bmm(Ws[0], H)
            feats = torch.where(self.relu[:, None, None], torch.relu(pre), pre)
            rest = Ws[1:]
        else:
            feats, rest = H, Ws
        if rest:
            A = rest[-1]
            for W in reversed(rest[:-1]):
                A = torch.bmm(A, W)  # the product of the remaining weights first (K x d)
            Z = torch.bmm(A, feats)
        else:
            Z = feats
        if b is not None:
            Z = Z + b[:, :, None]
        f = self.data(Z)
        for j, W in enumerate(Ws):
            f = f + 0.5 * self.lam_w[:, j] * (W * W).sum(dim=(1, 2))
        f = f + 0.5 * self.lam_h * (H * H).sum(dim=(1, 2))
        if b is not None:
            f = f + 0.5 * self.lam_b * (b * b).sum(dim=1)
        return f

    def data(self, Z: torch.Tensor) -> torch.Tensor:
        """The data term of every problem from padded logits Z (B, K, N)."""
        if self.registered:
            B, K, N = Z.shape
            per = self._spec.per_sample(Z.permute(1, 0, 2).reshape(K, B * N), self.y.reshape(-1), self._loss_params)
            return (self.w * per.reshape(B, N)).sum(dim=1)
        mse = ce = None
        if self.any_mse:
            R = Z - self.Y
            mse = 0.5 * (self.w[:, None, :] * R * R).sum(dim=(1, 2))
        if self.any_ce:
            Zc = Z + self.cls if self.padded_classes else Z
            logp = torch.log_softmax(Zc, dim=1).gather(1, self.y[:, None, :]).squeeze(1)
            ce = -(self.w * logp).sum(dim=1)
        if mse is None:
            return ce
        if ce is None:
            return mse
        return torch.where(self.is_ce, ce, mse)

    def value_and_grad(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f (B,), grad f (B, n) with padded coordinates zero). Built-in losses: the gradient written out (no
        autograd graph: the chain rule through the weight products, below); a registered loss: autograd. Both
        are tested against autograd of ``numerics.models.objective``."""
        if self.registered:
            Xr = X.detach().requires_grad_(True)
            with torch.enable_grad():
                f = self.objective(Xr)
                (g,) = torch.autograd.grad(f.sum(), Xr)
            return f.detach(), g * self.mask
        with torch.no_grad():
            return self._value_and_grad(X)

    def _value_and_grad(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Z = C_L ... C_1 F (+ b 1^T) with F = H (linear) or s(W_1 H) (ReLU rows; then C = W_2..W_M), so with
        A = C_L...C_1, S_j = C_L...C_{j+1}, Q_j = C_{j-1}...C_1 and D = dL/dZ: dA = D F^T, dC_j = S_j^T dA Q_j^T,
        dF = A^T D, db = D 1; through the ReLU dW_1 = (dF * 1[pre > 0]) H^T, dH = W_1^T (dF * 1[pre > 0])."""
        Ws, H, b = self.parts(X)
        G = torch.zeros_like(X)
        gWs, gH, gb = self.parts(G)
        if self.any_deep:
            return self._deep_value_and_grad(Ws, H, b, G, gWs, gH, gb)
        if self.any_relu:
            pre = torch.bmm(Ws[0], H)
            feats = torch.where(self.relu[:, None, None], torch.relu(pre), pre)
            chain, gchain = Ws[1:], gWs[1:]
        else:
            feats, chain, gchain = H, Ws, gWs
        L = len(chain)
        suffix: list[torch.Tensor | None] = [None] * L  # S_j (None = identity for j = L)
        for j in range(L - 2, -1, -1):
            suffix[j] = chain[L - 1] if suffix[j + 1] is None and j == L - 2 else torch.bmm(suffix[j + 1], chain[j + 1])
        A = chain[0] if L == 1 else torch.bmm(suffix[0], chain[0])
        Z = torch.bmm(A, feats)
        if b is not None:
            Z = Z + b[:, :, None]
        data, D = self._data_and_grad(Z)
        dA = torch.bmm(D, feats.transpose(1, 2))
        prefix: torch.Tensor | None = None  # Q_j (None = identity for j = 1)
        for j in range(L):
            T = dA if prefix is None else torch.bmm(dA, prefix.transpose(1, 2))
            gchain[j].copy_(T if suffix[j] is None else torch.bmm(suffix[j].transpose(1, 2), T))
            if j < L - 1:
                prefix = chain[j] if prefix is None else torch.bmm(chain[j], prefix)
        dF = torch.bmm(A.transpose(1, 2), D)
        if self.any_relu:
            dpre = dF * torch.where(self.relu[:, None, None], (pre > 0).to(dF.dtype), torch.ones_like(dF))
            gWs[0].copy_(torch.bmm(dpre, H.transpose(1, 2)))
            gH.copy_(torch.bmm(Ws[0].transpose(1, 2), dpre))
        else:
            gH.copy_(dF)
        return self._add_penalties(data, D, Ws, H, b, gWs, gH, gb), G * self.mask

    def _add_penalties(self, data, D, Ws, H, b, gWs, gH, gb) -> torch.Tensor:
        """f = data + the penalties lambda/2 ||.||^2 (and the bias's), their gradients added into gWs, gH and the
        bias gradient D 1 + lambda_b b written into gb."""
        f = data
        for j, W in enumerate(Ws):
            lam = self.lam_w[:, j]
            f = f + 0.5 * lam * (W * W).sum(dim=(1, 2))
            gWs[j].add_(lam[:, None, None] * W)
        f = f + 0.5 * self.lam_h * (H * H).sum(dim=(1, 2))
        gH.add_(self.lam_h[:, None, None] * H)
        if b is not None:
            f = f + 0.5 * self.lam_b * (b * b).sum(dim=1)
            gb.copy_(D.sum(dim=2) + self.lam_b[:, None] * b)
        return f

    def _deep_value_and_grad(self, Ws, H, b, G, gWs, gH, gb) -> tuple[torch.Tensor, torch.Tensor]:
        """``_value_and_grad`` for groups with a DUFM: backpropagation layer by layer through every ReLU."""
        cache, F = self._deep_forward(Ws, H)
        Z = torch.bmm(Ws[-1], F)
        if b is not None:
            Z = Z + b[:, :, None]
        data, D = self._data_and_grad(Z)
        gWs[-1].copy_(torch.bmm(D, F.transpose(1, 2)))
        dX = torch.bmm(Ws[-1].transpose(1, 2), D)
        for j in range(len(cache) - 1, -1, -1):
            Xin, pre, act = cache[j]
            dpre = dX * torch.where(act[:, None, None], (pre > 0).to(dX.dtype), torch.ones_like(dX))
            gWs[j].copy_(torch.bmm(dpre, Xin.transpose(1, 2)))
            dX = torch.bmm(Ws[j].transpose(1, 2), dpre)
        gH.copy_(dX)
        return self._add_penalties(data, D, Ws, H, b, gWs, gH, gb), G * self.mask

    def _data_and_grad(self, Z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The built-in data terms and D = their gradient in Z (B, K, N): MSE w (Z - Y), CE w (softmax - onehot)."""
        mse = ce = None
        if self.any_mse:
            R = self.w[:, None, :] * (Z - self.Y)
            mse, D_mse = 0.5 * (R * (Z - self.Y)).sum(dim=(1, 2)), R
        if self.any_ce:
            Zc = Z + self.cls if self.padded_classes else Z
            logp = torch.log_softmax(Zc, dim=1)
            ce = -(self.w * logp.gather(1, self.y[:, None, :]).squeeze(1)).sum(dim=1)
            D_ce = self.w[:, None, :] * (torch.exp(logp) - self.Y)
        if mse is None:
            return ce, D_ce
        if ce is None:
            return mse, D_mse
        return torch.where(self.is_ce, ce, mse), torch.where(self.is_ce[:, None, None], D_ce, D_mse)

    def hvp_at(self, X: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """V -> (Hessian of each problem at X) V: ``torch.func.vjp`` of ``torch.func.grad`` (reverse over reverse;
        the Hessian is symmetric, so the vector-Jacobian product of the gradient is the Hessian-vector product).
        Problems are independent, so the Hessian of sum_p f_p is block diagonal. The pullback is built once per
        point and reused for every V (forward over reverse through ``linearize`` costs a graph trace per point)."""
        from torch.func import grad, vjp

        _, pullback = vjp(grad(lambda Z: self.objective(Z).sum()), X.detach())
        return lambda V: pullback(V)[0] * self.mask

# ---------------------------------------------------------------------------------------------
# per-problem bookkeeping
# ---------------------------------------------------------------------------------------------
class _Out:
    """Final state of every problem (by global index), filled as problems finish; the end point is stored
    unpadded, so a problem may finish in any batch layout."""

    def __init__(self, total: int) -> None:
        self.x: list[torch.Tensor | None] = [None] * total
        self.f = [math.inf] * total
        self.gn = [math.inf] * total
        self.reason = ["budget"] * total
        self.message = [""] * total
        self.iters = [0] * total
        self.evals = [0] * total
        self.hist: list[tuple[torch.Tensor, torch.Tensor]] = []  # (global ids, f) chunks, gathered at the end
        self.snaps: list[list[tuple[int, torch.Tensor]]] = [[] for _ in range(total)]
        self.done = 0

    def snapshot(self, work: "_Work", sel: torch.Tensor, it: torch.Tensor, X: torch.Tensor) -> None:
        """Keep (iteration, unpadded point) of the working rows ``sel``."""
        for r in sel.nonzero().squeeze(1).tolist():
            self.snaps[int(work.ids[r])].append((int(it[r]), work.group.unpad(X, r).clone()))

    def finish(self, work: "_Work", sel: torch.Tensor, X: torch.Tensor, f: torch.Tensor, gn: torch.Tensor,
               it: torch.Tensor, ev: torch.Tensor, reason: str, message: str | Callable[[float], str] = "") -> None:
        """Record the working rows ``sel`` (a bool mask) of ``work`` as finished with ``reason``."""
        rows = sel.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        gid = work.ids.index_select(0, rows).tolist()
        vals = zip(rows.tolist(), gid, f.index_select(0, rows).tolist(), gn.index_select(0, rows).tolist(),
                   it.index_select(0, rows).tolist(), ev.index_select(0, rows).tolist())
        for r, g_, fv, gv, i_, e_ in vals:
            self.x[g_] = work.group.unpad(X, r)
            self.f[g_], self.gn[g_], self.iters[g_], self.evals[g_] = fv, gv, int(i_), int(e_)
            self.reason[g_] = reason
            self.message[g_] = message(gv) if callable(message) else message
        self.done += len(gid)

    def record(self, ids: torch.Tensor, sel: torch.Tensor, f: torch.Tensor) -> None:
        """History: f of the working rows ``sel`` after an accepted step."""
        rows = sel.nonzero().squeeze(1)
        self.hist.append((ids.index_select(0, rows), f.index_select(0, rows)))

    def histories(self) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in self.f]
        if not self.hist:
            return out
        ids = torch.cat([h[0] for h in self.hist]).tolist()
        fs = torch.cat([h[1] for h in self.hist]).tolist()
        for i, fv in zip(ids, fs):
            out[i].append(fv)
        return out


def _rows_dot(P: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, k): the k rows of each P[b] (B, k, n) dotted with v[b] (B, n). Written as the row vector v^T times
    P^T (a strided view, no copy): on the CPU torch's batched matrix-vector product P v streams P about 4x
    slower than v^T P^T (measured: 1.09 ms vs 0.26 ms for B = 32, k = 30, n = 1000, one thread)."""
    return torch.bmm(v[:, None, :], P.transpose(1, 2)).squeeze(1)


def _norm(g: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(g, dim=1)


def _finite(f: torch.Tensor, gn: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(f) & torch.isfinite(gn)


#: per-row state tensors that live in the padded coordinates: filled like X (frozen identities) or with zeros
_FILLED = ("X", "Xgood")
_ZEROED = ("g", "gu", "d", "v", "P")


class _Work:
    """The working rows of a solve: the group they are padded in, their global problem indices ``ids``,
    and a dict ``s`` of per-row state tensors (leading dimension = rows)."""

    def __init__(self, group: Group, ids: torch.Tensor, **state: torch.Tensor) -> None:
        self.group, self.ids, self.s = group, ids, state
        self.step = 0

    def keep(self, sel: torch.Tensor) -> "_Work":
        rows = sel.nonzero().squeeze(1)
        w = _Work(self.group.subset(rows), self.ids.index_select(0, rows),
                  **{k: v.index_select(0, rows) for k, v in self.s.items()})
        w.step = self.step
        return w

    def __len__(self) -> int:
        return int(self.ids.numel())


def _compact(work: _Work, alive: torch.Tensor, until: int, size: int) -> tuple[str, _Work, int]:
    """After some rows finished: ("stop", ...) when none is left, ("return", the live rows, ...) when at most
    ``until`` are left (the caller hands them on), else ("go", work, size) with the working rows compacted once
    at most half of the last compacted ``size`` remain."""
    remaining = int(alive.sum())
    if remaining == 0:
        return "stop", work, size
    if remaining <= until:
        return "return", work.keep(alive), size
    if remaining <= COMPACT * size:
        work = work.keep(alive)
        return "go", work, len(work)
    return "go", work, size


def _by_key(works: list[_Work]) -> list[list[_Work]]:
    """``works`` split by ``group_key`` (only works of one key can share a batch)."""
    out: dict[tuple, list[_Work]] = {}
    for w in works:
        out.setdefault(group_key(w.group.insts[0]), []).append(w)
    return list(out.values())


def _merge(works: list[_Work]) -> _Work:
    """One batch from the rows of several (differently padded) works: a new group padded to their union, the
    coordinate-valued state moved through each problem's index map (exact: only real coordinates move)."""
    if len(works) == 1:
        return works[0]
    insts = [i for w in works for i in w.group.insts]
    group = Group(insts, works[0].group.device, works[0].group.dtype)
    ids = torch.cat([w.ids for w in works])
    state: dict[str, torch.Tensor] = {}
    for key in works[0].s:
        if key not in _FILLED + _ZEROED:
            state[key] = torch.cat([w.s[key] for w in works])
            continue
        old0 = works[0].s[key]
        shape = (len(insts),) + tuple(old0.shape[1:-1]) + (group.n,)
        new = group.fill.clone() if key in _FILLED else torch.zeros(shape, dtype=old0.dtype, device=old0.device)
        r = 0
        for w in works:
            for q in range(len(w)):
                src, dst = w.group.index[q].to(old0.device), group.index[r].to(old0.device)
                new[r][..., dst] = w.s[key][q][..., src]
                r += 1
        state[key] = new
    out = _Work(group, ids, **state)
    out.step = max(w.step for w in works)
    return out


def _solve_small(SY: torch.Tensor, YY: torch.Tensor, stamp: torch.Tensor, gamma: torch.Tensor, ab: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The m-dimensional part of the compact L-BFGS product (Byrd, Nocedal, Schnabel 1994).

    H = gamma I + [S gamma Y] [[R^-T (D + gamma Y^T Y) R^-1, -R^-T], [-R^-1, 0]] [S^T; gamma Y^T], with
    R_ij = s_i^T y_j for pair i no newer than pair j (slots in ring order; ``stamp`` = the iteration that wrote
    each slot, -1 = empty) and D = diag(s_i^T y_i). With a = S^T g, b = Y^T g (``ab`` = [a, b]):
    u = R^-1 a, top = R^-T ((D + gamma Y^T Y) u - gamma b), and H g = gamma g + S top - gamma Y u.
    Empty slots have zero s and y and a unit diagonal in R, so they contribute nothing. Returns (u, top)."""
    m = SY.shape[1]
    valid = stamp >= 0
    vf = valid.to(SY.dtype)
    order = (stamp[:, :, None] <= stamp[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    R = SY * order + torch.diag_embed(1.0 - vf)
    D = torch.diagonal(SY, dim1=1, dim2=2) * vf
    a, b = ab[:, :m, None], ab[:, m:, None]
    LU, piv = torch.linalg.lu_factor(R)  # one factorization for R u = a and R^T top = ...
    u = torch.linalg.lu_solve(LU, piv, a)
    top = torch.linalg.lu_solve(LU, piv, D[:, :, None] * u + gamma[:, None, None] * (torch.bmm(YY, u) - b),
                                adjoint=True)
    return u.squeeze(2), top.squeeze(2)


def _lbfgs_start(group: Group, X0: torch.Tensor, ids: torch.Tensor, out: _Out, grad_tol: float, m: int) -> _Work:
    """Evaluate the starts; finish the rows that are non-finite or already converged; the live rows' state."""
    B, n = X0.shape
    dev, dt = X0.device, X0.dtype
    f, g = group.value_and_grad(X0)
    gn = _norm(g)
    gu = g * group.sc
    zl = torch.zeros(B, dtype=torch.long, device=dev)
    gamma0 = 1.0 / torch.clamp(_norm(gu), min=1.0)
    zm = torch.zeros(B, m, dtype=dt, device=dev)
    d0 = -gu * gamma0[:, None]
    work = _Work(group, ids, X=X0, f=f, g=g, gu=gu, gn=gn, d=d0, gd=(gu * d0).sum(1),
                 t=torch.ones(B, dtype=dt, device=dev),
                 gamma=gamma0, P=torch.zeros(B, 2 * m, n, dtype=dt, device=dev),
                 SY=torch.zeros(B, m, m, dtype=dt, device=dev), YY=torch.zeros(B, m, m, dtype=dt, device=dev),
                 ab=torch.zeros(B, 2 * m, dtype=dt, device=dev), u=zm, top=zm.clone(),
                 stamp=torch.full((B, m), -1, dtype=torch.long, device=dev), ptr=zl.clone(), it=zl.clone(), ev=zl + 1,
                 fails=zl.clone(), resets=zl.clone(), flats=zl.clone(), alive=torch.ones(B, dtype=torch.bool, device=dev))
    fin = _finite(f, gn)
    inf = torch.full_like(f, math.inf)  # no finite iterate: objective and gradient norm +inf, never NaN
    out.finish(work, ~fin, X0, inf, inf, zl, zl + 1, "diverged", "non-finite objective or gradient at the start")
    out.record(ids, fin, f)
    out.finish(work, fin & (gn <= grad_tol), X0, f, gn, zl, zl + 1, "converged")
    return work.keep(fin & (gn > grad_tol))


def _forget(s: dict, rows_mask: torch.Tensor) -> None:
    """Drop the L-BFGS memory of the masked rows (their next direction is -g / max(1, ||g||))."""
    rows = rows_mask.nonzero().squeeze(1)
    s["P"][rows] = 0.0
    for k in ("SY", "YY"):
        s[k][rows] = 0.0
    s["stamp"][rows] = -1
    s["gamma"][rows] = 1.0 / torch.clamp(_norm(s["gu"].index_select(0, rows)), min=1.0)
    s["ab"][rows] = 0.0


def _lbfgs_run(work: _Work, out: _Out, *, max_iter: int, grad_tol: float, stalled_out: list[_Work] | None,
               until: int = 0, progress: Callable[[], None] | None = None) -> _Work | None:
    """Batched L-BFGS steps on ``work`` until at most ``until`` rows are still running; returns those rows (None
    when every row finished). Rows whose line search stalls go to ``stalled_out`` (for the polish) or, when it
    is None, finish as "budget".

    The quasi-Newton algebra runs in u = x / c (``block_scales``; ``Group.sc`` = c): the memory holds
    s_u = s_x / c and y_u = c y_x, ``gu`` = c grad f, the direction ``d`` is in u (the step in x is t c d);
    s^T y and g^T d are the same in both. X, f, ``g`` = grad f and ||grad f|| (every stop test) are in x.

    Memory: one buffer P = [S; Y] (rows, 2m, n); each step reads it twice (ab = P g for the new gradient, and
    the combination S top - gamma Y u), nothing else. The m x m matrices S^T Y and Y^T Y are updated without
    reading P: for the new pair (s, y) in slot j, s_i^T y = a_new_i - a_old_i and y_i^T y = b_new_i - b_old_i
    (a = S^T g, b = Y^T g at the two iterates), s^T y_i = t d^T y_i with d = -(gamma g + S top - gamma Y u), so
    d^T y_i = -(gamma b_old + (S^T Y)^T top - gamma Y^T Y u)_i; they are recomputed exactly every ``REFRESH``
    steps against rounding drift."""
    if not len(work):
        return None
    m = work.s["SY"].shape[1]
    dev = work.s["X"].device
    size = len(work)
    while True:
        s = work.s
        work.step += 1
        Xt = torch.addcmul(s["X"], s["t"][:, None] * work.group.sc, s["d"])
        ft, gt = work.group.value_and_grad(Xt)
        s["ev"] += 1
        gnt = _norm(gt)
        gtu = gt * work.group.sc
        fin = _finite(ft, gnt)
        slack = POLISH_SLACK * s["f"].abs()
        # a trial with no decrease beyond rounding level says nothing about f: judge it by ||grad f|| instead
        level = fin & ((ft - s["f"]).abs() <= slack)
        armijo = ~level & (ft <= s["f"] + ARMIJO_C1 * s["t"] * s["gd"])
        flat = level & (gnt < s["gn"])
        alive = s["alive"]
        acc = alive & fin & (armijo | flat)
        a2 = acc[:, None]
        # the new gradient against the memory (the first of the two reads of P)
        ab_new = torch.where(a2, _rows_dot(s["P"], gtu), s["ab"])
        sv = s["t"][:, None] * s["d"]
        yv = gtu - s["gu"]
        ys = (sv * yv).sum(1)
        yy = (yv * yv).sum(1)
        valid = acc & (ys > PAIR_COS * torch.sqrt((sv * sv).sum(1) * yy))
        if bool(valid.any()):
            rows = valid.nonzero().squeeze(1)
            j = s["ptr"].index_select(0, rows)
            ar = torch.arange(len(rows), device=dev)
            r_ = lambda k: s[k].index_select(0, rows)  # noqa: E731
            ab_old, abn = r_("ab"), ab_new.index_select(0, rows)
            gam, t_, SYr, YYr = r_("gamma"), r_("t"), r_("SY"), r_("YY")
            # s^T y_i, s_i^T y, y_i^T y against the old pairs (slot j is overwritten below)
            row = -t_[:, None] * (gam[:, None] * ab_old[:, m:]
                                  + torch.bmm(SYr.transpose(1, 2), r_("top")[:, :, None]).squeeze(2)
                                  - gam[:, None] * torch.bmm(YYr, r_("u")[:, :, None]).squeeze(2))
            col = abn[:, :m] - ab_old[:, :m]
            ycol = abn[:, m:] - ab_old[:, m:]
            svr, yvr, gtr = sv.index_select(0, rows), yv.index_select(0, rows), gtu.index_select(0, rows)
            ysr, yyr = ys.index_select(0, rows), yy.index_select(0, rows)
            s["P"][rows, j] = svr
            s["P"][rows, m + j] = yvr
            abn[ar, j] = (svr * gtr).sum(1)
            abn[ar, m + j] = (yvr * gtr).sum(1)
            SYr[ar, j, :] = row
            SYr[ar, :, j] = col
            YYr[ar, j, :] = ycol
            YYr[ar, :, j] = ycol
            SYr[ar, j, j] = ysr
            YYr[ar, j, j] = yyr
            s["SY"][rows], s["YY"][rows] = SYr, YYr
            ab_new[rows] = abn
            s["stamp"][rows, j] = s["it"].index_select(0, rows)
            s["ptr"][rows] = (j + 1) % m
            s["gamma"][rows] = ysr / yyr
        s["ab"] = ab_new
        s["X"] = torch.where(a2, Xt, s["X"])
        s["g"] = torch.where(a2, gt, s["g"])
        s["gu"] = torch.where(a2, gtu, s["gu"])
        s["f"] = torch.where(acc, ft, s["f"])
        s["gn"] = torch.where(acc, gnt, s["gn"])
        s["it"] += acc.long()
        s["fails"] = torch.where(acc, 0, s["fails"] + 1)
        s["resets"] = torch.where(acc, 0, s["resets"])
        s["flats"] = torch.where(armijo, 0, s["flats"] + level.long())
        out.record(work.ids, acc, ft)
        # step sizes of the rejected rows: safeguarded quadratic interpolation, a tenth after a non-finite trial
        tq = -s["gd"] * s["t"] ** 2 / (2 * (ft - s["f"] - s["gd"] * s["t"]))
        tq = torch.where(torch.isfinite(tq), tq, 0.1 * s["t"])
        tnew = torch.where(fin, torch.minimum(torch.maximum(tq, 0.1 * s["t"]), 0.5 * s["t"]), 0.1 * s["t"])
        s["t"] = torch.where(acc, torch.ones_like(s["t"]), tnew)
        # line-search failures: reset the memory once, then stop (polish)
        lsfail = alive & ~acc & (s["fails"] >= MAX_BACKTRACKS)
        first = lsfail & (s["resets"] == 0)
        if bool(first.any()):
            _forget(s, first)
            s["resets"] = torch.where(first, 1, s["resets"])
            s["fails"] = torch.where(first, 0, s["fails"])
            s["t"] = torch.where(first, 1.0, s["t"])
        stalled = (lsfail & ~first) | (alive & (s["flats"] >= FLAT_STEPS))
        if work.step % REFRESH == 0:  # exact S^T Y, Y^T Y against the drift of the read-free updates
            S_, Y_ = s["P"][:, :m], s["P"][:, m:]
            s["SY"] = torch.bmm(S_, Y_.transpose(1, 2))
            s["YY"] = torch.bmm(Y_, Y_.transpose(1, 2))
        # new directions where a step was accepted (or the memory was reset): the second read of P
        newdir = acc | first
        if bool(newdir.any()):
            u, top = _solve_small(s["SY"], s["YY"], s["stamp"], s["gamma"], s["ab"])
            gam = s["gamma"][:, None]
            d = -(gam * s["gu"] + torch.bmm(torch.cat([top, -gam * u], dim=1)[:, None, :], s["P"]).squeeze(1))
            gd = (s["gu"] * d).sum(1)
            bad = newdir & ~(torch.isfinite(gd) & (gd < 0))
            if bool(bad.any()):  # not a descent direction: drop the memory of those rows
                _forget(s, bad)
                u = torch.where(bad[:, None], 0.0, u)
                top = torch.where(bad[:, None], 0.0, top)
                dg = -s["gu"] * s["gamma"][:, None]
                d = torch.where(bad[:, None], dg, d)
                gd = torch.where(bad, (s["gu"] * dg).sum(1), gd)
            nd = newdir[:, None]
            s["d"] = torch.where(nd, d, s["d"])
            s["gd"] = torch.where(newdir, gd, s["gd"])
            s["u"] = torch.where(nd, u, s["u"])
            s["top"] = torch.where(nd, top, s["top"])
        conv = acc & (s["gn"] <= grad_tol)
        budget = acc & ~conv & (s["it"] >= max_iter)
        stalled = stalled & ~conv & ~budget
        out.finish(work, conv, s["X"], s["f"], s["gn"], s["it"], s["ev"], "converged")
        out.finish(work, budget, s["X"], s["f"], s["gn"], s["it"], s["ev"], "budget",
                   f"iteration budget ({max_iter}) ran out")
        if bool(stalled.any()):
            if stalled_out is not None:
                stalled_out.append(work.keep(stalled))
            else:
                out.finish(work, stalled, s["X"], s["f"], s["gn"], s["it"], s["ev"], "budget",
                           lambda gv: f"line search found no decrease (||grad|| = {gv:.3g})")
        done = conv | budget | stalled
        if bool(done.any()):
            if progress is not None:
                progress()
            s["alive"] = alive = alive & ~done
            what, work, size = _compact(work, alive, until, size)
            if what != "go":
                return None if what == "stop" else work


def _polish(work: _Work, out: _Out, max_iter: int, grad_tol: float) -> None:
    """Newton-CG polish of stalled rows (see the module docstring); records them in ``out``."""
    s = work.s
    group = work.group
    f_ref = s["f"].clone()
    fails = torch.zeros_like(s["it"])
    for _ in range(POLISH_STEPS):
        active = (s["gn"] > grad_tol) & (fails < POLISH_PATIENCE) & (s["it"] < max_iter)
        if not bool(active.any()):
            break
        p, hvps = _newton_cg(group, s["X"], s["g"], active)
        s["ev"] += 2 * hvps  # a Hessian-vector product costs about two gradient evaluations
        s["it"] += active.long()
        t = torch.ones_like(s["f"])
        acc = torch.zeros_like(active)
        for _k in range(8):
            Xt = s["X"] + t[:, None] * p
            ft, gt = group.value_and_grad(Xt)
            s["ev"] += (active & ~acc).long()
            gnt = _norm(gt)
            ok = active & ~acc & _finite(ft, gnt) & (gnt < s["gn"]) & (ft <= f_ref + POLISH_SLACK * f_ref.abs())
            s["X"] = torch.where(ok[:, None], Xt, s["X"])
            s["g"] = torch.where(ok[:, None], gt, s["g"])
            s["f"] = torch.where(ok, ft, s["f"])
            s["gn"] = torch.where(ok, gnt, s["gn"])
            acc = acc | ok
            if bool((acc | ~active).all()):
                break
            t = torch.where(acc, t, 0.5 * t)
        out.record(work.ids, acc, s["f"])
        fails = torch.where(active & ~acc, fails + 1, torch.where(acc, 0, fails))
    conv = s["gn"] <= grad_tol
    over = ~conv & (s["it"] >= max_iter)
    out.finish(work, conv, s["X"], s["f"], s["gn"], s["it"], s["ev"], "converged",
               "converged in the Newton-CG polish phase")
    out.finish(work, over, s["X"], s["f"], s["gn"], s["it"], s["ev"], "budget",
               "budget ran out in the Newton-CG polish phase")
    out.finish(work, ~conv & ~over, s["X"], s["f"], s["gn"], s["it"], s["ev"], "budget",
               lambda gv: f"objective flat at rounding level; ||grad|| stuck at {gv:.3g} (> grad_tol {grad_tol:.3g}) "
                          "in the Newton-CG polish phase")


def _newton_cg(group: Group, X: torch.Tensor, g: torch.Tensor, active: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row approximate solution p of H p = -g by conjugate gradients (a row stops at negative curvature or
    relative residual POLISH_CG_RTOL); rows not ``active`` get p = 0. CG runs in the scaled variables of the
    L-BFGS phase (``block_scales``): it solves (C H C) q = -C g and returns p = C q, i.e. CG preconditioned by
    C^2, C = diag(``Group.sc``). Rows that finish leave the batch (the Hessian-vector product is rebuilt on the
    rest whenever half of them are done). Returns (p, Hessian-vector products per row)."""
    p_out = torch.zeros_like(g)
    count = torch.zeros(g.shape[0], dtype=torch.long, device=g.device)
    idx = active.nonzero().squeeze(1)
    if idx.numel() == 0:
        return p_out, count
    grp, Xs = group.subset(idx), X.index_select(0, idx)
    b = -g.index_select(0, idx) * grp.sc
    hvp = grp.hvp_at(Xs)
    p = torch.zeros_like(b)
    r = b.clone()
    dvec = r.clone()
    rr = (r * r).sum(1)
    stop = POLISH_CG_RTOL ** 2 * rr
    run = rr > 0
    for _ in range(CG_MAX):
        n_run = int(run.sum())
        if n_run == 0:
            break
        if n_run <= len(idx) // 2:  # compact: the finished rows keep their p
            p_out[idx] = p * grp.sc
            keep = run.nonzero().squeeze(1)
            idx, grp, Xs = idx.index_select(0, keep), grp.subset(keep), Xs.index_select(0, keep)
            b, p, r, dvec, rr, stop, run = (t.index_select(0, keep) for t in (b, p, r, dvec, rr, stop, run))
            hvp = grp.hvp_at(Xs)
        Hd = hvp(dvec * run[:, None] * grp.sc) * grp.sc
        count.index_add_(0, idx, run.long())
        dHd = (dvec * Hd).sum(1)
        neg = run & (dHd <= 0)
        # negative curvature: keep the current p (or -g when p is still zero)
        p = torch.where((neg & ((p * p).sum(1) == 0))[:, None], b, p)
        run = run & ~neg
        alpha = torch.where(run, rr / torch.where(run, dHd, torch.ones_like(dHd)), torch.zeros_like(rr))
        p = p + alpha[:, None] * dvec
        r = r - alpha[:, None] * Hd
        rr_new = (r * r).sum(1)
        run = run & (rr_new > stop)
        beta = torch.where(run, rr_new / torch.where(rr > 0, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        dvec = torch.where(run[:, None], r + beta[:, None] * dvec, dvec)
        rr = torch.where(run, rr_new, rr)
    p_out[idx] = p * grp.sc
    return p_out.detach(), count


# ---------------------------------------------------------------------------------------------
# momentum gradient descent (the papers' protocol)
# ---------------------------------------------------------------------------------------------
def _gd_start(group: Group, X0: torch.Tensor, ids: torch.Tensor) -> _Work:
    B = X0.shape[0]
    dev = X0.device
    zl = torch.zeros(B, dtype=torch.long, device=dev)
    inf = torch.full((B,), math.inf, dtype=X0.dtype, device=dev)
    return _Work(group, ids, X=X0, Xgood=X0.clone(), fgood=inf, ggood=inf.clone(), v=torch.zeros_like(X0),
                 it=zl.clone(), ev=zl.clone(), alive=torch.ones(B, dtype=torch.bool, device=dev))


def _gd_run(work: _Work, out: _Out, *, lr: float, momentum: float, max_iter: int, grad_tol: float, until: int = 0,
            progress: Callable[[], None] | None = None, snapshot_every: int = 0) -> _Work | None:
    """Batched full-batch GD with heavy-ball momentum: v <- momentum v + g, x <- x - lr v (v_0 = 0), one
    gradient evaluation per iteration; per row "converged" at ||g|| <= grad_tol, "budget" after ``max_iter``
    updates, "diverged" at a non-finite f or g (the last finite iterate is returned). Runs until at most
    ``until`` rows are left (returned) or none (None). ``snapshot_every`` > 0 keeps the point of every row at
    every such iteration (``RunResult.snapshots``)."""
    size = len(work)
    while len(work):
        s = work.s
        alive = s["alive"]
        f, g = work.group.value_and_grad(s["X"])
        s["ev"] += 1
        gn = _norm(g)
        fin = _finite(f, gn)
        good = alive & fin
        s["Xgood"] = torch.where(good[:, None], s["X"], s["Xgood"])
        s["fgood"] = torch.where(good, f, s["fgood"])
        s["ggood"] = torch.where(good, gn, s["ggood"])
        out.record(work.ids, good, f)
        if snapshot_every > 0:
            out.snapshot(work, good & (s["it"] % snapshot_every == 0), s["it"], s["X"])
        conv = good & (gn <= grad_tol)
        budget = good & ~conv & (s["it"] >= max_iter)
        out.finish(work, alive & ~fin, s["Xgood"], s["fgood"], s["ggood"], s["it"], s["ev"], "diverged",
                   "non-finite objective or gradient")
        out.finish(work, conv, s["X"], f, gn, s["it"], s["ev"], "converged")
        out.finish(work, budget, s["X"], f, gn, s["it"], s["ev"], "budget", f"iteration budget ({max_iter}) ran out")
        done = (alive & ~fin) | conv | budget
        s["alive"] = alive = alive & ~done
        s["v"] = torch.where(alive[:, None], momentum * s["v"] + g, s["v"])
        s["X"] = torch.where(alive[:, None], s["X"] - lr * s["v"], s["X"])
        s["it"] += alive.long()
        if bool(done.any()):
            if progress is not None:
                progress()
            what, work, size = _compact(work, alive, until, size)
            if what != "go":
                return None if what == "stop" else work
    return None


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
SOLVERS = ("lbfgs", "gd")
#: a batch hands its last rows to one shared batch (all batches' stragglers together) once at most
#: max(TAIL_ROWS, TAIL_FRACTION x its size) are left, so few slow problems cost one batch's steps, not one each
TAIL_ROWS = 4
TAIL_FRACTION = 0.1
#: the working arrays drop finished rows once at most this fraction of the last compacted size is left
COMPACT = 0.5
_POLISH_KEYS = ("X", "f", "g", "gn", "it", "ev")


def solve_problems(problems: Sequence[Problem], *, solver: str = "lbfgs", device: str | torch.device = "auto",
                   max_iter: int | None = None, grad_tol: float | None = None, lr: float = 0.1, momentum: float = 0.9,
                   history: int = HISTORY, polish: bool = True, waste: float = 3.0, snapshot_every: int = 0,
                   progress: Callable[[int, int], None] | None = None) -> list[RunResult]:
    """Minimize every problem; returns one ``RunResult`` per problem, in order.

    Problems are split into padded batches (``buckets``); each batch runs until only its slowest rows are left,
    then those rows from every batch run together (``_merge``), then every row whose line search stalled gets the
    Newton-CG polish in one batch. ``max_iter`` / ``grad_tol`` default to ``numerics.solvers``' defaults of the
    solver; ``history`` = L-BFGS memory m. ``seconds`` of a run is the call's wall time divided by the number of
    problems (the amortized cost). ``progress(finished, total)`` is called as problems finish.
    ``snapshot_every`` (gd only) > 0: every run keeps its point every that many iterations (``snapshots``)."""
    if solver not in SOLVERS:
        raise InstanceError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if not problems:
        return []
    if solver == "gd" and not (lr > 0 and math.isfinite(lr) and 0 <= momentum < 1):
        raise InstanceError(f"gd needs lr > 0 and 0 <= momentum < 1, got lr={lr}, momentum={momentum}")
    t0 = time.perf_counter()
    dev = resolve_device(device)
    for pb in problems:
        check_params(pb.inst, pb.params0)
    lb = solver == "lbfgs"
    max_iter = (LBFGS_MAX_ITER if lb else GD_MAX_ITER) if max_iter is None else int(max_iter)
    grad_tol = (LBFGS_GRAD_TOL if lb else GD_GRAD_TOL) if grad_tol is None else float(grad_tol)
    m = max(1, int(history))
    out = _Out(len(problems))
    tick = None if progress is None else (lambda: progress(out.done, len(problems)))
    tails: list[_Work] = []
    stalled: list[_Work] = []

    def run(work: _Work, until: int) -> _Work | None:
        if lb:
            return _lbfgs_run(work, out, max_iter=max_iter, grad_tol=grad_tol,
                              stalled_out=stalled if polish else None, until=until, progress=tick)
        return _gd_run(work, out, lr=lr, momentum=momentum, max_iter=max_iter, grad_tol=grad_tol, until=until,
                       progress=tick, snapshot_every=snapshot_every)

    def polish_stalled() -> None:
        """The Newton-CG polish of every row that stalled so far, in one batch padded to those rows only."""
        for ws in _by_key(stalled):
            _polish(_merge([_Work(w.group, w.ids, **{k: w.s[k] for k in _POLISH_KEYS}) for w in ws]), out,
                    max_iter, grad_tol)
        stalled.clear()

    for members in buckets([pb.inst for pb in problems], waste):
        grp = Group([problems[i].inst for i in members], dev)
        X0 = grp.pad([problems[i].params0.flatten() for i in members])
        ids = torch.tensor(members, dtype=torch.long, device=dev)
        work = _lbfgs_start(grp, X0, ids, out, grad_tol, m) if lb else _gd_start(grp, X0, ids)
        rest = run(work, max(TAIL_ROWS, int(TAIL_FRACTION * len(members))))
        if rest is not None:
            tails.append(rest)
        polish_stalled()
    for key_tails in _by_key(tails):
        run(_merge(key_tails), 0)
    polish_stalled()
    hists = out.histories()
    secs = (time.perf_counter() - t0) / len(problems)
    results = []
    for i, pb in enumerate(problems):
        x = out.x[i]
        if x is None:  # pragma: no cover - every row finishes in one of the phases above
            raise RuntimeError(f"batched solver lost problem {i}")
        msg = "; ".join(t for t in (out.message[i], f"init {pb.kind}" if pb.kind else "") if t)
        params = Params.unflatten(pb.inst, x.clone()).detach()
        fval = out.f[i]
        if math.isfinite(fval):  # the reference evaluation (numerics.models) of the end point, as every report uses
            with torch.no_grad():
                fval = float(models.objective(pb.inst, params))
        results.append(RunResult(params=params, objective=fval,
                                 stop_reason=out.reason[i], iterations=out.iters[i], grad_evals=out.evals[i],
                                 grad_norm=out.gn[i], history=hists[i], seed=pb.seed, solver=solver, device=str(dev),
                                 seconds=secs, start=pb.start, message=msg, init=pb.kind,
                                 snapshots=out.snaps[i] if snapshot_every > 0 else None))
    return results
