"""``imagine-curate baseline`` and ``imagine-curate reproduce``: thin click adapters over the library.

Loaded by ``imagine-curate`` through the ``imagine.curate.commands`` entry point. Torch is only
imported when a command runs, so the CLI still starts (and says which extra to install) without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from imagine.curate.cli import emit, from_option, handle_errors, json_option
from imagine.kernel import EXIT_FINDINGS, EXIT_OK, require

__all__ = ["COMMANDS", "baseline", "reproduce"]


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--task", type=click.Choice(["classify", "detect"]), required=True, help="What to train.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (card, model, predictions).")
@from_option
@click.option("--cv", type=int, default=0, show_default=True,
              help="Also write K-fold out-of-sample class probabilities (pred_probs.csv) for the label audit.")
@click.option("--epochs", type=int, default=None, help="Training epochs [10].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--arch", type=click.Choice(["resnet", "mobilenet"]), default="resnet", show_default=True)
@click.option("--width", type=int, default=None, help="Base channel width [16].")
@click.option("--depth", type=int, default=None, help="Blocks per stage [1].")
@click.option("--image-size", type=int, default=None, help="Input size in px, multiple of 32 [64; detect 256].")
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None, help="Peak learning rate (AdamW, cosine schedule).")
@click.option("--max-steps", type=int, default=None, help="Stop each training run after this many steps.")
@click.option("--balance", type=click.Choice(["none", "weights", "sampler"]), default=None,
              help="Class imbalance: loss weights (default), balanced sampling, or nothing.")
@click.option("--tile", type=int, default=None, help="Detection: split each image into N×N tiles.")
@click.option("--threads", type=int, default=None,
              help="CPU threads, fixed for determinism [1; more only on an unloaded machine].")
@click.option("--group-by", "group_by", multiple=True, metavar="COLUMN",
              help="When making the split or CV folds, keep images sharing this column (video, site, day...) "
                   "together; repeatable.")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="Local weights file to start from (matching layers are loaded); else from scratch.")
@click.option("--mlflow", "mlflow", is_flag=False, flag_value="", default=None, metavar="[URI]",
              help="Log to MLflow: a local file store under OUT/mlruns, or the tracking URI given.")
@json_option
@handle_errors
def baseline(src: Path, task: str, out: Path, from_: str | None, cv: int, epochs: int | None, seed: int, arch: str,
             width: int | None, depth: int | None, image_size: int | None, batch_size: int | None,
             lr: float | None, max_steps: int | None, balance: str | None, tile: int | None, threads: int | None,
             group_by: tuple[str, ...], weights: Path | None, mlflow: str | None, as_json: bool) -> None:
    """Train and evaluate a baseline on SRC and write its benchmark card to --out."""
    require("torch", "models")
    from .baseline import baseline as run_baseline
    from .train import TrainConfig

    cfg = TrainConfig.for_task(task, arch=arch, width=width, depth=depth, image_size=image_size, epochs=epochs,
                               batch_size=batch_size, lr=lr, seed=seed, cv=cv, max_steps=max_steps, balance=balance,
                               tile=tile, threads=threads, weights=str(weights) if weights else None,
                               group_by=list(group_by) or None)
    card = run_baseline(src, task, out, fmt=from_, cfg=cfg, mlflow=mlflow)
    lines = [f"card: {out / 'card.json'} (and card.md)"]
    lines += [f"  {k}: {v['value']:.4f}" + (f"  [{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]"
                                             if v.get("ci95") and v["ci95"][0] is not None else "")
              for k, v in card["metrics"].items() if isinstance(v.get("value"), float)]
    if card.get("cross_validation"):
        cvm = card["cross_validation"]["metrics"]
        lines.append(f"  {cv}-fold out-of-sample accuracy: {cvm['accuracy']['value']:.4f} "
                     f"(pred_probs: {out / 'pred_probs.csv'})")
    lines.append(f"  training: {card['training']['images_per_s']} images/s")
    emit(card, as_json, "\n".join(lines))


@click.command()
@click.argument("card", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (default: the card's recorded source).")
@click.option("--tolerance", type=float, default=0.0, show_default=True,
              help="Largest accepted absolute difference per metric (0: exact, as on CPU; allow some on a GPU).")
@json_option
@handle_errors
def reproduce(card: Path, data: Path | None, tolerance: float, as_json: bool) -> None:
    """Retrain from CARD on the same data and compare each metric; exit 1 when one is outside tolerance."""
    require("torch", "models")
    from .reproduce import reproduce as run_reproduce

    res = run_reproduce(card, data, tolerance=tolerance)
    lines = [f"{'ok ' if r['ok'] else 'BAD'} {r['metric']}: card {r['card']} reproduced {r['reproduced']}"
             for r in res["metrics"]]
    if not res["same_split"]:
        lines.append("BAD split: the re-derived split manifest differs from the card's")
    lines.append(("reproduced" if res["ok"] else "NOT reproduced")
                 + f" within ±{tolerance}" + (" (bit-identical predictions)" if res["exact"] else ""))
    emit(res, as_json, "\n".join(lines))
    sys.exit(EXIT_OK if res["ok"] else EXIT_FINDINGS)


COMMANDS = [baseline, reproduce]
