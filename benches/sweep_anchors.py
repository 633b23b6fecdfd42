#!/usr/bin/env python3
"""Side-by-side benchmark of a 20-run parameter sweep: pipe vs Snakemake vs DVC.

Workload (same for every tool): 3 stages swept over seed=1..20
  prepare  (no seed; `sleep 1 && echo data > data.txt`; a good tool runs it once)
  train    (echo <seed> > model[-<seed>].txt)
  evaluate (printf '{"accuracy": <seed>}' > metrics[-<seed>].json)

Repetitions alternate tools: pipe, snakemake, dvc, pipe, snakemake, dvc, ...
(DVC only for its first --dvc-reps rounds). Each repetition runs in a fresh
directory; setup (copying files, git init, dvc init, commit) is not timed.

Usage (from the repository, after `cargo build --release`):
  python3 benches/sweep_anchors.py [--reps 5] [--dvc-reps 3]
Tools are found through PIPE_BIN (default target/release/pipe), SNAKEMAKE and DVC (default: on PATH;
--dvc-reps 0 skips DVC). Work files and result.txt go to SWEEP_BENCH_DIR (default $TMPDIR/sweep-bench).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = Path(os.environ.get("SWEEP_BENCH_DIR", Path(tempfile.gettempdir()) / "sweep-bench"))
PIPE = os.environ.get("PIPE_BIN", str(REPO / "target" / "release" / "pipe"))
SNAKEMAKE = os.environ.get("SNAKEMAKE") or shutil.which("snakemake") or "snakemake"
DVC = os.environ.get("DVC") or shutil.which("dvc") or "dvc"
SEEDS = range(1, 21)
RESULT = BASE / "result.txt"

# `cmd:` of evaluate is a folded block scalar: as a plain scalar, `{"accuracy": %s}`
# contains ": " and is not valid YAML.
PIPE_YAML = """params:
  seed: 1
stages:
  prepare:
    cmd: sleep 1 && echo data > data.txt{counter}
    outs: [data.txt]
  train:
    cmd: echo ${{params.seed}} > model.txt
    deps: [data.txt]
    outs: [model.txt]
  evaluate:
    cmd: >-
      printf '{{"accuracy": %s}}' ${{params.seed}} > metrics.json
    deps: [model.txt]
    metrics: [metrics.json]
"""

SNAKEFILE = '''SEEDS = range(1, 21)

rule all:
    input: expand("metrics-{{seed}}.json", seed=SEEDS)

rule prepare:
    output: "data.txt"
    shell: "sleep 1 && echo data > data.txt{counter}"

rule train:
    input: "data.txt"
    output: "model-{{seed}}.txt"
    shell: "echo {{wildcards.seed}} > {{output}}"

rule evaluate:
    input: "model-{{seed}}.txt"
    output: "metrics-{{seed}}.json"
    shell: """printf '{{{{"accuracy": %s}}}}' {{wildcards.seed}} > {{output}}"""
'''

DVC_YAML = """stages:
  prepare:
    cmd: sleep 1 && echo data > data.txt{counter}
    outs: [data.txt]
  train:
    cmd: echo ${{seed}} > model.txt
    deps: [data.txt]
    params: [seed]
    outs: [model.txt]
  evaluate:
    cmd: >-
      printf '{{"accuracy": %s}}' ${{seed}} > metrics.json
    deps: [model.txt]
    metrics:
      - metrics.json:
          cache: false
"""

_out = None


def log(msg=""):
    print(msg, flush=True)
    _out.write(msg + "\n")
    _out.flush()


def loadavg():
    return Path("/proc/loadavg").read_text().strip()


def sh(cmd, cwd, env=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, shell=True, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed in {cwd} (rc={r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def counter_suffix(path):
    return f" && echo x >> {path}" if path else ""


def count_lines(path):
    p = Path(path)
    return len(p.read_text().splitlines()) if p.exists() else 0


# ---------------------------------------------------------------- tools

def setup_pipe(d, counter=None):
    (d / "p.yaml").write_text(PIPE_YAML.format(counter=counter_suffix(counter)))
    return f"{PIPE} run p.yaml --sweep seed=1..20 --jobs 2 -q"


def verify_pipe(d):
    runs = [p.name for p in (d / "runs").iterdir() if p.is_dir()]
    sweeps = [r for r in runs if r.startswith("sweep-")]
    if len(runs) - len(sweeps) != 20 or len(sweeps) != 1:
        raise RuntimeError(f"pipe: expected 20 runs + 1 sweep-*, got {sorted(runs)}")
    import json
    seen = set()
    for r in runs:
        if r in sweeps:
            continue
        j = json.loads((d / "runs" / r / "run.json").read_text())
        seed = j["params"]["seed"]
        if j["status"] != "succeeded" or j["metrics"]["evaluate"]["accuracy"] != seed:
            raise RuntimeError(f"pipe: run {r} wrong: status={j['status']} seed={seed} "
                               f"metrics={j.get('metrics')}")
        seen.add(seed)
    if seen != set(SEEDS):
        raise RuntimeError(f"pipe: seeds seen {sorted(seen)}")


def setup_smk(d, counter=None):
    (d / "Snakefile").write_text(SNAKEFILE.format(counter=counter_suffix(counter)))
    return f"{SNAKEMAKE} --cores 2 --quiet"


def verify_smk(d):
    for s in SEEDS:
        txt = (d / f"metrics-{s}.json").read_text()
        if txt != f'{{"accuracy": {s}}}':
            raise RuntimeError(f"snakemake: metrics-{s}.json = {txt!r}")


def dvc_env():
    env = dict(os.environ)
    env["PATH"] = f"{Path(DVC).parent}:{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    # keep DVC's site cache (normally /var/tmp/dvc) inside the benchmark folder
    env["DVC_SITE_CACHE_DIR"] = str(BASE / "dvc-site-cache")
    return env


def setup_dvc(d, counter=None):
    env = dvc_env()
    sh("git init -q && git config user.name bench && git config user.email bench@example.com"
       " && dvc init -q", d, env)
    (d / "params.yaml").write_text("seed: 1\n")
    (d / "dvc.yaml").write_text(DVC_YAML.format(counter=counter_suffix(counter)))
    sh("git add -A && git commit -qm init", d, env)
    queue = " && ".join(f"dvc exp run --queue -q -S seed={s}" for s in SEEDS)
    # `dvc exp run --run-all -j 2` (offered by dvc 3.67) starts 2 queue workers and
    # blocks until the queue is done.
    return f"{queue} && dvc exp run --run-all -j 2"


def verify_dvc(d):
    r = sh("dvc queue status", d, dvc_env())
    ok = r.stdout.count(" Success")
    if ok != 20 or "Queued" in r.stdout or "Running" in r.stdout:
        raise RuntimeError(f"dvc: expected 20 Success in queue status, got:\n{r.stdout}")


TOOLS = {
    "pipe": (setup_pipe, verify_pipe, None),
    "snakemake": (setup_smk, verify_smk, None),
    "dvc": (setup_dvc, verify_dvc, dvc_env),
}


def timed_run(tool, rep, counter=None):
    setup, verify, envf = TOOLS[tool]
    d = Path(tempfile.mkdtemp(prefix=f"{tool}-{rep}-", dir=BASE / "work"))
    cmd = setup(d, counter)
    env = envf() if envf else None
    logf = BASE / "logs" / f"{d.name}.log"
    with open(logf, "w") as lf:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=d, shell=True, env=env, stdout=lf, stderr=subprocess.STDOUT)
        t = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{tool} rep {rep} failed rc={r.returncode}; see {logf} (workspace kept: {d})")
    try:
        verify(d)
    except Exception as e:
        raise RuntimeError(f"{tool} rep {rep}: verification failed ({e}); see {logf} (workspace kept: {d})")
    shutil.rmtree(d)
    return t


def commands_own_time():
    """The 41 commands run sequentially, each as its own `sh -c` (like a runner spawns them)."""
    d = Path(tempfile.mkdtemp(prefix="cmds-", dir=BASE / "work"))
    cmds = ["sleep 1 && echo data > data.txt"]
    cmds += [f"echo {s} > model-{s}.txt" for s in SEEDS]
    cmds += [f"printf '{{\"accuracy\": %s}}' {s} > metrics-{s}.json" for s in SEEDS]
    script = "\n".join("sh -c " + shlex_quote(c) for c in cmds) + "\n"
    (d / "cmds.sh").write_text(script)
    t0 = time.perf_counter()
    subprocess.run(["bash", "cmds.sh"], cwd=d, check=True)
    t = time.perf_counter() - t0
    shutil.rmtree(d)
    return t


def shlex_quote(s):
    import shlex
    return shlex.quote(s)


def fmt(xs):
    return f"{statistics.median(xs):.2f} s [{min(xs):.2f}-{max(xs):.2f}]"


def main():
    global _out
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5, help="repetitions of pipe and snakemake")
    ap.add_argument("--dvc-reps", type=int, default=3, help="repetitions of DVC (0: skip)")
    ap.add_argument("--no-checks", action="store_true", help="skip the prepare-once check runs")
    a = ap.parse_args()

    BASE.mkdir(exist_ok=True)
    shutil.rmtree(BASE / "work", ignore_errors=True)
    shutil.rmtree(BASE / "logs", ignore_errors=True)
    (BASE / "work").mkdir()
    (BASE / "logs").mkdir()
    _out = open(RESULT, "w")

    have_dvc = Path(DVC).exists()
    dvc_reps = a.dvc_reps if have_dvc else 0
    log(f"# 20-run sweep benchmark ({time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs)")
    log()
    log("## Versions")
    log(f"- pipe: {sh(f'{PIPE} --version', BASE).stdout.strip()}")
    log(f"- snakemake: {sh(f'{SNAKEMAKE} --version', BASE).stdout.strip()}")
    if have_dvc:
        log(f"- dvc: {sh(f'{DVC} --version', BASE, dvc_env()).stdout.strip()}")
    else:
        log(f"- dvc: not installed at {DVC} (skipped)")
    log(f"- python: {sys.version.split()[0]}")
    log()
    la_before = loadavg()
    log(f"load average before: {la_before}")
    log()

    # -- checks: how many times does `prepare` run in one sweep? (not timed)
    if not a.no_checks:
        log("## Check runs (prepare appends to a counter file; not timed)")
        for tool in ["pipe", "snakemake"] + (["dvc"] if dvc_reps else []):
            c = BASE / "work" / f"counter-{tool}.txt"
            timed_run(tool, "check", counter=str(c))
            n = count_lines(c)
            note = "" if n == 1 else "  <-- NOT once"
            log(f"- {tool}: prepare ran {n} time(s) for 20 runs; outputs verified{note}")
        log()

    # -- the commands' own time
    cmd_times = [commands_own_time() for _ in range(3)]
    cmd_t = statistics.median(cmd_times)
    log(f"commands' own time (41 commands sequentially via `sh -c`, median of 3): "
        f"{fmt(cmd_times)}")
    log()

    # -- timed, alternating
    times = {"pipe": [], "snakemake": [], "dvc": []}
    failures = []
    log("## Timed repetitions (alternating)")
    for i in range(max(a.reps, dvc_reps)):
        order = []
        if i < a.reps:
            order += ["pipe", "snakemake"]
        if i < dvc_reps:
            order.append("dvc")
        for tool in order:
            try:
                t = timed_run(tool, i + 1)
            except Exception as e:
                failures.append(f"round {i + 1} {tool}: {e}")
                log(f"- round {i + 1}: {tool:9s} FAILED: {e}")
                continue
            times[tool].append(t)
            log(f"- round {i + 1}: {tool:9s} {t:7.3f} s   (load {loadavg().split()[0]})")
    log()

    la_after = loadavg()
    tools = [t for t in ["pipe", "snakemake", "dvc"] if times[t]]
    ovh = {t: statistics.median(times[t]) - cmd_t for t in tools}
    ovh.setdefault("pipe", float("nan"))
    log("## Results")
    log()
    log(f"commands' own time: {cmd_t:.3f} s; own overhead = wall median - that")
    log()
    log("| tool | wall time median [min-max] | own overhead median | ratio vs pipe | n |")
    log("|---|---|---|---|---|")
    for t in tools:
        ratio = ovh[t] / ovh["pipe"] if ovh["pipe"] > 0 else float("nan")
        rs = "1.0x" if t == "pipe" else (f"{ratio:.1f}x" if ovh["pipe"] > 0 else "n/a (pipe overhead <= 0)")
        log(f"| {t} | {fmt(times[t])} | {ovh[t]:.3f} s | {rs} | {len(times[t])} |")
    log()
    anchors = [t for t in tools if t != "pipe"]
    if anchors and ovh["pipe"] > 0:
        fast = min(anchors, key=lambda t: ovh[t])
        log(f"faster anchor: {fast}; its overhead / pipe's overhead = {ovh[fast] / ovh['pipe']:.1f}x")
    elif anchors:
        log("pipe's overhead is <= 0 (its 2 jobs overlap commands), so the ratio is undefined")
    log()
    log(f"load average before: {la_before}")
    log(f"load average after:  {la_after}")
    log(f"per-repetition tool output: {BASE / 'logs'}")
    if failures:
        log(f"FAILED repetitions (excluded from the table): {len(failures)}")
        for f in failures:
            log(f"- {f}")
    _out.close()


if __name__ == "__main__":
    main()
