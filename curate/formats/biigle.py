"""BIIGLE CSV reports (image and video volumes): read, and write back the same report shape.

A report has one row per (annotation, label) pair. We keep that: each row becomes one annotation
whose ``id`` is the row's ``annotation_label_id`` (``video_annotation_label_id``), whose
``group_id`` is BIIGLE's ``annotation_id`` (so the labels of one annotation, by one or several
users, stay grouped and share a geometry) and whose ``annotator`` is "firstname lastname"; the
raw ``user_id``, ``firstname``, ``lastname`` and ``created_at`` go into the annotation attributes
so that writing back reproduces the rows. ``label_id`` is the category id, ``label_name`` its
name, the label-tree path "A > B > C" gives ``supercategory`` (the parent) and is kept whole in
the category attribute ``hierarchy``. Image ``longitude``/``latitude`` fill the image columns;
the image ``attributes`` JSON gives width/height and the rest lands in image attributes.

Shapes: 1 Point, 2 LineString (polyline), 3 Polygon, 4 Circle ``[x, y, r]``, 5 Rectangle (four
corners; axis-aligned → ``box``, else ``rbox``), 6 Ellipse (four axis end points m1, mi1, m2,
mi2 → ``ellipse``), 7 WholeFrame (``label``). Coordinates outside the image are kept as written.

Video reports: every keyframe of a row becomes one annotation on an image row standing for
(video, time); ``track_id`` is the row's ``video_annotation_label_id``; the time in seconds is
the image attribute ``time`` and the video file is both ``file_name`` and ``video``. Gaps
(``null`` frames / empty point lists) are kept as the attribute ``gap_before`` of the keyframe
after them.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagine.kernel import Finding, InputError, safe_join

from ..geometry import corners_to_rbox, envelope, rbox_corners
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register
from .via import num_text, read_text, report_common_losses

FILE_NAME = "report.csv"
IMAGE_COLUMNS = ("annotation_label_id", "label_id", "label_name", "label_hierarchy", "user_id", "firstname",
                 "lastname", "image_id", "filename", "image_longitude", "image_latitude", "shape_id", "shape_name",
                 "points", "attributes", "annotation_id", "created_at")
VIDEO_COLUMNS = ("video_annotation_label_id", "label_id", "label_name", "label_hierarchy", "user_id", "firstname",
                 "lastname", "video_id", "video_filename", "shape_id", "shape_name", "points", "frames",
                 "annotation_id", "created_at", "attributes")
IMAGE_REQUIRED = ("label_name", "filename", "points", "annotation_id")
VIDEO_REQUIRED = ("label_name", "video_filename", "points", "frames", "annotation_id")
SHAPES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "Circle", 5: "Rectangle", 6: "Ellipse", 7: "WholeFrame"}
SHAPE_IDS = {v.lower(): k for k, v in SHAPES.items()}
USER_KEYS = ("user_id", "firstname", "lastname", "created_at")


# ------------------------------------------------------------------------------------------ CSV plumbing


def _parse_rows(path: Path) -> tuple[list[str], str, Iterator[tuple[int, list[str]]]]:
    """Header, delimiter and an iterator of (line number, fields) of a BIIGLE CSV; errors name the line."""
    text = read_text(path)
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = _split(text, delim, path)
    try:
        line, header = next(rows)
    except StopIteration:
        raise InputError("empty CSV file", file=path, place="line 1") from None
    return [h.strip() for h in header], delim, rows


def _split(text: str, delim: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of ``text`` with the physical line each starts on (the C csv parser; quotes may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    start = 1
    try:
        for fields in reader:
            if fields:
                yield start, fields
            start = reader.line_num + 1
    except csv.Error as exc:
        msg = "unterminated quoted field (truncated file?)" if "end of data" in str(exc) else f"malformed CSV: {exc}"
        raise InputError(msg, file=path, place=f"line {start}") from None


def _quote(field: str, delim: str) -> str:
    """Quote like PHP's fputcsv (which BIIGLE uses): when the field holds a delimiter, quote, space, tab or newline."""
    if any(c in field for c in (delim, '"', "\\", " ", "\t", "\n", "\r")):
        return '"' + field.replace('"', '""') + '"'
    return field


def _php_json(obj: Any) -> str:
    """JSON as PHP's json_encode writes it (no spaces, escaped slashes, ASCII only)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


# ------------------------------------------------------------------------------------------ detection


def _candidates(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix.lower() in (".csv", ".txt") else []
    if path.is_dir():
        return [p for p in sorted(path.glob("*.csv")) if _sniff(p)]
    return []


def _sniff(p: Path) -> int:
    try:
        with p.open("r", encoding="utf-8-sig", errors="replace") as fh:
            first = fh.readline()
    except OSError:
        return 0
    cols = {c.strip().strip('"') for c in first.replace(";", ",").split(",")}
    if ("annotation_label_id" in cols or "video_annotation_label_id" in cols) and "shape_name" in cols:
        return 95
    return 0


def detect(path: Path) -> int:
    c = _candidates(path)
    return _sniff(c[0]) if c else 0


# ------------------------------------------------------------------------------------------ reading


def _int(v: str) -> int | None:
    v = v.strip()
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        f = float(v)
        if f != int(f):
            raise
        return int(f)


def _float(v: str) -> float | None:
    v = v.strip()
    return float(v) if v else None


def _json_cell(v: str, path: Path, line: int, col: str) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError as exc:
        raise InputError(f"column {col} is not valid JSON ({exc.msg} at character {exc.pos + 1}): {v[:60]!r}",
                         file=path, place=f"line {line}") from None


def _numbers(v: Any, path: Path, line: int, col: str) -> list[float]:
    if not isinstance(v, list) or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        raise InputError(f"column {col} must be a JSON list of numbers, got {json.dumps(v)[:60]}", file=path,
                         place=f"line {line}")
    return [float(x) for x in v]


def _shape(shape_id: int, pts: list[float], path: Path, line: int) -> tuple[str, list[list[float]] | None,
                                                                            tuple[float, float, float, float] | None]:
    """(kind, geometry, box or None) of one BIIGLE shape."""
    need = {1: 2, 4: 3, 5: 8, 6: 8, 7: 0}.get(shape_id)
    if need is not None and len(pts) != need:
        raise InputError(f"a {SHAPES[shape_id]} needs {need} numbers in points, found {len(pts)}", file=path,
                         place=f"line {line}")
    if shape_id in (2, 3) and (len(pts) % 2 or len(pts) < 4):
        raise InputError(f"a {SHAPES[shape_id]} needs an even number (>= 4) of coordinates, found {len(pts)}",
                         file=path, place=f"line {line}")
    if shape_id == 1:
        return "point", [pts], None
    if shape_id == 2:
        return "polyline", [pts], None
    if shape_id == 3:
        return "polygon", [pts], None
    if shape_id == 4:
        return "circle", [pts], None
    if shape_id == 5:
        x1, y1, x2, y2, x3, y3, x4, y4 = pts
        if y1 == y2 and x2 == x3 and y3 == y4 and x4 == x1 and x2 > x1 and y3 > y2:
            return "box", None, (x1, y1, x2 - x1, y3 - y1)
        xs, ys = pts[0::2], pts[1::2]  # the envelope from the corners as written, free of trigonometry noise
        env = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        return "rbox", [list(corners_to_rbox(pts))], env
    if shape_id == 6:
        m1x, m1y, n1x, n1y, m2x, m2y, n2x, n2y = pts
        cx, cy = (m1x + m2x) / 2, (m1y + m2y) / 2
        rx = math.hypot(m2x - m1x, m2y - m1y) / 2
        ry = math.hypot(n2x - n1x, n2y - n1y) / 2
        ang = math.degrees(math.atan2(m2y - m1y, m2x - m1x))
        return "ellipse", [[cx, cy, rx, ry, ang]], None
    if shape_id == 7:
        return "label", None, None
    raise InputError(f"unknown shape_id {shape_id}", file=path, place=f"line {line}")


def read(path: Path, ctx: ReadContext) -> Dataset:
    files = _candidates(path)
    if not files:
        raise InputError("no BIIGLE CSV report found", file=path)
    root = Path(ctx.options["root"]) if ctx.options.get("root") else files[0].parent
    state = _State()
    for f in files:
        state.read_file(f, root)
    state.finish()
    for code, msg, n in state.losses:
        ctx.report.add(code, msg, count=n)
    info: dict[str, Any] = {"root": str(root.resolve()), "biigle_columns": state.columns,
                            "biigle_delimiter": state.delim, "biigle_report": state.report_kind}
    return Dataset.from_columns(state.img, state.ann, state.cat_columns(), info)


class _State:
    """Columns being built while reading one or more report files."""

    def __init__(self) -> None:
        self.img: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "latitude",
                                                          "longitude", "video", "source_id", "attributes")}
        self.ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                          "bbox_w", "bbox_h", "geometry", "track_id", "group_id",
                                                          "annotator", "attributes")}
        self.cats: dict[int, tuple[str, str | None, str | None]] = {}
        self.cat_by_name: dict[str, int] = {}
        self.images: dict[Any, int] = {}
        self.sizes: dict[int, tuple[int | None, int | None]] = {}
        self.columns: list[str] = []
        self.delim = ","
        self.report_kind = "image"
        self.losses: list[tuple[str, str, int]] = []

    def finish(self) -> None:
        """Give images without a (usable) BIIGLE id fresh ids above every id in use."""
        nxt = max([i for i in self.img["id"] if i > 0], default=0) + 1
        remap: dict[int, int] = {}
        for k, i in enumerate(self.img["id"]):
            if i < 0:
                remap[i] = nxt
                self.img["id"][k] = nxt
                nxt += 1
        if remap:
            self.ann["image_id"] = [remap.get(i, i) for i in self.ann["image_id"]]

    def cat_columns(self) -> dict[str, list[Any]]:
        ids = list(self.cats)
        return {"id": ids, "name": [self.cats[i][0] for i in ids], "supercategory": [self.cats[i][1] for i in ids],
                "attributes": [dumps_attrs({"hierarchy": self.cats[i][2]}) if self.cats[i][2] else None for i in ids]}

    def category(self, row: dict[str, str], path: Path, line: int) -> int:
        name = row["label_name"]
        hier = row.get("label_hierarchy", "") or ""
        lid = _int(row["label_id"]) if row.get("label_id", "").strip() else None
        if lid is None:
            lid = self.cat_by_name.get(name) or (max(self.cats, default=0) + 1)
        parts = [p.strip() for p in hier.split(">")] if hier else []
        sup = parts[-2] if len(parts) >= 2 else None
        prev = self.cats.get(lid)
        if prev is not None and prev[0] != name:
            raise InputError(f"label_id {lid} named both {prev[0]!r} and {name!r}", file=path, place=f"line {line}")
        if prev is None:
            self.cats[lid] = (name, sup, hier if hier and hier != name else None)
            self.cat_by_name.setdefault(name, lid)
        return lid

    def image(self, key: Any, file_name: str, path: Path, root: Path, line: int, *, video: str | None = None,
              source_id: str | None = None, lat: float | None = None, lon: float | None = None,
              attrs: dict[str, Any] | None = None, wh: tuple[int | None, int | None] = (None, None),
              image_id: int | None = None) -> int:
        if key in self.images:
            return self.images[key]
        safe_join(root, file_name, source=path, place=f"line {line}")
        if image_id is not None and image_id not in self.sizes:
            iid = image_id
        else:  # no id, or one BIIGLE id shared by several files: a placeholder, made positive in finish()
            iid = -(len(self.img["id"]) + 1)
            if image_id is not None:
                self.losses.append(("image-id-shared", "one BIIGLE image_id names several files; they are kept "
                                    "apart with new ids, the BIIGLE id is in source_id", 1))
        self.images[key] = iid
        self.sizes[iid] = wh
        self.img["id"].append(iid)
        self.img["file_name"].append(file_name)
        self.img["width"].append(wh[0])
        self.img["height"].append(wh[1])
        self.img["latitude"].append(lat)
        self.img["longitude"].append(lon)
        self.img["video"].append(video)
        self.img["source_id"].append(source_id)
        self.img["attributes"].append(dumps_attrs(attrs))
        return iid

    def add(self, aid: int, iid: int, cid: int, kind: str, geom: list[list[float]] | None,
            box: tuple[float, ...] | None, track: int | None, group: int | None, annotator: str | None,
            attrs: dict[str, Any]) -> None:
        if box is None:
            w, h = self.sizes.get(iid, (None, None))
            box = envelope(kind, geom, width=w, height=h)
        a = self.ann
        a["id"].append(aid)
        a["image_id"].append(iid)
        a["category_id"].append(cid)
        a["kind"].append(kind)
        a["bbox_x"].append(box[0])
        a["bbox_y"].append(box[1])
        a["bbox_w"].append(box[2])
        a["bbox_h"].append(box[3])
        a["geometry"].append(geom)
        a["track_id"].append(track)
        a["group_id"].append(group)
        a["annotator"].append(annotator)
        a["attributes"].append(dumps_attrs(attrs))

    def read_file(self, path: Path, root: Path, findings: list[Finding] | None = None) -> None:
        """Read one report; with ``findings``, collect every bad row there instead of stopping at the first."""
        header, delim, rows = _parse_rows(path)
        video = "video_annotation_label_id" in header
        required = VIDEO_REQUIRED if video else IMAGE_REQUIRED
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"not a BIIGLE report: missing column(s) {', '.join(missing)}", file=path, place="line 1")
        if not self.columns:
            self.columns, self.delim, self.report_kind = header, delim, "video" if video else "image"
        while True:
            try:
                item = next(rows, None)
                if item is None:
                    break
                line, fields = item
                if len(fields) != len(header):
                    raise InputError(f"expected {len(header)} fields, found {len(fields)}", file=path,
                                     place=f"line {line}")
                row = dict(zip(header, fields, strict=True))
                try:
                    if video:
                        self.video_row(row, path, root, line)
                    else:
                        self.image_row(row, path, root, line)
                except ValueError as exc:
                    raise InputError(f"bad value: {exc}", file=path, place=f"line {line}") from None
            except InputError as exc:
                if findings is None:
                    raise
                findings.append(Finding("malformed", exc.message, file=exc.file, place=exc.place))
                if "unterminated" in exc.message:
                    break

    def _common(self, row: dict[str, str], path: Path, line: int) -> tuple[int, int | None, str | None,
                                                                            dict[str, Any], int]:
        cid = self.category(row, path, line)
        group = _int(row["annotation_id"])
        first, last = row.get("firstname", ""), row.get("lastname", "")
        annotator = " ".join(p for p in (first, last) if p) or None
        attrs: dict[str, Any] = {}
        if row.get("user_id", "").strip():
            attrs["user_id"] = _int(row["user_id"])
        for k in ("firstname", "lastname", "created_at"):
            if k in row and row[k] != "":
                attrs[k] = row[k]
        sid = row.get("shape_id", "").strip()
        shape_id = _int(sid) if sid else SHAPE_IDS.get(row.get("shape_name", "").strip().lower(), 0)
        if shape_id is None or shape_id not in SHAPES:
            raise InputError(f"unknown shape {row.get('shape_id')!r} / {row.get('shape_name')!r}", file=path,
                             place=f"line {line}")
        return cid, group, annotator, attrs, shape_id

    def image_row(self, row: dict[str, str], path: Path, root: Path, line: int) -> None:
        cid, group, annotator, attrs, shape_id = self._common(row, path, line)
        image_id = _int(row["image_id"]) if row.get("image_id", "").strip() else None
        key = (image_id, row["filename"])
        iattrs: dict[str, Any] = {}
        wh: tuple[int | None, int | None] = (None, None)
        if key not in self.images and row.get("attributes", "").strip():
            ia = _json_cell(row["attributes"], path, line, "attributes")
            if isinstance(ia, dict):
                iattrs = dict(ia)
                w, h = iattrs.pop("width", None), iattrs.pop("height", None)
                wh = (int(w) if isinstance(w, int | float) else None, int(h) if isinstance(h, int | float) else None)
        iid = self.image(key, row["filename"], path, root, line, image_id=image_id,
                         source_id=str(image_id) if image_id is not None else None,
                         lat=_float(row.get("image_latitude", "")), lon=_float(row.get("image_longitude", "")),
                         attrs=iattrs, wh=wh)
        pts = _numbers(_json_cell(row["points"], path, line, "points"), path, line, "points")
        kind, geom, box = _shape(shape_id, pts, path, line)
        alid = row.get("annotation_label_id", "").strip()
        aid = _int(alid) if alid else len(self.ann["id"]) + 1
        assert aid is not None
        self.add(aid, iid, cid, kind, geom, box, None, group, annotator, attrs)

    def video_row(self, row: dict[str, str], path: Path, root: Path, line: int) -> None:
        cid, group, annotator, attrs, shape_id = self._common(row, path, line)
        if row.get("attributes", "").strip() not in ("", "[]", "{}"):
            extra = _json_cell(row["attributes"], path, line, "attributes")
            if isinstance(extra, dict):
                attrs["biigle_attributes"] = extra
        points = _json_cell(row["points"], path, line, "points")
        frames = _json_cell(row["frames"], path, line, "frames")
        if not isinstance(points, list) or not isinstance(frames, list):
            raise InputError("points and frames must be JSON lists", file=path, place=f"line {line}")
        if shape_id == 7 and not points:
            points = [[] for _ in frames]
        if len(points) != len(frames):
            raise InputError(f"{len(points)} keyframe point lists for {len(frames)} frames", file=path,
                             place=f"line {line}")
        vid = _int(row["video_id"]) if row.get("video_id", "").strip() else None
        fname = row["video_filename"]
        track = _int(row["video_annotation_label_id"])
        gap = False
        for k, (pts_raw, t) in enumerate(zip(points, frames, strict=True)):
            if t is None or (shape_id != 7 and pts_raw == []):
                gap = True
                continue
            if not isinstance(t, int | float) or isinstance(t, bool):
                raise InputError(f"frames[{k}] must be a number of seconds, got {t!r}", file=path,
                                 place=f"line {line}")
            pts = _numbers(pts_raw, path, line, f"points[{k}]")
            kind, geom, box = _shape(shape_id, pts, path, line)
            iid = self.image((fname, float(t)), fname, path, root, line, video=fname,
                             source_id=str(vid) if vid is not None else None, attrs={"time": float(t)})
            a = dict(attrs)
            if gap:
                a["gap_before"] = True
                gap = False
            self.add(len(self.ann["id"]) + 1, iid, cid, kind, geom, box, track, group, annotator, a)


# ------------------------------------------------------------------------------------------ writing


def _points(kind: str, g: list[list[float]] | None, box: tuple[float, float, float, float], aid: int,
            ctx: WriteContext) -> tuple[int, list[float]] | None:
    """(shape_id, points) of one annotation, or None when BIIGLE cannot hold it (reported)."""
    if kind == "box":
        x, y, w, h = box
        return 5, [x, y, x + w, y, x + w, y + h, x, y + h]
    if kind == "rbox" and g:  # trigonometry leaves ~1e-15 noise; snap it at a nanopixel
        pts = [round(v, 9) + 0.0 for v in rbox_corners(*g[0][:5])]
        if pts[1] == pts[3] and pts[2] == pts[4] and pts[5] == pts[7] and pts[6] == pts[0]:
            ctx.report.add("rbox-to-box", "an unrotated rotated box reads back from BIIGLE as a plain box", aid)
        return 5, pts
    if kind in ("polygon", "polyline") and g:
        if len(g) > 1:
            ctx.report.add(f"{kind}-parts-dropped", f"BIIGLE {kind}s have one part and no holes; only the first "
                           "part written", aid)
        return (3 if kind == "polygon" else 2), list(g[0])
    if kind == "point" and g:
        if len(g[0]) > 2:
            ctx.report.add("points-dropped", "a BIIGLE Point holds one point; only the first written", aid)
        return 1, list(g[0][:2])
    if kind == "circle" and g:
        return 4, list(g[0][:3])
    if kind == "ellipse" and g:
        cx, cy, rx, ry, ang = g[0][:5]
        a = math.radians(ang)
        ux, uy, vx, vy = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
        pts = [cx - rx * ux, cy - rx * uy, cx - ry * vx, cy - ry * vy, cx + rx * ux, cy + rx * uy,
               cx + ry * vx, cy + ry * vy]
        return 6, [round(v, 9) + 0.0 for v in pts]
    if kind == "label":
        return 7, []
    if kind == "keypoints" and g:
        ctx.report.add("keypoints-to-point", "BIIGLE has no keypoints; the first visible one written as a Point", aid)
        flat = g[0]
        for k in range(0, len(flat) - 2, 3):
            if flat[k + 2] > 0:
                return 1, [flat[k], flat[k + 1]]
        return None
    ctx.report.add(f"{kind}-dropped", f"BIIGLE cannot hold {kind} annotations; dropped", aid)
    return None


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    video = ds.info.get("biigle_report") == "video"
    cols = ds.info.get("biigle_columns")
    default = VIDEO_COLUMNS if video else IMAGE_COLUMNS
    needed = VIDEO_REQUIRED if video else IMAGE_REQUIRED
    if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols) and all(c in cols for c in needed)):
        cols = list(default)
    delim = str(ctx.options.get("delimiter") or ds.info.get("biigle_delimiter") or ",")
    keep = ["attributes", "group_id", "annotator"] + (["track_id", "video"] if video else ["latitude", "longitude"])
    report_common_losses(ds, ctx, fmt="BIIGLE", keep=keep)
    names = ds.category_names()
    cat_attrs = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("attributes").to_pylist(),
                         strict=True))
    cat_sup = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("supercategory").to_pylist(),
                       strict=True))
    a = ds.annotations
    kinds = a.column("kind").to_pylist()
    geoms = a.column("geometry").to_pylist()
    cats = a.column("category_id").to_pylist()
    attrs = a.column("attributes").to_pylist()
    aids = a.column("id").to_pylist()
    groups = a.column("group_id").to_pylist()
    tracks = a.column("track_id").to_pylist()
    annotators = a.column("annotator").to_pylist()
    bx, by, bw, bh = (a.column(c).to_pylist() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    img = ds.images
    index = ds.image_index()
    i_fn = img.column("file_name").to_pylist()
    i_id = img.column("id").to_pylist()
    i_lat = img.column("latitude").to_pylist()
    i_lon = img.column("longitude").to_pylist()
    i_w = img.column("width").to_pylist()
    i_h = img.column("height").to_pylist()
    i_attrs = img.column("attributes").to_pylist()
    i_src = img.column("source_id").to_pylist()
    order, starts, ends = ds.annotations_by_image()
    empty = [i_fn[i] for i in range(len(i_fn)) if starts[i] == ends[i]]
    ctx.report.add_many("image-without-annotations-dropped", "a BIIGLE report lists annotations only; images "
                        "without any are not in it", empty[:5], len(empty))
    unlabelled = [aids[r] for r in range(len(aids)) if cats[r] is None]
    ctx.report.add_many("unlabelled-dropped", "every BIIGLE row needs a label; annotations without a category "
                        "dropped", unlabelled[:5], len(unlabelled))

    @functools.cache
    def label_cells(cid: int) -> dict[str, str]:
        name = names.get(cid, str(cid))
        hier = loads_attrs(cat_attrs.get(cid)).get("hierarchy")
        if not hier:
            sup = cat_sup.get(cid)
            hier = f"{sup} > {name}" if sup else name
        return {"label_id": str(cid), "label_name": name, "label_hierarchy": str(hier)}

    def user_cells(r: int, at: dict[str, Any]) -> dict[str, str]:
        first, last = at.pop("firstname", None), at.pop("lastname", None)
        if first is None and last is None and annotators[r]:
            first, _, last = str(annotators[r]).partition(" ")
        uid = at.pop("user_id", None)
        return {"user_id": "" if uid is None else str(uid), "firstname": first or "", "lastname": last or "",
                "created_at": str(at.pop("created_at", "") or "")}

    lines = [delim.join(_quote(c, delim) for c in cols)]
    if not video:
        img_cells: dict[int, dict[str, str]] = {}
        image_ids = a.column("image_id").to_pylist()
        for r in range(len(aids)):  # annotation table order = the source's row order
            i = index.get(image_ids[r])
            if cats[r] is None or i is None:
                continue
            if i not in img_cells:
                sid = i_src[i]
                bid = int(sid) if isinstance(sid, str) and sid.isdigit() else i_id[i]
                if sid is not None and not sid.isdigit():
                    ctx.report.add("image-source-id-dropped", "BIIGLE image ids are integers; the image's "
                                   "original id is dropped (its imagine id is written)", sid)
                img_cells[i] = _image_cells(bid, i_fn[i], i_lat[i], i_lon[i], i_w[i], i_h[i], i_attrs[i])
            box = (bx[r], by[r], bw[r], bh[r])
            sp = _points(kinds[r], geoms[r], box, aids[r], ctx)
            if sp is None:
                continue
            at = loads_attrs(attrs[r])
            cells = {"annotation_label_id": str(aids[r]), **label_cells(cats[r]), **user_cells(r, at),
                     **img_cells[i], "shape_id": str(sp[0]), "shape_name": SHAPES[sp[0]],
                     "points": "[" + ",".join(num_text(v) for v in sp[1]) + "]",
                     "annotation_id": str(groups[r] if groups[r] is not None else aids[r])}
            if at:
                ctx.report.add("attributes-dropped", "BIIGLE has no place for annotation attributes; dropped",
                               aids[r])
            lines.append(delim.join(_quote(cells.get(c, ""), delim) for c in cols))
    else:
        lines += _video_lines(ds, ctx, cols, delim, kinds, geoms, cats, attrs, aids, groups, tracks,
                              (bx, by, bw, bh), index, i_fn, i_attrs, i_src, label_cells, user_cells)
    with (out / FILE_NAME).open("w", encoding="utf-8", newline="") as fh:
        fh.write("\n".join(lines) + "\n")
    if ctx.images != "none":
        for fn in dict.fromkeys(i_fn):
            ctx.put_image(fn, safe_join(out, fn))


def _image_cells(iid: int, fn: str, lat: float | None, lon: float | None, w: int | None, h: int | None,
                 attrs: str | None) -> dict[str, str]:
    """The image columns of a report row; width/height go back into the attributes JSON after mimetype."""
    att: dict[str, Any] = {}
    for k, v in loads_attrs(attrs).items():
        att[k] = v
        if k == "mimetype" and w is not None:
            att.update({"width": w, "height": h})
    if "width" not in att and w is not None:
        att = {"width": w, "height": h, **att}
    return {"image_id": str(iid), "filename": fn, "image_longitude": "" if lon is None else num_text(lon),
            "image_latitude": "" if lat is None else num_text(lat), "attributes": _php_json(att) if att else ""}


def _video_lines(ds: Dataset, ctx: WriteContext, cols: list[str], delim: str, kinds: list[Any], geoms: list[Any],
                 cats: list[Any], attrs: list[Any], aids: list[Any], groups: list[Any], tracks: list[Any],
                 boxes: tuple[list[Any], ...], index: dict[int, int], i_fn: list[Any], i_attrs: list[Any],
                 i_src: list[Any], label_cells: Any, user_cells: Any) -> list[str]:
    """One row per track (``video_annotation_label_id``): keyframe points and times in seconds."""
    by_track: dict[Any, list[int]] = {}
    image_ids = ds.annotations.column("image_id").to_pylist()
    for r in range(len(aids)):
        if cats[r] is None:
            continue
        key = tracks[r] if tracks[r] is not None else ("single", aids[r])
        by_track.setdefault(key, []).append(r)
    out = []
    for key, rows in by_track.items():
        first = rows[0]
        pts_list: list[str] = []
        frames: list[str] = []
        shape_id = None
        for r in rows:
            row_img = index.get(image_ids[r])
            t = loads_attrs(i_attrs[row_img]).get("time") if row_img is not None else None
            if t is None:
                ctx.report.add("frame-time-missing", "video keyframe without a time; written at 0 s", aids[r])
                t = 0.0
            at = loads_attrs(attrs[r])
            if at.get("gap_before"):
                pts_list.append("[]")
                frames.append("null")
            sp = _points(kinds[r], geoms[r], (boxes[0][r], boxes[1][r], boxes[2][r], boxes[3][r]), aids[r], ctx)
            if sp is None:
                continue
            shape_id = sp[0]
            pts_list.append("[" + ",".join(num_text(v) for v in sp[1]) + "]")
            frames.append(num_text(float(t)))
        if shape_id is None:
            continue
        at = loads_attrs(attrs[first])
        extra = at.pop("biigle_attributes", None)
        at.pop("gap_before", None)
        img_row = index.get(image_ids[first])
        fn = i_fn[img_row] if img_row is not None else ""
        vid = i_src[img_row] if img_row is not None and i_src[img_row] else ""
        cells = {"video_annotation_label_id": str(key if not isinstance(key, tuple) else aids[first]),
                 **label_cells(cats[first]), **user_cells(first, at), "video_id": str(vid), "video_filename": fn,
                 "shape_id": str(shape_id), "shape_name": SHAPES[shape_id],
                 "points": "[" + ",".join(pts_list) + "]" if shape_id != 7 else "[]",
                 "frames": "[" + ",".join(frames) + "]",
                 "annotation_id": str(groups[first] if groups[first] is not None else aids[first]),
                 "attributes": _php_json(extra) if extra else "[]"}
        out.append(delim.join(_quote(cells.get(c, ""), delim) for c in cols))
    return out


# ------------------------------------------------------------------------------------------ checks


def check(path: Path) -> list[Finding]:
    """Structural checks: columns, field counts, points JSON and shape arity of every row."""
    files = _candidates(path)
    if not files:
        return [Finding("not-biigle", "no BIIGLE CSV report found", file=str(path))]
    out: list[Finding] = []
    for f in files:
        try:
            _State().read_file(f, Path(f).parent, out)
        except InputError as exc:
            out.append(Finding("malformed", exc.message, file=exc.file, place=exc.place))
    return out


register(Format("biigle", "BIIGLE CSV annotation report (image or video volume)", read, write, detect,
                file_name=FILE_NAME, check=check))
