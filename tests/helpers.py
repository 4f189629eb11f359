"""Small helpers shared by several test files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagine.publish.localrepo import start_server


def local_repository(tmp_path: Path, token: str) -> Iterator[Any]:
    """A local Zenodo-like repository on 127.0.0.1 accepting ``token``, shut down after the test (fixture body)."""
    srv = start_server(tmp_path / "repo", tokens={token: 1})
    yield srv
    srv.shutdown()
    srv.server_close()
