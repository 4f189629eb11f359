"""Leakage check on an existing split: related images on both sides of a train/test boundary.

Duplicate and near-duplicate groups and metadata groups (track, video, day, site, or any column
or file-name pattern) that cross splits inflate published accuracies; each crossing group is
counted with its splits and a few example files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from imagine.kernel import UsageError

from .dedup import DedupResult, dedup
from .executor import Executor
from .model import Dataset
from .split import _missing, available_group_columns, image_groups

__all__ = ["leakage", "DEFAULT_COLUMNS", "render_markdown"]

# Metadata columns checked by default, when the dataset has them.
DEFAULT_COLUMNS = ("track", "video", "day", "site")


def _crossing(ds: Dataset, gid: np.ndarray, labels: list[str], split: list[str | None], *,
              max_examples: int) -> dict[str, Any]:
    names = ds.images.column("file_name").to_pylist()
    rows = np.array([i for i, s in enumerate(split) if s is not None], dtype=np.int64)
    if not len(rows):
        return {"groups": 0, "crossing_groups": 0, "images_in_crossing_groups": 0, "examples": []}
    sp = np.asarray([split[i] for i in rows], dtype=object)
    scode = np.unique(sp.astype(str), return_inverse=True)[1].ravel()
    g = gid[rows]
    pairs = np.unique(np.stack([g, scode]), axis=1)
    nsplits = np.bincount(pairs[0], minlength=int(gid.max()) + 1)
    crossing = np.flatnonzero(nsplits > 1)
    sizes = np.bincount(g, minlength=len(nsplits))
    examples = []
    # the largest crossing groups first
    for c in crossing[np.argsort(-sizes[crossing], kind="stable")][:max_examples]:
        members = rows[g == c]
        counts: dict[str, int] = {}
        for m in members:
            counts[str(split[m])] = counts.get(str(split[m]), 0) + 1
        examples.append({"group": labels[int(c)], "images": int(len(members)), "splits": dict(sorted(counts.items())),
                         "files": [names[m] for m in members[:5]]})
    return {"groups": int((sizes > 0).sum()), "crossing_groups": int(len(crossing)),
            "images_in_crossing_groups": int(sizes[crossing].sum()), "examples": examples}


def leakage(ds: Dataset, root: str | os.PathLike[str] | None = None, *, columns: Sequence[str] | None = None,
            pattern: str | None = None, duplicates: bool = True, max_distance: int = 6,
            executor: Executor | None = None, dedup_result: DedupResult | None = None,
            max_examples: int = 10) -> dict[str, Any]:
    """Groups crossing the dataset's existing splits, per check; the JSON report (schema ``leakage-report``).

    ``columns`` default to those of :data:`DEFAULT_COLUMNS` the dataset has; naming a column it
    does not have is a usage error that lists those it has. ``pattern`` applies to every named
    column (e.g. ``file_name`` with ``^(.*?)_MOV`` for frames of one source video).
    """
    split = ds.images.column("split").to_pylist()
    present = {s for s in split if s is not None}
    if len(present) < 2:
        raise UsageError(f"the dataset has {len(present)} split(s) ({', '.join(sorted(present)) or 'none'}); "
                         "a leakage check needs at least two")
    available = available_group_columns(ds)
    if columns is None:
        cols = [c for c in DEFAULT_COLUMNS if c in available]
    else:
        cols = list(columns)
        for c in cols:
            if c not in available or c == "duplicate":
                raise _missing(ds, c)
    checks = []
    findings: list[dict[str, Any]] = []
    for c in cols:
        gid, labels = image_groups(ds, [c], pattern=pattern)
        checks.append({"check": c, **_crossing(ds, gid, labels, split, max_examples=max_examples)})
    dup_params = None
    if duplicates:
        res = dedup_result or dedup(ds, root, max_distance=max_distance, annotation_iou=None, executor=executor)
        gid, labels = image_groups(ds, ["duplicate"], duplicate_groups=res.group)
        checks.append({"check": "duplicate", **_crossing(ds, gid, labels, split, max_examples=max_examples)})
        findings = [f.to_dict() for f in res.findings]
        dup_params = {"max_distance": max_distance}
    leaking = sum(c["crossing_groups"] for c in checks)
    return {
        "kind": "leakage", "images": len(ds), "splits": {s: split.count(s) for s in sorted(present)},
        "params": {"columns": cols, "pattern": pattern, "duplicates": dup_params},
        "leaking": leaking > 0, "crossing_groups": leaking, "checks": checks,
        "unreadable": sum(1 for f in findings if f["code"] == "image-unreadable"), "findings": findings,
    }


def render_markdown(report: dict[str, Any]) -> str:
    """The leakage report for people."""
    lines = ["# Leakage", "",
             f"{report['images']} images in splits " + ", ".join(f"{k} ({v})" for k, v in report["splits"].items())
             + f": {report['crossing_groups']} group(s) cross splits.", "",
             "| check | groups | crossing | images in crossing groups |", "|---|---:|---:|---:|"]
    for c in report["checks"]:
        lines.append(f"| {c['check']} | {c['groups']} | {c['crossing_groups']} | {c['images_in_crossing_groups']} |")
    if report["unreadable"]:
        lines += ["", f"{report['unreadable']} image(s) could not be read and took no part in the duplicate check."]
    for c in report["checks"]:
        if c["examples"]:
            lines += ["", f"## {c['check']}: examples", ""]
            for e in c["examples"]:
                sp = ", ".join(f"{k}: {v}" for k, v in e["splits"].items())
                files = ", ".join(f"`{f}`" for f in e["files"])
                lines.append(f"- `{e['group']}` ({e['images']} images; {sp}): {files}")
    return "\n".join(lines) + "\n"
