"""Content hashes and split manifests that benchmark cards and publications cite.

A split manifest lists, per split, every image file with its SHA-256; its own hash is the
SHA-256 of its canonical JSON. The dataset content hash covers the annotations, categories and
image table (file names, sizes, splits) plus the manifest, so a card can prove it was computed
on exactly this data.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from imagine.kernel import InputError, progress, safe_join

from .model import Dataset

CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise InputError("image file not found", file=path) from None
    return h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces) for hashing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def image_checksums(ds: Dataset, root: str | os.PathLike[str] | None = None) -> list[str]:
    """``sha256:<hex>`` of every image, from ``images.checksum`` when present, else read from disk."""
    root_p = Path(root) if root is not None else Path(ds.info.get("root") or ".")
    names = ds.images.column("file_name").to_pylist()
    known = ds.images.column("checksum").to_pylist()
    out = []
    for name, c in progress(zip(names, known, strict=True), total=len(names), desc="hashing images"):
        if c and str(c).startswith("sha256:"):
            out.append(str(c))
        else:
            out.append("sha256:" + file_sha256(safe_join(root_p, name)))
    return out


def with_checksums(ds: Dataset, root: str | os.PathLike[str] | None = None) -> Dataset:
    """The dataset with ``images.checksum`` filled (sha256) for every image."""
    sums = image_checksums(ds, root)
    idx = ds.images.schema.get_field_index("checksum")
    images = ds.images.set_column(idx, "checksum", pa.array(sums, pa.string()))
    return ds.with_tables(images=images)


def split_manifest(ds: Dataset, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Files and hashes per split (images without a split go under ``"unsplit"``), plus its hash."""
    sums = image_checksums(ds, root)
    splits: dict[str, list[dict[str, str]]] = {}
    for name, split, c in zip(ds.images.column("file_name").to_pylist(), ds.images.column("split").to_pylist(),
                              sums, strict=True):
        splits.setdefault(split or "unsplit", []).append({"file": name, "checksum": c})
    for rows in splits.values():
        rows.sort(key=lambda r: r["file"])
    body = {"version": 1, "splits": dict(sorted(splits.items()))}
    return {**body, "hash": "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()}


def verify_manifest(manifest: dict[str, Any], root: str | os.PathLike[str]) -> list[str]:
    """Problems (missing or changed files) between a manifest and the files under ``root``."""
    problems = []
    for split, rows in manifest.get("splits", {}).items():
        for r in rows:
            p = safe_join(root, r["file"])
            if not p.is_file():
                problems.append(f"{split}: {r['file']} is missing")
            elif "sha256:" + file_sha256(p) != r["checksum"]:
                problems.append(f"{split}: {r['file']} has changed")
    return problems


def dataset_hash(ds: Dataset, root: str | os.PathLike[str] | None = None) -> str:
    """``sha256:<hex>`` over categories, annotations, image rows and the split manifest."""
    h = hashlib.sha256()
    h.update(canonical_json(ds.categories.to_pylist()))
    h.update(canonical_json(ds.annotations.drop_columns([]).to_pylist()))
    images = ds.images.drop_columns(["checksum"]).to_pylist()
    h.update(canonical_json(images))
    h.update(split_manifest(ds, root)["hash"].encode())
    return "sha256:" + h.hexdigest()
