"""``validate``: structural checks of a source in its own format, then semantic checks on the dataset.

Structural checks come from the format module (JSON Schema for the JSON formats, parse errors
for the others) and point into the source file (JSON pointer, line, XML element). Semantic checks
run on the dataset model whatever the format: duplicate ids, unknown images or categories,
degenerate or out-of-image boxes, missing, unreadable or mis-sized image files, empty label files.
Each finding names the file and the place in it.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imagine.kernel import Finding, InputError, image_size, progress, safe_join

from .formats import detect_format, get_format, read_dataset
from .model import Dataset

# A box may stick out of the image by this many pixels before it is flagged (rounding in exports).
EDGE_TOLERANCE = 0.5

Locator = Callable[[int, int, int], tuple[str | None, str]]


def _locator(fmt: str, src: Path, ds: Dataset) -> Locator:
    """Map (image row, annotation index within the image, annotation row) to (file, place)."""
    names = ds.images.column("file_name").to_pylist()
    ann_ids = ds.annotations.column("id").to_pylist()
    src_ids = ds.annotations.column("source_id").to_pylist()
    root = src if src.is_dir() else src.parent

    if fmt == "yolo":
        def yolo(img: int, k: int, row: int) -> tuple[str | None, str]:
            stem = os.path.splitext(names[img])[0]
            label = stem.replace("images/", "labels/", 1) if "images/" in stem else stem
            return str(root / (label + ".txt")), f"line {k + 1}"
        return yolo
    if fmt == "voc":
        def voc(img: int, k: int, row: int) -> tuple[str | None, str]:
            stem = os.path.splitext(os.path.basename(names[img]))[0]
            return str(root / "Annotations" / (stem + ".xml")), f"<object> #{k + 1}"
        return voc
    if fmt == "coco":
        def coco(img: int, k: int, row: int) -> tuple[str | None, str]:
            return str(src), f"/annotations/{row}"
        return coco

    def generic(img: int, k: int, row: int) -> tuple[str | None, str]:
        sid = src_ids[row]
        return str(src), f"image {names[img]!r}, annotation {sid if sid is not None else ann_ids[row]}"
    return generic


def validate_dataset(ds: Dataset, *, src: Path, fmt: str, check_images: bool = True) -> list[Finding]:
    """Semantic checks on a dataset read from ``src`` in format ``fmt``."""
    out: list[Finding] = []
    srcs = str(src)
    locate = _locator(fmt, src, ds)

    for table in ("images", "annotations", "categories"):
        ids = getattr(ds, table).column("id").to_pylist()
        for dup, n in Counter(ids).items():
            if n > 1:
                out.append(Finding("duplicate-id", f"{table[:-1]} id {dup} is used {n} times", file=srcs,
                                   place=f"{table} id {dup}"))
    for name, n in Counter(ds.images.column("file_name").to_pylist()).items():
        if n > 1:
            out.append(Finding("duplicate-file-name", f"image file {name!r} is listed {n} times",
                               severity="warning", file=srcs, place=f"image {name!r}"))

    img_ids = ds.images.column("id").to_numpy()
    row_of = {int(i): r for r, i in enumerate(img_ids)}
    widths = ds.images.column("width").to_pylist()
    heights = ds.images.column("height").to_pylist()
    cats = set(ds.categories.column("id").to_pylist())
    ann = ds.annotations
    a_img = ann.column("image_id").to_pylist()
    a_cat = ann.column("category_id").to_pylist()
    kinds = ann.column("kind").to_pylist()
    x = ann.column("bbox_x").to_numpy(zero_copy_only=False).astype(float)
    y = ann.column("bbox_y").to_numpy(zero_copy_only=False).astype(float)
    w = ann.column("bbox_w").to_numpy(zero_copy_only=False).astype(float)
    h = ann.column("bbox_h").to_numpy(zero_copy_only=False).astype(float)
    seen_in_image: Counter[int] = Counter()
    for row in range(ann.num_rows):
        img = row_of.get(a_img[row])
        k = seen_in_image[a_img[row]]
        seen_in_image[a_img[row]] += 1
        if img is None:
            out.append(Finding("unknown-image", f"annotation refers to image id {a_img[row]}, which does not exist",
                               file=srcs, place=f"annotation id {ann.column('id')[row].as_py()}"))
            continue
        file, place = locate(img, k, row)
        if a_cat[row] is None:
            if kinds[row] != "label":
                out.append(Finding("no-category", "annotation has no category", severity="warning", file=file,
                                   place=place))
        elif a_cat[row] not in cats:
            out.append(Finding("unknown-category", f"category id {a_cat[row]} is not among the categories "
                               f"({', '.join(map(str, sorted(cats)))})", file=file, place=place))
        if kinds[row] in ("label", "point"):
            continue
        if not (np.isfinite(w[row]) and np.isfinite(h[row]) and np.isfinite(x[row]) and np.isfinite(y[row])):
            out.append(Finding("box-not-finite", "box has missing or non-finite coordinates", file=file, place=place))
            continue
        if w[row] <= 0 or h[row] <= 0:
            out.append(Finding("box-degenerate", f"box has zero or negative size ({w[row]:g} x {h[row]:g} px)",
                               file=file, place=place))
        W, H = widths[img], heights[img]
        if W and H:
            x0, y0, x1, y1 = x[row], y[row], x[row] + w[row], y[row] + h[row]
            if x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
                out.append(Finding("box-outside-image", f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] lies entirely "
                                   f"outside the {W}x{H} image", file=file, place=place))
            elif (x0 < -EDGE_TOLERANCE or y0 < -EDGE_TOLERANCE or x1 > W + EDGE_TOLERANCE
                  or y1 > H + EDGE_TOLERANCE):
                out.append(Finding("box-exceeds-image", f"box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] extends beyond "
                                   f"the {W}x{H} image", severity="warning", file=file, place=place))

    if check_images:
        out += _check_images(ds, srcs)
    if fmt == "yolo":
        out += _empty_label_files(src)
    return out


def _check_images(ds: Dataset, srcs: str) -> list[Finding]:
    out: list[Finding] = []
    root = ds.info.get("root")
    if not root:
        return [Finding("no-image-root", "the source does not say where its images are; images not checked",
                        severity="warning", file=srcs)]
    names = ds.images.column("file_name").to_pylist()
    widths = ds.images.column("width").to_pylist()
    heights = ds.images.column("height").to_pylist()
    for name, W, H in progress(zip(names, widths, heights, strict=True), total=len(names), desc="checking images"):
        try:
            path = safe_join(root, name)
        except InputError as exc:
            out.append(Finding("unsafe-file-name", exc.message, file=srcs, place=f"image {name!r}"))
            continue
        if not path.is_file():
            out.append(Finding("image-missing", "image file not found", file=str(path)))
            continue
        try:
            iw, ih = image_size(path)
        except InputError as exc:
            out.append(Finding("image-unreadable", exc.message, file=str(path)))
            continue
        if W is None or H is None:
            out.append(Finding("size-missing", f"width/height not given in the annotations (image is {iw}x{ih})",
                               severity="warning", file=srcs, place=f"image {name!r}"))
        elif (W, H) != (iw, ih):
            out.append(Finding("size-mismatch", f"annotations say {W}x{H} but the image is {iw}x{ih}",
                               file=srcs, place=f"image {name!r}"))
    return out


def _empty_label_files(src: Path) -> list[Finding]:
    root = src if src.is_dir() else src.parent
    return [Finding("empty-label-file", "label file is empty (the image is treated as background)",
                    severity="warning", file=str(p))
            for p in sorted(root.rglob("*.txt")) if "labels" in p.parts and p.stat().st_size == 0]


def validate_source(src: str | os.PathLike[str], fmt: str | None = None, *, check_images: bool = True
                    ) -> list[Finding]:
    """All structural and semantic findings for ``src``; a source that cannot be read is one finding."""
    path = Path(src)
    name = fmt or detect_format(path)
    f = get_format(name)
    findings: list[Finding] = []
    if f.check is not None:
        findings += f.check(path)
        if any(x.severity == "error" for x in findings):
            return findings
    try:
        ds = read_dataset(path, name)
    except InputError as exc:
        return findings + [Finding("unreadable", exc.message, file=exc.file or str(path), place=exc.place)]
    return findings + validate_dataset(ds, src=path, fmt=name, check_images=check_images)
