"""``imagine-curate dedup | consensus | split | leakage``: thin click adapters over the cleaning library.

Plugged into ``imagine-curate`` through the ``imagine.curate.commands`` entry point. Each command
reads ``SRC`` (``--from FMT``, detected when omitted), writes ``DST`` (``--to FMT``, default
native) where it produces a dataset, prints Markdown (or the JSON report under ``--json``), can
save both (``--report FILE.json``, ``--markdown FILE.md``) and exits 0 ok, 1 findings, 2 usage or
unreadable input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from imagine.curate.cli import emit, from_option, handle_errors, json_option
from imagine.kernel import EXIT_FINDINGS, EXIT_OK, UsageError, atomic_write, dump_json

__all__ = ["COMMANDS", "dedup", "consensus", "split", "leakage"]

to_option = click.option("--to", "to", metavar="FMT", default="native", show_default=True,
                         help="Format of DST.")
images_option = click.option("--images", type=click.Choice(["copy", "link", "none"]), default="copy",
                             show_default=True, help="What to do with the image files when writing DST.")
report_option = click.option("--report", "report_file", type=click.Path(path_type=Path), default=None,
                             help="Save the report as JSON.")
markdown_option = click.option("--markdown", "markdown_file", type=click.Path(path_type=Path), default=None,
                               help="Save the report as Markdown.")
scheduler_option = click.option("--scheduler", metavar="ADDRESS", default=None,
                                help="Dask scheduler address (tcp://host:8786) for the per-image work; "
                                     "local worker processes when omitted.")
workers_option = click.option("--workers", type=click.IntRange(min=1), default=None,
                              help="Local worker processes (default: one per core).")
max_distance_option = click.option("--max-distance", type=click.IntRange(0, 32), default=6, show_default=True,
                                   help="Largest Hamming distance between perceptual hashes of near duplicates.")


def report_options(f: Any) -> Any:
    """``--report``, ``--markdown``, ``--json`` and the error handler that every command ends with."""
    return report_option(markdown_option(json_option(handle_errors(f))))


def _finish(report: dict[str, Any], schema: str, markdown: str, as_json: bool, report_file: Path | None,
            markdown_file: Path | None) -> None:
    """Check the report against its schema, save it where asked, print it."""
    from imagine.schemas import validate

    problems = validate(report, schema)
    if problems:  # a bug here, not the user's input
        raise RuntimeError(f"{schema} report does not match its schema: {problems[0].render()}")
    if report_file:
        dump_json(report, report_file)
    if markdown_file:
        with atomic_write(markdown_file) as fh:
            fh.write(markdown)
    emit(report, as_json, markdown.rstrip("\n"))


def _read(src: Path, from_: str | None) -> Any:
    from .formats import read_dataset

    return read_dataset(src, from_)


def _write(ds: Any, dst: Path, to: str, images: str) -> None:
    from .formats import write_dataset

    report = write_dataset(ds, dst, to, images=images)
    if not report.lossless:
        click.echo(report.render(), err=True)


@contextmanager
def _executor(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """The Dask executor for the per-image work, closed when the block ends."""
    from .executor import get_executor

    ex = get_executor(scheduler, workers)
    try:
        yield ex
    finally:
        ex.close()


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path), required=False)
@from_option
@to_option
@images_option
@max_distance_option
@click.option("--no-near", is_flag=True, help="Only exact (byte-identical) image duplicates.")
@click.option("--annotation-iou", type=click.FloatRange(0, 1, min_open=True), default=0.9, show_default=True,
              help="IoU at or above which two boxes of one class on one image are duplicates.")
@click.option("--no-annotations", is_flag=True, help="Do not look for duplicate annotations.")
@click.option("--embeddings", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="A .npy array of image embeddings (one row per image, dataset order) for cosine matching.")
@click.option("--cosine", type=click.FloatRange(-1, 1), default=0.95, show_default=True,
              help="Cosine similarity at or above which embeddings mark near duplicates.")
@scheduler_option
@workers_option
@report_options
def dedup(src: Path, dst: Path | None, from_: str | None, to: str, images: str, max_distance: int, no_near: bool,
          annotation_iou: float, no_annotations: bool, embeddings: Path | None, cosine: float,
          scheduler: str | None, workers: int | None, report_file: Path | None, markdown_file: Path | None,
          as_json: bool) -> None:
    """Find exact and near-duplicate images and duplicate annotations in SRC; write the deduplicated DST.

    Without DST the exit code is 1 when anything was found; with DST it is 0 once DST is written.
    """
    import numpy as np

    from . import dedup as lib

    ds = _read(src, from_)
    emb = None
    if embeddings is not None:
        try:
            emb = np.load(embeddings, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read embeddings: {exc}", file=embeddings) from None
    with _executor(scheduler, workers) as ex:
        res = lib.dedup(ds, near=not no_near, max_distance=max_distance, embeddings=emb, cosine=cosine,
                        annotation_iou=None if no_annotations else annotation_iou, executor=ex)
    report = res.report()
    if dst is not None:
        _write(res.deduplicated(annotations=not no_annotations), dst, to, images)
    _finish(report, "dedup-report", lib.render_markdown(report), as_json, report_file, markdown_file)
    found = report["summary"]["groups"] or report["summary"]["annotation_duplicates"] or report["unreadable"]
    sys.exit(EXIT_FINDINGS if found and dst is None else EXIT_OK)


def _pad_pairs(values: tuple[str, ...]) -> dict[int | str, float]:
    out: dict[int | str, float] = {}
    for v in values:
        name, sep, px = v.rpartition("=")
        try:
            amount = float(px)
        except ValueError:
            amount = -1.0
        if not sep or not name or amount < 0:
            raise click.BadParameter(f"{v!r} is not CLASS=PIXELS with PIXELS >= 0", param_hint="--pad-class")
        out[int(name) if name.isdigit() else name] = amount
    return out


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@from_option
@to_option
@images_option
@click.option("--iou", type=click.FloatRange(0, 1, min_open=True), default=0.6, show_default=True,
              help="Step 1: keep boxes with at least this IoU with another box.")
@click.option("--min-iou", type=click.FloatRange(0, 1, min_open=True), default=0.4, show_default=True,
              help="Step 2: group kept boxes whose overlap / smaller area is at least this into one object.")
@click.option("--merge", type=click.Choice(["median", "mean", "highest-vote"]), default="median", show_default=True,
              help="How an object's boxes become one box.")
@click.option("--per-class", is_flag=True, help="Only boxes of the same class vote together.")
@click.option("--min-votes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Objects with fewer boxes are dropped.")
@click.option("--lines-to-boxes", is_flag=True, help="First turn polylines (length measurements) into boxes.")
@click.option("--line-min-side", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Smallest side of a box made from a line, in pixels.")
@click.option("--pad", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="First grow every box by this many pixels on each side.")
@click.option("--pad-class", multiple=True, metavar="CLASS=PIXELS",
              help="Padding for one class (name or id), overriding --pad; repeatable.")
@report_options
def consensus(src: Path, dst: Path, from_: str | None, to: str, images: str, iou: float, min_iou: float, merge: str,
              per_class: bool, min_votes: int, lines_to_boxes: bool, line_min_side: float, pad: float,
              pad_class: tuple[str, ...], report_file: Path | None, markdown_file: Path | None,
              as_json: bool) -> None:
    """Merge redundant citizen-science boxes of SRC into one box per object, written to DST."""
    from . import consensus as lib

    pads = _pad_pairs(pad_class)
    ds = _read(src, from_)
    res = lib.consensus(ds, iou=iou, min_iou=min_iou, merge=merge,  # type: ignore[arg-type]
                        per_class=per_class, min_votes=min_votes, lines_to_boxes=lines_to_boxes,
                        line_min_side=line_min_side, pad=pad, pad_per_class=pads or None)
    report = res.report()
    _write(res.dataset, dst, to, images)
    _finish(report, "consensus-report", lib.render_markdown(report), as_json, report_file, markdown_file)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@from_option
@to_option
@images_option
@click.option("--group-by", "group_by", multiple=True, metavar="COLUMN",
              help="Keep images sharing a value of COLUMN together (site, day, video, track, duplicate, file_name, "
                   "an attribute); repeatable, groups are joined.")
@click.option("--group-pattern", default=None, metavar="REGEX",
              help="Group by the first capture group of REGEX on the column values (e.g. '^(?:.*/)?(IMG_\\d+)').")
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="Split ratios, summing to 1.")
@click.option("--names", default=None, help="Split names, comma separated (default train,val,test).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same split.")
@click.option("--no-stratify", is_flag=True, help="Balance image counts only, not classes.")
@max_distance_option
@click.option("--manifest", "manifest_file", type=click.Path(path_type=Path), default=None,
              help="Where to save the split manifest (default: DST/split-manifest.json, or DST.split-manifest.json).")
@click.option("--no-manifest", is_flag=True, help="No split manifest (it reads every image to hash it).")
@scheduler_option
@workers_option
@report_options
def split(src: Path, dst: Path, from_: str | None, to: str, images: str, group_by: tuple[str, ...],
          group_pattern: str | None, ratios: str, names: str | None, seed: int, no_stratify: bool, max_distance: int,
          manifest_file: Path | None, no_manifest: bool, scheduler: str | None, workers: int | None,
          report_file: Path | None, markdown_file: Path | None, as_json: bool) -> None:
    """Split SRC into train/val/test (seeded, stratified, group-aware) and write DST with a split manifest."""
    from . import split as lib
    from .manifest import split_manifest

    ratio_list = lib.parse_ratios(ratios)
    name_list = [n.strip() for n in names.split(",")] if names else None
    ds = _read(src, from_)
    dup_groups = None
    if "duplicate" in group_by:
        from .dedup import dedup as find_dups

        with _executor(scheduler, workers) as ex:
            dup_groups = find_dups(ds, max_distance=max_distance, annotation_iou=None, executor=ex).group
    res = lib.split(ds, ratio_list, names=name_list, group_by=group_by, pattern=group_pattern, seed=seed,
                    stratify=not no_stratify, duplicate_groups=dup_groups)
    manifest = None if no_manifest else split_manifest(res.dataset)  # before writing: a missing image stops here
    report = res.report(manifest)
    _write(res.dataset, dst, to, images)
    if manifest is not None:
        target = manifest_file or (dst / "split-manifest.json" if dst.is_dir() else
                                   dst.with_name(dst.name + ".split-manifest.json"))
        dump_json(manifest, target)
    _finish(report, "split-report", lib.render_markdown(report), as_json, report_file, markdown_file)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@from_option
@click.option("--column", "columns", multiple=True, metavar="COLUMN",
              help="Group column to check (default: those of track, video, day, site the dataset has); repeatable.")
@click.option("--pattern", default=None, metavar="REGEX",
              help="Group by the first capture group of REGEX on the column values.")
@click.option("--no-duplicates", is_flag=True, help="Skip the duplicate-image check (no image is read).")
@max_distance_option
@scheduler_option
@workers_option
@report_options
def leakage(src: Path, from_: str | None, columns: tuple[str, ...], pattern: str | None, no_duplicates: bool,
            max_distance: int, scheduler: str | None, workers: int | None, report_file: Path | None,
            markdown_file: Path | None, as_json: bool) -> None:
    """Check SRC's existing splits for duplicate and metadata groups crossing them (exit 1 when any do)."""
    from . import leakage as lib

    ds = _read(src, from_)
    with _executor(scheduler, workers) as ex:
        report = lib.leakage(ds, columns=list(columns) or None, pattern=pattern, duplicates=not no_duplicates,
                             max_distance=max_distance, executor=ex)
    _finish(report, "leakage-report", lib.render_markdown(report), as_json, report_file, markdown_file)
    sys.exit(EXIT_FINDINGS if report["leaking"] else EXIT_OK)


COMMANDS = [dedup, consensus, split, leakage]


def _register() -> None:
    """Add the commands to ``imagine-curate`` when this module was imported before the CLI finished loading."""
    cli = sys.modules.get("imagine.curate.cli")
    main = getattr(cli, "main", None)
    if main is not None:
        for cmd in COMMANDS:
            main.add_command(cmd)


_register()
