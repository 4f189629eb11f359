"""Seeded, stratified, group-aware train/val/test splits with a citable manifest.

Related images must stay together: frames of one fish track, one video, one day (the underwater
noise use case), one site, one duplicate group. Groups are the connected components of "shares a
value in any ``group_by`` column", so several columns can be combined (video *and* duplicate
group). Groups are then dealt to splits largest first, each to the split that most lacks its
images and classes, so class proportions follow the requested ratios as closely as whole groups
allow. The same seed gives the same split; the manifest lists every file's hash per split.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagine.kernel import UsageError

from .dedup import components
from .model import Dataset, loads_attrs

__all__ = ["image_groups", "available_group_columns", "split", "SplitResult", "parse_ratios", "DERIVED_COLUMNS",
           "render_markdown"]

# Group columns computed rather than read: day from the date-time, track from the annotations,
# duplicate from a dedup run.
DERIVED_COLUMNS = ("day", "track", "duplicate")
_ANNOTATION_GROUP_COLUMNS = {"track": "track_id", "track_id": "track_id", "group_id": "group_id",
                             "annotator": "annotator"}
_IMAGE_SKIP = ("id", "width", "height", "checksum", "attributes")


def _attribute_keys(ds: Dataset) -> set[str]:
    keys: set[str] = set()
    for s in ds.images.column("attributes").drop_null().to_pylist()[:10000]:
        keys.update(loads_attrs(s))
    return keys


def available_group_columns(ds: Dataset) -> list[str]:
    """Columns ``group_by`` can use on this dataset: non-empty image columns, derived ones, attributes."""
    out = [n for n in ds.images.column_names if n not in _IMAGE_SKIP and ds.images.column(n).null_count < len(ds)]
    if "datetime" in out:
        out.append("day")
    a = ds.annotations
    for name, col in _ANNOTATION_GROUP_COLUMNS.items():
        if a.num_rows and a.column(col).null_count < a.num_rows and name not in out:
            out.append(name)
    out.append("duplicate")
    out += sorted(_attribute_keys(ds) - set(out))
    return out


def _values(ds: Dataset, column: str, duplicate_groups: np.ndarray | None) -> tuple[np.ndarray, list[Any]]:
    """(image row, value) pairs of one group column; images with no value take no part."""
    n = len(ds)
    rows = np.arange(n)
    if column == "duplicate":
        if duplicate_groups is None:
            raise UsageError("grouping by 'duplicate' needs the duplicate groups of a dedup run")
        keep = duplicate_groups >= 0
        return rows[keep], [f"dup-{int(g)}" for g in duplicate_groups[keep]]
    if column == "day" and "day" not in ds.images.column_names:
        vals = ds.images.column("datetime").to_pylist()
        days = [str(v)[:10] if v else None for v in vals]
        return _nonnull(rows, days)
    if column in ds.images.column_names and column not in _IMAGE_SKIP:
        vals = ds.images.column(column).to_pylist()
        if all(v is None for v in vals):
            raise _missing(ds, column)
        return _nonnull(rows, vals)
    if column in _ANNOTATION_GROUP_COLUMNS:
        a = ds.annotations
        col = a.column(_ANNOTATION_GROUP_COLUMNS[column])
        if not a.num_rows or col.null_count == a.num_rows:
            raise _missing(ds, column)
        idx = ds.image_index()
        img = a.column("image_id").to_pylist()
        vals = col.to_pylist()
        pairs = {(idx[i], v) for i, v in zip(img, vals, strict=True) if v is not None and i in idx}
        pr = sorted(pairs, key=lambda t: (t[0], str(t[1])))
        return np.array([p[0] for p in pr], dtype=np.int64), [p[1] for p in pr]
    key = column.removeprefix("attributes.")
    if key in _attribute_keys(ds):
        vals = [loads_attrs(s).get(key) for s in ds.images.column("attributes").to_pylist()]
        return _nonnull(rows, vals)
    raise _missing(ds, column)


def _missing(ds: Dataset, column: str) -> UsageError:
    return UsageError(f"no group column {column!r} in this dataset; columns with values: "
                      f"{', '.join(available_group_columns(ds))}")


def _nonnull(rows: np.ndarray, vals: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    keep = [i for i, v in enumerate(vals) if v is not None and v != ""]
    return rows[keep], [vals[i] for i in keep]


def image_groups(ds: Dataset, group_by: Sequence[str], *, pattern: str | None = None,
                 duplicate_groups: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Group number per image (images sharing a value in any column are together) and group labels.

    ``pattern`` (a regular expression) turns each value into its first capture group (or the whole
    match) before grouping, e.g. ``^(.*?)_MOV`` groups the frames of one source video by file name.
    Images with no value in any column form a group of their own.
    """
    rx = None
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"invalid --group-pattern {pattern!r}: {exc}") from exc
    n = len(ds)
    ea: list[np.ndarray] = []
    eb: list[np.ndarray] = []
    labels: list[str] = []
    for column in group_by:
        rows, vals = _values(ds, column, duplicate_groups)
        keys = []
        for v in vals:
            s = str(v)
            if rx is not None:
                m = rx.search(s)
                if m:
                    s = m.group(1) if m.groups() and m.group(1) is not None else m.group(0)
            keys.append(f"{column}={s}")
        if not keys:
            continue
        enc = pc.dictionary_encode(pa.array(keys, pa.string()))
        codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        ea.append(rows)
        eb.append(n + len(labels) + codes)
        labels.extend(enc.dictionary.to_pylist())
    total = n + len(labels)
    if ea:
        root = components(total, np.concatenate(ea), np.concatenate(eb))
    else:
        root = np.arange(total)
    # a group's label: the smallest value label in it, else the file name of its image
    names = ds.images.column("file_name").to_pylist()
    label_of_root: dict[int, str] = {}
    for k, lab in enumerate(labels):
        r = int(root[n + k])
        if r not in label_of_root or lab < label_of_root[r]:
            label_of_root[r] = lab
    uniq, gid = np.unique(root[:n], return_inverse=True)
    glabels = [label_of_root.get(int(r), names[int(r)] if int(r) < n else str(r)) for r in uniq]
    return gid.ravel().astype(np.int64), glabels


def parse_ratios(text: str | Sequence[float]) -> list[float]:
    """``"0.8,0.1,0.1"`` → [0.8, 0.1, 0.1]; each in (0, 1], summing to 1."""
    try:
        vals = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise UsageError(f"ratios must be numbers separated by commas, not {text!r}") from None
    if len(vals) < 2 or any(not 0.0 < v <= 1.0 for v in vals) or abs(sum(vals) - 1.0) > 1e-6:
        raise UsageError(f"ratios must be two or more numbers in (0, 1] summing to 1, not {text!r}")
    return vals


@dataclass
class SplitResult:
    """The split dataset (``images.split`` filled), the group of each image and the summary."""

    dataset: Dataset
    groups: np.ndarray
    names: list[str]
    ratios: list[float]
    params: dict[str, Any]

    def report(self, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON report (schema ``split-report``)."""
        ds = self.dataset
        split = np.asarray(ds.images.column("split").to_pylist(), dtype=object)
        n = len(ds)
        order, starts, ends = ds.annotations_by_image()
        cat = np.asarray(pc.fill_null(ds.annotations.column("category_id"), -1).to_numpy(), dtype=np.int64)
        img_row = np.repeat(np.arange(n), ends - starts)
        ann_split = split[img_row] if n else np.zeros(0, dtype=object)
        cnames = ds.category_names()
        per_split = []
        for s, r in zip(self.names, self.ratios, strict=True):
            m = split == s
            cls = cat[order][ann_split == s] if len(order) else np.zeros(0, np.int64)
            u, c = np.unique(cls, return_counts=True)
            per_split.append({
                "name": s, "target_ratio": r, "images": int(m.sum()), "ratio": float(m.sum() / n) if n else 0.0,
                "annotations": int(len(cls)), "groups": int(len(np.unique(self.groups[m]))),
                "classes": {cnames.get(int(k), str(int(k))): int(v) for k, v in zip(u, c, strict=True)},
            })
        crossing = 0
        if n:
            pairs = np.unique(np.stack([self.groups, np.unique(split.astype(str), return_inverse=True)[1].ravel()]),
                              axis=1)
            crossing = int((np.bincount(pairs[0]) > 1).sum())
        out: dict[str, Any] = {
            "kind": "split", "params": self.params, "images": n, "groups": int(len(np.unique(self.groups))),
            "groups_crossing_splits": crossing, "splits": per_split,
        }
        if manifest is not None:
            out["manifest"] = {"hash": manifest["hash"],
                               "files": {k: len(v) for k, v in manifest["splits"].items()}}
        return out


def split(ds: Dataset, ratios: Sequence[float] = (0.8, 0.1, 0.1), *, names: Sequence[str] | None = None,
          group_by: Sequence[str] = (), pattern: str | None = None, seed: int = 0, stratify: bool = True,
          duplicate_groups: np.ndarray | None = None) -> SplitResult:
    """Assign every image to a split; whole groups at a time; seeded and stratified by class."""
    ratios = parse_ratios(ratios)
    if names is None:
        names = {2: ["train", "test"], 3: ["train", "val", "test"]}.get(len(ratios),
                                                                         [f"split{i}" for i in range(len(ratios))])
    names = list(names)
    if len(names) != len(ratios) or len(set(names)) != len(names):
        raise UsageError(f"need {len(ratios)} distinct split names, got {names}")
    n = len(ds)
    if group_by:
        gid, _ = image_groups(ds, group_by, pattern=pattern, duplicate_groups=duplicate_groups)
    else:
        gid = np.arange(n, dtype=np.int64)
    n_groups = int(gid.max()) + 1 if n else 0
    g_size = np.bincount(gid, minlength=n_groups).astype(np.float64)
    # class counts per group, sparse: (group, class, count)
    order, starts, ends = ds.annotations_by_image()
    cat = np.asarray(pc.fill_null(ds.annotations.column("category_id"), -1).to_numpy(), dtype=np.int64)
    img_row = np.repeat(np.arange(n), ends - starts)
    ucat, ccode = np.unique(cat[order], return_inverse=True) if len(order) else (np.zeros(0, np.int64),
                                                                               np.zeros(0, np.int64))
    n_cls = len(ucat)
    S = len(ratios)
    r = np.asarray(ratios)
    if stratify and n_cls:
        key = gid[img_row] * n_cls + ccode.ravel()
        uk, kc = np.unique(key, return_counts=True)
        kg, kcls = uk // n_cls, uk % n_cls
        gstart = np.searchsorted(kg, np.arange(n_groups + 1))
        cls_tot: np.ndarray = np.bincount(kcls, weights=kc, minlength=n_cls)
    else:
        kg = kcls = kc = np.zeros(0, np.int64)
        gstart = np.zeros(n_groups + 1, np.int64)
        cls_tot = np.zeros(n_cls)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_groups)
    perm = perm[np.argsort(-g_size[perm], kind="stable")]
    cur_img = np.zeros(S)
    cur_cls = np.zeros((S, max(n_cls, 1)))
    target_img = r * n
    target_cls = r[:, None] * cls_tot[None, :] if n_cls else np.zeros((S, 1))
    inv_cls = 1.0 / np.maximum(cls_tot, 1.0)
    assign = np.zeros(n_groups, dtype=np.int64)
    for g in perm:
        a, b = gstart[g], gstart[g + 1]
        score = (target_img - cur_img) / max(n, 1)
        if b > a:
            cs, cn = kcls[a:b], kc[a:b].astype(np.float64)
            w = cn / cn.sum()
            score = score + ((target_cls[:, cs] - cur_cls[:, cs]) * inv_cls[cs] * w).sum(axis=1)
            cur_g = int(np.argmax(score))
            cur_cls[cur_g, cs] += cn
        else:
            cur_g = int(np.argmax(score))
        cur_img[cur_g] += g_size[g]
        assign[g] = cur_g
    split_col = [names[int(s)] for s in assign[gid]] if n else []
    idx = ds.images.schema.get_field_index("split")
    images = ds.images.set_column(idx, ds.images.schema.field(idx), pa.array(split_col, pa.string()))
    info = dict(ds.info)
    params = {"ratios": list(ratios), "names": names, "group_by": list(group_by), "pattern": pattern, "seed": seed,
              "stratify": stratify}
    prov = info.get("provenance")
    info["provenance"] = [*(prov if isinstance(prov, list) else []), {"step": "split", **params}]
    return SplitResult(ds.with_tables(images=images, info=info), gid, names, list(ratios), params)


def write_manifest(manifest: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Save a split manifest as JSON, atomically."""
    from imagine.kernel import dump_json

    dump_json(manifest, path)


def render_markdown(report: dict[str, Any]) -> str:
    """The split summary for people."""
    p = report["params"]
    lines = ["# Split", "",
             f"{report['images']} images in {report['groups']} groups "
             f"(group by: {', '.join(p['group_by']) or 'none'}), seed {p['seed']}; "
             f"{report['groups_crossing_splits']} groups cross splits.", "",
             "| split | target | images | ratio | annotations | groups |", "|---|---:|---:|---:|---:|---:|"]
    for s in report["splits"]:
        lines.append(f"| {s['name']} | {s['target_ratio']:.3f} | {s['images']} | {s['ratio']:.3f} | "
                     f"{s['annotations']} | {s['groups']} |")
    if "manifest" in report:
        lines += ["", f"Split manifest hash: `{report['manifest']['hash']}`"]
    return "\n".join(lines) + "\n"
