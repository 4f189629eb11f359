"""YOLO: Ultralytics detect, segment, OBB and pose, and the darknet ``obj.data``/``obj.names`` variant.

Reading: ``data.yaml`` (names as a list or a dict; ``train``/``val``/``test`` as folders, list
files or lists of them; ``path``; Roboflow's ``../train/images`` entries, which really are
relative to the YAML's own folder) or darknet's ``obj.data``; a split folder that exists but is
not in the YAML (Roboflow's ``test``) is read too and reported. Label files sit where
Ultralytics looks for them (the last ``images`` path segment replaced by ``labels``; darknet: next
to the image). The class index is the category id. YOLO has no image size, so it is read from
each image header: a missing image is an error.

Writing: one label file per image (empty for images without objects), the class index is the
category id and ``names`` is a dict when ids are not ``0..n-1`` so that ids survive; normalised
coordinates are written with Python's shortest round-trip repr (or ``precision=N`` decimals).
``task`` (detect, segment, obb, pose) is chosen from the geometry kinds unless given. Everything
YOLO cannot hold (crowd flags, scores, attributes, tracks, ids, shapes of another task) is counted
in the report. Label lines are built in Arrow a batch of images at a time and written by threads
(see :mod:`.bulk`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from imagine.kernel import ConversionReport, InputError, UsageError, image_size, progress

from ..geometry import corners_to_rbox, mask_to_polygons, rbox_corners, rle_to_mask
from ..model import Dataset
from . import Format, ReadContext, WriteContext, register
from .bulk import BATCH, FileWriter, check_unique, make_dirs, num_strings

IMAGE_SUFFIXES = frozenset({".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm",
                            ".heic"})
SPLITS = ("train", "val", "test")
CONFIG_NAMES = ("data.yaml", "dataset.yaml", "data.yml")


# ============================================================================================ read


def _load_yaml(p: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(p.read_text("utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise InputError(f"malformed YAML: {exc.problem}", file=p, place=place) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"unreadable YAML: {exc}", file=p) from None
    if not isinstance(doc, dict):
        raise InputError("a YOLO data.yaml must be a mapping", file=p)
    return doc


def _names(raw: Any, p: Path) -> dict[int, str]:
    if isinstance(raw, list):
        return {i: str(n) for i, n in enumerate(raw)}
    if isinstance(raw, dict):
        out: dict[int, str] = {}
        for k, v in raw.items():
            try:
                out[int(k)] = str(v)
            except (TypeError, ValueError):
                raise InputError(f"class index {k!r} is not an integer", file=p, place="names") from None
        return out
    raise InputError("names must be a list or a mapping of class index → name", file=p, place="names")


def _strip_up(entry: str) -> str:
    while entry.startswith("../"):
        entry = entry[3:]
    return entry


def _resolve(entry: str, bases: list[Path]) -> Path | None:
    cands = [b / entry for b in bases] + [b / _strip_up(entry) for b in bases if entry.startswith("../")]
    for c in cands:
        if c.exists():
            return c
    return None


def _list_images(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                  key=lambda p: p.as_posix())


def _images_of(entry: Any, bases: list[Path], cfg: Path, split: str, report: ConversionReport) -> list[Path]:
    entries = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for e in entries:
        if not isinstance(e, str):
            raise InputError(f"{split} must be a path or a list of paths", file=cfg, place=split)
        p = Path(e) if os.path.isabs(e) else _resolve(e, bases)
        if p is None or not p.exists():
            report.add("split-path-missing", "a split path of the config does not exist; skipped", f"{split}: {e}")
            continue
        if p.is_dir():
            out.extend(_list_images(p))
        else:
            for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                img = Path(line) if os.path.isabs(line) else _resolve(line, [p.parent, *bases])
                if img is None:
                    raise InputError(f"image {line!r} listed here does not exist; YOLO needs it for the image size",
                                     file=p, place=f"line {n}")
                out.append(img)
    return out


def _label_for(img: Path) -> Path:
    parts = img.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        return Path(*parts[:i], "labels", *parts[i + 1:]).with_suffix(".txt")
    return img.with_suffix(".txt")


def _find_config(path: Path) -> Path | None:
    if path.is_file():
        return path
    for n in (*CONFIG_NAMES, "obj.data"):
        if (path / n).is_file():
            return path / n
    ymls = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml"))
    return ymls[0] if len(ymls) == 1 else None


def _darknet_config(p: Path) -> tuple[dict[str, Any], dict[int, str], list[Path]]:
    cfg: dict[str, Any] = {}
    for n, line in enumerate(p.read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise InputError("expected 'key = value'", file=p, place=f"line {n}")
        k, v = (s.strip() for s in line.split("=", 1))
        cfg[k] = v
    bases = [p.parent.parent, p.parent, Path.cwd()]
    names_p = _resolve(cfg.get("names", "obj.names"), bases) or (p.parent / "obj.names")
    if not names_p.is_file():
        raise InputError("darknet names file not found", file=p, place="names")
    names = [s.strip() for s in names_p.read_text("utf-8").splitlines() if s.strip()]
    data = {"train": cfg.get("train"), "val": cfg.get("valid") or cfg.get("val"), "test": cfg.get("test")}
    return {k: v for k, v in data.items() if v}, dict(enumerate(names)), bases


def read(path: Path, ctx: ReadContext) -> Dataset:
    report = ctx.report
    cfg = _find_config(path)
    folder = path if path.is_dir() else path.parent
    if cfg is not None and cfg.suffix == ".data":
        data, names, bases = _darknet_config(cfg)
    elif cfg is not None:
        data = _load_yaml(cfg)
        names = _names(data.get("names", []), cfg)
        root_entry = data.get("path")
        bases = [cfg.parent]
        if isinstance(root_entry, str) and root_entry:
            rp = Path(root_entry) if os.path.isabs(root_entry) else cfg.parent / root_entry
            if rp.is_dir():
                bases.insert(0, rp)
    else:
        names_file = next((folder / n for n in ("classes.txt", "obj.names") if (folder / n).is_file()), None)
        names = dict(enumerate(s.strip() for s in names_file.read_text("utf-8").splitlines() if s.strip())) \
            if names_file else {}
        data = {s: f"images/{s}" for s in SPLITS if (folder / "images" / s).is_dir()} or \
            ({"train": "images"} if (folder / "images").is_dir() else {"train": "."})
        bases = [folder]
    cfg_file = cfg or folder
    task = ctx.options.get("task") or (data.get("task") if isinstance(data.get("task"), str) else None)
    kpt_shape = data.get("kpt_shape")
    if kpt_shape is not None:
        task = task or "pose"
    split_images: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for split in SPLITS:
        if data.get(split):
            for img in _images_of(data[split], bases, cfg_file, split, report):
                if img.resolve() not in seen:
                    seen.add(img.resolve())
                    split_images.append((split, img))
    # A split folder next to the config that the config does not name (Roboflow's test/).
    for split in SPLITS:
        if data.get(split):
            continue
        for cand in (bases[-1] / split / "images", bases[-1] / "images" / split):
            if cand.is_dir():
                imgs = [p for p in _list_images(cand) if p.resolve() not in seen]
                if imgs:
                    report.note("split-not-in-config", "a split folder not named in the config was read too",
                                f"{split}: {cand}")
                for img in imgs:
                    seen.add(img.resolve())
                    split_images.append((split, img))
                break
    if not split_images:
        raise InputError("no images found for any split", file=cfg_file)
    root = Path(os.path.commonpath([str(bases[-1].resolve()), *{str(p.parent.resolve()) for _, p in split_images}]))
    return _read_labels(split_images, root, names, task, kpt_shape, ctx, data)


_BAD = "expected a class index and normalised coordinates (4 for a box, 2k with k ≥ 3 for a polygon)"


def _read_labels(split_images: list[tuple[str, Path]], root: Path, names: dict[int, str], task: str | None,
                 kpt_shape: Any, ctx: ReadContext, data: dict[str, Any]) -> Dataset:
    report = ctx.report
    img: dict[str, list[Any]] = {"id": [], "file_name": [], "width": [], "height": [], "split": []}
    ann: dict[str, list[Any]] = {k: [] for k in ("image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w",
                                                 "bbox_h", "geometry")}
    k_pts, k_dim = (int(kpt_shape[0]), int(kpt_shape[1])) if kpt_shape else (0, 0)
    for n, (split, ip) in enumerate(progress(split_images, desc="reading YOLO labels", unit="img"), 1):
        rel = ip.resolve().relative_to(root).as_posix()
        w, h = image_size(ip)
        img["id"].append(n)
        img["file_name"].append(rel)
        img["width"].append(w)
        img["height"].append(h)
        img["split"].append(split)
        lp = _label_for(ip)
        if not lp.is_file() and lp != ip.with_suffix(".txt") and ip.with_suffix(".txt").is_file():
            lp = ip.with_suffix(".txt")
        if not lp.is_file():
            continue
        try:
            text = lp.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"unreadable label file: {exc}", file=lp) from None
        for ln, line in enumerate(text.splitlines(), 1):
            tok = line.split()
            if not tok:
                continue
            try:
                cls_f = float(tok[0])
                vals = [float(t) for t in tok[1:]]
            except ValueError:
                raise InputError(f"not a number in {line.strip()!r}; {_BAD}", file=lp, place=f"line {ln}") from None
            if not cls_f.is_integer() or cls_f < 0:
                raise InputError(f"class index {tok[0]!r} is not a non-negative integer", file=lp,
                                 place=f"line {ln}")
            cls = int(cls_f)
            kind, geom, box = _parse_line(vals, w, h, task, k_pts, k_dim)
            if kind is None:
                raise InputError(f"{len(vals)} coordinate(s) in {line.strip()!r}; {_BAD}", file=lp,
                                 place=f"line {ln}")
            if cls not in names:
                names[cls] = str(cls)
                report.add("class-without-name", "class index missing from names; named by its index", cls)
            ann["image_id"].append(n)
            ann["category_id"].append(cls)
            ann["kind"].append(kind)
            for key, v in zip(("bbox_x", "bbox_y", "bbox_w", "bbox_h"), box, strict=True):
                ann[key].append(v)
            ann["geometry"].append(geom)
    m = len(ann["image_id"])
    ann["id"] = list(range(1, m + 1))
    cat_ids = sorted(names)
    cats: dict[str, list[Any]] = {"id": cat_ids, "name": [names[i] for i in cat_ids]}
    if k_pts:
        kn = data.get("kpt_names")
        cats["keypoints"] = [[str(x) for x in kn[i]] if isinstance(kn, dict) and i in kn else
                             [str(j) for j in range(k_pts)] for i in cat_ids]
    info: dict[str, Any] = {"root": str(root)}
    if task:
        info["yolo_task"] = task
    if data.get("flip_idx") is not None:
        info["yolo_flip_idx"] = data["flip_idx"]
    return Dataset.from_columns(img, ann, cats, info)


def _parse_line(v: list[float], w: int, h: int, task: str | None, k_pts: int, k_dim: int
                ) -> tuple[str | None, Any, tuple[float, float, float, float]]:
    nan4 = (np.nan,) * 4
    if task == "pose" and k_pts and len(v) == 4 + k_pts * k_dim:
        cx, cy, bw, bh = v[0] * w, v[1] * h, v[2] * w, v[3] * h
        flat: list[float] = []
        for j in range(k_pts):
            p = v[4 + j * k_dim: 4 + (j + 1) * k_dim]
            flat += [p[0] * w, p[1] * h, p[2] if k_dim == 3 else 2.0]
        return "keypoints", [flat], (cx - bw / 2, cy - bh / 2, bw, bh)
    if len(v) == 4:
        cx, cy, bw, bh = v[0] * w, v[1] * h, v[2] * w, v[3] * h
        return "box", None, (cx - bw / 2, cy - bh / 2, bw, bh)
    if len(v) >= 6 and len(v) % 2 == 0:
        pts = [v[i] * (w if i % 2 == 0 else h) for i in range(len(v))]
        xs, ys = pts[0::2], pts[1::2]
        box = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
        if task == "obb" and len(v) == 8:
            return "rbox", [list(corners_to_rbox(pts))], box
        return "polygon", [pts], box
    return None, None, nan4


# ============================================================================================ write


def _auto_task(kinds: dict[str, int]) -> str:
    shaped = {k: n for k, n in kinds.items() if k not in ("box", "label")}
    if not shaped:
        return "detect"
    if set(shaped) <= {"polygon", "mask"} and sum(shaped.values()) >= kinds.get("box", 0):
        return "segment"
    if set(shaped) == {"rbox"} and shaped["rbox"] >= kinds.get("box", 0):
        return "obb"
    if set(shaped) == {"keypoints"} and shaped["keypoints"] >= kinds.get("box", 0):
        return "pose"
    return "detect"


def _paths(file_names: list[str], splits: list[str | None]) -> tuple[list[str], list[str]]:
    """Image and label paths (relative to the output) for each image, Ultralytics layout."""
    imgs: list[str] = []
    labels: list[str] = []
    for fn, sp in zip(file_names, splits, strict=True):
        probe = "/" + fn
        k = probe.rfind("/images/")
        if k >= 0:
            img = fn
            lab = (probe[:k] + "/labels/" + probe[k + 8:])[1:]
        else:
            img = f"images/{sp}/{fn}" if sp else f"images/{fn}"
            lab = f"labels/{sp}/{fn}" if sp else f"labels/{fn}"
        dot = lab.rfind(".")
        if dot > lab.rfind("/"):
            lab = lab[:dot]
        imgs.append(img)
        labels.append(lab + ".txt")
    return imgs, labels


def _report_common(ds: Dataset, report: ConversionReport, target: str) -> None:
    """Count what a YOLO or VOC target has no place for (vectorised over columns)."""
    a, im, c = ds.annotations, ds.images, ds.categories

    def nonnull(t: Any, col: str) -> int:
        return int(t.num_rows - t.column(col).null_count)

    if target == "yolo":
        if a.num_rows:
            report.add("crowd-flag-dropped", "YOLO has no crowd flag; crowd objects written as ordinary ones",
                       count=int(pc.sum(a.column("iscrowd").cast("int64")).as_py() or 0))
        report.add("attributes-dropped", "YOLO has no attributes; annotation attributes not written",
                   count=nonnull(a, "attributes"))
    report.add("score-dropped", f"{target} labels hold no score", count=nonnull(a, "score"))
    report.add("track-dropped", f"{target} has no track ids", count=nonnull(a, "track_id"))
    report.add("group-dropped", f"{target} has no groups", count=nonnull(a, "group_id"))
    report.add("annotator-dropped", f"{target} has no annotator", count=nonnull(a, "annotator"))
    report.add("source-id-dropped", f"{target} has no annotation ids; source ids not written",
               count=nonnull(a, "source_id"))
    report.add("image-source-id-dropped", f"{target} has no image ids; source ids not written",
               count=nonnull(im, "source_id"))
    ids = a.column("id").to_numpy() if a.num_rows else np.zeros(0)
    if len(ids) and not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        report.add("annotation-id-dropped", f"{target} has no annotation ids; read back as 1..n", count=len(ids))
    iid = im.column("id").to_numpy() if im.num_rows else np.zeros(0)
    if len(iid) and not np.array_equal(iid, np.arange(1, len(iid) + 1)):
        report.add("image-id-dropped", f"{target} has no image ids; read back as 1..n", count=len(iid))
    for col in ("checksum", "site", "datetime", "latitude", "longitude", "depth", "video", "frame", "instrument",
                "annotator"):
        report.add(f"image-{col}-dropped", f"{target} has no image '{col}'", count=nonnull(im, col))
    if target == "yolo":
        report.add("image-attributes-dropped", "YOLO has no image attributes", count=nonnull(im, "attributes"))
    for col in ("supercategory", "taxon", "source_id", "attributes"):
        report.add(f"category-{col}-dropped", f"{target} categories have no '{col}'", count=nonnull(c, col))


def _fmt(precision: int | None) -> Any:
    """Formatter of one number for the few lines built in Python (same digits as ``num_strings``)."""
    if precision is None:
        return repr
    p = int(precision)
    if not 0 <= p <= 17:
        raise UsageError(f"precision must be 0..17 decimals, not {precision}")
    return lambda v: repr(round(v, p))


def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    from .coco import gc_paused

    with gc_paused():
        _write(ds, out, ctx)


def _write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    report = ctx.report
    a, im = ds.annotations, ds.images
    kinds = {kc["values"]: kc["counts"] for kc in pc.value_counts(a.column("kind")).to_pylist()} if a.num_rows else {}
    task = ctx.options.get("task") or _auto_task(kinds)
    if task not in ("detect", "segment", "obb", "pose"):
        raise UsageError(f"task must be detect, segment, obb or pose, not {task!r}")
    num = _fmt(ctx.options.get("precision"))
    crowd = ctx.options.get("crowd", "keep")
    _report_common(ds, report, "yolo")

    widths = im.column("width").to_numpy(zero_copy_only=False)
    heights = im.column("height").to_numpy(zero_copy_only=False)
    file_names = im.column("file_name").to_pylist()
    missing: Any = np.flatnonzero(~(np.asarray(pc.is_valid(im.column("width"))) & np.asarray(pc.is_valid(im.column(
        "height"))))) if im.num_rows else []
    if len(missing):
        raise InputError(f"{len(missing)} image(s) without width/height; YOLO needs them to normalise "
                         f"coordinates (e.g. {file_names[missing[0]]!r}); read the images or give the sizes")
    cat_ids = ds.categories.column("id").to_numpy()
    names = ds.category_names()
    if (cat_ids < 0).any():
        raise UsageError("YOLO class indices must be non-negative; these category ids are negative: "
                         f"{sorted(int(i) for i in cat_ids[cat_ids < 0])}")

    order, starts, ends = ds.annotations_by_image()
    n_img = im.num_rows
    counts = ends - starts
    img_row = np.repeat(np.arange(n_img), counts)
    W = widths.astype(np.float64)[img_row]
    H = heights.astype(np.float64)[img_row]
    if len(order) != a.num_rows:
        report.add("orphan-annotation", "annotations of an image id not in the images table; not written",
                   count=a.num_rows - len(order))
    x, y, w, h = (a.column(c).to_numpy()[order] for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
    cat = a.column("category_id").to_numpy(zero_copy_only=False)[order]
    precision = ctx.options.get("precision")
    drop = np.isnan(x) | np.isnan(w)
    if set(kinds) - {"box"}:
        kind_o = np.asarray(a.column("kind").to_numpy(zero_copy_only=False), dtype=object)[order]
        drop |= kind_o == "label"
        not_box = kind_o != "box"
    else:
        not_box = np.zeros(len(order), dtype=bool)
    if crowd == "skip" and a.num_rows:
        cr = np.asarray(a.column("iscrowd").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)[order]
        report.add("crowd-skipped", "crowd objects not written (crowd='skip')", count=int(cr.sum()))
        drop |= cr
    special = np.flatnonzero(not_box & ~drop)
    k_max = 0
    lines: dict[int, str | None] = {}  # lines of the annotations that are not plain boxes
    if len(special) or task != "detect":
        k_max = _special_lines(ds, order, special if task == "detect" else np.flatnonzero(~drop), lines, task, num,
                               cat.tolist(), W, H, report)
    ids_o = a.column("id").to_numpy()[order] if a.num_rows else np.zeros(0)
    report.add_many("label-dropped", "whole-image labels and shapes without coordinates have no YOLO form",
                    (int(ids_o[i]) for i in np.flatnonzero(drop)), int(drop.sum()))
    override: pa.Array | None = None
    if lines:
        text: list[str | None] = [None] * len(order)
        for j, ln in lines.items():
            if ln is None:
                drop[j] = True
            else:
                text[j] = ln + "\n"
        override = pa.array(text, pa.string())
    splits = im.column("split").to_pylist()
    n_unsplit = sum(1 for s in splits if s is None)
    if n_unsplit:
        report.add("split-set-to-train", "images without a split listed under train", count=n_unsplit)
    img_paths, label_paths = _paths(file_names, splits)
    check_unique(label_paths, file_names, "label file")
    moved = [fn for fn, ip in zip(file_names, img_paths, strict=True) if fn != ip]
    report.add_many("file-name-prefixed", "images placed under images/<split>/ (Ultralytics layout); their "
                    "file names are read back with that prefix", moved[:5], len(moved))
    keep = ~drop
    kept = np.bincount(img_row[keep], minlength=n_img) if len(img_row) else np.zeros(n_img, np.int64)
    make_dirs(out, label_paths)
    # Lines "cls cx cy w h\n" built in Arrow one batch of images at a time while threads write the last one.
    with FileWriter(out, ctx.options.get("threads")) as files:
        for i0 in progress(range(0, n_img, BATCH), total=-(-n_img // BATCH), desc="writing labels", unit="batch"):
            i1 = min(n_img, i0 + BATCH)
            r0, r1 = (int(starts[i0]), int(ends[i1 - 1])) if i1 > i0 else (0, 0)
            sl = slice(r0, r1)
            cx, cy = (x[sl] + w[sl] / 2) / W[sl], (y[sl] + h[sl] / 2) / H[sl]
            rows = pc.binary_join_element_wise(
                pc.cast(pa.array(cat[sl]), pa.string()), " ", num_strings(cx, precision), " ",
                num_strings(cy, precision), " ", num_strings(w[sl] / W[sl], precision), " ",
                num_strings(h[sl] / H[sl], precision), "\n", "")
            if override is not None:
                rows = pc.coalesce(override[r0:r1], rows)
            if not keep[sl].all():
                rows = rows.filter(pa.array(keep[sl]))
            files.write_groups(label_paths[i0:i1], rows, kept[i0:i1])
    if ctx.images != "none":
        for fn, ip in progress(list(zip(file_names, img_paths, strict=True)), desc="copying images", unit="img"):
            ctx.put_image(fn, out / ip)
    _write_config(out, img_paths, splits, names, task, k_max, ds, ctx, report)

def _special_lines(ds: Dataset, order: np.ndarray, rows: np.ndarray, lines: dict[int, str | None], task: str,
                   num: Any, cls: list[int], W: np.ndarray, H: np.ndarray, report: ConversionReport) -> int:
    """Lines of the annotations that are not plain boxes in a detect task, or of every annotation
    in a segment/obb/pose task."""
    a = ds.annotations
    kind = a.column("kind").to_pylist()
    geom = a.column("geometry").to_pylist()
    rle = a.column("rle").to_pylist()
    ids = a.column("id").to_pylist()
    box = np.stack([a.column(c).to_numpy() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1)
    k_max = 0
    if task == "pose":
        k_max = max((len(geom[r][0]) // 3 for r in order[rows] if kind[r] == "keypoints" and geom[r]), default=0)
    lost = {"rbox": ("rotation-dropped", "rotated boxes written as their axis-aligned envelope"),
            "polygon": ("polygon-to-box", "polygons written as their bounding box"),
            "mask": ("mask-to-box", "masks written as their bounding box"),
            "keypoints": ("keypoints-to-box", "keypoints written as their bounding box"),
            "polyline": ("polyline-to-box", "polylines written as their bounding box"),
            "point": ("point-to-box", "points written as their bounding box"),
            "circle": ("circle-to-box", "circles written as their bounding box"),
            "ellipse": ("ellipse-to-box", "ellipses written as their bounding box")}

    def norm(pts: list[float], w: float, h: float) -> str:
        return " ".join(num(v / (w if i % 2 == 0 else h)) for i, v in enumerate(pts))

    for j in rows.tolist():
        r = int(order[j])
        k, g, w, h = kind[r], geom[r], float(W[j]), float(H[j])
        bx, by, bw, bh = box[r].tolist()
        rect = [bx, by, bx + bw, by, bx + bw, by + bh, bx, by + bh]
        if task == "segment":
            if k == "polygon" and g:
                rings = [ring for ring in g if len(ring) >= 6]
                if [] in g:
                    report.add("polygon-holes-dropped", "YOLO segments have no holes; holes dropped", ids[r])
                    rings = [ring for ring in g[:g.index([])] if len(ring) >= 6]
                if len(rings) > 1:
                    report.add("polygon-parts-joined", "multi-part polygon written as one joined outline", ids[r])
                pts = [v for ring in rings for v in ring]
            elif k == "mask" and rle[r] and g:
                polys = mask_to_polygons(rle_to_mask(rle[r], int(g[0][0]), int(g[0][1])))
                outer = [p for p in polys[:polys.index([])] if p] if [] in polys else polys
                pts = [v for ring in outer for v in ring]
                report.add("mask-to-polygon", "masks traced into polygons", ids[r])
            else:
                pts = rect
                if k in lost:
                    report.add(*lost[k], ids[r])
                report.add("box-to-polygon", "boxes written as four-corner polygons (read back as polygons)", ids[r])
            lines[j] = f"{cls[j]} {norm(pts, w, h)}" if len(pts) >= 6 else None
        elif task == "obb":
            if k == "rbox" and g:
                pts = rbox_corners(*g[0][:5])
            else:
                pts = rect
                if k != "box" and k in lost:
                    report.add(*lost[k], ids[r])
                report.add("box-to-rbox", "boxes written as unrotated oriented boxes (read back as rbox)", ids[r])
            lines[j] = f"{cls[j]} {norm(pts, w, h)}"
        elif task == "pose":
            head = f"{cls[j]} {num((bx + bw / 2) / w)} {num((by + bh / 2) / h)} {num(bw / w)} {num(bh / h)}"
            flat = list(g[0]) if k == "keypoints" and g else []
            if k != "keypoints":
                report.add("no-keypoints", "objects without keypoints written with absent keypoints", ids[r])
            flat += [0.0] * (3 * k_max - len(flat))
            kp = " ".join(f"{num(flat[i] / w)} {num(flat[i + 1] / h)} {int(flat[i + 2])}"
                          for i in range(0, 3 * k_max, 3))
            lines[j] = f"{head} {kp}" if kp else head
        else:  # detect: the envelope line is already there; just count what was lost
            if k in lost:
                report.add(*lost[k], ids[r])
    return k_max


def _write_config(out: Path, img_paths: list[str], splits: list[str | None], names: dict[int, str], task: str,
                  k: int, ds: Dataset, ctx: WriteContext, report: ConversionReport) -> None:
    by_split: dict[str, list[str]] = {}
    for p, s in zip(img_paths, splits, strict=True):
        by_split.setdefault(s or "train", []).append(p)
    cfg: dict[str, Any] = {"path": "."}
    lists = bool(ctx.options.get("lists", False))
    for s, paths in by_split.items():
        key = {"valid": "val", "validation": "val"}.get(s, s)
        if key not in SPLITS:
            report.add("split-renamed", f"YOLO has train/val/test only; split {s!r} written as a list file", s)
        dirs = sorted({p.rpartition("/")[0] for p in paths})
        others = [p for o, ps in by_split.items() if o != s for p in ps]
        if len(dirs) == 1 and not lists and not any(p.startswith(dirs[0] + "/") for p in others):
            cfg[key] = dirs[0]
        else:
            (out / f"{s}.txt").write_text("".join(f"./{p}\n" for p in paths), "utf-8")
            cfg[key] = f"{s}.txt"
    ids = sorted(names)
    cfg["nc"] = len(ids)
    cfg["names"] = [names[i] for i in ids] if ids == list(range(len(ids))) else {i: names[i] for i in ids}
    if task == "pose":
        cfg["kpt_shape"] = [k, 3]
        flip = ds.info.get("yolo_flip_idx")
        if isinstance(flip, list) and len(flip) == k:
            cfg["flip_idx"] = flip
    if task != "detect":
        cfg["task"] = task
    (out / "data.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True), "utf-8")


# ============================================================================================ detect


def detect(path: Path) -> int:
    if path.is_file():
        if path.name == "obj.data":
            return 90
        if path.suffix in (".yaml", ".yml"):
            try:
                text = path.read_text("utf-8")[:20000]
            except (OSError, UnicodeDecodeError):
                return 0
            return 90 if re.search(r"^names\s*:", text, re.M) and re.search(r"^(train|val)\s*:", text, re.M) else 0
        return 0
    if not path.is_dir():
        return 0
    cfg = _find_config(path)
    if cfg is not None and cfg != path:
        return detect(cfg)
    if (path / "labels").is_dir() and (path / "images").is_dir():
        return 50
    return 0


register(Format("yolo", "Ultralytics YOLO (detect, segment, obb, pose) and darknet", read, write, detect))
