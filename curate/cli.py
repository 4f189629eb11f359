"""``imagine-curate``: a thin click layer over the library.

Conventions every command follows: a dataset argument ``SRC`` (file or folder) with ``--from FMT``
(detected when omitted); an output ``DST`` with ``--to FMT`` where a command writes a dataset;
``--json`` for machine-readable output; exit codes 0 ok, 1 findings, 2 usage or unreadable input.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from imagine.kernel import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, ImagineError, dump_json, set_quiet

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn library errors into one-paragraph messages and the project's exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ImagineError as exc:
            click.echo(f"error: {exc.render()}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # pragma: no cover - interactive
            click.echo("interrupted; nothing half-written was left behind", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def emit(obj: Any, as_json: bool, text: str) -> None:
    """Print ``obj`` as JSON under ``--json``, else the human ``text``."""
    if as_json:
        click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
    else:
        click.echo(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
from_option = click.option("--from", "from_", metavar="FMT", default=None,
                           help="Format of SRC (detected when omitted).")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="imagine-aquatic")
def main(quiet: bool) -> None:
    """Curate aquatic-science image training datasets: convert, validate, clean, split, audit, train."""
    set_quiet(quiet)


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise click.BadParameter(f"{p!r} is not KEY=VALUE", param_hint="-o")
        k, v = p.split("=", 1)
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--to", "to", metavar="FMT", required=True, help="Format to write.")
@from_option
@click.option("--images", type=click.Choice(["copy", "link", "none"]), default="copy", show_default=True,
              help="What to do with the image files.")
@click.option("--report", "report_file", type=click.Path(path_type=Path), default=None,
              help="Save the conversion report as JSON.")
@click.option("-i", "--input-option", "input_options", multiple=True, metavar="KEY=VALUE",
              help="Reader option (e.g. -i metadata=meta.csv); repeatable.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Writer option (e.g. -o precision=6); repeatable.")
@json_option
@handle_errors
def convert(src: Path, dst: Path, to: str, from_: str | None, images: str, report_file: Path | None,
            input_options: tuple[str, ...], options: tuple[str, ...], as_json: bool) -> None:
    """Convert SRC to DST in format --to, reporting everything the target cannot hold."""
    from .formats import convert as do_convert
    from .stats import dataset_stats, render_stats

    ds, report = do_convert(src, dst, to, from_, images=images, read_options=_parse_options(input_options),
                            write_options=_parse_options(options))
    report.stats = dataset_stats(ds)
    if report_file:
        dump_json(report.to_dict(), report_file)
    emit(report.to_dict(), as_json, render_stats(report.stats) + "\n" + report.render())


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@from_option
@click.option("--no-images", is_flag=True, help="Skip reading image files (existence, size, decodability).")
@json_option
@handle_errors
def validate(src: Path, from_: str | None, no_images: bool, as_json: bool) -> None:
    """Check SRC's structure and content; list every finding with its file and place."""
    from .validate import validate_source

    findings = validate_source(src, from_, check_images=not no_images)
    errors = [f for f in findings if f.severity == "error"]
    text = "\n".join(f.render() for f in findings) or "no findings"
    text += f"\n{len(errors)} error(s), {len(findings) - len(errors)} warning(s)"
    emit({"valid": not errors, "findings": [f.to_dict() for f in findings]}, as_json, text)
    sys.exit(EXIT_FINDINGS if errors else EXIT_OK)


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@from_option
@json_option
@handle_errors
def stats(src: Path, from_: str | None, as_json: bool) -> None:
    """Counts per class and split, and the box size distribution."""
    from .formats import read_dataset
    from .stats import dataset_stats, render_stats

    s = dataset_stats(read_dataset(src, from_))
    emit(s, as_json, render_stats(s))


@main.command(name="formats")
@json_option
def list_formats(as_json: bool) -> None:
    """List the formats that can be read and written."""
    from .formats import formats

    rows = [{"name": f.name, "read": f.read is not None, "write": f.write is not None,
             "description": f.description} for f in formats().values()]
    text = "\n".join(f"{r['name']:<12} {'r' if r['read'] else '-'}{'w' if r['write'] else '-'}  {r['description']}"
                     for r in rows)
    emit(rows, as_json, text)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("imagine-demo"), show_default=True,
              help="Where to write the demo's outputs.")
@json_option
@handle_errors
def demo(out: Path, as_json: bool) -> None:
    """The main job on the bundled sample: read, validate, convert, print stats and reports."""
    from .demo import run_demo

    result = run_demo(out)
    emit(result.as_dict(), as_json, result.text)
    sys.exit(EXIT_OK if result.ok else EXIT_FINDINGS)


def _load_plugins() -> None:
    """Add the commands other packages contribute (dedup, audit, baselines) through entry points.

    ``imagine.models`` sits to the right of ``imagine.curate`` in the import order, so its
    ``baseline`` and ``reproduce`` commands are found by entry point, never imported here by name.
    A plugin whose module or optional dependency is missing is skipped.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group="imagine.curate.commands"):
        try:
            mod = ep.load()
        except ImportError:
            continue
        for cmd in getattr(mod, "COMMANDS", []):
            main.add_command(cmd)


_load_plugins()

if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["main", "handle_errors", "emit", "EXIT_USAGE"]
