//! The benchmark's own database, seeded once and reused while its plan is unchanged.

use std::time::Instant;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use shared::settings::CacheSettings;

use crate::plan::Plan;
use e2e::origins;

/// A workspace to seed: id, contacts, boards, and its conversations and messages.
type Seed = (String, u32, u32, (u32, u64));

/// Contacts of a message history workspace (its conversations are with the newest).
const HISTORY_CONTACTS: u32 = 2_000;

/// The bench database, seeded with exactly the plan's workspaces (recreated otherwise).
pub async fn database(plan: &Plan) -> (PgPool, String) {
    let url = origins::database_url(plan.database());
    let mut wanted: Vec<Seed> = plan
        .main
        .iter()
        .map(|w| (w.clone(), plan.main_contacts, 4, (0, 0)))
        .collect();
    wanted.extend(plan.scaling.iter().map(|(w, n)| (w.clone(), *n, 1, (0, 0))));
    wanted.extend(
        plan.history
            .iter()
            .map(|(w, c, m)| (w.clone(), HISTORY_CONTACTS, 1, (*c, *m))),
    );
    let mut ready = false;
    if let Ok(db) = PgPool::connect(&url).await {
        // Marks a seeding that ran to its end, indexes rebuilt (see below).
        ready = sqlx::query_scalar::<_, bool>("SELECT to_regclass('bench_seeded') IS NOT NULL")
            .fetch_one(&db)
            .await
            .unwrap_or(false);
        for (ws, n, _, (_, messages)) in &wanted {
            let have: Result<(i64, i64), _> = sqlx::query_as(
                "SELECT (SELECT count(*) FROM contacts WHERE workspace_id = $1), \
                 (SELECT count(*) FROM messages WHERE workspace_id = $1)",
            )
            .bind(ws)
            .fetch_one(&db)
            .await;
            // The ingest run appends messages: more than were seeded is as seeded.
            ready &= have.is_ok_and(|(c, m)| c == i64::from(*n) && m >= *messages as i64);
        }
        db.close().await;
    }
    if ready {
        // A migration added since the seeding runs here, before an origin waits on it.
        origins::migrate(&url);
    } else {
        let name = plan.database();
        origins::on_server(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
        origins::on_server(&format!("CREATE DATABASE {name}")).await;
        // The smallest workspace first, alone: it migrates the schema.
        wanted.sort_by_key(|w| std::cmp::Reverse(u64::from(w.1) + w.3 .1));
        if let Some((ws, n, boards, history)) = wanted.pop() {
            origins::seed(&url, &ws, n, boards, history);
        }
        let db = PgPool::connect(&url).await.expect("bench database");
        let indexes = drop_bulk_indexes(&db).await;
        // Two seeds at a time: each is one INSERT … SELECT on one Postgres core.
        let mut lanes: [(u64, Vec<Seed>); 2] = Default::default();
        for w in wanted {
            let lane = if lanes[0].0 <= lanes[1].0 { 0 } else { 1 };
            lanes[lane].0 += u64::from(w.1) + w.3 .1 / 4;
            lanes[lane].1.push(w);
        }
        std::thread::scope(|scope| {
            for (_, lane) in &lanes {
                let url = &url;
                scope.spawn(move || {
                    for (ws, n, boards, history) in lane {
                        let started = Instant::now();
                        origins::seed(url, ws, *n, *boards, *history);
                        eprintln!(
                            "seeded {ws} ({n} contacts, {} messages) in {:.0?}",
                            history.1,
                            started.elapsed()
                        );
                    }
                });
            }
        });
        let started = Instant::now();
        for statement in &indexes {
            sqlx::query(statement)
                .execute(&db)
                .await
                .expect("recreate index");
        }
        for table in ["contacts", "messages"] {
            sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
                .execute(&db)
                .await
                .expect("vacuum");
        }
        sqlx::query("CREATE TABLE bench_seeded ()")
            .execute(&db)
            .await
            .expect("mark seeded");
        eprintln!("rebuilt the indexes in {:.0?}", started.elapsed());
        db.close().await;
    }
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("bench database");
    (db, url)
}

/// Drops the secondary indexes of `contacts` (not those behind constraints) and the full-
/// text index of `messages`, and returns the statements that build them again as the
/// migrations left them (their statistics targets too, which decide the keys' estimates):
/// building each once after the bulk load is several times faster than keeping all of
/// them up to date through millions of inserts in random key order (or, for the GIN
/// index, millions of pending-list flushes). The other indexes of `messages` stay:
/// seeding reads a conversation's newest.
async fn drop_bulk_indexes(db: &PgPool) -> Vec<String> {
    let indexes: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT i.relname::text, pg_get_indexdef(i.oid), \
                ARRAY(SELECT format('ALTER INDEX %I ALTER COLUMN %s SET STATISTICS %s', \
                                    i.relname, a.attnum, a.attstattarget) \
                      FROM pg_attribute a WHERE a.attrelid = i.oid AND a.attstattarget >= 0) \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         WHERE (x.indrelid = 'contacts'::regclass \
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)) \
            OR i.relname = 'messages_search_idx'",
    )
    .fetch_all(db)
    .await
    .expect("contact indexes");
    let mut again = Vec::new();
    for (name, definition, statistics) in indexes {
        sqlx::query(&format!("DROP INDEX {name}"))
            .execute(db)
            .await
            .expect("drop index");
        again.push(definition);
        again.extend(statistics);
    }
    again
}

/// Saves `ws`'s settings as the defaults changed by `change`, as an admin would in the
/// panel (the origins started after it read them).
pub async fn settings(db: &PgPool, ws: &str, change: impl FnOnce(&mut CacheSettings)) {
    let mut settings = CacheSettings::default();
    change(&mut settings);
    sqlx::query(
        "INSERT INTO workspace_cache_settings (workspace_id, settings) VALUES ($1, $2) \
         ON CONFLICT (workspace_id) DO UPDATE SET settings = excluded.settings",
    )
    .bind(ws)
    .bind(sqlx::types::Json(&settings))
    .execute(db)
    .await
    .expect("settings");
}

/// The ids `sql` selects for workspace `ws` (its one parameter).
pub async fn ids(db: &PgPool, sql: &str, ws: &str) -> Vec<i64> {
    sqlx::query_scalar(sql)
        .bind(ws)
        .fetch_all(db)
        .await
        .expect("ids")
}
