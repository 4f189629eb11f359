"""``imagine-publish``: describe, validate, FAIR-check and deposit datasets (thin click layer).

Commands live in sibling modules (``meta_cli`` for metadata, vocabularies and the FAIR check,
``zenodo_cli`` for deposits and the local repository); each exposes ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from imagine.kernel import EXIT_FINDINGS, EXIT_OK, set_quiet


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="imagine-aquatic")
def main(quiet: bool) -> None:
    """Publish aquatic image datasets FAIRly: DCAT metadata, FAIR EVA check, Zenodo deposits."""
    set_quiet(quiet)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("imagine-demo"), show_default=True,
              help="Where to write every output (and the local repository's files).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(out: Path, as_json: bool) -> None:
    """The main job on the bundled sample: curate, baseline, audit, describe, FAIR check, deposit, DOI."""
    from imagine.curate.cli import emit, handle_errors

    from .demo import run_demo

    @handle_errors
    def run() -> None:
        result = run_demo(out)
        emit(result.as_dict(), as_json, result.text)
        sys.exit(EXIT_OK if result.ok else EXIT_FINDINGS)

    run()


for _name in ("meta_cli", "zenodo_cli"):
    try:
        _mod = importlib.import_module(f"{__package__}.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"{__package__}.{_name}":
            raise
        continue
    for _cmd in getattr(_mod, "COMMANDS", []):
        main.add_command(_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
