"""``reproduce``: retrain from a benchmark card on the same data and compare every metric with the card's.

Before any training it checks, in order: the card against its schema, the split manifest next to
the card against its recorded hash, the files the manifest names (present and unchanged), the
dataset's content hash, and that the dataset supports the card's task — each failure is an
:class:`~imagine.kernel.InputError` naming the file, so nothing is trained on the wrong data.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

from imagine.curate.formats import read_dataset
from imagine.curate.manifest import canonical_json, dataset_hash, split_manifest, verify_manifest, with_checksums
from imagine.kernel import InputError, read_json

from .baseline import dataset_root
from .card import clean_numbers, load_card
from .train import TrainConfig, effective_splits, run

__all__ = ["reproduce"]


def _load_manifest(card: dict[str, Any], card_path: Path) -> tuple[dict[str, Any], Path]:
    mpath = card_path.parent / card["dataset"]["split_manifest"]
    manifest = read_json(mpath, "split manifest named by the card is missing")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise InputError("a split manifest is an object with a 'splits' mapping", file=mpath, place="/splits")
    body = {k: v for k, v in manifest.items() if k != "hash"}
    actual = "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()
    if actual != card["dataset"]["split_manifest_hash"]:
        raise InputError(f"split manifest hash {actual} does not match the card's "
                         f"{card['dataset']['split_manifest_hash']}", file=mpath)
    return manifest, mpath


def _compare(prefix: str, old: dict[str, Any], new: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    rows = []
    for name, m in old.items():
        ref = m.get("value")
        val = new.get(name)
        if isinstance(val, float) and not math.isfinite(val):
            val = None
        if ref is None and val is None:
            ok, diff = True, 0.0
        elif ref is None or val is None:
            ok, diff = False, None
        else:
            diff = float(val) - float(ref)
            ok = abs(diff) <= tolerance
        rows.append({"metric": prefix + name, "card": ref, "reproduced": val, "difference": diff, "ok": ok})
    return rows


def reproduce(card_file: str | os.PathLike[str], data: str | os.PathLike[str] | None = None, *,
              tolerance: float = 0.0, device: str | None = None) -> dict[str, Any]:
    """Retrain from ``card_file`` on ``data`` (default: the card's source) and compare the metrics.

    Returns ``{ok, exact, tolerance, metrics: [{metric, card, reproduced, difference, ok}], ...}``;
    ``exact`` says whether the evaluation predictions are bit-identical to the card's.
    """
    card_path = Path(card_file)
    card = load_card(card_path)
    d = card["dataset"]
    src = Path(data) if data is not None else Path(d["source"])
    if not src.exists():
        raise InputError("dataset not found (pass --data DIR)", file=src)
    manifest, mpath = _load_manifest(card, card_path)
    ds = read_dataset(src, d["format"])
    root = dataset_root(ds, src)
    problems = verify_manifest(manifest, root)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"split manifest does not match the data under {root}: " + "; ".join(problems[:3]) + more,
                         file=mpath)
    ds = with_checksums(ds, root)
    content = dataset_hash(ds, root)
    if content != d["content_hash"]:
        raise InputError(f"dataset content hash {content} does not match the card's {d['content_hash']} "
                         "(annotations, categories, image list or files differ)", file=src)
    cfg = TrainConfig.from_dict(dict(card["hyperparameters"]))
    cfg.validate()
    if cfg.weights and not Path(cfg.weights).is_file():
        raise InputError("weights file named by the card not found", file=cfg.weights)
    from .data import classification_examples, detection_examples

    classification_examples(ds) if cfg.task == "classify" else detection_examples(ds, tile=cfg.tile)
    r = run(ds, root, cfg, device=device)
    eff = effective_splits(ds, r.examples, r.train_idx, r.eval_idx, r.eval_split)
    same_split = split_manifest(eff, root)["hash"] == d["split_manifest_hash"]
    rows = _compare("", card["metrics"], r.metrics, tolerance)
    exact = r.predictions_sha256 == card["predictions"]["sha256"]
    cv_card = card.get("cross_validation")
    if cv_card and r.cv:
        rows += _compare("cv.", cv_card["metrics"], r.cv["metrics"], tolerance)
        exact = exact and r.cv["predictions_sha256"] == cv_card["predictions_sha256"]
    ok = all(row["ok"] for row in rows) and same_split
    return clean_numbers({"card": str(card_path), "data": str(src), "ok": ok, "exact": exact,
                          "same_split": same_split, "tolerance": tolerance, "device": r.environment["hardware"]
                          ["device"], "metrics": rows,
                          "training_images_per_s": r.training.get("images_per_s")})
