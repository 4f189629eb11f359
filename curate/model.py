"""The canonical, columnar dataset model every format reads into and writes from.

A :class:`Dataset` is four things: ``images``, ``annotations`` and ``categories`` as Arrow
tables (never one Python object per annotation: datasets here reach millions of boxes) and an
``info`` dict. Readers build plain column lists or NumPy arrays and hand them to
:meth:`Dataset.from_columns`, which fills the columns they do not know with nulls and casts to
the fixed schemas below. Writers read columns back as NumPy arrays or Python lists.

Geometry conventions (``annotations.kind`` and ``annotations.geometry``, a list of rings of
float64 coordinates in pixels, origin at the top-left corner of the top-left pixel):

=============  ==========================================================================
kind           geometry
=============  ==========================================================================
``box``        null (the envelope columns ``bbox_x, bbox_y, bbox_w, bbox_h`` are the box)
``rbox``       ``[[cx, cy, w, h, angle]]``, angle in degrees, clockwise on screen (y down),
               about the centre (CVAT's convention)
``polygon``    ``[ring, ...]`` each ``[x1, y1, x2, y2, ...]``; a multi-part polygon has
               several rings; holes follow an empty ring: ``[outer..., [], hole...]``
``mask``       ``[[height, width]]``; the mask itself is ``rle`` (COCO compressed RLE string)
``keypoints``  ``[[x1, y1, v1, x2, y2, v2, ...]]``; v as COCO (0 absent, 1 hidden, 2 visible);
               names and skeleton live on the category
``polyline``   ``[line, ...]`` each ``[x1, y1, x2, y2, ...]``
``point``      ``[[x1, y1, x2, y2, ...]]`` one or more points
``circle``     ``[[cx, cy, r]]``
``ellipse``    ``[[cx, cy, rx, ry, angle]]``, angle as for ``rbox``
``label``      null: a whole-image (or whole-frame) label; the envelope is the whole image
               when its size is known, else NaN
=============  ==========================================================================

The envelope ``bbox_*`` (axis-aligned, in pixels) is always filled so that every audit, split or
writer that only needs boxes can use the same four float64 columns.

Ids: ``id`` columns are int64. When a source uses integer ids they are kept as they are (COCO
category ids 1, 2, 4 stay 1, 2, 4); when it uses strings or no ids, dense ids are assigned and
the original, if any, is kept in ``source_id`` so that writers that can hold it put it back.
Free attributes (``attributes``) are JSON objects stored as strings: any key a source carries
that has no column of its own lands there and is written back where the target has a place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

GEOMETRY_KINDS = ("box", "rbox", "polygon", "mask", "keypoints", "polyline", "point", "circle", "ellipse",
                  "label")

RINGS = pa.list_(pa.list_(pa.float64()))

IMAGES_SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("file_name", pa.string(), nullable=False),
    pa.field("width", pa.int64()),
    pa.field("height", pa.int64()),
    pa.field("split", pa.string()),
    pa.field("checksum", pa.string()),
    pa.field("site", pa.string()),
    pa.field("datetime", pa.string()),
    pa.field("latitude", pa.float64()),
    pa.field("longitude", pa.float64()),
    pa.field("depth", pa.float64()),
    pa.field("video", pa.string()),
    pa.field("frame", pa.int64()),
    pa.field("instrument", pa.string()),
    pa.field("annotator", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("attributes", pa.string()),
])

ANNOTATIONS_SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("image_id", pa.int64(), nullable=False),
    pa.field("category_id", pa.int64()),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("bbox_x", pa.float64()),
    pa.field("bbox_y", pa.float64()),
    pa.field("bbox_w", pa.float64()),
    pa.field("bbox_h", pa.float64()),
    pa.field("geometry", RINGS),
    pa.field("rle", pa.string()),
    pa.field("area", pa.float64()),
    pa.field("iscrowd", pa.bool_()),
    pa.field("score", pa.float64()),
    pa.field("track_id", pa.int64()),
    pa.field("group_id", pa.int64()),
    pa.field("annotator", pa.string()),
    pa.field("source_id", pa.string()),
    pa.field("attributes", pa.string()),
])

CATEGORIES_SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("supercategory", pa.string()),
    pa.field("taxon", pa.string()),
    pa.field("keypoints", pa.list_(pa.string())),
    pa.field("skeleton", pa.list_(pa.list_(pa.int64()))),
    pa.field("source_id", pa.string()),
    pa.field("attributes", pa.string()),
])

SCHEMAS = {"images": IMAGES_SCHEMA, "annotations": ANNOTATIONS_SCHEMA, "categories": CATEGORIES_SCHEMA}

# Optional image metadata columns used by audits, splits and leakage checks.
IMAGE_METADATA_COLUMNS = ("site", "datetime", "latitude", "longitude", "depth", "video", "frame", "instrument",
                          "annotator")


def _table(columns: Mapping[str, Any] | None, schema: pa.Schema, name: str) -> pa.Table:
    """Build a table of ``schema`` from whatever columns are given, nulls for the rest."""
    columns = dict(columns or {})
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise ValueError(f"unknown {name} column(s): {sorted(unknown)}")
    n = None
    for v in columns.values():
        length = len(v)
        if n is None:
            n = length
        elif length != n:
            raise ValueError(f"{name} columns have different lengths")
    n = n or 0
    arrays = []
    for f in schema:
        if f.name in columns:
            v = columns[f.name]
            if isinstance(v, pa.ChunkedArray | pa.Array):
                arr = v.cast(f.type) if v.type != f.type else v
            else:
                arr = pa.array(v, type=f.type, from_pandas=True) if isinstance(v, np.ndarray) else \
                    pa.array(v, type=f.type)
        else:
            if not f.nullable and n:
                raise ValueError(f"{name} needs column {f.name!r}")
            arr = pa.nulls(n, type=f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def dumps_attrs(attrs: Mapping[str, Any] | None) -> str | None:
    """Attributes dict → the JSON string stored in ``attributes`` (None when empty)."""
    if not attrs:
        return None
    return json.dumps(attrs, ensure_ascii=False, separators=(",", ":"))


def loads_attrs(s: str | None) -> dict[str, Any]:
    """The JSON string of an ``attributes`` cell → dict (empty for null)."""
    if not s:
        return {}
    out = json.loads(s)
    return out if isinstance(out, dict) else {}


@dataclass
class Dataset:
    """Images, annotations, categories (Arrow tables) and info (dict); see the module docstring."""

    images: pa.Table
    annotations: pa.Table
    categories: pa.Table
    info: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_columns(cls, images: Mapping[str, Any] | None = None, annotations: Mapping[str, Any] | None = None,
                     categories: Mapping[str, Any] | None = None, info: Mapping[str, Any] | None = None
                     ) -> Dataset:
        """Build a dataset from column mappings (lists, NumPy or Arrow arrays); missing columns are null."""
        return cls(_table(images, IMAGES_SCHEMA, "images"), _table(annotations, ANNOTATIONS_SCHEMA, "annotations"),
                   _table(categories, CATEGORIES_SCHEMA, "categories"), dict(info or {}))

    @classmethod
    def from_records(cls, images: Sequence[Mapping[str, Any]], annotations: Sequence[Mapping[str, Any]],
                     categories: Sequence[Mapping[str, Any]], info: Mapping[str, Any] | None = None) -> Dataset:
        """Build a dataset from row dicts; convenient for small data and tests, slow for millions."""
        def cols(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> dict[str, list[Any]]:
            names = [n for n in schema.names if any(n in r for r in rows)]
            return {n: [r.get(n) for r in rows] for n in names}
        return cls.from_columns(cols(images, IMAGES_SCHEMA), cols(annotations, ANNOTATIONS_SCHEMA),
                                cols(categories, CATEGORIES_SCHEMA), info)

    @classmethod
    def empty(cls) -> Dataset:
        return cls.from_columns()

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.images.num_rows

    @property
    def num_annotations(self) -> int:
        return self.annotations.num_rows

    def col(self, table: str, name: str) -> np.ndarray:
        """A column as a NumPy array (nulls → NaN for floats, None objects otherwise)."""
        t: pa.Table = getattr(self, table)
        c = t.column(name)
        if pa.types.is_floating(c.type):
            return np.asarray(c.to_numpy())
        if pa.types.is_integer(c.type) and c.null_count == 0:
            return np.asarray(c.to_numpy())
        return np.asarray(c.to_pylist(), dtype=object)

    def category_names(self) -> dict[int, str]:
        """Category id → name, in table order."""
        return dict(zip(self.categories.column("id").to_pylist(), self.categories.column("name").to_pylist(),
                        strict=True))

    def image_index(self) -> dict[int, int]:
        """Image id → row number."""
        return {int(i): r for r, i in enumerate(self.images.column("id").to_numpy())}

    def annotations_by_image(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Group annotation rows by image row, keeping source order within an image.

        Returns ``(order, starts, ends)``: annotation rows ``order[starts[i]:ends[i]]`` belong to
        image row ``i``. One stable argsort, so writers loop over images without a dict per image.
        """
        img_ids = self.images.column("id").to_numpy()
        ann_img = self.annotations.column("image_id").to_numpy()
        n = len(img_ids)
        if n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        sorter = np.argsort(img_ids, kind="stable")
        pos = np.searchsorted(img_ids, ann_img, sorter=sorter)
        pos = np.clip(pos, 0, n - 1)
        rows = sorter[pos]
        ok = img_ids[rows] == ann_img
        rows = np.where(ok, rows, -1)
        order = np.argsort(rows, kind="stable")
        order = order[rows[order] >= 0]
        counts = np.bincount(rows[rows >= 0], minlength=n)
        ends = np.cumsum(counts)
        starts = ends - counts
        return order, starts, ends

    def with_tables(self, *, images: pa.Table | None = None, annotations: pa.Table | None = None,
                    categories: pa.Table | None = None, info: dict[str, Any] | None = None) -> Dataset:
        """A copy with some tables replaced (tables are immutable; nothing is copied needlessly)."""
        return Dataset(images if images is not None else self.images,
                       annotations if annotations is not None else self.annotations,
                       categories if categories is not None else self.categories,
                       dict(info if info is not None else self.info))

    def filter_images(self, mask: np.ndarray | pa.Array) -> Dataset:
        """Keep the images where ``mask`` is true, and only their annotations."""
        images = self.images.filter(pa.array(mask))
        keep = pc.is_in(self.annotations.column("image_id"), value_set=images.column("id"))
        return self.with_tables(images=images, annotations=self.annotations.filter(keep))

    def filter_annotations(self, mask: np.ndarray | pa.Array) -> Dataset:
        return self.with_tables(annotations=self.annotations.filter(pa.array(mask)))

    def splits(self) -> list[str]:
        """Split names in order of first appearance (None for unsplit images is skipped)."""
        seen: dict[str, None] = {}
        for s in self.images.column("split").to_pylist():
            if s is not None:
                seen.setdefault(s, None)
        return list(seen)

    def equals(self, other: Dataset, *, check_info: bool = False) -> bool:
        same = (self.images.equals(other.images) and self.annotations.equals(other.annotations)
                and self.categories.equals(other.categories))
        return same and (not check_info or self.info == other.info)


def concat(datasets: Iterable[Dataset]) -> Dataset:
    """Concatenate datasets that use disjoint image/annotation ids and the same categories."""
    ds = list(datasets)
    if not ds:
        return Dataset.empty()
    return Dataset(pa.concat_tables([d.images for d in ds]), pa.concat_tables([d.annotations for d in ds]),
                   ds[0].categories, dict(ds[0].info))
