"""Benchmark: the FishCam classification baseline (5-fold CV) and an Aquarium detection baseline.

Run from anywhere: ``/work/venv/bin/python benchmarks/bench_baseline.py [--only fishcam|aquarium]``.
Prints wall times, training throughput (images/s) and the headline metrics, and saves each card
(JSON, Markdown, confusion plot, split manifest, predictions, pred_probs) under
``benchmarks/results/<name>/`` (the model weights are left out to keep the repository small).
Target: the FishCam baseline with 5-fold cross-validated predictions in ≤ 10 min on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {os.cpu_count()} cores"


def fishcam() -> None:
    from imagine.models.baseline import baseline
    from imagine.models.train import TrainConfig

    out = Path("benchmarks/results/fishcam-classify")
    cfg = TrainConfig.for_task("classify", arch="resnet", width=16, depth=1, image_size=64, epochs=8,
                               batch_size=32, lr=3e-3, cv=5, seed=0, threads=1,
                               group_by=["video"])
    print(f"FishCam classification, hold-out and 5-fold CV grouped by video: start ({_load()})", flush=True)
    t0 = time.perf_counter()
    card = baseline("tests/fixtures/fishcam/data", "classify", out, fmt="imagefolder", cfg=cfg,
                    command="python benchmarks/bench_baseline.py --only fishcam")
    wall = time.perf_counter() - t0
    (out / "model.pt").unlink(missing_ok=True)
    m, cv = card["metrics"], card["cross_validation"]
    print(f"  wall time {wall:.1f} s (target ≤ 600 s): {'OK' if wall <= 600 else 'OVER'}  ({_load()})")
    print(f"  training throughput: {card['training']['images_per_s']} images/s (held-out model), "
          f"{cv['training']['images_per_s']} images/s over the {cv['k']} folds")
    for name in ("accuracy", "macro_f1", "roc_auc_ovr_macro", "ece", "nll"):
        ci = m[name]["ci95"]
        print(f"  test {name}: {m[name]['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    for name in ("accuracy", "macro_f1"):
        print(f"  5-fold out-of-sample {name}: {cv['metrics'][name]['value']:.4f}")
    print(f"  card: {out / 'card.json'}; pred_probs: {out / 'pred_probs.csv'}", flush=True)


def aquarium(epochs: int) -> None:
    from imagine.models.baseline import baseline
    from imagine.models.train import TrainConfig

    out = Path("benchmarks/results/aquarium-detect")
    cfg = TrainConfig.for_task("detect", width=16, depth=1, image_size=256, epochs=epochs, batch_size=8, seed=0,
                               threads=1)
    print(f"Aquarium detection, fixed budget of {epochs} epochs at 256 px: start ({_load()})", flush=True)
    t0 = time.perf_counter()
    card = baseline("tests/fixtures/aquarium", "detect", out, fmt="yolo", cfg=cfg,
                    command=f"python benchmarks/bench_baseline.py --only aquarium --epochs {epochs}")
    wall = time.perf_counter() - t0
    (out / "model.pt").unlink(missing_ok=True)
    m = card["metrics"]
    print(f"  wall time {wall:.1f} s ({_load()})")
    print(f"  training throughput: {card['training']['images_per_s']} images/s")
    for name in ("map50", "map50_95"):
        ci = m[name]["ci95"]
        print(f"  {card['dataset']['evaluation_split']} {name}: {m[name]['value']:.4f}"
              + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
    for r in card["per_class"]:
        print(f"    {r['name']:<10} AP@50 {r['ap50'] if r['ap50'] is None else round(r['ap50'], 4)}  "
              f"boxes {r['support']}")
    print(f"  card: {out / 'card.json'}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=["fishcam", "aquarium"], default=None)
    ap.add_argument("--epochs", type=int, default=8, help="Aquarium detection budget in epochs.")
    args = ap.parse_args()
    os.chdir(REPO)
    if args.only in (None, "fishcam"):
        fishcam()
    if args.only in (None, "aquarium"):
        aquarium(args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
