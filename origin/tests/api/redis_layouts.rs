//! L2 on a real three-node Redis Cluster and on a Sentinel-managed primary, each started
//! on loopback ports by the test.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::*;
use crate::servers::{app_on_redis, Cluster, Sentinel};

async fn open_contact(db: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT id FROM contacts WHERE workspace_id = $1 AND status = 'open' AND NOT archived \
         ORDER BY id LIMIT 1",
    )
    .bind(WS)
    .fetch_one(db)
    .await
    .expect("an open contact")
}

#[sqlx::test(migrations = "../migrations")]
async fn on_a_redis_cluster_instances_share_l2_and_stay_coherent(db: PgPool) {
    let cluster = Cluster::start().await;
    let a = app_on_redis(db.clone(), cluster.url()).await;
    let b = a.sibling().await;
    let token = member();

    let health = a.health().await;
    assert_eq!(health["components"]["redis"]["up"], true, "{health}");
    assert_eq!(health["components"]["redis"]["layout"], "cluster");

    let first = a.counts(&token).await;
    assert_eq!(first["_source"], "database");
    let shared = b.counts(&token).await;
    assert_eq!(
        shared["_source"], "redis_cache",
        "B reads what A put in the cluster"
    );
    assert_eq!(shared["open"], first["open"]);
    let path = format!("/api/boards/{}/contacts?per_page=10", a.boards[0]);
    data(a.get(&path, &token).await).await;
    assert_eq!(
        data(b.get(&path, &token).await).await["_source"],
        "redis_cache"
    );

    // A write through A: B's next counts are the new ones, read from the database.
    let id = open_contact(&db).await;
    a.patch_contact(id, &token, json!({"status": "closed"}))
        .await;
    let open_before = first["open"].as_i64().expect("open");
    let after = eventually(Duration::from_secs(3), || async {
        let c = b.counts(&token).await;
        (c["open"].as_i64() == Some(open_before - 1)).then_some(c)
    })
    .await;
    assert_eq!(
        after["closed"],
        first["closed"].as_i64().expect("closed") + 1
    );

    // Every key of the workspace (its generations, its counts and its page) lives on the
    // one node that owns the workspace's hash slot.
    let tag = format!("{{{WS}}}");
    let mut holders = Vec::new();
    for node in &cluster.nodes {
        let keys: Vec<String> = node
            .query(redis::cmd("KEYS").arg(format!("*{tag}*")))
            .await
            .expect("keys");
        if !keys.is_empty() {
            holders.push((node.port, keys));
        }
    }
    assert_eq!(
        holders.len(),
        1,
        "one node holds the workspace: {holders:?}"
    );
    let keys = &holders[0].1;
    for kind in [":gen:", ":counts:", ":contacts:"] {
        assert!(keys.iter().any(|k| k.contains(kind)), "{kind} in {keys:?}");
    }
}

/// On a Cluster, PUBLISH answers how many subscribers the receiving node has, not the
/// cluster: a write waits for every instance listed as listening instead, so each bump is
/// acknowledged by both instances, whichever nodes they subscribed through.
#[sqlx::test(migrations = "../migrations")]
async fn on_a_redis_cluster_a_write_waits_for_every_listening_instance(db: PgPool) {
    let cluster = Cluster::start().await;
    let a = app_on_redis(db.clone(), cluster.url()).await;
    let _b = a.sibling().await;
    let change = shared::invalidation::Changed::Boards(vec![]);
    eventually(Duration::from_secs(10), || async {
        let bump = origin::invalidation::changed(&a.state, &ws(WS), &change).await;
        (bump.notified == 2).then_some(())
    })
    .await;
    for _ in 0..20 {
        let bump = origin::invalidation::changed(&a.state, &ws(WS), &change).await;
        assert_eq!((bump.notified, bump.acknowledged), (2, 2), "{bump:?}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn through_sentinel_l2_follows_the_primary_across_a_failover(db: PgPool) {
    let redis = Sentinel::start().await;
    let a = app_on_redis(db.clone(), redis.url()).await;
    let b = a.sibling().await;
    let token = member();

    let health = a.health().await;
    assert_eq!(health["components"]["redis"]["up"], true, "{health}");
    assert_eq!(health["components"]["redis"]["layout"], "sentinel");
    assert_eq!(a.counts(&token).await["_source"], "database");
    assert_eq!(b.counts(&token).await["_source"], "redis_cache");
    let on_primary: u64 = redis
        .primary
        .query(&redis::cmd("DBSIZE"))
        .await
        .expect("dbsize");
    assert!(on_primary > 0, "the fill went to the primary");

    let failover = redis
        .sentinel
        .query::<String>(
            redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(super::servers::SERVICE),
        )
        .await;
    assert!(failover.is_ok(), "{failover:?}");
    eventually(Duration::from_secs(20), || async {
        (redis.primary_port().await == Some(redis.replica.port)).then_some(())
    })
    .await;

    // After the failover new fills must land on the promoted replica. Each attempt reads
    // counts as another user (a key not yet cached anywhere).
    let mut attempt = 100;
    eventually(Duration::from_secs(15), || {
        attempt += 1;
        let user = format!("user_{attempt}");
        let app = &a;
        let replica = &redis.replica;
        async move {
            let r = app
                .get(
                    &format!("/api/cache-settings/workspace/{WS}/counts"),
                    &token_for(&user, &[WS], false, 3600),
                )
                .await;
            assert_eq!(
                r.status(),
                reqwest::StatusCode::OK,
                "no error during a failover"
            );
            let keys: Vec<String> = replica
                .query(redis::cmd("KEYS").arg(format!("*:{user}")))
                .await
                .ok()?;
            (!keys.is_empty()).then_some(())
        }
    })
    .await;
}
