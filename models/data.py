"""From the dataset model to tensors: examples per task, letterboxing, statistics, augmentation, sampling.

Images are decoded once, letterboxed just in time to the model's input size and kept in memory as
``uint8`` tensors (small baselines on small data: the decode dominates, so it is done once).
Normalisation statistics come from the training split only. Augmentations run on batches with a
seeded generator — one random affine per image (flip, rotation, scale/crop, translation) applied
to the pixels through ``grid_sample`` and to the boxes through their corners — plus colour jitter,
so a run is reproducible bit for bit on CPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagine.curate.model import Dataset
from imagine.kernel import UsageError, open_image, progress, safe_join

__all__ = ["Examples", "classification_examples", "detection_examples", "stratified_split", "stratified_folds",
           "load_letterboxed", "channel_stats", "Augment", "augment_batch", "class_weights", "balanced_order",
           "tile_windows", "BOX_KINDS"]

# Annotation kinds whose envelope is a real object box a detector can learn from.
BOX_KINDS = ("box", "rbox", "polygon", "mask", "circle", "ellipse")
PAD_VALUE = 114


@dataclass
class Examples:
    """The examples of one task, one row per image (or tile), in dataset order.

    ``labels`` is the class index of each image (classification); ``boxes``/``box_labels`` the
    ``x1, y1, x2, y2`` boxes in source pixels and their class indices (detection). Class index
    ``k`` is category ``class_ids[k]`` (category-id order).
    """

    image_ids: np.ndarray
    files: list[str]
    splits: list[str | None]
    class_ids: list[int]
    class_names: list[str]
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    boxes: list[np.ndarray] = field(default_factory=list)
    box_labels: list[np.ndarray] = field(default_factory=list)
    windows: list[tuple[int, int, int, int] | None] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, idx: np.ndarray | Sequence[int]) -> Examples:
        ix = [int(i) for i in idx]
        return Examples(self.image_ids[ix], [self.files[i] for i in ix], [self.splits[i] for i in ix],
                        self.class_ids, self.class_names,
                        self.labels[ix] if len(self.labels) else self.labels,
                        [self.boxes[i] for i in ix] if self.boxes else [],
                        [self.box_labels[i] for i in ix] if self.box_labels else [],
                        [self.windows[i] for i in ix] if self.windows else [], dict(self.skipped))


def _classes(ds: Dataset) -> tuple[list[int], list[str], dict[int, int]]:
    cats = sorted(zip(ds.categories.column("id").to_pylist(), ds.categories.column("name").to_pylist(),
                      strict=True))
    ids = [int(c) for c, _ in cats]
    return ids, [str(n) for _, n in cats], {c: k for k, c in enumerate(ids)}


def classification_examples(ds: Dataset) -> Examples:
    """One example per image carrying a whole-image label (``kind == "label"``); others are counted, skipped.

    An image with several different whole-image labels keeps its first and is counted under
    ``multi_label``; a dataset with no whole-image label at all cannot be classified as is.
    """
    ids, names, index = _classes(ds)
    kinds = ds.annotations.column("kind").to_pylist()
    if "label" not in kinds:
        raise UsageError("the dataset has no whole-image labels; classification needs one label per image "
                         "(crop the boxes into images first, or use --task detect)")
    cat = ds.annotations.column("category_id").to_pylist()
    order, starts, ends = ds.annotations_by_image()
    keep, labels = [], []
    skipped = {"unlabelled": 0, "multi_label": 0}
    for r in range(len(ds)):
        found = [cat[a] for a in order[starts[r]:ends[r]] if kinds[a] == "label" and cat[a] is not None]
        if not found:
            skipped["unlabelled"] += 1
            continue
        if len(set(found)) > 1:
            skipped["multi_label"] += 1
        keep.append(r)
        labels.append(index[int(found[0])])
    files = ds.images.column("file_name").to_pylist()
    splits = ds.images.column("split").to_pylist()
    img_ids = ds.images.column("id").to_numpy()
    return Examples(img_ids[keep], [files[r] for r in keep], [splits[r] for r in keep], ids, names,
                    np.asarray(labels, dtype=np.int64), skipped={k: v for k, v in skipped.items() if v})


def tile_windows(width: int, height: int, tile: int, overlap: float = 0.1) -> list[tuple[int, int, int, int]]:
    """``tile × tile`` overlapping windows ``(x, y, w, h)`` covering an image (patch tiling of large images)."""
    if tile <= 1:
        return [(0, 0, width, height)]
    tw = math.ceil(width / (tile - (tile - 1) * overlap))
    th = math.ceil(height / (tile - (tile - 1) * overlap))
    xs = np.linspace(0, max(width - tw, 0), tile).round().astype(int)
    ys = np.linspace(0, max(height - th, 0), tile).round().astype(int)
    return [(int(x), int(y), min(tw, width), min(th, height)) for y in ys for x in xs]


def detection_examples(ds: Dataset, *, tile: int = 1, min_visible: float = 0.5) -> Examples:
    """One example per image (or per tile) with its object boxes; whole-image labels alone are refused.

    With ``tile > 1`` each image becomes ``tile²`` overlapping windows; boxes are clipped to each
    window and kept when at least ``min_visible`` of their area is inside it.
    """
    ids, names, index = _classes(ds)
    kinds = np.asarray(ds.annotations.column("kind").to_pylist(), dtype=object)
    is_box = np.isin(kinds, BOX_KINDS) if len(kinds) else np.zeros(0, dtype=bool)
    if not is_box.any():
        raise UsageError("detection needs object boxes, but this dataset has only whole-image labels"
                         if len(kinds) else "detection needs object boxes, but this dataset has no annotations")
    cat = ds.annotations.column("category_id").to_pylist()
    env = np.stack([ds.col("annotations", c) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1)
    order, starts, ends = ds.annotations_by_image()
    files = ds.images.column("file_name").to_pylist()
    splits = ds.images.column("split").to_pylist()
    img_ids = ds.images.column("id").to_numpy()
    widths = ds.images.column("width").to_pylist()
    heights = ds.images.column("height").to_pylist()
    ex = Examples(np.zeros(0, dtype=np.int64), [], [], ids, names)
    out_ids: list[int] = []
    for r in range(len(ds)):
        rows = [a for a in order[starts[r]:ends[r]] if is_box[a] and cat[a] is not None and np.isfinite(env[a]).all()
                and env[a, 2] > 0 and env[a, 3] > 0]
        b = env[rows].reshape(-1, 4).copy()
        b[:, 2:] += b[:, :2]
        lab = np.asarray([index[int(cat[a])] for a in rows], dtype=np.int64)
        windows: list[tuple[int, int, int, int] | None] = [None]
        if tile > 1:
            if widths[r] is None or heights[r] is None:
                raise UsageError("tiling needs image sizes in the dataset", file=files[r])
            windows = list(tile_windows(int(widths[r]), int(heights[r]), tile))
        for wi, win in enumerate(windows):
            bb, ll = b, lab
            if win is not None:
                x, y, w, h = win
                clipped = np.clip(b - [x, y, x, y], 0, [w, h, w, h])
                area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
                vis = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
                ok = vis >= min_visible * np.maximum(area, 1e-9)
                bb, ll = clipped[ok], lab[ok]
            out_ids.append(int(img_ids[r]) * (tile * tile) + wi if tile > 1 else int(img_ids[r]))
            ex.files.append(files[r])
            ex.splits.append(splits[r])
            ex.boxes.append(bb)
            ex.box_labels.append(ll)
            ex.windows.append(win)
    ex.image_ids = np.asarray(out_ids, dtype=np.int64)
    ex.labels = np.zeros(0, dtype=np.int64)
    return ex


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a seeded stratified hold-out: about ``fraction`` of each class (≥ 1 when it has ≥ 2)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        idx = idx[rng.permutation(len(idx))]
        n = int(round(len(idx) * fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        mask[idx[:n]] = True
    return mask


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Seeded stratified K-fold assignment: fold number per item, each class dealt round-robin."""
    if k < 2:
        raise UsageError(f"--cv needs at least 2 folds, not {k}")
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return fold


def letterbox_params(w: int, h: int, size: int) -> tuple[float, int, int, int, int]:
    """Scale and padding that fit ``w × h`` into ``size × size`` keeping the aspect: ``(s, nw, nh, px, py)``."""
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    return s, nw, nh, (size - nw) // 2, (size - nh) // 2


def load_letterboxed(root: str | os.PathLike[str], ex: Examples, size: int, *, desc: str = "loading images"
                     ) -> tuple[Any, np.ndarray]:
    """Decode every example once, letterbox it to ``size`` (grey padding), return a uint8 tensor and the transforms.

    The transforms array holds ``(scale, pad_x, pad_y, window_x, window_y)`` per example, to map
    boxes into and predictions back out of the model's frame.
    """
    import torch
    from PIL import Image

    out = torch.full((len(ex), 3, size, size), PAD_VALUE, dtype=torch.uint8)
    tf = np.zeros((len(ex), 5), dtype=np.float64)
    root_p = Path(root)
    for i, name in enumerate(progress(ex.files, total=len(ex), desc=desc, unit="img")):
        with open_image(safe_join(root_p, name)) as im:
            im = im.convert("RGB")
            win = ex.windows[i] if ex.windows else None
            if win is not None:
                x, y, w, h = win
                im = im.crop((x, y, x + w, y + h))
            else:
                x = y = 0
            w, h = im.size
            s, nw, nh, px, py = letterbox_params(w, h, size)
            arr = np.asarray(im.resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.uint8)
        out[i, :, py:py + nh, px:px + nw] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
        tf[i] = (s, px, py, x, y)
    return out, tf


def channel_stats(images: Any) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation (0–1 scale) of a uint8 ``(N, 3, H, W)`` tensor: the training split's."""
    import torch

    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return [float(v) for v in mean], [float(v) for v in std]


@dataclass
class Augment:
    """Augmentation settings; ``none()`` turns everything off (evaluation, reproducibility checks)."""

    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 10.0          # degrees, uniform in ±rotate
    rot90: bool = False           # also rotate by a random multiple of 90° (plankton, top-down views)
    scale: tuple[float, float] = (0.8, 1.2)
    translate: float = 0.1        # fraction of the image size
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    @classmethod
    def none(cls) -> Augment:
        return cls(0.0, 0.0, 0.0, False, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"hflip": self.hflip, "vflip": self.vflip, "rotate": self.rotate, "rot90": self.rot90,
                "scale": list(self.scale), "translate": self.translate, "brightness": self.brightness,
                "contrast": self.contrast, "saturation": self.saturation}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Augment:
        d = dict(d)
        if "scale" in d:
            d["scale"] = tuple(d["scale"])
        return cls(**d)


def augment_batch(x: Any, boxes: list[np.ndarray] | None, aug: Augment, gen: Any
                  ) -> tuple[Any, list[np.ndarray] | None, list[np.ndarray] | None]:
    """Augment a float batch ``(B, 3, S, S)`` (0–1 scale) and its boxes (``x1 y1 x2 y2`` in pixels).

    One affine per image maps output to input coordinates for ``grid_sample``; boxes go through the
    forward affine as their four corners and become the corners' envelope, clipped to the frame;
    boxes left with less than 2 px of width or height are dropped
    (the third value holds, per image, which input boxes were kept, to filter their labels).
    """
    import torch
    import torch.nn.functional as F

    b, _, size, _ = x.shape

    def u(lo: float, hi: float) -> Any:
        return torch.rand(b, generator=gen, dtype=torch.float64) * (hi - lo) + lo

    flip_x = torch.where(torch.rand(b, generator=gen, dtype=torch.float64) < aug.hflip, -1.0, 1.0)
    flip_y = torch.where(torch.rand(b, generator=gen, dtype=torch.float64) < aug.vflip, -1.0, 1.0)
    ang = u(-aug.rotate, aug.rotate) * math.pi / 180
    if aug.rot90:
        ang = ang + torch.randint(0, 4, (b,), generator=gen).to(torch.float64) * (math.pi / 2)
    sc = u(*aug.scale)
    tx, ty = u(-aug.translate, aug.translate) * 2, u(-aug.translate, aug.translate) * 2
    cos, sin = torch.cos(ang), torch.sin(ang)
    # forward (input → output, normalised coords): out = sc · R · diag(fx, fy) · in + t
    m = torch.stack([torch.stack([sc * cos * flip_x, -sc * sin * flip_y], 1),
                     torch.stack([sc * sin * flip_x, sc * cos * flip_y], 1)], 1)
    t = torch.stack([tx, ty], 1)
    minv = torch.linalg.inv(m)
    theta = torch.cat([minv, -(minv @ t[:, :, None])], 2).to(x.dtype)
    if aug != Augment.none():
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # colour jitter
        br = u(1 - aug.brightness, 1 + aug.brightness).to(x.dtype)[:, None, None, None]
        ct = u(1 - aug.contrast, 1 + aug.contrast).to(x.dtype)[:, None, None, None]
        sat = u(1 - aug.saturation, 1 + aug.saturation).to(x.dtype)[:, None, None, None]
        x = x * br
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        x = (x - gray.mean(dim=(2, 3), keepdim=True)) * ct + gray.mean(dim=(2, 3), keepdim=True)
        gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
        x = ((x - gray) * sat + gray).clamp(0, 1)
    if boxes is None:
        return x, None, None
    out_boxes, kept = [], []
    mm, tt = m.numpy(), t.numpy()
    for i, bx in enumerate(boxes):
        if len(bx) == 0 or aug == Augment.none():
            out_boxes.append(bx)
            kept.append(np.ones(len(bx), dtype=bool))
            continue
        corners = np.stack([bx[:, [0, 1]], bx[:, [2, 1]], bx[:, [0, 3]], bx[:, [2, 3]]], 1)  # (n, 4, 2)
        nc = corners * (2.0 / size) - 1.0
        nc = nc @ mm[i].T + tt[i]
        pc = (nc + 1.0) * (size / 2.0)
        nb = np.concatenate([pc.min(1), pc.max(1)], 1).clip(0, size)
        ok = ((nb[:, 2] - nb[:, 0]) >= 2) & ((nb[:, 3] - nb[:, 1]) >= 2)
        out_boxes.append(nb[ok])
        kept.append(ok)
    return x, out_boxes, kept


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency class weights, normalised to mean 1 over the classes present (0 for absent ones)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    present = counts > 0
    return w / w[present].mean() if present.any() else w


def balanced_order(labels: np.ndarray, n_classes: int, gen: Any) -> Any:
    """An epoch's sample order drawn with replacement so that every class is equally likely (seeded)."""
    import torch

    w = class_weights(labels, n_classes)[labels]
    return torch.multinomial(torch.as_tensor(w, dtype=torch.float64), len(labels), replacement=True, generator=gen)
