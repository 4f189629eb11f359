"""``imagine-publish``: describe, validate, FAIR-check and deposit datasets (thin click layer).

Commands live in sibling modules (``meta_cli`` for metadata, vocabularies and the FAIR check,
``zenodo_cli`` for deposits and the local repository); each exposes ``COMMANDS``.
"""

from __future__ import annotations

import importlib

import click
from imagine.kernel import set_quiet


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="imagine-aquatic")
def main(quiet: bool) -> None:
    """Publish aquatic image datasets FAIRly: DCAT metadata, FAIR EVA check, Zenodo deposits."""
    set_quiet(quiet)


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
