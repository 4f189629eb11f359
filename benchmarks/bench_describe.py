"""Metadata benchmark: describe + validate + FAIR check on a generated set shaped like ZooScanNet.

1.4 M whole-image labels over 93 classes (the ZooScanNet scale), no image files (checksums are
not part of this figure), plus the real Aquarium fixture read from disk with checksums. Figures
are printed, not asserted.

    python benchmarks/bench_describe.py [--images 1400000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from imagine.curate.model import Dataset
from imagine.publish.describe import describe
from imagine.publish.fair import fair_score
from imagine.publish.shacl import validate_dir

ROOT = Path(__file__).resolve().parents[1]
META = ROOT / "tests" / "fixtures" / "publish"


def zooscan_like(n: int, n_classes: int = 93, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_classes + 1)
    cls = rng.choice(n_classes, n, p=weights / weights.sum())
    w = rng.integers(40, 600, n)
    h = rng.integers(40, 600, n)
    ids = np.arange(n)
    split = np.array(["train", "val", "test"], dtype=object)[rng.choice(3, n, p=[0.8, 0.1, 0.1])]
    names = ["Copepoda", "Bacillariophyceae", "Appendicularia", "detritus", "bubbles"] + \
        [f"class_{i}" for i in range(5, n_classes)]
    return Dataset.from_columns(
        images={"id": ids, "file_name": [f"img/{i:07d}.jpg" for i in range(n)], "width": w, "height": h,
                "split": split.tolist()},
        annotations={"id": ids, "image_id": ids, "category_id": cls, "kind": ["label"] * n,
                     "bbox_x": np.zeros(n), "bbox_y": np.zeros(n), "bbox_w": w.astype(float),
                     "bbox_h": h.astype(float)},
        categories={"id": list(range(n_classes)), "name": names})


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    print(f"  {label:<42} {time.perf_counter() - t:8.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1_400_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generated ZooScanNet-like set: {args.images:,} images / labels, 93 classes")
        ds = timed("generate", lambda: zooscan_like(args.images))
        out = Path(tmp) / "zoo"
        res = timed("describe (facts, taxa, 7 files)", lambda: describe(None, META / "plankton-flowcam.yaml", out,
                                                                        dataset=ds))
        print(f"  annotations.csv: {(out / 'annotations.csv').stat().st_size / 1e6:.1f} MB; ok={res.ok}")
        v = timed("validate (schemas + SHACL + mlcroissant)", lambda: validate_dir(out))
        print(f"  valid={v.ok}")
        f = timed("fair", lambda: fair_score(out))
        print(f"  FAIR EVA-compatible {f.score:.2f} (cap {f.cap:.2f}), aquatic {f.aquatic_score:.2f}")
        print("real Aquarium fixture (638 images, read as YOLO, SHA-256 of every image):")
        aq = Path(tmp) / "aq"
        timed("describe", lambda: describe(ROOT / "tests" / "fixtures" / "aquarium", META / "aquarium.yaml", aq,
                                           fmt="yolo"))
        timed("validate", lambda: validate_dir(aq))


if __name__ == "__main__":
    main()
