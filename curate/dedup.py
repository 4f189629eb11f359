"""Image and annotation duplicates: exact (content hash), near (perceptual hash, embeddings), boxes.

Repeats inflate metrics when copies land on both sides of a split and bias class counts. Images
are hashed once each (SHA-256 of the bytes and a 64-bit DCT perceptual hash of a reduced decode:
PIL draft mode for JPEG), through an :mod:`~imagine.curate.executor` so the work scales out.
Near duplicates are found by multi-index hashing (pigeonhole on bit blocks, vectorised with
NumPy), never by comparing all pairs, and grouped by connected components; each group keeps one
representative. Annotation duplicates are boxes of one class on one image overlapping above an
IoU threshold.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagine.kernel import Finding, InputError, UsageError, open_image, safe_join

from .executor import Executor, SerialExecutor
from .model import Dataset

__all__ = ["hash_file", "image_hashes", "ImageHashes", "near_pairs", "cosine_pairs", "components",
           "overlap_pairs", "annotation_duplicates", "dedup", "DedupResult", "MAX_HAMMING"]

MAX_HAMMING = 32  # beyond half the bits a "near" duplicate means nothing
HASH_SIZE = 8  # 8 x 8 low DCT frequencies = 64 bits
_DCT_SIZE = 32


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


_DCT = _dct_matrix(_DCT_SIZE)[:HASH_SIZE]  # only the rows of the 8 lowest frequencies are needed


def phash_pixels(gray: np.ndarray) -> int:
    """64-bit perceptual hash of a 32 x 32 grey image: low 8 x 8 DCT coefficients above their median."""
    low = (_DCT @ gray.astype(np.float64) @ _DCT.T).ravel()
    part = np.partition(low, (31, 32))
    return int.from_bytes(np.packbits(low > (part[31] + part[32]) / 2).tobytes(), "big")


def hash_file(path: str) -> tuple[str | None, int | None, int, int, str | None]:
    """``(sha256, phash, width, height, error)`` of one image file; an unreadable file gives the error.

    JPEGs decode in draft mode (grey, DCT scaling to >= 32 px); the grey image is then averaged down
    to 32 x 32 (box filter), so little is added to the decode.
    """
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return None, None, 0, 0, f"cannot read file: {exc.strerror or exc}"
    sha = hashlib.sha256(data).hexdigest()
    try:
        im = open_image(path)  # the bomb guard; the bytes just read are in the page cache
        w, h = im.size
        if im.format == "JPEG":
            im.draft("L", (_DCT_SIZE, _DCT_SIZE))
        im = im.convert("L").resize((_DCT_SIZE, _DCT_SIZE), Image.Resampling.BOX)
        gray = np.frombuffer(im.tobytes(), dtype=np.uint8).reshape(_DCT_SIZE, _DCT_SIZE)
    except InputError as exc:
        return sha, None, 0, 0, exc.message
    except (OSError, ValueError, SyntaxError) as exc:
        return sha, None, 0, 0, f"unreadable image: {exc}"
    return sha, phash_pixels(gray), int(w), int(h), None


@dataclass
class ImageHashes:
    """Per-image hashes in dataset row order; ``ok`` is False for unreadable images."""

    sha256: list[str | None]
    phash: np.ndarray  # uint64, 0 where not ok
    ok: np.ndarray  # bool
    findings: list[Finding] = field(default_factory=list)


def image_paths(ds: Dataset, root: str | os.PathLike[str] | None = None) -> list[str]:
    """Absolute paths of the dataset's images (file names checked against the root)."""
    root_p = Path(root) if root is not None else Path(ds.info.get("root") or ".")
    return [str(safe_join(root_p, n, place=f"image {i}"))
            for i, n in enumerate(ds.images.column("file_name").to_pylist())]


def image_hashes(ds: Dataset, root: str | os.PathLike[str] | None = None, *,
                 executor: Executor | None = None) -> ImageHashes:
    """Hash every image of ``ds`` (through ``executor``); unreadable ones become findings, not errors."""
    paths = image_paths(ds, root)
    ex = executor or SerialExecutor()
    results = ex.map(hash_file, paths, desc="hashing images")
    n = len(paths)
    sha: list[str | None] = [r[0] for r in results]
    ph = np.zeros(n, dtype=np.uint64)
    ok = np.zeros(n, dtype=bool)
    findings = []
    names = ds.images.column("file_name").to_pylist()
    for i, (_s, p, _w, _h, err) in enumerate(results):
        if err is not None or p is None:
            findings.append(Finding("image-unreadable", f"{err}; skipped", "warning", file=names[i],
                                    place=f"image {i}"))
        else:
            ph[i] = p
            ok[i] = True
    return ImageHashes(sha, ph, ok, findings)


# ------------------------------------------------------------------------------------ graphs


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes and edges ``a[k]–b[k]``: each node's smallest member.

    SciPy's graph routine when it is installed (it comes with scikit-learn), else a NumPy
    union-find by hooking and pointer jumping.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    try:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components
    except ImportError:
        return _components_numpy(n, a, b)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(int(labels.max()) + 1, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    return smallest[labels]


def _components_numpy(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    parent = np.arange(n, dtype=np.int64)
    while len(a):
        ra, rb = parent[a], parent[b]
        diff = ra != rb
        if not diff.any():
            break
        ra, rb, a, b = ra[diff], rb[diff], a[diff], b[diff]
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp
    return parent


def _run_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of positions ``(p, q)``, ``p < q``, with equal values in the sorted array ``keys``."""
    n = len(keys)
    if n < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    active = np.flatnonzero(keys[1:] == keys[:-1])
    ps, qs = [], []
    d = 1
    while len(active):
        ps.append(active)
        qs.append(active + d)
        d += 1
        active = active[active + d < n]
        active = active[keys[active + d] == keys[active]]
    if not ps:
        e = np.zeros(0, dtype=np.int64)
        return e, e
    return np.concatenate(ps), np.concatenate(qs)


def _blocks(bits: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (offset, width) blocks covering ``bits`` bits as evenly as possible."""
    base, extra = divmod(bits, parts)
    out, off = [], 0
    for i in range(parts):
        w = base + (1 if i < extra else 0)
        out.append((off, w))
        off += w
    return out


def _choose_blocks(n: int, r: int) -> int:
    """Number of blocks B for distance ``r``: pigeonhole leaves B - r blocks equal; cheapest B wins.

    With B = r + 1 one block matches exactly (the textbook case); for large ``n`` its buckets get
    crowded, so more blocks (and keys of B - r blocks) cut the candidates by more than they add passes.
    """
    best, best_cost = r + 1, math.inf
    for parts in range(r + 1, min(64, 3 * r + 3) + 1):
        k = parts - r
        key_bits = 64 * k / parts
        passes = math.comb(parts, k)
        cost = passes * (n + 4.0 * n * n / 2.0 ** (key_bits + 1))  # a sort per pass + checked candidates
        if cost < best_cost:
            best, best_cost = parts, cost
    return best


def near_pairs(hashes: np.ndarray, max_distance: int, *, expand: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, i < j, of 64-bit hashes within Hamming ``max_distance``, and their distances.

    With ``expand`` every such pair is returned. Without it (the default, enough for grouping),
    repeats of one value are linked to its first occurrence only and near pairs join first
    occurrences, so a burst of identical frames does not explode into all its pairs: the connected
    components are the same.

    Multi-index hashing: the 64 bits are cut into B blocks; two hashes at distance <= r differ in
    at most r blocks, so at least B - r blocks are equal. For each choice of B - r blocks, sorting
    by those bits puts every candidate pair in one run; candidates are then checked exactly. Equal
    hashes are collapsed first so a burst of identical frames costs nothing.
    """
    if not 0 <= max_distance <= MAX_HAMMING:
        raise UsageError(f"Hamming distance must be between 0 and {MAX_HAMMING}, not {max_distance}")
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    uniq, first, inv = np.unique(h, return_index=True, return_inverse=True)
    inv = inv.ravel()
    by_value = np.argsort(inv, kind="stable")  # occurrences of each unique value, consecutive
    occ_start = np.searchsorted(inv[by_value], np.arange(len(uniq)))
    occ_count = np.bincount(inv, minlength=len(uniq))
    if expand:
        p, q = _run_pairs(inv[by_value])
        ai, bi = [by_value[p]], [by_value[q]]
    else:  # link each repeat to the first occurrence of its value
        rep = np.flatnonzero(first[inv] != np.arange(n))
        ai, bi = [first[inv[rep]]], [rep]
    di = [np.zeros(len(ai[0]), dtype=np.int64)]
    m = len(uniq)
    if max_distance > 0 and m > 1:
        parts = _choose_blocks(m, max_distance)
        blocks = _blocks(64, parts)
        idx_bits = max(1, int(m - 1).bit_length())
        ua, ub = [], []
        for combo in combinations(range(parts), parts - max_distance):
            key = np.zeros(m, dtype=np.uint64)
            shift = 0
            for bnum in combo:
                off, w = blocks[bnum]
                key |= ((uniq >> np.uint64(off)) & np.uint64((1 << w) - 1)) << np.uint64(shift)
                shift += w
            if shift + idx_bits <= 64:
                packed = np.sort((key << np.uint64(idx_bits)) | np.arange(m, dtype=np.uint64))
                order = (packed & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
                skeys = packed >> np.uint64(idx_bits)
            else:
                order = np.argsort(key, kind="stable")
                skeys = key[order]
            p, q = _run_pairs(skeys)
            if not len(p):
                continue
            x, y = order[p], order[q]
            close = np.bitwise_count(uniq[x] ^ uniq[y]) <= max_distance
            x, y = x[close], y[close]
            ua.append(np.minimum(x, y))
            ub.append(np.maximum(x, y))
        if ua:
            ca, cb = np.concatenate(ua), np.concatenate(ub)
            code = np.unique(ca * m + cb)
            ca, cb = code // m, code % m
            dist = np.bitwise_count(uniq[ca] ^ uniq[cb]).astype(np.int64)
            if expand:  # every occurrence of one value with every occurrence of the other
                na, nb = occ_count[ca], occ_count[cb]
                k = np.repeat(np.arange(len(ca)), na * nb)
                off = np.arange(len(k)) - np.repeat(np.cumsum(na * nb) - na * nb, na * nb)
                ai.append(by_value[occ_start[ca][k] + off // nb[k]])
                bi.append(by_value[occ_start[cb][k] + off % nb[k]])
                di.append(dist[k])
            else:  # first occurrences only; repeats hang on them
                ai.append(first[ca])
                bi.append(first[cb])
                di.append(dist)
    a, b, d = np.concatenate(ai), np.concatenate(bi), np.concatenate(di)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return lo.astype(np.int64), hi.astype(np.int64), d


def cosine_pairs(embeddings: np.ndarray, threshold: float, *, block: int = 2048
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, i < j, of rows with cosine similarity >= ``threshold`` (blocked products)."""
    if not -1.0 <= threshold <= 1.0:
        raise UsageError(f"cosine threshold must be between -1 and 1, not {threshold}")
    e: np.ndarray = np.asarray(embeddings, dtype=np.float32)
    if e.ndim != 2:
        raise UsageError(f"embeddings must be a 2-D array (images x dimensions), not shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = e / np.where(norms == 0, 1, norms)
    ai, bi, si = [], [], []
    for s in range(0, len(e), block):
        sims = e[s:s + block] @ e[s:].T
        r, c = np.nonzero(sims >= threshold)
        c = c + s
        r = r + s
        keep = c > r
        ai.append(r[keep])
        bi.append(c[keep])
        si.append(sims[r[keep] - s, c[keep] - s])
    if not ai:
        e0 = np.zeros(0, dtype=np.int64)
        return e0, e0, np.zeros(0)
    return np.concatenate(ai).astype(np.int64), np.concatenate(bi).astype(np.int64), np.concatenate(si)


# ------------------------------------------------------------------------------------ boxes


def overlap_pairs(group: np.ndarray, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, *,
                  chunk: int = 4_000_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of boxes of the same ``group`` whose interiors intersect, with the intersection areas.

    A sweep along x inside each group: sorted by (group, left edge), box p is a candidate with the
    boxes that follow it until one starts at or after its right edge; one ``searchsorted`` gives
    that reach for every box, so candidates (what overlaps in x) are generated at once, in chunks of
    about ``chunk`` pairs, and checked exactly.
    """
    n = len(group)
    e = np.zeros(0, dtype=np.int64)
    if n < 2:
        return e, e, np.zeros(0)
    g = np.asarray(group, dtype=np.int64)
    g = g - g.min()
    lo = float(min(x1.min(), x2.min()))
    span = float(max(x1.max(), x2.max())) - lo + 1.0
    key = g * span + (x1 - lo)
    order = np.argsort(key, kind="stable")
    skey = key[order]
    end_key = (g * span + (x2 - lo))[order]
    # a few ulps of slack keep the candidates a superset despite rounding; the exact check below decides
    tol = 8 * float(np.spacing(max(abs(float(skey[-1])), abs(float(end_key.max())), 1.0)))
    reach = np.searchsorted(skey, end_key + tol, side="right") - np.arange(n) - 1
    reach = np.maximum(reach, 0)
    sx1, sy1, sx2, sy2 = x1[order], y1[order], x2[order], y2[order]
    cum = np.cumsum(reach)
    ps, qs, inter = [], [], []
    start = 0
    while start < n:
        base = int(cum[start - 1]) if start else 0
        stop = int(np.searchsorted(cum, base + chunk, side="right"))
        stop = max(stop, start + 1)
        r = reach[start:stop]
        total = int(r.sum())
        if total:
            p = np.repeat(np.arange(start, stop), r)
            first = np.cumsum(r) - r
            q = p + 1 + (np.arange(total) - np.repeat(first, r))
            iw = np.minimum(sx2[p], sx2[q]) - np.maximum(sx1[p], sx1[q])
            ih = np.minimum(sy2[p], sy2[q]) - np.maximum(sy1[p], sy1[q])
            hit = (iw > 0) & (ih > 0) & (g[order[p]] == g[order[q]])
            ps.append(order[p[hit]])
            qs.append(order[q[hit]])
            inter.append(iw[hit] * ih[hit])
        start = stop
    if not ps:
        return e, e, np.zeros(0)
    return np.concatenate(ps), np.concatenate(qs), np.concatenate(inter)


def box_columns(ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x1, y1, x2, y2`` of every annotation's envelope (NaN where unknown)."""
    x = ds.col("annotations", "bbox_x")
    y = ds.col("annotations", "bbox_y")
    w = ds.col("annotations", "bbox_w")
    h = ds.col("annotations", "bbox_h")
    return x, y, x + w, y + h


def _int_col(ds: Dataset, name: str, fill: int = -1) -> np.ndarray:
    c = ds.annotations.column(name)
    return np.asarray(pc.fill_null(c, fill).to_numpy(), dtype=np.int64)


def annotation_duplicates(ds: Dataset, iou: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Annotations repeating an earlier one (same image, same class, IoU >= ``iou``).

    Returns ``(is_duplicate, duplicate_of, score)`` per annotation row: the first annotation of each
    connected group is kept; the others point at it (row number, -1 for none) with their best IoU.
    Whole-image labels (``kind == 'label'``) repeat when they have the same class on the same image.
    """
    if not 0.0 < iou <= 1.0:
        raise UsageError(f"annotation IoU threshold must be in (0, 1], not {iou}")
    n = ds.num_annotations
    dup = np.zeros(n, dtype=bool)
    of = np.full(n, -1, dtype=np.int64)
    score = np.zeros(n)
    if n < 2:
        return dup, of, score
    img = ds.annotations.column("image_id").to_numpy()
    cat = _int_col(ds, "category_id")
    x1, y1, x2, y2 = box_columns(ds)
    is_label = np.asarray(pc.equal(ds.annotations.column("kind"), "label").to_numpy(zero_copy_only=False))
    _, gkey = np.unique(np.stack([img, cat]), axis=1, return_inverse=True)
    gkey = gkey.ravel()
    boxed = ~is_label & np.isfinite(x1) & np.isfinite(y1) & np.isfinite(x2) & np.isfinite(y2)
    rows = np.flatnonzero(boxed)
    p, q, inter = overlap_pairs(gkey[rows], x1[rows], y1[rows], x2[rows], y2[rows])
    p, q = rows[p], rows[q]
    area = (x2 - x1) * (y2 - y1)
    ious = inter / np.maximum(area[p] + area[q] - inter, 1e-12)
    keep = ious >= iou
    a, b, s = p[keep], q[keep], ious[keep]
    lab = np.flatnonzero(is_label)
    if len(lab) > 1:
        order = lab[np.argsort(gkey[lab], kind="stable")]
        lp, lq = _run_pairs(gkey[order])
        a = np.concatenate([a, order[lp]])
        b = np.concatenate([b, order[lq]])
        s = np.concatenate([s, np.ones(len(lp))])
    root = components(n, a, b)
    dup = root != np.arange(n)
    of = np.where(dup, root, -1)
    np.maximum.at(score, np.maximum(a, b), s)
    np.maximum.at(score, np.minimum(a, b), s)
    return dup, of, np.where(dup, score, 0.0)


# ------------------------------------------------------------------------------------ images


@dataclass
class DedupResult:
    """Duplicate groups of images and duplicate annotations, as per-row columns plus a summary."""

    dataset: Dataset
    group: np.ndarray  # per image: smallest row of its duplicate group, -1 when unique
    exact_group: np.ndarray  # per image: same, for byte-identical files only
    representative: np.ndarray  # per image: row of its group's representative (itself when unique)
    is_duplicate: np.ndarray  # per image: in a group and not its representative
    annotation_duplicate: np.ndarray  # per annotation
    annotation_duplicate_of: np.ndarray
    pairs: int
    params: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)

    def deduplicated(self, *, images: bool = True, annotations: bool = True) -> Dataset:
        """The dataset without duplicate images (keeping representatives) and/or duplicate annotations."""
        ds = self.dataset
        if annotations and self.annotation_duplicate.any():
            ds = ds.filter_annotations(~self.annotation_duplicate)
        if images and self.is_duplicate.any():
            ds = ds.filter_images(~self.is_duplicate)
        return ds

    def groups(self) -> list[dict[str, Any]]:
        """One entry per duplicate group: kind, representative, members, splits."""
        names = self.dataset.images.column("file_name").to_pylist()
        splits = self.dataset.images.column("split").to_pylist()
        rows = np.flatnonzero(self.group >= 0)
        out = []
        order = rows[np.argsort(self.group[rows], kind="stable")]
        bounds = np.flatnonzero(np.diff(self.group[order])) + 1
        for members in np.split(order, bounds):
            if len(members) < 2:
                continue
            exact = bool(np.all(self.exact_group[members] == self.exact_group[members[0]])
                         and self.exact_group[members[0]] >= 0)
            rep = int(self.representative[members[0]])
            out.append({
                "id": int(self.group[members[0]]),
                "kind": "exact" if exact else "near",
                "representative": names[rep],
                "members": [names[i] for i in members],
                "splits": sorted({splits[i] or "unsplit" for i in members}),
            })
        return out

    def report(self) -> dict[str, Any]:
        """The JSON report (schema ``dedup-report``)."""
        groups = self.groups()
        names = self.dataset.annotations.column("id").to_pylist()
        dup_rows = np.flatnonzero(self.annotation_duplicate)
        crossing = [g for g in groups if len(g["splits"]) > 1]
        return {
            "kind": "dedup",
            "images": len(self.dataset),
            "unreadable": sum(1 for f in self.findings if f.code == "image-unreadable"),
            "params": self.params,
            "summary": {
                "groups": len(groups),
                "exact_groups": sum(1 for g in groups if g["kind"] == "exact"),
                "near_groups": sum(1 for g in groups if g["kind"] == "near"),
                "images_in_groups": int((self.group >= 0).sum()),
                "removable_images": int(self.is_duplicate.sum()),
                "groups_crossing_splits": len(crossing),
                "candidate_pairs": int(self.pairs),
                "annotation_duplicates": int(len(dup_rows)),
            },
            "groups": groups,
            "annotation_duplicates": [
                {"annotation": int(names[r]), "duplicate_of": int(names[self.annotation_duplicate_of[r]])}
                for r in dup_rows[:1000]
            ],
            "findings": [f.to_dict() for f in self.findings],
        }


def _representatives(group: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per row, the row of its group with the largest ``weight`` (ties: first row)."""
    n = len(group)
    rep = np.arange(n)
    rows = np.flatnonzero(group >= 0)
    if not len(rows):
        return rep
    order = rows[np.lexsort((rows, -weight[rows], group[rows]))]
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    first = order[starts]
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    rep[order] = first[seg]
    return rep


def dedup(ds: Dataset, root: str | os.PathLike[str] | None = None, *, near: bool = True, max_distance: int = 6,
          embeddings: np.ndarray | None = None, cosine: float = 0.95, annotation_iou: float | None = 0.9,
          executor: Executor | None = None, hashes: ImageHashes | None = None) -> DedupResult:
    """Find duplicate images (exact, near by perceptual hash, near by embeddings) and annotations.

    Groups are connected components of "is a duplicate of" links; the representative of a group
    is its image with the most annotations (ties: first in the dataset). Unreadable images are
    findings and take part only in exact (byte) matching.
    """
    if not 0 <= max_distance <= MAX_HAMMING:
        raise UsageError(f"--max-distance must be between 0 and {MAX_HAMMING}, not {max_distance}")
    if embeddings is not None and not -1.0 <= cosine <= 1.0:
        raise UsageError(f"--cosine must be between -1 and 1, not {cosine}")
    if annotation_iou is not None and not 0.0 < annotation_iou <= 1.0:
        raise UsageError(f"--annotation-iou must be in (0, 1], not {annotation_iou}")
    n = len(ds)
    hashes = hashes or image_hashes(ds, root, executor=executor)
    sha = pa.array(hashes.sha256, pa.string())
    enc = pc.dictionary_encode(sha).combine_chunks() if isinstance(sha, pa.ChunkedArray) else \
        pc.dictionary_encode(sha)
    codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    # exact: link each file to the first with the same bytes
    valid = np.flatnonzero(codes >= 0)
    ea, eb = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(valid):
        order = valid[np.argsort(codes[valid], kind="stable")]
        p, q = _run_pairs(codes[order])
        ea, eb = order[p], order[q]
    exact_root = components(n, ea, eb)
    links_a, links_b = [ea], [eb]
    pairs = len(ea)
    if near:
        ok = np.flatnonzero(hashes.ok)
        a, b, _ = near_pairs(hashes.phash[ok], max_distance)
        links_a.append(ok[a])
        links_b.append(ok[b])
        pairs += len(a)
    if embeddings is not None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or len(emb) != n:
            raise UsageError(f"embeddings must have one row per image ({n}), not shape {emb.shape}")
        a, b, _ = cosine_pairs(emb, cosine)
        links_a.append(a)
        links_b.append(b)
        pairs += len(a)
    root_all = components(n, np.concatenate(links_a), np.concatenate(links_b))
    sizes = np.bincount(root_all, minlength=n)
    group = np.where(sizes[root_all] > 1, root_all, -1)
    esizes = np.bincount(exact_root, minlength=n)
    exact_group = np.where(esizes[exact_root] > 1, exact_root, -1)
    order_a, starts, ends = ds.annotations_by_image()
    n_ann = (ends - starts).astype(np.float64) if n else np.zeros(0)
    rep = _representatives(group, n_ann)
    is_dup = (group >= 0) & (rep != np.arange(n))
    if annotation_iou is not None:
        adup, aof, _ = annotation_duplicates(ds, annotation_iou)
    else:
        adup, aof = np.zeros(ds.num_annotations, bool), np.full(ds.num_annotations, -1, np.int64)
    params = {"near": near, "max_distance": max_distance, "hash": "phash-dct-64",
              "cosine": cosine if embeddings is not None else None, "annotation_iou": annotation_iou}
    return DedupResult(ds, group, exact_group, rep, is_dup, adup, aof, pairs, params, list(hashes.findings))


def render_markdown(report: dict[str, Any], *, max_groups: int = 20) -> str:
    """The dedup report for people."""
    s = report["summary"]
    lines = [
        "# Duplicates", "",
        f"{report['images']} images, {report['unreadable']} unreadable; perceptual hash Hamming <= "
        f"{report['params']['max_distance']}.", "",
        "| | count |", "|---|---:|",
        f"| duplicate groups | {s['groups']} ({s['exact_groups']} exact, {s['near_groups']} near) |",
        f"| images in groups | {s['images_in_groups']} |",
        f"| removable images (non-representatives) | {s['removable_images']} |",
        f"| groups crossing splits | {s['groups_crossing_splits']} |",
        f"| duplicate annotations | {s['annotation_duplicates']} |", "",
    ]
    if report["groups"]:
        lines += ["## Groups", "", "| kind | splits | representative | members |", "|---|---|---|---:|"]
        for g in report["groups"][:max_groups]:
            lines.append(f"| {g['kind']} | {', '.join(g['splits'])} | `{g['representative']}` | {len(g['members'])} |")
        if len(report["groups"]) > max_groups:
            lines.append(f"| … | | {len(report['groups']) - max_groups} more groups | |")
        lines.append("")
    if report["findings"]:
        lines += ["## Findings", ""] + [f"- {f.get('file', '')}: {f['message']}" for f in report["findings"][:50]]
    return "\n".join(lines) + "\n"
