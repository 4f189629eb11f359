"""Labelbox export v2 NDJSON (one data row per line): read only.

Written from Labelbox's published export documentation (no real export was at hand). A row holds
``data_row`` (``id`` → image ``source_id``, ``external_id`` or ``global_key`` or the last part of
``row_data`` → ``file_name``), ``media_attributes`` (width, height) and ``projects`` → ``labels``
→ ``annotations`` with ``objects`` (``bounding_box`` top/left/height/width, ``polygon``, ``line``,
``point``; ``mask`` only as a URL, which we cannot fetch offline, so it is reported) and
``classifications``. Global radio/checklist answers become whole-image ``label`` annotations whose
category is the answer (its supercategory the question); free-text answers become image
attributes; classifications nested in an object become that annotation's attributes. The label's
``created_by`` is the annotator; the object's ``feature_id`` its ``source_id``. Categories get
dense ids in order of first appearance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from imagine.kernel import Finding, InputError, safe_join
from imagine.schemas import validate

from ..geometry import envelope
from ..model import Dataset, dumps_attrs
from . import Format, ReadContext, register
from .via import as_float, parse_json, read_head, read_sizes, read_text, schema_error


def _source(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix.lower() in (".ndjson", ".jsonl", ".json") else None
    if path.is_dir():
        for p in sorted(path.glob("*.ndjson")) + sorted(path.glob("*.jsonl")):
            return p
    return None


def detect(path: Path) -> int:
    src = _source(path)
    if src is None:
        return 0
    head = read_head(src)
    if head is None:
        return 0
    return 90 if '"data_row"' in head and ('"projects"' in head or '"media_attributes"' in head) else 0


def _lines(src: Path) -> list[tuple[int, Any]]:
    """(line number, parsed row) of an NDJSON file (or of a JSON array of rows)."""
    text = read_text(src)
    if text.lstrip().startswith("["):
        doc = parse_json(text, src)
        return [(0, r) for r in doc]
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            out.append((n, parse_json(line, src, line_offset=n - 1)))
    return out


def _answers(classifications: Any) -> dict[str, Any]:
    """Nested classifications → ``{question: answer | [answers] | text}`` (nested ones flattened)."""
    out: dict[str, Any] = {}
    if not classifications:
        return out
    if not isinstance(classifications, list):
        raise TypeError("classifications must be a list")
    for c in classifications:
        q = c.get("name") or c.get("value")
        if "radio_answer" in c:
            ans = c["radio_answer"]
            out[q] = ans.get("name") or ans.get("value")
            out.update(_answers(ans.get("classifications")))
        elif "checklist_answers" in c:
            out[q] = [a.get("name") or a.get("value") for a in c["checklist_answers"]]
            for a in c["checklist_answers"]:
                out.update(_answers(a.get("classifications")))
        elif "text_answer" in c:
            out[q] = c["text_answer"].get("content")
    return out


def _xy(pts: Any) -> list[float]:
    if not isinstance(pts, list):
        raise TypeError("expected a list of {x, y} points")
    ring: list[float] = []
    for p in pts:
        ring += [as_float(p["x"]), as_float(p["y"])]
    return ring


def _file_name(dr: dict[str, Any]) -> str:
    for k in ("external_id", "global_key"):
        v = dr.get(k)
        if isinstance(v, str) and v and "://" not in v:
            return v
    row = dr.get("row_data")
    if isinstance(row, str) and row:
        p = urlparse(row)
        name = unquote(p.path.rsplit("/", 1)[-1]) if p.scheme else row
        if name:
            return name
    raise KeyError("data_row has no external_id, global_key or row_data to name the image")


def read(path: Path, ctx: ReadContext) -> Dataset:
    src = _source(path)
    if src is None:
        raise InputError("no Labelbox NDJSON export (.ndjson/.jsonl) found", file=path)
    root = Path(ctx.options["root"]) if ctx.options.get("root") else src.parent
    cats: dict[str, int] = {}
    cat_sup: dict[str, str | None] = {}
    img: dict[str, list[Any]] = {k: [] for k in ("id", "file_name", "width", "height", "source_id", "attributes")}
    ann: dict[str, list[Any]] = {k: [] for k in ("id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w",
                                                 "bbox_h", "geometry", "annotator", "source_id", "attributes")}
    places: list[str] = []

    def cat(name: str, sup: str | None = None) -> int:
        if name not in cats:
            cats[name] = len(cats) + 1
            cat_sup[name] = sup
        return cats[name]

    def add(iid: int, cid: int, kind: str, geom: list[list[float]] | None, box: tuple[float, ...],
            annotator: str | None, sid: str | None, attrs: dict[str, Any]) -> None:
        ann["id"].append(len(ann["id"]) + 1)
        ann["image_id"].append(iid)
        ann["category_id"].append(cid)
        ann["kind"].append(kind)
        ann["bbox_x"].append(box[0])
        ann["bbox_y"].append(box[1])
        ann["bbox_w"].append(box[2])
        ann["bbox_h"].append(box[3])
        ann["geometry"].append(geom)
        ann["annotator"].append(annotator)
        ann["source_id"].append(sid)
        ann["attributes"].append(dumps_attrs(attrs))

    for n, (line, row) in enumerate(_lines(src), start=1):
        prefix = f"line {line}: " if line else f"row {n - 1}: "
        ptr = ""
        try:
            dr = row["data_row"]
            fn = _file_name(dr)
            safe_join(root, fn, source=src, place=f"{prefix}/data_row")
            media = row.get("media_attributes") or {}
            w = media.get("width")
            h = media.get("height")
            w = int(w) if isinstance(w, int | float) and not isinstance(w, bool) else None
            h = int(h) if isinstance(h, int | float) and not isinstance(h, bool) else None
            iattrs: dict[str, Any] = {}
            if isinstance(dr.get("row_data"), str):
                iattrs["row_data"] = dr["row_data"]
            if dr.get("global_key") and dr.get("global_key") != fn:
                iattrs["global_key"] = dr["global_key"]
            for m in row.get("metadata_fields") or []:
                if isinstance(m, dict) and m.get("schema_name"):
                    iattrs[m["schema_name"]] = m.get("value")
            projects = row.get("projects") or {}
            if not isinstance(projects, dict):
                raise TypeError("projects must be an object keyed by project id")
            img["id"].append(n)
            img["file_name"].append(fn)
            img["width"].append(w)
            img["height"].append(h)
            img["source_id"].append(dr.get("id"))
            places.append(f"{prefix}/data_row")
            for pid, proj in projects.items():
                for li, label in enumerate(proj.get("labels") or []):
                    ptr = f"/projects/{pid}/labels/{li}"
                    who = (label.get("label_details") or {}).get("created_by")
                    anns = label.get("annotations") or {}
                    if anns.get("frames") or anns.get("segments"):
                        ctx.report.add("video-frames-dropped", "Labelbox video/frame annotations are not read", fn)
                    for k, o in enumerate(anns.get("objects") or []):
                        ptr = f"/projects/{pid}/labels/{li}/annotations/objects/{k}"
                        name = o.get("name") or o.get("value")
                        if not isinstance(name, str):
                            raise TypeError("an object needs a name")
                        attrs = _answers(o.get("classifications"))
                        geom: list[list[float]] | None
                        if "bounding_box" in o:
                            bb = o["bounding_box"]
                            kind, geom = "box", None
                            box: tuple[float, ...] = (as_float(bb["left"]), as_float(bb["top"]),
                                                      as_float(bb["width"]), as_float(bb["height"]))
                        elif "polygon" in o:
                            kind, geom = "polygon", [_xy(o["polygon"])]
                            box = envelope(kind, geom)
                        elif "line" in o:
                            kind, geom = "polyline", [_xy(o["line"])]
                            box = envelope(kind, geom)
                        elif "point" in o:
                            kind, geom = "point", [[as_float(o["point"]["x"]), as_float(o["point"]["y"])]]
                            box = envelope(kind, geom)
                        elif "mask" in o or "composite_mask" in o:
                            ctx.report.add("mask-dropped", "Labelbox masks are URLs to fetch from Labelbox; not "
                                           "downloaded (offline), dropped", f"{fn}#{o.get('feature_id')}")
                            continue
                        else:
                            ctx.report.add("geometry-unsupported", f"Labelbox annotation kind "
                                           f"{o.get('annotation_kind')!r} is not supported; skipped", fn)
                            continue
                        add(n, cat(name), kind, geom, box, who, o.get("feature_id"), attrs)
                    for k, c in enumerate(anns.get("classifications") or []):
                        ptr = f"/projects/{pid}/labels/{li}/annotations/classifications/{k}"
                        q = c.get("name") or c.get("value")
                        answers: list[dict[str, Any]] = []
                        if "radio_answer" in c:
                            answers = [c["radio_answer"]]
                        elif "checklist_answers" in c:
                            answers = list(c["checklist_answers"])
                        elif "text_answer" in c:
                            iattrs[q] = c["text_answer"].get("content")
                            continue
                        for a in answers:
                            aname = a.get("name") or a.get("value")
                            if not isinstance(aname, str):
                                raise TypeError("a classification answer needs a name")
                            label_box = (0.0, 0.0, float(w), float(h)) if w and h else envelope("label", None)
                            add(n, cat(aname, q), "label", None, label_box, who, c.get("feature_id"),
                                _answers(a.get("classifications")))
            img["attributes"].append(dumps_attrs(iattrs))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise schema_error(row, "labelbox", src, ptr or "/", exc, place_prefix=prefix) from None
    # Header reads only for data rows without media_attributes, and only when the image is at hand.
    todo = [k for k, (w, h) in enumerate(zip(img["width"], img["height"], strict=True)) if w is None or h is None]
    ws, hs = read_sizes(root, [img["file_name"][k] for k in todo], src, [places[k] for k in todo], ctx)
    for k, w, h in zip(todo, ws, hs, strict=True):
        img["width"][k], img["height"][k] = w, h
    categories = {"id": list(cats.values()), "name": list(cats), "supercategory": [cat_sup[k] for k in cats]}
    return Dataset.from_columns(img, ann, categories, {"root": str(root.resolve())})


def check(path: Path) -> list[Finding]:
    """Every row against ``labelbox.schema.json``; places are ``line N: /json/pointer``."""
    src = _source(path)
    if src is None:
        return [Finding("not-labelbox", "no Labelbox NDJSON export found", file=str(path))]
    try:
        rows = _lines(src)
    except InputError as exc:
        return [Finding("malformed", exc.message, file=exc.file, place=exc.place)]
    out: list[Finding] = []
    for line, row in rows:
        for f in validate(row, "labelbox", file=str(src)):
            f.place = f"line {line}: {f.place}"
            out.append(f)
    return out


register(Format("labelbox", "Labelbox export v2 NDJSON (read only)", read, None, detect, check=check))
