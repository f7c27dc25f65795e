//! Reads: workspace counts and board list pages.

use chrono::{DateTime, SecondsFormat, Utc};
use shared::model::{Contact, ContactPage, Counts, Pagination};
use shared::query::{ContactListQuery, SortOrder};
use shared::{BoardId, UserId, WorkspaceId};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder, Row};

use super::filters::{counts_from, push_predicate, COUNTED};
use crate::error::{Error, Result};

pub const CONTACT_COLUMNS: &str =
    "id, workspace_id, board_id, column_id, name, email, phone, company, \
    status, priority, assigned_to, needs_response, follow_up, favorite, archived, sentiment, \
    created_at, updated_at, last_activity_at, custom_attributes";

#[derive(FromRow)]
pub struct ContactRow {
    id: i64,
    workspace_id: String,
    board_id: i64,
    column_id: i64,
    name: String,
    email: Option<String>,
    phone: Option<String>,
    company: Option<String>,
    status: String,
    priority: String,
    assigned_to: Option<String>,
    needs_response: bool,
    follow_up: bool,
    favorite: bool,
    archived: bool,
    sentiment: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_activity_at: DateTime<Utc>,
    custom_attributes: serde_json::Value,
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Self {
            id: r.id,
            workspace_id: r.workspace_id,
            board_id: r.board_id,
            column_id: r.column_id,
            name: r.name,
            email: r.email,
            phone: r.phone,
            company: r.company,
            status: r.status,
            priority: r.priority,
            assigned_to: r.assigned_to,
            needs_response: r.needs_response,
            follow_up: r.follow_up,
            favorite: r.favorite,
            archived: r.archived,
            sentiment: r.sentiment,
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
            last_activity_at: timestamp(r.last_activity_at),
            custom_attributes: r.custom_attributes,
        }
    }
}

pub async fn counts(db: &PgPool, ws: &WorkspaceId, user: &UserId) -> Result<Counts> {
    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    for (i, filter) in COUNTED.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("count(*) FILTER (WHERE ");
        push_predicate(&mut qb, *filter, user.as_str());
        qb.push(")");
    }
    qb.push(" FROM contacts WHERE workspace_id = ")
        .push_bind(ws.as_str());
    let row = qb.build().fetch_one(db).await?;
    let mut values = [0i64; 15];
    for (i, v) in values.iter_mut().enumerate() {
        *v = row.try_get(i)?;
    }
    Ok(counts_from(&values))
}

fn push_where<'a>(
    qb: &mut QueryBuilder<'a, Postgres>,
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &'a ContactListQuery,
    user: &str,
) {
    qb.push(" FROM contacts WHERE workspace_id = ")
        .push_bind(ws.as_str());
    qb.push(" AND board_id = ").push_bind(board.0);
    qb.push(" AND ");
    push_predicate(qb, q.filter, user);
    if let Some(column) = q.column_id {
        qb.push(" AND column_id = ").push_bind(column);
    }
    if let Some(search) = &q.search {
        let escaped = search
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(
            " AND lower(name || ' ' || coalesce(email, '') || ' ' || coalesce(company, '')) LIKE ",
        )
        .push_bind(format!("%{escaped}%"));
    }
}

/// One page of a board, or `NotFound` when the board is not the workspace's.
pub async fn page(
    db: &PgPool,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
) -> Result<ContactPage> {
    let exists = sqlx::query("SELECT 1 FROM boards WHERE id = $1 AND workspace_id = $2")
        .bind(board.0)
        .bind(ws.as_str())
        .fetch_optional(db)
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound("board"));
    }

    let mut total_q = QueryBuilder::<Postgres>::new("SELECT count(*)");
    push_where(&mut total_q, ws, board, q, user.as_str());
    let total: i64 = total_q.build_query_scalar().fetch_one(db).await?;

    let mut qb = QueryBuilder::<Postgres>::new("SELECT ");
    qb.push(CONTACT_COLUMNS);
    push_where(&mut qb, ws, board, q, user.as_str());
    let dir = match q.sort_order {
        SortOrder::Asc => "ASC",
        SortOrder::Desc => "DESC",
    };
    qb.push(format_args!(
        " ORDER BY {} {dir}, id {dir}",
        q.sort_by.as_str()
    ));
    qb.push(" LIMIT ").push_bind(i64::from(q.per_page));
    qb.push(" OFFSET ").push_bind(q.offset());
    let rows: Vec<ContactRow> = qb.build_query_as().fetch_all(db).await?;
    Ok(ContactPage {
        contacts: rows.into_iter().map(Contact::from).collect(),
        pagination: Pagination::new(q.page, q.per_page, total),
    })
}

/// Counts as the JSON object that is cached.
pub async fn counts_json(db: &PgPool, ws: &WorkspaceId, user: &UserId) -> Result<String> {
    to_json(&counts(db, ws, user).await?)
}

/// A page as the JSON object that is cached.
pub async fn page_json(
    db: &PgPool,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
) -> Result<String> {
    to_json(&page(db, ws, board, q, user).await?)
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

/// The workspace's boards, for warming.
pub async fn boards(db: &PgPool, ws: &WorkspaceId) -> Result<Vec<BoardId>> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM boards WHERE workspace_id = $1 ORDER BY id")
            .bind(ws.as_str())
            .fetch_all(db)
            .await?;
    Ok(ids.into_iter().map(BoardId).collect())
}
