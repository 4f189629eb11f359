"""VIAME CSV (``viame``), plus the detection layer VIAME CSV and DIVE JSON share.

A VIAME CSV row is one detection (or one state of a track): 9 fixed columns ``track_id,
image_or_timestamp, frame_index, TL_x, TL_y, BR_x, BR_y, confidence, length``, then
``class,score`` pairs, then tokens ``(kp) name x y``, ``(atr) name value``, ``(trk-atr) name
value``, ``(poly) x y ...``, ``(hole) x y ...``, ``(mask) path`` and ``(note) text``. Lines whose
first cell starts with ``#`` are comments; DIVE's ``# metadata,fps: 30,...`` line is kept in
``info``.

How a row lands in the model (the DIVE reader produces the same shape, see :mod:`.dive`):

* one image row per distinct ``(image_or_timestamp, frame_index)`` in order of first appearance;
  ``images.frame`` is the frame index. A second column that is empty or a video timestamp
  (``HH:MM:SS.ffffff``) makes the image a video frame: ``video`` is the ``video=`` option, else
  the ``video:`` entry of the metadata line (the writer puts it there), else the CSV's stem;
  ``file_name`` is ``frameNNNNNN`` and the timestamp text is kept in the image attributes
  (``timestamp``) so that it is written back verbatim;
* one annotation per row, in file order, ``track_id`` = column 1, ``score`` = the confidence
  column; categories are every class name of the pairs in order of first appearance (ids 1..K);
  ``category_id`` is the highest-scoring class (first on ties). The pairs are kept, in file order,
  in ``attributes.confidence_pairs`` unless they say no more than ``[[category, score]]``;
* geometry: the CSV box is kept exactly as ``bbox_x = TL_x, bbox_w = BR_x - TL_x`` (and the writer
  finds a ``BR_x`` that gives the same width back). A row with ``(poly)`` becomes a ``polygon``
  annotation **whose envelope columns are the CSV box** (as COCO keeps ``bbox`` beside
  ``segmentation``), rings ``[poly1, poly2, ..., [], hole, ...]``; the writer puts each hole after
  the polygon that contains it. A row with ``(kp)`` points (and a class) becomes a ``keypoints``
  annotation, the point names living on the category (``head``, ``tail`` ...); keypoints on a
  row that also has a polygon, or no class, stay in ``attributes.keypoints`` ({name: [x, y]}).
  ``(atr) rotation r`` (DIVE writes rotation this way; radians) makes a ``rbox`` (see
  :mod:`.dive` for the angle convention);
* ``(atr)`` values are typed as DIVE does (``true``/``false`` → bool, numbers → float) but only
  when the number prints back to the same text, so ``007`` stays a string; they go flat into
  ``attributes``. ``(trk-atr)`` → ``attributes.track_attributes``, ``(note)`` →
  ``attributes.notes`` (list), ``(mask)`` → ``attributes.mask``, ``length`` (unless -1) →
  ``attributes.length``, unknown ``(xyz)`` tokens → ``attributes.viame_tokens`` (written back
  verbatim).

Images without detections: VIAME pipelines take an image list (``input_list.txt``, one name per
line, frame = line index); the writer puts one beside the CSV when it writes a folder and the
reader reads it back, so such images survive (a lone ``.csv`` output reports them dropped).
Read options: ``video=`` (name of the video for timestamp rows), ``sizes=False`` (do not read
image headers for width/height), ``image_list=False`` (ignore ``input_list.txt``).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagine.kernel import ConversionReport, Finding, InputError, atomic_write, image_size, progress, safe_join

from ..geometry import envelope
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

__all__ = ["Detection", "ImageRef", "build_dataset", "dataset_detections", "fmt_num", "deduce_value",
           "read", "write", "detect", "check"]

FILE_NAME = "annotations.csv"
# VIAME pipelines take the images of a sequence as a list file, one name per line, frame = line index;
# the writer puts one beside the CSV (folder output) so that images without detections are kept.
IMAGE_LIST = "input_list.txt"
COLUMNS = ("track_id", "image_or_timestamp", "frame_index", "TL_x", "TL_y", "BR_x", "BR_y", "confidence", "length")
HEADER = ("# 1: Detection or Track-id,  2: Video or Image Identifier,  3: Unique Frame Identifier,  "
          "4-7: Img-bbox(TL_x,TL_y,BR_x,BR_y),  8: Detection or Length Confidence,  "
          "9: Target Length (0 or -1 if invalid),  10-11+: Repeated Species, Confidence Pairs or Attributes")
TIMESTAMP_RE = re.compile(r"^\d+:\d{2}:\d{2}(\.\d+)?$")
TOKEN_RE = re.compile(r"^\(([a-z-]+)\)\s?(.*)$", re.S)
ATTR_RE = re.compile(r"^(\S+)\s(.+)$", re.S)
UNSAFE_NAME_RE = re.compile(r"(^[/\\])|(^.:)|(\.\.)|\x00|\\")
# Attribute keys the VIAME/DIVE layer owns; every other key of ``attributes`` is a detection attribute.
RESERVED = ("confidence_pairs", "length", "notes", "track_attributes", "keypoints", "mask", "viame_tokens",
            "track_meta", "keyframe", "interpolate")


# ------------------------------------------------------------------------------------------ values


def fmt_num(x: float) -> str:
    """Shortest text that reads back to exactly ``x`` (integral values without ``.0``)."""
    x = float(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e15 and not (x == 0 and math.copysign(1, x) < 0):
        return str(int(x))
    return repr(float(x))


def deduce_value(text: str) -> bool | float | str:
    """Type an attribute value as DIVE does, keeping text whose number would print differently."""
    if text == "true":
        return True
    if text == "false":
        return False
    try:
        v = float(text)
    except ValueError:
        return text
    if math.isfinite(v) and fmt_num(v) == text:
        return v
    return text


def value_text(v: Any) -> str | None:
    """Attribute value → VIAME token text; None when it cannot be written so as to read back equal."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return fmt_num(float(v)) if math.isfinite(v) else None
    if isinstance(v, str):
        return v if v and v == v.strip() and "\n" not in v else None
    return None


def far_corner(x1: float, w: float) -> tuple[float, bool]:
    """``x2`` such that ``x2 - x1 == w`` exactly (so a CSV box reads back to the same width).

    Returns ``(x2, exact)``; tries ``x1 + w`` then a few neighbouring floats.
    """
    c = x1 + w
    if c - x1 == w:
        return c, True
    up = down = c
    for _ in range(4):
        up, down = math.nextafter(up, math.inf), math.nextafter(down, -math.inf)
        if up - x1 == w:
            return up, True
        if down - x1 == w:
            return down, True
    return c, False


def radians_exact(deg: float) -> float:
    """A float ``r`` with ``math.degrees(r) == deg`` when one is near, so the angle reads back identical."""
    r = math.radians(deg)
    if math.degrees(r) == deg:
        return r
    up = down = r
    for _ in range(8):
        up, down = math.nextafter(up, math.inf), math.nextafter(down, -math.inf)
        if math.degrees(up) == deg:
            return up
        if math.degrees(down) == deg:
            return down
    return r


# ------------------------------------------------------------------------------------------ shared layer


@dataclass
class ImageRef:
    """One image (or video frame) a detection refers to."""

    file_name: str
    frame: int | None = None
    video: str | None = None
    timestamp: str | None = None
    width: int | None = None
    height: int | None = None
    split: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Detection:
    """One VIAME row / DIVE feature, the common shape both formats read into and write from."""

    image: int  # index into the image list
    track_id: int | None
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (the unrotated box when rotated)
    confidence: float | None = None
    pairs: list[tuple[str, float]] = field(default_factory=list)
    keypoints: list[tuple[str, float, float]] = field(default_factory=list)
    polygons: list[list[list[float]]] = field(default_factory=list)  # [[outer, hole, ...], ...]
    lines: list[list[float]] = field(default_factory=list)
    rotation: float | None = None  # radians, DIVE's convention
    attributes: dict[str, Any] = field(default_factory=dict)
    track_attributes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    length: float | None = None
    mask: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other reserved keys kept verbatim
    group_id: int | None = None


def top_class(pairs: Sequence[tuple[str, float]]) -> str | None:
    """The highest-scoring class, the first one on ties."""
    best: tuple[str, float] | None = None
    for p in pairs:
        if best is None or p[1] > best[1]:
            best = p
    return best[0] if best else None


def build_dataset(images: Sequence[ImageRef], dets: Sequence[Detection], info: dict[str, Any],
                  report: ConversionReport) -> Dataset:
    """Turn images and detections (read from VIAME CSV or DIVE JSON) into a Dataset."""
    cat_ids: dict[str, int] = {}
    kp_names: dict[str, list[str]] = {}
    for d in dets:
        for name, _ in d.pairs:
            cat_ids.setdefault(name, len(cat_ids) + 1)
        top = top_class(d.pairs)
        if top is not None and d.keypoints and not d.polygons and d.rotation is None:
            names = kp_names.setdefault(top, [])
            for n, _, _ in d.keypoints:
                if n not in names:
                    names.append(n)

    cols: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                  "bbox_w", "bbox_h", "geometry", "score", "track_id",
                                                  "group_id", "attributes")}
    for i, d in enumerate(dets):
        x1, y1, x2, y2 = d.box
        top = top_class(d.pairs)
        attrs: dict[str, Any] = {}
        if d.pairs and not (len(d.pairs) == 1 and d.pairs[0][1] == d.confidence):
            attrs["confidence_pairs"] = [[c, s] for c, s in d.pairs]
        for k, v in d.attributes.items():
            if k in RESERVED:
                report.add("attributes-dropped", "detection attribute named like a reserved key; not kept",
                           f"{k}")
                continue
            attrs[k] = v
        if d.length is not None:
            attrs["length"] = d.length
        if d.notes:
            attrs["notes"] = list(d.notes)
        if d.track_attributes:
            attrs["track_attributes"] = dict(d.track_attributes)
        if d.mask is not None:
            attrs["mask"] = d.mask
        attrs.update(d.extra)
        geometry: list[list[float]] | None = None
        bx, by, bw, bh = x1, y1, x2 - x1, y2 - y1
        if d.rotation is not None:
            kind = "rbox"
            geometry = [[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, math.degrees(d.rotation)]]
            bx, by, bw, bh = envelope("rbox", geometry)
        elif d.polygons:
            kind = "polygon"
            outers = [p[0] for p in d.polygons]
            holes = [h for p in d.polygons for h in p[1:]]
            geometry = outers + ([[], *holes] if holes else [])
        elif d.lines:
            kind = "polyline"
            geometry = [list(line) for line in d.lines]
        elif d.keypoints and top is not None:
            kind = "keypoints"
            names = kp_names[top]
            flat = [0.0] * (3 * len(names))
            for n, x, y in d.keypoints:
                j = names.index(n)
                flat[3 * j: 3 * j + 3] = [x, y, 2.0]
            geometry = [flat]
        else:
            kind = "box"
        if d.keypoints and kind != "keypoints":
            attrs["keypoints"] = {n: [x, y] for n, x, y in d.keypoints}
        if d.rotation is not None and (d.polygons or d.lines):
            report.add("geometry-dropped", "a rotated box's extra polygon/line geometry was not kept", i + 1)
        elif d.polygons and d.lines:
            report.add("geometry-dropped", "a polygon's extra line geometry was not kept", i + 1)
        cols["id"].append(i + 1)
        cols["image_id"].append(d.image + 1)
        cols["category_id"].append(cat_ids[top] if top is not None else None)
        cols["kind"].append(kind)
        cols["bbox_x"].append(bx)
        cols["bbox_y"].append(by)
        cols["bbox_w"].append(bw)
        cols["bbox_h"].append(bh)
        cols["geometry"].append(geometry)
        cols["score"].append(d.confidence)
        cols["track_id"].append(d.track_id)
        cols["group_id"].append(d.group_id)
        cols["attributes"].append(dumps_attrs(attrs))

    img_cols: dict[str, list[Any]] = {"id": [], "file_name": [], "width": [], "height": [], "split": [],
                                      "video": [], "frame": [], "attributes": []}
    for j, im in enumerate(images):
        img_cols["id"].append(j + 1)
        img_cols["file_name"].append(im.file_name)
        img_cols["width"].append(im.width)
        img_cols["height"].append(im.height)
        img_cols["split"].append(im.split)
        img_cols["video"].append(im.video)
        img_cols["frame"].append(im.frame)
        a = dict(im.extra)
        if im.timestamp is not None:
            a["timestamp"] = im.timestamp
        img_cols["attributes"].append(dumps_attrs(a))
    names = list(cat_ids)
    cats = {"id": [cat_ids[n] for n in names], "name": names,
            "keypoints": [kp_names.get(n) for n in names]}
    return Dataset.from_columns(img_cols, cols, cats, info)


def resolve_sizes(images: Sequence[ImageRef], root: Path, report: ConversionReport) -> None:
    """Fill width/height from image headers for the images present under ``root`` (header reads only)."""
    for im in images:
        if im.timestamp is not None or im.width is not None:
            continue
        p = root / im.file_name
        if p.is_file():
            try:
                im.width, im.height = image_size(p)
            except InputError:
                report.add("image-unreadable", "image file unreadable; its size is unknown", im.file_name)


# ------------------------------------------------------------------------------------------ writer side


_NUM = (int, float)
_SEQ = (list, tuple)


def _is_number(v: Any) -> bool:
    return v.__class__ is not bool and isinstance(v, _NUM) and math.isfinite(v)


def _finite_box(x: float | None, y: float | None, w: float | None, h: float | None) -> bool:
    if x is None or y is None or w is None or h is None:
        return False
    return math.isfinite(x) and math.isfinite(y) and math.isfinite(w) and math.isfinite(h)


def _point_in_ring(x: float, y: float, ring: Sequence[float]) -> bool:
    inside = False
    n = len(ring) // 2
    for i in range(n):
        x1, y1 = ring[2 * i], ring[2 * i + 1]
        x2, y2 = ring[2 * ((i + 1) % n)], ring[2 * ((i + 1) % n) + 1]
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def group_rings(rings: Sequence[Sequence[float]]) -> list[list[list[float]]]:
    """Model polygon rings ``[outer..., [], hole...]`` → ``[[outer, its holes...], ...]``.

    Each hole goes after the first outer ring that contains its first vertex (the last outer when
    none does), which is how VIAME's ``(poly)``/``(hole)`` tokens and GeoJSON polygons pair them.
    """
    outers: list[list[list[float]]] = []
    holes: list[list[float]] = []
    in_holes = False
    for r in rings:
        if len(r) == 0:
            in_holes = True
        elif in_holes:
            holes.append(list(r))
        else:
            outers.append([list(r)])
    for h in holes:
        target = outers[-1] if outers else None
        for o in outers:
            if len(h) >= 2 and _point_in_ring(h[0], h[1], o[0]):
                target = o
                break
        if target is not None:
            target.append(h)
    return outers


def dataset_detections(ds: Dataset, report: ConversionReport, fmt: str) -> tuple[list[ImageRef], list[Detection]]:
    """The dataset as images and detections, reporting what VIAME CSV / DIVE JSON cannot hold.

    ``fmt`` is ``viame`` or ``dive``; the two differ only in polylines (DIVE holds them as GeoJSON
    LineStrings) and group ids (DIVE groups).
    """
    im = ds.images
    n_img = im.num_rows
    frames = im.column("frame").to_pylist()
    files = im.column("file_name").to_pylist()
    videos = im.column("video").to_pylist()
    img_attrs = im.column("attributes").to_pylist()
    if any(f is None for f in frames):
        report.add("frame-assigned", "images without a frame number were numbered by their order",
                   count=sum(f is None for f in frames))
    images: list[ImageRef] = []
    for r in range(n_img):
        a = loads_attrs(img_attrs[r])
        ts = a.pop("timestamp", None)
        images.append(ImageRef(files[r], frames[r] if frames[r] is not None else r, videos[r],
                               ts if isinstance(ts, str) else None))
    for col, code, msg in (("split", "split-dropped", "image splits"),
                           ("width", "image-size-dropped", "image width/height (read back from the image files)"),
                           ("checksum", "image-metadata-dropped", "image checksums"),
                           ("site", "image-metadata-dropped", "image site/date/position metadata"),
                           ("datetime", "image-metadata-dropped", "image site/date/position metadata"),
                           ("latitude", "image-metadata-dropped", "image site/date/position metadata"),
                           ("depth", "image-metadata-dropped", "image site/date/position metadata"),
                           ("instrument", "image-metadata-dropped", "image site/date/position metadata"),
                           ("annotator", "image-metadata-dropped", "image site/date/position metadata"),
                           ("source_id", "image-ids-dropped", "original image ids")):
        c = im.column(col)
        n = len(c) - c.null_count
        if n:
            report.add(code, f"{fmt} has no place for {msg}", count=n)
    extra_img = sum(1 for a in img_attrs if set(loads_attrs(a)) - {"timestamp"})
    if extra_img:
        report.add("image-attributes-dropped", f"{fmt} has no place for image attributes", count=extra_img)

    names = ds.category_names()
    cat_kps = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("keypoints").to_pylist(),
                       strict=True))
    row_of = ds.image_index()
    a = ds.annotations
    ids = a.column("id").to_pylist()
    img_ids = a.column("image_id").to_pylist()
    cat_col = a.column("category_id").to_pylist()
    kinds = a.column("kind").to_pylist()
    bx, by, bw, bh = (a.column(c).to_pylist() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    geoms = a.column("geometry").to_pylist()
    scores = a.column("score").to_pylist()
    tracks = a.column("track_id").to_pylist()
    groups = a.column("group_id").to_pylist()
    attrs_col = a.column("attributes").to_pylist()
    crowd = a.column("iscrowd").to_pylist()
    annot = a.column("annotator").to_pylist()
    src_ids = a.column("source_id").to_pylist()

    known = [t for t in tracks if t is not None]
    fresh: Iterator[int]
    if all(t is None for t in tracks):
        fresh = iter([int(i) for i in ids])
    else:
        start = max(known) + 1
        fresh = iter(range(start, start + len(tracks)))
    dets: list[Detection] = []
    for i in progress(range(a.num_rows), total=a.num_rows, desc=f"{fmt} annotations", unit="ann"):
        aid = ids[i]
        if img_ids[i] not in row_of:
            report.add("annotation-dropped", "annotation of an unknown image; not written", aid)
            continue
        img = row_of[img_ids[i]]
        kind = kinds[i]
        attrs = loads_attrs(attrs_col[i])
        if crowd[i]:
            report.add("crowd-dropped", f"{fmt} has no crowd flag", aid)
        if annot[i] is not None:
            report.add("annotator-dropped", f"{fmt} has no place for the annotator", aid)
        if src_ids[i] is not None:
            report.add("annotation-ids-dropped", f"{fmt} has no place for original annotation ids", aid)
        if groups[i] is not None and fmt != "dive":
            report.add("group-dropped", f"{fmt} has no annotation groups", aid)
        x, y, w, h = bx[i], by[i], bw[i], bh[i]
        geom = geoms[i]
        det = Detection(image=img, track_id=None, box=(0.0, 0.0, 0.0, 0.0))
        if kind == "rbox" and geom:
            cx, cy, rw, rh, ang = geom[0][:5]
            det.box = (cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2)
            det.rotation = radians_exact(ang)
        else:
            if kind == "label":
                if not _finite_box(x, y, w, h):
                    report.add("label-dropped", f"whole-image label of an image of unknown size; {fmt} needs a box",
                               aid)
                    continue
                report.add("label-as-box", "whole-image label written as a box over the whole image", aid)
            elif not _finite_box(x, y, w, h):
                report.add("annotation-dropped", "annotation without a finite box; not written", aid)
                continue
            x2, ok_x = far_corner(x, w)
            y2, ok_y = far_corner(y, h)
            if not (ok_x and ok_y):
                report.add("box-rounded", "box width/height cannot be written as corners exactly (1 ulp)", aid)
            det.box = (x, y, x2, y2)
            if kind == "polygon" and geom:
                det.polygons = group_rings(geom)
                if not det.polygons or any(len(r) < 2 or len(r) % 2 for p in det.polygons for r in p):
                    report.add("polygon-dropped", "polygon without an outer ring or with an odd number of "
                               "coordinates; written as its box", aid)
                    det.polygons = []
            elif kind == "keypoints" and geom:
                kn = cat_kps.get(cat_col[i]) or []
                flat = geom[0]
                for j in range(len(flat) // 3):
                    v = flat[3 * j + 2]
                    if v <= 0:
                        continue
                    if v == 1:
                        report.add("keypoint-visibility-dropped", f"{fmt} keypoints have no visibility flag", aid)
                    det.keypoints.append((kn[j] if j < len(kn) else f"kp{j}", flat[3 * j], flat[3 * j + 1]))
            elif kind == "polyline" and geom and fmt == "dive":
                det.lines = [list(r) for r in geom if len(r) >= 4]
            elif kind not in ("box", "label"):
                report.add(f"{kind}-dropped", f"{fmt} cannot hold a {kind}; written as its bounding box", aid)
        # class pairs
        cname = names.get(cat_col[i]) if cat_col[i] is not None else None
        pairs_raw = attrs.pop("confidence_pairs", None)
        pairs: list[tuple[str, float]] = []
        if isinstance(pairs_raw, list) and all(isinstance(p, _SEQ) and len(p) == 2 and isinstance(p[0], str)
                                               and _is_number(p[1]) for p in pairs_raw):
            pairs = [(str(p[0]), float(p[1])) for p in pairs_raw]
            if top_class(pairs) != cname:
                report.add("confidence-pairs-dropped", "class/score pairs disagree with the category; replaced", aid)
                pairs = []
        elif pairs_raw is not None:
            report.add("attributes-dropped", "attribute named like a VIAME/DIVE field but not of its shape", aid)
        score = scores[i]
        if score is not None and not math.isfinite(score):
            score = None
        if not pairs and cname is not None:
            pairs = [(cname, score if score is not None else 1.0)]
        if score is None:
            report.add("score-defaulted", f"annotation without a score written with confidence 1 ({fmt}'s "
                                          "ground-truth convention)", aid)
            score = 1.0
        det.confidence = score
        det.pairs = pairs
        # reserved attributes
        shape_ok = True
        length = attrs.pop("length", None)
        if _is_number(length):
            det.length = float(length)
        elif length is not None:
            shape_ok = False
        notes = attrs.pop("notes", None)
        if isinstance(notes, list) and all(isinstance(n, str) for n in notes):
            det.notes = list(notes)
        elif isinstance(notes, str):
            det.notes = [notes]
        elif notes is not None:
            shape_ok = False
        ta = attrs.pop("track_attributes", None)
        if isinstance(ta, dict):
            det.track_attributes = ta
        elif ta is not None:
            shape_ok = False
        kp_extra = attrs.pop("keypoints", None)
        if isinstance(kp_extra, dict):
            for n, xy in kp_extra.items():
                if isinstance(xy, list) and len(xy) == 2 and all(_is_number(v) for v in xy):
                    det.keypoints.append((str(n), float(xy[0]), float(xy[1])))
                else:
                    shape_ok = False
        elif kp_extra is not None:
            shape_ok = False
        mask = attrs.pop("mask", None)
        if isinstance(mask, str):
            det.mask = mask
        elif mask is not None:
            shape_ok = False
        if not shape_ok:
            report.add("attributes-dropped", "attribute named like a VIAME/DIVE field but not of its shape", aid)
        for k in ("viame_tokens", "track_meta", "keyframe", "interpolate"):
            if k in attrs:
                det.extra[k] = attrs.pop(k)
        if "rotation" in attrs:
            if det.rotation is None:
                report.add("attributes-dropped", "an attribute named 'rotation' would read back as a box rotation",
                           aid)
            attrs.pop("rotation")
        det.attributes = attrs
        det.group_id = groups[i]
        t = tracks[i]
        if t is None:
            t = next(fresh)
            report.add("track-id-assigned", f"annotations without a track id got one ({fmt} needs one per detection)",
                       aid)
        det.track_id = int(t)
        dets.append(det)
    return images, dets


def report_categories(ds: Dataset, dets: Sequence[Detection], report: ConversionReport, fmt: str) -> None:
    """Report category metadata the target cannot hold and ids that will not read back the same."""
    order: dict[str, int] = {}
    for d in dets:
        for c, _ in d.pairs:
            order.setdefault(c, len(order) + 1)
    cats = ds.categories
    names = cats.column("name").to_pylist()
    cids = cats.column("id").to_pylist()
    unused = [n for n in names if n not in order]
    if unused:
        report.add_many("category-dropped", f"categories without annotations cannot be written to {fmt}", unused,
                        len(unused))
    if any(order.get(n) != c for n, c in zip(names, cids, strict=True) if n in order) or len(order) != len(
            [n for n in names if n in order]):
        report.add("category-ids-renumbered", f"{fmt} names classes only; ids are reassigned 1..K by first use")
    for col in ("supercategory", "taxon", "source_id", "attributes"):
        c = cats.column(col)
        n = len(c) - c.null_count
        if n:
            report.add("category-metadata-dropped", f"{fmt} has no place for category {col}", count=n)


# ------------------------------------------------------------------------------------------ reader


def _place(line: int, col: int | None = None) -> str:
    if col is None:
        return f"line {line}"
    if col < len(COLUMNS):
        return f"line {line}, column {col + 1} ({COLUMNS[col]})"
    return f"line {line}, column {col + 1}"


def _float(cell: str, path: Path, line: int, col: int, what: str = "a number") -> float:
    try:
        return float(cell)
    except ValueError:
        raise InputError(f"expected {what}, found {cell!r}", file=path, place=_place(line, col)) from None


def _int(cell: str, path: Path, line: int, col: int) -> int:
    try:
        return int(cell.strip())
    except ValueError:
        raise InputError(f"expected an integer, found {cell!r}", file=path, place=_place(line, col)) from None


def _numbers(text: str, path: Path, line: int, col: int, what: str) -> list[float]:
    out = []
    for t in text.split():
        try:
            out.append(float(t))
        except ValueError:
            raise InputError(f"{what}: expected numbers, found {t!r}", file=path, place=_place(line, col)) from None
    return out


def parse_row(row: list[str], path: Path, line: int, image: int) -> Detection:
    """One CSV data row → a Detection; InputError naming the line and column on bad input."""
    if len(row) < 9:
        raise InputError(f"expected at least 9 columns ({', '.join(COLUMNS)}), found {len(row)}",
                         file=path, place=_place(line))
    x1, y1, x2, y2 = (_float(row[c], path, line, c) for c in range(3, 7))
    conf_text = row[7].strip()
    conf = _float(conf_text, path, line, 7) if conf_text else None
    length_text = row[8].strip()
    length = _float(length_text, path, line, 8) if length_text else -1.0
    d = Detection(image=image, track_id=_int(row[0], path, line, 0), box=(x1, y1, x2, y2), confidence=conf,
                  length=None if length == -1 else length)
    rest = row[9:]
    i = 0
    while i < len(rest):
        tok = rest[i]
        col = 9 + i
        if not tok.strip():
            i += 1
            continue
        if not tok.startswith("("):
            if i + 1 >= len(rest) or not rest[i + 1].strip():
                raise InputError(f"class {tok!r} has no score", file=path, place=_place(line, col))
            d.pairs.append((tok, _float(rest[i + 1], path, line, col + 1, f"a score for class {tok!r}")))
            i += 2
            continue
        m = TOKEN_RE.match(tok)
        key, body = (m.group(1), m.group(2)) if m else ("", tok)
        if key == "kp":
            parts = body.split()
            if len(parts) != 3:
                raise InputError(f"(kp) needs a name and two coordinates, found {tok!r}", file=path,
                                 place=_place(line, col))
            xs = _numbers(" ".join(parts[1:]), path, line, col, "(kp)")
            d.keypoints = [k for k in d.keypoints if k[0] != parts[0]] + [(parts[0], xs[0], xs[1])]
        elif key in ("atr", "trk-atr"):
            am = ATTR_RE.match(body)
            if am is None:
                raise InputError(f"({key}) needs a name and a value, found {tok!r}", file=path, place=_place(line, col))
            name, val = am.group(1), deduce_value(am.group(2))
            if key == "atr" and name == "rotation" and isinstance(val, float):
                d.rotation = val
            elif key == "atr":
                d.attributes[name] = val
            else:
                d.track_attributes[name] = val
        elif key in ("poly", "hole"):
            xs = _numbers(body, path, line, col, f"({key})")
            if len(xs) % 2 or len(xs) < 2:
                raise InputError(f"({key}) needs x y pairs, found {len(xs)} number(s)", file=path,
                                 place=_place(line, col))
            if key == "poly":
                d.polygons.append([xs])
            elif not d.polygons:
                raise InputError("(hole) comes before any (poly)", file=path, place=_place(line, col))
            else:
                d.polygons[-1].append(xs)
        elif key == "note":
            d.notes.append(body)
        elif key == "mask":
            d.mask = body
        else:
            d.extra.setdefault("viame_tokens", []).append(tok)
        i += 1
    return d


def _csv_file(path: Path) -> Path:
    if path.is_file():
        return path
    cands = sorted(p for p in path.glob("*.csv") if detect(p))
    if len(cands) != 1:
        raise InputError(f"expected one VIAME CSV file in the folder, found {len(cands)}", file=path)
    return cands[0]


def _open_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"unreadable: {exc.strerror}", file=path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text: {exc.reason}", file=path,
                         place=f"line {line}, byte {exc.start}") from None


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read a VIAME CSV file (or a folder holding one)."""
    src = _csv_file(path)
    root = src.parent.resolve()
    video_opt = ctx.options.get("video")
    video = str(video_opt or src.name.split(".")[0])
    text = _open_text(src)
    reader = csv.reader(io.StringIO(text, newline=""))
    images: list[ImageRef] = []
    index: dict[tuple[str, int], int] = {}
    listed: dict[str, int] = {}
    list_path = src.parent / IMAGE_LIST
    if ctx.options.get("image_list", True) and list_path.is_file():
        for k, name in enumerate(n.strip() for n in _open_text(list_path).splitlines()):
            if name and name not in listed:
                safe_join(root, name, source=list_path, place=f"line {k + 1}")
                listed[name] = len(images)
                images.append(ImageRef(name, None))
    dets: list[Detection] = []
    info: dict[str, Any] = {"root": str(root)}
    try:
        for row in progress(reader, desc="VIAME CSV rows", unit="row"):
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if row[0].lstrip().startswith("#"):
                if row[0].strip() == "# metadata":
                    meta = info.setdefault("viame_metadata", {})
                    for cell in row[1:]:
                        mk, sep, mv = cell.partition(":")
                        if sep:
                            meta[mk.strip()] = deduce_value(mv.strip().strip('"'))
                    if isinstance(meta.get("video"), str | float) and not video_opt:
                        # the writer names the video here; kept as text (a name like "007" stays "007")
                        raw = next(c.partition(":")[2].strip().strip('"') for c in row[1:]
                                   if c.partition(":")[0].strip() == "video")
                        meta["video"] = video = raw
                    fps = meta.get("fps", meta.get("Fps"))
                    if isinstance(fps, float):
                        info["fps"] = fps
                continue
            if len(row) < 9:
                raise InputError(f"expected at least 9 columns ({', '.join(COLUMNS)}), found {len(row)}",
                                 file=src, place=_place(line))
            name = row[1].strip()
            frame = _int(row[2], src, line, 2)
            key = (name, frame)
            j = index.get(key)
            if j is None and name in listed and images[listed[name]].frame is None:
                j = index[key] = listed[name]
                images[j].frame = frame
            if j is None:
                j = index[key] = len(images)
                if not name or TIMESTAMP_RE.match(name):
                    images.append(ImageRef(f"frame{frame:06d}", frame, video, name))
                else:
                    if UNSAFE_NAME_RE.search(name):  # lexically clean names cannot leave the root
                        safe_join(root, name, source=src, place=_place(line, 1))
                    images.append(ImageRef(name, frame))
            dets.append(parse_row(row, src, line, j))
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", file=src, place=_place(reader.line_num)) from None
    for k, im in enumerate(images):
        if im.frame is None:  # listed, without detections: the list position is its frame
            im.frame = k
    if ctx.options.get("sizes", True):
        resolve_sizes(images, root, ctx.report)
    return build_dataset(images, dets, info, ctx.report)


# ------------------------------------------------------------------------------------------ writer


def detection_row(d: Detection, images: Sequence[ImageRef]) -> list[str]:
    """A Detection as the cells of one VIAME CSV row."""
    im = images[d.image]
    x1, y1, x2, y2 = d.box
    row = [str(d.track_id), im.timestamp if im.timestamp is not None else im.file_name, str(im.frame),
           fmt_num(x1), fmt_num(y1), fmt_num(x2), fmt_num(y2),
           fmt_num(d.confidence if d.confidence is not None else 1.0),
           fmt_num(d.length) if d.length is not None else "-1"]
    for c, s in d.pairs:
        row += [c, fmt_num(s)]
    for n, x, y in d.keypoints:
        row.append(f"(kp) {n} {fmt_num(x)} {fmt_num(y)}")
    if d.rotation is not None:
        row.append(f"(atr) rotation {fmt_num(d.rotation)}")
    for k, v in d.attributes.items():
        row.append(f"(atr) {k} {value_text(v)}")
    for k, v in d.track_attributes.items():
        row.append(f"(trk-atr) {k} {value_text(v)}")
    for poly in d.polygons:
        row.append("(poly) " + " ".join(fmt_num(v) for v in poly[0]))
        for h in poly[1:]:
            row.append("(hole) " + " ".join(fmt_num(v) for v in h))
    if d.mask is not None:
        row.append(f"(mask) {d.mask}")
    for n in d.notes:
        row.append(f"(note) {n}")
    for t in d.extra.get("viame_tokens", []) if isinstance(d.extra.get("viame_tokens"), list) else []:
        row.append(str(t))
    return row


def _writable(attrs: dict[str, Any], report: ConversionReport, aid: object, what: str) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        t = value_text(v)
        if not isinstance(k, str) or not k or any(ch.isspace() for ch in k) or t is None:
            report.add("attributes-dropped", f"{what} that VIAME CSV cannot hold (lists, objects, empty or "
                                             "multi-line values, names with spaces)", aid)
            continue
        if isinstance(v, str) and deduce_value(t) != v:
            report.add("attribute-type-changed", "text attribute that reads back as a number or boolean", aid)
        out[k] = v
    return out


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write the dataset as one VIAME CSV file (``annotations.csv``), copying images beside it."""
    report = ctx.report
    images, dets = dataset_detections(ds, report, "viame")
    report_categories(ds, dets, report, "viame")
    used = {d.image for d in dets}
    empty = [im.file_name for j, im in enumerate(images) if j not in used]
    if empty and ctx.single_file:
        report.add_many("image-dropped", "a lone VIAME CSV lists detections only; images without any are kept "
                        f"only in {IMAGE_LIST} when writing a folder", empty, len(empty))
    for k, d in enumerate(dets):
        for n in d.notes:
            if "\n" in n:
                report.add("notes-changed", "multi-line note", k + 1)
        d.attributes = _writable(d.attributes, report, k + 1, "detection attributes")
        d.track_attributes = _writable(d.track_attributes, report, k + 1, "track attributes")
        if d.extra.get("keyframe") is not None or d.extra.get("interpolate") is not None or d.extra.get("track_meta"):
            report.add("track-metadata-dropped", "DIVE keyframe/interpolation flags and track meta", k + 1)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    buf.write(HEADER + "\n")
    meta = dict(ds.info.get("viame_metadata") or {})
    if ds.info.get("fps") is not None:
        meta["fps"] = ds.info["fps"]
    videos = list(dict.fromkeys(im.video for im in images if im.timestamp is not None and im.video))
    if videos:
        meta["video"] = videos[0]
    if len(videos) > 1:
        report.add_many("video-dropped", "a VIAME CSV holds one video; frames of the others were written under "
                        "the first one's name", videos[1:], len(videos) - 1)
    stills = sum(1 for im in images if im.timestamp is None and im.video)
    if stills:
        report.add("video-dropped", "VIAME CSV has no video name for image files", count=stills)
    if meta:
        w.writerow(["# metadata", *[f"{k}: {fmt_num(v) if _is_number(v) else v}" for k, v in meta.items()]])
    for d in dets:
        w.writerow(detection_row(d, images))
    with atomic_write(out / FILE_NAME) as fh:
        fh.write(buf.getvalue())
    if not ctx.single_file and any(im.timestamp is None for im in images):
        with atomic_write(out / IMAGE_LIST) as fh:
            fh.writelines(im.file_name + "\n" for im in images if im.timestamp is None)
    if ctx.images != "none":
        for j in range(len(images)):
            im = images[j]
            if im.timestamp is None:
                ctx.put_image(im.file_name, safe_join(out, im.file_name))


# ------------------------------------------------------------------------------------------ detection


def _looks_like_row(row: list[str]) -> bool:
    if len(row) < 9:
        return False
    try:
        int(row[0])
        int(row[2])
        for c in row[3:8]:
            float(c)
        if row[8].strip():
            float(row[8])
    except ValueError:
        return False
    return True


def detect(path: Path) -> int:
    """95 for a .csv whose first data row has VIAME's 9 typed columns (plus its header: 100)."""
    if path.is_dir():
        cands = [p for p in path.glob("*.csv")]
        return 85 if len(cands) == 1 and detect(cands[0]) else 0
    if path.suffix.lower() != ".csv":
        return 0
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            head = fh.read(65536)
    except (OSError, UnicodeDecodeError):
        return 0
    header = False
    lines = head.splitlines()
    if len(head) == 65536 and len(lines) > 1:
        lines = lines[:-1]
    for row in csv.reader(lines):
        if not row or not "".join(row).strip():
            continue
        if row[0].lstrip().startswith("#"):
            header = header or "Detection or Track" in ",".join(row)
            continue
        return (100 if header else 95) if _looks_like_row(row) else 0
    return 60 if header else 0


def check(path: Path, max_findings: int = 50) -> list[Finding]:
    """Structural check of every row (where ``read`` stops at the first bad one), each with line and column."""
    try:
        src = _csv_file(path)
        text = _open_text(src)
    except InputError as exc:
        return [Finding("unreadable", exc.message, file=exc.file, place=exc.place)]
    out: list[Finding] = []
    root = src.parent.resolve()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].lstrip().startswith("#"):
                continue
            try:
                parse_row(row, src, line, 0)
                name = row[1].strip()
                if name and not TIMESTAMP_RE.match(name):
                    safe_join(root, name, source=src, place=_place(line, 1))
                _int(row[2], src, line, 2)
            except InputError as exc:
                out.append(Finding("malformed-row", exc.message, file=str(src), place=exc.place))
                if len(out) >= max_findings:
                    break
    except csv.Error as exc:
        out.append(Finding("malformed-csv", str(exc), file=str(src), place=_place(reader.line_num)))
    return out


register(Format("viame", "VIAME CSV (detections and tracks; keypoints, polygons, attributes, notes)", read, write,
                detect, file_name=FILE_NAME, check=check))
