"""Supervisely JSON projects: ``meta.json`` (classes, tag metas) + ``<dataset>/ann/<item>.json``.

Written from Supervisely's published format documentation (no real export was at hand). Each
annotation file has the image ``size`` and ``objects`` with a ``geometryType``: ``rectangle``
(``points.exterior`` = top-left and bottom-right corners), ``polygon`` (exterior + interior
rings → our polygon with holes after an empty ring), ``line`` (polyline), ``point`` and
``bitmap`` (base64 of a zlib-compressed PNG placed at ``origin`` [x, y] → COCO RLE through
pycocotools) and ``graph`` (keypoints: nodes in the order of the class's ``geometry_config``
template, ``disabled`` → visibility 1, missing → 0; the template's labels and edges become the
category's keypoint names and skeleton). Tags (image and object) become attributes ``{name: value}``; ``description``,
``createdAt`` and ``updatedAt`` are kept as attributes of the same name and written back in place;
``labelerLogin`` is the annotator.

Image file names are relative to the project folder (``<dataset>/img/<item>``) and the dataset
folder name is the split; the writer puts each image under ``<split or ds0>/img/``.
"""

from __future__ import annotations

import base64
import colorsys
import io
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from imagine.kernel import Finding, InputError, safe_join
from imagine.schemas import validate

from ..geometry import envelope, rbox_corners
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register
from .via import as_float, json_num, load_json, pointer, report_common_losses, schema_error

RESERVED = ("description", "createdAt", "updatedAt")


# ------------------------------------------------------------------------------------------ detection


def _project_root(path: Path) -> Path | None:
    if path.is_file() and path.name == "meta.json":
        return path.parent
    if path.is_dir() and (path / "meta.json").is_file():
        return path
    return None


def detect(path: Path) -> int:
    root = _project_root(path)
    if root is None:
        return 0
    try:
        with (root / "meta.json").open("r", encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return 0
    if '"classes"' in head and any(root.glob("*/ann")) or '"projectType"' in head:
        return 90
    return 0


def _ann_files(root: Path) -> list[tuple[str, Path, Path]]:
    """(dataset name, ann folder, annotation file) for every item, datasets and items sorted."""
    out = []
    for ann_dir in sorted(p for p in root.rglob("ann") if p.is_dir()):
        ds_name = ann_dir.parent.relative_to(root).as_posix()
        for f in sorted(ann_dir.rglob("*.json")):
            out.append((ds_name, ann_dir, f))
    return out


# ------------------------------------------------------------------------------------------ bitmaps


def decode_bitmap(data: str, origin: list[int], height: int, width: int) -> tuple[str, bool]:
    """Supervisely bitmap → COCO compressed RLE string on the whole image (and whether it was cropped)."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    raw = zlib.decompress(base64.b64decode(data))
    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        arr: np.ndarray
        if im.mode == "P" and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA"):
            arr = np.asarray(im.convert("RGBA"))[:, :, 3].astype(bool)
        elif im.mode == "RGB":
            arr = np.asarray(im).max(axis=2).astype(bool)
        else:
            arr = np.asarray(im).astype(bool)
    full = np.zeros((height, width), dtype=np.uint8)
    x0, y0 = int(origin[0]), int(origin[1])
    h, w = arr.shape
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + w, width), min(y0 + h, height)
    cropped = xs != x0 or ys != y0 or xe != x0 + w or ye != y0 + h
    if xe > xs and ye > ys:
        full[ys:ye, xs:xe] = arr[ys - y0:ye - y0, xs - x0:xe - x0]
        cropped = cropped and bool(arr.any())
    rle = mask_utils.encode(np.asfortranarray(full))
    return rle["counts"].decode("ascii"), cropped


def encode_bitmap(rle: str, height: int, width: int) -> tuple[str, list[int]] | None:
    """COCO RLE → (Supervisely base64 zlib PNG of the tight crop, origin [x, y]); None when empty."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    m = mask_utils.decode({"size": [height, width], "counts": rle.encode("ascii")})
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return None
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    crop = Image.fromarray(m[y0:y1, x0:x1].astype(np.uint8), mode="L").convert("P")
    crop.putpalette([0, 0, 0, 255, 255, 255])
    buf = io.BytesIO()
    crop.save(buf, format="PNG", transparency=0, optimize=False)
    return base64.b64encode(zlib.compress(buf.getvalue())).decode("ascii"), [x0, y0]


# ------------------------------------------------------------------------------------------ reading


def _graph_template(c: dict[str, Any], title: str, graph_nodes: dict[str, list[str]]
                    ) -> tuple[list[str] | None, list[list[int]] | None]:
    """Keypoint names and 1-based skeleton of a ``graph`` class from its ``geometry_config``."""
    gc = c.get("geometry_config")
    if c.get("shape") != "graph" or not isinstance(gc, dict) or not isinstance(gc.get("nodes"), dict):
        return None, None
    ids = [str(i) for i in gc["nodes"]]
    graph_nodes[title] = ids
    names = [str((gc["nodes"][i] or {}).get("label", i)) for i in ids]
    pos = {i: k + 1 for k, i in enumerate(ids)}
    edges = [e for e in gc.get("edges") or [] if isinstance(e, dict)]
    skeleton = [[pos[e["src"]], pos[e["dst"]]] for e in edges if e.get("src") in pos and e.get("dst") in pos]
    return names, skeleton


def _tags(tags: Any) -> dict[str, Any]:
    if tags in (None, []):
        return {}
    if not isinstance(tags, list):
        raise TypeError("tags must be a list")
    out: dict[str, Any] = {}
    for t in tags:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise TypeError("a tag must be an object with a name")
        out[t["name"]] = t.get("value")
    return out


def _xy(pts: Any) -> list[float]:
    if not isinstance(pts, list):
        raise TypeError("points must be a list of [x, y]")
    ring: list[float] = []
    for p in pts:
        if not isinstance(p, list) or len(p) != 2:
            raise TypeError("a point must be [x, y]")
        ring += [as_float(p[0]), as_float(p[1])]
    return ring


def read(path: Path, ctx: ReadContext) -> Dataset:
    root = _project_root(path)
    if root is None:
        raise InputError("not a Supervisely project: meta.json is missing", file=path)
    meta_path = root / "meta.json"
    meta = load_json(meta_path)
    cats: dict[str, int] = {}
    cat_cols: dict[str, list[Any]] = {"id": [], "name": [], "attributes": [], "keypoints": [], "skeleton": []}
    graph_nodes: dict[str, list[str]] = {}  # class title → node ids of its graph (keypoints) template
    try:
        classes = meta["classes"] if isinstance(meta, dict) else None
        if not isinstance(classes, list):
            raise TypeError("classes must be a list")
        used_ids: set[int] = set()
        for c in classes:
            title = c["title"]
            if not isinstance(title, str):
                raise TypeError("class title must be a string")
            cid = c.get("id")
            if not isinstance(cid, int) or isinstance(cid, bool) or cid in used_ids:
                cid = None
            cat_cols["id"].append(cid)
            cat_cols["name"].append(title)
            extra = {x: c[x] for x in ("shape", "color", "geometry_config", "hotkey") if c.get(x) not in (None, {}, "")}
            cat_cols["attributes"].append(dumps_attrs(extra))
            kp, sk = _graph_template(c, title, graph_nodes)
            cat_cols["keypoints"].append(kp)
            cat_cols["skeleton"].append(sk)
            if cid is not None:
                used_ids.add(cid)
    except (KeyError, TypeError, ValueError) as exc:
        raise schema_error(meta, "supervisely", meta_path, pointer("classes"), exc) from None
    nxt = max(used_ids, default=0) + 1
    for k, cid in enumerate(cat_cols["id"]):
        if cid is None:
            cat_cols["id"][k] = nxt
            nxt += 1
        cats.setdefault(cat_cols["name"][k], cat_cols["id"][k])

    img: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "split", "attributes")}
    ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w",
                                                 "bbox_h", "geometry", "rle", "annotator", "attributes")}
    obj_ids: list[int | None] = []
    for n, (ds_name, ann_dir, f) in enumerate(_ann_files(root), start=1):
        item = f.relative_to(ann_dir).as_posix()[: -len(".json")]
        file_name = f"{ds_name}/img/{item}" if ds_name != "." else f"img/{item}"
        safe_join(root, file_name, source=f)
        doc = load_json(f)
        place = "/"
        try:
            if not isinstance(doc, dict):
                raise TypeError("an annotation file is a JSON object")
            size = doc.get("size") or {}
            if not isinstance(size, dict):
                raise TypeError("size must be an object with height and width")
            h, w = size.get("height"), size.get("width")
            h = int(h) if isinstance(h, int | float) and h > 0 else None
            w = int(w) if isinstance(w, int | float) and w > 0 else None
            iattrs = _tags(doc.get("tags"))
            if doc.get("description"):
                iattrs["description"] = doc["description"]
            objects = doc.get("objects") or []
            if not isinstance(objects, list):
                raise TypeError("objects must be a list")
            img["id"].append(n)
            img["file_name"].append(file_name)
            img["width"].append(w)
            img["height"].append(h)
            img["split"].append(ds_name if ds_name != "." else None)
            img["attributes"].append(dumps_attrs(iattrs))
            for k, o in enumerate(objects):
                place = pointer("objects", k)
                gtype = o["geometryType"] if "geometryType" in o else o.get("shape")
                title = o["classTitle"]
                if not isinstance(title, str):
                    raise TypeError("classTitle must be a string")
                rle = None
                box: tuple[float, ...] | None = None
                geom: list[list[float]] | None
                if gtype == "rectangle":
                    ext = _xy(o["points"]["exterior"])
                    if len(ext) != 4:
                        raise ValueError("a rectangle's exterior has two points")
                    x0, y0, x1, y1 = min(ext[0], ext[2]), min(ext[1], ext[3]), max(ext[0], ext[2]), max(ext[1], ext[3])
                    kind, geom, box = "box", None, (x0, y0, x1 - x0, y1 - y0)
                elif gtype == "polygon":
                    geom = [_xy(o["points"]["exterior"])]
                    interior = o["points"].get("interior") or []
                    if interior:
                        geom.append([])
                        geom += [_xy(r) for r in interior]
                    kind = "polygon"
                elif gtype == "line":
                    kind, geom = "polyline", [_xy(o["points"]["exterior"])]
                elif gtype == "point":
                    kind, geom = "point", [_xy(o["points"]["exterior"])]
                elif gtype == "graph":
                    nodes = o["nodes"]
                    if not isinstance(nodes, dict):
                        raise TypeError("graph nodes must be an object keyed by node id")
                    ids = graph_nodes.get(title) or list(nodes)
                    flat: list[float] = []
                    for nid in ids:
                        nd = nodes.get(nid)
                        if nd is None:
                            flat += [0.0, 0.0, 0.0]
                        else:
                            loc = nd["loc"]
                            flat += [as_float(loc[0]), as_float(loc[1]), 1.0 if nd.get("disabled") else 2.0]
                    unknown = [n for n in nodes if n not in ids]
                    if unknown:
                        ctx.report.add("graph-node-unknown", "graph node not in its class template; dropped",
                                       f"{file_name}#{k}:{unknown[0]}")
                    kind, geom = "keypoints", [flat]
                elif gtype == "bitmap":
                    bm = o["bitmap"]
                    if h is None or w is None:
                        ctx.report.add("mask-dropped", "bitmap on an image without size; dropped", f"{file_name}#{k}")
                        continue
                    try:
                        rle, cropped = decode_bitmap(bm["data"], bm["origin"], h, w)
                    except (ValueError, OSError, zlib.error) as exc:
                        raise InputError(f"undecodable bitmap ({exc})", file=f, place=place + "/bitmap/data") from None
                    if cropped:
                        ctx.report.add("mask-cropped", "bitmap reaching outside the image was cropped to it",
                                       f"{file_name}#{k}")
                    kind, geom = "mask", [[float(h), float(w)]]
                else:
                    ctx.report.add("geometry-unsupported", f"Supervisely geometry {gtype!r} is not supported; skipped",
                                   f"{file_name}#{k}")
                    continue
                if box is None:
                    box = envelope(kind, geom, rle=rle)
                if title not in cats:
                    cid = max(cat_cols["id"], default=0) + 1
                    cats[title] = cid
                    cat_cols["id"].append(cid)
                    cat_cols["name"].append(title)
                    cat_cols["attributes"].append(None)
                    cat_cols["keypoints"].append(None)
                    cat_cols["skeleton"].append(None)
                    ctx.report.add("class-not-in-meta", "object class missing from meta.json; category added", title)
                attrs = _tags(o.get("tags"))
                for r in RESERVED:
                    if o.get(r):
                        attrs[r] = o[r]
                oid = o.get("id")
                obj_ids.append(oid if isinstance(oid, int) and not isinstance(oid, bool) else None)
                ann["image_id"].append(n)
                ann["category_id"].append(cats[title])
                ann["kind"].append(kind)
                ann["bbox_x"].append(box[0])
                ann["bbox_y"].append(box[1])
                ann["bbox_w"].append(box[2])
                ann["bbox_h"].append(box[3])
                ann["geometry"].append(geom)
                ann["rle"].append(rle)
                login = o.get("labelerLogin")
                ann["annotator"].append(login if isinstance(login, str) and login else None)
                ann["attributes"].append(dumps_attrs(attrs))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise schema_error(doc, "supervisely", f, place, exc) from None
    # Object ids are kept when every object has a distinct integer id; otherwise dense ids.
    if obj_ids and all(i is not None for i in obj_ids) and len(set(obj_ids)) == len(obj_ids):
        ann["id"] = list(obj_ids)
    else:
        ann["id"] = list(range(1, len(obj_ids) + 1))
    info: dict[str, Any] = {"root": str(root.resolve())}
    if isinstance(meta, dict) and meta.get("tags"):
        info["supervisely_tag_metas"] = meta["tags"]
    return Dataset.from_columns(img, ann, cat_cols, info)


# ------------------------------------------------------------------------------------------ writing


def _color(i: int) -> str:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
    return f"#{int(r * 255):02X}{int(g * 255):02X}{int(b * 255):02X}"


def _pts(ring: list[float]) -> list[list[int | float]]:
    return [[json_num(ring[k]), json_num(ring[k + 1])] for k in range(0, len(ring) - 1, 2)]


def _curve(cx: float, cy: float, rx: float, ry: float, ang: float, n: int = 32) -> list[float]:
    a = math.radians(ang)
    out: list[float] = []
    for k in range(n):
        t = 2 * math.pi * k / n
        x, y = rx * math.cos(t), ry * math.sin(t)
        out += [cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)]
    return out


def _tag_list(attrs: dict[str, Any], ctx: WriteContext, ref: object) -> list[dict[str, Any]]:
    out = []
    for k, v in attrs.items():
        if k in RESERVED:
            continue
        if isinstance(v, bool | list | dict):
            ctx.report.add("attribute-stringified", "Supervisely tag values are strings or numbers; other values "
                           "written as JSON text", ref)
            v = json.dumps(v)
        out.append({"name": k, "value": v})
    return out


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    report_common_losses(ds, ctx, fmt="Supervisely", keep=("attributes", "annotator", "split"))
    names = ds.category_names()
    a = ds.annotations
    kinds = a.column("kind").to_pylist()
    geoms = a.column("geometry").to_pylist()
    rles = a.column("rle").to_pylist()
    cats = a.column("category_id").to_pylist()
    attrs = a.column("attributes").to_pylist()
    aids = a.column("id").to_pylist()
    annotators = a.column("annotator").to_pylist()
    bx, by, bw, bh = (a.column(c).to_pylist() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    order, starts, ends = ds.annotations_by_image()
    shapes_used: dict[int, set[str]] = {}
    tag_types: dict[str, str] = {}
    cat_rows = {cid: k for k, cid in enumerate(ds.categories.column("id").to_pylist())}
    cat_kp = ds.categories.column("keypoints").to_pylist()
    cat_sk = ds.categories.column("skeleton").to_pylist()
    cat_extra = [loads_attrs(x) for x in ds.categories.column("attributes").to_pylist()]
    graph_ids: dict[int, list[str]] = {}

    def node_ids(cid: int, n: int) -> list[str]:
        """Node ids of a class's graph: its template's when it came from Supervisely, else keypoint names."""
        if cid not in graph_ids:
            k = cat_rows.get(cid)
            gc = cat_extra[k].get("geometry_config") if k is not None else None
            names = cat_kp[k] if k is not None else None
            if isinstance(gc, dict) and isinstance(gc.get("nodes"), dict) and len(gc["nodes"]) == n:
                ids = [str(i) for i in gc["nodes"]]
            elif names and len(names) == n and len(set(names)) == n:
                ids = list(names)
            else:
                ids = [str(i + 1) for i in range(n)]
            graph_ids[cid] = ids
        return graph_ids[cid]

    def note_tags(tags: list[dict[str, Any]]) -> None:
        for t in tags:
            v = t["value"]
            vt = "none" if v is None else "any_number" if isinstance(v, int | float) else "any_string"
            if tag_types.get(t["name"], vt) != vt:
                vt = "any_string"
            tag_types[t["name"]] = vt

    img = ds.images
    fnames = img.column("file_name").to_pylist()
    splits = img.column("split").to_pylist()
    widths = img.column("width").to_pylist()
    heights = img.column("height").to_pylist()
    iattrs = img.column("attributes").to_pylist()
    written: set[str] = set()
    keys: list[tuple[str, str]] = []
    for i, fn in enumerate(fnames):
        ds_name = splits[i] or "ds0"
        prefix = f"{ds_name}/img/"
        item = fn[len(prefix):] if fn.startswith(prefix) else fn
        rel = f"{ds_name}/ann/{item}.json"
        if rel in written:
            raise InputError(f"two images would be written as the same Supervisely item {item!r}", file=str(out / rel))
        written.add(rel)
        keys.append((ds_name, item))
        ann_path = safe_join(out, rel)
        ctx.put_image(fn, safe_join(out, f"{prefix}{item}"))
        w, h = widths[i], heights[i]
        ia = loads_attrs(iattrs[i])
        tags = _tag_list(ia, ctx, fn)
        objects: list[dict[str, Any]] = []
        for r in order[starts[i]:ends[i]]:
            kind, g, cid = kinds[r], geoms[r], cats[r]
            if cid is None:
                ctx.report.add("unlabelled-dropped", "every Supervisely object needs a class; dropped", aids[r])
                continue
            title = names.get(cid, str(cid))
            at = loads_attrs(attrs[r])
            base: dict[str, Any] = {"id": aids[r], "classId": cid}
            if at.get("description"):
                base["description"] = at["description"]
            otags = _tag_list(at, ctx, aids[r])
            pieces: list[dict[str, Any]] = []
            if kind == "box":
                pieces.append({"geometryType": "rectangle", "points": {
                    "exterior": [[json_num(bx[r]), json_num(by[r])],
                                 [json_num(bx[r] + bw[r]), json_num(by[r] + bh[r])]],
                    "interior": []}})
            elif kind == "polygon" and g:
                rings = list(g)
                outer = rings[:rings.index([])] if [] in rings else rings
                holes = rings[rings.index([]) + 1:] if [] in rings else []
                if len(outer) > 1:
                    ctx.report.add("polygon-parts-split", "a Supervisely polygon has one exterior; each part written "
                                   "as its own object (holes kept on the first)", aids[r])
                for k, ring in enumerate(outer):
                    pieces.append({"geometryType": "polygon", "points": {
                        "exterior": _pts(ring), "interior": [_pts(hh) for hh in holes] if k == 0 else []}})
            elif kind in ("rbox", "circle", "ellipse") and g:
                if kind == "rbox":
                    ring = rbox_corners(*g[0][:5])
                    ctx.report.add("rotation-to-polygon", "Supervisely has no rotated box; written as a polygon",
                                   aids[r])
                else:
                    cx, cy, rx = g[0][:3]
                    ry, ang = (g[0][3], g[0][4]) if kind == "ellipse" else (rx, 0.0)
                    ring = _curve(cx, cy, rx, ry, ang)
                    ctx.report.add(f"{kind}-to-polygon", f"Supervisely has no {kind}; written as a 32-point polygon",
                                   aids[r])
                pieces.append({"geometryType": "polygon", "points": {"exterior": _pts(ring), "interior": []}})
            elif kind == "polyline" and g:
                if len(g) > 1:
                    ctx.report.add("polyline-parts-split", "a Supervisely line has one part; each part written as its "
                                   "own object", aids[r])
                for line in g:
                    pieces.append({"geometryType": "line", "points": {"exterior": _pts(line), "interior": []}})
            elif kind == "point" and g:
                if len(g[0]) > 2:
                    ctx.report.add("points-split", "a Supervisely point holds one point; each written as its own "
                                   "object", aids[r])
                for p in _pts(g[0]):
                    pieces.append({"geometryType": "point", "points": {"exterior": [p], "interior": []}})
            elif kind == "mask" and rles[r] and g:
                enc = encode_bitmap(rles[r], int(g[0][0]), int(g[0][1]))
                if enc is None:
                    ctx.report.add("empty-mask-dropped", "empty mask dropped", aids[r])
                else:
                    pieces.append({"geometryType": "bitmap", "bitmap": {"data": enc[0], "origin": enc[1]}})
            elif kind == "keypoints" and g:
                flat = g[0]
                ids = node_ids(cid, len(flat) // 3)
                nodes: dict[str, Any] = {}
                for k in range(len(flat) // 3):
                    x, y, v = flat[3 * k:3 * k + 3]
                    if v > 0:
                        nodes[ids[k]] = {"loc": [json_num(x), json_num(y)], **({"disabled": True} if v == 1 else {})}
                pieces.append({"geometryType": "graph", "nodes": nodes})
            elif kind == "label":
                tags.append({"name": title, "value": None})
                ctx.report.add("label-to-tag", "Supervisely has no whole-image object; the class written as an image "
                               "tag", aids[r])
            else:
                ctx.report.add(f"{kind}-dropped", f"Supervisely cannot hold {kind} annotations here; dropped", aids[r])
            for k, pc in enumerate(pieces):
                obj = dict(base)
                if k:
                    obj.pop("id")
                obj.update(pc)
                obj["classTitle"] = title
                obj["tags"] = otags
                if annotators[r]:
                    obj["labelerLogin"] = annotators[r]
                for key in ("createdAt", "updatedAt"):
                    if at.get(key):
                        obj[key] = at[key]
                shapes_used.setdefault(cid, set()).add(pc["geometryType"])
                objects.append(obj)
            note_tags(otags)
        note_tags(tags)
        if w is None or h is None:
            ctx.report.add("image-size-missing", "Supervisely needs the image size; written as 0", fn)
        doc = {"description": ia.get("description", ""), "tags": tags,
               "size": {"height": h or 0, "width": w or 0}, "objects": objects}
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        with ann_path.open("w", encoding="utf-8") as fh:  # one-shot dumps uses the C encoder
            fh.write(json.dumps(doc, ensure_ascii=False))
    srcs = [x for x in img.column("source_id").to_pylist() if x is not None]
    ctx.report.add_many("image-source-id-dropped", "Supervisely has no place for original image ids; dropped",
                        srcs[:5], len(srcs))
    # Supervisely has no image ids and no order across items: they read back sorted by dataset and item.
    if keys != sorted(keys) or img.column("id").to_pylist() != list(range(1, len(keys) + 1)):
        ctx.report.add("image-ids-renumbered", "Supervisely keeps no image ids or order; images read back "
                       "sorted by dataset and item name with ids 1, 2, ...")
    classes = []
    for k, (cid, name, ca) in enumerate(zip(ds.categories.column("id").to_pylist(),
                                            ds.categories.column("name").to_pylist(),
                                            ds.categories.column("attributes").to_pylist(), strict=True)):
        extra = loads_attrs(ca)
        used = shapes_used.get(cid, set())
        shape = extra.get("shape") or (next(iter(used)) if len(used) == 1 else "any")
        if used and shape != "any" and used != {shape}:
            shape = "any"
        config = extra.get("geometry_config") or {}
        if "graph" in used and not config and cid in graph_ids:
            ids = graph_ids[cid]
            labels = cat_kp[k] if cat_kp[k] and len(cat_kp[k]) == len(ids) else ids
            config = {"nodes": {i: {"label": lab, "loc": [0, 0]} for i, lab in zip(ids, labels, strict=True)},
                      "edges": [{"src": ids[a - 1], "dst": ids[b - 1]} for a, b in (cat_sk[k] or [])
                                if 0 < a <= len(ids) and 0 < b <= len(ids)]}
        classes.append({"id": cid, "title": name, "shape": shape, "color": extra.get("color") or _color(k),
                        "geometry_config": config,
                        **({"hotkey": extra["hotkey"]} if extra.get("hotkey") else {})})
    metas = list(ds.info.get("supervisely_tag_metas") or [])
    known = {m.get("name") for m in metas if isinstance(m, dict)}
    for k, (name, vt) in enumerate(tag_types.items()):
        if name not in known:
            metas.append({"name": name, "value_type": vt, "color": _color(k + 7)})
    with (out / "meta.json").open("w", encoding="utf-8") as fh:
        json.dump({"classes": classes, "tags": metas, "projectType": "images"}, fh, ensure_ascii=False, indent=1)


# ------------------------------------------------------------------------------------------ checks


def check(path: Path) -> list[Finding]:
    """Structural checks of meta.json and every annotation file against ``supervisely.schema.json``."""
    root = _project_root(path)
    if root is None:
        return [Finding("not-supervisely", "meta.json is missing", file=str(path))]
    out: list[Finding] = []
    for f in [root / "meta.json"] + [p for _, _, p in _ann_files(root)]:
        try:
            doc = load_json(f)
        except InputError as exc:
            out.append(Finding("malformed", exc.message, file=exc.file, place=exc.place))
            continue
        out += validate(doc, "supervisely", file=str(f))
    return out


register(Format("supervisely", "Supervisely JSON project (meta.json + <dataset>/ann/*.json)", read, write, detect,
                check=check))
