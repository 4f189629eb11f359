"""Predictions files the audit reads, aligned to the dataset's classes and images.

Classification (``pred_probs``): CSV or Parquet, one row per image, an image key column
(``image_id`` or ``file_name``) and one probability column per class named ``prob_<category id>``
(what ``imagine-curate baseline --cv K`` writes as ``pred_probs.csv``). Rows must be
out-of-sample probabilities that sum to one (multi-label: per-class probabilities, any sum).

Detection: CSV or Parquet, one row per predicted box: ``image_id`` or ``file_name``,
``category_id``, ``score``, ``x, y, w, h`` in pixels (what ``baseline --task detect`` writes as
``predictions.csv``). Keep low-score boxes: the audit calibrates scores itself.

Both shapes are described by ``schemas/predictions.schema.json`` (the JSON form: ``{"kind":
"classification", "class_ids": [...], "rows": [{"image_id"|"file_name", "probs": [...]}]}``).
Problems (unknown images or classes, probabilities that do not sum to one) are findings, so the
rest of the audit still runs.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imagine.kernel import Finding, InputError

from ..model import Dataset

SUM_TOLERANCE = 1e-3


@dataclass
class ClassPredictions:
    """Out-of-sample probabilities aligned to dataset image rows and the category table order."""

    image_rows: np.ndarray  # dataset image row of each prediction row
    probs: np.ndarray  # (N, K) in the order of ``class_ids``
    class_ids: list[int]
    findings: list[Finding] = field(default_factory=list)


@dataclass
class DetPredictions:
    """Predicted boxes: per row image row, category id, score and xywh (pixels)."""

    image_rows: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray  # (M, 4) x, y, w, h
    findings: list[Finding] = field(default_factory=list)


def _read_rows(path: Path) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a CSV (comma or semicolon) or Parquet file, or the JSON form."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            t = pq.read_table(path)
            cols = t.column_names
            data = [t.column(c).to_pylist() for c in cols]
            return cols, [list(r) for r in zip(*data, strict=True)]
        if suffix == ".json":
            doc = json.loads(path.read_text("utf-8"))
            from imagine.schemas import validate

            errs = validate(doc, "predictions", file=str(path))
            if errs:
                raise InputError(f"not a predictions file: {errs[0].message}", file=path, place=errs[0].place)
            key = "image_id" if all("image_id" in r for r in doc["rows"]) else "file_name"
            header = [key] + [f"prob_{c}" for c in doc["class_ids"]]
            return header, [[r[key], *r["probs"]] for r in doc["rows"]]
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        raise InputError("predictions file not found", file=path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable predictions file: {exc}", file=path) from None
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(text.splitlines(), delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError("predictions file is empty", file=path) from None
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"row has {len(row)} fields, the header has {len(header)}", file=path,
                             place=f"line {lineno}")
        rows.append(row)
    return header, rows


def _read_parquet(path: Path) -> Any:
    """The Arrow table of a Parquet predictions file (errors as :func:`_read_rows` reports them)."""
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path)
    except FileNotFoundError:
        raise InputError("predictions file not found", file=path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable predictions file: {exc}", file=path) from None


def _image_lookup(ds: Dataset, header: list[str], path: Path) -> tuple[int, dict[Any, int]]:
    if "image_id" in header:
        return header.index("image_id"), {str(i): r for r, i in enumerate(ds.images.column("id").to_pylist())}
    if "file_name" in header:
        names = ds.images.column("file_name").to_pylist()
        lookup = {n: r for r, n in enumerate(names)}
        lookup.update({os.path.basename(n): r for r, n in enumerate(names)} if len(set(map(os.path.basename, names)))
                      == len(names) else {})
        return header.index("file_name"), lookup
    raise InputError("predictions need an image_id or file_name column", file=path, place="line 1")


def _float_columns(table: Any, prob_cols: dict[str, int], class_ids: list[int]) -> np.ndarray | None:
    """(rows, K) probabilities straight from float, null-free Parquet columns (0 where a class has no
    column), or None when a column needs the row-by-row reading (other types, nulls)."""
    import pyarrow as pa

    out = np.zeros((table.num_rows, len(class_ids)), dtype=np.float64)
    for j, c in enumerate(class_ids):
        i = prob_cols.get(str(c))
        if i is None:
            continue
        col = table.column(i)
        if not (pa.types.is_float32(col.type) or pa.types.is_float64(col.type)) or col.null_count:
            return None
        out[:, j] = col.to_numpy()
    return out


def load_class_predictions(path: str | os.PathLike[str], ds: Dataset, *, multi_label: bool = False
                           ) -> ClassPredictions:
    """Read ``prob_<id>`` columns and align them to the dataset's category order and image rows."""
    p = Path(path)
    table: Any = None
    rows: list[list[Any]] | None = None
    if p.suffix.lower() == ".parquet":
        table = _read_parquet(p)
        header = table.column_names
        if len(set(header)) < len(header):
            table = None
    if table is None:
        header, rows = _read_rows(p)
    key_col, lookup = _image_lookup(ds, header, p)
    prob_cols = {h[5:]: i for i, h in enumerate(header) if h.startswith("prob_")}
    if not prob_cols:
        raise InputError("no prob_<category id> columns", file=p, place="line 1")
    class_ids = ds.categories.column("id").to_pylist()
    findings: list[Finding] = []
    known = {str(c) for c in class_ids}
    unknown = sorted(set(prob_cols) - known)
    missing = [c for c in class_ids if str(c) not in prob_cols]
    if unknown:
        findings.append(Finding("predictions-unknown-class", f"probability columns for categories the dataset does "
                                f"not have: {', '.join(unknown)}", file=str(p), place="line 1"))
    if missing:
        findings.append(Finding("predictions-missing-class", f"no probability column for categories "
                                f"{', '.join(map(str, missing))}; they get probability 0", file=str(p),
                                place="line 1"))
    image_rows, probs = [], []
    bad_sum = 0
    first_bad = None
    unmatched = 0
    fast = _float_columns(table, prob_cols, class_ids) if table is not None else None
    if table is not None and fast is None:  # other column types or nulls: the row-by-row reading, as before
        header, rows = _read_rows(p)
    if fast is not None:  # columnar Parquet: same alignment and checks without a Python float per value
        hit = [lookup.get(str(k)) for k in table.column(key_col).to_pylist()]
        matched = np.fromiter((r is not None for r in hit), dtype=bool, count=len(hit))
        image_rows = [r for r in hit if r is not None]
        unmatched = len(hit) - len(image_rows)
        arr = fast if matched.all() else fast[matched]
        if not multi_label:
            total = np.zeros(len(arr))
            for j in range(arr.shape[1]):  # left to right, as Python's sum() over a row
                total = total + arr[:, j]
            bad = np.abs(total - 1.0) > SUM_TOLERANCE
            bad_sum = int(bad.sum())
            first_bad = int(np.flatnonzero(matched)[bad][0]) + 2 if bad_sum else None
    for lineno, row in enumerate(rows or [], start=2):
        r = lookup.get(str(row[key_col]))
        if r is None:
            unmatched += 1
            continue
        try:
            vec = [float(row[prob_cols[str(c)]]) if str(c) in prob_cols else 0.0 for c in class_ids]
        except (TypeError, ValueError):
            raise InputError("probability is not a number", file=p, place=f"line {lineno}") from None
        if not multi_label and abs(sum(vec) - 1.0) > SUM_TOLERANCE:
            bad_sum += 1
            first_bad = first_bad or lineno
        image_rows.append(r)
        probs.append(vec)
    if unmatched:
        findings.append(Finding("predictions-unknown-image", f"{unmatched} prediction row(s) name images the "
                                "dataset does not have; ignored", file=str(p), severity="warning"))
    arr = (arr if fast is not None else np.asarray(probs, dtype=np.float64)).reshape(-1, len(class_ids))
    if bad_sum:
        findings.append(Finding("predictions-not-normalised", f"{bad_sum} row(s) do not sum to one (within "
                                f"{SUM_TOLERANCE}); they were renormalised", file=str(p), place=f"line {first_bad}"))
        s = arr.sum(axis=1, keepdims=True)
        arr = np.divide(arr, s, out=np.full_like(arr, 1.0 / max(len(class_ids), 1)), where=s > 0)
    return ClassPredictions(np.asarray(image_rows, dtype=np.int64), arr, class_ids, findings)


def load_det_predictions(path: str | os.PathLike[str], ds: Dataset) -> DetPredictions:
    """Read predicted boxes (``category_id, score, x, y, w, h``) keyed by image."""
    p = Path(path)
    header, rows = _read_rows(p)
    key_col, lookup = _image_lookup(ds, header, p)
    need = ["category_id", "score", "x", "y", "w", "h"]
    absent = [c for c in need if c not in header]
    if absent:
        raise InputError(f"detection predictions lack column(s) {', '.join(absent)}", file=p, place="line 1")
    idx = [header.index(c) for c in need]
    known = set(ds.categories.column("id").to_pylist())
    img, cat, score, box = [], [], [], []
    findings: list[Finding] = []
    unmatched = unknown_cat = 0
    for lineno, row in enumerate(rows, start=2):
        r = lookup.get(str(row[key_col]))
        if r is None:
            unmatched += 1
            continue
        try:
            c, s, x, y, w, h = (float(row[i]) for i in idx)
        except (TypeError, ValueError):
            raise InputError("a value is not a number", file=p, place=f"line {lineno}") from None
        if int(c) not in known:
            unknown_cat += 1
            continue
        img.append(r)
        cat.append(int(c))
        score.append(s)
        box.append((x, y, w, h))
    if unmatched:
        findings.append(Finding("predictions-unknown-image", f"{unmatched} predicted box(es) on images the dataset "
                                "does not have; ignored", file=str(p), severity="warning"))
    if unknown_cat:
        findings.append(Finding("predictions-unknown-class", f"{unknown_cat} predicted box(es) of categories the "
                                "dataset does not have; ignored", file=str(p)))
    return DetPredictions(np.asarray(img, np.int64), np.asarray(cat, np.int64), np.asarray(score, np.float64),
                          np.asarray(box, np.float64).reshape(-1, 4), findings)
