"""Upload benchmark: the Zenodo client versus ``curl -T`` to the same local repository, same run.

Targets (issue 7): uploading a 2 GB file keeps the client's peak memory <= 150 MB and reaches
>= 70 % of curl's throughput. The file is sparse and temporary; the repository runs in its own
process on a free port with a throw-away token (passed to curl through a 0600 header file, never on
a command line). Usage: ``python benchmarks/bench_upload.py [--size-gb 2] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from imagine.publish.zenodo import ZenodoClient, file_md5
base, bucket, path, md5, mode = sys.argv[1:6]
token = sys.stdin.readline().strip()
c = ZenodoClient(base, token, stream_md5=(mode == "stream"))
t0 = time.perf_counter()
obj = c.upload(bucket, Path(path), "big.bin", md5)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "checksum": obj["checksum"]}))
"""

SERVER = r"""
import sys
from imagine.publish.localrepo import start_server
import time
srv = start_server(sys.argv[1], port=int(sys.argv[2]))
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    size = int(args.size_gb * 1024**3)
    work = Path(tempfile.mkdtemp(prefix="imagine-bench-upload-"))
    server = None
    try:
        root = work / "repo"
        root.mkdir()
        token = os.urandom(16).hex()
        fd = os.open(root / "tokens.json", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({token: 1}, fh)
        hdr = work / "headers"
        fd = os.open(hdr, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"Authorization: Bearer {token}\nContent-Type: application/octet-stream\n")
        big = work / "big.bin"
        with open(big, "wb") as bf:  # sparse: no disk space used for the source
            bf.truncate(size)
        md5 = subprocess.run(["md5sum", str(big)], capture_output=True, text=True, check=True).stdout.split()[0]

        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)], stdout=subprocess.PIPE,
                                  text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        base = f"http://127.0.0.1:{port}/api"
        dep = requests.post(f"{base}/deposit/depositions", json={}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()
        bucket = dep["links"]["bucket"]

        def run_curl() -> float:
            t0 = time.perf_counter()
            out = subprocess.run(["curl", "-sS", "-T", str(big), "-H", f"@{hdr}", "-o", "/dev/null",
                                  "-w", "%{http_code}", f"{bucket}/big.bin"], capture_output=True, text=True)
            assert out.stdout == "201", (out.stdout, out.stderr)
            return time.perf_counter() - t0

        def run_client(mode: str) -> tuple[float, float]:
            res = subprocess.run([sys.executable, "-c", CHILD, base, bucket, str(big), md5, mode], input=token + "\n",
                                 capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(res.stderr)
            doc = json.loads(res.stdout)
            assert doc["checksum"] == f"md5:{md5}"
            return float(doc["seconds"]), float(doc["peak_rss_mb"])

        modes = {"stream": "client, MD5 hashed on the fly while sending (default)",
                 "precomputed": "client, stream_md5=False (server MD5 checked against the checksum pass)"}
        curl_t: list[float] = []
        times: dict[str, list[float]] = {m: [] for m in modes}
        ratios: dict[str, list[float]] = {m: [] for m in modes}
        peaks: list[float] = []
        for r in range(args.rounds):  # alternate the order: the machine is shared and noisy
            order = ["curl", *modes] if r % 2 == 0 else [*reversed(modes), "curl"]
            got: dict[str, float] = {}
            for who in order:
                if who == "curl":
                    got[who] = run_curl()
                else:
                    got[who], peak = run_client(who)
                    peaks.append(peak)
            curl_t.append(got["curl"])
            for m in modes:
                times[m].append(got[m])
                ratios[m].append(got["curl"] / got[m])
        mb = size / 1e6
        print(f"file: {size / 1024**3:.2f} GiB sparse, {args.rounds} round(s), {os.cpu_count()} shared cores, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"curl -T: best {mb / min(curl_t):6.1f} MB/s, median {mb / statistics.median(curl_t):6.1f} MB/s")
        for m, label in modes.items():
            med = mb / statistics.median(times[m])
            print(f"{label}:\n  best {mb / min(times[m]):6.1f} MB/s, median {med:6.1f} MB/s;"
                  f" ratio to curl per round {', '.join(f'{x * 100:.0f} %' for x in ratios[m])}; "
                  f"median {statistics.median(ratios[m]) * 100:.0f} %   (target >= 70 %)")
        print(f"client peak RSS: {max(peaks):.0f} MB   (target <= 150 MB)")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
