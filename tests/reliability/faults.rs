//! The faults: a private Redis killed or hung, Postgres (or the edge, or an origin) cut
//! off or slowed behind a proxy this harness owns, and an invalidation under hundreds of
//! readers on two instances.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use e2e::origins::token;

use crate::load::{self, Target};

/// A redis-server of this run's own, on a free port, that a scenario kills or freezes.
pub struct Redis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl Redis {
    pub async fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let redis = Self {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = std::process::Command::new("kill")
                .args([signal, &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// A TCP proxy to a loopback port: `cut` refuses and drops every connection (the target
/// down, as its clients see it), `slow` delays every answer from the target, `restore`
/// ends both; `retarget` sends new connections elsewhere.
pub struct Proxy {
    pub port: u16,
    mode: Arc<std::sync::atomic::AtomicU8>,
    target: Arc<std::sync::atomic::AtomicU16>,
    links: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

const OPEN: u8 = 0;
const CUT: u8 = 1;
const SLOW: u8 = 2;

impl Proxy {
    pub async fn start(target: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(OPEN));
        let target = Arc::new(std::sync::atomic::AtomicU16::new(target));
        let links = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let (m, t, l) = (mode.clone(), target.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if m.load(std::sync::atomic::Ordering::Relaxed) == CUT {
                    drop(inbound);
                    continue;
                }
                let m = m.clone();
                let to = t.load(std::sync::atomic::Ordering::Relaxed);
                l.lock().await.spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(("127.0.0.1", to)).await {
                        link(inbound, outbound, m, delay).await;
                    }
                });
            }
        });
        Self {
            port,
            mode,
            target,
            links,
            accept,
        }
    }

    pub fn retarget(&self, port: u16) {
        self.target
            .store(port, std::sync::atomic::Ordering::Relaxed);
    }

    pub async fn cut(&self) {
        self.mode.store(CUT, std::sync::atomic::Ordering::Relaxed);
        self.links.lock().await.abort_all();
    }

    pub fn slow(&self) {
        self.mode.store(SLOW, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn restore(&self) {
        self.mode.store(OPEN, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies both ways; in SLOW mode each chunk from the target waits `delay` first.
async fn link(
    inbound: TcpStream,
    outbound: TcpStream,
    mode: Arc<std::sync::atomic::AtomicU8>,
    delay: Duration,
) {
    let (mut client_r, mut client_w) = inbound.into_split();
    let (mut server_r, mut server_w) = outbound.into_split();
    // Each direction passes on the end of the other (a target that dies closes its
    // client's connection too, as a direct connection would).
    let up = async {
        let _ = tokio::io::copy(&mut client_r, &mut server_w).await;
        let _ = server_w.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            use tokio::io::AsyncReadExt;
            let n = match server_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if mode.load(std::sync::atomic::Ordering::Relaxed) == SLOW {
                tokio::time::sleep(delay).await;
            }
            if client_w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(up, down);
}

/// The sum of a Prometheus counter over all its label sets.
pub async fn counter(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls the origin's health until Redis is up again; how long that took.
pub async fn redis_back(base: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(r) = reqwest::get(format!("{base}/api/cache-settings/health")).await {
            if let Ok(v) = r.json::<Value>().await {
                if v["data"]["components"]["redis"]["up"] == true {
                    return Some(started.elapsed());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Reads of the workspace's pages: `pages` of each board, every one a separate key.
pub fn page_targets(base: &str, ws: &str, boards: &[i64], pages: u32) -> Vec<Target> {
    let t = token("user_3", ws, false);
    let mut out = Vec::new();
    for page in 1..=pages {
        for b in boards {
            out.push(Target {
                url: format!("{base}/api/boards/{b}/contacts?page={page}"),
                token: t.clone(),
                workspace: ws.to_owned(),
            });
        }
    }
    out
}

/// TTLs of one second for `ws`, so a warmed page is past fresh soon after: stale.
pub async fn short_ttls(base: &str, ws: &str) {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/cache-settings/workspace/{ws}/settings"))
        .bearer_auth(token("user_1", ws, true))
        .json(&json!({"cacheConfig": {"contactsTTL": 1, "contactCountsTTL": 1}}))
        .send()
        .await
        .expect("settings");
    assert!(r.status().is_success(), "settings: {}", r.status());
}

/// Asks every target once (fills the caches behind them).
pub async fn warm(targets: &[Target]) {
    let http = reqwest::Client::new();
    for t in targets {
        let r = http
            .get(&t.url)
            .bearer_auth(&t.token)
            .header("X-Workspace-ID", &t.workspace)
            .send()
            .await
            .expect("warm");
        assert!(r.status().is_success(), "{}: {}", t.url, r.status());
    }
}

/// Phases of a run: before the fault, during it, after it.
pub fn phases(samples: &[load::Sample], fault: Duration, repair: Duration, end: Duration) -> Value {
    json!({
        "before": load::window(samples, Duration::ZERO, fault),
        "during": load::window(samples, fault, repair),
        "after": load::window(samples, repair, end),
    })
}
