"""Benchmark cards: the JSON document (schema ``benchmark-card``), its Markdown rendering and the confusion-matrix plot.

A card says on exactly which data (content hash, split-manifest hash) which model (architecture,
hyperparameters, seed, software, hardware) reached which numbers (metrics with bootstrap
intervals, per class), and the command that reproduces them. The plot is drawn with Pillow so the
models extra needs no plotting library.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from imagine.kernel import InputError, atomic_write, read_json
from imagine.schemas import validate

__all__ = ["CARD_KIND", "CARD_VERSION", "clean_numbers", "metric_block", "render_markdown", "confusion_png",
           "load_card", "validate_card"]

CARD_KIND = "imagine-benchmark-card"
CARD_VERSION = 1

METRIC_LABELS = {
    "accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy", "macro_precision": "Macro precision",
    "macro_recall": "Macro recall", "macro_f1": "Macro F1", "weighted_precision": "Weighted precision",
    "weighted_recall": "Weighted recall", "weighted_f1": "Weighted F1", "roc_auc_ovr_macro": "ROC-AUC (OvR, macro)",
    "ece": "ECE (15 bins)", "nll": "NLL", "map50": "mAP@50", "map50_95": "mAP@50:95", "map75": "mAP@75",
    "detections": "Detections kept",
}


ORIGINS = {"dataset": "the dataset", "seeded-stratified": "a seeded stratified hold-out",
           "group-aware-stratified": "a seeded, stratified, group-aware hold-out"}


def clean_numbers(obj: Any) -> Any:
    """Replace NaN/inf by None (JSON has no NaN) and NumPy scalars by Python numbers, recursively."""
    if isinstance(obj, dict):
        return {k: clean_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_numbers(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def metric_block(values: dict[str, Any], intervals: dict[str, Any]) -> dict[str, Any]:
    """``{name: {"value": v, "ci95": [lo, hi] | None}}`` from plain values and bootstrap intervals."""
    return clean_numbers({k: {"value": v, "ci95": list(intervals[k]) if k in intervals else None}
                          for k, v in values.items()})


def validate_card(card: dict[str, Any], file: str | os.PathLike[str] | None = None) -> None:
    """Raise InputError naming the first schema violations (JSON pointer) of a card."""
    findings = validate(card, "benchmark-card", file=None if file is None else os.fspath(file))
    if findings:
        first = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise InputError(f"not a valid benchmark card: {first.message}{more}", file=file, place=first.place)


def load_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and schema-check a card file."""
    p = Path(path)
    card = read_json(p, "card file not found")
    if not isinstance(card, dict):
        raise InputError("a benchmark card is a JSON object", file=p, place="/")
    validate_card(card, p)
    return card


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _metric_rows(metrics: dict[str, Any]) -> list[str]:
    rows = ["| Metric | Value | 95 % CI (bootstrap) |", "|---|---:|---|"]
    for k, m in metrics.items():
        ci = m.get("ci95")
        ci_s = f"{_fmt(ci[0])} – {_fmt(ci[1])}" if ci and ci[0] is not None else "–"
        rows.append(f"| {METRIC_LABELS.get(k, k)} | {_fmt(m.get('value'))} | {ci_s} |")
    return rows


def render_markdown(card: dict[str, Any]) -> str:
    """A readable rendering of a card for people (published next to the JSON)."""
    d, m, tr, hw, sw = card["dataset"], card["model"], card["training"], card["hardware"], card["software"]
    task = "image classification" if card["task"] == "classify" else "object detection"
    lines = [f"# Baseline: {d.get('name') or 'dataset'} — {task}", ""]
    lines += [f"*Card version {card['card_version']}, created {card['created']}.*", "", "## Dataset", ""]
    lines += [f"- Name: {d.get('name') or '–'}; version: {d.get('version') or '–'}; DOI: {d.get('doi') or '–'}",
              f"- Source: `{d['source']}` (format `{d['format']}`)",
              f"- Content hash: `{d['content_hash']}`",
              f"- Split manifest: `{d['split_manifest']}` (hash `{d['split_manifest_hash']}`); splits from "
              f"{ORIGINS.get(d['split_origin'], d['split_origin'])}; "
              f"evaluated on `{d['evaluation_split']}`",
              f"- Examples: {d['num_examples']} ("
              + ", ".join(f"{k}: {v}" for k, v in d["split_counts"].items()) + f"); {len(d['classes'])} classes", ""]
    lines += ["## Model and training", ""]
    lines += [f"- Model: {m['family']} (width {m['width']}, depth {m['depth']}, {m['parameters']:,} parameters), "
              f"initialised from {'scratch' if m['init'] == 'scratch' else 'a local weights file'}",
              f"- Seed {card['seed']}; hyperparameters: `{json.dumps(card['hyperparameters'], sort_keys=True)}`",
              f"- Training: {tr['steps']} steps, {tr['images_seen']} images in {_fmt(tr['time_s'], 1)} s "
              f"({_fmt(tr['images_per_s'], 1)} images/s)",
              f"- Hardware: {hw['device']} ({hw['cpu']}, {hw['threads']} threads"
              + (f", load average {hw['load_average_at_start']} at start" if hw.get("load_average_at_start")
                 is not None else "") + ")",
              f"- Software: Python {sw['python']}, PyTorch {sw['torch']}, NumPy {sw['numpy']}, "
              f"imagine {sw['imagine']}", ""]
    lines += [f"## Metrics on `{d['evaluation_split']}`", ""] + _metric_rows(card["metrics"]) + [""]
    lines += ["## Per class", ""]
    if card["task"] == "classify":
        lines += ["| Class | Precision | Recall | F1 | ROC-AUC | Support |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['name']} | {_fmt(r['precision'], 3)} | {_fmt(r['recall'], 3)} | {_fmt(r['f1'], 3)} | "
                  f"{_fmt(r.get('roc_auc'), 3)} | {r['support']} |" for r in card["per_class"]]
    else:
        lines += ["| Class | AP@50 | AP@50:95 | Boxes |", "|---|---:|---:|---:|"]
        lines += [f"| {r['name']} | {_fmt(r.get('ap50'), 3)} | {_fmt(r.get('ap50_95'), 3)} | {r['support']} |"
                  for r in card["per_class"]]
    lines.append("")
    cm = card.get("confusion_matrix")
    if cm:
        lines += ["## Confusion matrix", "", f"![confusion matrix]({cm['plot']})", ""]
    cv = card.get("cross_validation")
    if cv:
        lines += [f"## {cv['k']}-fold cross-validation (out-of-sample, every labelled image)", ""]
        lines += _metric_rows(cv["metrics"]) + [""]
        lines += [f"Out-of-sample probabilities: `{cv['pred_probs']['file']}` ({cv['pred_probs']['format']}: "
                  + ", ".join(cv["pred_probs"]["columns"]) + ").", ""]
    if card.get("mlflow"):
        lines += [f"MLflow run `{card['mlflow']['run_id']}` at `{card['mlflow']['tracking_uri']}`.", ""]
    lines += ["## Known limitations", ""] + [f"- {t}" for t in card["limitations"]] + [""]
    lines += ["## Reproduce", "", "```", card["reproduce_command"], "```", "",
              "Trained with:", "", "```", card["command"], "```", ""]
    return "\n".join(lines)


def confusion_png(matrix: list[list[int]], labels: list[str], path: str | os.PathLike[str],
                  title: str = "Confusion matrix (rows: true, columns: predicted)") -> None:
    """Draw a row-normalised confusion matrix with counts as a PNG (Pillow only), written atomically."""
    from PIL import Image, ImageDraw, ImageFont

    n = len(labels)
    cell = 44 if n <= 12 else max(14, 520 // max(n, 1))
    font = ImageFont.load_default()
    label_w = 8 + 7 * max((len(s) for s in labels), default=1)
    top = 40 + label_w
    left = label_w + 10
    w, h = left + n * cell + 20, top + n * cell + 20
    im = Image.new("RGB", (w, h), "white")
    dr = ImageDraw.Draw(im)
    dr.text((10, 10), title, fill="black", font=font)
    for i in range(n):
        total = sum(matrix[i]) or 1
        for j in range(n):
            v = matrix[i][j]
            frac = v / total
            shade = int(255 - 200 * frac)
            x0, y0 = left + j * cell, top + i * cell
            dr.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            if cell >= 24:
                dr.text((x0 + 4, y0 + cell // 2 - 6), str(v), fill="white" if frac > 0.6 else "black", font=font)
        dr.text((8, top + i * cell + cell // 2 - 6), labels[i][:40], fill="black", font=font)
    # column labels, rotated
    for j, lab in enumerate(labels):
        txt = Image.new("RGB", (label_w, 14), "white")
        ImageDraw.Draw(txt).text((2, 1), lab[:40], fill="black", font=font)
        rot = txt.rotate(90, expand=True)
        im.paste(rot, (left + j * cell + cell // 2 - 7, 34))
    with atomic_write(path, "wb") as fh:
        im.save(fh, format="PNG")
