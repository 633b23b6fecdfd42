//! The remote cache against a real S3 server (`s3s-fs`, which serves a folder over the S3 API and
//! checks SigV4 signatures; `.ci/run` installs it): workspaces on two "machines" share results, and
//! a corrupt object, a crafted entry, wrong credentials and a server that is down each cost a
//! warning while the run goes on. Skipped, with the reason, where `s3s-fs` is not installed.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::test::{Run, Ws};

const ACCESS_KEY: &str = "pipe-test";
const SECRET_KEY: &str = "pipe-test-secret";

/// An S3 server on a free local port serving a temporary folder with one bucket, `cache`.
struct S3 {
    child: Option<Child>,
    port: u16,
    root: tempfile::TempDir,
}

impl S3 {
    /// The server, or `None` (with the reason printed) where `s3s-fs` is not installed.
    fn start() -> Option<S3> {
        let found = Command::new("s3s-fs")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!(
                "skipping: no `s3s-fs` here (`cargo install s3s-fs@0.14.1 --features binary --locked`; .ci/run installs it)"
            );
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("cache")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s3 = S3 {
            child: None,
            port,
            root,
        };
        s3.restart();
        Some(s3)
    }

    /// Starts the server (again) on its port and waits until it answers.
    fn restart(&mut self) {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `pipe` in `ws` with this server's credentials (with `secret` as the secret), the remote not
    /// named.
    fn credentialed(&self, ws: &Ws, args: &[&str], secret: &str) -> Command {
        let mut command = ws.command(args);
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1");
        command
    }

    /// `pipe` in `ws` with this server named as its remote by the environment.
    fn command(&self, ws: &Ws, args: &[&str], secret: &str) -> Command {
        let mut command = self.credentialed(ws, args, secret);
        command
            .env("PIPE_REMOTE", "s3://cache/team")
            .env("AWS_ENDPOINT_URL", self.endpoint());
        command
    }

    /// `pipe` in `ws` with this server as its remote (and `secret` as the credentials' secret).
    fn pipe_with(&self, ws: &Ws, args: &[&str], secret: &str) -> Run {
        Run::from(self.command(ws, args, secret).output().unwrap())
    }

    /// The same, asserting it succeeds.
    fn ok(&self, ws: &Ws, args: &[&str]) -> Run {
        let run = self.pipe_with(ws, args, SECRET_KEY);
        assert_eq!(run.code, 0, "pipe {args:?}:\n{}", run.stderr);
        run
    }

    /// The files the bucket holds under `folder` (`objects` or `stages`).
    fn stored(&self, folder: &str) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let top = self.root.path().join("cache/team").join(folder);
        for shard in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            found.extend(
                std::fs::read_dir(shard.path())
                    .unwrap()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
        found.sort();
        found
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A two-stage pipeline whose first stage writes a folder and a file big enough to go up in parts.
const PIPELINE: &str = r#"
stages:
  make:
    cmd: mkdir -p out && for i in 1 2 3; do echo $i > out/$i.txt; done && head -c 20000000 /dev/urandom > big.bin
    outs: [out, big.bin]
  count:
    cmd: cat out/*.txt | wc -l > count.txt && wc -c < big.bin >> count.txt
    deps: [out, big.bin]
    outs: [count.txt]
"#;

fn machine() -> Ws {
    let ws = Ws::new();
    ws.write("p.yaml", PIPELINE);
    ws
}

#[test]
fn two_machines_share_results_and_nothing_is_sent_twice() {
    let Some(s3) = S3::start() else { return };
    let laptop = machine();
    let run = s3.ok(&laptop, &["run", "p.yaml"]);
    assert!(
        run.stderr.contains("pushed 2 stage results (5 objects"),
        "{}",
        run.stderr
    );
    assert_eq!(s3.stored("stages").len(), 2);

    // A fresh machine plans to restore both stages from the remote, then does, running nothing.
    let ci = machine();
    let plan = s3.ok(&ci, &["status", "p.yaml"]);
    assert!(
        plan.stdout
            .contains("will restore outputs from the remote cache"),
        "{}",
        plan.stdout
    );
    s3.ok(&ci, &["run", "p.yaml"]);
    assert_eq!(ci.with_status("cached"), ["make", "count"]);
    assert_eq!(ci.reason("make"), "restored from the remote cache");
    assert_eq!(ci.read("count.txt"), laptop.read("count.txt"));
    assert_eq!(
        std::fs::read(ci.file("big.bin")).unwrap(),
        std::fs::read(laptop.file("big.bin")).unwrap()
    );

    // What the remote has is never sent again.
    let push = s3.ok(&laptop, &["push"]);
    assert!(
        push.stderr
            .contains("pushed 0 stage results (0 objects, 0.0 MiB)")
            && push.stderr.contains("2 there already"),
        "{}",
        push.stderr
    );
}

#[test]
fn a_corrupt_object_or_a_crafted_entry_on_the_remote_is_a_warning_and_the_run_replaces_it() {
    let Some(s3) = S3::start() else { return };
    s3.ok(&machine(), &["run", "p.yaml"]);
    let objects = s3.stored("objects");
    for object in &objects {
        let mut permissions = std::fs::metadata(object).unwrap().permissions();
        #[expect(
            clippy::permissions_set_readonly_false,
            reason = "the test tampers with the bucket"
        )]
        permissions.set_readonly(false);
        std::fs::set_permissions(object, permissions).unwrap();
        std::fs::write(object, "tampered").unwrap();
    }
    let ws = machine();
    let run = s3.ok(&ws, &["run", "p.yaml"]);
    assert!(
        run.stderr.contains("does not match its hash"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.with_status("ran"), ["make", "count"]);
    // That run replaced what it could not use: the next machine restores everything.
    let repaired = machine();
    let run = s3.ok(&repaired, &["run", "p.yaml"]);
    assert_eq!(
        repaired.with_status("cached"),
        ["make", "count"],
        "{}",
        run.stderr
    );

    // An entry that would write outside the workspace is refused before anything is written (in
    // the bucket alone and in the pipeline's head, which holds it too).
    for entry in s3.stored("stages") {
        let text = std::fs::read_to_string(&entry).unwrap();
        std::fs::write(&entry, text.replace("\"out\"", "\"../../escaped\"")).unwrap();
    }
    let heads = s3.root.path().join("cache/team/heads");
    for head in std::fs::read_dir(heads).unwrap().flatten() {
        let text = std::fs::read_to_string(head.path()).unwrap();
        let crafted = text.replace(r#"\"out\""#, r#"\"../../escaped\""#);
        assert_ne!(crafted, text);
        std::fs::write(head.path(), crafted).unwrap();
    }
    let ws = machine();
    let run = s3.ok(&ws, &["run", "p.yaml"]);
    assert!(run.stderr.contains("is not usable"), "{}", run.stderr);
    assert_eq!(ws.with_status("ran"), ["make", "count"]);
    assert!(!ws.path().parent().unwrap().join("escaped").exists());
    let repaired = machine();
    s3.ok(&repaired, &["run", "p.yaml"]);
    assert_eq!(repaired.with_status("cached"), ["make", "count"]);
}

#[test]
fn a_remote_that_refuses_or_is_down_is_one_warning_and_the_next_push_completes() {
    let Some(mut s3) = S3::start() else { return };
    let ws = machine();
    let refused = s3.pipe_with(&ws, &["run", "p.yaml"], "a-wrong-secret");
    assert_eq!(refused.code, 0, "{}", refused.stderr);
    assert_eq!(
        refused.stderr.matches("is unavailable").count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("a-wrong-secret"),
        "{}",
        refused.stderr
    );

    s3.stop();
    let down = s3.ok(&ws, &["run", "p.yaml", "--force"]);
    assert_eq!(
        down.stderr.matches("is unavailable").count(),
        1,
        "{}",
        down.stderr
    );
    assert!(s3.stored("stages").is_empty());

    // Back up: `pipe push` sends what the runs left behind, and another machine gets it all.
    s3.restart();
    let push = s3.ok(&ws, &["push", "latest"]);
    assert!(
        push.stderr.contains("pushed 2 stage results"),
        "{}",
        push.stderr
    );
    // Another machine pulls the run by its id: its record came with the push, and is kept there.
    let other = machine();
    let id = ws.latest()["id"].as_str().unwrap().to_string();
    let pulled = s3.ok(&other, &["pull", &id]);
    assert!(
        pulled.stderr.contains("pulled 2 stage results"),
        "{}",
        pulled.stderr
    );
    assert_eq!(other.latest()["id"], id.as_str());
    let unknown = s3.pipe_with(&other, &["pull", "20990101-000000-beef"], SECRET_KEY);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no run `20990101-000000-beef`"),
        "{}",
        unknown.stderr
    );
    let again = s3.ok(&other, &["pull", &id]);
    assert!(
        again.stderr.contains("2 were here already"),
        "{}",
        again.stderr
    );
    s3.ok(&other, &["run", "p.yaml", "--no-push"]);
    assert_eq!(other.with_status("cached"), ["make", "count"]);

    // A record crafted in the bucket, its stage keys not hashes, is pulled without harm.
    let crafted_id = "20991231-000000-dead";
    let mut record: serde_json::Value =
        serde_json::from_str(&ws.read(&format!("runs/{id}/run.json"))).unwrap();
    record["id"] = crafted_id.into();
    for stage in record["stages"].as_array_mut().unwrap() {
        stage["key"] = "../x".into();
    }
    let bucket_record = s3
        .root
        .path()
        .join(format!("cache/team/runs/{crafted_id}.json"));
    std::fs::write(bucket_record, record.to_string()).unwrap();
    let pulled = s3.ok(&machine(), &["pull", crafted_id]);
    assert!(
        pulled.stderr.contains("1 not on the remote"),
        "{}",
        pulled.stderr
    );
}

#[test]
fn with_a_remote_lookups_go_at_once_but_stages_still_run_within_jobs() {
    let Some(s3) = S3::start() else { return };
    let ws = Ws::new();
    // Four independent stages that note when they start and end in one log.
    let mut pipeline = String::from("stages:\n");
    for i in 0..4 {
        pipeline.push_str(&format!(
            "  s{i}:\n    cmd: echo start >> log.txt && sleep 0.3 && echo end >> log.txt && echo {i} > o{i}.txt\n    outs: [o{i}.txt]\n"
        ));
    }
    ws.write("p.yaml", &pipeline);
    s3.ok(&ws, &["run", "p.yaml", "--jobs", "1"]);
    assert_eq!(
        ws.read("log.txt"),
        "start\nend\n".repeat(4),
        "with --jobs 1 no two stages ran at once"
    );
    // A second machine restores all four from the remote, running none.
    let other = Ws::new();
    other.write("p.yaml", &pipeline);
    s3.ok(&other, &["run", "p.yaml", "--jobs", "1"]);
    assert_eq!(other.with_status("cached").len(), 4);
    assert!(!other.file("log.txt").exists());
}

#[test]
fn the_pipeline_or_the_workspace_file_names_the_remote_and_the_environment_wins() {
    let Some(s3) = S3::start() else { return };
    let named = format!(
        "remote:\n  url: s3://cache/team\n  endpoint: {}\n",
        s3.endpoint()
    );
    let run = |ws: &Ws, args: &[&str], env: &[(&str, &str)]| {
        let mut command = s3.credentialed(ws, args, SECRET_KEY);
        command.envs(env.iter().copied());
        let run = Run::from(command.output().unwrap());
        assert_eq!(run.code, 0, "pipe {args:?}:\n{}", run.stderr);
        run
    };
    // The committed pipeline names the remote: a run pushes there with only credentials set.
    let laptop = Ws::new();
    laptop.write("p.yaml", &format!("{named}{PIPELINE}"));
    let pushed = run(&laptop, &["run", "p.yaml"], &[]);
    assert!(
        pushed.stderr.contains("pushed 2 stage results"),
        "{}",
        pushed.stderr
    );
    // A workspace's own file names it for a pipeline that does not.
    let ci = machine();
    ci.write(".pipe/config.yaml", &named);
    run(&ci, &["run", "p.yaml"], &[]);
    assert_eq!(ci.with_status("cached"), ["make", "count"]);
    assert_eq!(ci.reason("make"), "restored from the remote cache");
    // The environment wins over both: `PIPE_REMOTE=none` runs with the local store only.
    let offline = Ws::new();
    offline.write("p.yaml", &format!("{named}{PIPELINE}"));
    offline.write(".pipe/config.yaml", &named);
    run(&offline, &["run", "p.yaml"], &[("PIPE_REMOTE", "none")]);
    assert_eq!(offline.with_status("ran"), ["make", "count"]);

    // `pipe pull --all` brings every run the remote records (the laptop's and the CI's), with their
    // results.
    let gpu = machine();
    gpu.write(".pipe/config.yaml", &named);
    let pulled = run(&gpu, &["pull", "--all"], &[]);
    assert!(
        pulled.stderr.contains("pulled 2 stage results of 2 runs"),
        "{}",
        pulled.stderr
    );
    let listed = gpu.ok(&["runs"]).stdout;
    for ws in [&laptop, &ci] {
        let id = ws.latest()["id"].as_str().unwrap().to_string();
        assert!(listed.contains(&id), "{listed}");
    }

    // The team key is a secret: a pipeline may not hold it, and a bad workspace file is named.
    let leaky = Ws::new();
    leaky.write(
        "p.yaml",
        &format!("remote:\n  url: s3://cache/team\n  key_file: team.key\n{PIPELINE}"),
    );
    leaky.fails(
        &["run", "p.yaml"],
        2,
        &["may not hold the team key", "p.yaml:3"],
    );
    let typo = machine();
    typo.write(".pipe/config.yaml", "remote:\n  ulr: s3://cache/team\n");
    typo.fails(
        &["run", "p.yaml"],
        2,
        &[".pipe/config.yaml", "unknown field `ulr`"],
    );
}

#[test]
fn a_signed_remote_takes_only_entries_signed_with_the_team_key() {
    let Some(s3) = S3::start() else { return };
    let with_key = |ws: &Ws, args: &[&str], key: &str| {
        let mut command = s3.command(ws, args, SECRET_KEY);
        command.env("PIPE_REMOTE_KEY", key);
        let run = Run::from(command.output().unwrap());
        assert_eq!(run.code, 0, "pipe {args:?}:\n{}", run.stderr);
        run
    };
    const TEAM: &str = "the team's key, kept out of git";
    // Someone without the key (or with write access only) pushes: a signed machine does not use it,
    // runs the stages (`count` then too, as `make` writes random bytes), and pushes signed entries.
    s3.ok(&machine(), &["run", "p.yaml"]);
    let signed = machine();
    let run = with_key(&signed, &["run", "p.yaml"], TEAM);
    assert_eq!(
        run.stderr
            .matches("is not signed with the team key")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(signed.with_status("ran"), ["make", "count"]);
    assert!(
        run.stderr.contains("pushed 2 stage results"),
        "{}",
        run.stderr
    );
    // A teammate with the key restores everything; another key is as good as none.
    let teammate = machine();
    with_key(&teammate, &["run", "p.yaml"], TEAM);
    assert_eq!(teammate.with_status("cached"), ["make", "count"]);
    let stranger = machine();
    with_key(&stranger, &["run", "p.yaml"], "another team's key text");
    assert_eq!(stranger.with_status("ran"), ["make", "count"]);

    // An entry rewritten in the bucket keeps its old signature, which no longer holds.
    for entry in s3.stored("stages") {
        let text = std::fs::read_to_string(&entry).unwrap();
        std::fs::write(&entry, text.replacen("{", "{ ", 1)).unwrap();
    }
    let fooled = machine();
    let run = with_key(&fooled, &["run", "p.yaml"], TEAM);
    assert!(
        run.stderr.contains("is not signed with the team key"),
        "{}",
        run.stderr
    );
    assert_eq!(fooled.with_status("ran"), ["make", "count"]);

    // A pipeline that requires signed entries will not run with the remote but without the key.
    let careless = Ws::new();
    careless.write(
        "p.yaml",
        &format!("remote:\n  url: s3://cache/team\n  signed: true\n{PIPELINE}"),
    );
    let refused = s3.pipe_with(&careless, &["run", "p.yaml"], SECRET_KEY);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("takes only signed entries"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains(TEAM));
}

#[test]
fn a_server_killed_in_mid_push_leaves_no_entry_without_its_objects_and_the_next_push_completes() {
    let Some(mut s3) = S3::start() else { return };
    let ws = Ws::new();
    // Small files (one pack) and enough files big enough to go up alone that the push is still
    // going when the test sees its first objects, even on a loaded machine (60 were not, once).
    ws.write(
        "p.yaml",
        "stages:\n  make:\n    cmd: mkdir -p out big && for i in $(seq 1500); do echo $i > out/$i.txt; done && for i in $(seq 300); do (echo $i; head -c 1048576 /dev/zero) > big/$i.bin; done\n    outs: [out, big]\n",
    );
    s3.ok(&ws, &["run", "p.yaml", "--no-push"]);
    let push = s3
        .command(&ws, &["push"], SECRET_KEY)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while s3.stored("objects").len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the push never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    s3.stop();
    let interrupted = Run::from(push.wait_with_output().unwrap());
    assert_eq!(interrupted.code, 1, "{}", interrupted.stderr);
    assert!(
        interrupted.stderr.contains("is unavailable"),
        "{}",
        interrupted.stderr
    );
    assert!(s3.stored("objects").len() < 300, "the push was not cut off");
    assert!(
        s3.stored("stages").is_empty(),
        "an entry went up before its objects"
    );

    s3.restart();
    let completed = s3.ok(&ws, &["push"]);
    assert!(
        completed.stderr.contains("pushed 1 stage result "),
        "{}",
        completed.stderr
    );
    let other = Ws::new();
    other.write("p.yaml", &ws.read("p.yaml"));
    s3.ok(&other, &["run", "p.yaml"]);
    assert_eq!(other.with_status("cached"), ["make"]);
    assert_eq!(
        std::fs::read(other.file("big/300.bin")).unwrap(),
        std::fs::read(ws.file("big/300.bin")).unwrap()
    );
    // The small files came in one pack; a pack whose bytes were changed in the bucket is refused.
    assert_eq!(other.read("out/1500.txt"), "1500\n");
    let packs = s3.stored("packs");
    assert_eq!(packs.len(), 1);
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&packs[0], bytes).unwrap();
    let third = Ws::new();
    third.write("p.yaml", &ws.read("p.yaml"));
    let run = s3.ok(&third, &["run", "p.yaml"]);
    assert!(
        run.stderr.contains("does not match its hash"),
        "{}",
        run.stderr
    );
    assert_eq!(third.with_status("ran"), ["make"]);
}

#[test]
fn what_slurm_jobs_ran_goes_up_to_the_remote_waited_for_or_detached() {
    let Some(s3) = S3::start() else { return };
    let Some(_cluster) = crate::slurm::cluster() else {
        return;
    };
    let pipeline = format!("{}{PIPELINE}", crate::slurm::SMALL);
    let ws = Ws::new();
    ws.write("p.yaml", &pipeline);
    let run = s3.ok(&ws, &["run", "p.yaml", "--executor", "slurm"]);
    assert!(
        run.stderr.contains("pushed 2 stage results"),
        "{}",
        run.stderr
    );
    let laptop = Ws::new();
    laptop.write("p.yaml", &pipeline);
    s3.ok(&laptop, &["run", "p.yaml"]);
    assert_eq!(laptop.with_status("cached"), ["make", "count"]);

    // Detached, the job that completes the record pushes (the jobs get the submitter's environment).
    let detached = Ws::new();
    detached.write(
        "p.yaml",
        &pipeline.replace("head -c 20000000", "head -c 20000001"),
    );
    s3.ok(
        &detached,
        &["run", "p.yaml", "--executor", "slurm", "--detach"],
    );
    let start = Instant::now();
    while s3.stored("stages").len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the detached run's results never reached the remote"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_pipelines_head_answers_its_lookups_at_once_and_is_checked_as_any_entry() {
    let Some(s3) = S3::start() else { return };
    let mut pipeline = String::from("stages:\n");
    for i in 0..40 {
        pipeline.push_str(&format!(
            "  s{i}:\n    cmd: echo {i} > o{i}.txt\n    outs: [o{i}.txt]\n"
        ));
    }
    let ws = Ws::new();
    ws.write("p.yaml", &pipeline);
    s3.ok(&ws, &["run", "p.yaml"]);
    let team = s3.root.path().join("cache/team");
    let heads: Vec<_> = std::fs::read_dir(team.join("heads"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(heads.len(), 1);
    // With the entries gone from the bucket, only the head can answer the lookups.
    std::fs::remove_dir_all(team.join("stages")).unwrap();
    let other = Ws::new();
    other.write("p.yaml", &pipeline);
    let plan = s3.ok(&other, &["status", "p.yaml"]);
    assert_eq!(
        plan.stdout
            .matches("will restore outputs from the remote cache")
            .count(),
        40,
        "{}",
        plan.stdout
    );
    s3.ok(&other, &["run", "p.yaml"]);
    assert_eq!(other.with_status("cached").len(), 40);
    assert_eq!(other.read("o39.txt"), "39\n");

    // An entry in the head that would write outside the workspace is refused like any entry: its
    // stage is asked for alone (not there now) and runs.
    let head = heads[0].path();
    let text = std::fs::read_to_string(&head).unwrap();
    std::fs::write(&head, text.replace("o0.txt", "../escaped.txt")).unwrap();
    let third = Ws::new();
    third.write("p.yaml", &pipeline);
    s3.ok(&third, &["run", "p.yaml"]);
    assert_eq!(third.with_status("ran"), ["s0"]);
    assert_eq!(third.with_status("cached").len(), 39);
    assert!(!third.path().parent().unwrap().join("escaped.txt").exists());
}

#[test]
fn a_sweep_goes_up_whole_and_another_machine_pulls_it_by_its_id() {
    let Some(s3) = S3::start() else { return };
    let pipeline = "params:\n  seed: 1\nstages:\n  make:\n    cmd: echo ${params.seed} > o.txt\n    outs: [o.txt]\n";
    let ws = Ws::new();
    ws.write("p.yaml", pipeline);
    s3.ok(&ws, &["run", "p.yaml", "--sweep", "seed=1..3"]);
    let sweep_id = std::fs::read_dir(ws.file("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|name| name.starts_with("sweep-"))
        .unwrap();
    let runs_of = |machine: &Ws| -> usize {
        let listed = machine.ok(&["runs", "--sweep", &sweep_id, "--json"]).stdout;
        serde_json::from_str::<serde_json::Value>(&listed)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let other = Ws::new();
    other.write("p.yaml", pipeline);
    let pulled = s3.ok(&other, &["pull", &sweep_id]);
    assert!(
        pulled.stderr.contains("pulled 3 stage results of 3 runs"),
        "{}",
        pulled.stderr
    );
    assert_eq!(runs_of(&other), 3);
    let third = Ws::new();
    let all = s3.ok(&third, &["pull", "--all"]);
    assert!(all.stderr.contains("of 3 runs"), "{}", all.stderr);
    assert_eq!(runs_of(&third), 3);

    // Each run of the sweep wrote its own head: with the entries gone from the bucket, the same
    // sweep on a fresh machine restores every run's stage from the heads.
    std::fs::remove_dir_all(s3.root.path().join("cache/team/stages")).unwrap();
    let fourth = Ws::new();
    fourth.write("p.yaml", pipeline);
    s3.ok(&fourth, &["run", "p.yaml", "--sweep", "seed=1..3"]);
    let listed = fourth.ok(&["runs", "--json"]).stdout;
    let runs: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let cached: Vec<u64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["stages"]["cached"].as_u64().unwrap())
        .collect();
    assert_eq!(cached, [1, 1, 1], "{listed}");
}

#[test]
fn a_push_that_finds_its_results_there_already_leaves_the_head_to_the_machine_that_sent_them() {
    let Some(s3) = S3::start() else { return };
    // Two machines run the same stages, whose outputs differ (random bytes): the first pushes.
    s3.ok(&machine(), &["run", "p.yaml"]);
    let late = machine();
    s3.ok(&late, &["run", "p.yaml", "--no-push"]);
    // The second's push finds `make` there (the first machine's), so it must not describe it in a
    // head by its own entry, whose files never went up.
    s3.ok(&late, &["push"]);
    let third = machine();
    let run = s3.ok(&third, &["run", "p.yaml"]);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(third.with_status("cached"), ["make", "count"]);
}

/// A local server that answers every request without a body with 404 and hangs up on every
/// upload once it has read its headers, as a proxy dropping a connection does.
fn server_hanging_up_on_uploads() -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = 0_u64;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if length > 0 {
                        // Hang up: end the answer (FIN) while the body is still coming, then close
                        // with the body unread (RST).
                        let _ = writer.shutdown(std::net::Shutdown::Write);
                        std::thread::sleep(Duration::from_millis(50));
                        return;
                    }
                    let answer = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_connection_dropped_in_mid_upload_is_an_error_and_not_the_end_of_pipe() {
    let ws = Ws::new();
    // One object, bigger than the sockets' buffers and small enough to go up in one request.
    ws.write(
        "p.yaml",
        "stages:\n  make:\n    cmd: head -c 4000000 /dev/zero > big.bin\n    outs: [big.bin]\n",
    );
    let port = server_hanging_up_on_uploads();
    let remote = |args: &[&str]| {
        let mut command = ws.command(args);
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("PIPE_REMOTE", "s3://cache/team")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
        Run::from(command.output().unwrap())
    };
    let run = remote(&["run", "p.yaml", "--no-push"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Killed by SIGPIPE, pipe would end with no code and without a word.
    let push = remote(&["push"]);
    assert_eq!(push.code, 1, "{}", push.stderr);
    assert!(push.stderr.contains("is unavailable"), "{}", push.stderr);
}
