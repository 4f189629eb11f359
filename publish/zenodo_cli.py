"""``imagine-publish`` commands for deposits and the local repository (thin click adapters).

``package``, ``deposit``, ``new-version``, ``status``, ``discard``, ``fetch`` and ``serve`` call the
library functions of the same name in :mod:`imagine.publish.deposit` and
:mod:`imagine.publish.localrepo`. Tokens come from ``ZENODO_TOKEN`` or the config file, never
from the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from imagine.curate.cli import emit, handle_errors, json_option
from imagine.kernel import EXIT_FINDINGS, EXIT_OK

target_option = click.option(
    "--target", default="local", show_default=True, metavar="zenodo|sandbox|local|URL",
    help="Where to deposit: zenodo.org, the sandbox, the local repository (imagine-publish serve) or a base URL. "
         "The token comes from ZENODO_TOKEN (ZENODO_SANDBOX_TOKEN) or ~/.config/imagine/zenodo.json (mode 600).")
gate_options = [
    click.option("--min-fair", type=click.FloatRange(0, 100), default=None,
                 help="Refuse to deposit when the FAIR score is below this (0–100)."),
    click.option("--force", is_flag=True, help="Deposit despite a low FAIR score or validation errors."),
    click.option("--dry-run", is_flag=True, help="Print every request it would make; send nothing."),
]


def _gates(fn: Any) -> Any:
    for opt in reversed(gate_options):
        fn = opt(fn)
    return fn


def _render_result(r: Any) -> str:
    if r.plan:
        return "\n".join(r.plan)
    lines = [f"published {r.doi} (record {r.record_id})", f"  url: {r.url}",
             f"  concept DOI: {r.conceptdoi}",
             f"  files: {len(r.uploaded)} uploaded, {len(r.skipped)} already there, {len(r.removed)} removed"]
    if r.fair_score is not None:
        lines.append(f"  FAIR score: {r.fair_score:.0f}")
    lines += [f"  warning: {w}" for w in r.warnings]
    return "\n".join(lines)


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("meta", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--from", "from_", metavar="FMT", default=None, help="Format of SRC (detected when omitted).")
@click.option("--format", "formats", multiple=True, metavar="FMT",
              help="Also include the annotations in this format (repeatable; native is always included).")
@click.option("--card", "cards", multiple=True, type=click.Path(path_type=Path), help="Benchmark card to include.")
@click.option("--shard-size", type=float, default=2.0, show_default=True, help="Target size of image ZIPs in GB.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@json_option
@handle_errors
def package(src: Path, meta: Path, out: Path, from_: str | None, formats: tuple[str, ...], cards: tuple[Path, ...],
            shard_size: float, overwrite: bool, as_json: bool) -> None:
    """Build the deposit folder OUT from dataset SRC and the `describe` output folder META."""
    from .deposit import package as do_package

    r = do_package(src, meta, out, src_format=from_, formats=formats, cards=cards,
                   shard_bytes=int(shard_size * 1e9), overwrite=overwrite)
    emit(r.to_dict(), as_json, f"wrote {out}: {len(r.files)} files ({r.shards} image shard(s)), "
                               f"{r.total_bytes / 1e6:.1f} MB, manifest.json with MD5 and SHA-256")


@click.command()
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@target_option
@_gates
@json_option
@handle_errors
def deposit(folder: Path, target: str, min_fair: float | None, force: bool, dry_run: bool, as_json: bool) -> None:
    """Deposit DIR: find or create the draft, upload what is missing, set metadata, publish, verify."""
    from .deposit import deposit as do_deposit

    r = do_deposit(folder, target, min_fair=min_fair, force=force, dry_run=dry_run)
    emit(r.to_dict(), as_json, _render_result(r))


@click.command("new-version")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@target_option
@click.option("--record", type=int, default=None, help="Record to version (default: the one DIR was published as).")
@_gates
@json_option
@handle_errors
def new_version(folder: Path, target: str, record: int | None, min_fair: float | None, force: bool, dry_run: bool,
                as_json: bool) -> None:
    """Publish DIR as a new version: full metadata re-sent, changed files replaced, unchanged kept."""
    from .deposit import new_version as do_new_version

    r = do_new_version(folder, target, record=record, min_fair=min_fair, force=force, dry_run=dry_run)
    emit(r.to_dict(), as_json, _render_result(r))


@click.command()
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@target_option
@click.option("--offline", is_flag=True, help="Only the local state; no request.")
@json_option
@handle_errors
def status(folder: Path, target: str, offline: bool, as_json: bool) -> None:
    """Show DIR's deposit state: draft or record, DOI, which files the server holds."""
    from .deposit import status as do_status

    s = do_status(folder, target, offline=offline)
    pending = [n for n, v in s["files"].items() if v != "uploaded"]
    text = [f"target: {s['target']}", f"phase: {s['phase']}"]
    for k in ("draft_id", "record_id", "doi", "conceptdoi"):
        if s.get(k):
            text.append(f"{k}: {s[k]}")
    text.append(f"files: {len(s['files']) - len(pending)} on the server, {len(pending)} pending")
    text += [f"  pending: {n}" for n in pending]
    if s["remote"] and s["remote"].get("error"):
        text.append(f"remote: {s['remote']['error']}")
    emit(s, as_json, "\n".join(text))
    sys.exit(EXIT_FINDINGS if any(f["severity"] == "error" for f in s["findings"]) else EXIT_OK)


@click.command()
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@target_option
@json_option
@handle_errors
def discard(folder: Path, target: str, as_json: bool) -> None:
    """Discard DIR's unpublished draft on the target."""
    from .deposit import discard as do_discard

    r = do_discard(folder, target)
    emit(r, as_json, f"discarded draft {r['discarded']}")


@click.command()
@click.argument("record")
@click.argument("dst", type=click.Path(path_type=Path))
@target_option
@click.option("--overwrite", is_flag=True, help="Replace files in DST whose checksum differs from the record's.")
@json_option
@handle_errors
def fetch(record: str, dst: Path, target: str, overwrite: bool, as_json: bool) -> None:
    """Download published RECORD (id, DOI or URL) into DST, verifying every checksum.

    Resumable: a re-run continues partial downloads (``<name>.part``) and keeps files already there.
    """
    from .deposit import fetch as do_fetch

    r = do_fetch(record, dst, target, overwrite=overwrite)
    kept = sum(f.get("status") == "present" for f in r.files)
    there = f" ({kept} already there)" if kept else ""
    sha = ", manifest SHA-256 verified" if r.manifest_checked else ""
    emit(r.to_dict(), as_json, f"fetched {len(r.files)} file(s) of {r.doi or r.record_id} into {dst}{there}; "
                               f"MD5 verified{sha}")


@click.command()
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Data folder (default ~/.local/share/imagine/localrepo).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5005, show_default=True)
@click.option("--quota", type=float, default=50.0, show_default=True, help="Per-record quota in GB.")
@click.option("--rate-limit", type=int, default=1000, show_default=True, help="Authenticated calls per minute.")
@click.option("--faults", default=None, metavar="SPEC",
              help="Fault injection, e.g. 'random:0.2:7' or 'status=503@POST:/actions/publish*2,"
                   "reset@PUT:/files/,after=500@POST:/actions/publish'; 'lag=N' makes the search-backed lists "
                   "miss a new draft or record for N calls. Also settable at run time via POST /_faults.")
@handle_errors
def serve(root: Path | None, host: str, port: int, quota: float, rate_limit: int, faults: str | None) -> None:
    """Run the local Zenodo-compatible repository (deposit API, records, OAI-PMH, fault injection)."""
    from .localrepo import FaultPlan, default_root
    from .localrepo import serve as make_server

    plan = FaultPlan.parse(faults) if faults else None
    server = make_server(root, host=host, port=port, faults=plan, quota=int(quota * 1e9), rate_limit=rate_limit)
    where = Path(root or default_root())
    how = ("used automatically by clients on this machine" if where == default_root() else
           "give it to clients through ZENODO_TOKEN or the config file")
    click.echo(f"local Zenodo-compatible repository at {server.url}/api (OAI-PMH: {server.url}/oai2d)\n"
               f"data in {where}; its token is in {where / 'tokens.json'} ({how}). Ctrl-C to stop.", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        server.server_close()


COMMANDS = [package, deposit, new_version, status, discard, fetch, serve]
