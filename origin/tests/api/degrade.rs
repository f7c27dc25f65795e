use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::*;

/// A TCP proxy to Postgres that the test can cut: `cut` drops the listener and every
/// connection through it, as a network partition would.
struct Proxy {
    port: u16,
    tasks: JoinSet<()>,
}

impl Proxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut links = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, tasks }
    }

    fn cut(&mut self) {
        self.tasks.abort_all();
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn with_redis_unreachable_answers_stay_correct_and_health_says_why(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.redis_url = Some("redis://127.0.0.1:1".into());
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;

    let first = app.counts(&member()).await;
    let second = app.counts(&member()).await;
    assert_eq!(first["total"], sql_count(&db, "NOT archived").await);
    assert_eq!(
        (first["_source"].as_str(), second["_source"].as_str()),
        (Some("database"), Some("memory"))
    );

    let health = app.health().await;
    assert_eq!(health["healthy"], false);
    assert_eq!(health["components"]["redis"]["up"], false);
    assert!(health["components"]["redis"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(health["components"]["postgres"]["up"], true);
}

#[sqlx::test(migrations = "../migrations")]
async fn with_postgres_cut_cached_answers_are_served_stale_and_others_get_503(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut proxy = Proxy::start(db.connect_options().get_port()).await;
    let config = test_config(&unique_namespace());
    let through_proxy = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(config.db_acquire_timeout)
        .connect_lazy_with(db.connect_options().as_ref().clone().port(proxy.port));
    let app = TestApp::spawn_with(through_proxy, config, seeded.boards).await;

    let settings = app
        .post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"cacheConfig": {"contactCountsTTL": 1}}),
        )
        .await;
    data(settings).await;
    let cached = app.counts(&member()).await;
    assert_eq!(cached["_source"], "database");

    proxy.cut();
    let stale = eventually(Duration::from_secs(5), || async {
        let d = app.counts(&member()).await;
        (d["_cache"]["status"] == "STALE").then_some(d)
    })
    .await;
    assert_eq!(stale["total"], cached["total"]);
    assert_eq!(stale["_timestamp"], cached["_timestamp"]);
    assert_eq!(stale["_stale"], true);

    let uncached = app
        .http
        .get(app.url(&format!("/api/cache-settings/workspace/{WS}/counts")))
        .bearer_auth(token_for("user_9", &[WS], false, 3600))
        .send()
        .await
        .expect("request");
    assert!(uncached.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(uncached, StatusCode::SERVICE_UNAVAILABLE).await,
        "unavailable"
    );
}
