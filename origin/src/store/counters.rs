//! Counts and list totals from the counters the database keeps in the writing transaction
//! (migration `contact_counters`), so a cold count reads a few hundred counter rows
//! however large the workspace, and the recount that checks them (`origin counters check`).

use std::collections::BTreeMap;

use shared::model::Counts;
use shared::{BoardId, UserId, WorkspaceId};
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::filters::{counter, counts_from, push_predicate, Assignee, Dialect, COUNTED, COUNTERS};
use crate::error::Result;

fn push_sum<'a, DB>(qb: &mut QueryBuilder<'a, DB>, column: &str, who: Assignee, user: &UserId)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    qb.push(format_args!("CAST(coalesce(sum({column})"));
    match who {
        Assignee::Anyone => {}
        Assignee::Nobody => {
            qb.push(" FILTER (WHERE assignee = '')");
        }
        Assignee::Reader => {
            qb.push(" FILTER (WHERE assignee = ")
                .push_bind(user.as_str().to_owned())
                .push(")");
        }
    }
    qb.push(", 0) AS bigint)");
}

/// The counts of API.md: counter sums, and the clock's two counts as range scans of
/// their window's index.
pub fn counts_query<'a, DB>(ws: &'a WorkspaceId, user: &UserId, d: Dialect) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, filter) in COUNTED.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        match counter(*filter) {
            Some((column, who)) => push_sum(&mut qb, column, who, user),
            None => {
                qb.push("(SELECT count(*) FROM contacts WHERE workspace_id = ")
                    .push_bind(ws.as_str())
                    .push(" AND ");
                push_predicate(&mut qb, *filter, user.as_str(), d);
                qb.push(")");
            }
        }
    }
    qb.push(" FROM contact_counters WHERE workspace_id = ")
        .push_bind(ws.as_str());
    qb
}

/// Reads the row of `counts_query`.
pub fn counts_of<R>(row: &R) -> Result<Counts>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let mut values = [0i64; 15];
    for (i, v) in values.iter_mut().enumerate() {
        *v = row.try_get(i)?;
    }
    Ok(counts_from(&values))
}

/// A board's total of a counted filter, optionally in one column.
pub fn board_total_query<'a, DB>(
    ws: &'a WorkspaceId,
    board: BoardId,
    column_id: Option<i64>,
    (column, who): (&'static str, Assignee),
    user: &UserId,
) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT ");
    push_sum(&mut qb, column, who, user);
    qb.push(" FROM contact_counters WHERE workspace_id = ")
        .push_bind(ws.as_str());
    qb.push(" AND board_id = ").push_bind(board.0);
    if let Some(c) = column_id {
        qb.push(" AND column_id = ").push_bind(c);
    }
    qb
}

/// Where a counter row counts: workspace, board, column, assignee ('' for nobody).
pub type BucketKey = (String, i64, i64, String);
/// One bucket's counters, in the order of `COUNTERS`.
pub type Bucket = (BucketKey, [i64; 11]);

fn push_bucket_query<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    table: &str,
    exprs: &[String],
    ws: Option<&'a WorkspaceId>,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    qb.push("SELECT workspace_id, board_id, column_id, ")
        .push(if table == "contacts" {
            "coalesce(assigned_to, '')"
        } else {
            "assignee"
        });
    for e in exprs {
        qb.push(", CAST(").push(e).push(" AS bigint)");
    }
    qb.push(format_args!(" FROM {table}"));
    if let Some(ws) = ws {
        qb.push(" WHERE workspace_id = ").push_bind(ws.as_str());
    }
    qb.push(" GROUP BY 1, 2, 3, 4");
}

/// The counters as stored, shards summed, per bucket.
pub fn stored_query<'a, DB>(ws: Option<&'a WorkspaceId>) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    let exprs: Vec<String> = COUNTERS.iter().map(|(c, _)| format!("sum({c})")).collect();
    let mut qb = QueryBuilder::new("");
    push_bucket_query(&mut qb, "contact_counters", &exprs, ws);
    qb
}

/// The counters as they should be, counted from the contacts.
pub fn recount_query<'a, DB>(ws: Option<&'a WorkspaceId>, d: Dialect) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("");
    push_recount(&mut qb, ws, d);
    qb
}

fn push_recount<'a, DB>(qb: &mut QueryBuilder<'a, DB>, ws: Option<&'a WorkspaceId>, d: Dialect)
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    let exprs: Vec<String> = COUNTERS
        .iter()
        .map(|(_, f)| format!("count(*) FILTER (WHERE {})", d.predicate(*f)))
        .collect();
    push_bucket_query(qb, "contacts", &exprs, ws);
}

/// Reads a row of `stored_query` or `recount_query`.
pub fn bucket_of<R>(row: &R) -> Result<Bucket>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    let mut values = [0i64; 11];
    for (i, v) in values.iter_mut().enumerate() {
        *v = row.try_get(i + 4)?;
    }
    Ok((
        (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        ),
        values,
    ))
}

/// A bucket whose stored counters differ from the recount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub workspace: String,
    pub board: i64,
    pub column: i64,
    pub assignee: String,
    pub stored: [i64; 11],
    pub actual: [i64; 11],
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "workspace {} board {} column {} assignee {:?}:",
            self.workspace, self.board, self.column, self.assignee
        )?;
        for (((name, _), stored), actual) in COUNTERS.iter().zip(self.stored).zip(self.actual) {
            if stored != actual {
                write!(f, " {name} {stored} (actual {actual})")?;
            }
        }
        Ok(())
    }
}

/// The buckets where `stored` and `actual` disagree (a bucket missing on one side is zeros).
pub fn drift(stored: Vec<Bucket>, actual: Vec<Bucket>) -> Vec<Drift> {
    let mut both: BTreeMap<BucketKey, ([i64; 11], [i64; 11])> = BTreeMap::new();
    for (key, values) in stored {
        both.entry(key).or_default().0 = values;
    }
    for (key, values) in actual {
        both.entry(key).or_default().1 = values;
    }
    both.into_iter()
        .filter(|(_, (s, a))| s != a)
        .map(
            |((workspace, board, column, assignee), (stored, actual))| Drift {
                workspace,
                board,
                column,
                assignee,
                stored,
                actual,
            },
        )
        .collect()
}

/// Replaces a workspace's counters (or all) by the recount: delete them, then run this.
pub fn rebuild_query<'a, DB>(ws: Option<&'a WorkspaceId>, d: Dialect) -> QueryBuilder<'a, DB>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    let columns: Vec<&str> = COUNTERS.iter().map(|(c, _)| *c).collect();
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO contact_counters (workspace_id, board_id, column_id, assignee, {}) ",
        columns.join(", ")
    ));
    push_recount(&mut qb, ws, d);
    qb
}

/// Compares the counters with a recount and, with `repair`, replaces the drifted ones, in
/// a store's open transaction `$tx` (the store chooses its isolation); evaluates to the
/// drift found. The same steps for both stores, written as a macro because a generic
/// function over sqlx's executor needs higher-ranked bounds that its query builders'
/// borrowed binds cannot meet.
macro_rules! check_in_transaction {
    ($tx:expr, $db:ty, $dialect:expr, $ws:expr, $repair:expr) => {{
        use $crate::store::counters::{
            bucket_of, drift, rebuild_query, recount_query, stored_query,
        };
        let (ws, repair): (Option<&shared::WorkspaceId>, bool) = ($ws, $repair);
        let stored = stored_query::<$db>(ws).build().fetch_all(&mut *$tx).await?;
        let actual = recount_query::<$db>(ws, $dialect)
            .build()
            .fetch_all(&mut *$tx)
            .await?;
        let found = drift(
            stored
                .iter()
                .map(bucket_of)
                .collect::<$crate::error::Result<_>>()?,
            actual
                .iter()
                .map(bucket_of)
                .collect::<$crate::error::Result<_>>()?,
        );
        if repair && !found.is_empty() {
            let mut delete = sqlx::QueryBuilder::<$db>::new("DELETE FROM contact_counters");
            if let Some(ws) = ws {
                delete.push(" WHERE workspace_id = ").push_bind(ws.as_str());
            }
            delete.build().execute(&mut *$tx).await?;
            rebuild_query::<$db>(ws, $dialect)
                .build()
                .execute(&mut *$tx)
                .await?;
        }
        found
    }};
}
pub(crate) use check_in_transaction;
