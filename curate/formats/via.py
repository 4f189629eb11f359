"""VGG Image Annotator (VIA) JSON and CSV: read both, write the JSON region export.

VIA keys every image by ``"<filename><filesize>"`` and stores regions with ``shape_attributes``
(``rect``, ``polygon``, ``polyline``, ``circle``, ``ellipse``, ``point``) and free
``region_attributes``; the class name lives under a user-chosen key of the latter (reader option
``label_key``; otherwise the single string-valued key, preferring ``label``). VIA stores no image
size: it is read from the image header when the image is at hand, else left null. Project files
(``_via_img_metadata`` + ``_via_settings`` + ``_via_attributes``), VIA 1 regions as a dict and the
CSV export are read too.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from imagine.kernel import Finding, ImagineError, InputError, image_size, safe_join
from imagine.schemas import validate

from ..geometry import envelope
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

FILE_NAME = "via_region_data.json"
SHAPES = ("rect", "polygon", "polyline", "circle", "ellipse", "point")
# Keys tried, in order, when several region attributes could hold the class name.
LABEL_KEYS = ("label", "class", "label_id", "category", "name", "type", "species", "taxon")
CSV_COLUMNS = ("filename", "file_size", "file_attributes", "region_count", "region_id", "region_shape_attributes",
               "region_attributes")


# ------------------------------------------------------------------------------------------ shared helpers
# (also used by the supervisely, labelbox and biigle modules)


def read_text(path: Path) -> str:
    """A UTF-8 text file (BOM dropped); unreadable or not UTF-8 → InputError naming the byte."""
    try:
        return path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", file=path) from None


def read_head(path: Path) -> str | None:
    """The first 4096 characters of a file for format detection (bad bytes replaced); None when unreadable."""
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return None


def load_json(path: Path) -> Any:
    """Parse a JSON file; malformed or truncated JSON → InputError with line and column."""
    return parse_json(read_text(path), path)


def parse_json(text: str, path: Path, line_offset: int = 0, place_prefix: str = "") -> Any:
    """``json.loads`` turning a decode error into InputError at ``line L, column C``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", file=path,
                         place=f"{place_prefix}line {exc.lineno + line_offset}, column {exc.colno}") from None


def pointer(*parts: object) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def schema_error(doc: Any, schema: str, path: Path, fallback_place: str, exc: Exception,
                 place_prefix: str = "") -> InputError:
    """The first schema violation of ``doc`` as an InputError, or a generic one at ``fallback_place``.

    Readers convert without validating (fast path); only when conversion trips over a wrong type
    do they ask the schema where exactly the document is wrong.
    """
    findings = validate(doc, schema, file=str(path), max_errors=1)
    if findings:
        f = findings[0]
        return InputError(f"{f.message} (expected by the {schema} format)", file=path,
                          place=f"{place_prefix}{f.place}")
    return InputError(f"unexpected value ({type(exc).__name__}: {exc})", file=path,
                      place=f"{place_prefix}{fallback_place}")


def as_float(v: Any) -> float:
    """A JSON number (or numeric string) as float; TypeError/ValueError otherwise."""
    if isinstance(v, bool) or v is None:
        raise TypeError(f"expected a number, got {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return float(v)
    raise TypeError(f"expected a number, got {type(v).__name__}")


def num_text(v: float) -> str:
    """Shortest exact text of a float; integral values without ``.0`` (as JavaScript/PHP write them)."""
    if math.isfinite(v) and v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return repr(float(v))


def json_num(v: float) -> int | float:
    """A float as the JSON number a JavaScript tool would write (ints without ``.0``)."""
    if math.isfinite(v) and v == int(v) and abs(v) < 1e16:
        return int(v)
    return float(v)


def read_sizes(root: Path, names: list[str], source: Path, places: list[str], ctx: ReadContext,
               ) -> tuple[list[int | None], list[int | None]]:
    """Image sizes from headers for formats that do not store them; null when the image is absent."""
    ws: list[int | None] = []
    hs: list[int | None] = []
    want = ctx.options.get("read_sizes", True)
    for name, place in zip(names, places, strict=True):
        p = safe_join(root, name, source=source, place=place)
        w = h = None
        if want and p.is_file():
            try:
                w, h = image_size(p)
            except ImagineError:
                ctx.report.add("image-unreadable", "image header unreadable; width and height left null", name)
        ws.append(w)
        hs.append(h)
    return ws, hs


class Categories:
    """Name → dense id (1, 2, ... in order of first appearance) for sources with names only."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def get(self, name: str) -> int:
        if name not in self.ids:
            self.ids[name] = len(self.ids) + 1
        return self.ids[name]

    def columns(self) -> dict[str, list[Any]]:
        return {"id": list(self.ids.values()), "name": list(self.ids)}


def report_common_losses(ds: Dataset, ctx: WriteContext, *, fmt: str, keep: Iterable[str] = ()) -> None:
    """Report annotation/image columns a target has no place for (skipping those in ``keep``)."""
    keep = set(keep)
    a = ds.annotations
    ids = a.column("id").to_numpy()

    def lost(col: str, code: str, message: str, test: Callable[[Any], bool]) -> None:
        if col in keep or a.num_rows == 0:
            return
        vals = a.column(col).to_pylist()
        bad = [i for i, v in zip(ids, vals, strict=True) if test(v)]
        ctx.report.add_many(code, message.format(fmt=fmt), bad[:5], len(bad))

    lost("iscrowd", "crowd-flag-dropped", "{fmt} has no crowd flag; crowd annotations written as ordinary ones",
         lambda v: bool(v))
    lost("score", "score-dropped", "{fmt} has no score; scores dropped", lambda v: v is not None)
    lost("track_id", "track-dropped", "{fmt} has no tracks; track ids dropped", lambda v: v is not None)
    lost("group_id", "group-dropped", "{fmt} has no groups; group ids dropped", lambda v: v is not None)
    lost("annotator", "annotator-dropped", "{fmt} has no annotator per annotation; dropped", lambda v: v is not None)
    lost("source_id", "source-id-dropped", "{fmt} has no place for original annotation ids; dropped",
         lambda v: v is not None)
    lost("attributes", "attributes-dropped", "{fmt} has no place for annotation attributes; dropped",
         lambda v: bool(v))
    img = ds.images
    iid = img.column("id").to_numpy()
    for col in ("site", "datetime", "latitude", "longitude", "depth", "video", "frame", "instrument", "annotator",
                "checksum"):
        if col in keep:
            continue
        vals = img.column(col).to_pylist()
        bad = [i for i, v in zip(iid, vals, strict=True) if v is not None]
        ctx.report.add_many("image-metadata-dropped", f"{fmt} has no place for image metadata ({col} ...); dropped",
                            bad[:5], len(bad))
    if "split" not in keep:
        vals = img.column("split").to_pylist()
        bad = [i for i, v in zip(iid, vals, strict=True) if v is not None]
        ctx.report.add_many("split-dropped", f"{fmt} has no splits; split names dropped", bad[:5], len(bad))
    if "taxon" not in keep:
        c = ds.categories
        bad = [n for n, t in zip(c.column("name").to_pylist(), c.column("taxon").to_pylist(), strict=True)
               if t is not None]
        ctx.report.add_many("taxon-dropped", f"{fmt} has no place for category taxa; dropped", bad[:5], len(bad))


# ------------------------------------------------------------------------------------------ detection


def _json_candidate(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".json", ".csv") else None
    if path.is_dir():
        for p in sorted(path.glob("*.json")) + sorted(path.glob("*.csv")):
            if _sniff(p):
                return p
    return None


def _sniff(p: Path) -> int:
    head = read_head(p)
    if head is None:
        return 0
    if p.suffix.lower() == ".csv":
        first = head.splitlines()[0] if head else ""
        return 90 if first.replace('"', "").startswith("filename,file_size,file_attributes,region_count") else 0
    if "_via_img_metadata" in head or "_via_settings" in head:
        return 95
    if '"shape_attributes"' in head or ('"regions"' in head and '"filename"' in head and '"size"' in head):
        return 85
    return 0


def detect(path: Path) -> int:
    cand = _json_candidate(path)
    return _sniff(cand) if cand is not None else 0


# ------------------------------------------------------------------------------------------ reading


def _region_geometry(sa: dict[str, Any]) -> tuple[str, list[list[float]] | None, tuple[float, ...] | None]:
    """(kind, geometry, box) of a VIA ``shape_attributes``; raises KeyError/TypeError/ValueError."""
    name = sa["name"]
    if name == "rect":
        return "box", None, (as_float(sa["x"]), as_float(sa["y"]), as_float(sa["width"]), as_float(sa["height"]))
    if name in ("polygon", "polyline"):
        xs, ys = sa["all_points_x"], sa["all_points_y"]
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
            raise ValueError("all_points_x and all_points_y must be lists of the same length")
        ring: list[float] = []
        for x, y in zip(xs, ys, strict=True):
            ring += [as_float(x), as_float(y)]
        return ("polygon" if name == "polygon" else "polyline"), [ring], None
    if name == "circle":
        return "circle", [[as_float(sa["cx"]), as_float(sa["cy"]), as_float(sa["r"])]], None
    if name == "ellipse":
        theta = as_float(sa.get("theta", 0.0))
        return "ellipse", [[as_float(sa["cx"]), as_float(sa["cy"]), as_float(sa["rx"]), as_float(sa["ry"]),
                            math.degrees(theta)]], None
    if name == "point":
        return "point", [[as_float(sa["cx"]), as_float(sa["cy"])]], None
    raise LookupError(name)


def _pick_label_key(entries: list[tuple[str, dict[str, Any]]], ctx: ReadContext,
                    project_attrs: dict[str, Any] | None) -> str | None:
    """The region attribute that holds the class name (option ``label_key`` or auto-detected)."""
    if ctx.options.get("label_key"):
        return str(ctx.options["label_key"])
    string_keys: dict[str, bool] = {}
    for _, e in entries:
        regions = e.get("regions") or []
        for r in (regions.values() if isinstance(regions, dict) else regions):
            ra = r.get("region_attributes") if isinstance(r, dict) else None
            if not isinstance(ra, dict):
                continue
            for k, v in ra.items():
                ok = isinstance(v, str)
                string_keys[k] = string_keys.get(k, True) and ok
    cands = [k for k, ok in string_keys.items() if ok]
    if len(cands) == 1:
        return cands[0]
    if project_attrs:
        region_defs = project_attrs.get("region") or {}
        choice = [k for k in cands if isinstance(region_defs.get(k), dict)
                  and region_defs[k].get("type") in ("dropdown", "radio")]
        if len(choice) == 1:
            return choice[0]
    for k in LABEL_KEYS:
        if k in cands:
            return k
    if cands:
        ctx.report.add("label-key-guessed", f"several region attributes hold strings ({', '.join(cands)}); "
                       f"took {cands[0]!r} as the class (set the reader option label_key)")
        return cands[0]
    return None


def _entries_from_json(doc: Any, path: Path) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any] | None, str]:
    """(key, image entry) pairs, the project attribute definitions, and the JSON pointer prefix."""
    if not isinstance(doc, dict):
        raise InputError("a VIA file is a JSON object keyed by image", file=path, place="/")
    attrs = None
    prefix = ""
    if "_via_img_metadata" in doc:
        attrs = doc.get("_via_attributes") if isinstance(doc.get("_via_attributes"), dict) else None
        doc = doc["_via_img_metadata"]
        prefix = "/_via_img_metadata"
        if not isinstance(doc, dict):
            raise InputError("_via_img_metadata must be an object keyed by image", file=path, place=prefix)
    out = []
    for k, v in doc.items():
        if not isinstance(v, dict):
            raise InputError(f"image entry must be an object, not {type(v).__name__}", file=path,
                             place=prefix + pointer(k))
        out.append((k, v))
    return out, attrs, prefix


def _entries_from_csv(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """VIA's CSV export (one row per region, ``region_count`` 0 for images without any) as JSON entries."""
    entries: dict[str, dict[str, Any]] = {}
    try:
        fh = path.open("r", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", file=path) from None
    with fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError("empty CSV file", file=path, place="line 1")
            header = [h.strip().lstrip("#") for h in header]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise InputError(f"not a VIA CSV export: missing column(s) {', '.join(missing)}", file=path,
                                 place="line 1")
            col = {c: header.index(c) for c in CSV_COLUMNS}
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputError(f"expected {len(header)} fields, found {len(row)}", file=path,
                                     place=f"line {line}")
                fname = row[col["filename"]]
                size = row[col["file_size"]]
                key = fname + size
                e = entries.get(key)
                if e is None:
                    fa = _cell_json(row[col["file_attributes"]], path, line, "file_attributes")
                    try:
                        size_v: Any = int(size)
                    except ValueError:
                        size_v = size
                    e = entries[key] = {"filename": fname, "size": size_v, "regions": [], "file_attributes": fa or {}}
                try:
                    count = int(row[col["region_count"]] or 0)
                except ValueError:
                    raise InputError("region_count must be an integer", file=path, place=f"line {line}") from None
                sa = _cell_json(row[col["region_shape_attributes"]], path, line, "region_shape_attributes")
                ra = _cell_json(row[col["region_attributes"]], path, line, "region_attributes")
                if count > 0 and sa:
                    e["regions"].append({"shape_attributes": sa, "region_attributes": ra or {}, "_line": line})
        except csv.Error as exc:
            raise InputError(f"malformed CSV: {exc}", file=path, place=f"line {reader.line_num}") from None
    return list(entries.items())


def _cell_json(text: str, path: Path, line: int, column: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"column {column} is not valid JSON: {exc.msg} (character {exc.pos + 1})", file=path,
                         place=f"line {line}") from None


def read(path: Path, ctx: ReadContext) -> Dataset:
    src = _json_candidate(path)
    if src is None:
        raise InputError("no VIA annotation file (.json or .csv) found", file=path)
    root = Path(ctx.options["root"]) if ctx.options.get("root") else src.parent
    is_csv = src.suffix.lower() == ".csv"
    doc: Any = None
    if is_csv:
        entries, project_attrs, prefix = _entries_from_csv(src), None, ""
    else:
        doc = load_json(src)
        entries, project_attrs, prefix = _entries_from_json(doc, src)
    if not ctx.options.get("root") and isinstance(doc, dict):
        root = _project_root(doc, src) or root
    label_key = _pick_label_key(entries, ctx, project_attrs)
    cats = Categories()
    img: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "source_id", "attributes")}
    places: list[str] = []
    ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                 "bbox_w", "bbox_h", "geometry", "attributes")}
    for n, (key, e) in enumerate(entries, start=1):
        eplace = prefix + pointer(key)
        try:
            fname = e["filename"]
            if not isinstance(fname, str) or not fname:
                raise TypeError("filename must be a non-empty string")
            fa = e.get("file_attributes") or {}
            if not isinstance(fa, dict):
                raise TypeError("file_attributes must be an object")
            regions = e.get("regions") or []
            if isinstance(regions, dict):  # VIA 1: {"0": region, ...}
                rlist = [(str(k), r) for k, r in regions.items()]
            elif isinstance(regions, list):
                rlist = [(str(i), r) for i, r in enumerate(regions)]
            else:
                raise TypeError("regions must be a list (VIA 2) or an object (VIA 1)")
        except (KeyError, TypeError, ValueError) as exc:
            raise _error(doc, src, is_csv, eplace, exc, e) from None
        img["id"].append(n)
        img["file_name"].append(fname)
        img["source_id"].append(key)
        img["attributes"].append(dumps_attrs(fa))
        places.append(eplace + "/filename" if not is_csv else f"filename {fname!r}")
        for rk, r in rlist:
            rplace = f"{eplace}/regions/{rk}"
            try:
                if not isinstance(r, dict):
                    raise TypeError("a region must be an object")
                sa = r["shape_attributes"]
                ra = dict(r.get("region_attributes") or {})
                if not isinstance(sa, dict):
                    raise TypeError("shape_attributes must be an object")
                try:
                    kind, geom, box = _region_geometry(sa)
                except LookupError as exc:
                    if isinstance(exc, KeyError):
                        raise
                    ctx.report.add("shape-unsupported", f"VIA shape {sa.get('name')!r} is not supported; skipped",
                                   f"{fname}#{rk}")
                    continue
            except (KeyError, TypeError, ValueError) as exc:
                line = r.get("_line") if isinstance(r, dict) else None
                raise _error(doc, src, is_csv, rplace, exc, e, line) from None
            label = ra.pop(label_key, None) if label_key else None
            if isinstance(label, dict):  # checkbox-style attribute: {"fish": true}
                chosen = [k for k, v in label.items() if v]
                label = chosen[0] if len(chosen) == 1 else None
            if label is not None and not isinstance(label, str):
                label = str(label)
            if box is None:
                box = envelope(kind, geom)
            ann["id"].append(len(ann["id"]) + 1)
            ann["image_id"].append(n)
            ann["category_id"].append(cats.get(label) if label not in (None, "") else None)
            ann["kind"].append(kind)
            ann["bbox_x"].append(box[0])
            ann["bbox_y"].append(box[1])
            ann["bbox_w"].append(box[2])
            ann["bbox_h"].append(box[3])
            ann["geometry"].append(geom)
            ann["attributes"].append(dumps_attrs(ra))
    ws, hs = read_sizes(root, img["file_name"], src, places, ctx)
    img["width"], img["height"] = ws, hs
    missing_label = sum(1 for c in ann["category_id"] if c is None)
    ctx.report.add("label-missing", f"region(s) without a class under {label_key!r}; category left null",
                   count=missing_label)
    info = {"root": str(root.resolve()), "source_file": src.name}
    if label_key:
        info["via_label_key"] = label_key
    return Dataset.from_columns(img, ann, cats.columns(), info)


def _project_root(doc: dict[str, Any], src: Path) -> Path | None:
    """A project's ``_via_settings.core.default_filepath`` when it is a local folder next to the file."""
    settings = doc.get("_via_settings")
    core = settings.get("core") if isinstance(settings, dict) else None
    fp = core.get("default_filepath") if isinstance(core, dict) else None
    if not isinstance(fp, str) or not fp.strip() or "://" in fp or fp.startswith("/"):
        return None
    try:
        cand = safe_join(src.parent, fp.rstrip("/"))
    except InputError:
        return None
    return cand if cand.is_dir() else None


def _error(doc: Any, src: Path, is_csv: bool, place: str, exc: Exception, entry: dict[str, Any],
           line: int | None = None) -> InputError:
    if is_csv:
        return InputError(f"bad region: {exc}", file=src, place=f"line {line}" if line else place)
    return schema_error(doc, "via", src, place, exc)


# ------------------------------------------------------------------------------------------ writing


def _ring_xy(ring: list[float]) -> tuple[list[int | float], list[int | float]]:
    return [json_num(v) for v in ring[0::2]], [json_num(v) for v in ring[1::2]]


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    label_key = str(ctx.options.get("label_key") or ds.info.get("via_label_key") or "label")
    names = ds.category_names()
    report_common_losses(ds, ctx, fmt="VIA", keep=("attributes",))
    a = ds.annotations
    kinds = a.column("kind").to_pylist()
    geoms = a.column("geometry").to_pylist()
    cats = a.column("category_id").to_pylist()
    attrs = a.column("attributes").to_pylist()
    aids = a.column("id").to_pylist()
    bx, by, bw, bh = (ds.col("annotations", c) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    order, starts, ends = ds.annotations_by_image()
    # Category ids come back dense in first-appearance order; say so when that is not what they are.
    seen: dict[int, None] = {}
    for r in order:
        c = cats[r]
        if c is not None and kinds[r] != "label":
            seen.setdefault(c, None)
    if list(seen) != list(range(1, len(seen) + 1)):
        ctx.report.add("category-ids-renumbered", "VIA stores class names only; category ids are renumbered "
                       "1, 2, ... in order of first appearance when read back")
    unused = [n for i, n in names.items() if i not in seen]
    ctx.report.add_many("category-dropped", "VIA stores class names only with regions; unused categories dropped",
                        unused[:5], len(unused))
    sup = [n for n, s in zip(ds.categories.column("name").to_pylist(),
                             ds.categories.column("supercategory").to_pylist(), strict=True) if s]
    ctx.report.add_many("supercategory-dropped", "VIA has no supercategories; dropped", sup[:5], len(sup))

    doc: dict[str, Any] = {}
    img = ds.images
    if img.column("id").to_pylist() != list(range(1, img.num_rows + 1)):
        ctx.report.add("image-ids-renumbered", "VIA has no image ids; images read back numbered 1, 2, ...")
    fnames = img.column("file_name").to_pylist()
    srcids = img.column("source_id").to_pylist()
    iattrs = img.column("attributes").to_pylist()
    widths = img.column("width").to_pylist()
    for i, fn in enumerate(fnames):
        placed = ctx.put_image(fn, out / fn)
        if widths[i] is not None and not placed:
            ctx.report.add("image-size-dropped", "VIA stores no image size and the image was not written with it",
                           fn)
        sid = srcids[i]
        size: int = -1
        if sid and sid.startswith(fn) and sid[len(fn):].lstrip("-").isdigit():
            size = int(sid[len(fn):])
        else:
            if sid:
                ctx.report.add("image-source-id-dropped", "VIA keys images by file name and size; the image's "
                               "original id is dropped", sid)
            if ctx.root is not None:
                p = safe_join(ctx.root, fn)
                if p.is_file():
                    size = p.stat().st_size
        key = f"{fn}{size}"
        if key in doc:
            ctx.report.add("duplicate-image-merged", "two images share file name and size; their regions merged", fn)
        fa = loads_attrs(iattrs[i])
        regions: list[dict[str, Any]] = doc[key]["regions"] if key in doc else []
        for r in order[starts[i]:ends[i]]:
            kind, g = kinds[r], geoms[r]
            ra: dict[str, Any] = {}
            if cats[r] is not None:
                ra[label_key] = names.get(cats[r], str(cats[r]))
            ra.update(loads_attrs(attrs[r]))
            shapes: list[dict[str, Any]] = []
            if kind == "box":
                shapes.append({"name": "rect", "x": json_num(bx[r]), "y": json_num(by[r]), "width": json_num(bw[r]),
                               "height": json_num(bh[r])})
            elif kind in ("polygon", "polyline"):
                rings = [x for x in (g or [])]
                parts = rings[:rings.index([])] if [] in rings else rings
                if len(rings) > 1:
                    ctx.report.add("polygon-parts-split" if kind == "polygon" else "polyline-parts-split",
                                   f"VIA {kind}s have one part and no holes; each part written as its own region"
                                   + ("; holes dropped" if [] in rings else ""), aids[r])
                for ring in parts:
                    xs, ys = _ring_xy(ring)
                    shapes.append({"name": kind, "all_points_x": xs, "all_points_y": ys})
            elif kind == "circle" and g:
                cx, cy, rad = g[0][:3]
                shapes.append({"name": "circle", "cx": json_num(cx), "cy": json_num(cy), "r": json_num(rad)})
            elif kind == "ellipse" and g:
                cx, cy, rx, ry, ang = g[0][:5]
                shapes.append({"name": "ellipse", "cx": json_num(cx), "cy": json_num(cy), "rx": json_num(rx),
                               "ry": json_num(ry), "theta": json_num(math.radians(ang))})
            elif kind == "point" and g:
                pts = g[0]
                if len(pts) > 2:
                    ctx.report.add("points-split", "VIA points hold one point; each written as its own region",
                                   aids[r])
                for k in range(0, len(pts) - 1, 2):
                    shapes.append({"name": "point", "cx": json_num(pts[k]), "cy": json_num(pts[k + 1])})
            elif kind == "rbox" and g:
                from ..geometry import rbox_corners

                xs, ys = _ring_xy(rbox_corners(*g[0][:5]))
                ctx.report.add("rotation-to-polygon", "VIA has no rotated box; written as a 4-point polygon",
                               aids[r])
                shapes.append({"name": "polygon", "all_points_x": xs, "all_points_y": ys})
            elif kind == "keypoints" and g:
                flat = g[0]
                vis = [(flat[k], flat[k + 1]) for k in range(0, len(flat) - 2, 3) if flat[k + 2] > 0]
                ctx.report.add("keypoints-to-points", "VIA has no keypoints; visible ones written as point regions "
                               "(names and visibility dropped)", aids[r])
                for x, y in vis:
                    shapes.append({"name": "point", "cx": json_num(x), "cy": json_num(y)})
            elif kind == "label":
                if cats[r] is not None:
                    fa.setdefault(label_key, names.get(cats[r], str(cats[r])))
                ctx.report.add("label-to-file-attribute", "VIA has no whole-image region; the class written as a "
                               f"file attribute {label_key!r}", aids[r])
            elif kind == "mask":
                ctx.report.add("mask-dropped", "VIA has no masks; mask annotations dropped", aids[r])
            else:
                ctx.report.add("geometry-dropped", f"{kind} annotation without geometry dropped", aids[r])
            for s in shapes:
                regions.append({"shape_attributes": s, "region_attributes": dict(ra)})
        if key in doc:
            doc[key]["file_attributes"].update(fa)
        else:
            doc[key] = {"filename": fn, "size": size, "regions": regions, "file_attributes": fa}
    with (out / FILE_NAME).open("w", encoding="utf-8") as fh:  # compact one-shot dumps: the C encoder
        fh.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        fh.write("\n")


# ------------------------------------------------------------------------------------------ checks


def check(path: Path) -> list[Finding]:
    """Structural checks: the JSON against ``via.schema.json`` (CSV: header and field counts)."""
    src = _json_candidate(path)
    if src is None:
        return [Finding("not-via", "no VIA annotation file found", file=str(path))]
    try:
        if src.suffix.lower() == ".csv":
            _entries_from_csv(src)
            return []
        doc = load_json(src)
    except InputError as exc:
        return [Finding("malformed", exc.message, file=exc.file, place=exc.place)]
    return validate(doc, "via", file=str(src))


register(Format("via", "VGG Image Annotator JSON (v1/v2, project files) and CSV export", read, write, detect,
                file_name=FILE_NAME, check=check))
