//! Realistic demo and test data, generated inside Postgres in one set-based INSERT per
//! workspace (200k contacts take seconds, not minutes of row-by-row round trips).

use shared::WorkspaceId;
use sqlx::PgPool;

use super::super::{seed_chunks, seed_progress, Seeded, SEED_COLUMNS};
use crate::error::Result;

pub async fn seed(db: &PgPool, ws: &WorkspaceId, contacts: u32, boards: u32) -> Result<Seeded> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('edgecache.skip_notify', 'on', true), set_config('statement_timeout', '0', true), setseed(0.15213)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO workspaces (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(ws.as_str())
        .bind(format!("Workspace {ws}"))
        .execute(&mut *tx)
        .await?;
    let mut board_ids = Vec::new();
    for n in 1..=boards.max(1) {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO boards (workspace_id, name) VALUES ($1, $2) RETURNING id",
        )
        .bind(ws.as_str())
        .bind(format!("Pipeline {n}"))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO board_columns (board_id, name, position) \
             SELECT $1, name, ord::int FROM unnest($2::text[]) WITH ORDINALITY AS c(name, ord)",
        )
        .bind(id)
        .bind(&SEED_COLUMNS[..])
        .execute(&mut *tx)
        .await?;
        board_ids.push(id);
    }
    let mut inserted = 0;
    for (from, to) in seed_chunks(contacts) {
        inserted += sqlx::query(SEED_CONTACTS)
            .bind(ws.as_str())
            .bind(from)
            .bind(&board_ids)
            .bind(to)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        seed_progress(ws, inserted, contacts);
    }
    tx.commit().await?;
    sqlx::query("VACUUM (ANALYZE) contacts").execute(db).await?;
    Ok(Seeded {
        boards: board_ids,
        contacts: inserted,
    })
}

pub async fn is_empty(db: &PgPool) -> Result<bool> {
    let any: Option<i32> = sqlx::query_scalar("SELECT 1 FROM workspaces LIMIT 1")
        .fetch_optional(db)
        .await?;
    Ok(any.is_none())
}

const SEED_CONTACTS: &str = r#"
WITH cols AS (
    SELECT board_id, id AS column_id,
           row_number() OVER (ORDER BY board_id, position) - 1 AS n,
           count(*) OVER () AS k
    FROM board_columns WHERE board_id = ANY($3)
),
g AS (
    SELECT i, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5,
           now() - random() * interval '730 days' AS created
    FROM generate_series($2, $4) AS i
),
people AS (
    SELECT g.*,
        (ARRAY['Ada','Grace','Alan','Linus','Margaret','Ken','Barbara','Dennis','Frances','Edsger',
               'Radia','Tim','Hedy','Donald','Katherine','Guido','Sophie','John','Mary','Niklaus'])[1 + i % 20] AS first,
        (ARRAY['Lovelace','Hopper','Turing','Torvalds','Hamilton','Thompson','Liskov','Ritchie','Allen',
               'Dijkstra','Perlman','Berners-Lee','Lamarr','Knuth','Johnson','Rossum','Wilson','Backus',
               'Keller','Wirth','Shaw','Kay','Moore','Cerf'])[1 + (i / 20) % 24] AS last,
        (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne','Tyrell',
               'Cyberdyne','Soylent','Aperture'])[1 + (i * 7) % 12] AS company
    FROM g
)
INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, status, priority,
    assigned_to, needs_response, follow_up, favorite, archived, sentiment, created_at, updated_at,
    last_activity_at, custom_attributes)
SELECT $1, c.board_id, c.column_id,
    p.first || ' ' || p.last,
    lower(p.first || '.' || replace(p.last, '-', '') || p.i) || '@' || lower(p.company) || '.example',
    '+1-555-' || lpad((p.i % 10000)::text, 4, '0'),
    p.company,
    CASE WHEN p.r1 < 0.62 THEN 'open' ELSE 'closed' END,
    CASE WHEN p.r2 < 0.15 THEN 'high' WHEN p.r2 < 0.65 THEN 'medium' ELSE 'low' END,
    CASE WHEN p.r3 < 0.28 THEN NULL ELSE 'user_' || (1 + (p.r3 * 1000)::int % 25) END,
    p.r4 < 0.14,
    p.r5 < 0.11,
    (p.i % 23) = 0,
    p.r1 > 0.93,
    CASE WHEN p.r4 > 0.9 THEN 'negative' WHEN p.r4 > 0.5 THEN 'positive' ELSE 'neutral' END,
    p.created,
    p.created + (now() - p.created) * p.r5,
    p.created + (now() - p.created) * sqrt(p.r5),
    jsonb_build_object('plan', (ARRAY['free','team','business','enterprise'])[1 + p.i % 4],
                       'seats', 1 + (p.r2 * 200)::int,
                       'source', (ARRAY['web','referral','event','ads','partner'])[1 + (p.i / 3) % 5])
FROM people p JOIN cols c ON c.n = p.i % c.k
"#;
