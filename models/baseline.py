"""``baseline``: read a dataset, train and evaluate (:func:`imagine.models.train.run`), write the card and outputs.

The output folder (written atomically) holds ``card.json`` (schema ``benchmark-card``),
``card.md``, ``confusion.png`` (classification), ``split-manifest.json``, ``model.pt``,
``predictions.csv`` (evaluation split) and, with ``--cv K``, ``pred_probs.csv``: one row per
labelled image with ``image_id, file_name, label, label_name, fold`` and ``prob_<category id>``
columns in category-id order (the out-of-sample probabilities the label-issue audit reads).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from imagine.curate.formats import read_dataset
from imagine.curate.manifest import dataset_hash, file_sha256, split_manifest, with_checksums
from imagine.curate.model import Dataset
from imagine.kernel import InputError, RemoteError, UsageError, atomic_dir, atomic_write, dump_json, require

from .card import CARD_KIND, CARD_VERSION, clean_numbers, confusion_png, metric_block, render_markdown, validate_card
from .train import RunResult, TrainConfig, effective_splits, run

__all__ = ["baseline", "build_card", "dataset_root", "pred_probs_columns", "log_mlflow"]


def dataset_root(ds: Dataset, src: str | os.PathLike[str]) -> Path:
    """Folder the image file names are relative to: the reader's ``info['root']``, else SRC (or its folder)."""
    if ds.info.get("root"):
        return Path(ds.info["root"])
    p = Path(src)
    return p if p.is_dir() else p.parent


def pred_probs_columns(class_ids: list[int]) -> list[str]:
    return ["image_id", "file_name", "label", "label_name", "fold"] + [f"prob_{c}" for c in class_ids]


def _write_pred_probs(path: Path, r: RunResult) -> None:
    ex = r.examples
    assert r.oof_probs is not None and r.folds is not None
    with atomic_write(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(pred_probs_columns(ex.class_ids))
        for i in range(len(ex)):
            k = int(ex.labels[i])
            w.writerow([int(ex.image_ids[i]), ex.files[i], ex.class_ids[k], ex.class_names[k], int(r.folds[i])]
                       + [repr(float(p)) for p in r.oof_probs[i]])


def _write_predictions(path: Path, r: RunResult) -> None:
    ex = r.examples
    with atomic_write(path) as fh:
        w = csv.writer(fh, lineterminator="\n")
        if r.config.task == "classify":
            w.writerow(["image_id", "file_name", "label", "predicted"] + [f"prob_{c}" for c in ex.class_ids])
            for j, i in enumerate(r.eval_idx):
                p = r.predictions[j]
                w.writerow([int(ex.image_ids[i]), ex.files[i], ex.class_ids[int(ex.labels[i])],
                            ex.class_ids[int(np.argmax(p))]] + [repr(float(v)) for v in p])
        else:
            w.writerow(["image_id", "file_name", "category_id", "score", "x", "y", "w", "h"])
            files = {int(ex.image_ids[i]): ex.files[i] for i in r.eval_idx}
            for d in r.predictions:
                for b, s, c in zip(d["boxes"], d["scores"], d["labels"], strict=True):
                    w.writerow([d["image_id"], files[d["image_id"]], int(c), repr(float(s))]
                               + [repr(float(v)) for v in b])


def _limitations(r: RunResult, n_images: int) -> list[str]:
    out = [f"Small baseline trained from scratch for {r.training['steps']} optimiser steps at "
           f"{r.config.image_size} px; it shows what a standard model reaches on these splits, not the best "
           "achievable result."]
    if r.config.weights:
        out[0] = out[0].replace("from scratch", "from a local weights file")
    if r.split_origin == "group-aware-stratified":
        out.append("The dataset has no split: a seeded, stratified hold-out keeping each "
                   + "/".join(r.config.group_by) + " group on one side was used; class proportions follow only as "
                   "closely as whole groups allow.")
    if r.split_origin == "seeded-stratified":
        out.append("The dataset has no split: a seeded stratified hold-out was used, which is not group-aware, so "
                   "near-duplicate frames of one video or site may sit on both sides and inflate the scores.")
    n_eval = len(r.eval_idx)
    unused = len(r.examples) - len(r.train_idx) - n_eval
    if unused:
        out.append(f"{unused} examples in other splits (e.g. a validation split) were used neither for training "
                   f"nor for evaluation.")
    if n_eval < 200:
        out.append(f"Only {n_eval} evaluation examples: see the bootstrap intervals before comparing numbers.")
    small = [p["name"] for p in r.per_class if p.get("support", 0) < 10]
    if small:
        out.append("Classes with fewer than 10 evaluation examples (per-class figures are noisy): "
                   + ", ".join(small) + ".")
    if r.examples.skipped:
        out.append("Images left out: " + ", ".join(f"{k}: {v}" for k, v in r.examples.skipped.items()) + ".")
    if r.config.task == "detect" and r.config.tile > 1:
        out.append(f"Images were tiled {r.config.tile}×{r.config.tile}; metrics are per tile, not per image.")
    out.append("Bit-for-bit reproducible on CPU with the same seed, thread count and software versions; on a GPU "
               "only up to a tolerance.")
    del n_images
    return out


def _name_from_path(src: str) -> str:
    """A readable dataset name when the reader knows none: the folder name (with its parent when generic)."""
    p = Path(src).resolve()
    if p.is_file():
        p = p.parent
    return f"{p.parent.name}/{p.name}" if p.name.lower() in ("data", "images", "dataset", "train") else p.name


def build_card(r: RunResult, *, ds: Dataset, src: str, fmt: str, content_hash: str, manifest_hash: str,
               command: str, weights_sha: str | None, out: str = ".", model_file: str = "model.pt",
               total_time: float | None = None) -> dict[str, Any]:
    """Assemble the card of a run (JSON-ready, NaN → null)."""
    cfg = r.config
    ex = r.examples
    counts: dict[str, int] = {"train": len(r.train_idx), r.eval_split: len(r.eval_idx)}
    n_params = sum(int(np.prod(v.shape)) for k, v in (r.model_state or {}).items()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    info = ds.info
    family = (f"{cfg.arch}-style classifier" if cfg.task == "classify" else "CenterNet-style detector, resnet "
              "backbone")
    quoted_src = shlex.quote(src)
    card: dict[str, Any] = {
        "kind": CARD_KIND,
        "card_version": CARD_VERSION,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "task": cfg.task,
        "dataset": {
            "name": info.get("name") or _name_from_path(src),
            "version": None if info.get("version") is None else str(info.get("version")),
            "doi": info.get("doi"), "source": src, "format": fmt, "content_hash": content_hash,
            "split_manifest": "split-manifest.json", "split_manifest_hash": manifest_hash,
            "split_origin": r.split_origin, "evaluation_split": r.eval_split, "num_images": len(ds),
            "num_examples": len(ex), "split_counts": counts, "skipped": ex.skipped,
            "classes": [{"category_id": c, "name": n} for c, n in zip(ex.class_ids, ex.class_names, strict=True)],
        },
        "model": {"family": family, "arch": cfg.arch, "width": cfg.width, "depth": cfg.depth,
                  "parameters": n_params, "init": "weights" if cfg.weights else "scratch",
                  "weights_file": {"path": cfg.weights, "sha256": weights_sha} if cfg.weights and weights_sha
                  else None,
                  "file": model_file,
                  "normalisation": {"mean": r.norm[0] if r.norm else [0, 0, 0],
                                    "std": r.norm[1] if r.norm else [1, 1, 1]}},
        "hyperparameters": _config_dict(cfg),
        "seed": cfg.seed,
        "software": r.environment["software"],
        "hardware": r.environment["hardware"],
        "training": {k: r.training[k] for k in ("time_s", "images_per_s", "steps", "images_seen", "epoch_losses")}
        | ({"total_time_s": round(total_time, 3)} if total_time is not None else {}),
        "metrics": metric_block(r.metrics, r.intervals),
        "per_class": r.per_class,
        "confusion_matrix": {"labels": ex.class_names, "matrix": r.confusion, "plot": "confusion.png"}
        if r.confusion is not None else None,
        "predictions": {"file": "predictions.csv", "sha256": r.predictions_sha256},
        "cross_validation": None,
        "mlflow": None,
        "limitations": _limitations(r, len(ds)),
        "command": command,
        "reproduce_command": f"imagine-curate reproduce {shlex.quote(os.path.join(out, 'card.json'))} "
                             f"--data {quoted_src}",
    }
    if r.cv is not None:
        cv = r.cv
        card["cross_validation"] = {
            "k": cv["k"], "grouped_by": cv.get("grouped_by", []),
            "metrics": metric_block(cv["metrics"], cv["intervals"]), "per_class": cv["per_class"],
            "confusion_matrix": cv["confusion_matrix"], "predictions_sha256": cv["predictions_sha256"],
            "pred_probs": {"file": "pred_probs.csv", "format": "csv", "columns": pred_probs_columns(ex.class_ids)},
            "training": cv["training"]}
    return clean_numbers(card)  # type: ignore[no-any-return,unused-ignore]


def _config_dict(cfg: TrainConfig) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(cfg)
    return d


def _command(src: str, cfg: TrainConfig, fmt: str, out: str, mlflow: str | None) -> str:
    parts = ["imagine-curate", "baseline", shlex.quote(src), "--task", cfg.task, "--from", fmt, "--out",
             shlex.quote(out), "--epochs", str(cfg.epochs), "--seed", str(cfg.seed), "--arch", cfg.arch,
             "--width", str(cfg.width), "--depth", str(cfg.depth), "--image-size", str(cfg.image_size),
             "--batch-size", str(cfg.batch_size)]
    if cfg.cv:
        parts += ["--cv", str(cfg.cv)]
    if cfg.max_steps is not None:
        parts += ["--max-steps", str(cfg.max_steps)]
    defaults = TrainConfig.for_task(cfg.task)
    if cfg.lr != defaults.lr:
        parts += ["--lr", repr(cfg.lr)]
    if cfg.balance != defaults.balance:
        parts += ["--balance", cfg.balance]
    if cfg.tile != 1:
        parts += ["--tile", str(cfg.tile)]
    if cfg.weights:
        parts += ["--weights", shlex.quote(cfg.weights)]
    for g in cfg.group_by:
        parts += ["--group-by", shlex.quote(g)]
    if cfg.threads != 1:
        parts += ["--threads", str(cfg.threads)]
    if mlflow is not None:
        parts += ["--mlflow"] + ([shlex.quote(mlflow)] if mlflow else [])
    return " ".join(parts)


def log_mlflow(card: dict[str, Any], out: Path, uri: str | None) -> dict[str, str]:
    """Log a card's parameters, metrics and files to MLflow (a local file store under ``out`` by default)."""
    mlflow = require("mlflow", "models")
    if uri is None:
        # MLflow 3 keeps the file store only on request; a local folder is what offline users want.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    tracking = uri or (out / "mlruns").resolve().as_uri()
    try:
        return _log_mlflow(mlflow, card, out, tracking)
    except mlflow.exceptions.MlflowException as exc:
        raise RemoteError(f"MLflow logging failed (the card was written): {exc.message}", url=tracking) from None


def _log_mlflow(mlflow: Any, card: dict[str, Any], out: Path, tracking: str) -> dict[str, str]:
    mlflow.set_tracking_uri(tracking)
    exp = "imagine-baselines"
    mlflow.set_experiment(exp)
    name = f"{card['dataset'].get('name') or 'dataset'}-{card['task']}-{card['seed']}"
    with mlflow.start_run(run_name=name) as active:
        params = {f"hp.{k}": str(v) for k, v in card["hyperparameters"].items()}
        params.update({"dataset.content_hash": card["dataset"]["content_hash"],
                       "dataset.split_manifest_hash": card["dataset"]["split_manifest_hash"],
                       "model.parameters": str(card["model"]["parameters"])})
        mlflow.log_params(params)
        mets = {k: float(v["value"]) for k, v in card["metrics"].items() if v.get("value") is not None}
        if card.get("cross_validation"):
            mets.update({f"cv_{k}": float(v["value"]) for k, v in card["cross_validation"]["metrics"].items()
                         if v.get("value") is not None})
        mets["train_images_per_s"] = float(card["training"]["images_per_s"] or 0.0)
        mlflow.log_metrics(mets)
        for i, loss in enumerate(card["training"].get("epoch_losses", [])):
            mlflow.log_metric("train_loss", float(loss), step=i)
        for f in ("card.json", "card.md", "confusion.png", "split-manifest.json"):
            if (out / f).is_file():
                mlflow.log_artifact(str(out / f))
        run_id = active.info.run_id
    return {"tracking_uri": tracking, "run_id": run_id, "experiment": exp}


def baseline(src: str | os.PathLike[str], task: str, out: str | os.PathLike[str], *, fmt: str | None = None,
             cfg: TrainConfig | None = None, mlflow: str | None = None, device: str | None = None,
             command: str | None = None) -> dict[str, Any]:
    """Train and evaluate a baseline on SRC, write the card and outputs to OUT; return the card.

    ``mlflow``: None (no logging), ``""`` (local file store ``OUT/mlruns``) or a tracking URI.
    Everything that can be checked (format, task support, weights file) is checked before training.
    """
    torch = require("torch", "models")
    t_start = time.perf_counter()
    cfg = cfg or TrainConfig.for_task(task)
    if cfg.task != task:
        raise UsageError(f"the configuration is for task {cfg.task!r}, not {task!r}")
    cfg.validate()
    weights_sha = None
    if cfg.weights:
        if not Path(cfg.weights).is_file():
            raise InputError("weights file not found", file=cfg.weights)
        weights_sha = "sha256:" + file_sha256(cfg.weights)
    ds = read_dataset(src, fmt)
    fmt_name = str(ds.info.get("source_format") or fmt or "unknown")
    root = dataset_root(ds, src)
    # Fail on unsupported tasks before hashing or training anything.
    from .data import classification_examples, detection_examples

    classification_examples(ds) if task == "classify" else detection_examples(ds, tile=cfg.tile)
    ds = with_checksums(ds, root)
    content = dataset_hash(ds, root)
    r = run(ds, root, cfg, device=device)
    eff = effective_splits(ds, r.examples, r.train_idx, r.eval_idx, r.eval_split)
    manifest = split_manifest(eff, root)
    src_s = os.fspath(src)
    cmd = command or _command(src_s, cfg, fmt_name, os.fspath(out), mlflow)
    out_p = Path(out)
    with atomic_dir(out_p) as tmp:
        torch.save({"state_dict": r.model_state, "config": _config_dict(cfg),
                    "normalisation": {"mean": r.norm[0], "std": r.norm[1]} if r.norm else None,
                    "class_ids": r.examples.class_ids, "class_names": r.examples.class_names}, tmp / "model.pt")
        dump_json(manifest, tmp / "split-manifest.json")
        _write_predictions(tmp / "predictions.csv", r)
        if r.oof_probs is not None:
            _write_pred_probs(tmp / "pred_probs.csv", r)
        card = build_card(r, ds=ds, src=src_s, fmt=fmt_name, content_hash=content, manifest_hash=manifest["hash"],
                          command=cmd, weights_sha=weights_sha, out=os.fspath(out),
                          total_time=time.perf_counter() - t_start)
        if card["confusion_matrix"]:
            confusion_png(card["confusion_matrix"]["matrix"], card["confusion_matrix"]["labels"],
                          tmp / "confusion.png")
        validate_card(card, tmp / "card.json")
        dump_json(card, tmp / "card.json")
        with atomic_write(tmp / "card.md") as fh:
            fh.write(render_markdown(card))
    if mlflow is not None:
        card["mlflow"] = log_mlflow(card, out_p, mlflow or None)
        validate_card(card, out_p / "card.json")
        dump_json(card, out_p / "card.json")
        with atomic_write(out_p / "card.md") as fh:
            fh.write(render_markdown(card))
    return card


def sha256_text(s: str) -> str:
    return "sha256:" + hashlib.sha256(s.encode()).hexdigest()
