use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::helpers::*;
use crate::servers::PrivateRedis;

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

/// Counts of a user nobody has asked for yet: nothing cached can stand in.
async fn uncached_counts(app: &TestApp) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/api/cache-settings/workspace/{WS}/counts")))
        .bearer_auth(token_for("user_9", &[WS], false, 3600))
        .send()
        .await
        .expect("request")
}

/// Reads the counts until they come back stale: the cached answer, marked as such.
async fn served_stale(app: &TestApp, cached: &serde_json::Value) {
    let stale = eventually(Duration::from_secs(5), || async {
        let d = app.counts(&member()).await;
        (d["_cache"]["status"] == "STALE").then_some(d)
    })
    .await;
    assert_eq!(stale["total"], cached["total"]);
    assert_eq!(stale["_timestamp"], cached["_timestamp"]);
    assert_eq!(stale["_stale"], true);
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

    // Anyone learns that Redis is down; only a caller with a token learns why.
    let public = app.health().await;
    assert_eq!(public["healthy"], false);
    assert_eq!(public["components"]["redis"]["up"], false);
    assert!(
        public["components"]["redis"].get("reason").is_none(),
        "{public}"
    );
    let health = data(app.get("/api/cache-settings/health", &member()).await).await;
    assert!(health["components"]["redis"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(health["components"]["database"]["up"], true);
    assert_eq!(health["components"]["database"]["store"], "postgres");
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
    served_stale(&app, &cached).await;

    let uncached = uncached_counts(&app).await;
    assert!(uncached.headers().contains_key("retry-after"));
    assert_eq!(
        error_code(uncached, StatusCode::SERVICE_UNAVAILABLE).await,
        "unavailable"
    );
}

/// Postgres slow (here: the contacts table locked by another session): a key with a
/// value past its TTL answers stale once the stale-if-slow deadline passes; a key with
/// nothing cached waits for the request deadline and gets 504; fresh again once it ends,
/// from the query the stale read left running.
#[sqlx::test(migrations = "../migrations")]
async fn with_postgres_slow_a_stale_value_beats_the_wait_and_others_get_504(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.stale_if_slow = Duration::from_millis(300);
    config.request_timeout = Duration::from_secs(2);
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    data(
        app.post(
            &format!("/api/cache-settings/workspace/{WS}/settings"),
            &admin(),
            json!({"cacheConfig": {"contactCountsTTL": 1}}),
        )
        .await,
    )
    .await;
    let cached = app.counts(&member()).await;
    assert_eq!(cached["_source"], "database");

    let mut blocker = db.begin().await.expect("transaction");
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock");
    served_stale(&app, &cached).await;

    let uncached = uncached_counts(&app).await;
    assert_eq!(
        error_code(uncached, StatusCode::GATEWAY_TIMEOUT).await,
        "timeout"
    );

    // The stale answer left its query running: once Postgres answers, that query fills
    // the layers by itself, and the next read is a fresh hit with no query of its own.
    let queries = app.db_queries();
    blocker.rollback().await.expect("unlock");
    let fresh = eventually(Duration::from_secs(5), || async {
        let d = app.counts(&member()).await;
        (d["_cache"]["status"] == "HIT" && d["_timestamp"] != cached["_timestamp"]).then_some(d)
    })
    .await;
    assert_eq!(fresh["total"], cached["total"]);
    assert_eq!(app.db_queries(), queries);
}

#[sqlx::test(migrations = "../migrations")]
async fn when_redis_dies_and_returns_the_origin_reconnects_by_itself(db: PgPool) {
    let mut redis = PrivateRedis::on_free_port(&[]).await;
    let a = redis.app(db.clone()).await;
    let port = redis.port;
    let b = a.sibling().await;
    let token = member();
    let expected = a.counts(&token).await["total"].clone();
    assert_eq!(b.counts(&token).await["_source"], "redis_cache");

    redis.stop();
    let during = a.counts(&token).await;
    assert_eq!(during["total"], expected);
    assert_eq!(a.health().await["components"]["redis"]["up"], false);

    let redis = PrivateRedis::start(port, &[]);
    redis.wait_ready().await;
    // Each probe uses a key never read before: A fills it, B must find it in Redis.
    let probe = std::sync::atomic::AtomicU32::new(0);
    eventually(Duration::from_secs(10), || async {
        let n = probe.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let user = token_for(&format!("probe_{n}"), &[WS], false, 3600);
        a.counts(&user).await;
        (b.counts(&user).await["_source"] == "redis_cache").then_some(())
    })
    .await;
    // Health answers from a probe up to a second old, which may predate the return.
    eventually(Duration::from_secs(5), || async {
        (a.health().await["components"]["redis"]["up"] == true).then_some(())
    })
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn garbage_and_old_format_values_in_redis_are_misses(db: PgPool) {
    let a = TestApp::spawn(db.clone()).await;
    let token = member();
    let user = shared::UserId::parse("user_3").expect("user");
    let cache = &a.state.cache;
    let key = cache.counts_key(&ws(WS), &user).await;
    let client =
        redis::Client::open(a.state.config.redis_url.clone().expect("redis url")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let expected = sql_count(&db, "NOT archived").await;
    for garbage in [
        "\u{0}\u{1}garbage",
        r#"{"total": 1}"#,
        "ec0|1|9999999999999|{\"total\":1}",
        "ec1|x|y|{}",
    ] {
        a.state.cache.memory().remove(&key);
        redis::cmd("SET")
            .arg(&key)
            .arg(garbage)
            .query_async::<()>(&mut conn)
            .await
            .expect("set garbage");
        let d = a.counts(&token).await;
        assert_eq!(
            (d["_source"].as_str(), &d["total"]),
            (Some("database"), &json!(expected)),
            "{garbage:?}"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_hung_redis_costs_a_timeout_not_an_error(db: PgPool) {
    let redis = PrivateRedis::on_free_port(&[]).await;
    let app = redis.app(db.clone()).await;
    let expected = sql_count(&db, "NOT archived").await;
    app.counts(&member()).await;

    let pid = redis.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .expect("SIGSTOP");
    for i in 0..20 {
        let user = token_for(&format!("hung_{i}"), &[WS], false, 3600);
        let d = app.counts(&user).await;
        assert_eq!(d["total"], expected, "read {i}");
    }
    assert_eq!(app.health().await["components"]["redis"]["up"], false);
    std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .expect("SIGCONT");
}

/// A fill slower than its lock's TTL finds another holder in the lock by the time it ends;
/// releasing must leave that holder's lock alone.
#[tokio::test]
async fn a_fill_lock_is_released_only_by_its_owner() {
    let redis =
        origin::cache::redis::RedisCache::new(&redis_url(), Duration::from_secs(1)).expect("redis");
    let lock = format!("{}:lock", unique_namespace());
    let ttl = Duration::from_secs(5);
    assert!(redis.try_lock(&lock, "first", ttl).await.expect("lock"));
    assert!(!redis.try_lock(&lock, "second", ttl).await.expect("lock"));
    let release = |owner| redis.release(&lock, owner, "unheard", "released");
    assert!(!release("second").await.expect("release"));
    assert!(redis.exists(&lock).await.expect("exists"));
    assert!(release("first").await.expect("release"));
    assert!(!redis.exists(&lock).await.expect("exists"));
}

/// Other instances learn of a release from the channel, not by polling: the announcement
/// comes once the lock is gone, whether or not the releaser still held it.
#[tokio::test]
async fn releasing_a_fill_lock_announces_it_on_the_channel() {
    use futures_util::StreamExt;
    let redis =
        origin::cache::redis::RedisCache::new(&redis_url(), Duration::from_secs(1)).expect("redis");
    let namespace = unique_namespace();
    let (lock, channel) = (format!("{namespace}:lock"), format!("{namespace}:fills"));
    let client = redis.pubsub_client().await.expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let mut messages = pubsub.on_message();
    assert!(redis
        .try_lock(&lock, "first", Duration::from_secs(5))
        .await
        .expect("lock"));
    for owner in ["first", "first"] {
        redis
            .release(&lock, owner, &channel, "k")
            .await
            .expect("release");
        assert!(!redis.exists(&lock).await.expect("exists"));
        let heard = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("announced")
            .expect("message");
        assert_eq!(heard.get_payload::<String>().expect("text"), "k");
    }
}

/// A workspace's searches the caches do not answer run a few at a time on an instance:
/// past that a search is refused at once (503, Retry-After) instead of queueing in front
/// of everyone's reads, and a search the database cannot finish in time is given up.
#[sqlx::test(migrations = "../migrations")]
async fn a_workspace_searching_past_its_share_is_refused_and_a_stuck_search_given_up(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.search_concurrency_per_workspace = 1;
    config.search_timeout = Duration::from_millis(1_500);
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    let search = format!("/api/boards/{}/contacts?search=grace", app.boards[0]);
    assert_eq!(app.get(&search, &member()).await.status(), StatusCode::OK);

    // Another writer holds the contacts table: the next search waits on it.
    let mut holder = db.begin().await.expect("transaction");
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let stuck = spawn_get(&app, &search);
    searches_waiting(&db, true, "the search never reached the lock").await;
    let refused = app.get(&format!("{search}&per_page=7"), &member()).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let stuck = stuck.await.expect("the stuck search");
    assert_eq!(stuck.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(stuck.headers().contains_key("retry-after"));
    // Given up, the search is cancelled in Postgres too: it waits no more, though the
    // lock is still held.
    searches_waiting(&db, false, "the abandoned search still runs").await;
    holder.rollback().await.expect("release");
    // Free again, it searches again.
    assert_eq!(app.get(&search, &member()).await.status(), StatusCode::OK);
}

/// A member's GET of `path`, sent from a task of its own.
fn spawn_get(app: &TestApp, path: &str) -> tokio::task::JoinHandle<reqwest::Response> {
    let (http, url, token) = (app.http.clone(), app.url(path), member());
    tokio::spawn(async move {
        http.get(url)
            .bearer_auth(token)
            .header("X-Workspace-ID", WS)
            .send()
            .await
            .expect("request")
    })
}

/// Polls (for up to 5 s) until some search statement waits on a lock, or none does (the
/// vocabulary's sweep, which reads the words too, is not a search).
async fn searches_waiting(db: &PgPool, some: bool, failure: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%search_doc%' AND query NOT LIKE '%contact_search_words%'",
        )
        .fetch_one(db)
        .await
        .expect("activity");
        if (waiting > 0) == some {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that leaves (a closed tab, the next keystroke's request replacing this one)
/// takes its search with it: the statement is cancelled in Postgres long before the
/// search's own time budget would end it.
#[sqlx::test(migrations = "../migrations")]
async fn a_search_whose_client_left_is_cancelled_in_postgres(db: PgPool) {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.search_timeout = Duration::from_secs(60);
    let app = TestApp::spawn_with(db.clone(), config, seeded.boards).await;
    let search = format!("/api/boards/{}/contacts?search=grace", app.boards[0]);
    let mut holder = db.begin().await.expect("transaction");
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .expect("lock");
    let client = spawn_get(&app, &search);
    searches_waiting(&db, true, "the search never reached the lock").await;
    client.abort();
    searches_waiting(&db, false, "the search outlived its client").await;
    holder.rollback().await.expect("release");
}
