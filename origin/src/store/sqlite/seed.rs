//! Demo and test data for the embedded store: the Postgres seed's distributions, written
//! as one INSERT … SELECT over a recursive counter (SQLite has no generate_series).

use shared::WorkspaceId;
use sqlx::SqlitePool;

use super::super::{seed_chunks, seed_progress, Seeded, SEED_COLUMNS};
use crate::error::Result;

pub async fn seed(db: &SqlitePool, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
    let mut tx = db.begin().await?;
    sqlx::query("INSERT INTO workspaces (id, name) VALUES (?, ?) ON CONFLICT (id) DO NOTHING")
        .bind(ws.as_str())
        .bind(format!("Workspace {ws}"))
        .execute(&mut *tx)
        .await?;
    let mut board_ids = Vec::new();
    for n in 1..=boards.max(1) {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO boards (workspace_id, name) VALUES (?, ?) RETURNING id",
        )
        .bind(ws.as_str())
        .bind(format!("Pipeline {n}"))
        .fetch_one(&mut *tx)
        .await?;
        for (position, name) in (1i64..).zip(SEED_COLUMNS) {
            sqlx::query("INSERT INTO board_columns (board_id, name, position) VALUES (?, ?, ?)")
                .bind(id)
                .bind(name)
                .bind(position)
                .execute(&mut *tx)
                .await?;
        }
        board_ids.push(id);
    }
    let board_list = serde_json::to_string(&board_ids).map_err(super::super::internal)?;
    let mut inserted = 0;
    for (from, to) in seed_chunks(contacts) {
        inserted += sqlx::query(SEED_CONTACTS)
            .bind(ws.as_str())
            .bind(from)
            .bind(&board_list)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        seed_progress(ws, inserted, contacts);
    }
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(db).await?;
    Ok(Seeded {
        boards: board_ids,
        contacts: inserted,
    })
}

pub async fn is_empty(db: &SqlitePool) -> Result<bool> {
    let any: Option<i64> = sqlx::query_scalar("SELECT 1 FROM workspaces LIMIT 1")
        .fetch_optional(db)
        .await?;
    Ok(any.is_none())
}

/// `?1` workspace, contacts numbered `?2` to `?4`, `?3` the boards as a JSON array. Random
/// fractions come from `random()`'s low 20 bits; MATERIALIZED keeps each row's draws
/// the same wherever they are used.
const SEED_CONTACTS: &str = r#"
WITH RECURSIVE
g(i) AS (SELECT ?2 WHERE ?2 <= ?4 UNION ALL SELECT i + 1 FROM g WHERE i < ?4),
cols AS (
    SELECT board_id, id AS column_id,
           row_number() OVER (ORDER BY board_id, position) - 1 AS n,
           count(*) OVER () AS k
    FROM board_columns WHERE board_id IN (SELECT value FROM json_each(?3))
),
draws AS MATERIALIZED (
    SELECT i,
        (random() & 1048575) / 1048576.0 AS r1, (random() & 1048575) / 1048576.0 AS r2,
        (random() & 1048575) / 1048576.0 AS r3, (random() & 1048575) / 1048576.0 AS r4,
        (random() & 1048575) / 1048576.0 AS r5,
        julianday('now') - ((random() & 1048575) / 1048576.0) * 730 AS created
    FROM g
),
people AS (
    SELECT d.*,
        json_extract('["Ada","Grace","Alan","Linus","Margaret","Ken","Barbara","Dennis","Frances","Edsger","Radia","Tim","Hedy","Donald","Katherine","Guido","Sophie","John","Mary","Niklaus"]',
                     '$[' || (i % 20) || ']') AS first,
        json_extract('["Lovelace","Hopper","Turing","Torvalds","Hamilton","Thompson","Liskov","Ritchie","Allen","Dijkstra","Perlman","Berners-Lee","Lamarr","Knuth","Johnson","Rossum","Wilson","Backus","Keller","Wirth","Shaw","Kay","Moore","Cerf"]',
                     '$[' || ((i / 20) % 24) || ']') AS last,
        json_extract('["Acme","Globex","Initech","Umbrella","Hooli","Vandelay","Stark","Wayne","Tyrell","Cyberdyne","Soylent","Aperture"]',
                     '$[' || ((i * 7) % 12) || ']') AS company
    FROM draws d
)
INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, status, priority,
    assigned_to, needs_response, follow_up, favorite, archived, sentiment, created_at, updated_at,
    last_activity_at, custom_attributes)
SELECT ?1, c.board_id, c.column_id,
    p.first || ' ' || p.last,
    lower(p.first || '.' || replace(p.last, '-', '') || p.i) || '@' || lower(p.company) || '.example',
    '+1-555-' || substr('0000' || (p.i % 10000), -4, 4),
    p.company,
    CASE WHEN p.r1 < 0.62 THEN 'open' ELSE 'closed' END,
    CASE WHEN p.r2 < 0.15 THEN 'high' WHEN p.r2 < 0.65 THEN 'medium' ELSE 'low' END,
    CASE WHEN p.r3 < 0.28 THEN NULL ELSE 'user_' || (1 + CAST(p.r3 * 1000 AS INTEGER) % 25) END,
    p.r4 < 0.14,
    p.r5 < 0.11,
    (p.i % 23) = 0,
    p.r1 > 0.93,
    CASE WHEN p.r4 > 0.9 THEN 'negative' WHEN p.r4 > 0.5 THEN 'positive' ELSE 'neutral' END,
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created),
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created + (julianday('now') - p.created) * p.r5),
    strftime('%Y-%m-%dT%H:%M:%fZ', p.created + (julianday('now') - p.created) * (1 - (1 - p.r5) * (1 - p.r5))),
    json_object('plan', json_extract('["free","team","business","enterprise"]', '$[' || (p.i % 4) || ']'),
                'seats', 1 + CAST(p.r2 * 200 AS INTEGER),
                'source', json_extract('["web","referral","event","ads","partner"]', '$[' || ((p.i / 3) % 5) || ']'))
FROM people p JOIN cols c ON c.n = p.i % c.k
"#;
