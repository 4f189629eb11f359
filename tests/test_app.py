"""The FiftyOne review loop for real: load a dataset with its audit, start the app, look at it in headless
Chromium (Debian's chromium + chromedriver, driven by Selenium), tag and edit through the FiftyOne API, and
bring the review back as a new dataset version with a changelog."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imagine.curate.audit import audit, write_audit
from imagine.curate.cli import main
from imagine.curate.formats import read_dataset
from imagine.curate.model import Dataset

FISHCAM = Path(__file__).parent / "fixtures" / "fishcam"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def fo_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private FiftyOne database for this module (its bundled mongod starts on first use)."""
    db = tmp_path_factory.mktemp("fo-db")
    old = {k: os.environ.get(k) for k in ("FIFTYONE_DATABASE_DIR", "FIFTYONE_DO_NOT_TRACK")}
    os.environ["FIFTYONE_DATABASE_DIR"] = str(db)
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Path]:
    """Every 50th FishCam crop (22 images, all 7 species) with an audit from the real VGG outputs."""
    from .test_audit import vgg_predictions

    ds = read_dataset(FISHCAM / "data", "imagefolder")
    ds = ds.filter_images(np.arange(len(ds)) % 50 == 0)
    out = tmp_path_factory.mktemp("audit")
    pred, _, _ = vgg_predictions(read_dataset(FISHCAM / "data", "imagefolder"), out)
    res = audit(ds, predictions=pred, source="fishcam-small")
    write_audit(ds, res, out / "audit")
    return ds, out / "audit"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_app_shows_samples_and_audit_tags_in_chromium(fo_env: None, small: tuple[Dataset, Path]) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from imagine.curate.audit.app import launch, load_into_fiftyone

    ds, audit_dir = small
    fds = load_into_fiftyone(ds, "fishcam-app-test", audit_dir=audit_dir)
    assert len(fds) == len(ds)
    assert set(fds.list_saved_views()) == {"suspect labels", "duplicates"}
    tagged = fds.count_sample_tags()
    assert tagged.get("label_issue", 0) == sum(1 for v in json.loads(json.dumps(
        fds.values("is_label_issue"))) if v)
    port = _free_port()
    session = launch(fds, port=port)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{port}/datasets/fishcam-app-test")
        text = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = driver.find_element("tag name", "body").text
            if f"{len(ds)} samples" in text and "is_label_issue" in text:
                break
            time.sleep(1)
        assert f"{len(ds)} samples" in text, text[:2000]
        for field in ("is_label_issue", "label_quality", "suggested_label", "duplicate_group", "ground_truth"):
            assert field in text, field
        # close the app's pop-ups, then expand the sample-tags filter: the audit's tags are listed there
        for label in ("Dismiss", "Disable"):
            for b in driver.find_elements("xpath", f"//*[text()='{label}']"):
                driver.execute_script("arguments[0].click()", b)
        el = next(e for e in driver.find_elements("xpath", "//*[text()='sample tags']"))
        driver.execute_script("arguments[0].click()", el)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "label_issue" not in driver.find_element("tag name", "body").text:
            time.sleep(0.5)
        assert "label_issue" in driver.find_element("tag name", "body").text
    finally:
        driver.quit()
        session.close()


def test_review_comes_back_as_new_version(fo_env: None, small: tuple[Dataset, Path], tmp_path: Path) -> None:
    import fiftyone as fo

    from imagine.curate.audit.app import load_into_fiftyone

    ds, audit_dir = small
    fds = load_into_fiftyone(ds, "fishcam-review-test", audit_dir=audit_dir)
    samples = list(fds.iter_samples())
    samples[0].tags.append("delete")
    samples[0].save()
    samples[1].tags.append("mislabeled")
    old_label = samples[1]["ground_truth"].label
    new_label = "perch" if old_label != "perch" else "nase"
    samples[1]["ground_truth"].label = new_label
    samples[1].save()
    samples[2].tags.append("ok")
    samples[2].save()
    src = tmp_path / "src"
    from imagine.curate.formats import write_dataset

    write_dataset(ds, src, "native", images="link")
    r = CliRunner().invoke(main, ["review", str(src), str(tmp_path / "v2"), "--from-app", "fishcam-review-test",
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["summary"] == {"image-deleted": 1, "image-tagged-mislabeled": 1, "label-changed": 1,
                              "image-tagged-ok": 1}
    v2 = read_dataset(tmp_path / "v2")
    assert len(v2) == len(ds) - 1
    names = v2.category_names()
    f1 = samples[1]["file_name"]
    row = v2.images.column("file_name").to_pylist().index(f1)
    img_id = v2.images.column("id")[row].as_py()
    cat = [c for i, c in zip(v2.annotations.column("image_id").to_pylist(),
                             v2.annotations.column("category_id").to_pylist(), strict=True) if i == img_id]
    assert [names[c] for c in cat] == [new_label]
    assert json.loads(v2.images.column("attributes")[row].as_py())["review"] == "mislabeled"
    assert v2.info["provenance"][-1]["step"] == "review"
    log = json.loads((tmp_path / "v2.changelog.json").read_text())
    assert log["version"] == v2.info["version"] and len(log["changes"]) == 4
    assert "label-changed" in (tmp_path / "v2.changelog.md").read_text()
    assert samples[0]["file_name"] not in v2.images.column("file_name").to_pylist()
    fo.delete_dataset("fishcam-review-test")
