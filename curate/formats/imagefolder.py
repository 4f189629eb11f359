"""Classification as one folder per class (torchvision ``ImageFolder`` layout): read and write.

Read ``SRC/<class>/<image>`` or, when every top folder is a split name (train, val, valid,
validation, test), ``SRC/<split>/<class>/<image>``. Classes get ids 0, 1, 2… in sorted name order
(torchvision's convention); each image gets one whole-image ``label`` annotation; image files
directly in ``SRC`` (or in a split folder) are kept as unlabelled images. Sizes come from the image
headers (``sizes=False`` skips that).

Per-image metadata comes from a CSV sidecar: ``metadata=<csv>`` (``"auto"``, the default, uses a CSV
at the top of ``SRC`` whose path column names the images; ``None`` disables it). Rows are matched on
the relative image path (with or without the split folder); comma or semicolon delimited. Columns
``video``/``video_name``, ``date``/``datetime``/``timestamp``, ``site``, ``latitude``, ``longitude``,
``depth``, ``frame``… fill the image columns; the others go to the image attributes as text.
The writer writes the same layout and a ``metadata.csv`` of that form, so image metadata and ids
survive a round trip; annotations other than whole-image labels are reported as not carried.
The images are the dataset here: with ``images="none"`` only the class folders and
``metadata.csv`` (which names every image's place) are written.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from imagine.kernel import ConversionReport, Finding, InputError, atomic_write, image_size, progress

from ..geometry import envelope
from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
METADATA_FILE = "metadata.csv"
PATH_COLUMNS = ("file_name", "filename", "image", "path", "file", "image_path", "img")
# CSV column name → image column (exact model names first, then common aliases).
COLUMN_MAP = {
    "split": "split", "checksum": "checksum", "site": "site", "datetime": "datetime", "latitude": "latitude",
    "longitude": "longitude", "depth": "depth", "video": "video", "frame": "frame", "instrument": "instrument",
    "annotator": "annotator", "source_id": "source_id",
    "video_name": "video", "video_id": "video", "date": "datetime", "date_time": "datetime",
    "timestamp": "datetime", "station": "site", "lat": "latitude", "lon": "longitude", "lng": "longitude",
}
FLOAT_COLUMNS = ("latitude", "longitude", "depth")
WRITE_COLUMNS = ("split", "checksum", "site", "datetime", "latitude", "longitude", "depth", "video", "frame",
                 "instrument", "annotator", "source_id")


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXT and not p.name.startswith(".")


def _dirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))


def _split_layout(path: Path) -> bool:
    top = _dirs(path)
    return bool(top) and all(d.name.lower() in SPLIT_NAMES for d in top)


def _split_order(d: Path) -> int:
    return SPLIT_NAMES.index(d.name.lower())


# ------------------------------------------------------------------------------------------- read


def _read_csv(csv_path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=csv_path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=csv_path) from None
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    if not rows:
        raise InputError("empty CSV file", file=csv_path, place="line 1")
    return [h.strip() for h in rows[0]], rows[1:]


def _path_column(header: list[str], rows: list[list[str]], keys: set[str]) -> int | None:
    lower = [h.lower() for h in header]
    cands = [lower.index(c) for c in PATH_COLUMNS if c in lower] + list(range(len(header)))
    for c in dict.fromkeys(cands):
        if any(len(r) > c and r[c].replace("\\", "/").lstrip("./") in keys for r in rows[:200]):
            return c
    return None


def _join_metadata(csv_path: Path, images: dict[str, list[Any]], report: ConversionReport,
                   explicit: bool) -> None:
    """Fill image columns and attributes from a metadata CSV matched on relative image path."""
    header, rows = _read_csv(csv_path)
    index: dict[str, int] = {}
    for i, (fn, split) in enumerate(zip(images["file_name"], images["split"], strict=True)):
        index[fn] = i
        if split is not None and fn.startswith(split + "/"):
            index.setdefault(fn[len(split) + 1:], i)
    pc = _path_column(header, rows, set(index))
    if pc is None:
        if explicit:
            raise InputError("no column of this CSV names the dataset's images (by relative path)",
                             file=csv_path, place="line 1")
        return
    targets: list[str | None] = []
    used: set[str] = set()
    for k, h in enumerate(header):
        t = COLUMN_MAP.get(h.lower()) if k != pc else None
        if t is not None and t not in used:
            used.add(t)
            targets.append(t)
        else:
            targets.append(None)
    id_col = header.index("id") if "id" in header and header.index("id") != pc else -1
    if id_col >= 0 and not all(len(r) > id_col and r[id_col].lstrip("-").isdigit() for r in rows if r):
        id_col = -1  # not integer image ids (as this writer writes): an ordinary metadata column
    unmatched = 0
    attrs: dict[int, dict[str, Any]] = {}
    for ln, row in enumerate(rows, 2):
        if not row or len(row) <= pc:
            continue
        hit = index.get(row[pc].replace("\\", "/").lstrip("./"))
        if hit is None:
            unmatched += 1
            continue
        i = hit
        a = loads_attrs(images["attributes"][i])
        for k, v in enumerate(row):
            if k == pc or k >= len(header) or v == "":
                continue
            t = targets[k]
            place = f"line {ln}, column {header[k]!r}"
            if k == id_col:
                try:
                    images["id"][i] = int(v)
                except ValueError:
                    raise InputError(f"id {v!r} is not an integer", file=csv_path, place=place) from None
            elif t is None:
                a[header[k]] = v
            elif t in FLOAT_COLUMNS:
                try:
                    images[t][i] = float(v)
                except ValueError:
                    raise InputError(f"{header[k]} {v!r} is not a number", file=csv_path, place=place) from None
            elif t == "frame":
                try:
                    images[t][i] = int(v)
                except ValueError:
                    raise InputError(f"frame {v!r} is not an integer", file=csv_path, place=place) from None
            else:
                images[t][i] = v
        attrs[i] = a
    for i, a in attrs.items():
        images["attributes"][i] = dumps_attrs(a)
    if len(set(images["id"])) != len(images["id"]):
        raise InputError("image ids in the id column are not unique", file=csv_path)
    if unmatched:
        report.add("metadata-row-unmatched", "metadata CSV rows naming no image of the dataset were ignored",
                   csv_path.name, count=unmatched)


def read(path: Path, ctx: ReadContext) -> Dataset:
    """Read a class-per-folder dataset (optionally split into train/val/test folders)."""
    if not path.is_dir():
        raise InputError("an image-folder dataset is a folder of class folders", file=path)
    split_layout = ctx.options.get("splits", _split_layout(path))
    bases: list[tuple[str | None, Path]] = (
        [(d.name, d) for d in sorted(_dirs(path), key=_split_order)] if split_layout else [(None, path)])
    class_names = sorted({d.name for _, b in bases for d in _dirs(b)})
    cat_id = {n: i for i, n in enumerate(class_names)}
    images: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "split", "checksum",
                                                      "site", "datetime", "latitude", "longitude", "depth",
                                                      "video", "frame", "instrument", "annotator", "source_id",
                                                      "attributes")}
    labels: list[int | None] = []
    for split, base in bases:
        entries: list[tuple[Path, int | None]] = [(p, None) for p in sorted(base.iterdir()) if _is_image(p)]
        for d in _dirs(base):
            entries += [(p, cat_id[d.name]) for p in sorted(d.rglob("*"))
                        if _is_image(p) and not any(part.startswith(".") for part in p.relative_to(d).parts)]
        for p, c in entries:
            images["id"].append(len(images["id"]))
            images["file_name"].append(p.relative_to(path).as_posix())
            images["split"].append(split)
            for k in images:
                if k not in ("id", "file_name", "split"):
                    images[k].append(None)
            labels.append(c)
    if ctx.options.get("sizes", True):
        for i, fn in enumerate(progress(images["file_name"], desc="image sizes", unit="img")):
            images["width"][i], images["height"][i] = image_size(path / fn)
    meta = ctx.options.get("metadata", "auto")
    if meta == "auto":
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) == 1:
            _join_metadata(csvs[0], images, ctx.report, explicit=False)
        elif (path / METADATA_FILE).is_file():
            _join_metadata(path / METADATA_FILE, images, ctx.report, explicit=False)
    elif meta:
        _join_metadata(Path(meta), images, ctx.report, explicit=True)
    ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                   "bbox_w", "bbox_h")}
    for i, c in enumerate(labels):
        if c is None:
            continue
        box = envelope("label", None, width=images["width"][i], height=images["height"][i])
        for k, v in zip(("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w", "bbox_h"),
                        (len(ann["id"]), images["id"][i], c, "label", *box), strict=True):
            ann[k].append(v)
    cats = {"id": list(range(len(class_names))), "name": class_names}
    return Dataset.from_columns(images, ann, cats, {"root": str(path.resolve())})


# ------------------------------------------------------------------------------------------- write


def _folder_name(name: str) -> str:
    out = name.replace("/", "_").replace("\\", "_").replace("\x00", "_").strip()
    if not out or out.startswith("."):
        out = "_" + out
    return out


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    """Write ``[<split>/]<class>/<image>`` plus ``metadata.csv`` (ids and image metadata)."""
    report = ctx.report
    cats = ds.categories.to_pylist()
    folder: dict[int, str] = {}
    for c in cats:
        f = _folder_name(c["name"])
        if f != c["name"]:
            report.add("category-name-changed", "class names that cannot be folder names were changed", c["name"])
        folder[c["id"]] = f
    by_name = sorted(folder.values())
    if [by_name.index(folder[c["id"]]) for c in cats] != [c["id"] for c in cats]:
        report.add("category-id-dropped", "an image folder orders classes by name; ids become 0, 1, 2… in that "
                   "order", count=len(cats))
    lost = [c["name"] for c in cats if c["supercategory"] or c["taxon"] or c["attributes"] or c["keypoints"]]
    if lost:
        report.add_many("category-attributes-dropped", "class folders carry only a name", lost, len(lost))
    splits = ds.images.column("split").to_pylist()
    use_splits = any(s is not None for s in splits)
    if use_splits and any(s is not None and s.lower() not in SPLIT_NAMES for s in splits):
        report.add("split-dropped", f"only the split names {', '.join(SPLIT_NAMES)} make split folders; "
                   "images were written without splits", count=len(splits))
        use_splits = False
    ann = ds.annotations
    kinds = ann.column("kind").to_pylist()
    cat_ids = ann.column("category_id").to_pylist()
    aids = ann.column("id").to_pylist()
    carried = {c: ann.column(c).to_pylist() for c in ("score", "annotator", "source_id", "attributes",
                                                       "iscrowd", "track_id", "group_id")}
    order, starts, ends = ds.annotations_by_image()
    used: set[str] = set()
    meta_rows: list[dict[str, Any]] = []
    attr_keys: dict[str, None] = {}
    for d in sorted(set(folder.values())):
        base_dirs = [s.lower() for s in dict.fromkeys(x for x in splits if x)] if use_splits else [""]
        for s in base_dirs:
            (out / s / d).mkdir(parents=True, exist_ok=True)
    for r, im in enumerate(progress(ds.images.to_pylist(), desc="imagefolder write", unit="img")):
        label: int | None = None
        for a in order[starts[r]:ends[r]]:
            if kinds[a] != "label":
                report.add("annotation-dropped", "only whole-image labels fit an image folder; other annotations "
                           "were not carried", aids[a])
                continue
            if label is not None or cat_ids[a] is None:
                report.add("extra-labels-dropped", "an image sits in one class folder; further labels dropped",
                           aids[a])
                continue
            label = cat_ids[a]
            for col, v in carried.items():
                if v[a] is not None and v[a] is not False:
                    report.add(f"{col.replace('_id', '').replace('iscrowd', 'crowd-flag')}-dropped",
                               f"class folders carry no {col}", aids[a])
        split = im["split"]
        if use_splits and split is None:
            report.add("split-assigned", "images without a split were put under train/", im["file_name"])
            split = "train"
        parts = ([split.lower()] if use_splits and split else []) + ([folder[label]] if label is not None else [])
        name = Path(im["file_name"]).name
        rel = "/".join([*parts, name])
        if rel in used:
            stem, suffix = Path(name).stem, Path(name).suffix
            rel = "/".join([*parts, f"{stem}__{im['id']}{suffix}"])
            report.add("file-renamed", "two images would share a path; the later one was renamed", im["file_name"])
        used.add(rel)
        row: dict[str, Any] = {"file_name": rel, "id": im["id"]}
        for c in WRITE_COLUMNS:
            if c != "split" and im[c] is not None:
                row[c] = im[c]
        for k, v in loads_attrs(im["attributes"]).items():
            if not isinstance(v, str):
                report.add("attribute-to-text", "non-text image attributes are written as text", f"{im['id']}: {k}")
                v = "" if v is None else str(v)
            if k in ("file_name", "id") or k.lower() in COLUMN_MAP:
                report.add("attributes-dropped", "image attributes named like a column were dropped",
                           f"{im['id']}: {k}")
                continue
            row[k] = v
            attr_keys.setdefault(k, None)
        meta_rows.append(row)
        if ctx.images != "none":
            ctx.put_image(im["file_name"], out / rel)
    header = ["file_name", "id", *[c for c in WRITE_COLUMNS if any(c in r for r in meta_rows)], *attr_keys]
    with atomic_write(out / METADATA_FILE) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in meta_rows:
            w.writerow([_cell(row.get(h)) for h in header])


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


# ------------------------------------------------------------------------------------------- detect


def detect(path: Path) -> int:
    """Low confidence: a folder whose (split) sub-folders hold image files and no annotation files."""
    if not path.is_dir():
        return 0
    try:
        bases = _dirs(path) if _split_layout(path) else [path]
        classes = [d for b in bases for d in _dirs(b)]
        if not classes:
            return 0
        with_images = 0
        for d in classes[:50]:
            files = [p for p in d.iterdir() if p.is_file()]
            if any(p.suffix.lower() in (".txt", ".xml", ".json") for p in files):
                return 0
            if any(_is_image(p) for p in files):
                with_images += 1
            elif files:  # a folder of other files is not a class folder (empty ones are: unused classes)
                return 0
    except OSError:
        return 0
    return 30 if with_images else 0


def check(path: Path) -> list[Finding]:
    """Structural check: files in class folders that are not images, empty class folders, and whatever
    stops the reader (unreadable image, bad metadata CSV), each with its file."""
    if not path.is_dir():
        return [Finding("not-a-folder", "an image-folder dataset is a folder of class folders", file=str(path))]
    out: list[Finding] = []
    bases = _dirs(path) if _split_layout(path) else [path]
    for b in bases:
        for d in _dirs(b):
            files = [p for p in d.rglob("*") if p.is_file() and not p.name.startswith(".")]
            if not files:
                out.append(Finding("empty-class", f"class folder {d.name!r} holds no images", "warning",
                                   file=str(d)))
            for p in files:
                if not _is_image(p):
                    out.append(Finding("not-an-image", "file in a class folder is not an image; it is ignored",
                                       "warning", file=str(p)))
    try:
        read(path, ReadContext(ConversionReport()))
    except InputError as exc:
        out.append(Finding("unreadable", exc.message, file=exc.file, place=exc.place))
    return out


register(Format("imagefolder", "classification: one folder per class ([split/]class/image) + metadata.csv",
                read, write, detect, check=check))
