"""One interface for per-image work (hashing, header reads, embeddings), local or on a cluster.

Callers hand :meth:`Executor.map` a top-level function and a list of items; the executor cuts the
list into chunks, runs them on local worker processes (default), in this process (``workers=1``
or small jobs) or on a Dask distributed cluster (when given a scheduler address or a client), and
returns the results in input order. Nothing else in the code knows which one runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from imagine.kernel import UsageError, progress, require

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["Executor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "get_executor"]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    """Apply ``fn`` to every item of one chunk (top level so that workers can unpickle it)."""
    return [fn(x) for x in chunk]


class Executor(Protocol):
    """Runs ``fn`` over ``items`` and returns the results in order."""

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "") -> list[R]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Everything in this process: small jobs, debugging, and workers of the other executors."""

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "") -> list[R]:
        return [fn(x) for x in progress(items, total=len(items), desc=desc, unit="img")]

    def close(self) -> None:
        pass


class LocalExecutor:
    """Local worker processes (``concurrent.futures``), chunked to keep the overhead small.

    Jobs shorter than ``min_items`` run in this process: starting workers costs more than it saves.
    """

    def __init__(self, workers: int | None = None, *, chunk_size: int = 64, min_items: int = 256):
        if workers is not None and workers < 1:
            raise UsageError(f"workers must be at least 1, not {workers}")
        self.workers = workers or os.cpu_count() or 1
        self.chunk_size = chunk_size
        self.min_items = min_items
        self._pool: Any = None

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "") -> list[R]:
        if self.workers == 1 or len(items) < self.min_items:
            return SerialExecutor().map(fn, items, desc=desc)
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        futures = [self._pool.submit(_run_chunk, fn, c) for c in _chunks(items, self.chunk_size)]
        out: list[R] = []
        for f in progress(futures, total=len(futures), desc=desc, unit="chunk"):
            out.extend(f.result())
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DaskExecutor:
    """A Dask distributed cluster, reached by scheduler address (``tcp://host:8786``) or a Client.

    Needs the ``dedup`` extra (``dask[distributed]``). Chunks are submitted as tasks and gathered
    in order, so the results are those of the local executors, item for item.
    """

    def __init__(self, scheduler: str | Any, *, chunk_size: int = 64, timeout: float = 20.0):
        distributed = require("distributed", "dedup")
        if isinstance(scheduler, str):
            try:
                self.client = distributed.Client(scheduler, timeout=f"{timeout}s")
            except OSError as exc:
                raise UsageError(f"cannot reach the Dask scheduler: {exc}", file=scheduler) from exc
            self._own = True
        else:
            self.client = scheduler
            self._own = False
        self.chunk_size = chunk_size

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str = "") -> list[R]:
        if not items:
            return []
        chunks = [list(c) for c in _chunks(items, self.chunk_size)]
        futures = self.client.map(_run_chunk, [fn] * len(chunks), chunks, pure=False)
        out: list[R] = []
        for part in self.client.gather(futures):
            out.extend(part)
        return out

    def close(self) -> None:
        if self._own:
            self.client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get_executor(scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor for a command line: Dask when a scheduler address is given, else local processes."""
    if scheduler:
        return DaskExecutor(scheduler)
    return LocalExecutor(workers)
