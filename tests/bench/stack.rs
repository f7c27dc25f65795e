//! The peers a benchmark run measures beside the origins (`e2e::origins`), each on its own
//! loopback port: the edge worker in `wrangler dev`, a bare worker answering the same
//! bytes there, nginx with `proxy_cache` in front of an origin, and the bare hyper ceiling.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::origins::{INTERNAL_KEY, PUSH_KEY, SECRET};
use e2e::{free_port, wait_ok, wrangler_command, Group};

pub struct Edge {
    pub port: u16,
    /// Where V8's inspector for its isolate listens (`profile.mjs`).
    pub inspector: u16,
    _process: Group,
}

/// The edge worker in `wrangler dev`, reading `origin_port`, with `vars` besides its keys.
pub async fn edge(origin_port: u16, namespace: &str, vars: &[(&str, &str)]) -> Edge {
    let port = free_port();
    let mut all = vec![
        ("JWT_SECRET", SECRET),
        ("INTERNAL_API_KEY", INTERNAL_KEY),
        ("EDGE_PUSH_KEY", PUSH_KEY),
        ("CACHE_NAMESPACE", namespace),
    ];
    all.extend_from_slice(vars);
    let inspector = free_port();
    let mut command = wrangler_command(port, origin_port, &all, &e2e::wrangler_state());
    command.args(["--inspector-port", &inspector.to_string()]);
    let process = Group::spawn(command).expect("wrangler dev starts");
    wait_ok(
        &format!("http://127.0.0.1:{port}/health"),
        Duration::from_secs(600),
    )
    .await;
    Edge {
        port,
        inspector,
        _process: process,
    }
}

pub struct Nginx {
    pub port: u16,
    _process: Group,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nginx caching the origin's 200s for a minute per URL, token and workspace: what a
/// team would put in front of the origin instead of this gateway. The origin marks its
/// answers `private, no-store`; nginx is told to ignore that, as such a setup must.
pub async fn nginx(origin_port: u16) -> Nginx {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("edgecache-nginx-{}", e2e::random_suffix()));
    std::fs::create_dir_all(dir.join("cache")).expect("nginx dir");
    let conf = format!(
        r#"daemon off;
user root;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    proxy_cache_path {dir}/cache levels=1:2 keys_zone=edgecache:32m max_size=1g inactive=10m;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edgecache;
            proxy_cache_key "$request_uri|$http_authorization|$http_x_workspace_id";
            proxy_cache_valid 200 60s;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            proxy_cache_lock on;
        }}
    }}
}}
"#,
        dir = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("nginx.conf");
    let mut command = Command::new("nginx");
    command
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let process = Group::spawn(command).expect("nginx starts (scripts/setup-bench installs it)");
    wait_ok(
        &format!("http://127.0.0.1:{port}/api/cache-settings/health"),
        Duration::from_secs(10),
    )
    .await;
    Nginx {
        port,
        _process: process,
        dir,
    }
}

pub struct Ceiling {
    pub port: u16,
    _process: Group,
}

/// This harness's own `ceiling` subcommand serving `body` on every path.
pub async fn ceiling(body: &Path) -> Ceiling {
    let port = free_port();
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .arg("ceiling")
        .arg("--port")
        .arg(port.to_string())
        .arg("--body")
        .arg(body)
        .stdout(Stdio::null());
    let process = Group::spawn(command).expect("ceiling starts");
    wait_ok(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(10),
    )
    .await;
    Ceiling {
        port,
        _process: process,
    }
}

pub struct BareWorker {
    pub port: u16,
    pub inspector: u16,
    _process: Group,
    dir: PathBuf,
}

impl Drop for BareWorker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A worker of a few lines of JavaScript in `wrangler dev` answering `body` on every path:
/// what workerd itself costs per request, against which the edge worker's KV hit is set.
pub async fn bare_worker(body: &Path) -> BareWorker {
    let (port, inspector) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("edgecache-bare-{}", e2e::random_suffix()));
    std::fs::create_dir_all(&dir).expect("bare worker dir");
    let text = std::fs::read_to_string(body).expect("body");
    let literal = serde_json::to_string(&text).expect("a string literal");
    let script = format!(
        "const body = {literal};\n\
         const headers = {{\"content-type\": \"application/json\", \"cache-control\": \"private, no-store\"}};\n\
         export default {{ fetch() {{ return new Response(body, {{ headers }}); }} }};\n"
    );
    std::fs::write(dir.join("worker.js"), script).expect("worker.js");
    std::fs::write(
        dir.join("wrangler.toml"),
        "name = \"bare\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-09-01\"\n",
    )
    .expect("wrangler.toml");
    let command = dev_with(
        &dir.join("wrangler.toml"),
        &dir.join("state"),
        (port, inspector),
    );
    let process = Group::spawn(command).expect("wrangler dev starts");
    wait_ok(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(120),
    )
    .await;
    BareWorker {
        port,
        inspector,
        _process: process,
        dir,
    }
}

/// `wrangler dev` of the worker `config` describes, on `port` with its inspector on
/// `inspector`, keeping its KV and Durable Objects in `state`.
fn dev_with(config: &Path, state: &Path, (port, inspector): (u16, u16)) -> Command {
    let mut command = Command::new(e2e::root().join("node_modules/.bin/wrangler"));
    command
        .current_dir(e2e::root())
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &inspector.to_string()])
        .arg("--config")
        .arg(config)
        .arg("--persist-to")
        .arg(state)
        .env("WRANGLER_SEND_METRICS", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Where the isolate of the worker at `port` (inspected at `inspector`) spends its CPU on
/// `count` reads of `path`, one at a time: microseconds per request by step, from V8's
/// sampling profiler (`profile.mjs`).
pub fn profile(
    (port, inspector): (u16, u16),
    path: &str,
    token: &str,
    ws: &str,
    count: u32,
) -> serde_json::Value {
    let output = Command::new("node")
        .arg("--experimental-websocket")
        .arg(e2e::root().join("tests/bench/profile.mjs"))
        .args([
            &inspector.to_string(),
            &format!("http://127.0.0.1:{port}{path}"),
            token,
            ws,
            &count.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs profile.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let profile = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    // A figure to explain the others: its failure is reported, and the run goes on.
    match profile.filter(|_: &serde_json::Value| output.status.success()) {
        Some(profile) => profile,
        None => serde_json::json!({"error": format!("profile.mjs failed: {stdout}")}),
    }
}

/// How long a new `wrangler dev` takes to answer its first request, from spawning it to
/// the first 200 (the median of `runs` starts): for the worker built in `build` (its
/// `index.js` beside its wasm) on `/health`, which runs its code, and for a bare worker.
/// The difference is what the worker adds to a new isolate's first answer.
pub async fn cold_start(build: &Path, runs: usize) -> serde_json::Value {
    let dir = std::env::temp_dir().join(format!("edgecache-cold-{}", e2e::random_suffix()));
    std::fs::create_dir_all(&dir).expect("cold start dir");
    let build = build.canonicalize().expect("the worker's build");
    let edge = e2e::worker_config(&build, "cold", e2e::Objects::Own)
        + &format!(
            "[vars]\nORIGIN_URL = \"http://127.0.0.1:9\"\nJWT_SECRET = {SECRET:?}\n\
             INTERNAL_API_KEY = {INTERNAL_KEY:?}\n"
        );
    std::fs::write(dir.join("edge.toml"), edge).expect("edge.toml");
    std::fs::write(
        dir.join("bare.js"),
        "export default { fetch() { return new Response(\"{}\"); } };\n",
    )
    .expect("bare.js");
    std::fs::write(
        dir.join("bare.toml"),
        "name = \"bare\"\nmain = \"bare.js\"\ncompatibility_date = \"2025-09-01\"\n",
    )
    .expect("bare.toml");
    let mut figures = serde_json::Map::new();
    for (name, config, path) in [("edge", "edge.toml", "/health"), ("bare", "bare.toml", "/")] {
        let mut times = Vec::new();
        for _ in 0..runs {
            times.push(first_answer(&dir.join(config), path).await);
        }
        times.sort();
        figures.insert(
            format!("{name}FirstAnswerMs"),
            serde_json::json!(times[times.len() / 2].as_secs_f64() * 1000.0),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    figures.insert("runs".into(), runs.into());
    figures.into()
}

async fn first_answer(config: &Path, path: &str) -> Duration {
    let port = free_port();
    let state = config.with_extension(format!("state-{}", e2e::random_suffix()));
    let command = dev_with(config, &state, (port, free_port()));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let started = std::time::Instant::now();
    let _process = Group::spawn(command).expect("wrangler dev starts");
    loop {
        if let Ok(answer) = http.get(&url).send().await {
            if answer.status().is_success() {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{url}: no answer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
