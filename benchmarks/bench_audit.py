"""Audit benchmark: the audit's own overhead on top of cleanlab's call (issue 5, target ≤ 10 %).

Generates N images (default 1,000,000) with one whole-image ``label`` each over K classes
(default 100, long-tailed), and out-of-sample probabilities from a noisy softmax mixed with a
Dirichlet draw, with ~5 % of the given labels wrong. In one process it then times, interleaved
and repeated:

(a) cleanlab alone: ``filter.find_label_issues(labels, pred_probs)`` + ``rank.get_label_quality_scores``;
(b) ``imagine.curate.audit.labels.classification_issues(ds, ClassPredictions(...))`` on the same arrays;
(c) optionally (``--parquet``) the full path from a ``pred_probs.parquet`` file through
    ``load_class_predictions`` and then (b).

and prints wall time (median of ``--repeat``), peak RSS during each phase (this process plus its
children: cleanlab forks workers) and overhead = (b − a) / a. Figures are printed, not asserted.

    python benchmarks/bench_audit.py [--images 1000000] [--classes 100] [--repeat 3] [--parquet]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import psutil

from imagine.curate.audit.labels import classification_issues
from imagine.curate.audit.predictions import ClassPredictions, load_class_predictions
from imagine.curate.model import Dataset


def synthetic(n: int, k: int, noise: float = 0.05, seed: int = 0) -> tuple[Dataset, ClassPredictions, np.ndarray]:
    """A classification dataset, aligned predictions (rows in shuffled, fold-like order) and the true labels.

    True classes follow a Zipf-like prior; a fraction ``noise`` of the given labels is replaced by
    another class (half of them a fixed "look-alike" class, half uniformly). Probabilities are a
    softmax over Gaussian logits with a per-example margin on the true class (a model of roughly
    80-90 % accuracy, with hard examples), mixed 90/10 with a Dirichlet(0.1) draw.
    """
    rng = np.random.default_rng(seed)
    prior = 1.0 / np.arange(1, k + 1) ** 0.7
    truth = rng.choice(k, n, p=prior / prior.sum())
    given = truth.copy()
    flip = rng.random(n) < noise
    lookalike = (truth + 1 + rng.integers(0, 3, n)) % k
    uniform = (truth + rng.integers(1, k, n)) % k
    given[flip] = np.where(rng.random(n) < 0.5, lookalike, uniform)[flip]

    probs = np.empty((n, k), dtype=np.float64)
    chunk = 100_000
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        m = e - s
        z = rng.standard_normal((m, k))
        z[np.arange(m), truth[s:e]] += rng.gamma(6.0, 1.0, m)  # margin: most easy, some hard
        z[np.arange(m), (truth[s:e] + 1) % k] += rng.gamma(1.5, 1.0, m)  # a confusable neighbour
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        d = rng.gamma(0.1, 1.0, (m, k))
        d /= np.maximum(d.sum(axis=1, keepdims=True), 1e-300)
        p = 0.9 * p + 0.1 * d
        probs[s:e] = p / p.sum(axis=1, keepdims=True)

    ids = np.arange(n, dtype=np.int64)
    ds = Dataset.from_columns(
        images={"id": ids, "file_name": [f"img/{i:07d}.jpg" for i in range(n)]},
        annotations={"id": ids, "image_id": ids, "category_id": given, "kind": ["label"] * n},
        categories={"id": list(range(k)), "name": [f"taxon_{c:03d}" for c in range(k)]})
    order = rng.permutation(n)  # prediction rows come in cross-validation fold order, not image order
    preds = ClassPredictions(order.astype(np.int64), probs[order], list(range(k)))
    del probs
    return ds, preds, truth[order]


class PeakRSS:
    """Peak resident memory of this process and its children while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self.start = 0
        self.cpu = 0.0
        self._stop = threading.Event()

    def _rss(self) -> int:
        total = self.proc.memory_info().rss
        for c in self.proc.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        t = time.thread_time()
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.02)
        self.cpu = time.thread_time() - t  # the sampler's own CPU, taken off the measured figure

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


class Sample(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds of this process and of the workers it waited for
    peak: int  # peak RSS, bytes
    delta: int  # peak RSS above the RSS at the start, bytes


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], Any]) -> tuple[Sample, Any]:
    """Wall and CPU time, peak RSS and its rise during ``fn()``, and its result."""
    gc.collect()
    with PeakRSS() as mem:
        t, c = time.perf_counter(), cpu_seconds()
        out = fn()
        dt, dc = time.perf_counter() - t, cpu_seconds() - c
    return Sample(dt, dc - mem.cpu, mem.peak, mem.peak - mem.start), out


def cleanlab_alone(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from cleanlab import filter as filt
    from cleanlab import rank

    return (np.asarray(filt.find_label_issues(labels, probs), dtype=bool),
            np.asarray(rank.get_label_quality_scores(labels, probs), dtype=np.float64))


@contextlib.contextmanager
def cleanlab_answered(is_issue: np.ndarray, quality: np.ndarray) -> Iterator[None]:
    """cleanlab's two calls answer at once with their known results: what is left is the audit's own work."""
    from cleanlab import filter as filt
    from cleanlab import rank

    saved = filt.find_label_issues, rank.get_label_quality_scores
    filt.find_label_issues = lambda labels, pred_probs, **kw: is_issue
    rank.get_label_quality_scores = lambda labels, pred_probs, **kw: quality
    try:
        yield
    finally:
        filt.find_label_issues, rank.get_label_quality_scores = saved


def write_parquet(path: Path, preds: ClassPredictions, ds: Dataset) -> None:
    """``pred_probs.parquet`` as documented in ``predictions.py``: image_id + ``prob_<category id>``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    img_ids = ds.images.column("id").to_numpy()[preds.image_rows]
    cols = {"image_id": pa.array(img_ids)}
    cols.update({f"prob_{c}": pa.array(preds.probs[:, j]) for j, c in enumerate(preds.class_ids)})
    pq.write_table(pa.table(cols), path)


def gb(b: int) -> str:
    return f"{b / 2**30:6.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--parquet", action="store_true", help="also time the pred_probs.parquet → load path (c)")
    ap.add_argument("--parquet-repeat", type=int, default=1)
    args = ap.parse_args()

    load = os.getloadavg()
    print(f"audit benchmark: {args.images:,} images × {args.classes} classes, {args.repeat} repeat(s); "
          f"{os.cpu_count()} CPU(s), load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start")
    t = time.perf_counter()
    ds, preds, truth = synthetic(args.images, args.classes)
    labels = ds.annotations.column("category_id").to_numpy()[preds.image_rows]  # cleanlab's own inputs
    print(f"  generated in {time.perf_counter() - t:.1f} s: {int((labels != truth).mean() * 1000) / 10} % wrong "
          f"labels, model accuracy {(preds.probs.argmax(1) == truth).mean():.3f}, pred_probs "
          f"{preds.probs.nbytes / 2**20:.0f} MiB, RSS {gb(psutil.Process().memory_info().rss)} GiB")

    small, small_preds, _ = synthetic(2000, args.classes, seed=1)  # warm-up: imports, first-call costs
    cleanlab_alone(small.annotations.column("category_id").to_numpy()[small_preds.image_rows], small_preds.probs)
    classification_issues(small, small_preds)
    rows: dict[str, list[Sample]] = {"a": [], "b": [], "own": []}
    ref: tuple[np.ndarray, np.ndarray] | None = None
    res: Any = None
    for rep in range(args.repeat):
        # interleave (a) and (b), alternating which goes first, so that load drift hits both alike
        for phase in (("a", "b", "own") if rep % 2 == 0 else ("b", "a", "own")):
            if phase == "a":
                m, ref = measure(lambda: cleanlab_alone(labels, preds.probs))
            elif phase == "b":
                m, res = measure(lambda: classification_issues(ds, preds))
            else:
                assert ref is not None
                with cleanlab_answered(*ref):
                    m, _ = measure(lambda: classification_issues(ds, preds))
            rows[phase].append(m)
            print(f"  repeat {rep + 1} ({phase}) wall {m.wall:7.2f} s  CPU {m.cpu:7.2f} s  peak RSS {gb(m.peak)} GiB "
                  f"(+{gb(m.delta)})  load {os.getloadavg()[0]:.1f}")
    assert ref is not None and res is not None
    same = bool((res.is_issue == ref[0]).all() and np.array_equal(res.quality, ref[1]))
    flagged = ref[0]
    wrong = labels != truth
    print(f"  same result as cleanlab: {same}; cleanlab flags {int(flagged.sum()):,} "
          f"(precision {(wrong & flagged).sum() / max(flagged.sum(), 1):.2f}, recall "
          f"{(wrong & flagged).sum() / max(wrong.sum(), 1):.2f} against the injected errors)")
    del res

    if args.parquet:
        rows["c"] = []
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pred_probs.parquet"
            write_parquet(path, preds, ds)
            print(f"  wrote {path.name}: {path.stat().st_size / 2**20:.0f} MiB")
            for rep in range(args.parquet_repeat):
                m1, loaded = measure(lambda: load_class_predictions(path, ds))
                m2, _ = measure(lambda: classification_issues(ds, loaded))  # noqa: B023
                rows["c"].append(Sample(m1.wall + m2.wall, m1.cpu + m2.cpu, max(m1.peak, m2.peak), m1.delta))
                print(f"  repeat {rep + 1} (c) load wall {m1.wall:7.2f} s CPU {m1.cpu:7.2f} s + issues wall "
                      f"{m2.wall:7.2f} s CPU {m2.cpu:7.2f} s  peak RSS {gb(max(m1.peak, m2.peak))} GiB "
                      f"(+{gb(m1.delta)} while loading)")
                del loaded

    wall = {k: statistics.median(r.wall for r in v) for k, v in rows.items()}
    cpu = {k: statistics.median(r.cpu for r in v) for k, v in rows.items()}
    peaks = {k: max(r.peak for r in v) for k, v in rows.items()}
    deltas = {k: max(r.delta for r in v) for k, v in rows.items()}
    names = {"a": "(a) cleanlab alone", "b": "(b) classification_issues", "own": "(b) without cleanlab's calls",
             "c": "(c) parquet → load + (b)"}
    print()
    print(f"| {'step':<28} | {'wall s':>8} | {'vs (a)':>8} | {'CPU s':>8} | {'vs (a)':>8} | {'peak RSS GiB':>12} "
          f"| {'+RSS GiB':>8} |")
    print(f"|{'-' * 30}|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|{'-' * 13}:|{'-' * 9}:|")

    def vs(d: dict[str, float], k: str) -> str:
        if k == "a":
            return ""
        extra = d[k] if k == "own" else d[k] - d["a"]  # what comes on top of cleanlab's calls
        return f"{extra / d['a'] * 100:+7.1f}%"

    for k in rows:
        print(f"| {names[k]:<28} | {wall[k]:8.2f} | {vs(wall, k):>8} | {cpu[k]:8.2f} | {vs(cpu, k):>8} "
              f"| {gb(peaks[k]):>12} | {gb(deltas[k]):>8} |")
    paired = [(b.wall - a.wall) / a.wall * 100 for a, b in zip(rows["a"], rows["b"], strict=True)]
    over_wall = (wall["b"] - wall["a"]) / wall["a"] * 100
    over_cpu = (cpu["b"] - cpu["a"]) / cpu["a"] * 100
    own_wall, own_cpu = wall["own"] / wall["a"] * 100, cpu["own"] / cpu["a"] * 100
    print(f"\noverhead (b − a) / a as a difference of medians: wall {over_wall:+.1f} % (per repeat: "
          f"{', '.join(f'{p:+.1f} %' for p in paired)}), CPU {over_cpu:+.1f} %")
    print(f"overhead measured directly (the audit's own work, cleanlab's calls answered from their results) / (a): "
          f"wall {own_wall:.1f} %, CPU {own_cpu:.1f} %; target ≤ 10 %: "
          f"{'met' if max(own_wall, own_cpu) <= 10 else 'NOT met'}")
    print(f"load average at end {os.getloadavg()[0]:.1f}: wall times on a shared machine; CPU time is the steadier "
          f"figure. RSS counts cleanlab's forked workers in full (pages shared with the parent included).")

if __name__ == "__main__":
    main()
