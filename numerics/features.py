"""NC metrics of a real network's features: streamed over chunks of (features, labels) in any order.

Symbols (THEOREMS.md "NC metrics", the conventions of ``numerics.metrics``): h_i (d) the feature of sample i,
y_i its class in 0..K-1, n_k the class counts, N = sum_k n_k; hbar_k the class means, Hbar = [hbar_1..hbar_K]
(d x K); hbar_G the global mean (the sample mean, or the mean of the class means); Sigma_W = (1/N) sum_i
(h_i - hbar_{y_i})(h_i - hbar_{y_i})^T, Sigma_B = (1/K) sum_k (hbar_k - hbar_G)(hbar_k - hbar_G)^T; W (K x d) the
classifier (or the product W_M...W_1 of a list of layers), b (K) its bias.

* ``ClassStatsAccumulator``: per-class counts and means and the total within-class scatter
  sum_i (h_i - hbar_{y_i})(h_i - hbar_{y_i})^T, merged chunk by chunk in float64 with Chan's pairwise update
  (each chunk is centered at its own class means first, then combined with the running means; never raw
  sums of squares). Memory: K x d + d x d floats plus one chunk, whatever N is.
* ``open_features``: a feature source (an .npy file, memory-mapped and read in row chunks; an .npz member,
  streamed from the zip; a .pt tensor, ``torch.load(weights_only=True, mmap=True)``; or an in-memory numpy
  array / torch tensor), rows = samples (``layout="nd"``, N x d) or columns (``layout="dn"``, d x N).
* ``encode_labels``: any integer labels (or strings) mapped to 0..K-1 by sorted unique value.
* ``stream_class_stats``: stream a source against the labels and validate it (non-finite values are counted and
  reported with the first sample index).
* ``classifier``: W from one matrix (K x d, or d x K given transposed) or a list W_1..W_M (product W_M...W_1).
* ``layer_metrics``: NC1 (``metrics.nc1_from_covariances``), the class-mean Grams (uncentered and centered),
  NC2 of the class means and of W W^T against the simplex ETF and the OF (``metrics.nc2``), NC3
  (``metrics.nc3_duality``, ``metrics.nc3_product``), singular values of Hbar, W, W Hbar (+ b 1^T) and of the
  outputs W H (+ b 1^T) over all samples, class-mean norms and counts.

Bad input raises ``FeatureInputError`` (a ValueError) whose message is one line naming the file (or
"features" / "labels" for in-memory arrays) and the violated condition. numpy and (for .pt files and tensors)
torch only.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ncverify.numerics import metrics

#: default number of samples read per chunk
CHUNK_SIZE = 65536
#: rows converted to float64 and accumulated at once inside a chunk (a few MB at d = 64: fits the caches)
BLOCK = 8192
LAYOUTS = ("nd", "dn")
GLOBAL_MEANS = {"sample": "sample", "class": "class_means", "class_means": "class_means"}


class FeatureInputError(ValueError):
    """Features, labels, weights or a bias that cannot be used; the message names the file and the condition."""


# ---------------------------------------------------------------------------------------------
# streaming accumulator
# ---------------------------------------------------------------------------------------------
class ClassStatsAccumulator:
    """Per-class counts n_k, means hbar_k and the total within-class scatter S_W = N Sigma_W, in float64.

    ``update(x, y)`` adds a chunk (x: m x d features, y: m class indices in 0..K-1, any order); ``merge(other)``
    adds another accumulator (e.g. from another worker). Both use Chan et al.'s pairwise update: with the
    running (n_k, hbar_k) and a chunk's (m_k, mu_k, scatter about mu_k), n_k' = n_k + m_k,
    hbar_k' = hbar_k + (m_k/n_k') (mu_k - hbar_k), S_W' = S_W + S_chunk + sum_k (n_k m_k / n_k') delta_k delta_k^T.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        self.K, self.d = int(num_classes), int(dim)
        self.counts = np.zeros(self.K, dtype=np.int64)
        self.means = np.zeros((self.K, self.d))
        self.scatter = np.zeros((self.d, self.d))

    def _combine(self, present: np.ndarray, m: np.ndarray, mu: np.ndarray, scatter: np.ndarray) -> None:
        n = self.counts[present].astype(np.float64)
        mf = m.astype(np.float64)
        n_new = n + mf
        delta = mu - self.means[present]
        self.means[present] += delta * (mf / n_new)[:, None]
        self.scatter += scatter + (delta * (n * mf / n_new)[:, None]).T @ delta
        self.counts[present] += m

    def update(self, x: Any, y: Any) -> None:
        """Add the samples x (m x d) with class indices y (m,)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        if x.ndim != 2 or x.shape[1] != self.d or x.shape[0] != y.shape[0]:
            raise ValueError(f"chunk of shape {x.shape} with {y.shape[0]} labels does not fit d = {self.d}")
        if x.shape[0] == 0:
            return
        order = np.argsort(y, kind="stable")
        xs, ys = x[order], y[order]
        starts = np.concatenate([[0], np.flatnonzero(np.diff(ys)) + 1])
        present = ys[starts]
        m = np.diff(np.concatenate([starts, [ys.shape[0]]]))
        mu = np.add.reduceat(xs, starts, axis=0) / m[:, None]
        for j, a in enumerate(starts):  # center in place at the chunk's own class means (xs is a copy)
            xs[a:a + m[j]] -= mu[j]
        self._combine(present, m, mu, xs.T @ xs)

    def merge(self, other: "ClassStatsAccumulator") -> None:
        """Add another accumulator's samples (same K and d)."""
        if (other.K, other.d) != (self.K, self.d):
            raise ValueError(f"cannot merge K, d = {other.K}, {other.d} into {self.K}, {self.d}")
        present = np.flatnonzero(other.counts)
        self._combine(present, other.counts[present], other.means[present], other.scatter)

    def stats(self) -> "ClassStats":
        """The statistics accumulated so far (copies)."""
        return ClassStats(self.counts.copy(), self.means.copy(), 0.5 * (self.scatter + self.scatter.T))


@dataclass(frozen=True)
class ClassStats:
    """counts n_k (K), means hbar_k (K x d, row k), scatter S_W = sum_i (h_i - hbar_{y_i})(...)^T (d x d)."""

    counts: np.ndarray
    means: np.ndarray
    scatter: np.ndarray

    @property
    def K(self) -> int:
        return int(self.counts.shape[0])

    @property
    def d(self) -> int:
        return int(self.means.shape[1])

    @property
    def N(self) -> int:
        return int(self.counts.sum())

    def global_mean(self, kind: str = "sample") -> np.ndarray:
        """hbar_G: the sample mean (``"sample"``) or the mean of the class means (``"class"``/``"class_means"``)."""
        kind = _global_mean_kind(kind)
        if kind == "sample":
            return (self.counts @ self.means) / self.N
        return self.means.mean(axis=0)

    def sigma_w(self) -> np.ndarray:
        """Sigma_W = S_W / N (d x d)."""
        return self.scatter / self.N

    def sigma_b(self, kind: str = "sample") -> np.ndarray:
        """Sigma_B with the global mean ``kind`` (d x d), the formula of ``metrics.sigma_b``."""
        return metrics.sigma_b(self.means.T, self.global_mean(kind))

    def second_moment(self) -> np.ndarray:
        """sum_i h_i h_i^T = S_W + sum_k n_k hbar_k hbar_k^T (d x d)."""
        return self.scatter + (self.means * self.counts[:, None]).T @ self.means


def _global_mean_kind(kind: str) -> str:
    try:
        return GLOBAL_MEANS[kind]
    except KeyError:
        raise FeatureInputError(f"global mean must be 'sample' or 'class', got {kind!r}") from None


# ---------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------
def _is_tensor(a: Any) -> bool:
    return hasattr(a, "detach") and hasattr(a, "dtype") and hasattr(a, "shape")


def _check_numeric_dtype(dtype: Any, name: str) -> None:
    """Features and weights: real numbers (float, int, unsigned); anything else is refused."""
    s = str(dtype)
    if s.startswith("torch."):
        if "complex" in s or s == "torch.bool":
            raise FeatureInputError(f"{name}: needs real numbers, got dtype {s}")
        return
    kind = np.dtype(dtype).kind
    if kind not in "fiu":
        raise FeatureInputError(f"{name}: needs real numbers (float or int), got dtype {np.dtype(dtype)}")


def _to_f64(a: Any) -> np.ndarray:
    if _is_tensor(a):
        a = a.detach().to("cpu")
        import torch

        return a.to(torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


def _load_npy(path: Path, name: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise FeatureInputError(f"{name}: cannot read as .npy ({' '.join(str(exc).split())})") from None
    except OSError as exc:
        raise FeatureInputError(f"{name}: cannot read ({exc.strerror or exc})") from None


def _npz_member(path: Path, key: str | None, name: str, what: str = "--key") -> str:
    """The member name of an .npz file: ``key``, or its only array."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise FeatureInputError(f"{name}: not a readable .npz file ({exc})") from None
    if not names:
        raise FeatureInputError(f"{name}: the .npz file holds no arrays")
    if key is None:
        if len(names) > 1:
            raise FeatureInputError(f"{name}: the .npz file holds several arrays ({', '.join(names)}); choose one with {what}")
        return names[0]
    if key not in names:
        raise FeatureInputError(f"{name}: no array {key!r} in the .npz file (it holds {', '.join(names)})")
    return key


def _load_pt(path: Path, key: str | None, name: str, what: str = "--key") -> Any:
    """A tensor from a .pt file: torch.load(weights_only=True, mmap=True) (mmap falls back to a plain load for
    files in the legacy format); a dict of tensors needs ``key`` unless it holds one tensor."""
    import torch

    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of torch have several types
        raise FeatureInputError(f"{name}: cannot load as a tensor file ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]})") from None
    if isinstance(obj, dict):
        tensors = {str(k): v for k, v in obj.items() if _is_tensor(v)}
        if key is None:
            if len(tensors) != 1:
                raise FeatureInputError(f"{name}: the .pt file holds a dict with keys {', '.join(map(str, obj))}; "
                                        f"choose one with {what}")
            return next(iter(tensors.values()))
        if key not in tensors:
            raise FeatureInputError(f"{name}: no tensor {key!r} in the .pt file (keys: {', '.join(map(str, obj))})")
        return tensors[key]
    if key is not None:
        raise FeatureInputError(f"{name}: {what} {key!r} given but the .pt file holds a single object, not a dict")
    if not _is_tensor(obj):
        raise FeatureInputError(f"{name}: the .pt file holds a {type(obj).__name__}, not a tensor")
    return obj


def _suffix(path: Path) -> str:
    return path.suffix.lower()


def load_array(source: Any, *, key: str | None = None, name: str | None = None, what: str = "--key") -> Any:
    """The whole array of a source (a path to .npy/.npz/.pt, a numpy array, a torch tensor or a nested list):
    .npy memory-mapped, .npz member read, .pt loaded with ``torch.load(weights_only=True, mmap=True)``.
    Used for labels, weights and biases (small) and as the fallback of ``open_features``."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or str(path)
        if not path.is_file():
            raise FeatureInputError(f"{name}: no such file")
        suf = _suffix(path)
        if suf == ".npy":
            return _load_npy(path, name)
        if suf == ".npz":
            member = _npz_member(path, key, name, what)
            try:
                with np.load(path, allow_pickle=False) as z:
                    return z[member]
            except ValueError as exc:
                raise FeatureInputError(f"{name}: cannot read array {member!r} ({' '.join(str(exc).split())})") from None
        if suf in (".pt", ".pth"):
            return _load_pt(path, key, name, what)
        raise FeatureInputError(f"{name}: unsupported file type {suf or '(none)'!r}; use .npy, .npz or .pt")
    if _is_tensor(source) or isinstance(source, np.ndarray):
        return source
    if isinstance(source, (list, tuple)):
        return np.asarray(source)
    raise FeatureInputError(f"{name or 'input'}: expected a file path, a numpy array or a torch tensor, "
                            f"got {type(source).__name__}")


@dataclass
class FeatureSource:
    """A 2-D feature array read in chunks of samples. ``name`` (file or "features"), ``shape`` as stored,
    ``layout`` ("nd": rows are samples, "dn": columns are), ``n_samples`` N and ``dim`` d once the layout
    is fixed (``resolve_layout``). ``note`` says what is loaded at once when not streamed."""

    name: str
    shape: tuple[int, ...]
    dtype: Any
    _reader: Callable[[int, int, str], np.ndarray]
    layout: str = "nd"
    note: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.shape[0] if self.layout == "nd" else self.shape[1])

    @property
    def dim(self) -> int:
        return int(self.shape[1] if self.layout == "nd" else self.shape[0])

    def resolve_layout(self, layout: str, n_labels: int) -> None:
        """Fix the layout against the label count N; FeatureInputError when the given layout's sample
        dimension is not N (saying which layout would fit)."""
        if layout not in LAYOUTS:
            raise FeatureInputError(f"layout must be 'nd' (rows are samples) or 'dn' (columns are), got {layout!r}")
        if len(self.shape) != 2:
            raise FeatureInputError(f"{self.name}: features must be a 2-D array (N x d or d x N), got shape {self.shape}")
        if 0 in self.shape:
            raise FeatureInputError(f"{self.name}: empty features (shape {self.shape})")
        rows, cols = self.shape
        if layout == "nd" and rows != n_labels:
            hint = "; it looks like d x N: use layout 'dn' (--layout dn)" if cols == n_labels else ""
            raise FeatureInputError(f"{self.name}: {rows} feature rows but {n_labels} labels (layout nd: rows are "
                                    f"samples, shape {self.shape}){hint}")
        if layout == "dn" and cols != n_labels:
            hint = "; it looks like N x d: use layout 'nd'" if rows == n_labels else ""
            raise FeatureInputError(f"{self.name}: {cols} feature columns but {n_labels} labels (layout dn: columns "
                                    f"are samples, shape {self.shape}){hint}")
        self.layout = layout

    def chunks(self, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start, x) with x the features of samples start..start+m-1 (m x d, numpy, stored dtype: a view of the
        memory map where possible), m <= chunk_size."""
        N = self.n_samples
        for s in range(0, N, chunk_size):
            e = min(N, s + chunk_size)
            yield s, self._reader(s, e, self.layout)


def _native(a: Any) -> np.ndarray:
    """A numpy view (or small copy) of an array or tensor slice in its stored dtype (float16/bfloat16 tensors
    as float32, which numpy can hold)."""
    if _is_tensor(a):
        a = a.detach().to("cpu")
        if str(a.dtype) in ("torch.bfloat16", "torch.float16"):
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def _array_reader(a: Any) -> Callable[[int, int, str], np.ndarray]:
    def read(s: int, e: int, layout: str) -> np.ndarray:
        return _native(a[s:e] if layout == "nd" else a[:, s:e].T)
    return read


def _npz_source(path: Path, member: str, name: str) -> FeatureSource | None:
    """An .npz member streamed row by row from the zip (stored or deflated) when it is C-ordered; None when it
    is not (the caller loads it)."""
    fmt = np.lib.format
    with zipfile.ZipFile(path) as zf, zf.open(member + ".npy") as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            return None
    if fortran or dtype.hasobject or len(shape) != 2:
        return None

    reader = _ZipRowReader(path, member + ".npy", version, int(shape[0]), int(shape[1]), dtype)
    return FeatureSource(name, tuple(int(x) for x in shape), dtype, reader.read,
                         note=f"member {member!r} streamed from the zip")


class _ZipRowReader:
    """Rows s..e-1 of a C-ordered 2-D .npy member of a zip, read sequentially from one open stream (a request
    that does not continue the previous one reopens the member and skips forward: decompression is sequential)."""

    def __init__(self, path: Path, member: str, version: tuple[int, int], rows: int, cols: int, dtype: np.dtype) -> None:
        self.path, self.member, self.version, self.rows, self.cols, self.dtype = path, member, version, rows, cols, dtype
        self.row = cols * dtype.itemsize
        self._zf: Any = None
        self._f: Any = None
        self._pos = -1  # next row of the open stream

    def _open(self) -> None:
        self.close()
        fmt = np.lib.format
        self._zf = zipfile.ZipFile(self.path)
        self._f = self._zf.open(self.member)
        fmt.read_magic(self._f)
        (fmt.read_array_header_1_0 if self.version == (1, 0) else fmt.read_array_header_2_0)(self._f)
        self._pos = 0

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._zf.close()
        self._f = self._zf = None
        self._pos = -1

    def read(self, s: int, e: int, layout: str) -> np.ndarray:
        if layout != "nd":  # columns of a C-ordered array are not contiguous: _with_npz_fallback loads them whole
            raise ValueError("an .npz member is streamed by rows only")
        if self._f is None or s < self._pos:
            self._open()
        if s > self._pos:
            _skip(self._f, (s - self._pos) * self.row)
        buf = self._f.read((e - s) * self.row)
        if len(buf) != (e - s) * self.row:
            self.close()
            raise FeatureInputError(f"{self.path}: member {self.member} is truncated")
        self._pos = e
        if e >= self.rows:  # the last chunk: release the file
            self.close()
        return np.frombuffer(buf, dtype=self.dtype).reshape(e - s, self.cols)


def _skip(f: Any, nbytes: int) -> None:
    while nbytes > 0:
        got = f.read(min(nbytes, 1 << 24))
        if not got:
            break
        nbytes -= len(got)


def open_features(source: Any, *, key: str | None = None, name: str | None = None) -> FeatureSource:
    """A chunked reader of a feature array.

    source: a path (.npy: memory-mapped, rows read chunk by chunk; .npz: the member ``key`` (or the only one)
    streamed from the zip for N x d C-ordered arrays, loaded whole for d x N or Fortran-ordered ones -- then
    ``note`` says so; .pt/.pth: ``torch.load(weights_only=True, mmap=True)``, chunks sliced from the mapped
    tensor, ``key`` picks a tensor of a saved dict), a numpy array or a torch tensor (sliced, never copied
    whole to float64). The layout is fixed later against the labels (``FeatureSource.resolve_layout``).
    """
    if isinstance(source, (str, os.PathLike)) and _suffix(Path(source)) == ".npz" and Path(source).is_file():
        path = Path(source)
        nm = name or str(path)
        member = _npz_member(path, key, nm)
        src = _npz_source(path, member, nm)
        if src is not None:
            _check_numeric_dtype(src.dtype, nm)
            return src
    a = load_array(source, key=key, name=name)
    nm = name or (str(source) if isinstance(source, (str, os.PathLike)) else "features")
    _check_numeric_dtype(a.dtype, nm)
    return FeatureSource(nm, tuple(int(x) for x in a.shape), a.dtype, _array_reader(a))


def _with_npz_fallback(src: FeatureSource, source: Any, key: str | None, layout: str) -> FeatureSource:
    """A streamed .npz member asked for in layout dn: load it whole (its columns are not contiguous)."""
    if layout == "dn" and src.note.startswith("member"):
        a = load_array(source, key=key, name=src.name)
        return FeatureSource(src.name, src.shape, src.dtype, _array_reader(a),
                             note="d x N .npz member loaded whole (columns are not contiguous in the zip)")
    return src


# ---------------------------------------------------------------------------------------------
# labels
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelMap:
    """Labels mapped to classes: ``values[k]`` is the label of class k (sorted unique values), ``y`` the class
    index of every sample (data order), ``counts`` n_k."""

    values: tuple
    y: np.ndarray
    counts: np.ndarray

    @property
    def K(self) -> int:
        return len(self.values)

    @property
    def N(self) -> int:
        return int(self.y.shape[0])

    def mapping(self) -> dict[str, int]:
        """{str(label value): class index} for reports."""
        return {str(v): k for k, v in enumerate(self.values)}


def encode_labels(source: Any, *, key: str | None = None, name: str | None = None) -> LabelMap:
    """Map labels (a path to .npy/.npz/.pt, an array, a tensor or a list) to 0..K-1 by sorted unique value.

    Integers (any values) and, in .npy or arrays, strings are accepted; floats, booleans and objects are refused,
    as are empty label vectors, one-hot matrices and fewer than 2 classes (FeatureInputError naming the file).
    The labels are loaded whole (N integers)."""
    nm = name or (str(source) if isinstance(source, (str, os.PathLike)) else "labels")
    a = load_array(source, key=key, name=nm, what="--labels-key")
    if _is_tensor(a):
        if a.is_floating_point() or a.is_complex() or str(a.dtype) == "torch.bool":
            raise FeatureInputError(f"{nm}: labels must be integers or strings, got dtype {a.dtype}")
        a = a.detach().to("cpu").numpy()
    a = np.asarray(a)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise FeatureInputError(f"{nm}: labels must be a 1-D vector of N class labels, got shape {a.shape}"
                                + (" (one-hot? pass the argmax)" if a.ndim == 2 else ""))
    if a.shape[0] == 0:
        raise FeatureInputError(f"{nm}: no labels (empty)")
    if a.dtype.kind not in "iuUS":
        hint = " (cast class indices to int)" if a.dtype.kind == "f" else ""
        raise FeatureInputError(f"{nm}: labels must be integers or strings, got dtype {a.dtype}{hint}")
    values, y = _unique_inverse(a)
    if len(values) < 2:
        raise FeatureInputError(f"{nm}: need at least 2 classes, the labels hold {len(values)} "
                                f"({', '.join(map(str, values.tolist()))})")
    counts = np.bincount(y, minlength=len(values)).astype(np.int64)
    vals = [v.item() if hasattr(v, "item") else v for v in values]
    vals = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in vals]
    return LabelMap(tuple(vals), y, counts)


def _unique_inverse(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique values, class index of every entry as int32). Integers spanning fewer than 2^24 values go
    through a lookup table (two N-sized temporaries instead of np.unique's sort); others through np.unique."""
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        if hi - lo < (1 << 24) and hi < (1 << 62) and lo > -(1 << 62):
            off = a.astype(np.int64) - lo
            present = np.bincount(off) > 0
            lut = (np.cumsum(present) - 1).astype(np.int32)
            return np.flatnonzero(present).astype(np.int64) + lo, lut[off]
    values, y = np.unique(a, return_inverse=True)
    return values, y.reshape(-1).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# streaming a source
# ---------------------------------------------------------------------------------------------
def stream_class_stats(source: Any, labels: LabelMap, *, layout: str = "nd", key: str | None = None,
                       chunk_size: int = CHUNK_SIZE, name: str | None = None,
                       progress: Callable[[int, int], None] | None = None) -> tuple[ClassStats, FeatureSource]:
    """Stream one feature source (see ``open_features``) against ``labels`` in chunks of ``chunk_size`` samples.

    Returns the statistics and the source (its ``note`` says what was loaded whole). Raises FeatureInputError
    for a sample-count mismatch (layout), a bad dtype, empty features, or non-finite values (their count and
    the first sample index, after the whole stream). ``progress(done, N)`` is called after every chunk."""
    if int(chunk_size) < 1:
        raise FeatureInputError(f"chunk size must be >= 1, got {chunk_size}")
    src = open_features(source, key=key, name=name)
    src.resolve_layout(layout, labels.N)
    src = _with_npz_fallback(src, source, key, layout)
    acc = ClassStatsAccumulator(labels.K, src.dim)
    bad, first = 0, -1
    N = src.n_samples
    for s, raw in src.chunks(int(chunk_size)):
        for a in range(0, raw.shape[0], BLOCK):  # float64 work arrays of at most BLOCK rows (cache-sized)
            x = np.asarray(raw[a:a + BLOCK], dtype=np.float64)
            finite = np.isfinite(x).all(axis=1)
            if not finite.all():
                if first < 0:
                    first = s + a + int(np.argmin(finite))
                bad += int((~finite).sum())
            elif not bad:
                acc.update(x, labels.y[s + a:s + a + x.shape[0]])
        if progress is not None:
            progress(s + raw.shape[0], N)
    if bad:
        raise FeatureInputError(f"{src.name}: {bad} of {N} samples have NaN or inf features (first: sample {first})")
    return acc.stats(), src


# ---------------------------------------------------------------------------------------------
# classifier
# ---------------------------------------------------------------------------------------------
def _chain_ok(shapes: list[tuple[int, int]], d: int, K: int) -> bool:
    """(out x in) shapes chain from d to K: W_1 is d_1 x d, W_{j+1} takes W_j's output, W_M has K rows."""
    if shapes[0][1] != d or shapes[-1][0] != K:
        return False
    return all(shapes[j + 1][1] == shapes[j][0] for j in range(len(shapes) - 1))


def classifier(weights: Sequence[Any], d: int, K: int, *, weights_layout: str = "auto",
               names: Sequence[str] | None = None,
               keys: Sequence[str | None] | None = None) -> tuple[np.ndarray, list[np.ndarray], str]:
    """W = W_M ... W_1 (K x d) from [W_1, ..., W_M] (each a path or array), their float64 matrices (out x in),
    and the layout used.

    ``keys``: per weight file, the array of an .npz / dict .pt file (e.g. "fc.weight" of a state_dict).
    ``weights_layout``: "out-in" (each W_j maps columns to rows: W_1 is d_1 x d, W_M is K x d_{M-1}, as torch's
    nn.Linear.weight), "in-out" (each given transposed, as a d x K kernel), or "auto": the one whose shapes chain
    from d to K; when both chain (e.g. a square K x K single W) the layout is ambiguous and must be given."""
    if weights_layout not in ("auto", "out-in", "in-out"):
        raise FeatureInputError(f"weights layout must be 'auto', 'out-in' or 'in-out', got {weights_layout!r}")
    names = list(names) if names is not None else [f"weights[{j}]" for j in range(len(weights))]
    keys = list(keys) if keys is not None else [None] * len(weights)
    mats = []
    for w, nm, k in zip(weights, names, keys):
        a = load_array(w, key=k, name=nm, what="--weights-key")
        _check_numeric_dtype(a.dtype, nm)
        a = _to_f64(a)
        if a.ndim != 2 or 0 in a.shape:
            raise FeatureInputError(f"{nm}: a weight matrix must be 2-D and non-empty, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise FeatureInputError(f"{nm}: {int((~np.isfinite(a)).sum())} entries are NaN or inf")
        mats.append(a)
    shapes = [m.shape for m in mats]
    ok_out_in = _chain_ok(shapes, d, K)
    ok_in_out = _chain_ok([(s[1], s[0]) for s in shapes], d, K)
    desc = " x ".join(f"{s[0]}x{s[1]}" for s in shapes)
    if weights_layout == "out-in" and not ok_out_in or weights_layout == "in-out" and not ok_in_out:
        raise FeatureInputError(f"weights of shapes {desc} do not chain from the feature width d = {d} to K = {K} "
                                f"classes in layout {weights_layout}")
    if weights_layout == "auto":
        if ok_out_in and ok_in_out:
            raise FeatureInputError(f"weights of shapes {desc} fit both K x d (out-in) and d x K (in-out) for "
                                        f"d = {d}, K = {K}: give the layout (--weights-layout out-in|in-out)")
        if not (ok_out_in or ok_in_out):
            raise FeatureInputError(f"weights of shapes {desc} do not chain from the feature width d = {d} to K = {K} "
                                    "classes (W_1 first; each as out x in or all transposed)")
        weights_layout = "out-in" if ok_out_in else "in-out"
    if weights_layout == "in-out":
        mats = [m.T for m in mats]
    return metrics.product(mats), mats, weights_layout


def bias_vector(source: Any, K: int, *, name: str = "bias", key: str | None = None) -> np.ndarray:
    """b (K) from a path (``key``: the array of an .npz / dict .pt file) or array; FeatureInputError unless it
    has K finite entries."""
    a = load_array(source, key=key, name=name, what="--bias-key")
    _check_numeric_dtype(a.dtype, name)
    b = _to_f64(a).reshape(-1)
    b = b if b.shape[0] == K else None
    if b is None:
        raise FeatureInputError(f"{name}: the bias needs K = {K} entries, got shape {tuple(np.shape(a))}")
    if not np.isfinite(b).all():
        raise FeatureInputError(f"{name}: {int((~np.isfinite(b)).sum())} entries are NaN or inf")
    return b


# ---------------------------------------------------------------------------------------------
# metrics of one layer
# ---------------------------------------------------------------------------------------------
def _sv(A: np.ndarray) -> list[float]:
    return metrics.singular_values(A)


def _fin(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def output_singular_values(stats: ClassStats, W: np.ndarray, b: np.ndarray | None = None) -> list[float]:
    """Singular values of the outputs Z = W H (+ b 1^T) over all N samples (K x N), from the second moment
    without the samples: Z Z^T = W_a M W_a^T with M = sum_i [h_i; 1][h_i; 1]^T and W_a = [W, b]; computed as the
    singular values of W_a V diag(sqrt(e)) for M = V diag(e) V^T (absolute accuracy about eps ||Z||)."""
    M = stats.second_moment()
    Wa = W
    if b is not None:
        s = stats.counts @ stats.means
        M = np.block([[M, s[:, None]], [s[None, :], np.array([[float(stats.N)]])]])
        Wa = np.hstack([W, b[:, None]])
    e, V = np.linalg.eigh(0.5 * (M + M.T))
    return _sv(Wa @ (V * np.sqrt(np.clip(e, 0.0, None))))


@dataclass
class LayerMetrics:
    """The NC measurements of one feature layer (arrays kept for comparisons; ``to_json`` for reports).

    name: file or layer name; counts n_k; d; global_mean (kind); nc1 = (1/K) tr(Sigma_W Sigma_B^+);
    tr_sigma_w, tr_sigma_b; gram / gram_centered: Hbar^T Hbar with Hbar uncentered / centered by hbar_G (K x K);
    nc2_Hbar: {"uncentered"|"centered": {"ETF", "OF", "diag"}}; sv_Hbar / sv_Hbar_centered; class_mean_norms
    ||hbar_k|| (uncentered) and ||hbar_k - hbar_G|| (centered). With a classifier W: gram_W = W W^T, nc2_W {"ETF", "OF", "diag"}, sv_W, sv_layers
    (per W_j), nc3 {"duality", "duality_centered", "product_OF", "product_ETF"} (centered: against Hbar - hbar_G),
    sv_WHbar (W Hbar; _centered: W (Hbar - hbar_G 1^T)), sv_logits (W Hbar + b 1^T, the class-mean logits), sv_output (W H over samples),
    sv_output_centered (W (H - hbar_G 1^T)), sv_output_bias (W H + b 1^T), bias. ``note``: what was not streamed. ``to_json`` writes the K x K Grams
    for K <= GRAM_JSON_MAX_K only."""

    name: str
    counts: list[int]
    d: int
    global_mean: str
    nc1: float | None
    tr_sigma_w: float
    tr_sigma_b: float
    gram: np.ndarray
    gram_centered: np.ndarray
    nc2_Hbar: dict
    sv_Hbar: list[float]
    sv_Hbar_centered: list[float]
    class_mean_norms: list[float]
    class_mean_norms_centered: list[float] = field(default_factory=list)
    hbar_G: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    Hbar: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    W: np.ndarray | None = field(repr=False, default=None)
    bias: list[float] | None = None
    gram_W: np.ndarray | None = None
    nc2_W: dict | None = None
    sv_W: list[float] | None = None
    sv_layers: list[list[float]] | None = None
    nc3: dict | None = None
    sv_WHbar: list[float] | None = None
    sv_WHbar_centered: list[float] | None = None
    sv_logits: list[float] | None = None
    sv_output: list[float] | None = None
    sv_output_centered: list[float] | None = None
    sv_output_bias: list[float] | None = None
    note: str = ""

    def to_json(self) -> dict:
        out: dict = {"name": self.name, "N": int(sum(self.counts)), "K": len(self.counts), "d": self.d,
                     "counts": self.counts, "global_mean": self.global_mean, "nc1": self.nc1,
                     "tr_sigma_w": self.tr_sigma_w, "tr_sigma_b": self.tr_sigma_b,
                     "class_mean_gram": _gram_json(self.gram), "class_mean_gram_centered": _gram_json(self.gram_centered),
                     "nc2_Hbar": self.nc2_Hbar, "singular_values": {"Hbar": self.sv_Hbar,
                                                                    "Hbar_centered": self.sv_Hbar_centered},
                     "class_mean_norms": self.class_mean_norms,
                     "class_mean_norms_centered": self.class_mean_norms_centered}
        if self.W is not None:
            out["classifier_gram"] = None if self.gram_W is None else _gram_json(self.gram_W)
            out["nc2_W"] = self.nc2_W
            out["nc3"] = self.nc3
            out["bias"] = self.bias
            out["singular_values"].update({"W": self.sv_W, "W_layers": self.sv_layers, "W_Hbar": self.sv_WHbar,
                                           "W_Hbar_centered": self.sv_WHbar_centered,
                                           "output_W_H_centered": self.sv_output_centered,
                                           "logits_W_Hbar_plus_b": self.sv_logits, "output_W_H": self.sv_output,
                                           "output_W_H_plus_b": self.sv_output_bias})
        if self.note:
            out["note"] = self.note
        return out


#: K x K Gram matrices are written to JSON up to this K (beyond: None; the arrays stay on ``LayerMetrics``)
GRAM_JSON_MAX_K = 128


def _gram_json(G: np.ndarray) -> list | None:
    return G.tolist() if G.shape[0] <= GRAM_JSON_MAX_K else None


def _nc2_all(G: np.ndarray) -> dict:
    return {"ETF": _fin(metrics.nc2(G, "ETF")), "OF": _fin(metrics.nc2(G, "OF")), "diag": _fin(metrics.nc2_diagonal(G))}


def layer_metrics(stats: ClassStats, *, name: str = "features", global_mean: str = "sample",
                  W: np.ndarray | None = None, layers: Sequence[np.ndarray] | None = None,
                  b: np.ndarray | None = None, note: str = "") -> LayerMetrics:
    """Every NC measurement of one layer from its streamed statistics (and the classifier W (K x d), its layers
    W_1..W_M, its bias b (K)). Formulas: those of ``numerics.metrics`` (nc1_from_covariances, nc2, nc2_diagonal,
    nc3_duality, nc3_product); a metric undefined because a matrix is 0 is None."""
    kind = _global_mean_kind(global_mean)
    K = stats.K
    Hbar = stats.means.T  # d x K
    hG = stats.global_mean(kind)
    Hc = Hbar - hG[:, None]
    SW, SB = stats.sigma_w(), stats.sigma_b(kind)
    G, Gc = Hbar.T @ Hbar, Hc.T @ Hc
    out = LayerMetrics(
        name=name, counts=[int(c) for c in stats.counts], d=stats.d, global_mean=kind,
        nc1=_fin(metrics.nc1_from_covariances(SW, SB, K)), tr_sigma_w=float(np.trace(SW)),
        tr_sigma_b=float(np.trace(SB)), gram=G, gram_centered=Gc,
        nc2_Hbar={"uncentered": _nc2_all(G), "centered": _nc2_all(Gc)}, sv_Hbar=_sv(Hbar), sv_Hbar_centered=_sv(Hc),
        class_mean_norms=[float(v) for v in np.linalg.norm(Hbar, axis=0)],
        class_mean_norms_centered=[float(v) for v in np.linalg.norm(Hc, axis=0)], hbar_G=hG, Hbar=Hbar, note=note)
    if W is None:
        return out
    WW = W @ W.T
    out.W = W
    out.gram_W = WW
    out.nc2_W = _nc2_all(WW)
    out.sv_W = _sv(W)
    out.sv_layers = [_sv(m) for m in layers] if layers is not None and len(layers) > 1 else None
    out.nc3 = {"duality": _fin(metrics.nc3_duality(W, Hbar)), "duality_centered": _fin(metrics.nc3_duality(W, Hc)),
               "product_OF": _fin(metrics.nc3_product(W, Hbar, "OF")),
               "product_ETF": _fin(metrics.nc3_product(W, Hc, "ETF"))}
    out.sv_WHbar = _sv(W @ Hbar)
    out.sv_output = output_singular_values(stats, W)
    out.sv_WHbar_centered = _sv(W @ Hc)
    out.sv_output_centered = output_singular_values(stats, W, -(W @ hG))  # W (H - hbar_G 1^T)
    if b is not None:
        out.bias = [float(v) for v in b]
        out.sv_logits = _sv(W @ Hbar + b[:, None])
        out.sv_output_bias = output_singular_values(stats, W, b)
    return out
