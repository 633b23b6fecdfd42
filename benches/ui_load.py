#!/usr/bin/env python3
"""The dashboard with 1,000 recorded runs: how long the runs page takes to load in headless Chromium
(navigation start to the load event, as the page records it) and the server's peak RSS.

Usage (from the repository, after `cargo build --release`; Chromium on PATH or in CHROMIUM):
  python3 benches/ui_load.py [--runs 1000] [--reps 5]
Work files go to UI_BENCH_DIR (default $TMPDIR/ui-bench).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPE = os.environ.get("PIPE_BIN", str(REPO / "target" / "release" / "pipe"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "chromium"
BASE = Path(os.environ.get("UI_BENCH_DIR", Path(tempfile.gettempdir()) / "ui-bench"))
PIPELINE = """params:
  lr: 0.1
  seed: 1
stages:
  train:
    cmd: >-
      awk 'BEGIN { printf "{\\"accuracy\\": %.3f}", 0.5 + ${params.lr} }' > metrics.json
    metrics: [metrics.json]
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(parents=True)
    (BASE / "p.yaml").write_text(PIPELINE)
    subprocess.run([PIPE, "-q", "run", "p.yaml", "--sweep", f"seed=1..{a.runs}"], cwd=BASE,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = subprocess.Popen([PIPE, "ui", "--port", "0"], cwd=BASE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+", server.stderr.readline()).group(0)
        print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
        profile = BASE / "chromium-profile"
        # The runs are one sweep: folded under its row by default, every row shown with #sweeps-open.
        for view, address in [("sweep folded", url), ("every run shown", url + "#sweeps-open")]:
            loads = []
            for _ in range(a.reps):
                dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                      "--dump-dom", f"--user-data-dir={profile}", address],
                                     capture_output=True, text=True, check=True).stdout
                loads.append(int(re.search(r'data-load-ms="(\d+)"', dom).group(1)))
            print(f"runs page with {a.runs} runs, {view}: load event {statistics.median(loads)} ms "
                  f"[{min(loads)}-{max(loads)}] over {a.reps} loads")
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
        print(f"server peak RSS {peak:.1f} MiB")
        print(f"load after: {open('/proc/loadavg').read().split()[:3]}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
