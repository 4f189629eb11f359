"""Training and evaluation of the baselines, seeded and bit-for-bit deterministic on CPU.

:func:`run` trains on a dataset's training split and evaluates on its test split (or valid split;
when the dataset has no split, on a seeded stratified hold-out), optionally adding K-fold
out-of-sample predictions (:func:`cross_validate`); :func:`baseline` wraps it with dataset
identity (content and split-manifest hashes), the benchmark card and the output folder.

Determinism: one seed drives every random draw (weights, sample order, augmentation) through
explicit ``torch.Generator`` objects; ``torch.use_deterministic_algorithms(True)`` and a fixed
thread count are set; images are decoded once in the main process (no loader workers, so there
is no worker seeding to get wrong). On a GPU the run is seeded too but not guaranteed bit-exact.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from imagine.curate.model import Dataset
from imagine.kernel import UsageError, progress, require

from .data import (
    Augment,
    Examples,
    augment_batch,
    balanced_order,
    channel_stats,
    class_weights,
    classification_examples,
    detection_examples,
    load_letterboxed,
    stratified_folds,
    stratified_split,
)
from .metrics import DetectionMatcher, bootstrap_classification, classification_metrics, coco_detection_metrics

__all__ = ["TrainConfig", "RunResult", "run", "cross_validate", "set_determinism", "pick_device", "TASKS"]

TASKS = ("classify", "detect")
EVAL_SPLITS = ("test", "valid", "val", "validation")
TRAIN_SPLITS = ("train", "training")


@dataclass
class TrainConfig:
    """Everything that determines a run; the card stores it and ``reproduce`` rebuilds it from there."""

    task: str = "classify"
    arch: str = "resnet"
    width: int = 16
    depth: int = 1
    image_size: int = 64
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    cv: int = 0
    balance: str = "weights"          # none | weights (loss) | sampler (class-balanced sampling)
    augment: dict[str, Any] = field(default_factory=lambda: Augment().to_dict())
    max_steps: int | None = None      # cap on optimiser steps per training run (tests, fixed budgets)
    test_fraction: float = 0.2        # hold-out size when the dataset has no split
    tile: int = 1                     # detection: split each image into tile × tile windows
    threads: int = 1                  # more only on an unshared machine: oversubscribed threads thrash
    bootstrap: int = 1000
    score_threshold: float = 0.01     # detection: lowest score kept
    weights: str | None = None        # local weights file to start from (else from scratch)
    group_by: list[str] = field(default_factory=list)  # keep these groups (video, site, ...) on one side

    @classmethod
    def for_task(cls, task: str, **overrides: Any) -> TrainConfig:
        """Defaults suited to the task (detection: 256 px letterbox, batch 8, fewer bootstrap resamples)."""
        if task not in TASKS:
            raise UsageError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        base: dict[str, Any] = {"task": task}
        if task == "detect":
            base.update(image_size=256, batch_size=8, lr=2e-3, bootstrap=200,
                        augment=Augment(rotate=0.0, scale=(0.75, 1.25)).to_dict())
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UsageError(f"unknown hyperparameter(s) in the card: {', '.join(sorted(unknown))}")
        return cls(**d)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.arch not in ("resnet", "mobilenet"):
            raise UsageError(f"unknown architecture {self.arch!r}; expected resnet or mobilenet")
        if self.task == "detect" and self.arch != "resnet":
            raise UsageError("the detector uses the resnet backbone; drop --arch or use --arch resnet")
        if self.task == "detect" and self.cv:
            raise UsageError("--cv (out-of-sample class probabilities) is for --task classify")
        if self.cv == 1 or self.cv < 0:
            raise UsageError(f"--cv needs at least 2 folds, not {self.cv}")
        if self.balance not in ("none", "weights", "sampler"):
            raise UsageError(f"balance must be none, weights or sampler, not {self.balance!r}")
        if self.image_size < 16 or self.image_size % 32:
            raise UsageError(f"image size must be a multiple of 32 (≥ 32), not {self.image_size}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UsageError("epochs and batch size must be at least 1")
        if self.threads < 1:
            raise UsageError(f"threads must be at least 1, not {self.threads}")


@dataclass
class RunResult:
    """What a run produced: metrics, predictions and how training went."""

    config: TrainConfig
    examples: Examples
    train_idx: np.ndarray
    eval_idx: np.ndarray
    eval_split: str
    split_origin: str
    metrics: dict[str, Any]
    intervals: dict[str, tuple[float, float]]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]] | None
    predictions: Any                  # probs (N_eval, K) or list of detection dicts
    predictions_sha256: str
    training: dict[str, Any]
    environment: dict[str, Any]
    model_state: dict[str, Any] | None = None
    norm: tuple[list[float], list[float]] | None = None
    cv: dict[str, Any] | None = None
    oof_probs: np.ndarray | None = None
    folds: np.ndarray | None = None


def pick_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    torch = require("torch", "models")
    return "cuda" if torch.cuda.is_available() else "cpu"


def set_determinism(seed: int, threads: int) -> None:
    """Seed everything and ask PyTorch for deterministic kernels with a fixed thread count."""
    torch = require("torch", "models")
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def environment(device: str, threads: int) -> dict[str, Any]:
    """Software and hardware the run used (recorded in the card)."""
    import torch

    try:
        from importlib.metadata import version

        imagine_version = version("imagine-aquatic")
    except Exception:  # pragma: no cover - not installed
        imagine_version = "unknown"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "software": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "imagine": imagine_version, "platform": platform.platform()},
        "hardware": {"device": device, "cpu": cpu, "cpu_count": os.cpu_count(), "threads": threads,
                     "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
                     "load_average_at_start": None if load is None else round(load, 2)},
    }


# --------------------------------------------------------------------------------------------
# Splits


def _strata(ex: Examples, task: str) -> np.ndarray:
    if task == "classify":
        return ex.labels
    # detection: stratify by each image's most frequent class (−1 for images without boxes)
    return np.asarray([int(np.bincount(b).argmax()) if len(b) else -1 for b in ex.box_labels], dtype=np.int64)


def assign_split(ex: Examples, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(train rows, evaluation rows, evaluation split name, origin) — the dataset's splits when it has them."""
    names = [(s or "").lower() for s in ex.splits]
    present = set(names)
    eval_name = next((s for s in EVAL_SPLITS if s in present), None)
    train_rows = np.flatnonzero([n in TRAIN_SPLITS for n in names])
    if eval_name is not None and len(train_rows):
        return train_rows, np.flatnonzero([n == eval_name for n in names]), eval_name, "dataset"
    hold = stratified_split(_strata(ex, cfg.task), cfg.test_fraction, cfg.seed)
    return np.flatnonzero(~hold), np.flatnonzero(hold), "test", "seeded-stratified"


def group_split(ds: Dataset, ratios: list[float], names: list[str], cfg: TrainConfig) -> Dataset:
    """Seeded, stratified, group-aware split (``imagine.curate.split``): whole groups on one side."""
    from imagine.curate.split import split as curate_split

    return curate_split(ds, ratios, names=names, group_by=cfg.group_by, seed=cfg.seed).dataset


def effective_splits(ds: Dataset, ex: Examples, train_idx: np.ndarray, eval_idx: np.ndarray,
                     eval_split: str) -> Dataset:
    """The dataset with the split column the run actually used (for the split manifest)."""
    import pyarrow as pa

    by_file: dict[str, str] = {}
    for i in train_idx:
        by_file[ex.files[int(i)]] = "train"
    for i in eval_idx:
        by_file[ex.files[int(i)]] = eval_split
    files = ds.images.column("file_name").to_pylist()
    old = ds.images.column("split").to_pylist()
    new = [by_file.get(f, o) for f, o in zip(files, old, strict=True)]
    idx = ds.images.schema.get_field_index("split")
    return ds.with_tables(images=ds.images.set_column(idx, "split", pa.array(new, pa.string())))


# --------------------------------------------------------------------------------------------
# Classification


def _normalise(x: Any, mean: list[float], std: list[float]) -> Any:
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - m) / s


def _schedule(step: int, total: int, lr: float) -> float:
    """Linear warm-up over the first 5 % of steps, then cosine decay to zero."""
    warm = max(1, total // 20)
    if step < warm:
        return lr * (step + 1) / warm
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _fit_log(step: int, seen: int, t0: float, losses: list[float], loaded: Any) -> dict[str, Any]:
    """The training log both fit functions return: steps, images seen, time since ``t0`` and epoch losses."""
    elapsed = time.perf_counter() - t0
    return {"steps": step, "images_seen": seen, "time_s": round(elapsed, 3),
            "images_per_s": round(seen / elapsed, 2) if elapsed > 0 else None,
            "epoch_losses": [round(v, 6) for v in losses], "weights_loaded": loaded}


def _order(labels: np.ndarray, n_classes: int, cfg: TrainConfig, gen: Any) -> Any:
    import torch

    if cfg.balance == "sampler" and len(labels):
        return balanced_order(labels, n_classes, gen)
    return torch.randperm(len(labels), generator=gen)


def fit_classifier(images: Any, labels: np.ndarray, n_classes: int, cfg: TrainConfig, device: str,
                   desc: str = "training") -> tuple[Any, tuple[list[float], list[float]], dict[str, Any]]:
    """Train a classifier from scratch (or ``cfg.weights``); returns the model, normalisation and a log."""
    import torch
    import torch.nn.functional as F

    from .nets import build_classifier, load_weights

    set_determinism(cfg.seed, cfg.threads)
    model = build_classifier(cfg.arch, n_classes, cfg.width, cfg.depth)
    loaded = load_weights(model, cfg.weights) if cfg.weights else None
    model.to(device)
    mean, std = channel_stats(images)
    aug = Augment.from_dict(cfg.augment)
    gen = torch.Generator().manual_seed(cfg.seed)
    cw = torch.tensor(class_weights(labels, n_classes), dtype=torch.float32, device=device) \
        if cfg.balance == "weights" else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    steps_per_epoch = math.ceil(len(labels) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps,
                                                                           steps_per_epoch * cfg.epochs)
    step, seen, losses = 0, 0, []
    t0 = time.perf_counter()
    model.train()
    for _epoch in progress(range(cfg.epochs), total=cfg.epochs, desc=desc, unit="epoch"):
        if step >= total:
            break
        order = _order(labels, n_classes, cfg, gen)
        ep_loss, ep_n = 0.0, 0
        for s in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[s:s + cfg.batch_size]
            if len(idx) < 2 and len(order) > 1:   # BatchNorm needs two samples
                continue
            x = images[idx].to(torch.float32) / 255.0
            x, _, _ = augment_batch(x, None, aug, gen)
            x = _normalise(x.to(device), mean, std)
            y = y_all[idx].to(device)
            for g in opt.param_groups:
                g["lr"] = _schedule(step, total, cfg.lr)
            loss = F.cross_entropy(model(x), y, weight=cw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(idx)
            ep_loss += float(loss.detach()) * len(idx)
            ep_n += len(idx)
        if ep_n:
            losses.append(ep_loss / ep_n)
    return model, (mean, std), _fit_log(step, seen, t0, losses, loaded)


def predict_classifier(model: Any, images: Any, norm: tuple[list[float], list[float]], device: str,
                       batch: int = 256) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` as float64, in class-index (category-id) order."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(images), batch):
            x = _normalise(images[s:s + batch].to(torch.float32).to(device) / 255.0, *norm)
            out.append(torch.softmax(model(x), dim=1).cpu().to(torch.float64).numpy())
    k = int(model.head.out_features)
    return np.concatenate(out) if out else np.zeros((0, k))


# --------------------------------------------------------------------------------------------
# Detection


def _gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius within which a shifted box still overlaps the true one by ``min_overlap``."""
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1 ** 2 - 4 * c1, 0))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(max(b2 ** 2 - 16 * c2, 0))) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(max(b3 ** 2 - 4 * a3 * c3, 0))) / 2
    return min(r1, r2, r3)


def centernet_targets(boxes: list[np.ndarray], labels: list[np.ndarray], n_classes: int, size: int
                      ) -> dict[str, np.ndarray]:
    """Heat maps (Gaussian peaks at box centres), log sizes, offsets and the centre mask at stride 4."""
    stride = 4
    hh = size // stride
    b = len(boxes)
    heat = np.zeros((b, n_classes, hh, hh), dtype=np.float32)
    wh = np.zeros((b, 2, hh, hh), dtype=np.float32)
    off = np.zeros((b, 2, hh, hh), dtype=np.float32)
    mask = np.zeros((b, hh, hh), dtype=np.float32)
    yy, xx = np.mgrid[0:hh, 0:hh]
    for i, (bx, lb) in enumerate(zip(boxes, labels, strict=True)):
        for (x1, y1, x2, y2), c in zip(bx, lb, strict=True):
            w, h = (x2 - x1) / stride, (y2 - y1) / stride
            if w <= 0 or h <= 0:
                continue
            cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
            ix, iy = min(int(cx), hh - 1), min(int(cy), hh - 1)
            r = max(0, int(_gaussian_radius(h, w)))
            sigma = (2 * r + 1) / 6
            g = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma * sigma)).astype(np.float32)
            heat[i, int(c)] = np.maximum(heat[i, int(c)], g)
            wh[i, :, iy, ix] = (math.log(w), math.log(h))
            off[i, :, iy, ix] = (cx - ix, cy - iy)
            mask[i, iy, ix] = 1.0
    return {"heat": heat, "size": wh, "offset": off, "mask": mask}


def centernet_loss(out: dict[str, Any], tgt: dict[str, Any]) -> Any:
    """CenterNet's penalty-reduced focal loss on heat maps plus L1 on sizes and offsets at the centres."""
    import torch

    p = out["heat"].sigmoid().clamp(1e-4, 1 - 1e-4)
    gt = tgt["heat"]
    pos = gt.eq(1).to(p.dtype)
    neg = 1 - pos
    pos_loss = (torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - p) * p ** 2 * (1 - gt) ** 4 * neg).sum()
    n = pos.sum().clamp(min=1)
    focal = -(pos_loss + neg_loss) / n
    m = tgt["mask"][:, None]
    m_n = tgt["mask"].sum().clamp(min=1)
    size = (torch.abs(out["size"] - tgt["size"]) * m).sum() / m_n
    offset = (torch.abs(out["offset"] - tgt["offset"]) * m).sum() / m_n
    return focal + 0.5 * size + offset


def _to_frame(boxes: np.ndarray, tf: np.ndarray) -> np.ndarray:
    s, px, py = tf[0], tf[1], tf[2]
    return boxes * s + np.array([px, py, px, py])


def fit_detector(images: Any, tf: np.ndarray, ex: Examples, n_classes: int, cfg: TrainConfig, device: str
                 ) -> tuple[Any, tuple[list[float], list[float]], dict[str, Any]]:
    """Train the CenterNet-style detector; boxes are moved into the letterbox frame, then augmented with the image."""
    import torch

    from .nets import build_detector, load_weights

    set_determinism(cfg.seed, cfg.threads)
    model = build_detector(n_classes, cfg.width, cfg.depth)
    loaded = load_weights(model, cfg.weights) if cfg.weights else None
    model.to(device)
    mean, std = channel_stats(images)
    aug = Augment.from_dict(cfg.augment)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    frame_boxes = [_to_frame(b, tf[i]) for i, b in enumerate(ex.boxes)]
    n = len(ex)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, steps_per_epoch * cfg.epochs)
    step, seen, losses = 0, 0, []
    t0 = time.perf_counter()
    model.train()
    for _epoch in progress(range(cfg.epochs), total=cfg.epochs, desc="training detector", unit="epoch"):
        if step >= total:
            break
        order = torch.randperm(n, generator=gen)
        ep_loss, ep_n = 0.0, 0
        for s in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = order[s:s + cfg.batch_size]
            if len(idx) < 2 and n > 1:
                continue
            x = images[idx].to(torch.float32) / 255.0
            bxs = [frame_boxes[int(i)] for i in idx]
            lbs = [ex.box_labels[int(i)] for i in idx]
            x, bxs2, kept = augment_batch(x, bxs, aug, gen)
            assert bxs2 is not None and kept is not None
            lbs = [lb[k] for lb, k in zip(lbs, kept, strict=True)]
            tgt = {k: torch.from_numpy(v).to(device)
                   for k, v in centernet_targets(bxs2, lbs, n_classes, cfg.image_size).items()}
            x = _normalise(x.to(device), mean, std)
            for g in opt.param_groups:
                g["lr"] = _schedule(step, total, cfg.lr)
            loss = centernet_loss(model(x), tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            step += 1
            seen += len(idx)
            ep_loss += float(loss.detach()) * len(idx)
            ep_n += len(idx)
        if ep_n:
            losses.append(ep_loss / ep_n)
    return model, (mean, std), _fit_log(step, seen, t0, losses, loaded)


def predict_detector(model: Any, images: Any, tf: np.ndarray, ex: Examples, norm: tuple[list[float], list[float]],
                     device: str, score_threshold: float, batch: int = 16) -> list[dict[str, Any]]:
    """Detections per example in source (or tile) pixels, ``x, y, w, h`` boxes with category ids."""
    import torch

    from .nets import decode_centernet

    model.eval()
    out: list[dict[str, Any]] = []
    cat = np.asarray(ex.class_ids, dtype=np.int64)
    with torch.no_grad():
        for s in range(0, len(images), batch):
            x = _normalise(images[s:s + batch].to(torch.float32).to(device) / 255.0, *norm)
            for j, (b, sc, c) in enumerate(decode_centernet(model(x), threshold=score_threshold)):
                i = s + j
                sc_, px, py = tf[i, 0], tf[i, 1], tf[i, 2]
                bb = b.cpu().to(torch.float64).numpy()
                bb = (bb - np.array([px, py, px, py])) / sc_
                bb[:, 2:] -= bb[:, :2]
                out.append({"image_id": int(ex.image_ids[i]), "boxes": bb,
                            "scores": sc.cpu().to(torch.float64).numpy(), "labels": cat[c.cpu().numpy()]})
    return out


# --------------------------------------------------------------------------------------------
# Runs


def _sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return "sha256:" + h.hexdigest()


def _classification_eval(y: np.ndarray, probs: np.ndarray, ex: Examples, cfg: TrainConfig
                         ) -> tuple[dict[str, Any], dict[str, tuple[float, float]], list[dict[str, Any]],
                                    list[list[int]]]:
    m = classification_metrics(y, probs, ex.class_names)
    per_class = [{**r, "category_id": ex.class_ids[r["index"]]} for r in m.pop("per_class")]
    cm = m.pop("confusion_matrix")
    ci = bootstrap_classification(y, probs, resamples=cfg.bootstrap, seed=cfg.seed) if cfg.bootstrap else {}
    return m, ci, per_class, cm


def run(ds: Dataset, root: str | os.PathLike[str], cfg: TrainConfig, *, device: str | None = None,
        on_stage: Callable[[str], None] | None = None) -> RunResult:
    """Train on the training split, evaluate on the test split, and (``cfg.cv``) cross-validate; see module doc."""
    require("torch", "models")
    import torch

    cfg.validate()
    device = device or pick_device()
    set_determinism(cfg.seed, cfg.threads)
    env = environment(device, cfg.threads)
    say = on_stage or (lambda _s: None)
    ex = classification_examples(ds) if cfg.task == "classify" else detection_examples(ds, tile=cfg.tile)
    if len(ex) < 4:
        raise UsageError(f"too few usable images ({len(ex)}) to train and evaluate a baseline")
    train_idx, eval_idx, eval_split, origin = assign_split(ex, cfg)
    if origin == "seeded-stratified" and cfg.group_by:
        ds = group_split(ds, [1 - cfg.test_fraction, cfg.test_fraction], ["train", "test"], cfg)
        ex = classification_examples(ds) if cfg.task == "classify" else detection_examples(ds, tile=cfg.tile)
        train_idx, eval_idx, eval_split, origin = assign_split(ex, cfg)
        origin = "group-aware-stratified"
    if not len(eval_idx) or len(train_idx) < 2:
        raise UsageError(f"the split leaves {len(train_idx)} training and {len(eval_idx)} evaluation images")
    say("loading images")
    images, tf = load_letterboxed(root, ex, cfg.image_size)
    n_classes = len(ex.class_ids)
    train_t = torch.as_tensor(train_idx)
    eval_t = torch.as_tensor(eval_idx)
    result: RunResult
    if cfg.task == "classify":
        say("training")
        model, norm, log = fit_classifier(images[train_t], ex.labels[train_idx], n_classes, cfg, device)
        probs = predict_classifier(model, images[eval_t], norm, device)
        y = ex.labels[eval_idx]
        metrics, ci, per_class, cm = _classification_eval(y, probs, ex, cfg)
        result = RunResult(cfg, ex, train_idx, eval_idx, eval_split, origin, metrics, ci, per_class, cm, probs,
                           _sha(probs), log, env, {k: v.cpu() for k, v in model.state_dict().items()}, norm)
        if cfg.cv:
            say(f"{cfg.cv}-fold cross-validation")
            folds = None
            if cfg.group_by:
                fold_ds = group_split(ds, [1 / cfg.cv] * cfg.cv, [str(f) for f in range(cfg.cv)], cfg)
                by_file = dict(zip(fold_ds.images.column("file_name").to_pylist(),
                                   fold_ds.images.column("split").to_pylist(), strict=True))
                folds = np.asarray([int(by_file[f]) for f in ex.files], dtype=np.int64)
            result.cv, result.oof_probs, result.folds = cross_validate(images, ex, cfg, device, folds)
    else:
        say("training")
        sub = ex.subset(train_idx)
        model, norm, log = fit_detector(images[train_t], tf[train_idx], sub, n_classes, cfg, device)
        ev = ex.subset(eval_idx)
        dets = predict_detector(model, images[eval_t], tf[eval_idx], ev, norm, device, cfg.score_threshold)
        gt = []
        for i in range(len(ev)):
            b = ev.boxes[i].copy()
            b[:, 2:] -= b[:, :2]
            gt.append({"image_id": int(ev.image_ids[i]), "boxes": b,
                       "labels": np.asarray(ex.class_ids, dtype=np.int64)[ev.box_labels[i]]})
        coco = coco_detection_metrics(gt, dets, ex.class_ids)
        matcher = DetectionMatcher(gt, dets, ex.class_ids)
        ci = matcher.bootstrap(resamples=cfg.bootstrap, seed=cfg.seed) if cfg.bootstrap else {}
        names = dict(zip(ex.class_ids, ex.class_names, strict=True))
        n_gt = {c: 0 for c in ex.class_ids}
        for g in gt:
            for c in g["labels"]:
                n_gt[int(c)] += 1
        per_class = [{**r, "name": names[r["category_id"]], "support": n_gt[r["category_id"]]}
                     for r in coco["per_class"]]
        metrics = {"map50": coco["map50"], "map50_95": coco["map50_95"], "map75": coco["map75"],
                   "detections": int(sum(len(d["scores"]) for d in dets))}
        arrays = [a for d in dets for a in (d["boxes"], d["scores"], d["labels"])]
        result = RunResult(cfg, ex, train_idx, eval_idx, eval_split, origin, metrics, ci, per_class, None, dets,
                           _sha(*arrays) if arrays else _sha(np.zeros(0)), log, env,
                           {k: v.cpu() for k, v in model.state_dict().items()}, norm)
    return result


def cross_validate(images: Any, ex: Examples, cfg: TrainConfig, device: str, folds: np.ndarray | None = None
                   ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Stratified K-fold over every labelled image: out-of-sample probabilities for each, and their metrics.

    ``folds`` (fold number per example) overrides the seeded stratified assignment, e.g. group-aware folds.
    """
    import torch

    k = cfg.cv
    folds = stratified_folds(ex.labels, k, cfg.seed) if folds is None else folds
    n_classes = len(ex.class_ids)
    oof = np.zeros((len(ex), n_classes), dtype=np.float64)
    logs = []
    for f in range(k):
        tr = np.flatnonzero(folds != f)
        te = np.flatnonzero(folds == f)
        model, norm, log = fit_classifier(images[torch.as_tensor(tr)], ex.labels[tr], n_classes, cfg, device,
                                          desc=f"fold {f + 1}/{k}")
        oof[te] = predict_classifier(model, images[torch.as_tensor(te)], norm, device)
        logs.append(log)
    m, ci, per_class, cm = _classification_eval(ex.labels, oof, ex, cfg)
    seen = sum(lg["images_seen"] for lg in logs)
    t = sum(lg["time_s"] for lg in logs)
    return ({"k": k, "grouped_by": list(cfg.group_by), "metrics": m,
             "intervals": {a: list(b) for a, b in ci.items()}, "per_class": per_class,
             "confusion_matrix": cm, "predictions_sha256": _sha(oof),
             "training": {"time_s": round(t, 3), "images_seen": seen,
                          "images_per_s": round(seen / t, 2) if t > 0 else None}}, oof, folds)


def result_dict(r: RunResult) -> dict[str, Any]:
    """The parts of a run the card keeps (JSON-ready)."""
    return {"config": asdict(r.config), "metrics": r.metrics,
            "intervals": {k: list(v) for k, v in r.intervals.items()}}
