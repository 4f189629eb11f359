"""Time COCO → YOLO and COCO → VOC conversions, ours and the peers' (when installed), in fresh processes.

Each (tool, target) runs in its own child process; the parent measures the wall time from spawn
to exit (interpreter start and exit included) and the child's peak RSS (``os.wait4``). Peers run
with the Python given by ``--peer-python`` (a separate venv, so that their dependencies do not
touch ours): Datumaro (``Dataset.import_from(..., "coco_instances")`` → ``export(..., "yolo" |
"voc_detection")``), globox (``AnnotationSet.from_coco`` → ``save_yolo_darknet`` /
``save_pascal_voc``) and panlabel (``panlabel convert -f coco -t yolo|voc --allow-lossy``).
A peer that is not installed is listed as such. Outputs go to a scratch folder that is removed
after each run (outside the timed part).

    python benchmarks/make_synth_coco.py /tmp/synth.json
    python benchmarks/bench_convert.py /tmp/synth.json [--peer-python /work/bench-venv/bin/python]
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("coco", type=Path)
    ap.add_argument("--peer-python", default="/work/bench-venv/bin/python")
    ap.add_argument("--targets", default="yolo,voc")
    ap.add_argument("--tools", default="imagine,panlabel,globox,datumaro")
    ap.add_argument("--scratch", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=args.scratch))
    peer_py = args.peer_python if Path(args.peer_python).exists() else None
    panlabel = shutil.which("panlabel") or (str(Path(args.peer_python).parent / "panlabel")
                                            if peer_py and (Path(args.peer_python).parent / "panlabel").exists()
                                            else None)
    rows: list[tuple[str, str, float | None, float | None, int | None, str]] = []
    for tool in args.tools.split(","):
        for target in args.targets.split(","):
            out = scratch / f"{tool}-{target}"
            if tool == "imagine":
                cmd = [sys.executable, "-c", OURS, str(args.coco), str(out), target]
            elif tool == "panlabel":
                if not panlabel:
                    rows.append((tool, target, None, None, None, "not installed"))
                    continue
                cmd = [panlabel, "convert", "-f", "coco", "-t", target, "-i", str(args.coco), "-o", str(out),
                       "--allow-lossy"]
            else:
                if not peer_py or subprocess.run([peer_py, "-c", f"import {tool}"], capture_output=True).returncode:
                    rows.append((tool, target, None, None, None, "not installed"))
                    continue
                src = args.coco.resolve()
                if tool == "datumaro":  # its importer wants annotations/instances_<subset>.json
                    link = scratch / "dm" / "annotations" / "instances_default.json"
                    link.parent.mkdir(parents=True, exist_ok=True)
                    (scratch / "dm" / "images").mkdir(exist_ok=True)  # and an images/ folder beside
                    if not link.exists():
                        link.symlink_to(src)
                    src = scratch / "dm"
                cmd = [peer_py, "-c", DATUMARO if tool == "datumaro" else GLOBOX, str(src), str(out), target]
            wall, rss, rc = _run(cmd, args.timeout)
            files = _count(out) if out.exists() else 0
            status = "ok" if rc == 0 else f"killed after {args.timeout:.0f} s" if rc == -9 else f"exit {rc}"
            rows.append((tool, target, wall, rss, files, status))
            print(f"{tool:9s} → {target:4s} {wall:7.2f} s  {rss:7.0f} MB  {files:7d} files  "
                  f"{rows[-1][5]}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{args.coco.name}, {os.cpu_count()} cores, load average now {os.getloadavg()[0]:.1f}")
    print("| tool | target | wall s | peak RSS MB | files | status |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        w = f"{row[2]:.2f}" if row[2] is not None else "—"
        r = f"{row[3]:.0f}" if row[3] is not None else "—"
        print(f"| {row[0]} | {row[1]} | {w} | {r} | {row[4] if row[4] is not None else '—'} | {row[5]} |")


if __name__ == "__main__":
    main()
