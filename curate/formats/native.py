"""The native, lossless on-disk form: three Parquet tables plus a small JSON header.

``dataset.json`` holds the format marker, the schema version and ``info``; ``images.parquet``,
``annotations.parquet`` and ``categories.parquet`` hold the tables exactly as in memory (float64
coordinates, int64 ids, JSON attributes), so a write/read round trip is bit-identical. The same
Parquet files load with ``datasets.load_dataset("parquet", ...)``. Images are copied (or linked)
under ``images/`` keeping their relative file names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from imagine.kernel import InputError, dump_json, read_json

from ..model import SCHEMAS, Dataset
from . import Format, ReadContext, WriteContext, register

MARKER = "imagine-native"
VERSION = 1
TABLES = ("images", "annotations", "categories")


def detect(path: Path) -> int:
    header = path / "dataset.json" if path.is_dir() else path
    if header.name != "dataset.json" or not header.is_file():
        return 0
    try:
        return 100 if json.loads(header.read_text("utf-8")).get("format") == MARKER else 0
    except (OSError, ValueError, AttributeError):
        return 0


def read(path: Path, ctx: ReadContext) -> Dataset:
    root = path if path.is_dir() else path.parent
    header_path = root / "dataset.json"
    header = read_json(header_path, "not a native imagine dataset: dataset.json is missing")
    if not isinstance(header, dict) or header.get("format") != MARKER:
        raise InputError(f"not a native imagine dataset (format should be {MARKER!r})", file=header_path)
    if header.get("version", 0) > VERSION:
        raise InputError(f"written by a newer imagine (version {header['version']})", file=header_path)
    tables: dict[str, pa.Table] = {}
    for name in TABLES:
        p = root / f"{name}.parquet"
        try:
            t = pq.read_table(p)
        except FileNotFoundError:
            raise InputError("table file is missing", file=p) from None
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"unreadable Parquet table: {exc}", file=p) from None
        schema = SCHEMAS[name]
        missing = [n for n in schema.names if n not in t.column_names]
        if missing:
            raise InputError(f"table lacks column(s) {missing}", file=p)
        try:
            tables[name] = t.select(schema.names).cast(schema)
        except (pa.ArrowException, ValueError) as exc:
            raise InputError(f"table does not match the {name} schema: {exc}", file=p) from None
    info = dict(header.get("info") or {})
    info["root"] = str((root / "images").resolve()) if (root / "images").is_dir() else str(root.resolve())
    return Dataset(tables["images"], tables["annotations"], tables["categories"], info)


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    info = {k: v for k, v in ds.info.items() if k != "root"}
    for name in TABLES:
        pq.write_table(getattr(ds, name), out / f"{name}.parquet", compression="zstd")
    if ctx.images != "none":
        for fn in ds.images.column("file_name").to_pylist():
            ctx.put_image(fn, out / "images" / fn)
    dump_json({"format": MARKER, "version": VERSION, "info": info}, out / "dataset.json")


register(Format("native", "imagine's lossless form: Parquet tables + dataset.json", read, write, detect))
