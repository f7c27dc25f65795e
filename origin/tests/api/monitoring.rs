//! The alert rules and the Grafana dashboard of docs/monitoring name only metrics the
//! origin exports, checked against a scrape of a running origin: renaming a metric in
//! the code without them fails here, not in someone's on-call night.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::*;

/// Every `edgecache_…` metric name in `text`.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("edgecache_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

fn monitoring_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/monitoring")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[sqlx::test(migrations = "../migrations")]
async fn the_alert_rules_and_the_dashboard_name_only_exported_metrics(db: PgPool) {
    // One origin whose Redis is away (its errors are counted by operation) and one that
    // pushes its changes to an edge (here a stand-in taking every push), each read from
    // and written to, so that every family has a series.
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.redis_url = Some("redis://127.0.0.1:1".into());
    let away = TestApp::spawn_with(db.clone(), config, seeded.boards.clone()).await;
    away.counts(&member()).await;

    let edge = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("the edge's port");
    let mut config = test_config(&unique_namespace());
    config.edge_url = Some(format!("http://{}", edge.local_addr().expect("address")));
    config.edge_push_key = Some(origin::config::Secret(PUSH_KEY.into()));
    let takes_all = axum::Router::new().fallback(|| async { axum::http::StatusCode::OK });
    tokio::spawn(async move { axum::serve(edge, takes_all).await });
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    app.counts(&member()).await;
    app.counts(&member()).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM contacts WHERE workspace_id = $1 LIMIT 1")
        .bind(WS)
        .fetch_one(&db)
        .await
        .expect("a contact");
    app.patch_contact(id, &member(), serde_json::json!({"favorite": true}))
        .await;
    eventually(Duration::from_secs(10), || async {
        let status = data(app.get("/api/cache-settings/status", &admin()).await).await;
        status["edgePush"]["lastLagMs"].as_u64()
    })
    .await;
    let scrape = app.metrics().await;
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        exported.contains("edgecache_redis_errors_total"),
        "{scrape}"
    );

    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let named = named_metrics(&monitoring_file(file));
        assert!(named.len() >= 8, "{file} names only {named:?}");
        for name in named {
            // A histogram's series are its family's name with a suffix.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| exported.contains(f))
                .unwrap_or(&name);
            assert!(
                exported.contains(family),
                "{file} names {name}, which the origin does not export ({exported:?})"
            );
        }
    }

    // The dashboard is one Grafana loads: panels, each with at least one query.
    let dashboard: Value =
        serde_json::from_str(&monitoring_file("grafana-dashboard.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].is_string()),
            "panel {} has no query",
            p["title"]
        );
    }
}
