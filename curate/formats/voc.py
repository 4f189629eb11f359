"""Pascal VOC / LabelImg XML: one ``<annotation>`` file per image, ``ImageSets/Main/<split>.txt``.

Layout written: ``Annotations/<name>.xml``, ``JPEGImages/<file_name>``, ``ImageSets/Main/<split>.txt``
(``default.txt`` for images without a split, so their order and lack of split survive) and
``labels.txt`` (category names in id order, so categories without objects survive). Every image
gets its XML, with no ``<object>`` when it has none. Reading also takes LabelImg folders (XML
files next to the images) and single XML files. XML is parsed with defusedxml: entity
declarations (entity-expansion attacks) are refused with an InputError.

Coordinates: VOC stores corners ``xmin, ymin, xmax, ymax``. They are read and written as they
are in the model's continuous pixel frame (as LabelImg, Datumaro, globox and panlabel do): values
that are whole numbers are written as integers, others keep their float digits, so nothing is
rounded. ``integers=True`` rounds to whole pixels (counted as ``coordinates-rounded``);
``one_based=True`` applies the VOC devkit's 1-based convention (``xmin = x + 1``) on writing and
its inverse on reading. ``pose``, ``truncated``, ``difficult``, ``occluded`` and any other object
children (``part``, ``actions``) land in the annotation's attributes, CVAT-style
``<attributes><attribute><name/><value/></attribute></attributes>`` too; ``<size><depth>`` becomes
the image attribute ``channels``. Crowd objects are marked ``<iscrowd>1</iscrowd>`` (which other
readers ignore: reported).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagine.kernel import ConversionReport, InputError, image_size, progress, safe_join

from ..model import Dataset, dumps_attrs, loads_attrs
from . import Format, ReadContext, WriteContext, register
from .bulk import BATCH, FileWriter, check_unique, make_dirs, num_strings
from .coco import suspicious_names
from .yolo import _report_common

OBJECT_TAGS = ("pose", "truncated", "difficult", "occluded")
_NUM = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


# ============================================================================================ read


def _value(text: str | None) -> Any:
    """Element text → int/float when it is a plain number, else the string."""
    t = (text or "").strip()
    if _NUM.match(t):
        return int(t) if re.match(r"^-?\d+$", t) else float(t)
    return t


def _to_py(e: Element) -> Any:
    """An element → its value (no children) or a dict of its children (repeated tags → lists)."""
    kids = list(e)
    if not kids:
        return _value(e.text)
    out: dict[str, Any] = {}
    for k in kids:
        v = _to_py(k)
        if k.tag in out:
            if not isinstance(out[k.tag], list) or k.tag not in _repeated(e):
                out[k.tag] = [out[k.tag]]
            out[k.tag].append(v)
        else:
            out[k.tag] = v
    return out


def _repeated(e: Element) -> set[str]:
    seen: set[str] = set()
    rep: set[str] = set()
    for k in e:
        (rep if k.tag in seen else seen).add(k.tag)
    return rep


def _parse(xml: Path) -> Element:
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    try:
        root = DET.parse(xml).getroot()
    except DefusedXmlException as exc:
        raise InputError(f"XML refused: {exc} (entity declarations are not allowed; possible entity-expansion "
                         "attack)", file=xml) from None
    except ParseError as exc:
        line, col = getattr(exc, "position", (0, 0))
        what = "truncated XML" if "no element found" in str(exc) else "malformed XML"
        raise InputError(f"{what}: {exc}", file=xml, place=f"line {line}, column {col + 1}") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", file=xml) from None
    if root.tag != "annotation":
        raise InputError(f"expected an <annotation> root element, found <{root.tag}>", file=xml, place=root.tag)
    return root


def _num(e: Element, tag: str, xml: Path, place: str) -> float:
    c = e.find(tag)
    if c is None or c.text is None:
        raise InputError(f"<{tag}> is missing", file=xml, place=f"{place}/{tag}")
    try:
        v = float(c.text)
    except ValueError:
        raise InputError(f"<{tag}> must be a number, found {c.text!r}", file=xml, place=f"{place}/{tag}") from None
    if not math.isfinite(v):
        raise InputError(f"<{tag}> must be finite, found {c.text!r}", file=xml, place=f"{place}/{tag}")
    return v


def _layout(path: Path) -> tuple[list[Path], Path, Path | None, Path]:
    """(XML files, image root, ImageSets/Main folder or None, folder XML names are relative to)."""
    if path.is_file():
        ann_dir = path.parent
        base = ann_dir.parent if ann_dir.name == "Annotations" else ann_dir
        img_root = base / "JPEGImages" if (base / "JPEGImages").is_dir() else ann_dir
        return [path], img_root, None, ann_dir
    if (path / "Annotations").is_dir():
        xmls = sorted((path / "Annotations").rglob("*.xml"), key=lambda p: p.as_posix())
        sets = path / "ImageSets" / "Main"
        img_root = path / "JPEGImages" if (path / "JPEGImages").is_dir() else path
        return xmls, img_root, sets if sets.is_dir() else None, path / "Annotations"
    return sorted(path.glob("*.xml")), path, None, path


def _split_order(xmls: list[Path], ann_dir: Path, sets: Path | None) -> list[tuple[Path, str | None]]:
    """XML files in ImageSets order with their split; files not listed follow, sorted, unsplit."""
    by_stem = {x.relative_to(ann_dir).with_suffix("").as_posix(): x for x in xmls}
    out: list[tuple[Path, str | None]] = []
    done: set[str] = set()
    if sets is not None:
        files = {p.stem: p for p in sets.glob("*.txt") if "_" not in p.stem}
        names: list[str] = [n for n in ("train", "val", "test", "default") if n in files]
        names += sorted(n for n in files if n not in names and n != "trainval")
        if "trainval" in files and not {"train", "val"} & set(files):
            names.append("trainval")
        for name in names:
            for line in files[name].read_text("utf-8").splitlines():
                stem = line.split()[0] if line.split() else ""
                if stem and stem in by_stem and stem not in done:
                    done.add(stem)
                    out.append((by_stem[stem], None if name == "default" else name))
    out += [(x, None) for s, x in by_stem.items() if s not in done]
    return out


def read(path: Path, ctx: ReadContext) -> Dataset:
    report = ctx.report
    xmls, img_root, sets, ann_dir = _layout(path)
    if not xmls:
        raise InputError("no VOC XML files here", file=path)
    one_based = bool(ctx.options.get("one_based", False))
    shift = 1.0 if one_based else 0.0
    img: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "split", "attributes")}
    ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y",
                                                 "bbox_w", "bbox_h", "iscrowd", "attributes")}
    cat_ids: dict[str, int] = {}
    labels = path / "labels.txt" if path.is_dir() else None
    if labels is not None and labels.is_file():
        for name in labels.read_text("utf-8").splitlines():
            if name.strip():
                cat_ids.setdefault(name.strip(), len(cat_ids) + 1)
    order = _split_order(xmls, ann_dir, sets)
    for n, (xml, split) in enumerate(progress(order, desc="reading VOC", unit="xml"), 1):
        root = _parse(xml)
        fn_el = root.find("filename")
        if fn_el is None or not (fn_el.text or "").strip():
            raise InputError("<filename> is missing", file=xml, place="annotation/filename")
        fname = (fn_el.text or "").strip()
        rel_dir = xml.parent.relative_to(ann_dir).as_posix()
        file_name = fname if "/" in fname or rel_dir == "." else f"{rel_dir}/{fname}"
        ip = safe_join(img_root, file_name, source=xml, place="annotation/filename")
        attrs: dict[str, Any] = {}
        w = h = None
        size = root.find("size")
        if size is not None:
            try:
                w = int(float(size.findtext("width") or 0)) or None
                h = int(float(size.findtext("height") or 0)) or None
            except ValueError:
                raise InputError("<size> width/height must be numbers", file=xml, place="annotation/size") from None
            d = size.findtext("depth")
            if d is not None:
                attrs["channels"] = _value(d)
        if w is None or h is None:
            if ip.is_file():
                w, h = image_size(ip)
                report.add("size-from-image", "width/height missing in the XML; read from the image header", fname)
            else:
                w = h = None
                report.add("size-unknown", "width/height missing and the image is absent; left empty", fname)
        for child in root:
            if child.tag not in ("filename", "size", "object"):
                attrs[child.tag] = _to_py(child)
        img["id"].append(n)
        img["file_name"].append(file_name)
        img["width"].append(w)
        img["height"].append(h)
        img["split"].append(split)
        img["attributes"].append(dumps_attrs(attrs))
        for k, obj in enumerate(root.findall("object")):
            place = f"annotation/object[{k + 1}]"
            name = (obj.findtext("name") or "").strip()
            if not name:
                raise InputError("object without <name>", file=xml, place=f"{place}/name")
            bb = obj.find("bndbox")
            if bb is None:
                raise InputError("object without <bndbox>", file=xml, place=f"{place}/bndbox")
            x0, y0 = _num(bb, "xmin", xml, f"{place}/bndbox") - shift, _num(bb, "ymin", xml, f"{place}/bndbox") - shift
            x1, y1 = _num(bb, "xmax", xml, f"{place}/bndbox"), _num(bb, "ymax", xml, f"{place}/bndbox")
            oattrs: dict[str, Any] = {}
            crowd = False
            for child in obj:
                if child.tag in ("name", "bndbox"):
                    continue
                if child.tag == "iscrowd":
                    crowd = _value(child.text) in (1, "true", "True")
                elif child.tag == "attributes" and all(a.tag == "attribute" for a in child):
                    for a in child:
                        oattrs[(a.findtext("name") or "").strip()] = _value(a.findtext("value"))
                else:
                    oattrs[child.tag] = _to_py(child)
            ann["id"].append(len(ann["id"]) + 1)
            ann["image_id"].append(n)
            ann["category_id"].append(cat_ids.setdefault(name, len(cat_ids) + 1))
            ann["kind"].append("box")
            ann["bbox_x"].append(x0)
            ann["bbox_y"].append(y0)
            ann["bbox_w"].append(x1 - x0)
            ann["bbox_h"].append(y1 - y0)
            ann["iscrowd"].append(crowd)
            ann["attributes"].append(dumps_attrs(oattrs))
    cats = {"id": list(cat_ids.values()), "name": list(cat_ids)}
    return Dataset.from_columns(img, ann, cats, {"root": str(img_root.resolve())})


# ============================================================================================ write


def _xml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return escape(str(v))


def _py_to_xml(tag: str, v: Any, indent: str) -> str:
    """A value → element(s): dicts become children, lists repeated elements."""
    t = escape(tag)
    if isinstance(v, list):
        return "".join(_py_to_xml(tag, x, indent) for x in v)
    if isinstance(v, dict):
        inner = "".join(_py_to_xml(k, x, indent + "\t") for k, x in v.items())
        return f"{indent}<{t}>\n{inner}{indent}</{t}>\n"
    return f"{indent}<{t}>{_xml_scalar(v)}</{t}>\n"




def write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    from .coco import gc_paused

    with gc_paused():
        _write(ds, out, ctx)


def _write(ds: Dataset, out: Path, ctx: WriteContext) -> None:
    report = ctx.report
    a, im = ds.annotations, ds.images
    _report_common(ds, report, "voc")
    integers = bool(ctx.options.get("integers", False))
    shift = 1.0 if ctx.options.get("one_based", False) else 0.0
    order, starts, ends = ds.annotations_by_image()
    if len(order) != a.num_rows:
        report.add("orphan-annotation", "annotations of an image id not in the images table; not written",
                   count=a.num_rows - len(order))
    x = a.column("bbox_x").to_numpy()[order]
    y = a.column("bbox_y").to_numpy()[order]
    x1 = x + a.column("bbox_w").to_numpy()[order]
    y1 = y + a.column("bbox_h").to_numpy()[order]
    x, y = x + shift, y + shift
    if integers:
        r = [np.round(v) for v in (x, y, x1, y1)]
        changed = int(sum((rv != v).sum() for rv, v in zip(r, (x, y, x1, y1), strict=True)))
        report.add("coordinates-rounded", "coordinates rounded to whole pixels (integers=True)", count=changed)
        x, y, x1, y1 = r
    names = {i: escape(n) for i, n in ds.category_names().items()}
    cat_o = a.column("category_id").take(pa.array(order)) if a.num_rows else pa.array([], pa.int64())
    uniq = pc.unique(cat_o).to_pylist()
    lookup = pa.array([names[c] if c in names else escape(str(c)) if c is not None else "" for c in uniq],
                      pa.string())
    cat_names = pc.take(lookup, pc.index_in(cat_o, value_set=pa.array(uniq, pa.int64())))
    kinds = {kc["values"]: kc["counts"] for kc in pc.value_counts(a.column("kind")).to_pylist()} if a.num_rows else {}
    for k, nk in kinds.items():
        if k not in ("box", "label"):
            report.add("rotation-dropped" if k == "rbox" else f"{k}-to-box",
                       f"VOC holds boxes only; {k} written as its bounding box", count=nk)
    drop = np.isnan(x) | np.isnan(x1)
    if "label" in kinds:
        drop |= np.asarray(pc.equal(a.column("kind"), "label").to_numpy(zero_copy_only=False), dtype=bool)[order]
    ids_o = a.column("id").to_numpy()[order] if a.num_rows else np.zeros(0)
    report.add_many("label-dropped", "whole-image labels and shapes without coordinates have no VOC form",
                    (int(ids_o[i]) for i in np.flatnonzero(drop)), int(drop.sum()))
    crowd_o = np.asarray(a.column("iscrowd").fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)[order] \
        if a.num_rows else np.zeros(0, bool)
    report.add("crowd-flag-nonstandard", "crowd objects marked <iscrowd>1</iscrowd>, which other VOC readers ignore",
               count=int(crowd_o.sum()))
    extra = _object_extras(a, order, crowd_o)
    file_names = im.column("file_name").to_pylist()
    for i in suspicious_names(file_names):
        safe_join(out, file_names[i], place=f"images row {i}")
    stems = [fn[:dot] if (dot := fn.rfind(".")) > fn.rfind("/") else fn for fn in file_names]
    xml_paths = [f"Annotations/{stem}.xml" for stem in stems]
    check_unique(xml_paths, file_names, "XML file")
    heads = _heads(im, report)
    n_img = im.num_rows
    keep = ~drop
    img_row = np.repeat(np.arange(n_img), ends - starts)
    kept = np.bincount(img_row[keep], minlength=n_img) if len(img_row) else np.zeros(n_img, np.int64)
    make_dirs(out, [*xml_paths, "ImageSets/Main/x"])
    # Each object's XML is built in Arrow; the first object of an image carries the image's head and
    # the last one the closing tag, so a file is one slice of the batch's buffer (see .bulk).
    with FileWriter(out, ctx.options.get("threads")) as files:
        for i0 in progress(range(0, n_img, BATCH), total=-(-n_img // BATCH), desc="writing XML", unit="batch"):
            i1 = min(n_img, i0 + BATCH)
            sl = slice(int(starts[i0]), int(ends[i1 - 1])) if i1 > i0 else slice(0, 0)
            k = kept[i0:i1]
            last = np.cumsum(k) - 1
            first = last - k + 1
            m = int(last[-1]) + 1 if len(last) else 0
            head_at = np.full(m, -1, dtype=np.int64)
            head_at[first[k > 0]] = np.arange(i0, i1)[k > 0]
            prefix = heads.take(pa.array(head_at, mask=head_at < 0)).fill_null("")
            suffix = np.zeros(m, dtype=bool)
            suffix[last[k > 0]] = True
            ks = keep[sl]
            pieces = [prefix, "\t<object>\n\t\t<name>", cat_names[sl.start:sl.stop].filter(pa.array(ks)), "</name>\n"]
            if extra is not None:
                pieces.append(extra[sl.start:sl.stop].filter(pa.array(ks)))
            pieces += ["\t\t<bndbox>\n\t\t\t<xmin>", num_strings(x[sl][ks]), "</xmin>\n\t\t\t<ymin>",
                       num_strings(y[sl][ks]), "</ymin>\n\t\t\t<xmax>", num_strings(x1[sl][ks]),
                       "</xmax>\n\t\t\t<ymax>", num_strings(y1[sl][ks]), "</ymax>\n\t\t</bndbox>\n\t</object>\n",
                       pc.if_else(pa.array(suffix), "</annotation>\n", ""), ""]
            rows = pc.binary_join_element_wise(*pieces)
            empty = {j - i0: (heads[j].as_py() + "</annotation>\n").encode() for j in np.flatnonzero(k == 0) + i0}
            files.write_groups(xml_paths[i0:i1], rows, k, empty)
    by_split: dict[str, list[str]] = {}
    for stem, sp in zip(stems, im.column("split").to_pylist(), strict=True):
        by_split.setdefault(sp or "default", []).append(stem)
    for sp, lst in by_split.items():
        (out / "ImageSets" / "Main" / f"{sp}.txt").write_text("\n".join(lst) + "\n", "utf-8")
    cats = ds.categories
    cids = cats.column("id").to_pylist()
    if cids != list(range(1, len(cids) + 1)):
        report.add("category-renumbered", "VOC has no category ids; read back as 1..n in labels.txt order",
                   count=len(cids))
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in cats.column("name").to_pylist()), "utf-8")
    if ctx.images != "none":
        for fn in progress(file_names, desc="copying images", unit="img"):
            ctx.put_image(fn, out / "JPEGImages" / fn)


def _object_extras(a: pa.Table, order: np.ndarray, crowd_o: np.ndarray) -> pa.Array | None:
    """XML of each object's attributes and crowd flag (in ``order``), or None when no object has any."""
    has_attrs = np.asarray(pc.is_valid(a.column("attributes")).to_numpy(zero_copy_only=False), dtype=bool)[order] \
        if a.num_rows else np.zeros(0, bool)
    rows = np.flatnonzero(has_attrs | crowd_o)
    if not len(rows):
        return None
    attrs_o = a.column("attributes").take(pa.array(order[rows])).to_pylist()
    extra: list[str] = [""] * len(order)
    for j, raw in zip(rows.tolist(), attrs_o, strict=True):
        d = loads_attrs(raw)
        parts = [_py_to_xml(t, d.pop(t), "\t\t") for t in OBJECT_TAGS if t in d]
        nested = {k: v for k, v in d.items() if isinstance(v, dict | list)}
        flat = {k: v for k, v in d.items() if k not in nested}
        parts += [_py_to_xml(k, v, "\t\t") for k, v in nested.items()]
        if flat:
            parts.append("\t\t<attributes>\n" + "".join(
                f"\t\t\t<attribute>\n\t\t\t\t<name>{escape(k)}</name>\n\t\t\t\t<value>{_xml_scalar(v)}</value>\n"
                "\t\t\t</attribute>\n" for k, v in flat.items()) + "\t\t</attributes>\n")
        if crowd_o[j]:
            parts.append("\t\t<iscrowd>1</iscrowd>\n")
        extra[j] = "".join(parts)
    return pa.array(extra, pa.string())


def _heads(im: pa.Table, report: ConversionReport) -> pa.Array:
    """Each image's XML up to its first object: file name, size, image attributes (in Arrow for the
    plain images, in Python for the few with attributes or no size)."""
    w, h = im.column("width"), im.column("height")
    report.add("size-unknown", "image size unknown; <size> written without width/height",
               count=int(pc.sum(pc.or_(pc.is_null(w), pc.is_null(h))).as_py() or 0))
    fn = im.column("file_name")
    for ch, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        fn = pc.replace_substring(fn, ch, ent)
    plain = pc.binary_join_element_wise("<annotation>\n\t<filename>", fn, "</filename>\n\t<size>\n\t\t<width>",
                                        pc.cast(w, pa.string()), "</width>\n\t\t<height>", pc.cast(h, pa.string()),
                                        "</height>\n\t</size>\n", "")
    if not im.num_rows:
        return pa.array([], pa.string())
    special = np.flatnonzero(np.asarray(pc.is_null(plain).to_numpy(zero_copy_only=False), dtype=bool) | np.asarray(
        pc.is_valid(im.column("attributes")).to_numpy(zero_copy_only=False), dtype=bool))
    if not len(special):
        return plain.combine_chunks() if isinstance(plain, pa.ChunkedArray) else plain
    text: list[str | None] = [None] * im.num_rows
    sub = im.take(pa.array(special))
    for i, fname, wi, hi, raw in zip(special.tolist(), *(sub.column(c).to_pylist() for c in (
            "file_name", "width", "height", "attributes")), strict=True):
        d = loads_attrs(raw) if raw else {}
        depth = d.pop("channels", None)
        folder = d.pop("folder", None)
        size = "" if wi is None else f"\t\t<width>{wi}</width>\n"
        size += "" if hi is None else f"\t\t<height>{hi}</height>\n"
        size += "" if depth is None else f"\t\t<depth>{_xml_scalar(depth)}</depth>\n"
        text[i] = "<annotation>\n" + ("" if folder is None else _py_to_xml("folder", folder, "\t")) + \
            f"\t<filename>{escape(fname)}</filename>\n\t<size>\n{size}\t</size>\n" + \
            "".join(_py_to_xml(k, v, "\t") for k, v in d.items())
    out = pc.coalesce(pa.array(text, pa.string()), plain)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


# ============================================================================================ detect


def detect(path: Path) -> int:
    if path.is_dir():
        if (path / "Annotations").is_dir():
            cand = next((path / "Annotations").rglob("*.xml"), None)
        else:
            cand = next(path.glob("*.xml"), None)
        if cand is None:
            return 0
        path = cand
    if path.suffix.lower() != ".xml" or not path.is_file():
        return 0
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return 0
    return 80 if b"<annotation" in head and b"<annotations" not in head else 0


register(Format("voc", "Pascal VOC / LabelImg XML", read, write, detect))
