//! Contacts as rows, and the statements both stores run, built once for either dialect.

use chrono::{DateTime, SecondsFormat, Utc};
use shared::cursor::{Cursor, CursorKey};
use shared::model::{Contact, ContactPage, Pagination, Total};
use shared::query::{relevance_at, ContactListQuery, Filter, SortBy, SortOrder};
use shared::{BoardId, ContactId, UserId, WorkspaceId};
use sqlx::types::Json;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};

use super::counters::{board_total_query, push_clock_count};
use super::fields::ContactFields;
use super::filters::{clock, counter, push_predicate, Dialect};
use super::page_end;
use super::search::{push_matches, tiers, Found, Search, Tier};
use crate::error::Result;

pub const CONTACT_COLUMNS: &str =
    "id, workspace_id, board_id, column_id, name, email, phone, company, \
    status, priority, assigned_to, needs_response, follow_up, favorite, archived, sentiment, \
    created_at, updated_at, last_activity_at, custom_attributes";

/// One contact of a workspace as it is before an update (locked for it, where the store
/// locks rows; SQLite's one writer needs no lock).
pub fn contact_before_update(d: Dialect) -> String {
    match d {
        Dialect::Postgres => format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = $1 AND id = $2 FOR UPDATE"
        ),
        Dialect::Sqlite => {
            format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = ? AND id = ?")
        }
    }
}

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
    custom_attributes: Json<serde_json::Value>,
    /// How well the row matched a search sorted by relevance (`search::push_rank`).
    #[sqlx(default)]
    search_rank: i32,
}

pub fn timestamp(t: DateTime<Utc>) -> String {
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
            custom_attributes: r.custom_attributes.0,
        }
    }
}

fn push_where<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    search: Option<&Search>,
) where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    qb.push(" FROM contacts WHERE workspace_id = ")
        .push_bind(ws.as_str());
    qb.push(" AND board_id = ").push_bind(board.0);
    qb.push(" AND ");
    push_predicate(qb, q.filter, user.as_str(), d);
    if let Some(column) = q.column_id {
        qb.push(" AND column_id = ").push_bind(column);
    }
    if let Some(search) = search {
        push_matches(qb, search, board, d);
    }
}

/// A search counts its matches only up to here: past it the total is a lower bound.
/// Counting reads a heap row a match, at random: at 1M contacts a cap of 1,000 was most
/// of a typed keystroke's time (median 9.4 ms from a cacheless origin, 5.7 ms at 200),
/// and a search that finds hundreds is refined, not paged through.
pub const SEARCH_TOTAL_CAP: i64 = 200;

/// How many contacts the page's filter matches on the board: a counter sum where one
/// keeps the filter, a scan of the clock's window for the clock's filters, and the
/// matches of a search up to `SEARCH_TOTAL_CAP`. None of them reads the whole board.
pub fn total_query<'a, DB>(
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    search: Option<&Search>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    match (&q.search, counter(q.filter), clock(q.filter)) {
        (None, Some(kept), _) => board_total_query(ws, board, q.column_id, kept, user),
        (None, None, Some(kept)) => {
            let mut qb = QueryBuilder::new("SELECT ");
            push_clock_count(&mut qb, ws, Some((board, q.column_id)), kept, d);
            qb
        }
        (None, None, None) => {
            let mut qb = QueryBuilder::new("SELECT count(*)");
            push_where(&mut qb, ws, board, q, user, d, search);
            qb
        }
        (Some(_), _, _) => {
            let mut qb = matched_query(
                "SELECT count(*) FROM (SELECT 1",
                (ws, board),
                q,
                user,
                d,
                search,
                SEARCH_TOTAL_CAP + 1,
            );
            qb.push(") m");
            qb
        }
    }
}

/// A search's matches on the board (`select` of each), at most `reach` of them: fewer
/// are every match, and one past `SEARCH_TOTAL_CAP` is enough for the total.
pub fn matched_query<'a, DB>(
    select: &str,
    (ws, board): (&'a WorkspaceId, BoardId),
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    search: Option<&Search>,
    reach: i64,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(select);
    push_where(&mut qb, ws, board, q, user, d, search);
    // A walk goes in the page's order: its first matches are the first page's.
    if search.is_some_and(|s| s.found == Found::Walk) && q.sort_by != SortBy::Relevance {
        let (column, (dir, _)) = (q.sort_by.as_str(), direction(q.sort_order));
        qb.push(format_args!(" ORDER BY {column} {dir}, id {dir}"));
    }
    qb.push(" LIMIT ").push_bind(reach);
    qb
}

/// What makes `matched_query`'s ids come in the page's order (a sort other than
/// relevance): its select, and what follows it. A search within the cap then reads only
/// its page's rows again (`page_among`), not every match.
pub fn in_page_order(q: &ContactListQuery) -> (String, String) {
    let (column, (dir, _)) = (q.sort_by.as_str(), direction(q.sort_order));
    (
        format!("SELECT id FROM (SELECT id, {column}"),
        format!(") m ORDER BY {column} {dir}, id {dir}"),
    )
}

/// Ids read past a page among a search's ordered matches: a contact renamed since it was
/// matched is dropped from the page, and the next one takes its place.
const PAGE_SPARE: usize = 8;

/// The ids the page of `q` (from its offset; a cursor page has none) takes among `ids`, a
/// search's every match in the page's order, with `PAGE_SPARE` more; `None` past the
/// cursor, whose contact may have moved since.
pub fn page_among(ids: &[i64], q: &ContactListQuery) -> Option<Vec<i64>> {
    if q.after.is_some() {
        return None;
    }
    let start = usize::try_from(q.offset()).ok()?;
    let take = q.per_page as usize + 1 + PAGE_SPARE;
    Some(ids.iter().skip(start).take(take).copied().collect())
}

/// A sort order in SQL, and the comparison that finds the rows after a cursor.
fn direction(order: SortOrder) -> (&'static str, &'static str) {
    match order {
        SortOrder::Asc => ("ASC", ">"),
        SortOrder::Desc => ("DESC", "<"),
    }
}

/// The total a `total_query` result stands for.
pub fn total_of(q: &ContactListQuery, counted: i64) -> Total {
    let capped = q.search.is_some() && counted > SEARCH_TOTAL_CAP;
    Total {
        count: if capped { SEARCH_TOTAL_CAP } else { counted },
        exact: !capped,
    }
}

/// The page's contacts, in the requested order with the id breaking ties.
pub fn page_query<'a, DB>(
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    search: Option<&Search>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    // An offset skips rows the page does not show. Where the sort index holds all the
    // filter reads (the default list and the archived one, in a column by creation time
    // too; see the migration `board_pages_skip_by_index`), an index-only scan finds the
    // page's first row (`b`), and the page is read from there like a cursor's: only its
    // own rows are read whole, straight from the sort index. Other filters read each row
    // to test it either way.
    let skips = q.after.is_none()
        && q.offset() > 0
        && q.search.is_none()
        && q.sort_by != SortBy::Relevance
        && matches!(q.filter, Filter::All | Filter::Archived)
        && (q.column_id.is_none() || q.sort_by == SortBy::CreatedAt);
    let (dir, past) = direction(q.sort_order);
    if q.sort_by == SortBy::Relevance {
        return ranked_in_one_query(ws, board, q, user, d, search);
    }
    let column = q.sort_by.as_str();
    let mut qb = QueryBuilder::new("");
    // A search walking the board picks its page's ids first: where the sort index holds
    // the words (the migration `contact_search_keys`), the walk reads only index entries.
    let walks = search.is_some_and(|s| s.found == Found::Walk);
    if walks {
        qb.push(format_args!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id IN ("
        ));
    }
    if skips {
        qb.push(format_args!("WITH b AS (SELECT {column}, id"));
        push_where(&mut qb, ws, board, q, user, d, search);
        qb.push(format_args!(
            " ORDER BY {column} {dir}, id {dir} LIMIT 1 OFFSET "
        ))
        .push_bind(q.offset())
        .push(") ");
    }
    qb.push("SELECT ")
        .push(if walks { "id" } else { CONTACT_COLUMNS });
    push_where(&mut qb, ws, board, q, user, d, search);
    if skips {
        qb.push(format_args!(
            " AND ({column}, id) {past}= ((SELECT {column} FROM b), (SELECT id FROM b))"
        ));
    }
    if let Some(after) = &q.after {
        qb.push(format_args!(" AND ({column}, id) {past} ("))
            .push_bind(after.value.clone());
        if q.sort_by != SortBy::Name {
            qb.push(d.time_param());
        }
        qb.push(", ").push_bind(after.id).push(")");
    }
    qb.push(format_args!(" ORDER BY {column} {dir}, id {dir}"));
    // One row more than the page: whether it exists is `has_more`.
    qb.push(" LIMIT ").push_bind(i64::from(q.per_page) + 1);
    if !skips && q.after.is_none() && q.offset() > 0 {
        qb.push(" OFFSET ").push_bind(q.offset());
    }
    if walks {
        qb.push(format_args!(") ORDER BY {column} {dir}, id {dir}"));
    }
    qb
}

/// The rows of one rank of a relevance page (`search::tiers`), most recent first: those
/// after `within` (a cursor in this rank), at most `limit`. Postgres reads a page rank by
/// rank until it is full (`PgStore::relevance_rows`): the first rank of a common name
/// fills it at once, and each rank alone lets the planner choose between the activity
/// index (a dense prefix) and the search keys (a rare word). Ranking every match of
/// `grace` in one statement cost 140 ms at 1M contacts, and a union of the ranks 2.7 s
/// (a walk of the whole index for a rank the planner took for dense and was empty).
#[allow(clippy::too_many_arguments)]
pub fn tier_query<'a, DB>(
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    (rank, tier): &(u8, Tier<'_>),
    within: Option<(&str, i64)>,
    limit: usize,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {CONTACT_COLUMNS}, {rank} AS search_rank"));
    push_where(&mut qb, ws, board, q, user, d, None);
    tier.push(&mut qb, d);
    tier.push_found(&mut qb, board, d);
    if let Some((time, id)) = within {
        qb.push(" AND (last_activity_at, id) < (")
            .push_bind(time.to_owned())
            .push(d.time_param())
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    qb.push(" ORDER BY last_activity_at DESC, id DESC LIMIT ")
        .push_bind(limit as i64);
    qb
}

/// A page sorted by relevance in one statement: every match ranked, then sorted (the
/// embedded store, whose boards are small enough to rank whole).
fn ranked_in_one_query<'a, DB>(
    ws: &'a WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    user: &UserId,
    d: Dialect,
    search: Option<&Search>,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let after = relevance_after(q);
    let rank = |qb: &mut QueryBuilder<'a, DB>| {
        qb.push("(CASE");
        for (rank, tier) in tiers(search) {
            qb.push(" WHEN 1 = 1");
            tier.push(qb, d);
            qb.push(format_args!(" THEN {rank}"));
        }
        qb.push(" ELSE 2 END)");
    };
    let mut qb = QueryBuilder::new(format!("SELECT {CONTACT_COLUMNS}, "));
    rank(&mut qb);
    qb.push(" AS search_rank");
    push_where(&mut qb, ws, board, q, user, d, search);
    if let Some(((from, time), id)) = after {
        qb.push(" AND (");
        rank(&mut qb);
        qb.push(format_args!(" > {from} OR ("));
        rank(&mut qb);
        qb.push(format_args!(" = {from} AND (last_activity_at, id) < ("))
            .push_bind(time.to_owned())
            .push(d.time_param())
            .push(", ")
            .push_bind(id)
            .push(")))");
    }
    qb.push(" ORDER BY search_rank, last_activity_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(q.per_page) + 1);
    if after.is_none() && q.offset() > 0 {
        qb.push(" OFFSET ").push_bind(q.offset());
    }
    qb
}

/// Where a relevance cursor puts the next page: its rank, last activity and id.
pub fn relevance_after(q: &ContactListQuery) -> Option<((u8, &str), i64)> {
    q.after
        .as_ref()
        .and_then(|a| Some((relevance_at(&a.value)?, a.id)))
}

/// The page of `rows` (as `page_query` fetched them), with the cursor of the next page.
pub fn page_of(
    mut rows: Vec<ContactRow>,
    ws: &WorkspaceId,
    board: BoardId,
    q: &ContactListQuery,
    total: Total,
    d: Dialect,
    key: &CursorKey,
) -> ContactPage {
    let next_cursor = page_end(&mut rows, q.per_page).map(|last| {
        let value = match q.sort_by {
            SortBy::Name => last.name.clone(),
            SortBy::CreatedAt => d.cursor_time(last.created_at),
            SortBy::UpdatedAt => d.cursor_time(last.updated_at),
            SortBy::LastActivityAt => d.cursor_time(last.last_activity_at),
            SortBy::Relevance => format!(
                "{}|{}",
                last.search_rank,
                d.cursor_time(last.last_activity_at)
            ),
        };
        let next = Cursor {
            page: q.page.saturating_add(1),
            value,
            id: last.id,
        };
        next.encode(key, &q.binding(ws, board))
    });
    ContactPage {
        contacts: rows.into_iter().map(Contact::from).collect(),
        pagination: Pagination::new(q.page, q.per_page, total, next_cursor),
    }
}

/// Inserts a contact, the table's defaults standing in for absent fields.
pub fn insert_query<'a, DB>(
    ws: &'a WorkspaceId,
    f: &'a ContactFields,
) -> Result<QueryBuilder<'a, DB>>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
    Json<&'a serde_json::Value>: Encode<'a, DB> + Type<DB>,
{
    let (board, column, name) = f.required()?;
    let mut qb = QueryBuilder::new(
        "INSERT INTO contacts (workspace_id, board_id, column_id, name, email, phone, company, \
         status, priority, assigned_to, needs_response, follow_up, favorite, archived, sentiment, \
         custom_attributes) VALUES (",
    );
    let empty = &EMPTY_OBJECT;
    let mut values = qb.separated(", ");
    values
        .push_bind(ws.as_str())
        .push_bind(board)
        .push_bind(column)
        .push_bind(name)
        .push_bind(f.email.as_ref().and_then(|v| v.as_deref()))
        .push_bind(f.phone.as_ref().and_then(|v| v.as_deref()))
        .push_bind(f.company.as_ref().and_then(|v| v.as_deref()))
        .push_bind(f.status.as_deref().unwrap_or("open"))
        .push_bind(f.priority.as_deref().unwrap_or("medium"))
        .push_bind(f.assigned_to.as_ref().and_then(|v| v.as_deref()))
        .push_bind(f.needs_response.unwrap_or(false))
        .push_bind(f.follow_up.unwrap_or(false))
        .push_bind(f.favorite.unwrap_or(false))
        .push_bind(f.archived.unwrap_or(false))
        .push_bind(f.sentiment.as_deref().unwrap_or("neutral"))
        .push_bind(Json(f.custom_attributes.as_ref().unwrap_or(empty)));
    qb.push(") RETURNING ").push(CONTACT_COLUMNS);
    Ok(qb)
}

static EMPTY_OBJECT: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::Value::Object(serde_json::Map::new()));

/// Applies the fields that are present; a present null clears a nullable field.
pub fn update_query<'a, DB>(
    ws: &'a WorkspaceId,
    id: ContactId,
    f: &'a ContactFields,
    d: Dialect,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    bool: Encode<'a, DB> + Type<DB>,
    Json<&'a serde_json::Value>: Encode<'a, DB> + Type<DB>,
{
    let now = d.now();
    let mut qb = QueryBuilder::new(format!(
        "UPDATE contacts SET updated_at = {now}, last_activity_at = {now}"
    ));
    macro_rules! set {
        ($($field:ident),+ => $as_bound:expr) => {$(
            if let Some(v) = &f.$field {
                qb.push(concat!(", ", stringify!($field), " = ")).push_bind($as_bound(v));
            }
        )+};
    }
    set!(board_id, column_id => |v: &i64| *v);
    set!(name, status, priority, sentiment => |v: &'a String| v.as_str());
    set!(email, phone, company, assigned_to => |v: &'a Option<String>| v.as_deref());
    set!(needs_response, follow_up, favorite, archived => |v: &bool| *v);
    set!(custom_attributes => |v: &'a serde_json::Value| Json(v));
    qb.push(" WHERE workspace_id = ").push_bind(ws.as_str());
    qb.push(" AND id = ").push_bind(id.0);
    qb.push(" RETURNING ").push(CONTACT_COLUMNS);
    qb
}
