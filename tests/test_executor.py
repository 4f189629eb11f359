"""The executor interface: local processes and a Dask cluster give the serial results, item for item."""

from __future__ import annotations

import numpy as np
import pytest

from imagine.curate.dedup import ImageHashes, dedup, hash_file, image_hashes, image_paths
from imagine.curate.executor import DaskExecutor, LocalExecutor, SerialExecutor, get_executor
from imagine.curate.model import Dataset
from imagine.kernel import UsageError
from tests.fixtures.cleaning.data import fishcam


@pytest.fixture(scope="module")
def fish() -> Dataset:
    """Every third FishCam crop (351 images): enough chunks for two workers, quick to hash."""
    ds = fishcam()
    return ds.filter_images(np.arange(len(ds)) % 3 == 0)


@pytest.fixture(scope="module")
def serial(fish: Dataset) -> ImageHashes:
    return image_hashes(fish, executor=SerialExecutor())


def test_local_processes_match_serial(fish: Dataset, serial: ImageHashes) -> None:
    with LocalExecutor(2, chunk_size=50, min_items=0) as ex:
        results = ex.map(hash_file, image_paths(fish))
    assert [r[0] for r in results] == serial.sha256
    assert [r[1] for r in results] == serial.phash.tolist()


def test_dask_cluster_matches_serial(fish: Dataset, serial: ImageHashes) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        ex = get_executor(cluster.scheduler_address)
        assert isinstance(ex, DaskExecutor)
        try:
            assert len(cluster.scheduler_info["workers"]) == 2
            on_cluster = image_hashes(fish, executor=ex)
        finally:
            ex.close()
    assert on_cluster.sha256 == serial.sha256
    assert np.array_equal(on_cluster.phash, serial.phash) and on_cluster.ok.all()
    a = dedup(fish, hashes=on_cluster, annotation_iou=None)
    b = dedup(fish, hashes=serial, annotation_iou=None)
    assert np.array_equal(a.group, b.group) and a.report() == b.report()
    assert a.report()["summary"]["groups"] > 0


def test_bad_worker_count_and_unreachable_scheduler() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        LocalExecutor(0)
    with pytest.raises(UsageError, match="Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", timeout=1)
