"""``audit``: label issues, bias and balance, duplicates and leakage in one report.

Writes, atomically, into the output folder: ``audit.json`` (schema ``audit-report``),
``audit.md`` (the human report with its plots), ``audit-columns.parquet`` (one row per image with
every audit column: label-issue flag and score, suggested label, duplicate group, leakage,
Datalab flags; what the FiftyOne review loads) and the plots as PNG files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imagine.kernel import Finding, ImagineError, UsageError, atomic_dir, dump_json, safe_join

from ..model import Dataset
from .bias import _parse_dt, bias_report, class_weights, slug
from .labels import (
    LabelIssues,
    classification_issues,
    datalab_issues,
    detection_issues,
    label_counts,
    multilabel_issues,
)
from .predictions import ClassPredictions, load_class_predictions, load_det_predictions

COLUMNS_FILE = "audit-columns.parquet"


@dataclass
class AuditResult:
    """The report (JSON-ready dict) and the per-image columns."""

    report: dict[str, Any]
    columns: dict[str, list[Any]]
    label_issues: LabelIssues | None = None
    findings: list[Finding] = field(default_factory=list)


def _task(ds: Dataset) -> str:
    kinds = set(ds.annotations.column("kind").to_pylist())
    if kinds and kinds <= {"label"}:
        counts, _ = label_counts(ds)
        return "multilabel" if (counts > 1).any() else "classification"
    return "detection"


def audit(ds: Dataset, *, root: str | os.PathLike[str] | None = None, predictions: str | os.PathLike[str] | None = None,
          task: str | None = None, duplicates: bool = True, leakage_check: bool = True,
          features: np.ndarray | None = None, cluster_column: str | None = None,
          numeric_attributes: list[str] | None = None, source: str | None = None) -> AuditResult:
    """Run every audit the inputs allow; problems with one part are findings and the rest still runs."""
    task = task or _task(ds)
    if task not in ("classification", "multilabel", "detection"):
        raise UsageError(f"unknown task {task!r} (classification, multilabel, detection)")
    n = len(ds)
    findings: list[Finding] = []
    cols: dict[str, list[Any]] = {"file_name": ds.images.column("file_name").to_pylist(),
                                  "image_id": ds.images.column("id").to_pylist()}
    report: dict[str, Any] = {"kind": "audit", "version": 1, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                              "source": source, "task": task, "images": n, "annotations": ds.num_annotations}

    issues: LabelIssues | None = None
    class_preds = None
    if predictions is not None:
        try:
            if task == "detection":
                issues = detection_issues(ds, load_det_predictions(predictions, ds))
            elif task == "multilabel":
                issues = multilabel_issues(ds, load_class_predictions(predictions, ds, multi_label=True))
            else:
                class_preds = load_class_predictions(predictions, ds)
                issues = classification_issues(ds, class_preds)
        except ImagineError as exc:
            findings.append(Finding("label-issues-failed", exc.message, file=exc.file, place=exc.place))
        except ValueError as exc:  # cleanlab's own input checks
            findings.append(Finding("label-issues-failed", f"cleanlab refused the inputs: {exc}",
                                    file=str(predictions)))
    if issues is not None:
        findings += issues.findings
        flag: list[bool | None] = [None] * n
        score: list[float | None] = [None] * n
        suggested: list[Any] = [None] * n
        for i, r in enumerate(issues.rows.tolist()):
            flag[r], score[r] = bool(issues.is_issue[i]), float(issues.quality[i])
            s = issues.suggested[i]
            suggested[r] = s if isinstance(s, str) else ",".join(s)
        cols.update({"is_label_issue": flag, "label_quality": score, "suggested_label": suggested})
        report["label_issues"] = {"task": issues.task, "summary": issues.summary,
                                  "top": _jsonable(issues.top(ds, 25)), "predictions": str(predictions)}
        if class_preds is not None and len(issues.rows):
            report["label_issues"]["datalab"] = _datalab(ds, class_preds, features, cluster_column, cols, findings)
    else:
        report["label_issues"] = None
        if predictions is None:
            findings.append(Finding("no-predictions", "no predictions given: label issues not searched (pass "
                                    "--predictions, e.g. pred_probs.csv from `imagine-curate baseline --cv 5`)",
                                    severity="info"))

    bias = bias_report(ds, numeric_attributes=numeric_attributes)
    report["bias"] = {k: v for k, v in bias.items() if k != "findings"}
    findings += [Finding(**f) for f in bias["findings"]]
    report["mitigation"] = {"class_weights": {str(k): v for k, v in class_weights(ds).items()}}

    if duplicates:
        from ..dedup import dedup

        res = dedup(ds, root)
        dr = res.report()
        report["duplicates"] = {"summary": dr["summary"], "groups": dr["groups"][:50], "params": dr["params"]}
        cols["duplicate_group"] = [int(g) if g >= 0 else None for g in res.group]
        cols["is_duplicate"] = [bool(x) for x in res.is_duplicate]
        findings += res.findings
        if leakage_check and len(ds.splits()) >= 2:
            from ..leakage import leakage

            lk = leakage(ds, root, dedup_result=res)
            report["leakage"] = lk
            cols["leaks"] = _leaking_images(ds, lk)
        else:
            report["leakage"] = None
    report["findings"] = [f.to_dict() for f in findings]
    return AuditResult(report, cols, issues, findings)


def _leaking_images(ds: Dataset, lk: dict[str, Any]) -> list[bool]:
    names = set()
    for check in lk.get("checks", []):
        for ex in check.get("examples", []):
            for files in ex.get("files", {}).values() if isinstance(ex.get("files"), dict) else []:
                names.update(files)
    return [n in names for n in ds.images.column("file_name").to_pylist()]


def _datalab(ds: Dataset, preds: ClassPredictions, features: np.ndarray | None, cluster_column: str | None,
             cols: dict[str, list[Any]], findings: list[Finding]) -> dict[str, Any] | None:
    """Datalab's other issue types on the same labels and probabilities (classes present only)."""
    counts, cats = label_counts(ds)
    keep = counts[preds.image_rows] == 1
    rows = preds.image_rows[keep]
    index = {c: k for k, c in enumerate(preds.class_ids)}
    labels = np.array([index[int(c)] for c in cats[rows]], np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        return None
    remap = {int(k): i for i, k in enumerate(present)}
    probs = preds.probs[keep][:, present]
    probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    cluster = None
    if cluster_column:
        vals = ds.images.column(cluster_column).to_pylist()
        codes = {v: i for i, v in enumerate(dict.fromkeys(vals[r] for r in rows))}
        cluster = np.array([codes[vals[r]] for r in rows], np.int64)
    feats = features[rows] if features is not None else None
    try:
        out = datalab_issues(np.array([remap[int(k)] for k in labels]), probs, features=feats, cluster_ids=cluster)
    except Exception as exc:  # cleanlab raises many kinds; the rest of the audit must still run
        findings.append(Finding("datalab-failed", f"Datalab could not run: {exc}", severity="warning"))
        return None
    for t, flags in out["flags"].items():
        col: list[bool | None] = [None] * len(ds)
        for i, r in enumerate(rows.tolist()):
            col[r] = bool(flags[i])
        cols[f"is_{t}_issue"] = col
    return {"types": out["types"], "cluster_column": cluster_column, "features": features is not None}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items() if k != "box_scores"}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------------------- output
def _plots(ds: Dataset, result: AuditResult, out: Path, root: str | None) -> list[tuple[str, str]]:
    """Write the report's PNG plots; return (title, file) pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []

    def save(fig: Any, title: str, file: str, dpi: int = 100) -> None:
        """Lay the figure out, save it as ``out/file``, close it and list it under ``title``."""
        fig.tight_layout()
        fig.savefig(out / file, dpi=dpi)
        plt.close(fig)
        made.append((title, file))

    bal = result.report["bias"]["class_balance"]
    names = [r["name"] for r in bal["per_class"]]
    counts = [r["annotations"] for r in bal["per_class"]]
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(names) + 2), 3.5))
    ax.bar(range(len(names)), counts, color="#2a7fb8")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("annotations")
    ax.set_title("Class histogram")
    save(fig, "Class histogram", "class-histogram.png")

    bs = result.report["bias"]["views"].get("box_size")
    if bs:
        w = ds.annotations.column("bbox_w").to_numpy(zero_copy_only=False).astype(float)
        h = ds.annotations.column("bbox_h").to_numpy(zero_copy_only=False).astype(float)
        cat = np.asarray(ds.annotations.column("category_id").to_pylist(), dtype=object)
        size = np.sqrt(np.clip(w * h, 0, None))
        data = [size[(cat == c) & np.isfinite(size)] for c in ds.category_names()]
        fig, ax = plt.subplots(figsize=(max(4, 0.5 * len(names) + 2), 3.5))
        ax.boxplot([d if len(d) else [np.nan] for d in data], showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("sqrt(box area) px")
        ax.set_title("Box size per class")
        save(fig, "Box size per class", "box-sizes.png")

    dts = [_parse_dt(s) for s in ds.images.column("datetime").to_pylist()]
    group_col = "site" if any(v is not None for v in ds.images.column("site").to_pylist()) else "video"
    groups = ds.images.column(group_col).to_pylist()
    if any(dts) and any(g is not None for g in groups):
        months = sorted({d.strftime("%Y-%m") for d in dts if d})
        keys = sorted({str(g) for g in groups if g is not None})
        if len(keys) > 40:  # too many tracks to show one per row: count tracks per month instead
            keys = ["tracks"]
            grid = np.zeros((1, len(months)))
            seen: set[tuple[str, str]] = set()
            for d, g in zip(dts, groups, strict=True):
                if d and g is not None and (str(g), d.strftime("%Y-%m")) not in seen:
                    seen.add((str(g), d.strftime("%Y-%m")))
                    grid[0, months.index(d.strftime("%Y-%m"))] += 1
        else:
            grid = np.zeros((len(keys), len(months)))
            for d, g in zip(dts, groups, strict=True):
                if d and g is not None:
                    grid[keys.index(str(g)), months.index(d.strftime("%Y-%m"))] += 1
        fig, ax = plt.subplots(figsize=(max(4, 0.35 * len(months) + 2), max(2.5, 0.3 * len(keys) + 1.5)))
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(months)), months, rotation=90, fontsize=7)
        ax.set_yticks(range(len(keys)), keys, fontsize=7)
        ax.set_title(f"Images per {group_col if keys != ['tracks'] else 'month (tracks)'} × month")
        fig.colorbar(im, ax=ax)
        save(fig, f"{group_col} × month", "site-month.png")

    li = result.report.get("label_issues")
    if li and li.get("top") and root:
        from imagine.kernel import open_image

        top = [t for t in li["top"] if t["is_label_issue"]][:12] or li["top"][:6]
        cols_n = min(4, len(top))
        rows_n = (len(top) + cols_n - 1) // cols_n
        fig, axes = plt.subplots(rows_n, cols_n, figsize=(3 * cols_n, 3 * rows_n), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, t in zip(axes.ravel(), top, strict=False):
            try:
                im = open_image(safe_join(root, t["image"]))
                im.thumbnail((256, 256))
                ax.imshow(im.convert("RGB"))
            except ImagineError:
                pass
            given = t["given"] if isinstance(t["given"], str) else ",".join(t["given"])
            sugg = t["suggested"] if isinstance(t["suggested"], str) else ",".join(t["suggested"])
            ax.set_title(f"{given} → {sugg}\nq={t['label_quality']:.3f}", fontsize=8)
        save(fig, "Suspect labels (given → suggested)", "label-issues.png", dpi=90)
    return made


def render_markdown(report: dict[str, Any], plots: list[tuple[str, str]]) -> str:
    """The human report."""
    r = report
    bal = r["bias"]["class_balance"]
    lines = [f"# Audit of {r.get('source') or 'dataset'}", "",
             f"{r['images']} images, {r['annotations']} annotations; task: {r['task']}.", "",
             "## Class balance", "",
             f"Imbalance ratio (largest / smallest class): {bal['imbalance_ratio']}; effective number of classes: "
             f"{bal['effective_number_of_classes']:.2f} of {len(bal['per_class'])}; rare classes (< "
             f"{bal['rare_fraction']:.0%} of annotations): {', '.join(bal['rare_classes']) or 'none'}.", "",
             "| class | annotations | images | class weight |", "|---|---:|---:|---:|"]
    weights = r["mitigation"]["class_weights"]
    for row in bal["per_class"]:
        lines.append(f"| {row['name']} | {row['annotations']} | {row['images']} | "
                     f"{weights.get(str(row['id']), 0):.3f} |")
    li = r.get("label_issues")
    lines += ["", "## Label issues", ""]
    if li:
        s = li["summary"]
        lines.append(f"{s.get('issues')} suspect of {s.get('examples', s.get('images'))} "
                     f"({s.get('issue_rate', 0):.1%}), from `{li['predictions']}`.")
        if li["task"] == "detection":
            lines.append(f"Swapped boxes: {s['swapped_boxes']}, badly located: {s['badly_located_boxes']}, "
                         f"overlooked: {s['overlooked_boxes']} (score calibration: {s['calibration']['method']}).")
        if li.get("datalab"):
            lines += ["", "| Datalab issue type | issues | score |", "|---|---:|---:|"]
            for t, v in li["datalab"]["types"].items():
                lines.append(f"| {t} | {v['num_issues']} | {v['score']:.3f} |")
        lines += ["", "| image | given | suggested | quality |", "|---|---|---|---:|"]
        for t in li["top"][:15]:
            lines.append(f"| {t['image']} | {t['given']} | {t['suggested']} | {t['label_quality']:.3f} |")
    else:
        lines.append("Not searched: no predictions were given.")
    views = r["bias"]["views"]
    lines += ["", "## Bias views", ""]
    for name, v in views.items():
        if "groups" in v:
            d = v.get("images_per_group") or {}
            lines.append(f"- **{name}**: {v['groups']} groups; images per group median {d.get('median')}, "
                         f"max {d.get('max')}")
        elif "images" in v:
            lines.append(f"- **{name}**: " + ", ".join(f"{k}: {n}" for k, n in list(v["images"].items())[:24]))
        elif "distribution" in v and v["distribution"]:
            d = v["distribution"]
            lines.append(f"- **{name}**: n={d['n']}, median {d['median']:.4g}, range {d['min']:.4g}–{d['max']:.4g}")
    for name, why in r["bias"]["unavailable"].items():
        lines.append(f"- {name}: not available ({why})")
    gaps = r["bias"].get("coverage_gaps")
    if gaps:
        lines += ["", f"Coverage gaps: empty months {', '.join(gaps.get('empty_months', [])) or 'none'}."]
    if r.get("duplicates"):
        s = r["duplicates"]["summary"]
        lines += ["", "## Duplicates", "", f"{s['groups']} duplicate groups ({s['exact_groups']} exact, "
                  f"{s['near_groups']} near), {s['removable_images']} removable images, "
                  f"{s['groups_crossing_splits']} groups crossing splits, {s['annotation_duplicates']} duplicate "
                  "annotations."]
    if r.get("leakage"):
        lines += ["", "## Leakage", ""]
        for c in r["leakage"]["checks"]:
            lines.append(f"- {c['check']}: {c['crossing_groups']} of {c['groups']} groups cross splits")
    lines += ["", "## Plots", ""] + [f"![{t}]({f})" for t, f in plots]
    if r["findings"]:
        lines += ["", "## Findings", ""] + [f"- {f.get('severity')}: {f.get('message')} [{f.get('code')}]"
                                            for f in r["findings"]]
    return "\n".join(lines) + "\n"


def write_audit(ds: Dataset, result: AuditResult, out: str | os.PathLike[str]) -> Path:
    """Write the report, columns and plots into ``out`` (atomically)."""
    from imagine.schemas import validate

    errs = validate(result.report, "audit-report")
    if errs:  # a bug of ours, not bad input: say exactly where
        raise ImagineError(f"audit report does not match its schema at {errs[0].place}: {errs[0].message}")
    out_p = Path(out)
    with atomic_dir(out_p) as tmp:
        dump_json(result.report, tmp / "audit.json")
        pq.write_table(pa.table(result.columns), tmp / COLUMNS_FILE)
        plots = _plots(ds, result, tmp, ds.info.get("root"))
        (tmp / "audit.md").write_text(render_markdown(result.report, plots), "utf-8")
    return out_p


__all__ = ["audit", "write_audit", "AuditResult", "render_markdown", "COLUMNS_FILE", "slug"]
