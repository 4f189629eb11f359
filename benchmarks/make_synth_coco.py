"""Generate a synthetic COCO instances file like the peers' benchmark (reference formats.md §4.2).

100 000 images in four sizes (640×480 … 4000×3000), 1 000 000 boxes with two-decimal float
coordinates inside their image, 20 classes with ids 1..20, about 1 % ``iscrowd=1``, empty
``segmentation``; a handful of images get no box (the box count per image is drawn at random).
No image files are written: the conversions under test only need the annotations.

    python benchmarks/make_synth_coco.py OUT.json [--images N] [--boxes M] [--seed S]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import orjson

SIZES = np.array([[640, 480], [1280, 720], [1920, 1080], [4000, 3000]])


def make(n_images: int, n_boxes: int, seed: int = 0) -> dict[str, object]:
    """The COCO document as a dict (boxes drawn with NumPy, rounded to two decimals)."""
    rng = np.random.default_rng(seed)
    size = SIZES[rng.integers(0, len(SIZES), n_images)]
    # Boxes per image: multinomial over images, so a few images (≈ e^-10 of them) get none.
    per_image = rng.multinomial(n_boxes, np.full(n_images, 1 / n_images))
    img_of = np.repeat(np.arange(n_images), per_image)
    W = size[img_of, 0].astype(np.float64)
    H = size[img_of, 1].astype(np.float64)
    w = np.round(rng.uniform(0.02, 0.3, n_boxes) * W, 2)
    h = np.round(rng.uniform(0.02, 0.3, n_boxes) * H, 2)
    x = np.round(rng.uniform(0, 1, n_boxes) * (W - w), 2)
    y = np.round(rng.uniform(0, 1, n_boxes) * (H - h), 2)
    cat = rng.integers(1, 21, n_boxes)
    crowd = (rng.uniform(0, 1, n_boxes) < 0.01).astype(int)
    images = [{"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": int(s[0]), "height": int(s[1])}
              for i, s in enumerate(size.tolist())]
    anns = [{"id": k + 1, "image_id": int(im) + 1, "category_id": c, "bbox": [bx, by, bw, bh],
             "area": round(bw * bh, 4), "iscrowd": cr, "segmentation": []}
            for k, (im, c, bx, by, bw, bh, cr) in enumerate(zip(img_of.tolist(), cat.tolist(), x.tolist(), y.tolist(),
                                                               w.tolist(), h.tolist(), crowd.tolist(), strict=True))]
    cats = [{"id": i, "name": f"class_{i:02d}", "supercategory": "synthetic"} for i in range(1, 21)]
    return {"info": {"description": "synthetic COCO for imagine's conversion benchmark", "year": 2026},
            "licenses": [], "images": images, "annotations": anns, "categories": cats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--boxes", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    doc = make(args.images, args.boxes, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    tmp.replace(args.out)
    n_empty = args.images - len({a["image_id"] for a in doc["annotations"]})  # type: ignore[attr-defined]
    print(f"wrote {args.out}: {args.images} images ({n_empty} without boxes), {args.boxes} boxes, "
          f"{args.out.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
