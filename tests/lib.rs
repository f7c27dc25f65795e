//! What the end-to-end suites and the benchmark harness share: free ports, processes
//! that stop with everything they started, and `wrangler dev` running the edge worker.

pub mod origins;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn random_suffix() -> String {
    let mut bytes = [0u8; 5];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// A process in a process group of its own, so that dropping it stops what it started
/// too (wrangler's node processes and workerd, nginx's workers), not only the first.
pub struct Group(Child);

impl Group {
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        command
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .map(Self)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.0.wait();
    }
}

/// `wrangler dev` on `port` in front of the origin on `origin_port`, with a local KV and
/// Durable Objects of its own; `vars` are added as `--var NAME:value`.
pub fn start_wrangler(port: u16, origin_port: u16, vars: &[(&str, &str)]) -> Group {
    start_wrangler_at(port, origin_port, vars, &wrangler_state())
}

/// A new folder for a `wrangler dev`'s local KV and Durable Objects.
pub fn wrangler_state() -> PathBuf {
    std::env::temp_dir().join(format!("edgecache-kv-{}", random_suffix()))
}

/// `start_wrangler` keeping its KV and Durable Objects in `state_dir`, so a restarted
/// edge finds what it held before.
pub fn start_wrangler_at(
    port: u16,
    origin_port: u16,
    vars: &[(&str, &str)],
    state_dir: &std::path::Path,
) -> Group {
    Group::spawn(wrangler_command(port, origin_port, vars, state_dir))
        .expect("wrangler dev starts (run `npm ci` first)")
}

/// The `wrangler dev` command `start_wrangler_at` runs, for a caller that adds to it.
pub fn wrangler_command(
    port: u16,
    origin_port: u16,
    vars: &[(&str, &str)],
    state_dir: &std::path::Path,
) -> Command {
    let root = root();
    built_worker();
    let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
    command
        .current_dir(&root)
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .arg("--persist-to")
        .arg(state_dir)
        .args([
            "--var",
            &format!("ORIGIN_URL:http://127.0.0.1:{origin_port}"),
        ])
        .env("WRANGLER_SEND_METRICS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in vars {
        command.args(["--var", &format!("{name}:{value}")]);
    }
    command
}

/// The worker's build folder (its `index.js` beside its wasm), built once per process
/// before any `wrangler dev` starts: two tests starting edges at once would otherwise run
/// two builds into that one folder.
pub fn built_worker() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(root().join("scripts/build-worker"))
                .stdout(Stdio::null())
                .status()
                .expect("bash runs");
            assert!(status.success(), "the worker builds (scripts/build-worker)");
            root().join("edge-worker/build")
        })
        .clone()
}

/// Where a worker's generations objects run.
pub enum Objects<'a> {
    /// In the worker itself, as wrangler.toml has it.
    Own,
    /// In the worker of that name: another `wrangler dev`, reached through the dev registry.
    In(&'a str),
}

/// A wrangler config for the worker built in `build` (`built_worker`), named `name`, with
/// a local KV; the caller adds its `[vars]`.
pub fn worker_config(build: &Path, name: &str, objects: Objects) -> String {
    let mut config = format!(
        "name = {name:?}\nmain = {main:?}\ncompatibility_date = \"2025-09-01\"\n\
         [[kv_namespaces]]\nbinding = \"CACHE_KV\"\nid = \"00000000000000000000000000000000\"\n\
         [[durable_objects.bindings]]\nname = \"GENERATIONS\"\nclass_name = \"WorkspaceGenerations\"\n",
        main = build.join("index.js").display().to_string(),
    );
    match objects {
        Objects::Own => config.push_str(
            "[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"WorkspaceGenerations\"]\n",
        ),
        Objects::In(worker) => config.push_str(&format!("script_name = {worker:?}\n")),
    }
    config
}

/// Polls `url` until it answers 200, failing after `limit`.
pub async fn wait_ok(url: &str, limit: Duration) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not answer within {limit:?}");
}

/// The metrics the edge isolate at `base` counted so far (`wrangler dev` runs one isolate).
pub async fn edge_metrics(base: &str) -> serde_json::Value {
    let answer = reqwest::get(format!("{base}/metrics")).await;
    let mut body: serde_json::Value = answer
        .expect("edge metrics")
        .json()
        .await
        .expect("edge metrics json");
    body["metrics"].take()
}

/// Polls the edge at `base` until it is up and an origin has told it its outbox is drained
/// (the edge serves KV hits only then), failing after `limit`.
pub async fn wait_edge_ready(base: &str, limit: Duration) {
    let health = format!("{base}/health");
    wait_ok(&health, limit).await;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = http.get(&health).send().await.expect("health");
        let body: serde_json::Value = answer.json().await.expect("json");
        if body["origin_changes"]["confirmed"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no origin confirmed its changes to the edge: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
