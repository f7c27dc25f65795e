//! The newcomer's first command: the real `origin` binary with neither `DATABASE_URL` nor
//! `REDIS_URL` set starts on the embedded store with L1 only, seeds its demo data, says
//! so in its log, and serves counts and pages.

use std::process::{Child, Command};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;
use crate::servers::free_port;

/// Stops the origin when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_no_database_or_redis_configured_the_origin_serves_the_demo_data() {
    let dir = std::env::temp_dir().join(format!("edgecache-embedded-{}", unique_namespace()));
    let log_path = dir.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_origin"))
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_READ_URL")
        .env_remove("REDIS_URL")
        .env("DATA_DIR", &dir)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", SECRET)
        .env("SEED_DEMO_CONTACTS", "20000")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start origin");
    let _running = Running(child);

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = eventually(Duration::from_secs(60), || async {
        let r = http
            .get(format!("{base}/api/cache-settings/health"))
            .send()
            .await
            .ok()?;
        Some(data(r).await)
    })
    .await;
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["components"]["database"]["store"], "sqlite");
    assert_eq!(health["components"]["redis"]["configured"], false);
    assert!(dir.join("edgecache.sqlite3").exists());

    let token = token_for("user_3", &[WS], false, 3600);
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .bearer_auth(&token)
            .header("X-Workspace-ID", WS)
            .send()
    };
    let counts = data(
        get(format!("/api/cache-settings/workspace/{WS}/counts"))
            .await
            .expect("counts"),
    )
    .await;
    let total = counts["total"].as_i64().expect("total");
    let archived = counts["archived"].as_i64().expect("archived");
    assert_eq!(total + archived, 20_000, "{counts}");
    assert_eq!(counts["_source"], "database");

    let page = data(
        get("/api/boards/1/contacts?per_page=10&sort_by=name&sort_order=asc".into())
            .await
            .expect("page"),
    )
    .await;
    assert_eq!(page["contacts"].as_array().map(Vec::len), Some(10));
    assert_eq!(page["contacts"][0]["workspace_id"], WS);
    let again = get(format!("/api/cache-settings/workspace/{WS}/counts"))
        .await
        .expect("counts again");
    assert_eq!(again.status(), StatusCode::OK);
    let again = data(again).await;
    assert_eq!(again["_source"], "memory");
    assert_eq!(again["total"], counts["total"]);

    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("store: embedded SQLite"), "{log}");
    assert!(log.contains("L1 memory only"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&log_path);
}
