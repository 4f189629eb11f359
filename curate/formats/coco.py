"""COCO: instances (boxes, polygons, RLE, crowd, keypoints), panoptic and results files.

Reading keeps what COCO holds as it is: integer ids (category ids 1, 2, 4 stay 1, 2, 4), float64
boxes exactly as written, ``area``, ``iscrowd``, ``score``, ``track_id``; string ids get dense
integer ids and keep the original in ``source_id``; any key without a column of its own lands in
``attributes`` and is written back at the same level. Header junk seen in real exports
(``"year": ""``, ``"date_captured": 0``) is tolerated: ``info`` and ``licenses`` are kept verbatim.

Flavours: a dict with ``images``/``annotations``/``categories`` (instances or keypoints); the
same with ``segments_info`` per annotation (panoptic, with a PNG folder of id maps
``id = R + 256·G + 256²·B``); a bare list of ``{image_id, category_id, bbox, score}`` (results /
predictions). The writer writes the flavour it read, or the one asked with ``flavour=``.

Masks: RLE is kept as the compressed COCO string; it is written uncompressed for crowd
annotations (the convention of the official files) and compressed otherwise. Polygons with holes
cannot be COCO polygons (pycocotools unions the parts), so their holes are dropped and reported.
Parsing: box-only files of 4 MB and more go through Arrow's multi-threaded JSON reader straight
into columns (``_arrow_boxes``); everything else through orjson, with columns built by
comprehensions. Both give the same dataset (tested); the read option ``parser=arrow|python``
forces one.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import re
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from imagine.kernel import ConversionReport, Finding, InputError, UsageError, image_size, open_image, safe_join

from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

# Model columns COCO has no field for, written as extra keys of the same name and read back.
IMG_META = ("split", "checksum", "site", "datetime", "latitude", "longitude", "depth", "video", "instrument",
            "annotator")
ANN_META = ("group_id", "annotator")
ANN_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "segmentation", "area", "iscrowd", "score",
                      "keypoints", "num_keypoints", "track_id", *ANN_META})
IMG_KEYS = frozenset({"id", "file_name", "width", "height", "frame_index", *IMG_META})
_FLOAT_META = frozenset({"latitude", "longitude", "depth"})
_INT_META = frozenset({"group_id"})
CAT_KEYS = frozenset({"id", "name", "supercategory", "keypoints", "skeleton"})
SEG_KEYS = frozenset({"id", "category_id", "bbox", "area", "iscrowd"})
DEFAULT_NAME = "annotations.json"


# ------------------------------------------------------------------------------------------ parsing


def _load_json(path: Path) -> Any:
    """Parse a JSON file with orjson; malformed JSON raises InputError with line and column."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=path) from None
    try:
        if len(data) > CHUNKED_MIN_BYTES:
            doc = _loads_chunked(data)
            if doc is not None:
                return doc
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        what = "truncated JSON (the file ends early)" if exc.pos >= len(data.rstrip()) - 1 else "malformed JSON"
        raise InputError(f"{what}: {exc.msg}", file=path, place=f"line {exc.lineno}, column {exc.colno}") from None


# Files above this size have their "annotations" array parsed in slices: orjson (yyjson) builds a
# whole-document tree before the Python objects, which costs ~3× the file size at the peak.
CHUNKED_MIN_BYTES = 32 * 2**20
_ANN_KEY = re.compile(rb'"annotations"\s*:\s*\[')
_SPLIT = re.compile(rb'\}\s*,\s*\{')


def _loads_chunked(data: bytes, chunk: int = 8 * 2**20) -> Any:
    """Parse a COCO dict with its annotations array in slices of about ``chunk`` bytes.

    Slices are cut at ``},{``; a cut that falls inside an element (a nested list of objects, a
    string) leaves unbalanced JSON and fails to parse, and so does anything unexpected: then None
    is returned and the caller parses the whole file the ordinary way (which also gives the
    error messages). The rest of the document is parsed with an empty annotations array and must
    hold it at the top level.
    """
    m = _ANN_KEY.search(data)
    if m is None:
        return None
    pos = m.end()  # just after '['
    anns: list[Any] = []
    try:
        while True:
            cut = _SPLIT.search(data, pos + chunk) if pos + chunk < len(data) else None
            if cut is None:
                break
            for _ in range(64):  # a cut inside an element fails to parse: try the next one
                try:
                    part = orjson.loads(b"[" + data[pos:cut.start() + 1] + b"]")
                    break
                except orjson.JSONDecodeError:
                    cut = _SPLIT.search(data, cut.end())
                    if cut is None:
                        return None
            else:
                return None
            anns.extend(part)
            pos = cut.end() - 1  # at the '{' of the next element
        try:
            part = orjson.loads(b"[" + data[pos:])
            return None  # the array did not end before the document did: not what we expect
        except orjson.JSONDecodeError as exc:
            end = pos + exc.pos - 1  # where the trailing content after the array starts (1 for '[')
        if data[end - 1:end] != b"]":
            return None
        anns.extend(orjson.loads(b"[" + data[pos:end]))
        rest = orjson.loads(data[:m.end()] + data[end - 1:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(rest, dict) or rest.get("annotations") != [] or not all(isinstance(a, dict) for a in anns):
        return None
    rest["annotations"] = anns
    return rest


def _schema_error(doc: Any, path: Path, fallback: str) -> InputError:
    """The first JSON Schema finding as an InputError (used when the fast column build fails)."""
    from imagine.schemas import validate

    found = validate(doc, "coco", file=str(path), max_errors=1)
    if found:
        f = found[0]
        return InputError(f"not valid COCO: {f.message}", file=path, place=f.place)
    return InputError(f"not valid COCO: {fallback}", file=path)


def _dense_ids(values: list[Any], path: Path, pointer: str) -> tuple[list[int], list[str | None], dict[Any, int]]:
    """Integer ids kept; string (or missing) ids → dense ids 1..n with the original in source_id."""
    if set(map(type, values)) <= {int}:
        return values, [None] * len(values), {}
    mapping: dict[Any, int] = {}
    ints = [v for v in values if type(v) is int]
    nxt = max(ints, default=0) + 1
    ids: list[int] = []
    src: list[str | None] = []
    for i, v in enumerate(values):
        if type(v) is int:
            ids.append(v)
            src.append(None)
            continue
        if v is not None and not isinstance(v, str):
            raise InputError(f"an id must be an integer or a string, not {type(v).__name__}", file=path,
                             place=f"{pointer}/{i}/id")
        if v is not None and v in mapping:
            ids.append(mapping[v])
        else:
            ids.append(nxt)
            if v is not None:
                mapping[v] = nxt
            nxt += 1
        src.append(v)
    return ids, src, mapping


def _keys(rows: list[dict[str, Any]]) -> set[str]:
    """Every key used by any row (one C-speed pass)."""
    out: set[str] = set()
    for k in range(0, len(rows), 20000):  # in blocks: one huge argument tuple would cost memory
        out.update(*map(dict.keys, rows[k:k + 20000]))
    return out


def _column(rows: list[dict[str, Any]], key: str, keys: set[str]) -> list[Any]:
    """Values of ``key`` in every row (None where absent), via itemgetter when every row has it."""
    if key not in keys:
        return [None] * len(rows)
    try:
        return list(map(itemgetter(key), rows))
    except KeyError:
        return [r.get(key) for r in rows]


def _extras(rows: list[dict[str, Any]], known: frozenset[str], keys: set[str] | None = None) -> list[str | None]:
    """JSON attributes of the keys in each row that have no column of their own (CVAT/Datumaro's
    nested ``"attributes"`` object is kept nested, as it was)."""
    out: list[str | None] = [None] * len(rows)
    if keys is not None and keys <= known:
        return out
    for i, r in enumerate(rows):
        if not known.issuperset(r):
            out[i] = dumps_attrs({k: v for k, v in r.items() if k not in known})
    return out


def _meta(rows: list[dict[str, Any]], keys: tuple[str, ...], jpath: Path, pointer: str,
          present: set[str]) -> dict[str, list[Any]]:
    """Columns for the extra keys imagine writes for model columns COCO has no field for."""
    out: dict[str, list[Any]] = {}
    for k in keys:
        if k not in present:
            continue
        vals = [r.get(k) for r in rows]
        want: Any = (int, float) if k in _FLOAT_META else int if k in _INT_META else str
        for i, v in enumerate(vals):
            if v is not None and (not isinstance(v, want) or isinstance(v, bool)):
                kind = "a number" if k in _FLOAT_META else "an integer" if k in _INT_META else "a string"
                raise InputError(f"'{k}' must be {kind}", file=jpath, place=f"{pointer}/{i}/{k}")
        out[k] = vals
    return out


def suspicious_names(names: list[str]) -> list[int]:
    """Rows whose file name could leave the dataset root (absolute, ``..``, NUL, drive letter); only
    these go through the (slow, resolving) ``safe_join`` check."""
    return [i for i, n in enumerate(names)
            if ".." in n or n[:1] in ("/", "\\") or "\x00" in n or n[1:2] == ":" or not n]


def _find_json(path: Path) -> Path:
    if path.is_file():
        return path
    for cand in (path / DEFAULT_NAME, path / "annotations" / DEFAULT_NAME):
        if cand.is_file():
            return cand
    found = sorted(path.glob("*.json")) or sorted((path / "annotations").glob("*.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise InputError("no COCO JSON file in this folder", file=path)
    raise InputError(f"several JSON files here ({', '.join(p.name for p in found[:5])}); name the one to read",
                     file=path)


def _guess_root(json_path: Path, names: list[str], option: Any) -> Path:
    """Folder image file names are relative to: the ``images_dir`` option, else the first candidate
    that holds the first image, else the JSON file's folder."""
    if option:
        return Path(option).resolve()
    base = json_path.parent
    cands = [base, base / "images", base.parent / "images", base.parent]
    if names:
        first = names[0]
        for c in cands:
            try:
                if safe_join(c, first).is_file():
                    return c.resolve()
            except InputError:
                break
    return base.resolve()


# Box-only files at least this large are parsed by Arrow's JSON reader (below: the general path is as fast).
ARROW_MIN_BYTES = 4 * 2**20
_ANN_END = re.compile(rb'\}\s*\]')
# What the Arrow path accepts: these keys only, with these types (anything else: the general path).
_ARROW_SCHEMA = pa.schema([("id", pa.int64()), ("image_id", pa.int64()), ("category_id", pa.int64()),
                           ("bbox", pa.list_(pa.float64())), ("area", pa.float64())])
_ARROW_KEYS = frozenset({*_ARROW_SCHEMA.names, "iscrowd", "segmentation"})


def _arrow_boxes(jpath: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Parse a box-only COCO instances file with Arrow's multi-threaded JSON reader, straight into
    columns: (the rest of the document parsed by orjson, the annotation columns), or None.

    The annotations array is cut out (from ``"annotations": [`` to the first ``}]``) and its
    element separators ``},{`` become newlines, so that Arrow reads it as newline-delimited JSON in
    parallel blocks, with no Python object per annotation (4× faster than orjson on 1 M boxes, a
    third of the memory). Every cut in the wrong place (inside a nested list of objects, inside a
    string) leaves unbalanced or invalid JSON and fails; so does any key, type or shape the
    general path would treat differently (polygons, RLE, keypoints, string ids, extra keys, a
    pretty-printed file): then None is returned and the general path reads the file, with its
    error messages.
    """
    try:
        data = jpath.read_bytes()
    except OSError:
        return None
    m = _ANN_KEY.search(data)
    e = _ANN_END.search(data, m.end()) if m else None
    if m is None or e is None:
        return None
    body = data[m.end():e.start() + 1]
    if b"\n" in body:  # pretty-printed: not one element per line after the replacement below
        return None
    body = body.replace(b"},{", b"}\n{")
    if b"}, {" in body:  # Python's json.dump separators
        body = body.replace(b"}, {", b"}\n{")
    try:
        first = orjson.loads(body[:body.find(b"\n")] if b"\n" in body else body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(first, dict) or not first.keys() <= _ARROW_KEYS or first.get("segmentation"):
        return None  # a file of shapes or extra keys: do not parse it twice
    try:
        rest = orjson.loads(data[:m.end()] + data[e.end() - 1:])
        del data
        table = pj.read_json(pa.BufferReader(body), read_options=pj.ReadOptions(block_size=4 * 2**20),
                             parse_options=pj.ParseOptions(explicit_schema=_ARROW_SCHEMA,
                                                           unexpected_field_behavior="infer"))
    except (orjson.JSONDecodeError, pa.ArrowException):
        return None
    del body
    if not isinstance(rest, dict) or rest.get("annotations") != [] or not set(table.column_names) <= _ARROW_KEYS:
        return None
    t = {name: table.column(name).combine_chunks() for name in table.column_names}
    n = table.num_rows
    box, seg, crowd = t["bbox"], t.get("segmentation"), t.get("iscrowd")
    sides = pc.min_max(pc.list_value_length(box)).as_py()
    if t["id"].null_count or t["image_id"].null_count or box.null_count or box.values.null_count \
            or sides != {"min": 4, "max": 4}:
        return None
    if seg is not None and not (pa.types.is_null(seg.type) or (
            pa.types.is_list(seg.type) and pa.types.is_null(seg.type.value_type) and len(seg.values) == 0)):
        return None  # a shape (polygon, RLE, or anything unexpected): the general path
    if crowd is None or pa.types.is_null(crowd.type):
        iscrowd: Any = np.zeros(n, dtype=bool)
    elif pa.types.is_integer(crowd.type):
        iscrowd = pc.not_equal(crowd.fill_null(0), 0)
    elif pa.types.is_boolean(crowd.type):
        iscrowd = crowd.fill_null(False)
    else:
        return None
    xywh = box.flatten().to_numpy().reshape(n, 4)
    cols: dict[str, Any] = {
        "id": t["id"], "image_id": t["image_id"], "category_id": t.get("category_id", pa.nulls(n, pa.int64())),
        "kind": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)), pa.array(["box"]))
        .cast(pa.string()),
        "bbox_x": xywh[:, 0], "bbox_y": xywh[:, 1], "bbox_w": xywh[:, 2], "bbox_h": xywh[:, 3],
        "area": t.get("area", pa.nulls(n, pa.float64())), "iscrowd": iscrowd,
    }
    return rest, cols


# ------------------------------------------------------------------------------------------ read


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of containers are built: it would
    otherwise rescan them again and again (half the parse time of a 1 M-box file)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read(path: Path, ctx: ReadContext) -> Dataset:
    with gc_paused():
        return _read(path, ctx)


def _read(path: Path, ctx: ReadContext) -> Dataset:
    jpath = _find_json(path)
    parser = ctx.options.get("parser", "auto")
    if parser not in ("auto", "arrow", "python"):
        raise UsageError(f"parser must be auto, arrow or python, not {parser!r}")
    if parser != "python" and (parser == "arrow" or jpath.stat().st_size >= ARROW_MIN_BYTES):
        fast = _arrow_boxes(jpath)
        if fast is not None:
            rest, ann_cols = fast
            try:
                return _read_dict(rest, jpath, ctx, ann_cols)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise _schema_error(rest, jpath, f"{type(exc).__name__}: {exc}") from None
    doc = _load_json(jpath)
    if isinstance(doc, list):
        return _read_results(doc, jpath, ctx)
    if not isinstance(doc, dict):
        raise InputError(f"expected a COCO object or a results list, found {type(doc).__name__}", file=jpath,
                         place="/")
    try:
        return _read_dict(doc, jpath, ctx)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _schema_error(doc, jpath, f"{type(exc).__name__}: {exc}") from None


def _categories(cats: list[dict[str, Any]], jpath: Path) -> dict[str, Any]:
    ids, src, _ = _dense_ids([c["id"] for c in cats], jpath, "/categories")
    return {
        "id": ids, "name": [str(c["name"]) for c in cats],
        "supercategory": [c.get("supercategory") if isinstance(c.get("supercategory"), str) else None
                          for c in cats],
        "keypoints": [c.get("keypoints") for c in cats],
        "skeleton": [c.get("skeleton") for c in cats],
        "source_id": src, "attributes": _extras(cats, CAT_KEYS),
    }


def _read_dict(doc: dict[str, Any], jpath: Path, ctx: ReadContext, ann_cols: dict[str, Any] | None = None
               ) -> Dataset:
    """Build the dataset from the parsed document; ``ann_cols`` are the annotation columns when
    the Arrow fast path has already built them (the document's annotations array is then empty)."""
    report = ctx.report
    for key in ("images", "annotations", "categories"):
        if key in doc and not isinstance(doc[key], list):
            raise InputError(f"'{key}' must be an array, found {type(doc[key]).__name__}", file=jpath,
                             place=f"/{key}")
    images: list[dict[str, Any]] = doc.get("images") or []
    anns: list[dict[str, Any]] = doc.get("annotations") or []
    cats: list[dict[str, Any]] = doc.get("categories") or []
    panoptic = bool(anns) and "segments_info" in anns[0]

    # -- images
    names = [im["file_name"] for im in images]
    if not all(isinstance(n, str) for n in names):
        raise _schema_error(doc, jpath, "file_name must be a string")
    root = _guess_root(jpath, names, ctx.options.get("images_dir"))
    for i in suspicious_names(names):
        safe_join(root, names[i], source=jpath, place=f"/images/{i}/file_name")
    img_keys = _keys(images)
    img_ids, img_src, img_map = _dense_ids(_column(images, "id", img_keys), jpath, "/images")
    widths = _column(images, "width", img_keys)
    heights = _column(images, "height", img_keys)
    _fill_sizes(names, widths, heights, root, report, ctx.options.get("read_sizes", True))
    cat_cols = _categories(cats, jpath)
    cat_map = {s: i for s, i in zip(cat_cols["source_id"], cat_cols["id"], strict=True) if s is not None}

    info: dict[str, Any] = {"root": str(root), "coco": {k: v for k, v in doc.items()
                                                      if k not in ("images", "annotations", "categories")}}
    info["coco_flavour"] = "panoptic" if panoptic else "instances"
    img_cols = {
        "id": img_ids, "file_name": names, "width": widths, "height": heights,
        "frame": [v if type(v) is int else None for v in _column(images, "frame_index", img_keys)],
        "source_id": img_src, "attributes": _extras(images, IMG_KEYS, img_keys),
    }
    img_cols.update(_meta(images, IMG_META, jpath, "/images", img_keys))
    if panoptic:
        ann_cols = _panoptic_annotations(doc, anns, jpath, img_ids, img_map, img_cols, cat_map, ctx)
    elif ann_cols is None:
        ann_cols = _instance_annotations(anns, jpath, img_map, cat_map, cat_cols, report)
        anns.clear()  # free the parsed annotation objects before the Arrow tables are built
    images.clear()
    return Dataset.from_columns(img_cols, ann_cols, cat_cols, info)


def _fill_sizes(names: list[str], widths: list[Any], heights: list[Any], root: Path, report: ConversionReport,
                read_sizes: bool) -> None:
    """Fill missing width/height from the image headers; leave null and report when absent."""
    for i, (w, h) in enumerate(zip(widths, heights, strict=True)):
        if type(w) is int and type(h) is int:
            continue
        if isinstance(w, float) and isinstance(h, float) and w.is_integer() and h.is_integer():
            widths[i], heights[i] = int(w), int(h)
            continue
        widths[i] = heights[i] = None
        p = root / names[i]
        if read_sizes and p.is_file():
            widths[i], heights[i] = image_size(p)
            report.add("size-from-image", "width/height missing in the annotations; read from the image header",
                       names[i])
        else:
            report.add("size-unknown", "width/height missing and the image is absent; left empty", names[i])


def _ids_to(values: list[Any], mapping: dict[Any, int]) -> list[Any]:
    if not mapping:
        return values
    return [mapping.get(v, v) if type(v) is not int else v for v in values]


def _instance_annotations(anns: list[dict[str, Any]], jpath: Path, img_map: dict[Any, int],
                          cat_map: dict[Any, int], cat_cols: dict[str, Any], report: ConversionReport
                          ) -> dict[str, Any]:
    n = len(anns)
    keys = _keys(anns)
    ann_ids, ann_src, _ = _dense_ids(_column(anns, "id", keys), jpath, "/annotations")
    image_id = _ids_to(list(map(itemgetter("image_id"), anns)), img_map)
    category_id = _ids_to(_column(anns, "category_id", keys), cat_map)
    boxes = _column(anns, "bbox", keys)
    if set(map(type, boxes)) != {list} or set(map(len, boxes)) != {4}:
        boxes = [b if isinstance(b, list) and len(b) == 4 else [np.nan] * 4 if b is None else b for b in boxes]
        if any(not isinstance(b, list) or len(b) != 4 for b in boxes):
            raise TypeError("bbox must be an array of 4 numbers")
    bbox = np.fromiter(itertools.chain.from_iterable(boxes), dtype=np.float64, count=4 * n).reshape(n, 4)
    del boxes
    kind: list[str] = ["box"] * n
    geometry: list[Any] = [None] * n
    rle: list[str | None] = [None] * n
    extras = _extras(anns, ANN_KEYS, keys)
    cat_kp_names = dict(zip(cat_cols["id"], cat_cols["keypoints"], strict=True))
    shaped: set[int] = set()
    for key in ("segmentation", "keypoints"):
        if key in keys:
            shaped.update(itertools.compress(range(n), _column(anns, key, keys)))
    for i in sorted(shaped):
        a = anns[i]
        seg = a.get("segmentation")
        kps = a.get("keypoints")
        if kps:
            if isinstance(kps[0], dict):  # kwcoco style: [{"xy": [x, y], "visible": v, ...}]
                kps = _flatten_kwcoco(kps, extras, i, category_id[i], cat_cols, cat_kp_names)
            kind[i], geometry[i] = "keypoints", [[float(v) for v in kps]]
            if seg:  # keep the segmentation of a keypoint annotation verbatim
                attrs = loads_attrs(extras[i])
                attrs["segmentation"] = seg
                extras[i] = dumps_attrs(attrs)
            continue
        if isinstance(seg, list):
            kind[i], geometry[i] = "polygon", [[float(v) for v in ring] for ring in seg]
        elif isinstance(seg, dict):
            h, w = seg["size"]
            kind[i], geometry[i] = "mask", [[float(h), float(w)]]
            rle[i] = _rle_string(seg, jpath, i)
        else:
            raise InputError("segmentation must be a list of polygons or an RLE object", file=jpath,
                             place=f"/annotations/{i}/segmentation")
    for bad in np.flatnonzero(np.isnan(bbox[:, 0])).tolist():
        if kind[bad] == "box":
            raise InputError("annotation has neither bbox nor segmentation", file=jpath,
                             place=f"/annotations/{bad}")
    _fill_envelopes(bbox, kind, geometry, rle)
    crowd = _column(anns, "iscrowd", keys)
    iscrowd = np.fromiter((bool(c) for c in crowd), dtype=bool, count=n) if None in crowd else \
        np.asarray(crowd, dtype=np.int64) != 0
    cols: dict[str, Any] = {
        "id": np.asarray(ann_ids, dtype=np.int64), "image_id": image_id, "category_id": category_id,
        "kind": pa.DictionaryArray.from_arrays(pa.array(_kind_codes(kind), pa.int8()), pa.array(KIND_LIST))
        .cast(pa.string()),
        "bbox_x": bbox[:, 0], "bbox_y": bbox[:, 1], "bbox_w": bbox[:, 2], "bbox_h": bbox[:, 3],
        "area": _column(anns, "area", keys), "iscrowd": iscrowd,
        **_meta(anns, ANN_META, jpath, "/annotations", keys),
    }
    # Columns that are all null are left out: from_columns fills them without converting a list.
    if shaped:
        cols["geometry"], cols["rle"] = geometry, rle
    if "score" in keys:
        cols["score"] = _column(anns, "score", keys)
    if "track_id" in keys:
        cols["track_id"] = [v if type(v) is int else None for v in _column(anns, "track_id", keys)]
    if any(v is not None for v in ann_src):
        cols["source_id"] = ann_src
    if any(v is not None for v in extras):
        cols["attributes"] = extras
    return cols


KIND_LIST = ["box", "polygon", "mask", "keypoints"]


def _kind_codes(kind: list[str]) -> np.ndarray:
    codes = np.zeros(len(kind), dtype=np.int8)
    for k, name in enumerate(KIND_LIST[1:], 1):
        codes[[i for i, v in enumerate(kind) if v == name]] = k
    return codes


def _flatten_kwcoco(kps: list[dict[str, Any]], extras: list[str | None], i: int, cat: Any,
                    cat_cols: dict[str, Any], cat_kp_names: dict[Any, Any]) -> list[float]:
    """kwcoco keypoints (a list of dicts with names) → COCO flat ``[x, y, v, ...]``; the names go to
    the category so that the flat list can be read back by name."""
    names = cat_kp_names.get(cat) or []
    names = list(names)
    pts: dict[str, tuple[float, float, float]] = {}
    for k in kps:
        name = str(k.get("keypoint_category", k.get("keypoint_category_id", len(pts))))
        x, y = k["xy"]
        pts[name] = (float(x), float(y), float(k.get("visible", 2)))
        if name not in names:
            names.append(name)
    cat_kp_names[cat] = names
    row = cat_cols["id"].index(cat) if cat in cat_cols["id"] else None
    if row is not None:
        cat_cols["keypoints"][row] = names
    flat: list[float] = []
    for name in names:
        flat.extend(pts.get(name, (0.0, 0.0, 0.0)))
    return flat


def _rle_string(seg: dict[str, Any], jpath: Path, i: int) -> str:
    from pycocotools import mask as mask_utils

    counts = seg["counts"]
    h, w = seg["size"]
    if isinstance(counts, str):
        return counts
    if isinstance(counts, list):
        if sum(counts) != h * w:
            raise InputError(f"uncompressed RLE counts sum to {sum(counts)}, not height × width = {h * w}",
                             file=jpath, place=f"/annotations/{i}/segmentation/counts")
        enc = mask_utils.frPyObjects({"counts": counts, "size": [h, w]}, h, w)
        return str(enc["counts"].decode("ascii"))
    raise InputError("RLE counts must be a string or a list of integers", file=jpath,
                     place=f"/annotations/{i}/segmentation/counts")


def _fill_envelopes(bbox: np.ndarray, kind: list[str], geometry: list[Any], rle: list[str | None]) -> None:
    """Where a segmented annotation has no bbox, its envelope comes from the geometry."""
    from ..geometry import envelope

    for i in np.flatnonzero(np.isnan(bbox[:, 0])):
        bbox[i] = envelope(kind[i], geometry[i], rle=rle[i])


def _read_results(doc: list[Any], jpath: Path, ctx: ReadContext) -> Dataset:
    """A results list: images are the distinct image ids in order of first appearance."""
    if not all(isinstance(a, dict) for a in doc):
        bad = next(i for i, a in enumerate(doc) if not isinstance(a, dict))
        raise InputError("a results list holds objects", file=jpath, place=f"/{bad}")
    try:
        img_order = list(dict.fromkeys(a["image_id"] for a in doc))
        cats = list(dict.fromkeys(a["category_id"] for a in doc))
        cat_ids = sorted(c for c in cats if type(c) is int)
        if len(cat_ids) != len(cats):
            raise TypeError("category_id must be an integer")
        images = [{"id": i, "file_name": str(i)} for i in img_order]
        cat_rows = [{"id": c, "name": str(c)} for c in cat_ids]
        gt = ctx.options.get("categories_from")
        if gt:
            cat_rows = (_load_json(Path(gt)) or {}).get("categories") or cat_rows
        fake = {"images": images, "annotations": [dict(a, id=a.get("id", k + 1)) for k, a in enumerate(doc)],
                "categories": cat_rows}
        ctx.options.setdefault("read_sizes", False)
        ds = _read_dict(fake, jpath, ctx)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        place = next((f"/{i}" for i, a in enumerate(doc) if "image_id" not in a or "category_id" not in a), None)
        raise InputError(f"not a valid COCO results list: {exc}", file=jpath, place=place) from None
    ctx.report.counts.pop("size-unknown", None)
    ctx.report.messages.pop("size-unknown", None)
    ctx.report.examples.pop("size-unknown", None)
    ds.info["coco_flavour"] = "results"
    ds.info.pop("coco", None)
    return ds


def _panoptic_annotations(doc: dict[str, Any], anns: list[dict[str, Any]], jpath: Path, img_ids: list[int],
                          img_map: dict[Any, int], img_cols: dict[str, Any], cat_map: dict[Any, int],
                          ctx: ReadContext) -> dict[str, Any]:
    """Panoptic: one mask annotation per segment, decoded from the PNG id map of its image."""
    from pycocotools import mask as mask_utils

    png_dir = Path(ctx.options.get("panoptic_dir") or jpath.with_suffix(""))
    cols: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                  "bbox_w", "bbox_h", "geometry", "rle", "area", "iscrowd",
                                                  "source_id", "attributes")}
    png_names: list[str | None] = [None] * len(img_ids)
    row_of = {i: r for r, i in enumerate(img_ids)}
    nxt = 1
    for k, a in enumerate(anns):
        iid = img_map.get(a["image_id"], a["image_id"])
        png = safe_join(png_dir, a["file_name"], source=jpath, place=f"/annotations/{k}/file_name")
        im = open_image(png)
        try:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint32)
        finally:
            im.close()
        idmap = arr[..., 0] + 256 * arr[..., 1] + 65536 * arr[..., 2]
        h, w = idmap.shape
        if iid in row_of:
            png_names[row_of[iid]] = a["file_name"]
        extra = {key: v for key, v in a.items() if key not in ("image_id", "file_name", "segments_info")}
        if extra:
            ctx.report.add("panoptic-extra-dropped", "extra keys on a panoptic annotation are not kept", k)
        for j, s in enumerate(a["segments_info"]):
            m = np.asfortranarray((idmap == int(s["id"])).astype(np.uint8))
            enc = mask_utils.encode(m)
            box = s.get("bbox") or [float(v) for v in mask_utils.toBbox(enc)]
            cols["id"].append(nxt)
            nxt += 1
            cols["image_id"].append(iid)
            cols["category_id"].append(cat_map.get(s["category_id"], s["category_id"]))
            cols["kind"].append("mask")
            for key, v in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box, strict=True):
                cols[key].append(float(v))
            cols["geometry"].append([[float(h), float(w)]])
            cols["rle"].append(enc["counts"].decode("ascii"))
            cols["area"].append(s.get("area"))
            cols["iscrowd"].append(bool(s.get("iscrowd", 0)))
            cols["source_id"].append(str(s["id"]))
            seg_extra = {key: v for key, v in s.items() if key not in SEG_KEYS}
            if not m.any():
                ctx.report.add("panoptic-segment-empty", "segment id not found in its PNG",
                               f"{a['file_name']}#{s['id']}")
            cols["attributes"].append(dumps_attrs(seg_extra))
            _ = j
    attrs = img_cols["attributes"]
    for r, name in enumerate(png_names):
        if name is not None:
            d = loads_attrs(attrs[r])
            d["panoptic_file_name"] = name
            attrs[r] = dumps_attrs(d)
    return cols


# ------------------------------------------------------------------------------------------ write


def _num(v: float) -> float | int:
    """A float written as an int when it is one (so 412 stays 412 in the JSON)."""
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _ids_out(ids: np.ndarray, src: list[Any]) -> list[Any]:
    """Write back the source's string ids where there were some."""
    out: list[Any] = ids.tolist()
    for i, s in enumerate(src):
        if s is not None:
            out[i] = s
    return out


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    with gc_paused():
        _write(ds, out, ctx)


def _write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    flavour = ctx.options.get("flavour") or ds.info.get("coco_flavour") or "instances"
    if flavour not in ("instances", "results", "panoptic"):
        from imagine.kernel import UsageError

        raise UsageError(f"flavour must be instances, results or panoptic, not {flavour!r}")
    report = ctx.report
    name = ctx.options.get("file_name") or DEFAULT_NAME
    if flavour == "results":
        doc: Any = _results_doc(ds, report)
    else:
        doc = _instances_doc(ds, report, results=False)
        if flavour == "panoptic":
            doc = _to_panoptic(ds, doc, out / Path(name).with_suffix(""), report)
    try:
        data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError:  # e.g. an attribute integer beyond 64 bits: the slow, general path
        import json

        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    (out / name).write_bytes(data)
    if ctx.images != "none":
        for fn in ds.images.column("file_name").to_pylist():
            ctx.put_image(fn, out / "images" / fn)


def _categories_doc(ds: Dataset) -> list[dict[str, Any]]:
    c = ds.categories
    out = []
    ids = _ids_out(c.column("id").to_numpy(), c.column("source_id").to_pylist())
    for i, name, sup, kp, sk, at in zip(ids, *(c.column(k).to_pylist() for k in
                                        ("name", "supercategory", "keypoints", "skeleton", "attributes")),
                                        strict=True):
        d: dict[str, Any] = {"id": i, "name": name}
        if sup is not None:
            d["supercategory"] = sup
        if kp is not None:
            d["keypoints"] = kp
        if sk is not None:
            d["skeleton"] = sk
        d.update(loads_attrs(at))
        out.append(d)
    return out


def _images_doc(ds: Dataset, report: ConversionReport) -> list[dict[str, Any]]:
    t = ds.images
    ids = _ids_out(t.column("id").to_numpy(), t.column("source_id").to_pylist())
    out = []
    for i, fn, w, h, fr, at in zip(ids, *(t.column(k).to_pylist() for k in
                                   ("file_name", "width", "height", "frame", "attributes")), strict=True):
        d: dict[str, Any] = {"id": i, "file_name": fn}
        if w is not None:
            d["width"] = w
        if h is not None:
            d["height"] = h
        if fr is not None:
            d["frame_index"] = fr
        if at:
            d.update(loads_attrs(at))
        out.append(d)
    for c in IMG_META:
        if t.column(c).null_count < t.num_rows:
            for d, v in zip(out, t.column(c).to_pylist(), strict=True):
                if v is not None:
                    d[c] = v
    return out


def _check_kinds(ds: Dataset, report: ConversionReport) -> None:
    a = ds.annotations
    kinds = pc.value_counts(a.column("kind")).to_pylist() if a.num_rows else []
    msgs = {"rbox": ("rotation-dropped", "rotated boxes written as their axis-aligned envelope"),
            "polyline": ("polyline-to-box", "polylines written as their bounding box"),
            "point": ("point-to-box", "points written as their bounding box"),
            "circle": ("circle-to-box", "circles written as their bounding box"),
            "ellipse": ("ellipse-to-box", "ellipses written as their bounding box"),
            "label": ("label-to-box", "whole-image labels written as a box over the image")}
    for kc in kinds:
        k, n = kc["values"], kc["counts"]
        if k in msgs:
            report.add(msgs[k][0], msgs[k][1], count=n)


def _instances_doc(ds: Dataset, report: ConversionReport, *, results: bool) -> dict[str, Any]:
    a = ds.annotations
    _check_kinds(ds, report)
    ids = _ids_out(a.column("id").to_numpy(), a.column("source_id").to_pylist())
    img_src = dict(zip(ds.images.column("id").to_pylist(), ds.images.column("source_id").to_pylist(), strict=True))
    cat_src = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("source_id").to_pylist(),
                       strict=True))
    image_id = a.column("image_id").to_pylist()
    if any(v is not None for v in img_src.values()):
        image_id = [img_src.get(i) or i for i in image_id]
    category_id = a.column("category_id").to_pylist()
    if any(v is not None for v in cat_src.values()):
        category_id = [cat_src.get(i) or i for i in category_id]
    box = np.stack([a.column(k).to_numpy() for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1) \
        if a.num_rows else np.zeros((0, 4))
    bbox = [[_num(v) for v in row] for row in box.tolist()]
    area = a.column("area").to_pylist()
    iscrowd = a.column("iscrowd").to_pylist()
    kind = a.column("kind").to_pylist()
    need_area = [i for i, v in enumerate(area) if v is None]
    for i in need_area:
        area[i] = _num(float(box[i, 2] * box[i, 3])) if not np.isnan(box[i, 2]) else 0
    score = a.column("score").to_pylist()
    track = a.column("track_id").to_pylist()
    attrs = a.column("attributes").to_pylist()
    anns: list[dict[str, Any]] = [
        {"id": i, "image_id": im, "category_id": c, "bbox": b, "area": ar, "iscrowd": int(bool(cr)),
         "segmentation": []}
        for i, im, c, b, ar, cr in zip(ids, image_id, category_id, bbox, area, iscrowd, strict=True)]
    if need_area:
        report.add("area-computed", "area was unknown; written as the box area", count=len(need_area))
    special = [i for i, k in enumerate(kind) if k != "box"]
    if special:
        geom = a.column("geometry").to_pylist()
        rle = a.column("rle").to_pylist()
        for i in special:
            _put_geometry(anns[i], kind[i], geom[i], rle[i], bool(iscrowd[i]), report, ids[i])
    for i in [i for i, v in enumerate(score) if v is not None]:
        anns[i]["score"] = score[i]
    for i in [i for i, t in enumerate(track) if t is not None]:
        anns[i]["track_id"] = track[i]
    for col in ANN_META:
        if a.column(col).null_count < a.num_rows:
            for d, v in zip(anns, a.column(col).to_pylist(), strict=True):
                if v is not None:
                    d[col] = v
    for i in [i for i, s in enumerate(attrs) if s]:
        extra = loads_attrs(attrs[i])
        for k, v in extra.items():
            if k in anns[i]:
                report.add("attribute-key-collision", "an attribute named like a COCO field was not written",
                           f"{ids[i]}:{k}")
            else:
                anns[i][k] = v
    cats = _categories_doc(ds)
    doc: dict[str, Any] = {}
    coco: dict[str, Any] = ds.info["coco"] if isinstance(ds.info.get("coco"), dict) else {}
    doc.update({k: v for k, v in coco.items() if k in ("info", "licenses")})
    doc["images"] = _images_doc(ds, report)
    doc["annotations"] = anns
    doc["categories"] = cats
    doc.update({k: v for k, v in coco.items() if k not in doc})
    _orphans(ds, report)
    return doc


def _orphans(ds: Dataset, report: ConversionReport) -> None:
    a = ds.annotations
    if not a.num_rows:
        return
    known = pc.is_in(a.column("image_id"), value_set=ds.images.column("id"))
    n = a.num_rows - pc.sum(known.cast(pa.int64())).as_py()
    report.add("orphan-annotation", "annotations of an image id that is not in the images table", count=n)


def _put_geometry(d: dict[str, Any], kind: str, geom: Any, rle: str | None, crowd: bool, report: ConversionReport,
                  ann_id: Any) -> None:
    if kind == "polygon":
        rings = geom or []
        if [] in rings:
            report.add("polygon-holes-dropped", "COCO polygons cannot hold holes; holes dropped", ann_id)
            rings = rings[:rings.index([])]
        d["segmentation"] = [[_num(v) for v in r] for r in rings]
    elif kind == "mask" and rle is not None and geom:
        h, w = int(geom[0][0]), int(geom[0][1])
        if crowd:
            from ..geometry import rle_to_counts

            d["segmentation"] = {"size": [h, w], "counts": rle_to_counts(rle, h, w)}
        else:
            d["segmentation"] = {"size": [h, w], "counts": rle}
    elif kind == "keypoints" and geom:
        flat = [_num(v) for v in geom[0]]
        d["keypoints"] = flat
        d["num_keypoints"] = sum(1 for v in flat[2::3] if v > 0)


def _results_doc(ds: Dataset, report: ConversionReport) -> list[dict[str, Any]]:
    doc = _instances_doc(ds, report, results=True)
    out = []
    for a in doc["annotations"]:
        a.pop("id", None)
        if not a.get("segmentation"):
            a.pop("segmentation", None)
        out.append(a)
    report.add("image-fields-dropped", "a results list holds no image table; file names and sizes not written",
               count=len(ds))
    return out


def _to_panoptic(ds: Dataset, doc: dict[str, Any], png_dir: Path, report: ConversionReport) -> dict[str, Any]:
    """Instances document → panoptic: masks (and other shapes, rasterised) painted into PNG id maps."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    from ..geometry import polygons_to_rle

    order, starts, ends = ds.annotations_by_image()
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    rle = a.column("rle").to_pylist()
    geom = a.column("geometry").to_pylist()
    src = a.column("source_id").to_pylist()
    png_dir.mkdir(parents=True, exist_ok=True)
    im_attrs = ds.images.column("attributes").to_pylist()
    panns = []
    for r, im in enumerate(doc["images"]):
        h, w = im.get("height"), im.get("width")
        if not h or not w:
            raise InputError("panoptic output needs the image size", file=im["file_name"])
        idmap = np.zeros((h, w), dtype=np.uint32)
        segs = []
        used: set[int] = set()
        for row in order[starts[r]:ends[r]]:
            ann = doc["annotations"][row]
            k = kind[row]
            if k == "mask" and rle[row]:
                m = mask_utils.decode({"size": [h, w], "counts": rle[row].encode("ascii")})
            elif k == "polygon":
                m = mask_utils.decode({"size": [h, w], "counts": polygons_to_rle(geom[row], h, w).encode("ascii")})
            else:
                x, y, bw, bh = ann["bbox"]
                m = np.zeros((h, w), np.uint8)
                m[max(0, int(round(y))):int(round(y + bh)), max(0, int(round(x))):int(round(x + bw))] = 1
                report.add("box-to-panoptic-segment", "shapes without a mask painted as filled boxes", ann["id"])
            sid = int(src[row]) if src[row] and str(src[row]).isdigit() else None
            if sid is None or sid in used or sid == 0:
                sid = max(used | {0}) + 1
            used.add(sid)
            if (idmap[m.astype(bool)] != 0).any():
                report.add("panoptic-overlap", "overlapping segments: later ones painted over earlier ones",
                           ann["id"])
            idmap[m.astype(bool)] = sid
            seg = {"id": sid, "category_id": ann["category_id"], "bbox": ann["bbox"], "area": ann["area"],
                   "iscrowd": ann["iscrowd"]}
            extra = loads_attrs(a.column("attributes")[row].as_py())
            seg.update({key: v for key, v in extra.items() if key not in seg})
            segs.append(seg)
        rgb = np.stack([idmap % 256, (idmap // 256) % 256, idmap // 65536], axis=-1).astype(np.uint8)
        png_name = loads_attrs(im_attrs[r]).get("panoptic_file_name") or \
            str(Path(im["file_name"]).with_suffix(".png"))
        im.pop("panoptic_file_name", None)
        dest = safe_join(png_dir, png_name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(dest)
        panns.append({"image_id": im["id"], "file_name": png_name, "segments_info": segs})
    doc["annotations"] = panns
    return doc


# ------------------------------------------------------------------------------------------ detect/check


def detect(path: Path) -> int:
    try:
        if path.is_dir():
            path = _find_json(path)
    except InputError:
        return 0
    if path.suffix.lower() != ".json" or not path.is_file():
        return 0
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return 0
    text = head.lstrip()
    if text.startswith(b"{"):
        score = sum(k in head for k in (b'"images"', b'"annotations"', b'"categories"'))
        if b'"_via_' in head or b'"tracks"' in head and b'"images"' not in head:
            return 0
        return 30 * score
    if text.startswith(b"["):
        return 60 if b'"image_id"' in head and b'"category_id"' in head else 0
    return 0


def check(path: Path) -> list[Finding]:
    """Structural checks: JSON syntax and the COCO JSON Schema, every finding with its JSON pointer."""
    from imagine.schemas import validate

    try:
        jpath = _find_json(path)
        doc = _load_json(jpath)
    except InputError as exc:
        return [Finding("unreadable", exc.message, file=exc.file, place=exc.place)]
    return validate(doc, "coco", file=os.fspath(jpath))


register(Format("coco", "COCO JSON: instances, keypoints, panoptic, results", read, write, detect,
                file_name=DEFAULT_NAME, check=check))
