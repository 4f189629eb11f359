"""``imagine-curate audit | rebalance | app | review``: thin click adapters over :mod:`imagine.curate.audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from imagine.kernel import InputError, atomic_write, dump_json


def _cli() -> Any:
    from . import cli

    return cli


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--from", "from_", metavar="FMT", default=None, help="Format of SRC (detected when omitted).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the report, columns and plots.")
@click.option("--predictions", type=click.Path(path_type=Path), default=None,
              help="Out-of-sample predictions (pred_probs.csv from `baseline --cv K`, or detection predictions).")
@click.option("--task", type=click.Choice(["classification", "multilabel", "detection"]), default=None,
              help="What the labels are (detected from the annotations when omitted).")
@click.option("--features", type=click.Path(path_type=Path), default=None,
              help="Per-image embeddings (.npy, one row per image in dataset order) for Datalab's near-duplicate, "
                   "outlier and non-IID checks.")
@click.option("--cluster-by", default=None, metavar="COLUMN",
              help="Image column for Datalab's underperforming-group check (e.g. site, video).")
@click.option("--attribute", "attributes", multiple=True, metavar="NAME",
              help="Numeric image attribute to profile per class (e.g. length); repeatable.")
@click.option("--no-duplicates", is_flag=True, help="Skip the duplicate and leakage checks (no image decoding).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit(src: Path, from_: str | None, out: Path, predictions: Path | None, task: str | None, features: Path | None,
          cluster_by: str | None, attributes: tuple[str, ...], no_duplicates: bool, as_json: bool) -> None:
    """Label issues (cleanlab), bias and balance, duplicates and leakage: one JSON + Markdown report."""
    cli = _cli()

    @cli.handle_errors
    def run() -> None:
        from .audit import audit as do_audit
        from .audit import write_audit
        from .formats import read_dataset

        ds = read_dataset(src, from_)
        feats = None
        if features is not None:
            try:
                feats = np.load(features)
            except (OSError, ValueError) as exc:
                raise InputError(f"unreadable embeddings: {exc}", file=features) from None
            if feats.ndim != 2 or len(feats) != len(ds):
                raise InputError(f"embeddings must be one row per image ({len(ds)}), not shape {feats.shape}",
                                 file=features)
        if cluster_by and cluster_by not in ds.images.column_names:
            raise InputError(f"no image column {cluster_by!r}; columns: {', '.join(ds.images.column_names)}")
        res = do_audit(ds, predictions=predictions, task=task, duplicates=not no_duplicates,
                       features=feats, cluster_column=cluster_by, numeric_attributes=list(attributes) or None,
                       source=str(src))
        write_audit(ds, res, out)
        r = res.report
        li = r.get("label_issues")
        text = [f"audit of {src}: {r['images']} images, task {r['task']}",
                f"label issues: {li['summary']['issues'] if li else 'not searched (no predictions)'}",
                f"imbalance ratio {r['bias']['class_balance']['imbalance_ratio']}, effective classes "
                f"{r['bias']['class_balance']['effective_number_of_classes']:.2f}"]
        if r.get("duplicates"):
            text.append(f"duplicate groups: {r['duplicates']['summary']['groups']}")
        if r.get("leakage"):
            text.append(f"groups crossing splits: {r['leakage']['crossing_groups']}")
        text.append(f"report: {out / 'audit.md'}")
        cli.emit(r, as_json, "\n".join(text))

    run()


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--from", "from_", metavar="FMT", default=None, help="Format of SRC (detected when omitted).")
@click.option("--to", "to", metavar="FMT", default="native", show_default=True, help="Format of DST.")
@click.option("--min", "min_per_class", type=int, default=100, show_default=True, help="Images per class at least.")
@click.option("--max", "max_per_class", type=int, default=10_000, show_default=True, help="Images per class at most.")
@click.option("--oversample", is_flag=True, help="Draw classes below --min with replacement instead of dropping them.")
@click.option("--split", default=None, help="Only draw from this split (e.g. train).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def rebalance(src: Path, dst: Path, from_: str | None, to: str, min_per_class: int, max_per_class: int,
              oversample: bool, split: str | None, seed: int, as_json: bool) -> None:
    """Draw a reproducible training selection with per-class min/max caps; print the class weights."""
    cli = _cli()

    @cli.handle_errors
    def run() -> None:
        from .audit import class_weights
        from .audit import rebalance as do_rebalance
        from .formats import read_dataset, write_dataset

        ds = read_dataset(src, from_)
        new, summary = do_rebalance(ds, min_per_class=min_per_class, max_per_class=max_per_class, seed=seed,
                                    oversample=oversample, split=split)
        write_dataset(new, dst, to)
        summary["class_weights"] = {str(k): v for k, v in class_weights(new).items()}
        cli.emit(summary, as_json, "\n".join(f"{k}: {v['available']} -> {v['selected']} ({v['action']})"
                                              for k, v in summary["per_class"].items()))

    run()


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--from", "from_", metavar="FMT", default=None, help="Format of SRC (detected when omitted).")
@click.option("--audit", "audit_dir", type=click.Path(path_type=Path), default=None,
              help="Audit folder (from `imagine-curate audit`) whose columns and tags to load.")
@click.option("--name", default=None, help="FiftyOne dataset name (default: the folder name of SRC).")
@click.option("--port", type=int, default=5151, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--no-launch", is_flag=True, help="Only load the dataset into FiftyOne.")
def app(src: Path, from_: str | None, audit_dir: Path | None, name: str | None, port: int, address: str,
        no_launch: bool) -> None:
    """Load SRC (and its audit) into FiftyOne and launch the app for review."""
    cli = _cli()

    @cli.handle_errors
    def run() -> None:
        from .audit.app import launch, load_into_fiftyone
        from .formats import read_dataset

        ds = read_dataset(src, from_)
        fds = load_into_fiftyone(ds, name or src.resolve().name, audit_dir=audit_dir)
        click.echo(f"FiftyOne dataset {fds.name!r}: {len(fds)} samples; saved views: "
                   f"{', '.join(fds.list_saved_views()) or 'none'}")
        if no_launch:
            return
        session = launch(fds, port=port, address=address)
        click.echo(f"app at http://{address}:{port}/ — tag samples delete / mislabeled / ok, edit labels, then run "
                   f"`imagine-curate review {src} DST --from-app {fds.name}`. Ctrl-C to stop.")
        session.wait()

    run()


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--from-app", "name", required=True, help="FiftyOne dataset holding the curator's decisions.")
@click.option("--from", "from_", metavar="FMT", default=None, help="Format of SRC (detected when omitted).")
@click.option("--to", "to", metavar="FMT", default="native", show_default=True, help="Format of DST.")
@click.option("--json", "as_json", is_flag=True, help="Print the changelog as JSON.")
def review(src: Path, dst: Path, name: str, from_: str | None, to: str, as_json: bool) -> None:
    """Bring the curator's FiftyOne decisions back as a new dataset version with a changelog."""
    cli = _cli()

    @cli.handle_errors
    def run() -> None:
        from .audit.app import changelog_markdown
        from .audit.app import review as do_review
        from .formats import read_dataset, write_dataset

        ds = read_dataset(src, from_)
        res = do_review(ds, name)
        write_dataset(res.dataset, dst, to)
        base = str(dst).rstrip("/")
        dump_json({"version": res.dataset.info.get("version"), "changes": res.changelog}, base + ".changelog.json")
        with atomic_write(base + ".changelog.md") as fh:
            fh.write(changelog_markdown(res, name))
        cli.emit({"version": res.dataset.info.get("version"), "summary": res.summary(), "changes": res.changelog},
                 as_json, changelog_markdown(res, name))

    run()


COMMANDS = [audit, rebalance, app, review]
