//! Hostile input generated from the origin's OpenAPI document by schemathesis (PyPI), in
//! two passes over every operation: one lets it generate everything, valid and invalid
//! (paths, queries, headers, bodies), the other pins the workspace and a board so
//! generated bodies and queries reach the handlers behind the workspace checks.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use e2e::origins::{self, token};
use serde_json::{json, Value};

use crate::scenario::{check, layers, Check};

/// The one operation without any input but the token, which the `-H Authorization`
/// override replaces: schemathesis would report its own mutated token as accepted.
const NO_INPUT: &str = "/api/cache-settings/status";

/// The event stream answers 200 and stays open: a request schemathesis would wait on
/// forever. Its input (ticket, token, last id) is covered by the API suite.
const STREAM: &str = "/api/workspaces/{ws}/events";

pub async fn schemathesis(url: &str, ws: &str, board: i64, examples: u32) -> (Value, Vec<Check>) {
    let redis = std::env::var("REDIS_URL").ok();
    let origin = origins::origin(url, &layers(redis, true)).await;
    let schema = format!("{}/api/openapi.json", origin.base());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let auth = format!("Authorization: Bearer {}", token("user_st", ws, true));
    let common = [
        "-m".to_owned(),
        "schemathesis.cli".into(),
        "run".into(),
        schema,
        "--experimental=openapi-3.1".into(),
        format!("--hypothesis-max-examples={examples}"),
        format!("--hypothesis-seed={seed}"),
        "--no-color".into(),
        "-H".into(),
        auth,
        format!("--exclude-path={STREAM}"),
    ];
    let everything = run(
        &common,
        &[
            "--data-generation-method=all",
            "--checks=not_a_server_error,negative_data_rejection",
            &format!("--exclude-path={NO_INPUT}"),
        ],
    )
    .await;
    let pinned = run(
        &common,
        &[
            "--data-generation-method=positive",
            "--checks=not_a_server_error",
            &format!("--set-path=ws={ws}"),
            &format!("--set-path=board_id={board}"),
            &format!("--set-header=X-Workspace-ID={ws}"),
        ],
    )
    .await;
    let checks = vec![
        check(
            "generated input, valid and invalid: 0 server errors, invalid input answered 4xx",
            everything.0,
            everything.1.clone(),
        ),
        check(
            "generated input reaching the handlers: 0 server errors",
            pinned.0,
            pinned.1.clone(),
        ),
    ];
    (
        json!({"seed": seed, "examplesPerOperation": examples, "generated": everything.1, "pinned": pinned.1}),
        checks,
    )
}

/// Whether schemathesis passed, and its summary of checks (or why it did not run).
async fn run(common: &[String], extra: &[&str]) -> (bool, String) {
    let mut command = Command::new("python3");
    // Its example database (.hypothesis/) goes under target/, not into the checkout.
    let dir = e2e::root().join("target/reliability");
    std::fs::create_dir_all(&dir).expect("target/reliability");
    command.args(common).args(extra).current_dir(dir);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("schemathesis task");
    match output {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let summary: Vec<String> = text
                .lines()
                .filter(|l| l.contains(" passed") || l.contains("Accepted") || l.contains("curl"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            if !out.status.success() {
                eprintln!("{text}");
            }
            (out.status.success(), summary.join("; "))
        }
        Err(e) => (
            false,
            format!("python3 -m schemathesis.cli did not start: {e}"),
        ),
    }
}
