"""DIVE JSON (``dive``): Kitware DIVE's annotation file, version 2 (version 1 is read too).

``{"version": 2, "tracks": {id: {id, meta, attributes, confidencePairs, begin, end, features:
[{frame, bounds: [x1, y1, x2, y2], keyframe, interpolate, geometry, head, tail, fishLength,
attributes, notes}]}}, "groups": {...}}``. Each feature becomes one annotation, in the shape the
VIAME CSV reader gives (see :mod:`.viame`): ``track_id`` = the track id, the class list of the
track on every feature (``score`` = its top score: DIVE keeps no per-feature confidence), the
track attributes in ``attributes.track_attributes``, ``fishLength`` → ``attributes.length``,
GeoJSON ``Point`` features keyed ``head``/``tail``/any name → keypoints, ``Polygon`` features →
polygon rings (the closing point GeoJSON repeats is dropped; the writer closes rings again),
``LineString`` features other than the derived ``HeadTails`` one → ``polyline``; group ids from
``groups``.

**Rotation.** DIVE stores it in ``feature.attributes.rotation``, radians, about the centre of
``bounds``, which is the *unrotated* box. DIVE's documentation calls it counter-clockwise (GeoJS'
y-up view) but applies ``x' = x cos r - y sin r, y' = x sin r + y cos r`` to pixel coordinates
(y down), which is exactly our ``rbox`` rotation (:func:`imagine.curate.geometry.rbox_corners`,
clockwise on screen). So ``angle_degrees = degrees(rotation)``, no sign flip; the writer picks
the float ``r`` whose ``degrees(r)`` is the model's angle exactly.

**Frames and file names.** DIVE refers to frames, not files. Image names come, in this order,
from the ``images=[...]`` read option, DIVE's ``meta.json`` beside the file
(``originalImageFiles``), the image files in the same folder sorted as DIVE sorts them (natural
order); otherwise frame ``N`` is named ``frameNNNNNN`` (reported). Every listed image becomes an
image row, annotated or not. The writer puts ``meta.json`` (image names, fps, attribute
definitions) beside the annotation file when it writes a folder; for a video (images with a
``video``) it writes DIVE's video meta instead (``type: video``, ``name``: the video), and the
reader gives such frames that ``video``.
Read options: ``images=[...]`` (file names in frame order), ``sizes=False`` (no image header reads),
``interpolate=True`` (add the frames DIVE interpolates between keyframes, as DIVE's exporter does:
rounded linear bounds; otherwise only stored features are read and the gap is reported).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagine.kernel import (
    ConversionReport,
    Finding,
    InputError,
    UsageError,
    atomic_write,
    dump_json,
    progress,
    safe_join,
)
from imagine.schemas import validate

from ..model import Dataset
from . import Format, ReadContext, WriteContext, register
from .viame import (
    UNSAFE_NAME_RE,
    Detection,
    ImageRef,
    build_dataset,
    dataset_detections,
    report_categories,
    resolve_sizes,
)

__all__ = ["to_dive", "attribute_definitions", "read", "write", "detect", "check"]

FILE_NAME = "annotations.dive.json"
META_NAME = "meta.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``img2`` before ``img10`` (DIVE's strNumericCompare)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


# ------------------------------------------------------------------------------------------ reading


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text: {exc.reason}", file=path, place=f"byte {exc.start}") from None
    except OSError as exc:
        raise InputError(f"unreadable: {exc.strerror}", file=path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", file=path,
                         place=f"line {exc.lineno}, column {exc.colno}") from None


def _normalise(doc: Any) -> Any:
    """Version-1 files are the tracks object itself; wrap them as version 2."""
    if isinstance(doc, dict) and "tracks" not in doc and doc and all(
            isinstance(v, dict) and "features" in v for v in doc.values()):
        return {"version": 1, "tracks": doc, "groups": {}}
    return doc


class _Shape:
    """Fast structural validation of a DIVE document (what the reader touches), naming the JSON pointer.

    The JSON Schema (``check``) says the same with every finding at once; walking millions of
    features with jsonschema is too slow for ``read``, so read uses this.
    """

    def __init__(self, src: Path):
        self.src = src

    def fail(self, ptr: str, what: str) -> None:
        raise InputError(f"not a DIVE annotation file: expected {what}", file=self.src, place=ptr or "/")

    def num(self, v: Any) -> bool:
        return v.__class__ is not bool and isinstance(v, (int, float))

    def obj(self, v: Any, ptr: str, optional: bool = True) -> dict[str, Any]:
        if v is None and optional:
            return {}
        if not isinstance(v, dict):
            self.fail(ptr, "an object")
        return v

    def lst(self, v: Any, ptr: str, optional: bool = True) -> list[Any]:
        if v is None and optional:
            return []
        if not isinstance(v, list):
            self.fail(ptr, "an array")
        return v

    def xy(self, v: Any, ptr: str) -> None:
        if not isinstance(v, list) or len(v) < 2 or not (self.num(v[0]) and self.num(v[1])):
            self.fail(ptr, "a point [x, y]")

    def document(self, doc: Any) -> None:
        doc = self.obj(doc, "", optional=False)
        if "tracks" not in doc:
            self.fail("/tracks", "a tracks object")
        for tkey, t in self.obj(doc["tracks"], "/tracks", optional=False).items():
            self.track(tkey, t, f"/tracks/{_esc(tkey)}")
        for gkey, g in self.obj(doc.get("groups"), "/groups").items():
            gp = f"/groups/{_esc(gkey)}"
            g = self.obj(g, gp, optional=False)
            self.ident(g.get("id"), gkey, f"{gp}/id")
            for mkey, m in self.obj(g.get("members"), f"{gp}/members").items():
                mp = f"{gp}/members/{_esc(mkey)}"
                self.ident(None, mkey, mp)
                for k, r in enumerate(self.lst(self.obj(m, mp, optional=False).get("ranges"), f"{mp}/ranges")):
                    if not (isinstance(r, list) and len(r) == 2 and all(type(v) is int for v in r)):
                        self.fail(f"{mp}/ranges/{k}", "a frame range [begin, end]")

    def ident(self, v: Any, key: str, ptr: str) -> None:
        if v is None:
            if not re.fullmatch(r"-?\d+", key):
                self.fail(ptr, "an integer id")
        elif type(v) is not int:
            self.fail(ptr, "an integer id")

    def track(self, key: str, t: Any, tp: str) -> None:
        t = self.obj(t, tp, optional=False)
        self.ident(t.get("id"), key, f"{tp}/id")
        self.obj(t.get("attributes"), f"{tp}/attributes")
        for k, p in enumerate(self.lst(t.get("confidencePairs"), f"{tp}/confidencePairs")):
            if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and self.num(p[1])):
                self.fail(f"{tp}/confidencePairs/{k}", "a [class, score] pair")
        if "features" not in t:
            self.fail(f"{tp}/features", "a features array")
        for k, f in enumerate(self.lst(t["features"], f"{tp}/features", optional=False)):
            self.feature(f, f"{tp}/features/{k}")

    def feature(self, f: Any, fp: str) -> None:
        f = self.obj(f, fp, optional=False)
        if type(f.get("frame")) is not int or f["frame"] < 0:
            self.fail(f"{fp}/frame", "a frame number (integer >= 0)")
        b = f.get("bounds")
        if not (isinstance(b, list) and len(b) == 4 and all(self.num(v) for v in b)):
            self.fail(f"{fp}/bounds", "bounds [x1, y1, x2, y2]")
        self.obj(f.get("attributes"), f"{fp}/attributes")
        for k, n in enumerate(self.lst(f.get("notes"), f"{fp}/notes")):
            if not isinstance(n, str):
                self.fail(f"{fp}/notes/{k}", "a note (text)")
        if f.get("fishLength") is not None and not self.num(f["fishLength"]):
            self.fail(f"{fp}/fishLength", "a number")
        for key in ("head", "tail"):
            if f.get(key) is not None:
                self.xy(f[key], f"{fp}/{key}")
        for key in ("keyframe", "interpolate"):
            if f.get(key) is not None and not isinstance(f[key], bool):
                self.fail(f"{fp}/{key}", "true or false")
        geo = self.obj(f.get("geometry"), f"{fp}/geometry")
        for k, gf in enumerate(self.lst(geo.get("features"), f"{fp}/geometry/features")):
            gp = f"{fp}/geometry/features/{k}"
            gf = self.obj(gf, gp, optional=False)
            self.obj(gf.get("properties"), f"{gp}/properties")
            g = self.obj(gf.get("geometry"), f"{gp}/geometry", optional=False)
            c = g.get("coordinates")
            cp = f"{gp}/geometry/coordinates"
            if g.get("type") == "Point":
                self.xy(c, cp)
            elif g.get("type") == "LineString":
                for j, pt in enumerate(self.lst(c, cp, optional=False)):
                    self.xy(pt, f"{cp}/{j}")
            elif g.get("type") == "Polygon":
                for j, ring in enumerate(self.lst(c, cp, optional=False)):
                    for m, pt in enumerate(self.lst(ring, f"{cp}/{j}", optional=False)):
                        self.xy(pt, f"{cp}/{j}/{m}")


def _esc(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _json_file(path: Path) -> Path:
    if path.is_file():
        return path
    cands = sorted(path.glob("*.dive.json")) or sorted(p for p in path.glob("*.json")
                                                       if p.name != META_NAME and _detect_file(p))
    if len(cands) != 1:
        raise InputError(f"expected one DIVE JSON file in the folder, found {len(cands)}", file=path)
    return cands[0]


def _ring(coords: Sequence[Sequence[float]]) -> list[float]:
    pts = [list(map(float, p[:2])) for p in coords]
    if len(pts) > 3 and pts[0] == pts[-1]:
        pts = pts[:-1]
    return [v for p in pts for v in p]


def feature_detection(track: dict[str, Any], feat: dict[str, Any], image: int, tid: int,
                      group: int | None) -> Detection:
    """One DIVE feature (of ``track``) → a Detection."""
    pairs = [(str(c), float(s)) for c, s in track.get("confidencePairs") or []]
    top = max((s for _, s in pairs), default=None)
    x1, y1, x2, y2 = (float(v) for v in feat["bounds"])
    d = Detection(image=image, track_id=tid, box=(x1, y1, x2, y2), confidence=top, pairs=pairs, group_id=group)
    attrs = dict(feat.get("attributes") or {})
    rot = attrs.get("rotation")
    if isinstance(rot, int | float) and not isinstance(rot, bool) and math.isfinite(rot):
        d.rotation = float(rot)
        del attrs["rotation"]
    d.attributes = attrs
    d.track_attributes = dict(track.get("attributes") or {})
    d.notes = [str(n) for n in feat.get("notes") or []]
    if feat.get("fishLength") is not None:
        d.length = float(feat["fishLength"])
    geo = feat.get("geometry") or {}
    seen_kp: set[str] = set()
    for gf in geo.get("features") or []:
        g = gf.get("geometry") or {}
        key = str((gf.get("properties") or {}).get("key", ""))
        t = g.get("type")
        c: Any = g.get("coordinates") or []
        if t == "Point":
            d.keypoints.append((key, float(c[0]), float(c[1])))
            seen_kp.add(key)
        elif t == "Polygon":
            d.polygons.append([_ring(r) for r in c])
        elif t == "LineString":
            if key != "HeadTails":
                d.lines.append([float(v) for p in c for v in p[:2]])
        else:
            d.extra.setdefault("_dropped", []).append(str(t))
    for key in ("head", "tail"):
        if feat.get(key) is not None and key not in seen_kp:
            d.keypoints.append((key, float(feat[key][0]), float(feat[key][1])))
    if feat.get("keyframe") is False:
        d.extra["keyframe"] = False
    if feat.get("interpolate") is True:
        d.extra["interpolate"] = True
    if track.get("meta"):
        d.extra["track_meta"] = track["meta"]
    return d


def _image_names(src: Path, ctx: ReadContext) -> tuple[list[str] | None, dict[str, Any], Path]:
    """Image names in frame order (or None), DIVE's meta.json content, and the file the names came from."""
    opt = ctx.options.get("images")
    meta_path = src.parent / META_NAME
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        m = _load_json(meta_path)
        if isinstance(m, dict):
            meta = m
    if opt is not None:
        if not isinstance(opt, list) or not all(isinstance(n, str) for n in opt):
            raise InputError("the images option must be a list of file names in frame order", file=src)
        return list(opt), meta, src
    if meta.get("type") == "video":
        return None, meta, src
    files = meta.get("originalImageFiles")
    if isinstance(files, list) and files and all(isinstance(n, str) for n in files):
        return list(files), meta, meta_path
    found = [p.name for p in src.parent.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if found:
        return sorted(found, key=natural_key), meta, src.parent
    return None, meta, src


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read a DIVE JSON file (or a folder holding one, with DIVE's meta.json and images)."""
    src = _json_file(path)
    root = src.parent.resolve()
    doc = _normalise(_load_json(src))
    _Shape(src).document(doc)
    names, meta, names_src = _image_names(src, ctx)
    video = meta.get("name") if meta.get("type") == "video" and isinstance(meta.get("name"), str) else None
    info: dict[str, Any] = {"root": str(root)}
    if isinstance(meta.get("fps"), int | float):
        info["fps"] = float(meta["fps"])
    tracks: dict[str, Any] = doc["tracks"]
    group_of: dict[tuple[int, int], int] = {}  # (track, frame) -> group id
    dive_groups: dict[str, Any] = {}
    for gkey, g in (doc.get("groups") or {}).items():
        gid = int(g.get("id", gkey))
        keep = {k: g[k] for k in ("confidencePairs", "attributes", "meta") if g.get(k)}
        if keep:
            dive_groups[str(gid)] = keep
        for tkey, member in (g.get("members") or {}).items():
            for b, e in member.get("ranges") or []:
                for fr in range(int(b), int(e) + 1):
                    group_of[(int(tkey), fr)] = gid
    if dive_groups:
        info["dive_groups"] = dive_groups
    expand = bool(ctx.options.get("interpolate", False))
    frames_set = {int(f["frame"]) for t in tracks.values() for f in t["features"]}
    if expand:
        for t in tracks.values():
            fs = t["features"]
            for k in range(len(fs) - 1):
                if fs[k].get("interpolate") is True:
                    frames_set.update(range(int(fs[k]["frame"]) + 1, int(fs[k + 1]["frame"])))
    frames_used = sorted(frames_set)
    images: list[ImageRef] = []
    index: dict[int, int] = {}
    if names is not None:
        for fr, n in enumerate(names):
            if n:
                if UNSAFE_NAME_RE.search(n):  # lexically clean names cannot leave the root
                    safe_join(root, n, source=names_src, place=f"image list entry {fr}")
                index[fr] = len(images)
                images.append(ImageRef(n, fr))
    missing = [fr for fr in frames_used if fr not in index]
    if missing:
        ctx.report.add_many("frame-names-assigned", "DIVE JSON holds frame numbers, not file names; frames "
                            "without a known image were named frameNNNNNN (pass images=[...] or keep DIVE's "
                            "meta.json or the images beside the file)", [f"frame {m}" for m in missing],
                            len(missing))
        for fr in missing:
            images.append(ImageRef(f"frame{fr:06d}", fr, video))
        order = sorted(range(len(images)), key=lambda j: images[j].frame or 0)
        images = [images[j] for j in order]
        index = {im.frame: j for j, im in enumerate(images) if im.frame is not None}
    dets: list[Detection] = []
    for tkey, track in progress(tracks.items(), total=len(tracks), desc="DIVE tracks", unit="track"):
        tid = int(track.get("id", tkey))
        feats = track["features"]
        for k, feat in enumerate(feats):
            fr = int(feat["frame"])
            det = feature_detection(track, feat, index[fr], tid, group_of.get((tid, fr)))
            for t in det.extra.pop("_dropped", []):
                ctx.report.add("geometry-dropped", "GeoJSON geometry types other than Point, LineString and "
                               "Polygon are not read", f"track {tid} frame {fr}: {t}")
            dets.append(det)
            if feat.get("interpolate") is True and k < len(feats) - 1:
                if not expand:
                    ctx.report.add("interpolation-not-expanded", "interpolated frames between keyframes are not "
                                   "expanded (read option interpolate=True does)", f"track {tid} frame {fr}")
                    continue
                nxt = feats[k + 1]
                span = int(nxt["frame"]) - fr
                for step in range(1, span):  # DIVE's own interpolation: rounded linear bounds, no geometry
                    t_ = step / span
                    box = [float(round(a * (1 - t_) + b * t_)) for a, b in zip(feat["bounds"], nxt["bounds"],
                                                                             strict=True)]
                    dets.append(Detection(
                        image=index[fr + step], track_id=tid, box=(box[0], box[1], box[2], box[3]),
                        confidence=det.confidence, pairs=list(det.pairs),
                        track_attributes=dict(det.track_attributes), extra={"keyframe": False},
                        group_id=group_of.get((tid, fr + step))))
    if ctx.options.get("sizes", True):
        resolve_sizes(images, root, ctx.report)
    return build_dataset(images, dets, info, ctx.report)


# ------------------------------------------------------------------------------------------ writing


def _closed(ring: Sequence[float]) -> list[list[float]]:
    pts = [[float(ring[i]), float(ring[i + 1])] for i in range(0, len(ring) - 1, 2)]
    if pts and pts[0] != pts[-1]:
        pts.append(list(pts[0]))
    return pts


def _scalar(v: Any) -> bool:
    """A value DIVE can hold as an attribute: boolean, finite number or text."""
    return isinstance(v, (bool, int, float, str)) and not (isinstance(v, float) and not math.isfinite(v))


def feature_of(d: Detection, frame: int, report: ConversionReport, aid: object) -> dict[str, Any]:
    """A Detection as a DIVE feature (frame given)."""
    x1, y1, x2, y2 = d.box
    f: dict[str, Any] = {"frame": frame, "keyframe": bool(d.extra.get("keyframe", True)),
                         "interpolate": bool(d.extra.get("interpolate", False)), "bounds": [x1, y1, x2, y2]}
    geo: list[dict[str, Any]] = []
    kp = {n: (x, y) for n, x, y in d.keypoints}
    for n, x, y in d.keypoints:
        geo.append({"type": "Feature", "properties": {"key": n}, "geometry": {"type": "Point", "coordinates": [x, y]}})
    if "head" in kp:
        f["head"] = list(kp["head"])
    if "tail" in kp:
        f["tail"] = list(kp["tail"])
    if "head" in kp and "tail" in kp:
        geo.append({"type": "Feature", "properties": {"key": "HeadTails"},
                    "geometry": {"type": "LineString", "coordinates": [list(kp["head"]), list(kp["tail"])]}})
    for k, poly in enumerate(d.polygons):
        geo.append({"type": "Feature", "properties": {"key": "" if k == 0 else str(k)},
                    "geometry": {"type": "Polygon", "coordinates": [_closed(r) for r in poly]}})
    for k, line in enumerate(d.lines):
        geo.append({"type": "Feature", "properties": {"key": "" if k == 0 else str(k)},
                    "geometry": {"type": "LineString",
                                 "coordinates": [[line[i], line[i + 1]] for i in range(0, len(line) - 1, 2)]}})
    if geo:
        f["geometry"] = {"type": "FeatureCollection", "features": geo}
    if d.length is not None:
        if d.length > 0:
            f["fishLength"] = d.length
        else:
            report.add("length-dropped", "DIVE keeps only positive fish lengths", aid)
    attrs: dict[str, Any] = {}
    for name, v in d.attributes.items():
        if _scalar(v):
            attrs[name] = v
        else:
            report.add("attributes-dropped", "DIVE attribute values are booleans, numbers or text", aid)
    if d.rotation is not None:
        attrs["rotation"] = d.rotation
    if attrs:
        f["attributes"] = attrs
    if d.notes:
        f["notes"] = list(d.notes)
    if d.mask is not None:
        report.add("mask-reference-dropped", "DIVE has no place for a (mask) image reference", aid)
    if d.extra.get("viame_tokens"):
        report.add("attributes-dropped", "unknown VIAME tokens have no place in DIVE", aid)
    return f


def _sorted_pairs(pairs: Sequence[tuple[str, float]]) -> list[list[Any]]:
    return [[c, s] for c, s in sorted(pairs, key=lambda p: p[1], reverse=True)]


def attribute_definitions(dets: Sequence[Detection]) -> dict[str, dict[str, Any]]:
    """DIVE's attribute definitions (``meta.json`` ``attributes``) inferred from the values, as DIVE does.

    Each value counts once per detection; the type is ``number`` when every value parses as a
    number, ``boolean`` when every value is true/false, else ``text``; text attributes whose every
    value occurs at least 3 times get the list of ``values``.
    """
    defs: dict[str, dict[str, Any]] = {}
    counts: dict[str, dict[str, int]] = {}

    def add(belongs: str, name: str, val: Any) -> None:
        if val is None or isinstance(val, dict | list):
            return
        key = f"{belongs}_{name}"
        text = str(val)
        if key not in defs:
            defs[key] = {"belongs": belongs, "datatype": "text", "name": name, "key": key}
            counts[key] = {}
        counts[key][text] = counts[key].get(text, 0) + 1

    for d in dets:
        for k, v in d.track_attributes.items():
            add("track", k, v)
        for k, v in d.attributes.items():
            add("detection", k, v)
    for key, vals in counts.items():
        kind = "number"
        low = 3
        for text, n in vals.items():
            low = min(low, n)
            if kind == "number":
                try:
                    float(text)
                except ValueError:
                    kind = "boolean"
            if kind == "boolean" and text not in ("True", "False"):
                kind = "text"
        if low >= 3 and kind == "text":
            defs[key]["values"] = list(vals)
        defs[key]["datatype"] = kind
    return defs


def to_dive(ds: Dataset, report: ConversionReport) -> tuple[dict[str, Any], dict[str, Any], list[ImageRef]]:
    """The dataset as a DIVE annotation document, its meta.json content and the image list."""
    images, dets = dataset_detections(ds, report, "dive")
    report_categories(ds, dets, report, "dive")
    by_track: dict[int, list[int]] = {}
    for k, d in enumerate(dets):
        by_track.setdefault(int(d.track_id or 0), []).append(k)
    aid = ds.annotations.column("id").to_pylist()
    tracks: dict[str, Any] = {}
    group_members: dict[int, dict[int, list[int]]] = {}
    for tid, ks in by_track.items():
        ks = sorted(ks, key=lambda k: images[dets[k].image].frame or 0)
        last = dets[ks[-1]]
        if last.pairs:
            pairs = _sorted_pairs(last.pairs)
        else:
            pairs = [["unknown", last.confidence if last.confidence is not None else 1.0]]
            report.add("category-unknown-added", "annotations without a class get DIVE's 'unknown' class", tid)
        top = max(s for _, s in pairs)
        track_attrs: dict[str, Any] = {}
        for k in ks:
            for name, v in dets[k].track_attributes.items():
                if _scalar(v):
                    track_attrs[name] = v
                else:
                    report.add("attributes-dropped", "DIVE attribute values are booleans, numbers or text", tid)
        feats = []
        for k in ks:
            d = dets[k]
            ex = aid[k] if k < len(aid) else k
            mine = _sorted_pairs(d.pairs)
            if d.pairs and [c for c, _ in mine] != [c for c, _ in pairs]:
                report.add("confidence-pairs-dropped", "DIVE keeps one class list per track (its last state's); "
                           "other states' classes and scores were dropped", ex)
            elif (d.pairs and mine != pairs) or d.confidence != top:
                report.add("score-dropped", "DIVE keeps no per-detection confidence; the track's top score "
                           "stands for it", ex)
            if d.track_attributes != track_attrs:
                report.add("track-attributes-merged", "track attributes given on some states only were merged "
                           "onto the whole track", ex)
            frame = images[d.image].frame or 0
            feats.append(feature_of(d, frame, report, ex))
            if d.group_id is not None:
                group_members.setdefault(int(d.group_id), {}).setdefault(tid, []).append(frame)
        t: dict[str, Any] = {"id": tid, "meta": last.extra.get("track_meta") or {}, "attributes": track_attrs,
                             "confidencePairs": pairs, "features": feats,
                             "begin": min(f["frame"] for f in feats), "end": max(f["frame"] for f in feats)}
        tracks[str(tid)] = t
    saved = ds.info.get("dive_groups") or {}
    groups: dict[str, Any] = {}
    for gid, members in group_members.items():
        g: dict[str, Any] = {"id": gid, "members": {}, "confidencePairs": [], "attributes": {}, "meta": {}}
        g.update(saved.get(str(gid)) or {})
        frames: list[int] = []
        for tid, frs in members.items():
            frs = sorted(set(frs))
            frames += frs
            ranges, start, prev = [], frs[0], frs[0]
            for fr in frs[1:]:
                if fr != prev + 1:
                    ranges.append([start, prev])
                    start = fr
                prev = fr
            ranges.append([start, prev])
            g["members"][str(tid)] = {"ranges": ranges}
        g["begin"], g["end"] = min(frames), max(frames)
        groups[str(gid)] = g
    doc = {"version": 2, "tracks": tracks, "groups": groups}
    meta: dict[str, Any] = {"version": 1, "type": "image-sequence", "name": ds.info.get("name") or "imagine"}
    if ds.info.get("fps") is not None:
        meta["fps"] = ds.info["fps"]
    if any(im.timestamp is not None for im in images):
        report.add("timestamp-dropped", "DIVE keeps no per-frame timestamps (frame / fps instead)",
                   count=sum(im.timestamp is not None for im in images))
    videos = list(dict.fromkeys(im.video for im in images if im.video))
    if videos:  # a video dataset: DIVE names the video, frames are numbers
        meta["type"], meta["name"] = "video", videos[0]
        if len(videos) > 1 or any(not im.video for im in images):
            report.add("video-dropped", "a DIVE dataset is one video; other videos' and image files' frames "
                       "were put in the first video", count=sum(1 for im in images if im.video != videos[0]))
    frames = [im.frame if im.frame is not None else 0 for im in images]
    if images and not videos:
        names = [""] * (max(frames) + 1)
        for im, fr in zip(images, frames, strict=True):
            if names[fr] and names[fr] != im.file_name:
                report.add("image-dropped", "two images share a frame number; DIVE keeps one file per frame",
                           im.file_name)
                continue
            names[fr] = im.file_name
        meta["originalImageFiles"] = names
    meta["attributes"] = attribute_definitions(dets)
    return doc, meta, images


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write ``annotations.dive.json`` and DIVE's ``meta.json`` (image names, fps, attributes), images beside."""
    doc, meta, images = to_dive(ds, ctx.report)
    names = meta.get("originalImageFiles") or []
    if ctx.single_file and any(n and n != f"frame{fr:06d}" for fr, n in enumerate(names)):
        ctx.report.add("image-names-dropped", "a lone DIVE JSON file refers to frames only; write to a folder to "
                       "keep the image names in meta.json", count=sum(1 for n in names if n))
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False)  # one C-encoder call: fast on big files
    except ValueError as exc:
        raise UsageError(f"the dataset holds NaN or infinite coordinates, which JSON cannot hold ({exc})") from None
    with atomic_write(out / FILE_NAME) as fh:
        fh.write(text + "\n")
    dump_json(meta, out / META_NAME)
    if ctx.images != "none":
        for im in images:
            if im.timestamp is None:
                ctx.put_image(im.file_name, safe_join(out, im.file_name))


# ------------------------------------------------------------------------------------------ detect / check


def _detect_file(path: Path) -> int:
    if not path.name.lower().endswith(".json"):
        return 0
    try:
        with path.open("rb") as fh:
            head = fh.read(65536).decode("utf-8", "ignore")
    except OSError:
        return 0
    if not head.lstrip("\ufeff \t\r\n").startswith("{"):
        return 0
    dive_keys = '"features"' in head and '"confidencePairs"' in head  # version 1 files have no "tracks"
    if dive_keys or ('"tracks"' in head and ('"features"' in head or '"tracks": {}' in head)):
        return 95 if path.name.lower().endswith(".dive.json") else 90
    if path.name.lower().endswith(".dive.json"):
        return 70
    return 0


def detect(path: Path) -> int:
    """90-95 for a JSON file whose content has DIVE's tracks/features keys (or a folder holding one)."""
    if path.is_dir():
        c = [p for p in path.glob("*.json") if p.name != META_NAME and _detect_file(p)]
        return 85 if len(c) == 1 else 0
    return _detect_file(path)


def check(path: Path) -> list[Finding]:
    """Structural check: the DIVE JSON Schema, every finding with its JSON pointer."""
    src = _json_file(path)
    try:
        doc = _normalise(_load_json(src))
    except InputError as exc:
        return [Finding("malformed", exc.message, file=str(src), place=exc.place)]
    return validate(doc, "dive", file=str(src))


register(Format("dive", "Kitware DIVE JSON (tracks, rotated boxes, polygons, head/tail points)", read, write,
                detect, file_name=FILE_NAME, check=check))
