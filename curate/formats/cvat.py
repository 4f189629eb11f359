"""CVAT for images 1.1 XML and CVAT for video 1.1 XML: read and write.

Shapes: ``box`` (``rotation`` → ``rbox``), ``polygon``, ``polyline``, ``points`` (→ ``point``),
``ellipse``, ``mask`` (CVAT's crop RLE ↔ COCO RLE), ``skeleton`` (→ ``keypoints``), ``tag``
(→ ``label``). ``occluded``, ``z_order``, ``source`` (and ``keyframe`` in video) are kept in the
annotation attributes under those keys, CVAT ``<attribute>`` children beside them; ``group_id``
goes to ``annotations.group_id``. Labels of ``<meta>`` become categories (dense ids from 1 in meta
order, then labels met in shapes; annotation ids 1, 2, 3… in document order) with their attribute
specs kept in ``categories.attributes['cvat_attributes']`` so a round trip writes them back. Image
ids are CVAT's own unless the file repeats them (project exports: then dense ids, CVAT's in
``source_id``). Video tracks: every frame becomes an image row (``video``, ``frame``), ``<track
id>`` becomes ``annotations.track_id`` and shapes with ``outside="1"`` are skipped.

The writer writes CVAT for video when the images are the frames of one video and annotations
carry track ids (``mode=auto``, the default; ``mode=images`` or ``mode=video`` to choose): one
``<track>`` per track id with an ``outside`` keyframe where the track leaves, skeletons as
per-keypoint sub-tracks, ``<meta>`` with start/stop frame, frame filter, original size and source.

Coordinates are read exactly as written (CVAT writes two decimals) and written at full precision:
the corner that gives width/height (for rotated boxes, centre and size) back exactly when float64
has one, else the nearest — then a size reads back within one ulp of its corner (~1e-13 px), which
CVAT's corner form imposes and which is not reported.
"""

from __future__ import annotations

import bisect
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as DET

from imagine.kernel import ConversionReport, Finding, InputError, UsageError, image_size, progress, safe_join

from ..geometry import envelope
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

# Annotation attributes carried as XML attributes of the shape element (not <attribute> children).
BUILTIN_INT = ("z_order",)
BUILTIN_BOOL = ("occluded", "keyframe")
BUILTIN_STR = ("source",)
BUILTIN = BUILTIN_BOOL + BUILTIN_INT + BUILTIN_STR
# Label fields written back into <meta> (anything else on a category is reported).
LABEL_FIELDS = ("color", "type", "svg")
IMAGE_KEYS = ("id", "name", "width", "height", "subset")
SHAPE_TAGS = ("box", "polygon", "polyline", "points", "ellipse", "mask", "skeleton", "tag", "cuboid")


# ------------------------------------------------------------------------------------------- helpers


def parse_xml(path: Path) -> ET.Element:
    """Parse an XML file with defusedxml; malformed XML and entity tricks become InputError."""
    try:
        return DET.parse(str(path)).getroot()
    except DefusedXmlException as exc:
        raise InputError(f"XML refused: {exc!r} (entity declarations and external references are not "
                         "allowed)", file=path) from None
    except ET.ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        raise InputError(f"malformed XML: {exc.msg if hasattr(exc, 'msg') else exc}", file=path,
                         place=f"line {line}, column {col}") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from None


def _num(el: ET.Element, key: str, place: str, path: Path, default: float | None = None) -> float:
    v = el.get(key)
    if v is None:
        if default is not None:
            return default
        raise InputError(f"<{el.tag}> lacks the {key!r} attribute", file=path, place=place)
    try:
        x = float(v)
    except ValueError:
        raise InputError(f"attribute {key}={v!r} of <{el.tag}> is not a number", file=path, place=place) from None
    if not math.isfinite(x):
        raise InputError(f"attribute {key}={v!r} of <{el.tag}> is not finite", file=path, place=place)
    return x


def _int(el: ET.Element, key: str, place: str, path: Path) -> int | None:
    v = el.get(key)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        raise InputError(f"attribute {key}={v!r} of <{el.tag}> is not an integer", file=path,
                         place=place) from None


def _points(el: ET.Element, place: str, path: Path) -> list[float]:
    s = el.get("points")
    if s is None:
        raise InputError(f"<{el.tag}> lacks the 'points' attribute", file=path, place=place)
    out: list[float] = []
    for pair in s.split(";"):
        pair = pair.strip()
        if not pair:
            continue
        xy = pair.split(",")
        try:
            if len(xy) != 2:
                raise ValueError
            x, y = float(xy[0]), float(xy[1])
        except ValueError:
            raise InputError(f"points must be 'x,y;x,y;…', got {pair!r}", file=path, place=place) from None
        out += [x, y]
    return out


def fmt_num(x: float) -> str:
    """Full-precision decimal text of a float (integers without '.0')."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def _fmt_points(flat: list[float]) -> str:
    return ";".join(f"{fmt_num(flat[i])},{fmt_num(flat[i + 1])}" for i in range(0, len(flat) - 1, 2))


def exact_pair(lo: float, hi: float, centre: float, size: float) -> tuple[str, str, bool]:
    """Shortest decimals for ``lo``/``hi`` that read back to exactly ``centre`` and ``size``.

    A rotated box is stored about its centre; CVAT stores corners. ``(lo + hi) / 2`` and
    ``hi - lo`` of the plainly computed corners can miss the centre and size by an ulp, so the
    shortest decimal forms that reproduce both exactly are searched; the flag is False when no
    float64 pair does (the size is finer than the corners' resolution) and repr is used.
    """
    for p in range(1, 18):
        a, b = f"{lo:.{p}g}", f"{hi:.{p}g}"
        fa, fb = float(a), float(b)
        if (fa + fb) / 2 == centre and fb - fa == size:
            return a, b, True
    for da in (0, 1, -1, 2, -2):
        for db in (0, 1, -1, 2, -2):
            fa = lo + da * math.ulp(lo)
            fb = hi + db * math.ulp(hi)
            if (fa + fb) / 2 == centre and fb - fa == size:
                return repr(fa), repr(fb), True
    return fmt_num(lo), fmt_num(hi), False


def exact_end(start: float, size: float) -> float:
    """The float ``end`` nearest ``start + size`` for which ``end - start == size`` exactly (when one exists)."""
    end = start + size
    lo = hi = end
    for _ in range(4):
        if hi - start == size:
            return hi
        if lo - start == size:
            return lo
        lo, hi = math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)
    return end


def cvat_rle_to_coco(counts: list[int], left: int, top: int, w: int, h: int, width: int, height: int) -> str:
    """CVAT's crop RLE (row-major runs over the w×h crop, starting with background) → COCO RLE string."""
    from pycocotools import mask as mask_utils

    flat = np.zeros(w * h, dtype=np.uint8)
    pos, val = 0, 0
    for c in counts:
        if val:
            flat[pos:pos + c] = 1
        pos += c
        val ^= 1
    full = np.zeros((height, width), dtype=np.uint8, order="F")
    crop = flat.reshape(h, w)
    y1, x1 = min(top + h, height), min(left + w, width)
    full[top:y1, left:x1] = crop[:y1 - top, :x1 - left]
    enc = mask_utils.encode(np.asfortranarray(full))
    return enc["counts"].decode("ascii")


def coco_to_cvat_rle(rle: str, height: int, width: int) -> tuple[list[int], int, int, int, int] | None:
    """COCO RLE string → (CVAT crop runs, left, top, width, height); None for an empty mask."""
    from pycocotools import mask as mask_utils

    m = mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")})
    ys, xs = np.nonzero(m)
    if len(ys) == 0:
        return None
    top, bottom, left, right = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    flat = np.ascontiguousarray(m[top:bottom + 1, left:right + 1]).reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [len(flat)]])
    runs = np.diff(bounds).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return runs, left, top, right - left + 1, bottom - top + 1


# ------------------------------------------------------------------------------------------- read


class _Builder:
    """Accumulates column lists while walking the XML."""

    def __init__(self) -> None:
        self.cat_ids: dict[str, int] = {}
        self.cat_attrs: dict[str, dict[str, Any]] = {}
        self.cat_kp: dict[str, list[str]] = {}
        self.ann: dict[str, list[Any]] = {k: [] for k in (
            "id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "geometry", "rle",
            "track_id", "group_id", "attributes")}

    def category(self, name: str | None) -> int | None:
        if not name:
            return None
        if name not in self.cat_ids:
            self.cat_ids[name] = len(self.cat_ids) + 1
        return self.cat_ids[name]

    def add(self, image_id: int, label: str | None, kind: str, box: tuple[float, float, float, float],
            geometry: list[list[float]] | None, rle: str | None, track: int | None, group: int | None,
            attrs: dict[str, Any]) -> None:
        a = self.ann
        a["id"].append(len(a["id"]) + 1)
        a["image_id"].append(image_id)
        a["category_id"].append(self.category(label))
        a["kind"].append(kind)
        for k, v in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box, strict=True):
            a[k].append(v)
        a["geometry"].append(geometry)
        a["rle"].append(rle)
        a["track_id"].append(track)
        a["group_id"].append(group)
        a["attributes"].append(dumps_attrs(attrs))


def _read_meta(root: ET.Element, b: _Builder, info: dict[str, Any]) -> dict[str, Any]:
    """Labels (with attribute specs) into the builder; simple task fields into info['cvat']."""
    meta = root.find("meta")
    task_fields: dict[str, Any] = {}
    if meta is None:
        return task_fields
    holder = None
    for tag in ("task", "job", "project"):
        holder = meta.find(tag)
        if holder is not None:
            info_tag = tag
            break
    labels = meta.find(".//labels")
    if labels is not None:
        for lab in labels.findall("label"):
            name = lab.findtext("name") or ""
            parent = lab.findtext("parent")
            if parent:
                b.cat_kp.setdefault(parent, []).append(name)
                continue
            b.category(name)
            attrs: dict[str, Any] = {}
            for child in lab:
                if child.tag in ("name", "attributes", "parent"):
                    continue
                if len(child) == 0:
                    attrs[child.tag] = child.text or ""
                else:
                    attrs[child.tag] = ET.tostring(child, encoding="unicode").strip()
            specs = []
            for at in lab.findall("attributes/attribute"):
                specs.append({c.tag: (c.text or "") for c in at})
            if specs or lab.find("attributes") is not None:
                attrs["cvat_attributes"] = specs
            b.cat_attrs[name] = attrs
    if holder is not None:
        for child in holder:
            if len(child) == 0 and child.tag not in ("labels",):
                task_fields[child.tag] = child.text or ""
        osz = holder.find("original_size")
        if osz is not None:
            task_fields["original_size"] = {c.tag: c.text for c in osz}
        info["cvat"] = {"meta": info_tag, "fields": task_fields}
    src = meta.findtext("source")
    if src:
        info.setdefault("cvat", {})["source"] = src
    return task_fields


def _shape(el: ET.Element, b: _Builder, image_id: int, size: tuple[int | None, int | None], place: str,
           path: Path, report: ConversionReport, track: int | None = None, extra: dict[str, Any] | None = None,
           label: str | None = None) -> None:
    """One shape element → one annotation row."""
    tag = el.tag
    attrs: dict[str, Any] = dict(extra or {})
    for k in BUILTIN_BOOL:
        v = el.get(k)
        if v is not None:
            attrs[k] = v.strip().lower() in ("1", "true")
    for k in BUILTIN_INT:
        iv = _int(el, k, place, path)
        if iv is not None:
            attrs[k] = iv
    for k in BUILTIN_STR:
        v = el.get(k)
        if v is not None:
            attrs[k] = v
    for at in el.findall("attribute"):
        attrs[at.get("name") or ""] = at.text or ""
    group = _int(el, "group_id", place, path)
    label = el.get("label") if label is None else label
    w, h = size
    geometry: list[list[float]] | None
    rle = None
    if tag == "box":
        x1, y1 = _num(el, "xtl", place, path), _num(el, "ytl", place, path)
        x2, y2 = _num(el, "xbr", place, path), _num(el, "ybr", place, path)
        rot = _num(el, "rotation", place, path, 0.0)
        if rot:
            geometry = [[(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, rot]]
            kind = "rbox"
            box = envelope(kind, geometry)
        else:
            kind, geometry, box = "box", None, (x1, y1, x2 - x1, y2 - y1)
    elif tag in ("polygon", "polyline", "points"):
        kind = {"polygon": "polygon", "polyline": "polyline", "points": "point"}[tag]
        geometry = [_points(el, place, path)]
        box = envelope(kind, geometry)
    elif tag == "ellipse":
        geometry = [[_num(el, "cx", place, path), _num(el, "cy", place, path), _num(el, "rx", place, path),
                     _num(el, "ry", place, path), _num(el, "rotation", place, path, 0.0)]]
        kind = "ellipse"
        box = envelope(kind, geometry)
    elif tag == "mask":
        if not w or not h:
            raise InputError("a <mask> needs the image's width and height", file=path, place=place)
        try:
            counts = [int(float(c)) for c in (el.get("rle") or "").replace(" ", "").split(",") if c]
        except ValueError:
            raise InputError("mask rle must be comma-separated integers", file=path, place=place) from None
        left, top = int(_num(el, "left", place, path)), int(_num(el, "top", place, path))
        mw, mh = int(_num(el, "width", place, path)), int(_num(el, "height", place, path))
        if sum(counts) != mw * mh or min(counts, default=0) < 0:
            raise InputError(f"mask rle covers {sum(counts)} pixels, expected width×height = {mw * mh}",
                             file=path, place=place)
        rle = cvat_rle_to_coco(counts, left, top, mw, mh, w, h)
        kind, geometry = "mask", [[float(h), float(w)]]
        box = envelope(kind, geometry, rle=rle)
    elif tag == "skeleton":
        flat: list[float] = []
        names: list[str] = []
        for n_pt, pt in enumerate(el.findall("points")):
            p = _points(pt, f"{place}/points[{n_pt + 1}]", path)[:2] or [0.0, 0.0]
            outside = (pt.get("outside") or "0") in ("1", "true")
            occluded = (pt.get("occluded") or "0") in ("1", "true")
            flat += [p[0], p[1], 0.0 if outside else 1.0 if occluded else 2.0]
            names.append(pt.get("label") or str(n_pt + 1))
        if label:
            b.cat_kp.setdefault(label, names)
        kind, geometry = "keypoints", [flat]
        box = envelope(kind, geometry)
    elif tag == "tag":
        kind, geometry = "label", None
        box = envelope("label", None, width=w, height=h)
    else:
        report.add(f"{tag}-dropped", f"CVAT <{tag}> shapes have no place in the dataset model", place)
        return
    b.add(image_id, label, kind, box, geometry, rle, track, group, attrs)


def _xml_path(path: Path) -> Path:
    if path.is_dir():
        p = path / "annotations.xml"
        if p.is_file():
            return p
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) == 1:
            return xmls[0]
        raise InputError("no annotations.xml in this folder", file=path)
    return path


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read a CVAT for images or for video 1.1 XML file (or a folder holding annotations.xml)."""
    xml = _xml_path(path)
    root = parse_xml(xml)
    if root.tag != "annotations":
        raise InputError(f"not a CVAT XML file: root element is <{root.tag}>, expected <annotations>", file=xml,
                         place="/" + root.tag)
    img_root = Path(ctx.options["root"]) if ctx.options.get("root") else (
        xml.parent / "images" if (xml.parent / "images").is_dir() else xml.parent)
    info: dict[str, Any] = {"root": str(img_root.resolve())}
    b = _Builder()
    task = _read_meta(root, b, info)
    version = root.findtext("version")
    if version:
        info.setdefault("cvat", {})["version"] = version
    images: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "split", "video",
                                                      "frame", "attributes")}
    sizes: dict[int, tuple[int | None, int | None]] = {}
    image_elems = root.findall("image")
    raw_ids = [im.get("id") for im in image_elems]
    # CVAT project exports repeat frame ids per task; hand-made files may leave some out
    repeated = len(set(raw_ids)) != len(raw_ids) or (None in raw_ids and len(raw_ids) > 1)
    images["source_id"] = []
    for n, im in enumerate(progress(image_elems, desc="cvat images", unit="img"), 1):
        place = f"/annotations/image[{n}]"
        name = im.get("name")
        if name is None:
            raise InputError("<image> lacks the 'name' attribute", file=xml, place=place)
        safe_join(img_root, name, source=xml, place=place)
        iid = _int(im, "id", place, xml)
        images["source_id"].append(str(iid) if repeated and iid is not None else None)
        iid = len(images["id"]) if iid is None or repeated else iid
        w, h = _int(im, "width", place, xml), _int(im, "height", place, xml)
        images["id"].append(iid)
        images["file_name"].append(name)
        images["width"].append(w)
        images["height"].append(h)
        images["split"].append(im.get("subset"))
        images["video"].append(None)
        images["frame"].append(None)
        images["attributes"].append(dumps_attrs({k: v for k, v in im.attrib.items() if k not in IMAGE_KEYS}))
        sizes[iid] = (w, h)
        k = 0
        for el in im:
            if el.tag not in SHAPE_TAGS:
                continue
            k += 1
            _shape(el, b, iid, (w, h), f"{place}/{el.tag}[{k}]", xml, ctx.report)
    tracks = root.findall("track")
    if tracks:
        _read_tracks(tracks, b, images, sizes, task, info, img_root, xml, ctx.report)
    cat_names = list(b.cat_ids)
    cats = {
        "id": [b.cat_ids[n] for n in cat_names],
        "name": cat_names,
        "keypoints": [b.cat_kp.get(n) for n in cat_names],
        "attributes": [dumps_attrs(b.cat_attrs.get(n)) for n in cat_names],
    }
    return Dataset.from_columns(images, b.ann, cats, info)


def _read_tracks(tracks: list[ET.Element], b: _Builder, images: dict[str, list[Any]],
                 sizes: dict[int, tuple[int | None, int | None]], task: dict[str, Any], info: dict[str, Any],
                 img_root: Path, xml: Path, report: ConversionReport) -> None:
    """CVAT for video: every frame is an image row; per-frame shapes become annotations with track_id."""
    osz = task.get("original_size") or {}
    try:
        vw = int(osz["width"]) if osz.get("width") else None
        vh = int(osz["height"]) if osz.get("height") else None
    except ValueError:
        raise InputError("original_size width/height must be integers", file=xml,
                         place="/annotations/meta/task/original_size") from None
    video = info.get("cvat", {}).get("source") or task.get("source") or task.get("name") or xml.stem
    step = 1
    ff = str(task.get("frame_filter") or "")
    if ff.startswith("step="):
        try:
            step = max(1, int(ff[5:]))
        except ValueError:
            raise InputError(f"frame_filter {ff!r} is not step=N", file=xml, place="/annotations/meta/task") \
                from None
    frames: set[int] = set()
    for n, tr in enumerate(tracks, 1):
        for el in tr:
            if el.tag in SHAPE_TAGS:
                f = _int(el, "frame", f"/annotations/track[{n}]/{el.tag}", xml)
                if f is None:
                    raise InputError(f"<{el.tag}> of a track lacks 'frame'", file=xml,
                                     place=f"/annotations/track[{n}]")
                frames.add(f)
    try:
        start = int(task.get("start_frame") or 0)
        stop = int(task["stop_frame"]) if task.get("stop_frame") not in (None, "") else None
        size = int(task["size"]) if task.get("size") not in (None, "") else None
    except ValueError:
        raise InputError("start_frame/stop_frame/size must be integers", file=xml, place="/annotations/meta/task") \
            from None
    if stop is None and size is not None:
        stop = start + size - 1
    if stop is not None and stop - start < 10_000_000:
        frames.update(range(start, stop + 1, step))
    existing = set(images["id"])
    available = {p.stem: p.name for p in img_root.glob("frame_*")} if img_root.is_dir() else {}
    for f in sorted(frames):
        if f in existing:
            continue
        stem = f"frame_{f:06d}"
        images["id"].append(f)
        images["file_name"].append(available.get(stem, stem + ".PNG"))
        images["width"].append(vw)
        images["height"].append(vh)
        images["split"].append(None)
        images["source_id"].append(None)
        images["video"].append(video)
        images["frame"].append(f)
        images["attributes"].append(None)
        sizes[f] = (vw, vh)
    for n, tr in enumerate(tracks, 1):
        place = f"/annotations/track[{n}]"
        tid = _int(tr, "id", place, xml)
        label = tr.get("label")
        extra: dict[str, Any] = {}
        if tr.get("source") is not None:
            extra["source"] = tr.get("source")
        group = _int(tr, "group_id", place, xml)
        sub_tracks = tr.findall("track")
        k = 0
        for el in tr:
            if el.tag not in SHAPE_TAGS:
                continue
            k += 1
            if (el.get("outside") or "0") in ("1", "true"):
                continue
            f = int(el.get("frame") or 0)
            if el.tag == "skeleton" and sub_tracks and el.find("points") is None:
                _skeleton_frame(el, sub_tracks, f)
            if el.get("group_id") is None and group is not None:
                el.set("group_id", str(group))
            _shape(el, b, f, sizes.get(f, (vw, vh)), f"{place}/{el.tag}[{k}]", xml, report, track=tid,
                   extra=extra, label=label)


def _skeleton_frame(el: ET.Element, sub_tracks: list[ET.Element], frame: int) -> None:
    """Give a video skeleton shape the <points> children its per-keypoint sub-tracks hold at ``frame``.

    A keypoint whose sub-track has no shape at that frame (or an ``outside`` one) is outside, at the
    position the skeleton's own ``points`` attribute gives it.
    """
    own = [p for p in (el.get("points") or "").split(";") if p.strip()]
    for j, st in enumerate(sub_tracks):
        shape = next((p for p in st if p.tag == "points" and p.get("frame") == str(frame)), None)
        pt = ET.SubElement(el, "points")
        pt.set("label", st.get("label") or "")
        if shape is None:
            pt.set("outside", "1")
            pt.set("points", own[j] if j < len(own) else "0,0")
        else:
            for key in ("outside", "occluded", "points"):
                if shape.get(key) is not None:
                    pt.set(key, shape.get(key) or "")


# ------------------------------------------------------------------------------------------- write


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def _meta(ds: Dataset, root: ET.Element, report: ConversionReport) -> None:
    cvat = ds.info.get("cvat") or {}
    meta = _sub(root, "meta")
    holder = _sub(meta, cvat.get("meta") or "task")
    for k, v in (cvat.get("fields") or {}).items():
        if isinstance(v, str) and k not in ("labels",):
            _sub(holder, k, v)
    labels = _sub(holder, "labels")
    cats = ds.categories.to_pylist()
    for c in cats:
        lab = _sub(labels, "label")
        _sub(lab, "name", c["name"])
        attrs = loads_attrs(c["attributes"])
        for k in LABEL_FIELDS:
            if k in attrs and isinstance(attrs[k], str):
                if attrs[k].startswith(f"<{k}"):  # a nested element kept as XML text
                    try:
                        lab.append(DET.fromstring(attrs[k]))
                        continue
                    except (ET.ParseError, DefusedXmlException):
                        pass
                _sub(lab, k, attrs[k])
        if c["keypoints"] and "type" not in attrs:
            _sub(lab, "type", "skeleton")
        specs = attrs.get("cvat_attributes")
        if isinstance(specs, list):
            ats = _sub(lab, "attributes")
            for spec in specs:
                at = _sub(ats, "attribute")
                for k, v in (spec or {}).items():
                    _sub(at, str(k), str(v))
        lost = [k for k in attrs if k not in LABEL_FIELDS and k != "cvat_attributes"]
        lost += [k for k in ("supercategory", "taxon") if c[k] is not None]
        if lost:
            report.add("category-attributes-dropped", "category fields CVAT labels cannot hold were dropped",
                       f"{c['name']}: {', '.join(lost)}")
        for kp in c["keypoints"] or []:
            sl = _sub(labels, "label")
            _sub(sl, "name", kp)
            _sub(sl, "type", "points")
            _sub(sl, "parent", c["name"])
    expected = list(range(1, len(cats) + 1))
    if [c["id"] for c in cats] != expected:
        report.add("category-id-dropped", "CVAT labels have no ids; category ids become 1, 2, 3… in table order",
                   count=len(cats))


def _set_builtin(el: ET.Element, attrs: dict[str, Any], keys: tuple[str, ...] = BUILTIN) -> dict[str, Any]:
    rest = dict(attrs)
    for k in keys:
        if k in rest:
            v = rest.pop(k)
            if k in BUILTIN_BOOL:
                el.set(k, "1" if v in (True, 1, "1", "true", "True") else "0")
            else:
                el.set(k, str(v))
    return rest


def _set_attributes(el: ET.Element, attrs: dict[str, Any], aid: int, report: ConversionReport) -> None:
    for k, v in attrs.items():
        if isinstance(v, dict | list) or v is None:
            report.add("attributes-dropped", "structured or null attribute values have no place in CVAT XML",
                       f"{aid}: {k}")
            continue
        if not isinstance(v, str):
            report.add("attribute-to-text", "non-text attribute values are written as text", f"{aid}: {k}")
            v = ("true" if v else "false") if isinstance(v, bool) else fmt_num(v) if isinstance(v, float) else str(v)
        at = _sub(el, "attribute", v)
        at.set("name", str(k))


def _lost_image_columns(ds: Dataset, report: ConversionReport) -> None:
    for col in ("checksum", "site", "datetime", "latitude", "longitude", "depth", "video", "frame",
                "instrument", "annotator"):
        n = ds.images.num_rows - ds.images.column(col).null_count
        if n:
            report.add("image-metadata-dropped", "image metadata columns CVAT XML cannot hold were dropped",
                       col, count=n)
    bad = [s for s in ds.images.column("source_id").to_pylist() if s is not None and not s.isdigit()]
    if bad:
        report.add_many("source-id-dropped", "CVAT image ids are integers; non-integer source ids were dropped",
                        bad, len(bad))


def _video_mode(ds: Dataset, mode: str) -> bool:
    """CVAT for video when asked, or (``auto``) when the images are the frames of one video with tracks."""
    if mode in ("images", "video"):
        return mode == "video"
    if mode != "auto":
        raise UsageError(f"CVAT writer mode must be auto, images or video, not {mode!r}")
    frames, videos = ds.images.column("frame"), ds.images.column("video")
    return (ds.images.num_rows > 0 and frames.null_count == 0 and videos.null_count == 0
            and len(set(videos.to_pylist())) == 1 and ds.annotations.column("track_id").null_count < ds.num_annotations)


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write ``annotations.xml`` (CVAT for images 1.1, or CVAT for video 1.1 for the frames of one video
    with tracks; option ``mode=auto|images|video``) and, unless images="none", ``images/``."""
    report = ctx.report
    root = ET.Element("annotations")
    _sub(root, "version", "1.1")
    if _video_mode(ds, str(ctx.options.get("mode", "auto"))):
        _write_video(ds, out, ctx, root)
        return
    _meta(ds, root, report)
    _lost_image_columns(ds, report)
    names = ds.category_names()
    kps = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("keypoints").to_pylist(),
                   strict=True))
    ann = ds.annotations
    cols = {c: ann.column(c).to_pylist() for c in ("id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w",
                                                    "bbox_h", "geometry", "rle", "iscrowd", "score", "track_id",
                                                    "group_id", "annotator", "source_id", "attributes")}
    order, starts, ends = ds.annotations_by_image()
    imgs = ds.images.to_pylist()
    for r, im in enumerate(progress(imgs, desc="cvat write", unit="img")):
        el = _sub(root, "image")
        sid = im["source_id"]
        el.set("id", sid if sid is not None and sid.isdigit() else str(im["id"]))
        el.set("name", im["file_name"])
        w, h = im["width"], im["height"]
        if (w is None or h is None) and ctx.root is not None:
            p = safe_join(ctx.root, im["file_name"])
            if p.is_file():
                w, h = image_size(p)
        if w is not None and h is not None:
            el.set("width", str(w))
            el.set("height", str(h))
        else:
            report.add("image-size-missing", "image width/height unknown; written without them", im["file_name"])
        if im["split"] is not None:
            el.set("subset", im["split"])
        for k, v in loads_attrs(im["attributes"]).items():
            if k in IMAGE_KEYS or not isinstance(v, str | int | float) or not k.isidentifier():
                report.add("attributes-dropped", "image attributes CVAT cannot hold were dropped",
                           f"{im['file_name']}: {k}")
            else:
                if not isinstance(v, str):
                    report.add("attribute-to-text", "non-text attribute values are written as text",
                               f"{im['file_name']}: {k}")
                el.set(k, v if isinstance(v, str) else str(v))
        for a in order[starts[r]:ends[r]]:
            _write_shape(el, {c: v[a] for c, v in cols.items()}, names, kps, (w, h), report)
        if ctx.images != "none":
            ctx.put_image(im["file_name"], safe_join(out / "images", im["file_name"]))
    ET.indent(root, space="  ")
    ET.ElementTree(root).write(out / "annotations.xml", encoding="utf-8", xml_declaration=True)


def _write_shape(parent: ET.Element, a: dict[str, Any], names: dict[int, str], kps: dict[int, Any],
                 size: tuple[int | None, int | None], report: ConversionReport, video: bool = False) -> None:
    aid, kind, g = a["id"], a["kind"], a["geometry"]
    label = names.get(a["category_id"], "") if a["category_id"] is not None else ""
    for col, code, msg in (("iscrowd", "crowd-flag-dropped", "CVAT has no crowd flag"),
                           ("score", "score-dropped", "CVAT XML has no confidence score"),
                           ("track_id", "track-dropped", "tracks are not written by the images writer"),
                           ("annotator", "annotator-dropped", "CVAT shapes carry no annotator"),
                           ("source_id", "source-id-dropped", "CVAT shapes carry no id")):
        if a[col] is not None and a[col] is not False and not (video and col == "track_id"):
            report.add(code, msg, aid)
    attrs = loads_attrs(a["attributes"])
    nested = attrs.get("attributes")
    if isinstance(nested, dict):  # COCO/Datumaro keep tool attributes in a nested "attributes" object
        del attrs["attributes"]
        for k, v in nested.items():
            attrs.setdefault(k, v)

    def shape(tag: str) -> ET.Element:
        el = _sub(parent, tag)
        el.set("label", label)
        return el

    elems: list[ET.Element] = []
    if kind == "box":
        el = shape("box")
        x, y, w, h = a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"]
        # Full precision, the corner that gives w back exactly when one exists. When none does (w finer
        # than the corner's float64 resolution), w reads back within one ulp of the corner: a property
        # of CVAT's corner form, not a loss, so not reported (the brief: full precision, report nothing).
        el.set("xtl", fmt_num(x))
        el.set("ytl", fmt_num(y))
        el.set("xbr", fmt_num(exact_end(x, w)))
        el.set("ybr", fmt_num(exact_end(y, h)))
        elems.append(el)
    elif kind == "rbox":
        cx, cy, w, h, ang = g[0][:5]
        el = shape("box")
        sx1, sx2, _ = exact_pair(cx - w / 2, cx + w / 2, cx, w)  # within an ulp when not exact, as above
        sy1, sy2, _ = exact_pair(cy - h / 2, cy + h / 2, cy, h)
        for key, text in (("xtl", sx1), ("ytl", sy1), ("xbr", sx2), ("ybr", sy2)):
            el.set(key, text)
        rot = ang % 360.0
        if rot == 0:
            report.add("rbox-to-box", "a rotated box with angle 0 is written (and read back) as a plain box", aid)
        else:
            if rot != ang:
                report.add("rotation-normalised", "CVAT rotations are in [0, 360); the angle was wrapped", aid)
            el.set("rotation", fmt_num(rot))
        elems.append(el)
    elif kind in ("polygon", "polyline", "point"):
        tag = {"polygon": "polygon", "polyline": "polyline", "point": "points"}[kind]
        rings = list(g or [])
        if kind == "polygon" and any(len(r) == 0 for r in rings):
            cut = next(i for i, r in enumerate(rings) if len(r) == 0)
            report.add("polygon-holes-dropped", "CVAT polygons cannot hold holes", aid)
            rings = rings[:cut]
        if len(rings) > 1:
            report.add(f"multipart-{kind}-split", f"a multi-part {kind} was written as several CVAT shapes", aid)
        for ring in rings:
            el = shape(tag)
            el.set("points", _fmt_points(ring))
            elems.append(el)
    elif kind == "ellipse":
        cx, cy, rx, ry, ang = g[0][:5]
        el = shape("ellipse")
        for k, v in (("cx", cx), ("cy", cy), ("rx", rx), ("ry", ry)):
            el.set(k, fmt_num(v))
        if ang:
            el.set("rotation", fmt_num(ang))
        elems.append(el)
    elif kind == "circle":
        cx, cy, r = g[0][:3]
        el = shape("ellipse")
        for k, v in (("cx", cx), ("cy", cy), ("rx", r), ("ry", r)):
            el.set(k, fmt_num(v))
        report.add("circle-to-ellipse", "CVAT has no circle; written as an ellipse with equal radii", aid)
        elems.append(el)
    elif kind == "mask":
        mh, mw = int(g[0][0]), int(g[0][1])
        res = coco_to_cvat_rle(a["rle"], mh, mw) if a["rle"] else None
        if res is None:
            report.add("mask-dropped", "empty or missing mask was not written", aid)
            return
        runs, left, top, cw, ch = res
        el = shape("mask")
        el.set("rle", ", ".join(map(str, runs)))
        for key, num in (("left", left), ("top", top), ("width", cw), ("height", ch)):
            el.set(key, str(num))
        elems.append(el)
    elif kind == "keypoints":
        el = shape("skeleton")
        flat = g[0]
        names_kp = kps.get(a["category_id"]) or []
        for i in range(0, len(flat) - 2, 3):
            pt = _sub(el, "points")
            pt.set("label", names_kp[i // 3] if i // 3 < len(names_kp) else str(i // 3 + 1))
            v = flat[i + 2]
            pt.set("outside", "1" if v == 0 else "0")
            pt.set("occluded", "1" if v == 1 else "0")
            pt.set("points", _fmt_points(flat[i:i + 2]))
        elems.append(el)
    elif kind == "label":
        elems.append(shape("tag"))
    else:  # pragma: no cover - every model kind is handled above
        report.add(f"{kind}-dropped", f"geometry kind {kind!r} has no CVAT shape", aid)
        return
    for el in elems:
        rest = _set_builtin(el, attrs)
        if a["group_id"] is not None:
            el.set("group_id", str(a["group_id"]))
        _set_attributes(el, rest, aid, report)


def _write_video(ds: Dataset, out: Path, ctx: WriteContext, root: ET.Element) -> None:
    """CVAT for video 1.1: one ``<track>`` per track id (untracked shapes become one-frame tracks),
    ``outside`` keyframes where a track leaves, skeletons as per-keypoint sub-tracks."""
    report = ctx.report
    imgs = ds.images.to_pylist()
    frame_of = {im["id"]: int(im["frame"]) for im in imgs}
    frames = sorted(set(frame_of.values()))
    step = 0
    for a_, b_ in zip(frames, frames[1:], strict=False):
        step = math.gcd(step, b_ - a_)
    step = step or 1
    if len(frames) != (frames[-1] - frames[0]) // step + 1:
        report.add("video-frames-filled", "CVAT videos are evenly spaced frames; frames in the gaps are read "
                   "back as images without annotations", count=(frames[-1] - frames[0]) // step + 1 - len(frames))
    # meta: the task fields we keep, then what this video defines
    cvat = dict(ds.info.get("cvat") or {})
    fields = {k: v for k, v in (cvat.get("fields") or {}).items()
              if k not in ("size", "mode", "start_frame", "stop_frame", "frame_filter", "original_size")}
    fields.update(size=str(len(frames)), mode="interpolation", start_frame=str(frames[0]),
                  stop_frame=str(frames[-1]), frame_filter=f"step={step}" if step > 1 else "")
    video_name = str(imgs[0]["video"])
    tmp = Dataset(ds.images, ds.annotations, ds.categories, {**ds.info, "cvat": {**cvat, "meta": "task",
                                                                                 "fields": fields}})
    _meta(tmp, root, report)
    task = root.find("meta/task")
    assert task is not None
    osz = _sub(task, "original_size")
    _sub(osz, "width", str(imgs[0]["width"] or ""))
    _sub(osz, "height", str(imgs[0]["height"] or ""))
    meta = root.find("meta")
    assert meta is not None
    _sub(meta, "source", video_name)
    lost = [c for c in ("split", "checksum", "site", "datetime", "latitude", "longitude", "depth", "instrument",
                        "annotator", "source_id", "attributes") if ds.images.column(c).null_count < len(imgs)]
    for c in lost:
        report.add("image-metadata-dropped", "CVAT video frames carry no per-frame metadata", c,
                   count=len(imgs) - ds.images.column(c).null_count)
    renamed = [im["file_name"] for im in imgs if Path(im["file_name"]).stem != f"frame_{int(im['frame']):06d}"]
    if renamed:
        report.add_many("image-name-dropped", "CVAT video frames are named frame_NNNNNN; other names are not kept",
                        renamed, len(renamed))
    names = ds.category_names()
    kps = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("keypoints").to_pylist(),
                   strict=True))
    rows = ds.annotations.to_pylist()
    tracks: dict[int, list[dict[str, Any]]] = {}
    used = {r["track_id"] for r in rows if r["track_id"] is not None}
    nxt = max(used, default=-1) + 1
    for r in rows:
        if r["kind"] == "label":
            report.add("tag-dropped", "whole-frame labels are not written to CVAT video tracks", r["id"])
            continue
        tid = r["track_id"]
        if tid is None:
            tid, nxt = nxt, nxt + 1
        tracks.setdefault(tid, []).append(r)
    for tid, shapes in tracks.items():
        shapes.sort(key=lambda r: frame_of[r["image_id"]])
        tr = _sub(root, "track")
        tr.set("id", str(tid))
        first = shapes[0]
        tr.set("label", names.get(first["category_id"], "") if first["category_id"] is not None else "")
        src = loads_attrs(first["attributes"]).get("source")
        if src is not None:
            tr.set("source", str(src))
        if first["group_id"] is not None:
            tr.set("group_id", str(first["group_id"]))
        present = {frame_of[r["image_id"]] for r in shapes}
        sub_tracks: dict[int, ET.Element] = {}
        for r in shapes:
            f = frame_of[r["image_id"]]
            attrs = loads_attrs(r["attributes"])
            if attrs.get("source") == src:
                attrs.pop("source", None)
            r = {**r, "attributes": dumps_attrs(attrs), "group_id": None}
            scratch = ET.Element("scratch")
            _write_shape(scratch, r, names, kps, (None, None), report, video=True)
            for el in list(scratch):
                el.attrib.pop("label", None)
                el.set("frame", str(f))
                el.set("outside", "0")
                el.set("keyframe", el.get("keyframe", "1"))
                if el.tag == "skeleton":
                    pts = el.findall("points")
                    el.set("points", ";".join(p.get("points") or "" for p in pts))
                    for j, p in enumerate(pts):
                        el.remove(p)
                        st = sub_tracks.get(j)
                        if st is None:
                            st = sub_tracks[j] = ET.Element("track", {"id": str(j), "label": p.get("label") or ""})
                            if src is not None:
                                st.set("source", str(src))
                        q = _sub(st, "points")
                        q.set("frame", str(f))
                        for key in ("outside", "occluded"):
                            q.set(key, p.get(key) or "0")
                        q.set("keyframe", "1")
                        q.set("points", p.get("points") or "")
                tr.append(el)
                k = bisect.bisect_right(frames, f)
                if k < len(frames) and frames[k] not in present:  # the track leaves: an outside keyframe
                    gone = ET.Element(el.tag, dict(el.attrib))
                    for child in el:
                        gone.append(child)
                    gone.set("frame", str(frames[k]))
                    gone.set("outside", "1")
                    gone.set("keyframe", "1")
                    tr.append(gone)
        for st in sub_tracks.values():
            tr.append(st)
    if ctx.images != "none":
        for im in imgs:
            name = f"frame_{int(im['frame']):06d}{Path(im['file_name']).suffix}"
            ctx.put_image(im["file_name"], out / "images" / name)
    ET.indent(root, space="  ")
    ET.ElementTree(root).write(out / "annotations.xml", encoding="utf-8", xml_declaration=True)


# ------------------------------------------------------------------------------------------- detect/check


def detect(path: Path) -> int:
    """90 for an XML file (or a folder's annotations.xml) whose head has <annotations> and <version>."""
    p = path
    if path.is_dir():
        p = path / "annotations.xml"
        if not p.is_file():
            return 0
    if p.suffix.lower() != ".xml" or not p.is_file():
        return 0
    try:
        with open(p, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return 0
    return 90 if "<annotations" in head and "<version>" in head else 0


def check(path: Path, max_findings: int = 200) -> list[Finding]:
    """Structural check: the file parses, and every image and shape element is valid (all listed)."""
    def finding(exc: InputError) -> Finding:
        return Finding("cvat-structure", exc.message, file=exc.file, place=exc.place)

    try:
        xml = _xml_path(path)
        root = parse_xml(xml)
    except InputError as exc:
        return [finding(exc)]
    if root.tag != "annotations":
        return [Finding("cvat-structure", f"root element is <{root.tag}>, expected <annotations>", file=str(xml),
                        place="/" + root.tag)]
    out: list[Finding] = []
    b, report = _Builder(), ConversionReport()
    img_root = xml.parent / "images" if (xml.parent / "images").is_dir() else xml.parent
    for n, im in enumerate(root.findall("image"), 1):
        place = f"/annotations/image[{n}]"
        try:
            if im.get("name") is None:
                raise InputError("<image> lacks the 'name' attribute", file=xml, place=place)
            safe_join(img_root, im.get("name") or "", source=xml, place=place)
            size = (_int(im, "width", place, xml), _int(im, "height", place, xml))
        except InputError as exc:
            out.append(finding(exc))
            continue
        k = 0
        for el in im:
            if el.tag in SHAPE_TAGS:
                k += 1
                try:
                    _shape(el, b, 0, size, f"{place}/{el.tag}[{k}]", xml, report)
                except InputError as exc:
                    out.append(finding(exc))
        if len(out) >= max_findings:
            return out
    if root.findall("track"):
        try:
            read(xml, ReadContext(ConversionReport()))
        except InputError as exc:
            out.append(finding(exc))
    return out


register(Format("cvat", "CVAT for images / for video 1.1 XML (boxes incl. rotation, polygons, masks, skeletons, "
                "tags, tracks)", read, write, detect,
                file_name="annotations.xml", check=check))
