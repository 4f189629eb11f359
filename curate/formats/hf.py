"""Hugging Face ``datasets`` export (Parquet shards ``datasets.load_dataset`` loads) and import back.

Written layout: ``data/<split>-00000-of-00001.parquet`` (one row per image; images without a split
go to ``train``), a ``README.md`` whose YAML ``configs`` names the splits, and ``imagine.json``
(categories table, info, and the source order of images and annotations when the split grouping
changes it). Columns: ``image`` (``Image``: embedded bytes, or only the relative path with
``images="none"``), ``image_id``, ``file_name``, ``width``, ``height`` and every other image column
of the model, and ``objects``, a list of ``{id, category (ClassLabel), category_id, kind, bbox
[x, y, w, h], geometry, rle, area, iscrowd, score, track_id, group_id, annotator, source_id,
attributes}``. The ``huggingface`` features metadata sits in the Parquet schema, so
``load_dataset(folder)`` gives ``Image`` and ``ClassLabel`` features without any script.

Reading accepts that folder, a single Parquet file, a ``save_to_disk`` folder
(``datasets.load_from_disk``) and generic Hub-style datasets: an ``Image`` column, ``objects``
(list of structs or struct of lists) with ``bbox`` (``bbox_format="xywh"`` default, or
``"xyxy"``) and a ``category``/``label`` ClassLabel, or a top-level ``label`` ClassLabel for
classification. Embedded image bytes are extracted to ``extract_to=<dir>`` (default a temporary
folder removed at exit) so that writers can copy them.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from imagine.kernel import Finding, InputError, image_size, progress, require, safe_join

from ..geometry import envelope
from ..model import IMAGES_SCHEMA, Dataset, dumps_attrs
from . import Format, ReadContext, WriteContext, register

MARKER = "imagine-hf"
VERSION = 1
OBJECT_FIELDS = ("id", "category", "category_id", "kind", "bbox", "geometry", "rle", "area", "iscrowd", "score",
                 "track_id", "group_id", "annotator", "source_id", "attributes")
IMAGE_COLUMNS = [f.name for f in IMAGES_SCHEMA if f.name not in ("id",)]
_TEMP_DIRS: list[str] = []


def _cleanup() -> None:
    for d in _TEMP_DIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def features(category_names: list[str]) -> Any:
    """The ``datasets.Features`` of the export (class names as a ClassLabel)."""
    ds_mod = require("datasets", "hf")
    V, L = ds_mod.Value, ds_mod.List
    img: dict[str, Any] = {"image_id": V("int64"), "image": ds_mod.Image()}
    for f in IMAGES_SCHEMA:
        if f.name != "id":
            img[f.name] = V(str(f.type).replace("double", "float64"))
    obj = {
        "id": V("int64"), "category": ds_mod.ClassLabel(names=category_names), "category_id": V("int64"),
        "kind": V("string"), "bbox": L(V("float64"), length=4), "geometry": L(L(V("float64"))),
        "rle": V("string"), "area": V("float64"), "iscrowd": V("bool"), "score": V("float64"),
        "track_id": V("int64"), "group_id": V("int64"), "annotator": V("string"), "source_id": V("string"),
        "attributes": V("string"),
    }
    img["objects"] = L(obj)
    return ds_mod.Features(img)


def _split_name(s: str | None) -> str:
    return re.sub(r"\W", "_", s) if s else "train"


# ------------------------------------------------------------------------------------------- write


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write Parquet shards per split with HF features metadata, README configs and imagine.json."""
    report = ctx.report
    cats = ds.categories.to_pylist()
    names = [c["name"] for c in cats]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        for i, c in enumerate(cats):
            if names[i] in seen:
                names[i] = f"{c['name']}#{c['id']}"
                report.add("category-name-changed", "ClassLabel names must be unique; a suffix #id was added",
                           c["name"])
            seen.add(names[i])
    class_index = {c["id"]: i for i, c in enumerate(cats)}
    feats = features(names)
    schema = feats.arrow_schema
    ann = ds.annotations
    acols = {c: ann.column(c).to_pylist() for c in ann.column_names}
    order, starts, ends = ds.annotations_by_image()
    images = ds.images.to_pylist()
    rows_by_split: dict[str, list[dict[str, Any]]] = {}
    for r, im in enumerate(progress(images, desc="hf write", unit="img")):
        split = _split_name(im["split"])
        if im["split"] is not None and split != im["split"]:
            report.add("split-renamed", "split names must be word characters in datasets; the file uses a "
                       "changed name (the split column keeps the original)", im["split"])
        image: dict[str, Any] = {"bytes": None, "path": im["file_name"]}
        if ctx.images != "none":
            if ctx.root is None:
                report.add("image-not-copied", "the source has no image folder; images were not embedded",
                           im["file_name"])
            else:
                p = safe_join(ctx.root, im["file_name"])
                if p.is_file():
                    image["bytes"] = p.read_bytes()
                else:
                    report.add("image-missing", "image file not found in the source; not embedded",
                               im["file_name"])
        objects = []
        for a in order[starts[r]:ends[r]]:
            o = {k: acols[k][a] for k in OBJECT_FIELDS if k in acols}
            cid = acols["category_id"][a]
            o["category"] = class_index.get(cid, -1) if cid is not None else -1
            o["bbox"] = [acols["bbox_x"][a], acols["bbox_y"][a], acols["bbox_w"][a], acols["bbox_h"][a]]
            objects.append(o)
        row = {"image_id": im["id"], "image": image, **{k: im[k] for k in IMAGE_COLUMNS}, "objects": objects}
        rows_by_split.setdefault(split, []).append(row)
    (out / "data").mkdir()
    configs = []
    for split, rows in rows_by_split.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        rel = f"data/{split}-00000-of-00001.parquet"
        pq.write_table(table, out / rel, compression="zstd")
        configs.append({"split": split, "path": rel})
    side: dict[str, Any] = {"format": MARKER, "version": VERSION, "categories": cats,
                            "info": {k: v for k, v in ds.info.items() if k != "root"}}
    written_ids = [row["image_id"] for rows in rows_by_split.values() for row in rows]
    ids = ds.images.column("id").to_pylist()
    if written_ids != ids:
        side["image_order"] = ids
    ann_written = [o["id"] for rows in rows_by_split.values() for row in rows for o in row["objects"]]
    if ann_written != acols["id"]:
        side["annotation_order"] = acols["id"]
    (out / "imagine.json").write_text(json.dumps(side, ensure_ascii=False, default=str) + "\n", "utf-8")
    yaml_lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for c in configs:
        yaml_lines += [f"  - split: {c['split']}", f"    path: {c['path']}"]
    yaml_lines += ["---", "", f"# {ds.info.get('name') or 'Dataset'}", "",
                   "Written by imagine (`imagine-curate convert --to hf`); load it with "
                   "`datasets.load_dataset(\"<this folder>\")`.", ""]
    (out / "README.md").write_text("\n".join(yaml_lines), "utf-8")


# ------------------------------------------------------------------------------------------- read


def _parquet_files(path: Path) -> list[tuple[str, Path]]:
    """(split, file) pairs of a Parquet export, in the README's order when it names them."""
    if path.is_file():
        return [(path.stem.split("-")[0], path)]
    readme = path / "README.md"
    out: list[tuple[str, Path]] = []
    if readme.is_file():
        import yaml

        text = readme.read_text("utf-8")
        if text.startswith("---"):
            try:
                meta = yaml.safe_load(text.split("---", 2)[1]) or {}
            except yaml.YAMLError as exc:
                raise InputError(f"malformed YAML header: {exc}", file=readme) from None
            for cfg in (meta.get("configs") or [])[:1]:
                files = cfg.get("data_files") or []
                for df in files if isinstance(files, list) else []:
                    for pat in [df["path"]] if isinstance(df.get("path"), str) else df.get("path") or []:
                        for p in sorted(path.glob(pat)):
                            safe_join(path, p.relative_to(path).as_posix(), source=readme, place="configs")
                            out.append((str(df.get("split") or "train"), p))
    if not out:
        for p in sorted(path.rglob("*.parquet")):
            out.append((p.stem.split("-")[0], p))
    return out


def _tables(path: Path) -> Iterator[tuple[str, pa.Table, Any]]:
    """(split, Arrow table, datasets.Features or None) for every part of the source."""
    ds_mod = None
    if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
        ds_mod = require("datasets", "hf")
        try:
            d = ds_mod.load_from_disk(str(path))
        except Exception as exc:
            raise InputError(f"not a readable datasets folder: {exc}", file=path) from None
        parts = d.items() if isinstance(d, ds_mod.DatasetDict) else [("train", d)]
        for split, part in parts:
            # Arrow view of the rows as the Dataset shows them (any select/shuffle indices applied).
            yield split, part.with_format("arrow")[:], part.features
        return
    files = _parquet_files(path)
    if not files:
        raise InputError("no Parquet files or datasets folder found", file=path)
    for split, p in files:
        try:
            t = pq.read_table(p)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"unreadable Parquet file: {exc}", file=p) from None
        feats = None
        meta = (t.schema.metadata or {}).get(b"huggingface")
        if meta:
            try:
                ds_mod = require("datasets", "hf")
                feats = ds_mod.Features.from_dict(json.loads(meta)["info"]["features"])
            except (ValueError, KeyError, TypeError):
                feats = None
        yield split, t, feats


def _class_names(feat: Any) -> list[str] | None:
    names = getattr(feat, "names", None)
    return list(names) if names is not None else None


def _object_feature(feats: Any, key: str) -> Any:
    """The feature of ``objects.<key>`` whether ``objects`` is a List of dict or a dict of lists."""
    if feats is None or "objects" not in feats:
        return None
    of = feats["objects"]
    inner = getattr(of, "feature", of)
    if isinstance(inner, dict):
        f = inner.get(key)
        return getattr(f, "feature", f) if isinstance(of, dict) else f
    return None


def _ext(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    if data[:2] == b"BM":
        return ".bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".png"


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read an imagine HF export, a save_to_disk folder or a Hub-style Parquet dataset."""
    side: dict[str, Any] = {}
    folder = path if path.is_dir() else path.parent
    if (folder / "imagine.json").is_file():
        try:
            side = json.loads((folder / "imagine.json").read_text("utf-8"))
        except ValueError as exc:
            raise InputError(f"malformed JSON: {exc}", file=folder / "imagine.json") from None
    bbox_format = ctx.options.get("bbox_format", "xywh")
    extract: Path | None = Path(ctx.options["extract_to"]) if ctx.options.get("extract_to") else None
    img_cols: dict[str, list[Any]] = {k: [] for k in ("id", *IMAGE_COLUMNS)}
    ann_cols: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                        "bbox_w", "bbox_h", "geometry", "rle", "area", "iscrowd",
                                                        "score", "track_id", "group_id", "annotator", "source_id",
                                                        "attributes")}
    class_names: list[str] | None = None
    root = folder
    local: list[str] = []
    by_name: dict[str, int] = {}
    for split, table, feats in _tables(path):
        obj_names = _class_names(_object_feature(feats, "category"))
        label_names = _class_names(feats.get("label")) if feats is not None and "label" in feats else None
        class_names = class_names or obj_names or label_names
        for k, nm in enumerate(class_names or []):
            by_name.setdefault(nm, k)
        img_key = next((k for k in ("image", "img") if k in table.column_names), None)
        for b in table.to_batches(max_chunksize=512):
            for row in progress(b.to_pylist(), desc=f"hf {split}", unit="img"):
                n = len(img_cols["id"])
                iid = row.get("image_id")
                iid = int(iid) if isinstance(iid, int) else n
                fn = row.get("file_name")
                image = row.get(img_key) if img_key else None
                data = image.get("bytes") if isinstance(image, dict) else None
                ipath = image.get("path") if isinstance(image, dict) else None
                if not fn:
                    fn = Path(ipath).name if ipath else f"{split}_{iid:06d}{_ext(data) if data else '.png'}"
                safe_join(folder, fn, source=path, place=f"{split} row {n}")
                if not data and ipath and Path(ipath).is_absolute() and Path(ipath).is_file():
                    data = Path(ipath).read_bytes()  # datasets keeps local absolute paths unembedded
                elif not data and (folder / fn).is_file():
                    local.append(fn)
                if data:
                    if extract is None:
                        extract = Path(tempfile.mkdtemp(prefix="imagine-hf-"))
                        _TEMP_DIRS.append(str(extract))
                    dst = safe_join(extract, fn, source=path, place=f"{split} row {n}")
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.write_bytes(data)
                img_cols["id"].append(iid)
                for k in IMAGE_COLUMNS:
                    img_cols[k].append(row.get(k) if k != "file_name" else fn)
                if "split" not in row:
                    img_cols["split"][-1] = split
                if img_cols["width"][-1] is None and data and extract is not None:
                    img_cols["width"][-1], img_cols["height"][-1] = image_size(extract / fn)
                _objects(row, iid, ann_cols, bbox_format, img_cols["width"][-1], img_cols["height"][-1], by_name)
    if extract is not None:
        root = extract
        for fn in local:  # images stored as paths under the source folder join the extracted ones
            dst = extract / fn
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / fn, dst)
    try:
        if side.get("categories") is not None:
            cats = Dataset.from_records([], [], side["categories"]).categories
            ds = Dataset.from_columns(img_cols, ann_cols, None, side.get("info") or {}).with_tables(categories=cats)
        else:
            names = sorted(by_name, key=by_name.__getitem__)
            ids = ann_cols["id"]
            if len(set(ids)) != len(ids):  # per-image object ids: dense ids, the originals kept
                ann_cols["source_id"] = [None if i is None else str(i) for i in ids]
                ann_cols["id"] = list(range(1, len(ids) + 1))
            ds = Dataset.from_columns(img_cols, ann_cols, {"id": [by_name[n] for n in names], "name": names})
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise InputError(f"columns do not fit the dataset model: {exc}", file=path) from None
    ds = _reorder(ds, side)
    ds.info["root"] = str(root.resolve())
    return ds


def _objects(row: dict[str, Any], iid: int, a: dict[str, list[Any]], bbox_format: str, width: int | None,
             height: int | None, by_name: dict[str, int]) -> None:
    """Annotation rows of one image row: imagine objects, Hub-style objects or a classification label.

    Categories given as ClassLabel indices are kept; as strings they get ids after the ClassLabel names
    (``by_name``, filled in order of first appearance).
    """
    objs = row.get("objects")
    if isinstance(objs, dict):  # datasets' Sequence(dict) stores a dict of lists
        keys = list(objs)
        n = len(objs[keys[0]]) if keys else 0
        objs = [{k: objs[k][i] for k in keys} for i in range(n)]
    label = row.get("label")
    if objs is None and label is not None and not (isinstance(label, int) and label < 0):  # -1: no label
        box = envelope("label", None, width=width, height=height)
        lab_id = by_name.setdefault(label, len(by_name)) if isinstance(label, str) else int(label)
        _add(a, {"id": len(a["id"]), "image_id": iid, "category_id": lab_id, "kind": "label",
                 "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3]})
        return
    for o in objs or []:
        kind = o.get("kind") or "box"
        bb = o.get("bbox") or [float("nan")] * 4
        if kind == "box" and "kind" not in o and bbox_format == "xyxy":
            bb = [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]]
        cid = o.get("category_id")
        if cid is None and "category_id" not in o:
            c = o.get("category", o.get("label"))
            cid = by_name.setdefault(c, len(by_name)) if isinstance(c, str) else \
                int(c) if isinstance(c, int) and c >= 0 else None
        oid = o.get("id")
        _add(a, {"id": int(oid) if isinstance(oid, int) else len(a["id"]), "image_id": iid, "category_id": cid,
                 "kind": kind, "bbox_x": bb[0], "bbox_y": bb[1], "bbox_w": bb[2], "bbox_h": bb[3],
                 **{k: o.get(k) for k in ("geometry", "rle", "area", "iscrowd", "score", "track_id", "group_id",
                                          "annotator", "source_id", "attributes")}})
        if "attributes" not in o:
            extra = {k: v for k, v in o.items() if k not in OBJECT_FIELDS and k != "label"}
            a["attributes"][-1] = dumps_attrs(extra)


def _add(a: dict[str, list[Any]], values: dict[str, Any]) -> None:
    for k, col in a.items():
        col.append(values.get(k))


def _reorder(ds: Dataset, side: dict[str, Any]) -> Dataset:
    """Put images and annotations back in their source order when imagine.json recorded it."""
    for table, key in (("images", "image_order"), ("annotations", "annotation_order")):
        want = side.get(key)
        if not want:
            continue
        t: pa.Table = getattr(ds, table)
        ids = t.column("id").to_pylist()
        pos = {v: i for i, v in enumerate(ids)}
        if len(pos) == len(ids) and len(want) == len(ids) and all(w in pos for w in want):
            ds = ds.with_tables(**{table: t.take(pa.array([pos[w] for w in want], type=pa.int64()))})
    return ds


# ------------------------------------------------------------------------------------------- detect


def detect(path: Path) -> int:
    """100 for an imagine HF export, 80 for a save_to_disk folder, lower for Hub-style Parquet."""
    if path.is_dir():
        if (path / "imagine.json").is_file():
            try:
                return 100 if json.loads((path / "imagine.json").read_text("utf-8")).get("format") == MARKER else 0
            except (OSError, ValueError, AttributeError):
                return 0
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return 80
        if any(path.glob("data/*.parquet")) and not (path / "dataset.json").is_file():
            return 50
        return 0
    return 40 if path.suffix == ".parquet" and path.stem.split("-")[0] not in ("images", "annotations",
                                                                             "categories") else 0


def check(path: Path) -> list[Finding]:
    """Structural check of Parquet exports without reading rows: every shard readable, with an image column."""
    if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
        return []  # datasets' own folder: load_from_disk checks it when read
    try:
        files = _parquet_files(path)
    except InputError as exc:
        return [Finding("unreadable", exc.message, file=exc.file, place=exc.place)]
    if not files:
        return [Finding("no-data", "no Parquet files found", file=str(path))]
    out: list[Finding] = []
    for _, p in files:
        try:
            schema = pq.read_schema(p)
        except (pa.ArrowException, OSError) as exc:
            out.append(Finding("unreadable", f"unreadable Parquet file: {exc}", file=str(p)))
            continue
        if not {"image", "img"} & set(schema.names):
            out.append(Finding("no-image-column", "no image column; images cannot be recovered", "warning",
                               file=str(p)))
    return out


register(Format("hf", "Hugging Face datasets: Parquet shards with Image/ClassLabel features (r/w), "
                "save_to_disk folders and Hub-style Parquet (read)", read, write, detect, check=check))
