"""Label Studio JSON export (a list of tasks): read and write.

Regions: ``rectangle[labels]`` (``rotation`` in degrees about the *top-left* corner → our
``rbox`` about the centre, and back), ``polygon[labels]``, ``keypoint[labels]`` (→ ``point``),
``ellipse[labels]``, ``brush[labels]`` (LS's own RLE → COCO RLE mask; read only) and
``choices`` without a region (→ ``label``, one per choice). Coordinates are percentages of
``original_width``/``original_height``: ``x_px = x% * W / 100`` in float64, and back with the
float nearest ``x_px * 100 / W`` that converts to ``x_px`` exactly, so unrotated geometry round
trips bit for bit (where no float64 percentage gives the pixel value back — ~0.5 % of 2-decimal
values — it reads back one ulp off: a property of LS's percentages, not reported). Rotated
rectangles go through sin/cos (~1e-12); LS's own numbers are kept with the region and written back
unchanged while the box is unchanged, so an LS → LS round trip is exact.

Every ``annotations[]`` entry is one annotator (``completed_by`` → ``annotations.annotator``),
``predictions[]`` entries are predictions (region or prediction ``score`` → ``score``); their
metadata (``was_cancelled``, ``ground_truth``, ``lead_time``…) is kept on the image
(``ls_annotations`` / ``ls_predictions`` attributes; ``was_cancelled``/``ground_truth`` also in each
region's ``ls`` attribute, for consensus) and each region's own LS keys (``from_name``,
``to_name``, per-region ``choices``/``textarea`` results sharing its id…) in its ``ls``
attribute, so an LS → LS round trip writes them back.

Categories are label/choice names with ids 1, 2, 3… in order of first use; annotation ids 1, 2, 3…
in document order (the LS region id is kept in ``source_id``).

Image file names are the *basename* of ``data.image`` (``/data/upload/1/abc.jpg`` → ``abc.jpg``,
``https://host/x/y.jpg?sig=…`` → ``y.jpg``, ``/data/local-files/?d=dir/y.jpg`` → ``y.jpg``); a
plain relative path (``photos/a.jpg``, as this writer writes) is kept whole. The original value is
kept in ``ls_data`` and written back; images are found under ``images/`` beside the JSON when that
folder exists (where the writer puts them), else beside the JSON. Image metadata other formats carry
(split, site, date-time, …) is written into ``data.imagine`` and read back from it.
"""

from __future__ import annotations

import json
import math
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import orjson

from imagine.kernel import ConversionReport, Finding, InputError, image_size, progress, safe_join
from imagine.schemas import validate

from ..geometry import envelope
from ..model import IMAGE_METADATA_COLUMNS, Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

GEOMETRY_TYPES = {"rectangle", "rectanglelabels", "polygon", "polygonlabels", "keypoint", "keypointlabels",
                  "ellipse", "ellipselabels", "brush", "brushlabels"}
ITEM_KEYS = ("id", "type", "value", "original_width", "original_height", "score")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Image columns written into data.imagine (besides width/height, which LS results carry).
IMAGE_COLUMNS = ("split", "checksum", *IMAGE_METADATA_COLUMNS, "source_id", "width", "height")


# ------------------------------------------------------------------------------------------- maths


def pct_to_px(p: float, size: float) -> float:
    """Label Studio percentage → pixels, exactly as LS defines it (float64, no rounding)."""
    return p * size / 100.0


def px_to_pct(px: float, size: float) -> float:
    """Pixels → the percentage that :func:`pct_to_px` turns back into exactly ``px`` when one exists."""
    p = px * 100.0 / size
    if pct_to_px(p, size) == px:
        return p
    best, err = p, abs(pct_to_px(p, size) - px)
    lo = hi = p
    for _ in range(8):
        lo, hi = math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)
        for cand in (lo, hi):
            e = abs(pct_to_px(cand, size) - px)
            if e == 0:
                return cand
            if e < err:
                best, err = cand, e
    return best


def ls_rect_to_rbox(x: float, y: float, w: float, h: float, rotation: float) -> tuple[float, float, float, float,
                                                                                            float]:
    """LS rectangle in pixels, rotated by ``rotation``° clockwise about its top-left corner (x, y),
    → (cx, cy, w, h, angle) rotated about the centre (same angle, same sense)."""
    a = math.radians(rotation)
    c, s = math.cos(a), math.sin(a)
    return x + (w / 2) * c - (h / 2) * s, y + (w / 2) * s + (h / 2) * c, w, h, rotation


def rbox_to_ls_rect(cx: float, cy: float, w: float, h: float, angle: float) -> tuple[float, float, float, float,
                                                                                       float]:
    """Inverse of :func:`ls_rect_to_rbox`: top-left corner (x, y), size and rotation."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    return cx - ((w / 2) * c - (h / 2) * s), cy - ((w / 2) * s + (h / 2) * c), w, h, angle


# ------------------------------------------------------------------------------------------- brush RLE


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))


def decode_brush_rle(rle: list[int]) -> np.ndarray:
    """Decode Label Studio's brush RLE (thi.ng rle-pack) into the flat array it encodes (RGBA bytes)."""
    bits = _bits(bytes(rle))
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise ValueError("brush RLE ends early")
        v = 0
        for b in bits[pos:pos + n]:
            v = (v << 1) | int(b)
        pos += n
        return v

    num = read(32)
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        x = read(1)
        j = i + 1 + read(sizes[read(2)])
        if j > num:
            raise ValueError("brush RLE run exceeds the declared length")
        if x:
            out[i:j] = read(word)
            i = j
        else:
            while i < j:
                out[i] = read(word)
                i += 1
    return out


def brush_to_coco(rle: list[int], width: int, height: int) -> str:
    """LS brush RLE → COCO compressed RLE string (alpha > 128 is inside, as label-studio-converter)."""
    from pycocotools import mask as mask_utils

    flat = decode_brush_rle(rle)
    if flat.size != width * height * 4:
        raise ValueError(f"brush RLE holds {flat.size} values, expected width×height×4 = {width * height * 4}")
    m = (flat.reshape(height, width, 4)[:, :, 3] > 128).astype(np.uint8)
    return mask_utils.encode(np.asfortranarray(m))["counts"].decode("ascii")


# ------------------------------------------------------------------------------------------- read


def file_name_from_url(url: str) -> str:
    """The file name for an LS image reference: the basename of an upload path, URL, local-files
    ``?d=`` or ``s3://`` reference; a plain relative path (``photos/a.jpg``, as this writer and
    hand-made imports use) is kept whole."""
    u = urlsplit(url)
    if not u.scheme and not u.query and not url.startswith("/") and "\\" not in url:
        return url
    q = parse_qs(u.query)
    path = q["d"][0] if "d" in q else u.path
    return unquote(posixpath.basename(path.replace("\\", "/").rstrip("/")))


def _load(path: Path) -> Any:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=path) from None
    try:
        return orjson.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", file=path, place=f"line {exc.lineno}, column {exc.colno}") \
            from None


def _tasks(doc: Any) -> Any:
    if isinstance(doc, dict) and "data" in doc:
        return [doc]
    return doc


def _image_key(data: dict[str, Any], key: str | None) -> str | None:
    if key:
        return key if key in data else None
    if isinstance(data.get("image"), str):
        return "image"
    for k, v in data.items():
        if isinstance(v, str) and (v.lower().split("?")[0].endswith(IMAGE_EXT) or v.startswith(("http", "/data/"))):
            return k
    return None


class _Reader:
    def __init__(self, path: Path, ctx: ReadContext, doc: Any = None):
        self.path = path
        self.ctx = ctx
        self.doc = doc
        self.cats: dict[str, int] = {}
        self.ann: dict[str, list[Any]] = {k: [] for k in (
            "id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "geometry", "rle",
            "score", "annotator", "source_id", "attributes")}

    def cat(self, name: Any) -> int | None:
        if name is None:
            return None
        name = str(name)
        if name not in self.cats:
            self.cats[name] = len(self.cats) + 1
        return self.cats[name]

    def add(self, image_id: int, label: Any, kind: str, box: tuple[float, float, float, float],
            geometry: list[list[float]] | None, rle: str | None, score: float | None, annotator: str | None,
            source_id: str | None, attrs: dict[str, Any]) -> None:
        a = self.ann
        a["id"].append(len(a["id"]) + 1)
        a["image_id"].append(image_id)
        a["category_id"].append(self.cat(label))
        a["kind"].append(kind)
        for k, v in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box, strict=True):
            a[k].append(v)
        a["geometry"].append(geometry)
        a["rle"].append(rle)
        a["score"].append(score)
        a["annotator"].append(annotator)
        a["source_id"].append(source_id)
        a["attributes"].append(dumps_attrs(attrs))

    def results(self, image_id: int, results: list[dict[str, Any]], base: str, slot: dict[str, Any],
                annotator: str | None, score: float | None, size: list[Any]) -> list[dict[str, Any]]:
        """Turn one annotation's (or prediction's) results into rows; return results kept verbatim."""
        groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        order: list[str] = []
        for k, item in enumerate(results):
            rid = str(item.get("id", f"#{k}"))
            if rid not in groups:
                groups[rid] = []
                order.append(rid)
            groups[rid].append((k, item))
        other: list[dict[str, Any]] = []
        if size[0] is None:  # any result may carry the image size, whole-image choices included
            for item in results:
                W, H = item.get("original_width"), item.get("original_height")
                if isinstance(W, int | float) and isinstance(H, int | float) and W > 0 and H > 0:
                    size[0], size[1] = int(W), int(H)
                    break
        for rid in order:
            items = groups[rid]
            geo = [(k, it) for k, it in items if it.get("type") in GEOMETRY_TYPES]
            if geo:
                k, g = geo[0]
                extra = [_strip(it) for kk, it in items if kk != k]
                self.region(image_id, g, f"{base}/result/{k}", slot, annotator, score, extra, size)
                continue
            for _, it in items:
                if it.get("type") == "choices" and it.get("id") is not None:
                    choices = (it.get("value") or {}).get("choices") or []
                    ls = {**slot, **{kk: v for kk, v in it.items() if kk not in ITEM_KEYS}, "type": "choices"}
                    w, h = size
                    for c in choices:
                        self.add(image_id, c, "label", envelope("label", None, width=w, height=h), None, None,
                                 _score(it, score), annotator, rid, {"ls": ls})
                else:
                    other.append(it)
                    self.ctx.report.add("ls-result-not-converted", "results without a region or choice (text, "
                                        "rating, relation, video…) have no column; they are kept only to be "
                                        "written back to Label Studio", it.get("type"))
        return other

    def region(self, image_id: int, it: dict[str, Any], place: str, slot: dict[str, Any], annotator: str | None,
               score: float | None, extra: list[dict[str, Any]], size: list[Any]) -> None:
        t = str(it["type"])
        v = dict(it.get("value") or {})
        W, H = it.get("original_width"), it.get("original_height")
        if not W or not H:
            raise InputError(f"{t} result lacks original_width/original_height, needed to convert percentages",
                             file=self.path, place=place)
        if size[0] is None:
            size[0], size[1] = int(W), int(H)
        labels = v.pop(t, None) if t.endswith("labels") else None
        if labels is None:
            for e in extra:
                if e.get("type") == "labels":
                    labels = (e.get("value") or {}).get("labels")
                    break
        base = t[:-6] if t.endswith("labels") else t
        rle = None
        try:
            if base == "rectangle":
                rect = {k: v[k] for k in ("x", "y", "width", "height", "rotation") if k in v}
                x, y = pct_to_px(v.pop("x"), W), pct_to_px(v.pop("y"), H)
                w, h = pct_to_px(v.pop("width"), W), pct_to_px(v.pop("height"), H)
                rot = float(v.pop("rotation", 0) or 0)
                if rot:
                    geometry: list[list[float]] | None = [list(ls_rect_to_rbox(x, y, w, h, rot))]
                    kind = "rbox"
                    box = envelope(kind, geometry)
                else:
                    kind, geometry, box = "box", None, (x, y, w, h)
            elif base == "polygon":
                pts = v.pop("points")
                geometry = [[c for px, py in pts for c in (pct_to_px(px, W), pct_to_px(py, H))]]
                kind = "polygon"
                box = envelope(kind, geometry)
            elif base == "keypoint":
                geometry = [[pct_to_px(v.pop("x"), W), pct_to_px(v.pop("y"), H)]]
                kind = "point"
                box = envelope(kind, geometry)
            elif base == "ellipse":
                geometry = [[pct_to_px(v.pop("x"), W), pct_to_px(v.pop("y"), H), pct_to_px(v.pop("radiusX"), W),
                             pct_to_px(v.pop("radiusY"), H), float(v.pop("rotation", 0) or 0)]]
                kind = "ellipse"
                box = envelope(kind, geometry)
            else:  # brush
                if v.get("format", "rle") != "rle" or "rle" not in v:
                    self.ctx.report.add("brush-dropped", "brush regions not in LS RLE form were not read", place)
                    return
                rle = brush_to_coco(v.pop("rle"), int(W), int(H))
                v.pop("format", None)
                kind, geometry = "mask", [[float(H), float(W)]]
                box = envelope(kind, geometry, rle=rle)
        except KeyError as exc:
            raise InputError(f"{t} value lacks {exc.args[0]!r}", file=self.path, place=place + "/value") from None
        except (TypeError, ValueError) as exc:
            err = _schema_error(self.doc, self.path)  # a wrong type: the schema names the exact field
            raise err or InputError(f"{t} value is malformed: {exc}", file=self.path, place=place + "/value") \
                from None
        ls: dict[str, Any] = {**slot, **{k: val for k, val in it.items() if k not in ITEM_KEYS}, "type": t}
        if kind == "rbox":  # LS's own numbers, written back as they were while the box is unchanged
            ls["rect"] = rect
        if v:
            ls["value"] = v
        if labels is not None and len(labels) != 1:
            ls["labels"] = list(labels)
        if extra:
            ls["extra"] = extra
        label = labels[0] if labels else None
        self.add(image_id, label, kind, box, geometry, rle, _score(it, score), annotator,
                 str(it["id"]) if it.get("id") is not None else None, {"ls": ls})


def _score(it: dict[str, Any], default: float | None) -> float | None:
    s = it.get("score")
    return float(s) if isinstance(s, int | float) and not isinstance(s, bool) else default


def _strip(it: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in it.items() if k not in ("id", "original_width", "original_height")}


def _annotator(a: dict[str, Any]) -> str | None:
    cb = a.get("completed_by")
    if isinstance(cb, dict):
        cb = cb.get("email") or cb.get("id")
    return None if cb is None else str(cb)


def _json_path(path: Path) -> Path:
    """The export file itself, or in a folder its ``tasks.json`` (or its only JSON file)."""
    if not path.is_dir():
        return path
    if (path / "tasks.json").is_file():
        return path / "tasks.json"
    files = sorted(path.glob("*.json"))
    if len(files) == 1:
        return files[0]
    raise InputError("no tasks.json (or single JSON export) in this folder", file=path)


def _schema_error(doc: Any, path: Path) -> InputError | None:
    findings = validate(doc, "labelstudio", file=str(path), max_errors=1)
    if not findings:
        return None
    f = findings[0]
    return InputError(f"not a Label Studio export: {f.message}", file=path, place=f.place)


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read a Label Studio JSON export (list of tasks, or one task), or a folder holding tasks.json.

    The JSON Schema runs only when the conversion trips over a wrong type (it would take most of the
    time on large exports), or always with the option ``validate=True``; either way a wrong type is
    reported with its JSON pointer.
    """
    path = _json_path(path)
    doc = _tasks(_load(path))
    if ctx.options.get("validate") or not isinstance(doc, list):
        err = _schema_error(doc, path)
        if err is not None:
            raise err
    try:
        return _read_tasks(doc, path, ctx)
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        err = _schema_error(doc, path)
        if err is not None:
            raise err from None
        raise InputError(f"unexpected Label Studio structure: {exc!r}", file=path) from None


def _read_tasks(doc: list[Any], path: Path, ctx: ReadContext) -> Dataset:
    root = Path(ctx.options["root"]) if ctx.options.get("root") else (
        path.parent / "images" if (path.parent / "images").is_dir() else path.parent)
    r = _Reader(path, ctx, doc)
    images: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "annotator",
                                                      "attributes", *[c for c in IMAGE_COLUMNS
                                                                      if c not in ("width", "height")])}
    ids_seen: set[int] = set()
    for t, task in enumerate(progress(doc, desc="labelstudio tasks", unit="task")):
        place = f"/{t}"
        data = dict(task.get("data") or {})
        key = _image_key(data, ctx.options.get("image_key"))
        if key is None:
            raise InputError("task data holds no image reference", file=path, place=place + "/data")
        fn = file_name_from_url(str(data[key]))
        if not fn or fn in (".", ".."):
            raise InputError(f"cannot take an image file name from {data[key]!r}", file=path,
                             place=f"{place}/data/{key}")
        safe_join(root, fn, source=path, place=f"{place}/data/{key}")
        tid = task.get("id")
        iid = tid if isinstance(tid, int) and not isinstance(tid, bool) and tid not in ids_seen else len(images["id"])
        while iid in ids_seen:
            iid += 1
        ids_seen.add(iid)
        meta = data.pop("imagine", None)
        meta = meta if isinstance(meta, dict) else {}
        img_attrs = dict(meta.get("attributes") or {})
        img_attrs["ls_data"] = data
        task_rest = {k: v for k, v in task.items() if k not in ("id", "data", "annotations", "predictions")}
        if task_rest:
            img_attrs["ls_task"] = task_rest
        size: list[Any] = [meta.get("width"), meta.get("height")]
        ann_meta: list[dict[str, Any]] = []
        for i, a in enumerate(task.get("annotations") or []):
            m = {k: v for k, v in a.items() if k != "result"}
            slot = {"annotation": i, **{k: a[k] for k in ("was_cancelled", "ground_truth") if k in a}}
            other = r.results(iid, a.get("result") or [], f"{place}/annotations/{i}", slot,
                              _annotator(a), None, size)
            if other:
                m["other_results"] = other
            ann_meta.append(m)
        pred_meta: list[dict[str, Any]] = []
        for i, p in enumerate(task.get("predictions") or []):
            m = {k: v for k, v in p.items() if k != "result"}
            mv = p.get("model_version")
            other = r.results(iid, p.get("result") or [], f"{place}/predictions/{i}", {"prediction": i},
                              None if mv is None else str(mv), _score(p, None), size)
            if other:
                m["other_results"] = other
            pred_meta.append(m)
        if "annotations" in task:
            img_attrs["ls_annotations"] = ann_meta
        if "predictions" in task:
            img_attrs["ls_predictions"] = pred_meta
        images["id"].append(iid)
        images["file_name"].append(fn)
        images["width"].append(size[0])
        images["height"].append(size[1])
        for c in IMAGE_COLUMNS:
            if c not in ("width", "height"):
                images[c].append(meta.get(c))
        images["attributes"].append(dumps_attrs(img_attrs))
    _fill_label_envelopes(r, images)
    cats = {"id": list(r.cats.values()), "name": list(r.cats)}
    return Dataset.from_columns(images, r.ann, cats, {"root": str(root.resolve())})


def _fill_label_envelopes(r: _Reader, images: dict[str, list[Any]]) -> None:
    """Whole-image labels read before the image size was known get their envelope now."""
    sizes = {i: (w, h) for i, w, h in zip(images["id"], images["width"], images["height"], strict=True)}
    a = r.ann
    for k, kind in enumerate(a["kind"]):
        if kind == "label" and math.isnan(a["bbox_w"][k]):
            w, h = sizes[a["image_id"][k]]
            a["bbox_x"][k], a["bbox_y"][k], a["bbox_w"][k], a["bbox_h"][k] = envelope("label", None, width=w,
                                                                                      height=h)


# ------------------------------------------------------------------------------------------- write


def _region_id(a: dict[str, Any]) -> str:
    return str(a["source_id"]) if a["source_id"] is not None else f"imagine-{a['id']}"


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write ``tasks.json``: one task per image, annotations per annotator, predictions apart."""
    report = ctx.report
    names = ds.category_names()
    ann = ds.annotations
    cols = {c: ann.column(c).to_pylist() for c in ann.column_names}
    order, starts, ends = ds.annotations_by_image()
    written_cats: list[Any] = []
    for col in ("group_id", "track_id"):
        n = ann.num_rows - ann.column(col).null_count
        if n:
            report.add(f"{col.split('_')[0]}-dropped", f"Label Studio has no place for {col}", count=n)
    n = sum(1 for v in cols["iscrowd"] if v)
    if n:
        report.add("crowd-flag-dropped", "Label Studio has no crowd flag", count=n)
    tasks = []
    for r, im in enumerate(progress(ds.images.to_pylist(), desc="labelstudio write", unit="img")):
        attrs = loads_attrs(im["attributes"])
        data = dict(attrs.pop("ls_data", None) or {})
        key = _image_key(data, None) or "image"
        prefix = ctx.options.get("image_prefix", "")
        if key not in data or file_name_from_url(str(data[key])) != im["file_name"]:
            data[key] = f"{prefix}{im['file_name']}"
        task_rest = attrs.pop("ls_task", None) or {}
        ann_meta = attrs.pop("ls_annotations", None)
        pred_meta = attrs.pop("ls_predictions", None)
        w, h = im["width"], im["height"]
        if (w is None or h is None) and ctx.root is not None:
            p = safe_join(ctx.root, im["file_name"])
            if p.is_file():
                w, h = image_size(p)
        meta = {c: im[c] for c in IMAGE_COLUMNS if im.get(c) is not None and c not in ("width", "height")}
        if attrs:
            meta["attributes"] = attrs
        slots: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        slot_meta: dict[tuple[str, Any], dict[str, Any]] = {}
        for i, m in enumerate(ann_meta or []):
            slots[("annotations", i)] = []
            slot_meta[("annotations", i)] = dict(m)
        for i, m in enumerate(pred_meta or []):
            slots[("predictions", i)] = []
            slot_meta[("predictions", i)] = dict(m)
        for a_row in order[starts[r]:ends[r]]:
            a = {c: v[a_row] for c, v in cols.items()}
            a_attrs = loads_attrs(a["attributes"])
            ls = a_attrs.pop("ls", None) or {}
            if a_attrs:
                report.add("attributes-dropped", "Label Studio regions have no place for free attributes",
                           a["id"])
            if "annotation" in ls and ("annotations", ls["annotation"]) in slots:
                key_s: tuple[str, Any] = ("annotations", ls["annotation"])
            elif "prediction" in ls and ("predictions", ls["prediction"]) in slots:
                key_s = ("predictions", ls["prediction"])
            elif a["score"] is not None:
                key_s = ("predictions", ("model", a["annotator"]))
            else:
                key_s = ("annotations", ("user", a["annotator"]))
            if key_s not in slots:
                slots[key_s] = []
                new_meta: dict[str, Any] = {}
                if key_s[0] == "predictions" and a["annotator"] is not None:
                    new_meta["model_version"] = a["annotator"]
                elif a["annotator"] is not None:
                    new_meta["completed_by"] = int(a["annotator"]) if a["annotator"].isdigit() else a["annotator"]
                slot_meta[key_s] = new_meta
            items = _items(a, ls, names, w, h, report)
            if items:
                written_cats.append(a["category_id"])
            res = slots[key_s]
            if (items and items[0]["type"] == "choices" and res and res[-1].get("type") == "choices"
                    and res[-1].get("id") == items[0]["id"] and a["kind"] == "label"):
                res[-1]["value"]["choices"].append(items[0]["value"]["choices"][0])
            else:
                res.extend(items)
        if w is not None and h is not None and not any("original_width" in it for res in slots.values()
                                                          for it in res):
            meta.update(width=w, height=h)  # no region carries the size: keep it with the image
        if meta:
            data["imagine"] = meta
        task: dict[str, Any] = {"id": im["id"], "data": data}
        task.update(task_rest)
        for kind in ("annotations", "predictions"):
            lst = []
            for k, res in slots.items():
                if k[0] != kind:
                    continue
                m = dict(slot_meta[k])
                other = m.pop("other_results", None) or []
                lst.append({**m, "result": res + other})
            if lst or (kind == "annotations") or (pred_meta is not None):
                task[kind] = lst
        tasks.append(task)
        if ctx.images != "none":
            ctx.put_image(im["file_name"], safe_join(out / "images", im["file_name"]))
    _check_categories(ds, written_cats, report)
    (out / "tasks.json").write_bytes(orjson.dumps(tasks, option=orjson.OPT_INDENT_2))


def _check_categories(ds: Dataset, used: list[Any], report: ConversionReport) -> None:
    """Report what the LS reader cannot give back: ids (reassigned by first use) and unused categories."""
    first: dict[int, int] = {}
    for c in used:
        if c is not None and c not in first:
            first[c] = len(first) + 1
    cats = ds.categories.to_pylist()
    changed = [c["name"] for c in cats if c["id"] in first and first[c["id"]] != c["id"]]
    if changed:
        report.add_many("category-id-dropped", "Label Studio keeps label names only; ids are reassigned in order "
                        "of first use", changed, len(changed))
    unused = [c["name"] for c in cats if c["id"] not in first]
    if unused:
        report.add_many("category-dropped", "categories without annotations have no place in a Label Studio "
                        "export", unused, len(unused))
    extra = [c["name"] for c in cats if c["supercategory"] or c["taxon"] or c["attributes"] or c["keypoints"]]
    if extra:
        report.add_many("category-attributes-dropped", "Label Studio labels carry only a name", extra, len(extra))


def _rect_matches(rect: dict[str, Any], rbox: list[float], W: float, H: float) -> bool:
    """Whether LS's original rectangle numbers still convert to exactly this rotated box."""
    try:
        got = ls_rect_to_rbox(pct_to_px(rect["x"], W), pct_to_px(rect["y"], H), pct_to_px(rect["width"], W),
                              pct_to_px(rect["height"], H), float(rect.get("rotation") or 0))
    except (KeyError, TypeError, ValueError):
        return False
    return list(got) == list(rbox)


def _items(a: dict[str, Any], ls: dict[str, Any], names: dict[int, str], W: int | None, H: int | None,
           report: ConversionReport) -> list[dict[str, Any]]:
    """The LS result items of one annotation row."""
    kind, g, aid = a["kind"], a["geometry"], a["id"]
    name = names.get(a["category_id"]) if a["category_id"] is not None else None
    pct = px_to_pct

    base_item: dict[str, Any] = {"id": _region_id(a)}
    rest = {k: v for k, v in ls.items() if k not in ("annotation", "prediction", "was_cancelled", "ground_truth",
                                                        "type", "value", "labels", "extra", "rect")}
    rest.setdefault("from_name", "label" if kind != "label" else "choice")
    rest.setdefault("to_name", "image")
    if kind == "label":
        item = {**base_item, "type": "choices", "value": {"choices": [name]}, **rest}
        if W and H:
            item["original_width"], item["original_height"] = W, H
        if a["score"] is not None:
            item["score"] = a["score"]
        return [item]
    if kind in ("mask", "polyline"):
        report.add(f"{kind}-dropped", f"{kind} annotations are not written to Label Studio", aid)
        return []
    if not W or not H:
        report.add("image-size-missing", "image size unknown: percentages cannot be computed; region dropped", aid)
        return []
    value: dict[str, Any] = {}
    t = ls.get("type")
    if kind in ("box", "rbox"):
        if kind == "box":
            x, y, w, h, rot = a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"], 0.0
        else:
            x, y, w, h, rot = rbox_to_ls_rect(*g[0][:5])
            if rot % 360.0 == 0:
                report.add("rbox-to-box", "a rotated box with angle 0 is written (and read back) as a plain box", aid)
            if rot % 360.0 != rot:
                report.add("rotation-normalised", "Label Studio rotations are in [0, 360); the angle was wrapped",
                           aid)
                rot = rot % 360.0
        rect = ls.get("rect")
        if kind == "rbox" and isinstance(rect, dict) and _rect_matches(rect, g[0][:5], W, H):
            value = dict(rect)
        else:
            value = {"x": pct(x, W), "y": pct(y, H), "width": pct(w, W), "height": pct(h, H), "rotation": rot}
        t = t if t in ("rectangle", "rectanglelabels") else "rectanglelabels"
    elif kind == "polygon":
        rings = [r for r in (g or [])]
        if len(rings) > 1:
            report.add("polygon-parts-dropped", "Label Studio polygons have one ring; other parts/holes dropped", aid)
        ring = rings[0] if rings else []
        value = {"points": [[pct(ring[i], W), pct(ring[i + 1], H)] for i in range(0, len(ring) - 1, 2)]}
        t = t if t in ("polygon", "polygonlabels") else "polygonlabels"
    elif kind in ("point", "keypoints"):
        pts: list[tuple[float, float]] = []
        if kind == "point":
            flat = [c for ring in (g or []) for c in ring]
            pts = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
        else:
            flat = g[0]
            pts = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 2, 3) if flat[i + 2] > 0]
            report.add("keypoints-to-points", "keypoints written as separate Label Studio keypoints "
                       "(names, order and visibility lost)", aid)
        if kind == "point" and len(pts) > 1:
            report.add("points-split", "a multi-point annotation was written as several keypoints", aid)
        t = t if t in ("keypoint", "keypointlabels") else "keypointlabels"
        items = []
        for k, (px, py) in enumerate(pts):
            v = {"x": pct(px, W), "y": pct(py, H), **(ls.get("value") or {})}
            if t.endswith("labels"):
                v[t] = list(ls.get("labels") or ([name] if name is not None else []))
            it = {**base_item, "type": t, "value": v, "original_width": W, "original_height": H, **rest}
            if k:
                it["id"] = f"{base_item['id']}-{k}"
            if a["score"] is not None:
                it["score"] = a["score"]
            items.append(it)
        return items
    elif kind in ("ellipse", "circle"):
        if kind == "circle":
            cx, cy, rx = g[0][:3]
            ry, rot = rx, 0.0
            report.add("circle-to-ellipse", "Label Studio has no circle; written as an ellipse", aid)
        else:
            cx, cy, rx, ry, rot = g[0][:5]
        value = {"x": pct(cx, W), "y": pct(cy, H), "radiusX": pct(rx, W),
                 "radiusY": pct(ry, H), "rotation": rot}
        t = t if t in ("ellipse", "ellipselabels") else "ellipselabels"
    value.update(ls.get("value") or {})
    if t and t.endswith("labels"):
        value[t] = list(ls.get("labels") or ([name] if name is not None else []))
    item = {**base_item, "type": t, "value": value, "original_width": W, "original_height": H, **rest}
    if a["score"] is not None:
        item["score"] = a["score"]
    out = [item]
    for e in ls.get("extra") or []:
        out.append({"id": base_item["id"], **e, "original_width": W, "original_height": H})
    return out


# ------------------------------------------------------------------------------------------- detect/check


def detect(path: Path) -> int:
    """80 for a JSON list of tasks with ``data`` and annotations/predictions (or a folder's tasks.json)."""
    if path.is_dir():
        path = path / "tasks.json"
    if not path.is_file() or path.suffix.lower() != ".json":
        return 0
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536).decode("utf-8", "replace").lstrip("\ufeff \r\n\t")
    except OSError:
        return 0
    if head.startswith("[") and '"data"' in head and ('"annotations"' in head or '"predictions"' in head):
        return 80
    return 0


def check(path: Path) -> list[Finding]:
    """Structural check against ``labelstudio.schema.json``: every finding with its JSON pointer."""
    try:
        path = _json_path(path)
        doc = _tasks(_load(path))
    except InputError as exc:
        return [Finding("malformed-json", exc.message, file=exc.file, place=exc.place)]
    return validate(doc, "labelstudio", file=str(path))


register(Format("labelstudio", "Label Studio JSON export (rectangles incl. rotation, polygons, keypoints, "
                "ellipses, choices; brush read only)", read, write, detect, file_name="tasks.json", check=check))
