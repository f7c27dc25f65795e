//! Instructions per L1 hit, counted by valgrind's callgrind in an origin it runs: a figure
//! that does not move with machine noise (unlike requests per second on a shared 2-core
//! machine), so a change to the hit path shows in it from one run to the next.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::origins::{self, Layers};
use e2e::random_suffix;
use serde_json::{json, Value};

/// Requests counted per read; the counters are zeroed after the key is warm.
const REQUESTS: u32 = 2000;

/// Instructions the origin spends per L1 hit on each of `reads` (a name and a path),
/// answered for `token` in `ws`.
pub async fn per_hit(
    database_url: &str,
    layers: &Layers,
    ws: &str,
    token: &str,
    reads: &[(&str, String)],
) -> Value {
    let dumps = std::env::temp_dir().join(format!("edgecache-callgrind-{}", random_suffix()));
    let out = format!("--callgrind-out-file={}", dumps.display());
    let origin = origins::origin_under(
        &["valgrind", "--tool=callgrind", &out],
        database_url,
        layers,
        &[],
    )
    .await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", origin.base()))
            .bearer_auth(token)
            .header("X-Workspace-ID", ws)
            .send()
    };
    let mut figures = json!({});
    for (i, (name, path)) in reads.iter().enumerate() {
        for _ in 0..3 {
            let warm = get(path).await.expect("warm read");
            assert!(warm.status().is_success(), "{path}: {}", warm.status());
        }
        callgrind_control("-z", origin.pid());
        for _ in 0..REQUESTS {
            let hit = get(path).await.expect("read");
            assert_eq!(
                hit.headers().get("x-cache-source").map(|v| v.as_bytes()),
                Some(&b"memory"[..]),
                "{path} is not an L1 hit"
            );
            hit.bytes().await.expect("body");
        }
        callgrind_control("-d", origin.pid());
        let dump = PathBuf::from(format!("{}.{}", dumps.display(), i + 1));
        let total = summary(&dump);
        figures[*name] = json!(total as f64 / f64::from(REQUESTS));
        let _ = std::fs::remove_file(&dump);
    }
    drop(origin);
    let _ = std::fs::remove_file(&dumps);
    figures
}

fn callgrind_control(what: &str, pid: u32) {
    let done = Command::new("callgrind_control")
        .args([what, &pid.to_string()])
        .output()
        .expect("callgrind_control (valgrind's package)");
    assert!(done.status.success(), "callgrind_control {what} failed");
}

/// The instructions a callgrind dump counted (its `summary:` line).
fn summary(dump: &Path) -> u64 {
    let text = std::fs::read_to_string(dump).expect("a callgrind dump");
    text.lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a summary line")
}
