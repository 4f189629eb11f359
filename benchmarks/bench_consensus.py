"""Consensus benchmark on a generated set shaped like the DeepSeaSpy one (target: <= 1 s).

3,979 images, 253,323 boxes, 15 classes (one dominant, as in the real set), clustered redundant
boxes: each animal boxed by many volunteers with jitter, some volunteers picking another class,
plus lone boxes no one else drew. Figures are printed, not asserted.

    python benchmarks/bench_consensus.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from imagine.curate.consensus import MERGES, consensus
from imagine.curate.model import Dataset

N_IMAGES, N_BOXES, N_CLASSES = 3_979, 253_323, 15


def deep_sea_like(seed: int = 0) -> tuple[Dataset, int]:
    """The generated set and its true number of animals."""
    rng = np.random.default_rng(seed)
    n_lone = N_BOXES // 20
    n_obj = (N_BOXES - n_lone) // 16
    weights = np.r_[40.0, np.linspace(8, 1, N_CLASSES - 1)]  # one dominant species
    o_cls = rng.choice(N_CLASSES, n_obj, p=weights / weights.sum())
    o_img = rng.integers(0, N_IMAGES, n_obj)
    o_w, o_h = rng.uniform(15, 150, n_obj), rng.uniform(15, 150, n_obj)
    o_x, o_y = rng.uniform(0, 1920 - o_w), rng.uniform(0, 1080 - o_h)
    votes = rng.poisson(15, n_obj) + 1
    member = np.repeat(np.arange(n_obj), votes)[: N_BOXES - n_lone]
    member = np.r_[member, rng.integers(0, n_obj, N_BOXES - n_lone - len(member))]
    m = len(member)
    jit = rng.normal(0, 0.06, (m, 4))
    x = o_x[member] + jit[:, 0] * o_w[member]
    y = o_y[member] + jit[:, 1] * o_h[member]
    w = o_w[member] * (1 + jit[:, 2])
    h = o_h[member] * (1 + jit[:, 3])
    cls = np.where(rng.random(m) < 0.85, o_cls[member], rng.integers(0, N_CLASSES, m))
    l_img = rng.integers(0, N_IMAGES, n_lone)
    l_w, l_h = rng.uniform(15, 150, n_lone), rng.uniform(15, 150, n_lone)
    l_x, l_y = rng.uniform(0, 1920 - l_w), rng.uniform(0, 1080 - l_h)
    img = np.r_[o_img[member], l_img]
    ds = Dataset.from_columns(
        images={"id": np.arange(N_IMAGES), "file_name": [f"deepsea/{i:05d}.jpg" for i in range(N_IMAGES)],
                "width": np.full(N_IMAGES, 1920), "height": np.full(N_IMAGES, 1080)},
        annotations={"id": np.arange(N_BOXES), "image_id": img,
                     "category_id": np.r_[cls, rng.integers(0, N_CLASSES, n_lone)], "kind": ["box"] * N_BOXES,
                     "bbox_x": np.r_[x, l_x], "bbox_y": np.r_[y, l_y], "bbox_w": np.r_[w, l_w],
                     "bbox_h": np.r_[h, l_h],
                     "annotator": [f"volunteer{i % 700}" for i in range(N_BOXES)]},
        categories={"id": np.arange(N_CLASSES), "name": [f"taxon{i}" for i in range(N_CLASSES)]})
    return ds, n_obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ds, n_obj = deep_sea_like()
    print(f"generated: {len(ds):,} images, {ds.num_annotations:,} boxes, {N_CLASSES} classes, {n_obj:,} animals")
    consensus(ds)  # warm-up
    for merge in MERGES:
        times, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            res = consensus(ds, iou=0.6, min_iou=0.4, merge=merge)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        s = res.report()["summary"]
        print(f"merge={merge:<12} wall best {min(times):.3f} s, median {float(np.median(times)):.3f} s; "
              f"CPU best {min(cpu):.3f} s (target <= 1 s); "
              f"{s['boxes_before']:,} boxes -> {s['kept_step1']:,} after step 1 -> {s['objects']:,} objects")
    print("load average (1, 5, 15 min):", os.getloadavg(), "on", os.cpu_count(), "cores")


if __name__ == "__main__":
    main()
