#!/usr/bin/env python3
"""Remote-cache push/pull anchors: pipe vs DVC through the same local S3 server.

Both tools talk to an `s3s-fs` server on 127.0.0.1 (a fresh root folder and port per tool and
repetition, bucket `bench`; pipe under s3://bench/pipe, DVC under s3://bench/dvc). Every timing
is the wall clock of one whole process (page cache warm), with the 1-minute load average
(/proc/loadavg) read just before and just after it, and the process's peak RSS (wait4; Linux keeps
ru_maxrss across exec, so a figure at or below this script's own ~15-20 MB means "no more").

Cases
  1 data push       10,000 files x 20,000 B + a 1 GiB file (1,273.7 MB, the `data` workload of
                    gen.py) pushed from a local cache that already holds it.
                      pipe: a one-stage pipe.yaml whose stage copies the data in
                            (`cp -r SRC/data/. data/`, `outs: [data]`), run with `--no-push`
                            (untimed setup), then `pipe push` (timed).
                      dvc:  `cp -r` of the data (untimed), `dvc add data` (untimed), `dvc push`.
                    (The data is an *output* for pipe: in gen.py's own data workload it is a
                    dependency, and pipe pushes stage results, not deps.)
  2 data restore    into a fresh workspace holding only the pipeline file (pipe.yaml; for DVC
                    `dvc init` + remote config + data.dvc):  `pipe run pipe.yaml` (restores from
                    the remote on the local miss) vs `dvc pull`.
  3 push, nothing new   the same push again in the workspace of case 1.
  4 fan push        gen.py `fan --n N` (N workers + 1 aggregator, default N=1000) after a full
                    run: pipe `pipe run --no-push` (untimed) then `pipe push`; DVC: the stage
                    commands are run by this script and recorded with `dvc commit -f` (untimed;
                    same dvc.lock and cache as `dvc repro`, which takes ~20+ min at N=1000 on
                    2 cores -- pass --dvc-repro to use it anyway), then `dvc push`.
  5 fan fresh clone a copy of the fan workspace without the cache, the outputs or the run state
                    (pipeline file(s), dvc.lock for DVC, inputs/, empty out/ and runs.log):
                    `pipe run pipe.yaml` (restores everything from the remote) vs
                    `dvc pull` + `dvc repro` (both timed, summed; each also shown). That nothing
                    reran is checked through runs.log.

DVC runs through a small shim (written to REMOTE_BENCH_DIR/dvc_s3s_shim.py) that works around two
s3s-fs 0.14.1 bugs DVC's s3fs client trips over (an empty `delimiter=` on ListObjectsV2 is taken as
a delimiter; HeadObject on a key that is a folder on the server's disk is a 500); see DVC_SHIM
below. DVC_S3S_SHIM=0 runs plain `dvc`.

Repetitions alternate tools (pipe, dvc, pipe, dvc, ...). Untimed setup steps are still timed
and printed as "info" rows (pipe `run --no-push`, `dvc add`, `dvc commit`).

Usage (from the repository, after `cargo build --release`):
  python3 benches/remote_anchors.py [--reps 2] [--fan-reps 1] [--n 1000] [--cases data,fan]
  python3 benches/remote_anchors.py --small      # a quick smoke test (tiny data, fan N=20)
Environment: PIPE_BIN (default target/release/pipe), DVC (default: on PATH, else
/tmp/dvc-venv/bin/dvc; needs dvc-s3), S3S_FS (default: s3s-fs on PATH), BENCH_GEN (gen.py;
default ../shared/bench/runner/gen.py next to the repository, else
/work/shared/bench/runner/gen.py), REMOTE_BENCH_DIR (work folder, default
$TMPDIR/remote-bench; the data case needs ~7.5 GB there at its peak). Results go to
REMOTE_BENCH_DIR/result.txt and result.json.
"""
import argparse
import importlib.util
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

REPO = Path(__file__).resolve().parent.parent
BASE = Path(os.environ.get("REMOTE_BENCH_DIR", Path(tempfile.gettempdir()) / "remote-bench"))
PIPE = os.path.abspath(os.environ.get("PIPE_BIN", str(REPO / "target" / "release" / "pipe")))
DVC = os.path.abspath(os.environ.get("DVC") or shutil.which("dvc") or "/tmp/dvc-venv/bin/dvc")
S3S_FS = os.environ.get("S3S_FS") or shutil.which("s3s-fs") or "s3s-fs"
GEN = os.environ.get("BENCH_GEN") or next(
    (str(p) for p in (REPO.parent / "shared/bench/runner/gen.py", Path("/work/shared/bench/runner/gen.py"))
     if p.exists()), "gen.py")
AK, SK = "AK", "SECRETKEY"

# s3s-fs 0.14.1 has two bugs that break DVC's s3fs client (pipe is not affected):
#  - ListObjectsV2 with an empty `delimiter=` (s3fs sends it for recursive listings) is treated as a
#    delimiter: it answers CommonPrefixes instead of Contents, so DVC's "what does the remote have"
#    traverse finds nothing (re-pushes everything) and estimates the remote size wrongly;
#  - HeadObject on a key that is a folder on its disk (DVC's `exists(bench/dvc/files/md5)` check
#    before every pull) is a 500 after retries, so `dvc pull` fails: "failed to connect to s3".
# DVC is therefore run through this shim, which drops an empty Delimiter and answers that one
# exists() with a listing. DVC_S3S_SHIM=0 runs the plain `dvc` executable instead.
DVC_SHIM = """import sys
import fsspec.asyn
import s3fs.core as c

_call = c.S3FileSystem._call_s3


async def _call_s3(self, method, *a, **kw):
    if kw.get("Delimiter") == "":
        del kw["Delimiter"]
    return await _call(self, method, *a, **kw)


c.S3FileSystem._call_s3 = _call_s3
_exists = c.S3FileSystem._exists


async def _exists2(self, path):
    p = self._strip_protocol(path).rstrip("/")
    if p.endswith("/files/md5"):
        bucket, key, _ = self.split_path(p)
        r = await self._call_s3("list_objects_v2", Bucket=bucket, Prefix=key + "/", MaxKeys=1)
        if r.get("KeyCount") or r.get("Contents"):
            return True
    return await _exists(self, path)


c.S3FileSystem._exists = _exists2
c.S3FileSystem.exists = fsspec.asyn.sync_wrapper(_exists2)
from dvc.cli import main

sys.exit(main(sys.argv[1:]))
"""


def dvc_argv() -> list:
    if os.environ.get("DVC_S3S_SHIM", "1") == "0":
        return [DVC]
    first = Path(DVC).read_bytes()[:300].split(b"\n")[0].decode()
    python = first[2:].strip() if first.startswith("#!") else str(Path(DVC).parent / "python")
    shim = BASE / "dvc_s3s_shim.py"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(DVC_SHIM)
    return [python, str(shim)]


DVCC = []  # set in main(): the argv prefix that runs DVC

RESULTS = []  # dicts: case, tool, rep, secs, load_before, load_after, rss_mb, rc, note
FAILURES = []


def load_gen():
    spec = importlib.util.spec_from_file_location("bench_gen", GEN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_gen"] = mod  # dataclasses need the module registered
    spec.loader.exec_module(mod)
    return mod


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def log(msg: str) -> None:
    print(msg, flush=True)


def timed(case, tool, rep, argv, cwd, env, note="", record=True, check=True):
    """Runs argv, returns (secs, stdout, stderr); records a row unless record=False."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    lb = load1()
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    la = load1()
    p.returncode = os.waitstatus_to_exitcode(status)
    out_f.seek(0)
    err_f.seek(0)
    out = out_f.read().decode(errors="replace")
    err = err_f.read().decode(errors="replace")
    rss_mb = ru.ru_maxrss / 1024
    row = dict(case=case, tool=tool, rep=rep, secs=secs, load_before=lb, load_after=la,
               rss_mb=rss_mb, rc=p.returncode, note=note, cmd=" ".join(map(str, argv)), cwd=str(cwd))
    tail = "\n".join((out + err).strip().splitlines()[-6:])
    shown = (["dvc", *argv[len(DVCC):]] if DVCC and argv[:len(DVCC)] == DVCC
             else [os.path.basename(argv[0]), *argv[1:]])
    row["cmd"] = " ".join(map(str, shown))
    log(f"  [{tool} r{rep}] {case}: {secs:.2f} s  rc={p.returncode}  load {lb:.2f}->{la:.2f}  "
        f"maxrss {rss_mb:.0f} MB  $ {row['cmd']}")
    for line in tail.splitlines():
        log(f"      | {line}")
    if p.returncode != 0:
        row["output"] = (out + err)[-4000:]
        FAILURES.append(row)
        if check:
            raise RuntimeError(f"{' '.join(map(str, argv))} (in {cwd}) exited {p.returncode}:\n{out}\n{err}")
    if record:
        RESULTS.append(row)
    return secs, out, err


def note_problem(case, tool, rep, what):
    log(f"  !! [{tool} r{rep}] {case}: {what}")
    FAILURES.append(dict(case=case, tool=tool, rep=rep, rc=None, note=what, cmd="", output=what))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        shutil.rmtree(root, ignore_errors=True)
        (root / "bench").mkdir(parents=True)
        self.logf = open(root.parent / f"{root.name}.s3s-fs.log", "wb")
        self.proc = subprocess.Popen(
            [S3S_FS, "--host", "127.0.0.1", "--port", str(self.port), "--access-key", AK,
             "--secret-key", SK, str(root)], stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"s3s-fs did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


def env_for(server: S3Server) -> dict:
    e = dict(os.environ)
    e.update(AWS_ENDPOINT_URL=server.url, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
             AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", DVC_NO_ANALYTICS="1",
             PIPE_REMOTE="s3://bench/pipe")
    return e


def dvc_init(ws: Path, server: S3Server, env: dict, already=False):
    ws.mkdir(parents=True, exist_ok=True)
    if not already:
        subprocess.run([*DVCC, "init", "-q", "--no-scm"], cwd=ws, check=True, env=env)
    for args in (["config", "core.analytics", "false"],
                 ["config", "core.site_cache_dir", str(ws.resolve() / ".dvc" / "site_cache")],
                 ["remote", "add", "-f", "-d", "s3", "s3://bench/dvc"],
                 ["remote", "modify", "s3", "endpointurl", server.url],
                 ["remote", "modify", "--local", "s3", "access_key_id", AK],
                 ["remote", "modify", "--local", "s3", "secret_access_key", SK]):
        subprocess.run([*DVCC, *args], cwd=ws, check=True, env=env, stdout=subprocess.DEVNULL)


def tree_stats(d: Path):
    n = size = 0
    for root, _, files in os.walk(d):
        for f in files:
            n += 1
            size += os.lstat(os.path.join(root, f)).st_size
    return n, size


def lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def rm(*paths):
    for p in paths:
        if p.exists():
            # the stores keep read-only files and folders
            subprocess.run(["chmod", "-R", "u+w", str(p)], check=False)
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------- data workload

def make_src(gen, small: bool) -> tuple[Path, int, int]:
    src = BASE / ("src-small" if small else "src")
    kw = "small_files=200, big_size=8 << 20" if small else ""
    wl = gen.data_workload(small_files=200, big_size=8 << 20) if small else gen.data_workload()
    want = (wl.extra["files"], wl.extra["bytes"])
    if src.exists() and tree_stats(src / "data") == want:
        return src, *want
    rm(src)
    src.mkdir(parents=True)
    t0 = time.perf_counter()
    # in a child process: this one stays small, and its peak RSS is inherited by every child
    # (Linux keeps ru_maxrss across exec), so the RSS figures below stay those of the tools
    code = ("import importlib.util, sys\nfrom pathlib import Path\n"
            f"spec = importlib.util.spec_from_file_location('bench_gen', {GEN!r})\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['bench_gen'] = m\n"
            "spec.loader.exec_module(m)\n"
            f"m.data_workload({kw}).make_inputs(Path({str(src)!r}))\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    log(f"generated {src}/data ({want[0]} files, {want[1]/1e6:.1f} MB) in {time.perf_counter()-t0:.1f} s")
    return src, *want


def data_pipe(rep, src, want):
    d = BASE / f"pipe-data-r{rep}"
    rm(d)
    ws, ws2 = d / "ws", d / "fresh"
    server = S3Server(d / "s3")
    env = env_for(server)
    yaml = ("stages:\n  data:\n"
            f"    cmd: {json.dumps(f'cp -r {src}/data/. data/ && echo data >> runs.log')}\n"
            "    outs: [data]\n")
    try:
        for w in (ws, ws2):
            w.mkdir(parents=True)
            (w / "pipe.yaml").write_text(yaml)
        timed("info: local run (--no-push)", "pipe", rep, [PIPE, "run", "pipe.yaml", "--no-push"], ws, env)
        timed("1 data push", "pipe", rep, [PIPE, "push"], ws, env)
        timed("3 push, nothing new", "pipe", rep, [PIPE, "push"], ws, env)
        timed("2 data restore (fresh ws)", "pipe", rep, [PIPE, "run", "pipe.yaml"], ws2, env)
        got = tree_stats(ws2 / "data")
        if got != want:
            note_problem("2 data restore (fresh ws)", "pipe", rep, f"restored data has {got}, want {want}")
        if lines(ws2 / "runs.log"):
            note_problem("2 data restore (fresh ws)", "pipe", rep, "the stage ran instead of being restored")
    finally:
        server.stop()
        rm(d)


def data_dvc(rep, src, want):
    d = BASE / f"dvc-data-r{rep}"
    rm(d)
    ws, ws2 = d / "ws", d / "fresh"
    server = S3Server(d / "s3")
    env = env_for(server)
    try:
        dvc_init(ws, server, env)
        dvc_init(ws2, server, env)
        subprocess.run(["cp", "-r", str(src / "data"), str(ws / "data")], check=True)
        timed("info: dvc add data", "dvc", rep, [*DVCC, "add", "-q", "data"], ws, env)
        timed("1 data push", "dvc", rep, [*DVCC, "push"], ws, env)
        timed("3 push, nothing new", "dvc", rep, [*DVCC, "push"], ws, env)
        shutil.copy(ws / "data.dvc", ws2 / "data.dvc")
        timed("2 data restore (fresh ws)", "dvc", rep, [*DVCC, "pull"], ws2, env)
        got = tree_stats(ws2 / "data")
        if got != want:
            note_problem("2 data restore (fresh ws)", "dvc", rep, f"restored data has {got}, want {want}")
    finally:
        server.stop()
        rm(d)


# ---------------------------------------------------------------------------- fan workload

def gen_ws(tool, n, out: Path):
    argv = [sys.executable, GEN, "--tool", tool, "--workload", "fan", "--n", str(n), "--out", str(out)]
    if tool == "dvc":
        argv += ["--bin-dir", str(Path(DVC).parent)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def clone_files(ws: Path, clone: Path, names):
    clone.mkdir(parents=True)
    for name in names:
        s = ws / name
        if s.is_dir():
            shutil.copytree(s, clone / name)
        elif s.exists():
            shutil.copy2(s, clone / name)
    (clone / "out").mkdir(exist_ok=True)
    (clone / "runs.log").write_text("")


def fan_pipe(rep, n):
    d = BASE / f"pipe-fan-r{rep}"
    rm(d)
    ws, clone = d / "ws", d / "clone"
    gen_ws("pipe", n, ws)
    server = S3Server(d / "s3")
    env = env_for(server)
    try:
        timed("info: fan full run (--no-push)", "pipe", rep, [PIPE, "run", "pipe.yaml", "--no-push", "-q"], ws, env)
        if lines(ws / "runs.log") != n + 1:
            note_problem("info: fan full run", "pipe", rep, f"runs.log has {lines(ws / 'runs.log')} lines, want {n+1}")
        timed("4 fan push", "pipe", rep, [PIPE, "push"], ws, env)
        timed("info: fan push again (nothing new)", "pipe", rep, [PIPE, "push"], ws, env)
        clone_files(ws, clone, ["pipe.yaml", "inputs"])
        timed("5 fan fresh clone restore", "pipe", rep, [PIPE, "run", "pipe.yaml", "-q"], clone, env)
        ran = lines(clone / "runs.log")
        nout = len(list((clone / "out").iterdir()))
        if ran or nout != n + 1:
            note_problem("5 fan fresh clone restore", "pipe", rep,
                         f"{ran} stages ran (want 0), {nout} outputs in out/ (want {n+1})")
    finally:
        server.stop()
        rm(d)


def fan_dvc(rep, n, use_repro):
    d = BASE / f"dvc-fan-r{rep}"
    rm(d)
    ws, clone = d / "ws", d / "clone"
    gen_ws("dvc", n, ws)
    server = S3Server(d / "s3")
    env = env_for(server)
    try:
        dvc_init(ws, server, env, already=True)
        if use_repro:
            timed("info: fan dvc repro", "dvc", rep, [*DVCC, "repro", "-q"], ws, env)
        else:
            gen = load_gen()
            t0 = time.perf_counter()
            for s in gen.fan_workload(n).stages:  # dvc.yaml's stages, in dependency order
                subprocess.run(s.cmd, shell=True, cwd=ws, check=True)
            log(f"  [dvc r{rep}] ran the {n+1} stage commands by hand in {time.perf_counter()-t0:.1f} s")
            timed("info: fan dvc commit -f", "dvc", rep, [*DVCC, "commit", "-f", "-q"], ws, env)
        timed("4 fan push", "dvc", rep, [*DVCC, "push"], ws, env)
        timed("info: fan push again (nothing new)", "dvc", rep, [*DVCC, "push"], ws, env)
        dvc_init(clone, server, env)  # a fresh .dvc (no cache), the same remote
        for name in ["dvc.yaml", "dvc.lock", ".dvcignore"]:
            shutil.copy2(ws / name, clone / name)
        shutil.copytree(ws / "inputs", clone / "inputs")
        (clone / "out").mkdir()
        (clone / "runs.log").write_text("")
        s1, _, _ = timed("5a fan fresh clone: dvc pull", "dvc", rep, [*DVCC, "pull"], clone, env)
        lb = RESULTS[-1]["load_before"]
        s2, _, _ = timed("5b fan fresh clone: dvc repro", "dvc", rep, [*DVCC, "repro"], clone, env)
        RESULTS.append(dict(case="5 fan fresh clone restore", tool="dvc", rep=rep, secs=s1 + s2,
                            load_before=lb, load_after=RESULTS[-1]["load_after"],
                            rss_mb=max(RESULTS[-1]["rss_mb"], RESULTS[-2]["rss_mb"]), rc=0,
                            note="dvc pull + dvc repro"))
        ran = lines(clone / "runs.log")
        nout = len(list((clone / "out").iterdir()))
        if ran or nout != n + 1:
            note_problem("5 fan fresh clone restore", "dvc", rep,
                         f"{ran} stages ran (want 0), {nout} outputs in out/ (want {n+1})")
    finally:
        server.stop()
        rm(d)


# ---------------------------------------------------------------------------- report

CASE_ORDER = ["1 data push", "2 data restore (fresh ws)", "3 push, nothing new", "4 fan push",
              "5 fan fresh clone restore", "5a fan fresh clone: dvc pull", "5b fan fresh clone: dvc repro"]


def table() -> str:
    cases = CASE_ORDER + sorted({r["case"] for r in RESULTS} - set(CASE_ORDER))
    rows = [("case", "pipe s", "DVC s", "DVC/pipe", "pipe load b->a", "DVC load b->a",
             "pipe maxrss MB", "DVC maxrss MB")]

    def fmt(rs):
        if not rs:
            return "-", "-", "-", None
        secs = [r["secs"] for r in rs]
        med = statistics.median(secs)
        s = f"{med:.2f}" + (f" [{min(secs):.2f}-{max(secs):.2f}] n={len(secs)}" if len(secs) > 1 else " n=1")
        load = ", ".join(f"{r['load_before']:.2f}->{r['load_after']:.2f}" for r in rs)
        rss = f"{max(r['rss_mb'] for r in rs):.0f}"
        return s, load, rss, med

    for c in cases:
        p = [r for r in RESULTS if r["case"] == c and r["tool"] == "pipe"]
        v = [r for r in RESULTS if r["case"] == c and r["tool"] == "dvc"]
        if not p and not v:
            continue
        ps, pl, pr, pm = fmt(p)
        vs, vl, vr, vm = fmt(v)
        ratio = f"{vm / pm:.1f}x" if pm and vm else "-"
        rows.append((c, ps, vs, ratio, pl, vl, pr, vr))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append(" | ".join(x.ljust(w) for x, w in zip(r, widths)))
        if k == 0:
            out.append("-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2, help="repetitions of the data cases per tool")
    ap.add_argument("--fan-reps", type=int, default=1, help="repetitions of the fan cases per tool")
    ap.add_argument("--n", type=int, default=1000, help="fan workers")
    ap.add_argument("--cases", default="data,fan", help="comma list: data, fan")
    ap.add_argument("--tools", default="pipe,dvc", help="comma list: pipe, dvc")
    ap.add_argument("--dvc-repro", action="store_true", help="fan setup with `dvc repro` (slow) not `dvc commit`")
    ap.add_argument("--settle-load", type=float, default=1.0, help="wait for this 1-min load first...")
    ap.add_argument("--settle-s", type=float, default=90, help="...but at most this long")
    ap.add_argument("--keep-src", action="store_true", help="keep the generated source data for a rerun")
    ap.add_argument("--small", action="store_true", help="smoke test: 200 small files + 8 MiB, fan N=20")
    a = ap.parse_args()
    if a.small:
        a.n = 20
    cases, tools = a.cases.split(","), a.tools.split(",")
    BASE.mkdir(parents=True, exist_ok=True)
    gen = load_gen()
    t_start = time.perf_counter()
    log(f"pipe: {PIPE}\ndvc: {DVC}\ns3s-fs: {S3S_FS}\ngen.py: {GEN}\nwork dir: {BASE}")
    DVCC[:] = dvc_argv()
    log(f"dvc argv: {DVCC}")
    log(subprocess.run([*DVCC, "version"], capture_output=True, text=True).stdout.splitlines()[0])
    t0 = time.time()
    while load1() > a.settle_load and time.time() - t0 < a.settle_s:
        time.sleep(5)
    log(f"load average at start: {Path('/proc/loadavg').read_text().strip()}; cores: {os.cpu_count()}"
        f" (waited {time.time() - t0:.0f} s for load1 <= {a.settle_load})")
    try:
        if "data" in cases:
            src, nfiles, nbytes = make_src(gen, a.small)
            for rep in range(1, a.reps + 1):
                for tool in tools:
                    log(f"== data, {tool}, rep {rep}")
                    try:
                        (data_pipe if tool == "pipe" else data_dvc)(rep, src, (nfiles, nbytes))
                    except RuntimeError as e:
                        log(f"  !! {e}")
        if "fan" in cases:
            for rep in range(1, a.fan_reps + 1):
                for tool in tools:
                    log(f"== fan N={a.n}, {tool}, rep {rep}")
                    try:
                        fan_pipe(rep, a.n) if tool == "pipe" else fan_dvc(rep, a.n, a.dvc_repro)
                    except RuntimeError as e:
                        log(f"  !! {e}")
    finally:
        if "data" in cases and not a.keep_src:
            rm(BASE / ("src-small" if a.small else "src"))
        text = table()
        log("\n" + text)
        log(f"\ntotal {time.perf_counter() - t_start:.0f} s; load average at end: "
            f"{Path('/proc/loadavg').read_text().strip()}")
        if FAILURES:
            log("\nFAILURES / PROBLEMS:")
            for f in FAILURES:
                log(f"- [{f['tool']} r{f['rep']}] {f['case']}: rc={f['rc']} {f['note']}\n  $ {f['cmd']}\n"
                    + "\n".join("    " + l for l in (f.get("output") or "").strip().splitlines()[-20:]))
        (BASE / "result.txt").write_text(text + "\n")
        (BASE / "result.json").write_text(json.dumps(dict(results=RESULTS, failures=FAILURES), indent=1))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
