"""Geometry helpers and operations on the model's conventions (see :mod:`imagine.curate.model`).

Envelopes for every geometry kind, rotated-box and ellipse corners; single-geometry operations
(polygon/mask → box, RLE ↔ polygon with a pixel-edge contour tracer, rotated → axis-aligned,
line → box with a minimum side, padding, clipping), vectorised over ``(N, 4)`` arrays where it
matters; and the same operations on a whole :class:`~imagine.curate.model.Dataset`, returning a
new dataset and counting what changed in a :class:`~imagine.kernel.ConversionReport`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagine.kernel import ConversionReport

from .model import Dataset

Rings = Sequence[Sequence[float]]
Box = tuple[float, float, float, float]  # x, y, w, h

NAN_BOX: Box = (math.nan, math.nan, math.nan, math.nan)


def rbox_corners(cx: float, cy: float, w: float, h: float, angle: float) -> list[float]:
    """Corners ``[x1, y1, ..., x4, y4]`` of a box rotated by ``angle`` degrees clockwise on screen.

    Order: top-left, top-right, bottom-right, bottom-left of the unrotated box, each rotated about
    the centre (the order CVAT, DOTA and Ultralytics OBB use).
    """
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    out: list[float] = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def corners_to_rbox(pts: Sequence[float]) -> tuple[float, float, float, float, float]:
    """Inverse of :func:`rbox_corners` for four corners (a rectangle, possibly rotated).

    Width is the first edge (corner 1 → 2), height the second (2 → 3); the angle is that of the
    first edge, in degrees clockwise on screen, in (-180, 180].
    """
    if len(pts) != 8:
        raise ValueError("a rotated box needs exactly four corners")
    x1, y1, x2, y2, x3, y3, x4, y4 = pts
    cx, cy = (x1 + x2 + x3 + x4) / 4, (y1 + y2 + y3 + y4) / 4
    w = math.hypot(x2 - x1, y2 - y1)
    h = math.hypot(x3 - x2, y3 - y2)
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    return cx, cy, w, h, angle


def ellipse_envelope(cx: float, cy: float, rx: float, ry: float, angle: float) -> Box:
    """Axis-aligned envelope of an ellipse rotated by ``angle`` degrees."""
    a = math.radians(angle)
    hw = math.sqrt((rx * math.cos(a)) ** 2 + (ry * math.sin(a)) ** 2)
    hh = math.sqrt((rx * math.sin(a)) ** 2 + (ry * math.cos(a)) ** 2)
    return cx - hw, cy - hh, 2 * hw, 2 * hh


def points_envelope(rings: Rings) -> Box:
    """Envelope of the (x, y) pairs of every ring; NaN box when there are none."""
    xs: list[float] = []
    ys: list[float] = []
    for r in rings:
        xs.extend(r[0::2])
        ys.extend(r[1::2])
    if not xs:
        return NAN_BOX
    x0, y0 = min(xs), min(ys)
    return x0, y0, max(xs) - x0, max(ys) - y0


def keypoints_envelope(flat: Sequence[float]) -> Box:
    """Envelope of the labelled keypoints (v > 0) of a flat ``[x, y, v, ...]`` list."""
    pts = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 2, 3) if flat[i + 2] > 0]
    if not pts:
        return NAN_BOX
    xs, ys = zip(*pts, strict=True)
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def envelope(kind: str, geometry: Rings | None, *, rle: str | None = None, width: int | None = None,
             height: int | None = None) -> Box:
    """The axis-aligned envelope (x, y, w, h) of any geometry kind of the model."""
    if kind == "rbox":
        assert geometry is not None
        return points_envelope([rbox_corners(*geometry[0][:5])])
    if kind in ("polygon", "polyline", "point"):
        return points_envelope(geometry or [])
    if kind == "keypoints":
        return keypoints_envelope(geometry[0]) if geometry else NAN_BOX
    if kind == "circle":
        assert geometry is not None
        cx, cy, r = geometry[0][:3]
        return cx - r, cy - r, 2 * r, 2 * r
    if kind == "ellipse":
        assert geometry is not None
        return ellipse_envelope(*geometry[0][:5])
    if kind == "mask":
        if rle is None or geometry is None:
            return NAN_BOX
        from pycocotools import mask as mask_utils

        h, w = int(geometry[0][0]), int(geometry[0][1])
        bx = mask_utils.toBbox({"size": [h, w], "counts": rle.encode("ascii")})
        return float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])
    if kind == "label":
        if width and height:
            return 0.0, 0.0, float(width), float(height)
        return NAN_BOX
    raise ValueError(f"no envelope for geometry kind {kind!r}")


# ============================================================================================
# Single-geometry operations: masks, polygons, rotated boxes, lines, padding, clipping.



def rle_to_mask(rle: str, height: int, width: int) -> np.ndarray:
    """Decode a COCO compressed RLE string into a (height, width) uint8 mask."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")})


def mask_to_rle(mask: np.ndarray) -> str:
    """Encode a 2-D mask (any dtype, non-zero = inside) as a COCO compressed RLE string."""
    from pycocotools import mask as mask_utils

    enc = mask_utils.encode(np.asfortranarray(np.asarray(mask) != 0, dtype=np.uint8))
    return enc["counts"].decode("ascii")


def rle_to_counts(rle: str, height: int, width: int) -> list[int]:
    """Compressed RLE string → uncompressed COCO ``counts`` (run lengths, column-major, zeros first)."""
    m = rle_to_mask(rle, height, width).ravel(order="F")
    if m.size == 0:
        return []
    change = np.flatnonzero(np.diff(m)) + 1
    bounds = np.concatenate(([0], change, [m.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if m[0] else runs


def counts_to_rle(counts: Sequence[int], height: int, width: int) -> str:
    """Uncompressed COCO ``counts`` → compressed RLE string."""
    from pycocotools import mask as mask_utils

    enc = mask_utils.frPyObjects({"counts": list(counts), "size": [height, width]}, height, width)
    return enc["counts"].decode("ascii")


def mask_to_box(rle: str, height: int, width: int) -> Box:
    """Envelope of an RLE mask (x, y, w, h), NaN box when the mask is empty."""
    from pycocotools import mask as mask_utils

    bx = mask_utils.toBbox({"size": [height, width], "counts": rle.encode("ascii")})
    if bx[2] == 0 and bx[3] == 0:
        return NAN_BOX
    return float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])


def polygon_to_box(rings: Rings) -> Box:
    """Envelope of a (multi-part) polygon."""
    return points_envelope(rings)


def split_holes(rings: Rings) -> tuple[list[list[float]], list[list[float]]]:
    """Model polygon rings → (outer rings, hole rings); holes follow the first empty ring."""
    outers: list[list[float]] = []
    holes: list[list[float]] = []
    target = outers
    for r in rings:
        if len(r) == 0:
            target = holes
            continue
        target.append([float(v) for v in r])
    return outers, holes


def polygons_to_rle(rings: Rings, height: int, width: int) -> str:
    """Rasterise a model polygon (outer rings minus holes) with pycocotools → compressed RLE.

    Rings with fewer than three points cover no pixel and are skipped.
    """
    from pycocotools import mask as mask_utils

    outers, holes = split_holes(rings)

    def raster(rs: list[list[float]]) -> np.ndarray:
        rs = [r for r in rs if len(r) >= 6]
        if not rs:
            return np.zeros((height, width), np.uint8)
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(rs, height, width)))

    m = raster(outers)
    if holes:
        m = m & (1 - raster(holes))
    return mask_to_rle(m)


def trace_contours(mask: np.ndarray) -> list[list[float]]:
    """Trace the pixel-edge boundaries of a binary mask into closed rings (no OpenCV).

    Rings run along pixel corners (so pycocotools rasterises them back to exactly the same
    pixels); outer boundaries have a negative shoelace sum in image coordinates (y down), holes a
    positive one. Collinear vertices are removed. Diagonal-only contacts split rings (4-connected).
    """
    m = np.asarray(mask) != 0
    h, w = m.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = m
    inner = p[1:-1, 1:-1]
    W = w + 1
    edges: dict[int, list[int]] = {}

    def add(starts: np.ndarray, ends: np.ndarray) -> None:
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            edges.setdefault(s, []).append(e)

    r, c = np.nonzero(inner & ~p[:-2, 1:-1])       # top edge: (c+1, r) → (c, r)
    add(r * W + c + 1, r * W + c)
    r, c = np.nonzero(inner & ~p[2:, 1:-1])        # bottom edge: (c, r+1) → (c+1, r+1)
    add((r + 1) * W + c, (r + 1) * W + c + 1)
    r, c = np.nonzero(inner & ~p[1:-1, :-2])       # left edge: (c, r) → (c, r+1)
    add(r * W + c, (r + 1) * W + c)
    r, c = np.nonzero(inner & ~p[1:-1, 2:])        # right edge: (c+1, r+1) → (c+1, r)
    add((r + 1) * W + c + 1, r * W + c + 1)

    rings: list[list[float]] = []
    while edges:
        start = next(iter(edges))
        pts = [start]
        cur = start
        prev_dir: tuple[int, int] | None = None
        while True:
            outs = edges[cur]
            if len(outs) == 1:
                nxt = outs.pop()
            else:  # saddle: turn so that the foreground pixel on our left is hugged
                cx, cy = cur % W, cur // W
                best = 0
                for k, o in enumerate(outs):
                    d = (o % W - cx, o // W - cy)
                    if prev_dir is not None and (prev_dir[0] * d[1] - prev_dir[1] * d[0]) < 0:
                        best = k
                        break
                nxt = outs.pop(best)
            if not outs:
                del edges[cur]
            prev_dir = (nxt % W - cur % W, nxt // W - cur // W)
            cur = nxt
            if cur == start:
                break
            pts.append(cur)
        xs = np.array([q % W for q in pts], dtype=np.float64)
        ys = np.array([q // W for q in pts], dtype=np.float64)
        # drop collinear vertices
        dx1, dy1 = xs - np.roll(xs, 1), ys - np.roll(ys, 1)
        dx2, dy2 = np.roll(xs, -1) - xs, np.roll(ys, -1) - ys
        keep = (dx1 * dy2 - dy1 * dx2) != 0
        xs, ys = xs[keep], ys[keep]
        ring = np.empty(2 * len(xs))
        ring[0::2], ring[1::2] = xs, ys
        rings.append(ring.tolist())
    return rings


def ring_area(ring: Sequence[float]) -> float:
    """Signed shoelace area of a flat ring (negative for traced outer rings, y down)."""
    x = np.asarray(ring[0::2], dtype=np.float64)
    y = np.asarray(ring[1::2], dtype=np.float64)
    return float(0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """A binary mask → model polygon rings: outer rings, then (if any) an empty ring and the holes."""
    rings = trace_contours(mask)
    outers = [r for r in rings if ring_area(r) < 0]
    holes = [r for r in rings if ring_area(r) > 0]
    return outers + ([[], *holes] if holes else [])


def rle_to_polygons(rle: str, height: int, width: int) -> list[list[float]]:
    """COCO compressed RLE → model polygon rings (exact pixel boundaries)."""
    return mask_to_polygons(rle_to_mask(rle, height, width))


def rboxes_to_boxes(rboxes: np.ndarray) -> np.ndarray:
    """Rotated boxes ``(N, 5)`` (cx, cy, w, h, angle°) → axis-aligned envelopes ``(N, 4)`` (x, y, w, h)."""
    rb = np.asarray(rboxes, dtype=np.float64).reshape(-1, 5)
    a = np.radians(rb[:, 4])
    hw = (np.abs(rb[:, 2] * np.cos(a)) + np.abs(rb[:, 3] * np.sin(a))) / 2
    hh = (np.abs(rb[:, 2] * np.sin(a)) + np.abs(rb[:, 3] * np.cos(a))) / 2
    return np.stack([rb[:, 0] - hw, rb[:, 1] - hh, 2 * hw, 2 * hh], axis=1)


def rbox_to_box(cx: float, cy: float, w: float, h: float, angle: float) -> Box:
    """Axis-aligned envelope of one rotated box."""
    x, y, bw, bh = rboxes_to_boxes(np.array([[cx, cy, w, h, angle]]))[0].tolist()
    return x, y, bw, bh


def line_to_box(coords: Sequence[float], min_side: float) -> Box:
    """A line (flat ``[x1, y1, x2, y2, ...]``) → its envelope, each side widened to at least
    ``min_side`` about the centre (a line drawn along an animal gives a flat box otherwise)."""
    x, y, w, h = points_envelope([coords])
    if math.isnan(x):
        return NAN_BOX
    if w < min_side:
        x, w = x - (min_side - w) / 2, float(min_side)
    if h < min_side:
        y, h = y - (min_side - h) / 2, float(min_side)
    return x, y, w, h


def pad_boxes(boxes: np.ndarray, pixels: float | np.ndarray) -> np.ndarray:
    """Grow boxes ``(N, 4)`` (x, y, w, h) by ``pixels`` on every side (a scalar or one per box)."""
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    p = np.broadcast_to(np.asarray(pixels, dtype=np.float64), (len(b),))
    b[:, 0] -= p
    b[:, 1] -= p
    b[:, 2] += 2 * p
    b[:, 3] += 2 * p
    return b


def clip_boxes(boxes: np.ndarray, width: float | np.ndarray, height: float | np.ndarray) -> np.ndarray:
    """Clip boxes ``(N, 4)`` to ``[0, width] × [0, height]`` (scalars or one per box); a box wholly
    outside becomes zero-sized at the border."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wd = np.broadcast_to(np.asarray(width, dtype=np.float64), (len(b),))
    ht = np.broadcast_to(np.asarray(height, dtype=np.float64), (len(b),))
    x0 = np.clip(b[:, 0], 0, wd)
    y0 = np.clip(b[:, 1], 0, ht)
    x1 = np.clip(b[:, 0] + b[:, 2], 0, wd)
    y1 = np.clip(b[:, 1] + b[:, 3], 0, ht)
    return np.stack([x0, y0, np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)], axis=1)


# ============================================================================================
# Whole-dataset operations: each returns a new Dataset and records what changed in a report.

_BOX_COLS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


def _boxes(ds: Dataset) -> np.ndarray:
    a = ds.annotations
    if not a.num_rows:
        return np.zeros((0, 4))
    return np.stack([a.column(c).to_numpy() for c in _BOX_COLS], axis=1)


def _set(table: pa.Table, name: str, values: object) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def _with_boxes(ds: Dataset, boxes: np.ndarray, table: pa.Table | None = None) -> pa.Table:
    t = table if table is not None else ds.annotations
    for k, c in enumerate(_BOX_COLS):
        t = _set(t, c, boxes[:, k])
    return t


def _image_sizes(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Width and height of each annotation's image (NaN when unknown)."""
    idx = ds.image_index()
    rows = np.array([idx.get(int(i), -1) for i in ds.annotations.column("image_id").to_numpy()], dtype=np.int64)
    w = ds.images.column("width").to_numpy(zero_copy_only=False).astype(np.float64)
    h = ds.images.column("height").to_numpy(zero_copy_only=False).astype(np.float64)
    w = np.append(w, np.nan)
    h = np.append(h, np.nan)
    return w[rows], h[rows]


def to_boxes(ds: Dataset, kinds: Sequence[str] | None = None, *, report: ConversionReport | None = None
             ) -> Dataset:
    """Turn annotations of ``kinds`` (default: every kind but box and label) into plain boxes
    (their envelope); the geometry and mask are dropped and counted as ``<kind>-to-box``."""
    report = report if report is not None else ConversionReport()
    wanted = set(kinds) if kinds is not None else {"rbox", "polygon", "mask", "keypoints", "polyline", "point",
                                                   "circle", "ellipse"}
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    rows = [i for i, k in enumerate(kind) if k in wanted]
    if not rows:
        return ds
    boxes = _boxes(ds)
    geom = a.column("geometry").to_pylist()
    rle = a.column("rle").to_pylist()
    for i in rows:
        if np.isnan(boxes[i]).any():
            boxes[i] = envelope(kind[i], geom[i], rle=rle[i])
        report.add(f"{kind[i]}-to-box", f"{kind[i]} replaced by its bounding box", a.column("id")[i].as_py())
        kind[i], geom[i], rle[i] = "box", None, None
    t = _with_boxes(ds, boxes)
    t = _set(_set(_set(t, "kind", kind), "geometry", geom), "rle", rle)
    return ds.with_tables(annotations=t)


def rotated_to_boxes(ds: Dataset, *, report: ConversionReport | None = None) -> Dataset:
    """Rotated boxes → axis-aligned boxes (their envelope)."""
    return to_boxes(ds, ("rbox",), report=report)


def lines_to_boxes(ds: Dataset, min_side: float = 1.0, *, report: ConversionReport | None = None) -> Dataset:
    """Polylines → boxes around them, each side at least ``min_side`` pixels (guards against the
    flat boxes a line drawn along an animal gives)."""
    report = report if report is not None else ConversionReport()
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    rows = [i for i, k in enumerate(kind) if k == "polyline"]
    if not rows:
        return ds
    boxes = _boxes(ds)
    geom = a.column("geometry").to_pylist()
    ids = a.column("id").to_pylist()
    for i in rows:
        flat = [v for ring in (geom[i] or []) for v in ring]
        x, y, w, h = line_to_box(flat, min_side)
        env = points_envelope(geom[i] or [])
        if env[2] < min_side or env[3] < min_side:
            report.add("line-box-widened", f"box around a line widened to the minimum side {min_side}", ids[i])
        report.add("polyline-to-box", "polyline replaced by a box around it", ids[i])
        boxes[i] = (x, y, w, h)
        kind[i], geom[i] = "box", None
    t = _set(_set(_with_boxes(ds, boxes), "kind", kind), "geometry", geom)
    return ds.with_tables(annotations=t)


def pad(ds: Dataset, pixels: float = 0.0, *, per_class: dict[int | str, float] | None = None,
        clip: bool = True, report: ConversionReport | None = None) -> Dataset:
    """Grow every box by ``pixels`` on each side; ``per_class`` (category id or name → pixels)
    overrides it for some classes. Only ``box`` annotations change (other kinds are counted as
    ``pad-skipped``); with ``clip`` the result stays inside the image when its size is known."""
    report = report if report is not None else ConversionReport()
    a = ds.annotations
    if not a.num_rows:
        return ds
    cat = a.column("category_id").to_numpy(zero_copy_only=False)
    amount = np.full(a.num_rows, float(pixels))
    names = {v: k for k, v in ds.category_names().items()}
    for key, px in (per_class or {}).items():
        cid = names.get(key, key) if isinstance(key, str) else key
        amount[cat == cid] = float(px)
    is_box = np.asarray(pc.equal(a.column("kind"), "box").to_numpy(zero_copy_only=False), dtype=bool)
    report.add("pad-skipped", "only boxes are padded; other shapes left as they are",
               count=int((~is_box & (amount != 0)).sum()))
    amount = np.where(is_box, amount, 0.0)
    boxes = pad_boxes(_boxes(ds), amount)
    changed = int((amount != 0).sum())
    report.add("box-padded", "boxes grown by the padding", count=changed)
    if clip:
        w, h = _image_sizes(ds)
        known = ~np.isnan(w) & ~np.isnan(h) & is_box
        clipped = clip_boxes(boxes[known], w[known], h[known])
        boxes[known] = clipped
    out = ds.with_tables(annotations=_with_boxes(ds, boxes))
    return out


def clip(ds: Dataset, *, drop_empty: bool = False, report: ConversionReport | None = None) -> Dataset:
    """Clip every envelope to its image (and clamp polygon/line/point coordinates); boxes left
    with no area are counted and, with ``drop_empty``, removed."""
    report = report if report is not None else ConversionReport()
    a = ds.annotations
    if not a.num_rows:
        return ds
    w, h = _image_sizes(ds)
    known = ~np.isnan(w) & ~np.isnan(h)
    report.add("clip-size-unknown", "image size unknown; annotation not clipped", count=int((~known).sum()))
    boxes = _boxes(ds)
    new = boxes.copy()
    new[known] = clip_boxes(boxes[known], w[known], h[known])
    differs = known & ~np.all(np.isclose(new, boxes, rtol=0, atol=0) | (np.isnan(new) & np.isnan(boxes)), axis=1)
    ids = a.column("id").to_pylist()
    report.add_many("box-clipped", "envelope clipped to the image", (ids[i] for i in np.flatnonzero(differs)),
                    int(differs.sum()))
    kind = a.column("kind").to_pylist()
    geom = a.column("geometry").to_pylist()
    for i in np.flatnonzero(differs):
        if kind[i] in ("polygon", "polyline", "point") and geom[i]:
            geom[i] = [[float(min(max(v, 0.0), w[i] if k % 2 == 0 else h[i])) for k, v in enumerate(r)]
                       for r in geom[i]]
        elif kind[i] in ("rbox", "circle", "ellipse"):
            report.add(f"{kind[i]}-to-box", f"{kind[i]} crossing the border replaced by its clipped box", ids[i])
            kind[i], geom[i] = "box", None
    t = _set(_set(_with_boxes(ds, new), "kind", kind), "geometry", geom)
    empty = known & ((new[:, 2] <= 0) | (new[:, 3] <= 0))
    report.add_many("box-empty-after-clip", "no area left inside the image" + (" (removed)" if drop_empty else ""),
                    (ids[i] for i in np.flatnonzero(empty)), int(empty.sum()))
    out = ds.with_tables(annotations=t)
    if drop_empty and empty.any():
        out = out.filter_annotations(~empty)
    return out


def masks_to_polygons(ds: Dataset, *, report: ConversionReport | None = None) -> Dataset:
    """RLE masks → polygons traced along pixel edges (rasterising them gives the same pixels)."""
    report = report if report is not None else ConversionReport()
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    rows = [i for i, k in enumerate(kind) if k == "mask"]
    if not rows:
        return ds
    geom = a.column("geometry").to_pylist()
    rle = a.column("rle").to_pylist()
    for i in rows:
        if rle[i] is None or not geom[i]:
            continue
        hh, ww = int(geom[i][0][0]), int(geom[i][0][1])
        geom[i] = rle_to_polygons(rle[i], hh, ww)
        kind[i], rle[i] = "polygon", None
        report.add("mask-to-polygon", "mask traced into polygons", count=1)
    t = _set(_set(_set(a, "kind", kind), "geometry", geom), "rle", rle)
    return ds.with_tables(annotations=t)


def polygons_to_masks(ds: Dataset, *, report: ConversionReport | None = None) -> Dataset:
    """Polygons → RLE masks at their image's size (images of unknown size are left and counted)."""
    report = report if report is not None else ConversionReport()
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    rows = [i for i, k in enumerate(kind) if k == "polygon"]
    if not rows:
        return ds
    w, h = _image_sizes(ds)
    geom = a.column("geometry").to_pylist()
    rle = a.column("rle").to_pylist()
    for i in rows:
        if np.isnan(w[i]) or np.isnan(h[i]):
            report.add("mask-size-unknown", "image size unknown; polygon not rasterised", count=1)
            continue
        rle[i] = polygons_to_rle(geom[i] or [], int(h[i]), int(w[i]))
        geom[i] = [[float(h[i]), float(w[i])]]
        kind[i] = "mask"
        report.add("polygon-to-mask", "polygon rasterised into a mask", count=1)
    t = _set(_set(_set(a, "kind", kind), "geometry", geom), "rle", rle)
    return ds.with_tables(annotations=t)
