"""``imagine-publish describe | validate | fair | vocab match``: thin click adapters over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from imagine.kernel import EXIT_FINDINGS, EXIT_USAGE, Finding, ImagineError

__all__ = ["COMMANDS"]


def _fail(exc: ImagineError) -> None:
    click.echo(f"error: {exc.render()}", err=True)
    sys.exit(exc.exit_code or EXIT_USAGE)


def _print_findings(findings: list[Finding]) -> None:
    for f in findings:
        click.echo(f.render(), err=True)


@click.command("describe")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--meta", "meta", required=True, type=click.Path(path_type=Path), help="Dataset description (YAML/JSON).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Folder for the metadata files.")
@click.option("--from", "fmt", default=None, help="Format of SRC (detected when omitted).")
@click.option("--taxa", "mapping", type=click.Path(path_type=Path), help="Mapping file from 'vocab match'.")
@click.option("--audit", type=click.Path(path_type=Path), help="Audit report JSON.")
@click.option("--card", "cards", multiple=True, type=click.Path(path_type=Path),
              help="Benchmark card JSON (repeatable).")
@click.option("--manifest", type=click.Path(path_type=Path), help="Split manifest JSON.")
@click.option("--report", "reports", multiple=True, type=click.Path(path_type=Path),
              help="Conversion / consensus report JSON (repeatable): provenance steps.")
@click.option("--online", is_flag=True,
              help="Match class labels against WoRMS/GBIF (default: bundled names and cache).")
@click.option("--worms-url", default=None, help="WoRMS REST base URL (with --online).")
@click.option("--gbif-url", default=None, help="GBIF API base URL (with --online).")
@click.option("--nvs-url", default=None, help="NVS base URL (with --online).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def describe_cmd(src: Path, meta: Path, out: Path, fmt: str | None, mapping: Path | None, audit: Path | None,
                 cards: tuple[Path, ...], manifest: Path | None, reports: tuple[Path, ...], online: bool,
                 worms_url: str | None, gbif_url: str | None, nvs_url: str | None, as_json: bool) -> None:
    """Merge the description META with what dataset SRC knows; write DCAT, schema.org, Croissant, Zenodo, README."""
    from .describe import describe

    try:
        urls: dict[str, Any] = {k: v for k, v in (("worms_url", worms_url), ("gbif_url", gbif_url),
                                                  ("nvs_url", nvs_url)) if v}
        res = describe(src, meta, out, fmt=fmt, mapping=mapping, audit=audit, cards=list(cards), manifest=manifest,
                       reports=list(reports), online=online, **urls)
    except ImagineError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, default=str))
    else:
        _print_findings(res.findings)
        if res.out:
            click.echo(f"wrote {', '.join(sorted(res.files))} to {res.out}")
    if not res.ok:
        sys.exit(EXIT_FINDINGS)


@click.command("validate")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--no-croissant", is_flag=True, help="Skip mlcroissant even when installed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate_cmd(folder: Path, no_croissant: bool, as_json: bool) -> None:
    """Validate a metadata FOLDER: JSON Schemas, SHACL (DCAT-AP 3.0.1 + aquatic profile), Croissant."""
    from .shacl import validate_dir

    try:
        res = validate_dir(folder, croissant=not no_croissant)
    except ImagineError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
    else:
        _print_findings(res.findings)
        n_err = sum(f.severity == "error" for f in res.findings)
        click.echo(f"{folder}: {'valid' if res.ok else 'INVALID'} ({n_err} error(s), "
                   f"{len(res.findings) - n_err} warning(s)); checks: "
                   + ", ".join(f"{k} [{v}]" for k, v in res.checks.items()))
    if not res.ok:
        sys.exit(EXIT_FINDINGS)


@click.command("fair")
@click.argument("target")
@click.option("--fair-eva", "fair_eva", metavar="URL", help="Also ask a running FAIR EVA service about the record.")
@click.option("--record", "record_id", help="Record id for --fair-eva (default: the DOI suffix in zenodo.json).")
@click.option("--min", "minimum", type=float, default=None, help="Exit 1 when the FAIR EVA-compatible score is lower.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fair_cmd(target: str, fair_eva: str | None, record_id: str | None, minimum: float | None, as_json: bool) -> None:
    """FAIR check of a metadata folder or Zenodo record JSON TARGET: 41 RDA indicators, two scores.

    With --fair-eva and a bare record id as TARGET, only FAIR EVA's answer is printed.
    """
    from .fair import ask_fair_eva, compare, fair_score

    try:
        if fair_eva and not Path(target).exists():
            theirs = ask_fair_eva(fair_eva, record_id or target)
            click.echo(json.dumps(theirs, indent=2) if as_json else
                       f"FAIR EVA ({fair_eva}) on record {theirs['record']}: score {theirs['score']:.2f}\n"
                       + "\n".join(f"  {k:<14}{v:>6.0f}" for k, v in theirs["indicators"].items()))
            if minimum is not None and theirs["score"] < minimum:
                sys.exit(EXIT_FINDINGS)
            return
        res = fair_score(target)
        if fair_eva:
            rid = record_id or _record_id(target)
            if not rid:
                raise ImagineError("--fair-eva needs a published record: give --record ID")
            compare(res, ask_fair_eva(fair_eva, rid))
    except ImagineError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(res.to_dict(), indent=2) if as_json else res.render())
    if minimum is not None and res.score < minimum:
        click.echo(f"FAIR EVA-compatible score {res.score:.2f} is below --min {minimum}", err=True)
        sys.exit(EXIT_FINDINGS)


def _record_id(target: str) -> str | None:
    p = Path(target)
    doc: dict[str, Any] = {}
    try:
        doc = json.loads(((p / "zenodo.json") if p.is_dir() else p).read_text("utf-8"))
    except (OSError, ValueError):
        return target if target.isdigit() else None
    doi = doc.get("doi") or doc.get("metadata", {}).get("doi") or ""
    return str(doc.get("id") or doc.get("recid") or (doi.rsplit(".", 1)[-1] if "zenodo." in doi else "")) or None


@click.group("vocab")
def vocab_group() -> None:
    """Aquatic vocabularies: map class labels to taxa (WoRMS, GBIF), bundled NVS/EU concepts."""


@vocab_group.command("match")
@click.argument("labels", nargs=-1)
@click.option("--dataset", "src", type=click.Path(exists=True, path_type=Path), help="Take the labels of this dataset.")
@click.option("--from", "fmt", default=None, help="Format of --dataset.")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=Path("taxa-mapping.json"), show_default=True,
              help="Mapping file to write (.json or .yaml).")
@click.option("--offline", is_flag=True, help="Use only the bundled names and the cache.")
@click.option("--worms-url", default=None, help="WoRMS REST base URL (tests, mirrors).")
@click.option("--gbif-url", default=None, help="GBIF API base URL.")
@click.option("--json", "as_json", is_flag=True, help="Print the mapping as JSON.")
def match_cmd(labels: tuple[str, ...], src: Path | None, fmt: str | None, out: Path, offline: bool,
              worms_url: str | None, gbif_url: str | None, as_json: bool) -> None:
    """Map class LABELS (or the classes of --dataset) to taxa; write a reviewable mapping file."""
    from imagine.vocab.services import GBIF_URL, WORMS_URL
    from imagine.vocab.taxa import mapping_findings, match_labels, write_mapping

    try:
        names = list(labels)
        if src is not None:
            from imagine.curate.formats import read_dataset

            ds = read_dataset(src, fmt) if fmt else read_dataset(src)
            names += [n for n in ds.category_names().values() if n not in names]
        if not names:
            raise ImagineError("give class LABELS or --dataset SRC")
        matches, findings = match_labels(names, offline=offline, worms_url=worms_url or WORMS_URL,
                                         gbif_url=gbif_url or GBIF_URL)
        write_mapping(matches, out)
    except ImagineError as exc:
        _fail(exc)
        return
    findings += mapping_findings(matches)
    if as_json:
        click.echo(json.dumps({"out": str(out), "classes": [m.to_dict() for m in matches],
                               "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        for m in matches:
            target = (f"{m.accepted_name} ({m.lsid or m.uri})" if m.status == "matched" else m.status)
            click.echo(f"{m.label:<30} → {target}" + (f"   [{m.match_type}, {m.authority}]" if m.match_type else "")
                       + (f"   {m.note}" if m.note else ""))
        _print_findings([f for f in findings if f.code != "taxon-review"])
        click.echo(f"wrote {out}")
    if any(m.status == "unmatched" for m in matches):
        sys.exit(EXIT_FINDINGS)


COMMANDS = [describe_cmd, validate_cmd, fair_cmd, vocab_group]
