"""Time COCO → YOLO and COCO → VOC conversions, ours and the peers' (when installed), in fresh processes.

Each (tool, target) runs in its own child process; the parent measures the wall time from spawn
to exit (interpreter start and exit included) and the child's peak RSS (``os.wait4``). Peers run
with the Python given by ``--peer-python`` (a separate venv, so that their dependencies do not
touch ours): Datumaro (``Dataset.import_from(..., "coco_instances")`` → ``export(..., "yolo" |
"voc_detection")``), globox (``AnnotationSet.from_coco`` → ``save_yolo_darknet`` /
``save_pascal_voc``) and panlabel (``panlabel convert -f coco -t yolo|voc --allow-lossy``).
A peer that is not installed is listed as such. Every run writes into a fresh folder of a scratch
folder that is removed only at the end; between runs ``sync`` and ``--settle`` seconds of rest
let the previous run's writes reach the disk. Measured here (ext4 mounted with ``discard``):
creating files in the seconds after 100 000 files were deleted is up to 10× slower, so deleting
outputs between runs would make each run pay for the previous one's clean-up. ``--repeat`` runs rounds over all
(tool, target) pairs, interleaved, and the table gives the median and every value. Each round
starts with a disk probe (20 000 bare file creations in one folder) that says how fast the disk
creates files at that moment, since that is most of every tool's time.

    python benchmarks/make_synth_coco.py /tmp/synth.json
    python benchmarks/bench_convert.py /tmp/synth.json [--peer-python /work/bench-venv/bin/python] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

OURS = """
import sys
from imagine.curate.formats import convert
convert(sys.argv[1], sys.argv[2], sys.argv[3], "coco", images="none")
"""

DATUMARO = """
import sys
import datumaro as dm
ds = dm.Dataset.import_from(sys.argv[1], "coco_instances")
ds.export(sys.argv[2], {"yolo": "yolo", "voc": "voc_detection"}[sys.argv[3]], save_media=False)
"""

GLOBOX = """
import sys
from pathlib import Path
from globox import AnnotationSet
a = AnnotationSet.from_coco(Path(sys.argv[1]))
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
if sys.argv[3] == "yolo":
    ids = {l: i for i, l in enumerate(sorted(a._labels()))} if hasattr(a, "_labels") else \\
        {l: i for i, l in enumerate(sorted({b.label for ann in a for b in ann.boxes}))}
    a.save_yolo_darknet(out, label_to_id=ids)
else:
    a.save_pascal_voc(out)
"""


def _run(cmd: list[str], timeout: float) -> tuple[float, float, int]:
    """Run ``cmd``; (wall seconds, peak RSS in MB, exit code); killed after ``timeout`` seconds."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    wall = time.perf_counter() - t
    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.stderr.write(f"  {' '.join(cmd[:3])} … failed: {err.strip().splitlines()[-1:] }\n")
    return wall, ru.ru_maxrss / 1024, p.returncode


def _count(folder: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(folder))


def _settle(seconds: float) -> None:
    os.sync()
    time.sleep(seconds)


def _probe(scratch: Path, settle: float, n: int = 20_000) -> float:
    """Seconds to create ``n`` empty files in a fresh folder (then removed, and the disk let settle)."""
    d = Path(tempfile.mkdtemp(prefix="probe-", dir=scratch))
    t = time.perf_counter()
    for i in range(n):
        os.close(os.open(d / f"{i:08d}.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    took = time.perf_counter() - t
    _settle(settle)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("coco", type=Path)
    ap.add_argument("--peer-python", default="/work/bench-venv/bin/python")
    ap.add_argument("--targets", default="yolo,voc")
    ap.add_argument("--tools", default="imagine,panlabel,globox,datumaro")
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over every (tool, target)")
    ap.add_argument("--settle", type=float, default=20, help="seconds of rest after removing an output")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=args.scratch))
    peer_py = args.peer_python if Path(args.peer_python).exists() else None
    panlabel = shutil.which("panlabel") or (str(Path(args.peer_python).parent / "panlabel")
                                            if peer_py and (Path(args.peer_python).parent / "panlabel").exists()
                                            else None)
    results: dict[tuple[str, str], list[tuple[float, float, int, str]]] = {}
    missing: dict[tuple[str, str], str] = {}
    probes: list[float] = []
    _settle(args.settle)
    for rnd in range(args.repeat):
        probes.append(_probe(scratch, args.settle))
        print(f"round {rnd + 1}: disk probe {probes[-1]:.2f} s for 20 000 file creations", flush=True)
        for tool in args.tools.split(","):
            for target in args.targets.split(","):
                out = Path(tempfile.mkdtemp(prefix=f"{tool}-{target}-", dir=scratch)) / "out"
                cmd = _command(tool, target, out, args, scratch, peer_py, panlabel)
                if isinstance(cmd, str):
                    missing[tool, target] = cmd
                    continue
                wall, rss, rc = _run(cmd, args.timeout)
                files = _count(out) if out.exists() else 0
                status = "ok" if rc == 0 else f"killed after {args.timeout:.0f} s" if rc == -9 else f"exit {rc}"
                results.setdefault((tool, target), []).append((wall, rss, files, status))
                print(f"{tool:9s} → {target:4s} {wall:7.2f} s  {rss:7.0f} MB  {files:7d} files  {status}", flush=True)
                _settle(args.settle)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.coco.name}, {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}, disk probes "
          + ", ".join(f"{p:.2f}" for p in probes) + " s")
    print("| tool | target | median wall s | all runs s | peak RSS MB | files | status |")
    print("|---|---|---|---|---|---|---|")
    for tool in args.tools.split(","):
        for target in args.targets.split(","):
            if (tool, target) in missing:
                print(f"| {tool} | {target} | — | — | — | — | {missing[tool, target]} |")
                continue
            runs = results.get((tool, target), [])
            walls = [r[0] for r in runs]
            print(f"| {tool} | {target} | {statistics.median(walls):.2f} | {', '.join(f'{w:.2f}' for w in walls)} | "
                  f"{max(r[1] for r in runs):.0f} | {runs[-1][2]} | {', '.join(sorted({r[3] for r in runs}))} |")


def _command(tool: str, target: str, out: Path, args: argparse.Namespace, scratch: Path, peer_py: str | None,
             panlabel: str | None) -> list[str] | str:
    """The command line of one (tool, target) run writing to ``out``, or why it cannot run."""
    if tool == "imagine":
        return [sys.executable, "-c", OURS, str(args.coco), str(out), target]
    if tool == "panlabel":
        if not panlabel:
            return "not installed"
        return [panlabel, "convert", "-f", "coco", "-t", target, "--allow-lossy", "-i", str(args.coco), "-o", str(out)]
    if not peer_py or subprocess.run([peer_py, "-c", f"import {tool}"], capture_output=True).returncode:
        return "not installed"
    src = args.coco.resolve()
    if tool == "datumaro":  # its importer wants annotations/instances_<subset>.json and images/ beside
        link = scratch / "dm" / "annotations" / "instances_default.json"
        link.parent.mkdir(parents=True, exist_ok=True)
        (scratch / "dm" / "images").mkdir(exist_ok=True)
        if not link.exists():
            link.symlink_to(src)
        src = scratch / "dm"
    return [peer_py, "-c", DATUMARO if tool == "datumaro" else GLOBOX, str(src), str(out), target]


if __name__ == "__main__":
    main()
