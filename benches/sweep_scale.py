#!/usr/bin/env python3
"""Scale of a sweep: 100 runs of a 1,000-stage chain (100,000 stages), then no-op reruns.

The chain: stage i copies stage i-1's output and appends its name (s0000 reads inputs/seed.txt).
The pipeline has a `seed` param no stage reads, swept over 1..100, so the first sweep runs the
1,000 stages once and every other run finds them in the store. Each no-op rerun plans the 100 runs,
finds all 100,000 stages in the store and records the runs; its wall time and peak RSS are printed
(median [min-max] with the load).

Usage (from the repository, after `cargo build --release`):
  python3 benches/sweep_scale.py [--reps 5] [--stages 1000] [--runs 100]
pipe is found through PIPE_BIN (default target/release/pipe); the workspace goes to
SWEEP_SCALE_DIR (default $TMPDIR/sweep-scale).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIPE = os.environ.get("PIPE_BIN", str(REPO / "target" / "release" / "pipe"))
BASE = Path(os.environ.get("SWEEP_SCALE_DIR", Path(tempfile.gettempdir()) / "sweep-scale"))


def chain(stages):
    lines = ["params:", "  seed: 1", "stages:"]
    for i in range(stages):
        src = "inputs/seed.txt" if i == 0 else f"out/s{i - 1:04}.txt"
        lines += [
            f"  s{i:04}:",
            f"    cmd: cat {src} > out/s{i:04}.txt && echo s{i:04} >> out/s{i:04}.txt",
            f"    deps: [{src}]",
            f"    outs: [out/s{i:04}.txt]",
        ]
    return "\n".join(lines) + "\n"


def run(args):
    """Wall seconds and the process's peak RSS in MiB."""
    start = time.perf_counter()
    proc = subprocess.Popen([PIPE, *args], cwd=BASE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"pipe {' '.join(args)} failed:\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--stages", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=100)
    a = ap.parse_args()
    shutil.rmtree(BASE, ignore_errors=True)
    (BASE / "inputs").mkdir(parents=True)
    (BASE / "inputs" / "seed.txt").write_text("seed\n")
    (BASE / "pipe.yaml").write_text(chain(a.stages))
    sweep = ["-q", "run", "pipe.yaml", "--sweep", f"seed=1..{a.runs}", "--jobs", "2"]
    print(f"load before: {open('/proc/loadavg').read().split()[:3]}")
    first, first_rss = run(sweep)
    print(f"first sweep ({a.runs} runs x {a.stages} stages, the chain runs once): "
          f"{first:.2f} s, peak RSS {first_rss:.0f} MiB")
    walls, peaks = zip(*(run(sweep) for _ in range(a.reps)))
    print(f"no-op rerun: {statistics.median(walls):.2f} s [{min(walls):.2f}-{max(walls):.2f}], "
          f"peak RSS {statistics.median(peaks):.0f} MiB [{min(peaks):.0f}-{max(peaks):.0f}], "
          f"{a.reps} reruns")
    print(f"load after: {open('/proc/loadavg').read().split()[:3]}")


if __name__ == "__main__":
    main()
