//! Counts and list totals from the counters the database keeps in the writing transaction
//! (migration `contact_counters`), so a cold count reads a few hundred counter rows
//! however large the workspace, and the recount that checks them (`origin counters check`).

use std::collections::BTreeMap;

use shared::model::Counts;
use shared::{BoardId, UserId, WorkspaceId};
use sqlx::{ColumnIndex, Database, Decode, Encode, QueryBuilder, Row, Type};

use super::filters::{
    clock, counter, counts_from, push_predicate, Assignee, Dialect, CLOCKS, COUNTED, COUNTERS,
};
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

/// The counts of API.md: sums of the counters and of the clock counters.
pub fn counts_query<'a, DB>(ws: &'a WorkspaceId, user: &UserId, d: Dialect) -> QueryBuilder<'a, DB>
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let mut qb = QueryBuilder::new("SELECT ");
    for (i, filter) in COUNTED.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        match counter(*filter) {
            Some((column, who)) => push_sum(&mut qb, column, who, user),
            None => match clock(*filter) {
                Some(kept) => push_clock_count(&mut qb, ws, None, kept, d),
                None => {
                    qb.push("(SELECT count(*) FROM contacts WHERE workspace_id = ")
                        .push_bind(ws.as_str())
                        .push(" AND ");
                    push_predicate(&mut qb, *filter, user.as_str(), d);
                    qb.push(")");
                }
            },
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

/// A clock filter's count over a workspace, a board, or a board's column: the hours its
/// window starts in and after, from the clock counters, less the contacts of that first
/// hour that are older than the window (a range scan of at most an hour).
pub fn push_clock_count<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    ws: &'a WorkspaceId,
    place: Option<(BoardId, Option<i64>)>,
    (column, span): (&str, &str),
    d: Dialect,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let since = d.ago(span);
    let first = d.hour(&since);
    let push_place = |qb: &mut QueryBuilder<'a, DB>| {
        if let Some((board, col)) = place {
            qb.push(" AND board_id = ").push_bind(board.0);
            if let Some(c) = col {
                qb.push(" AND column_id = ").push_bind(c);
            }
        }
    };
    qb.push("((SELECT CAST(coalesce(sum(n), 0) AS bigint) FROM contact_clock_counters WHERE workspace_id = ")
        .push_bind(ws.as_str())
        .push(format_args!(" AND clock = '{column}' AND hour >= {first}"));
    push_place(qb);
    qb.push(") - (SELECT count(*) FROM contacts WHERE workspace_id = ")
        .push_bind(ws.as_str());
    push_place(qb);
    qb.push(format_args!(
        " AND NOT archived AND {column} >= {} AND {column} <= {since}))",
        d.hour_start(&first)
    ));
}

/// The counter tables, as `origin counters check` compares them with a recount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `contact_counters`: per (board, column, assignee).
    Buckets,
    /// `contact_clock_counters`: per (clock, hour, board, column), only the hours a count
    /// reads (older ones are not kept exact, see the migration).
    Clocks,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Buckets, Table::Clocks];

    fn name(self) -> &'static str {
        match self {
            Self::Buckets => "contact_counters",
            Self::Clocks => "contact_clock_counters",
        }
    }

    /// The key columns after the workspace, shard left out.
    fn key(self) -> &'static [&'static str] {
        match self {
            Self::Buckets => &["board_id", "column_id", "assignee"],
            Self::Clocks => &["clock", "hour", "board_id", "column_id"],
        }
    }

    fn values(self) -> Vec<&'static str> {
        match self {
            Self::Buckets => COUNTERS.iter().map(|(c, _)| *c).collect(),
            Self::Clocks => vec!["n"],
        }
    }

    /// The counters as stored, shards summed, keys as text.
    pub fn stored_query<'a, DB>(
        self,
        ws: Option<&'a WorkspaceId>,
        d: Dialect,
    ) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        let mut qb = QueryBuilder::new("SELECT workspace_id");
        for k in self.key() {
            qb.push(format_args!(", CAST({k} AS text)"));
        }
        for v in self.values() {
            qb.push(format_args!(", CAST(sum({v}) AS bigint)"));
        }
        qb.push(format_args!(" FROM {} WHERE 1 = 1", self.name()));
        if self == Self::Clocks {
            qb.push(" AND (");
            for (i, (_, column, span)) in CLOCKS.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push(format_args!(
                    "(clock = '{column}' AND hour >= {})",
                    d.hour(&d.ago(span))
                ));
            }
            qb.push(")");
        }
        push_workspace(&mut qb, ws);
        push_group(&mut qb, self.key().len());
        qb
    }

    /// The counters as they should be, counted from the contacts.
    pub fn recount_query<'a, DB>(
        self,
        ws: Option<&'a WorkspaceId>,
        d: Dialect,
    ) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        let mut qb = QueryBuilder::new("SELECT workspace_id");
        match self {
            Self::Buckets => {
                qb.push(
                    ", CAST(board_id AS text), CAST(column_id AS text), coalesce(assigned_to, '')",
                );
                for (_, f) in COUNTERS {
                    qb.push(format_args!(
                        ", CAST(count(*) FILTER (WHERE {}) AS bigint)",
                        d.predicate(f)
                    ));
                }
                qb.push(" FROM contacts WHERE 1 = 1");
                push_workspace(&mut qb, ws);
            }
            Self::Clocks => {
                qb.push(", clock, CAST(hour AS text), CAST(board_id AS text), CAST(column_id AS text), CAST(count(*) AS bigint) FROM (");
                push_clock_rows(&mut qb, ws, d, |span| span);
                qb.push(") t");
            }
        }
        push_group(&mut qb, self.key().len());
        qb
    }

    /// Empties a workspace's counters (or all), before `rebuild_query`.
    pub fn delete_query<'a, DB>(self, ws: Option<&'a WorkspaceId>) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        let mut qb = QueryBuilder::new(format!("DELETE FROM {} WHERE 1 = 1", self.name()));
        push_workspace(&mut qb, ws);
        qb
    }

    /// Refills a workspace's counters (or all) from the contacts.
    pub fn rebuild_query<'a, DB>(
        self,
        ws: Option<&'a WorkspaceId>,
        d: Dialect,
    ) -> QueryBuilder<'a, DB>
    where
        DB: Database,
        &'a str: Encode<'a, DB> + Type<DB>,
    {
        match self {
            Self::Buckets => {
                let mut qb = QueryBuilder::new(format!(
                    "INSERT INTO contact_counters (workspace_id, board_id, column_id, assignee, {}) \
                     SELECT workspace_id, board_id, column_id, coalesce(assigned_to, '')",
                    self.values().join(", ")
                ));
                for (_, f) in COUNTERS {
                    qb.push(format_args!(", count(*) FILTER (WHERE {})", d.predicate(f)));
                }
                qb.push(" FROM contacts WHERE 1 = 1");
                push_workspace(&mut qb, ws);
                push_group(&mut qb, 3);
                qb
            }
            Self::Clocks => {
                let mut qb = QueryBuilder::new(
                    "INSERT INTO contact_clock_counters (workspace_id, clock, hour, board_id, column_id, n) \
                     SELECT workspace_id, clock, hour, board_id, column_id, count(*) FROM (",
                );
                push_clock_rows(&mut qb, ws, d, |_| KEPT);
                qb.push(") t");
                push_group(&mut qb, 4);
                qb
            }
        }
    }

    /// Reads a row of `stored_query` or `recount_query`.
    pub fn row_of<R>(self, row: &R) -> Result<Counted>
    where
        R: Row,
        usize: ColumnIndex<R>,
        i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
        String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    {
        let keys = self.key().len();
        let key = (0..=keys)
            .map(|i| row.try_get(i))
            .collect::<Result<_, _>>()?;
        let values = (0..self.values().len())
            .map(|i| row.try_get(keys + 1 + i))
            .collect::<Result<_, _>>()?;
        Ok((key, values))
    }

    /// The rows where `stored` and `actual` disagree (a row missing on one side is zeros).
    pub fn drift(self, stored: Vec<Counted>, actual: Vec<Counted>) -> Vec<Drift> {
        let values = self.values();
        let mut both: BTreeMap<Vec<String>, (Vec<i64>, Vec<i64>)> = BTreeMap::new();
        for (key, v) in stored {
            both.entry(key)
                .or_insert_with(|| (vec![0; values.len()], vec![0; values.len()]))
                .0 = v;
        }
        for (key, v) in actual {
            both.entry(key)
                .or_insert_with(|| (vec![0; values.len()], vec![0; values.len()]))
                .1 = v;
        }
        both.into_iter()
            .filter(|(_, (s, a))| s != a)
            .map(|(mut key, (stored, actual))| {
                let workspace = key.remove(0);
                Drift {
                    workspace,
                    row: self.key().iter().copied().zip(key).collect(),
                    counters: values
                        .iter()
                        .zip(stored.into_iter().zip(actual))
                        .filter(|(_, (s, a))| s != a)
                        .map(|(name, (s, a))| (*name, s, a))
                        .collect(),
                }
            })
            .collect()
    }
}

/// How far back the clock counters are kept (see the migration): the longest window and a
/// day's margin.
const KEPT: &str = "8 days";

/// Each contact's clock rows (workspace, clock, hour, board, column) that are not archived
/// and from hours at or after `since(window)` of their clock.
fn push_clock_rows<'a, DB>(
    qb: &mut QueryBuilder<'a, DB>,
    ws: Option<&'a WorkspaceId>,
    d: Dialect,
    since: impl Fn(&'static str) -> &'static str,
) where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    for (i, (_, column, span)) in CLOCKS.iter().enumerate() {
        if i > 0 {
            qb.push(" UNION ALL ");
        }
        let first = d.hour(&d.ago(since(span)));
        qb.push(format_args!(
            "SELECT workspace_id, '{column}' AS clock, {} AS hour, board_id, column_id \
             FROM contacts WHERE NOT archived AND {column} >= {}",
            d.hour(column),
            d.hour_start(&first)
        ));
        push_workspace(qb, ws);
    }
}

/// The clock counters' rows for hours no count reads any more.
pub fn prune_query<DB: Database>(d: Dialect) -> QueryBuilder<'static, DB> {
    QueryBuilder::new(format!(
        "DELETE FROM contact_clock_counters WHERE hour < {}",
        d.hour(&d.ago(KEPT))
    ))
}

fn push_workspace<'a, DB>(qb: &mut QueryBuilder<'a, DB>, ws: Option<&'a WorkspaceId>)
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
{
    if let Some(ws) = ws {
        qb.push(" AND workspace_id = ").push_bind(ws.as_str());
    }
}

/// Groups by the workspace and the `keys` columns after it.
fn push_group<DB: Database>(qb: &mut QueryBuilder<'_, DB>, keys: usize) {
    qb.push(" GROUP BY 1");
    for i in 2..=keys + 1 {
        qb.push(format_args!(", {i}"));
    }
}

/// A counter row as the check compares it: its key as text (workspace first, shard left
/// out) and its values.
pub type Counted = (Vec<String>, Vec<i64>);

/// A counter row whose stored values differ from the recount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub workspace: String,
    /// The rest of the row's key, column by column.
    pub row: Vec<(&'static str, String)>,
    /// Each counter that differs: its name, as stored, as recounted.
    pub counters: Vec<(&'static str, i64, i64)>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "workspace {}", self.workspace)?;
        for (column, value) in &self.row {
            write!(f, " {column} {value:?}")?;
        }
        f.write_str(":")?;
        for (name, stored, actual) in &self.counters {
            write!(f, " {name} {stored} (actual {actual})")?;
        }
        Ok(())
    }
}

/// Compares the counters with a recount and, with `repair`, rebuilds the tables that
/// drifted, in a store's open transaction `$tx` (the store chooses its isolation);
/// evaluates to the drift found. The same steps for both stores, written as a macro
/// because a generic function over sqlx's executor needs higher-ranked bounds that its
/// query builders' borrowed binds cannot meet.
macro_rules! check_in_transaction {
    ($tx:expr, $db:ty, $dialect:expr, $ws:expr, $repair:expr) => {{
        use $crate::store::counters::Table;
        let (ws, repair): (Option<&shared::WorkspaceId>, bool) = ($ws, $repair);
        let mut found = Vec::new();
        for table in Table::ALL {
            let read = |rows: Vec<<$db as sqlx::Database>::Row>| {
                rows.iter()
                    .map(|r| table.row_of(r))
                    .collect::<$crate::error::Result<Vec<_>>>()
            };
            let stored = table
                .stored_query::<$db>(ws, $dialect)
                .build()
                .fetch_all(&mut *$tx)
                .await?;
            let actual = table
                .recount_query::<$db>(ws, $dialect)
                .build()
                .fetch_all(&mut *$tx)
                .await?;
            let drifted = table.drift(read(stored)?, read(actual)?);
            if repair && !drifted.is_empty() {
                table
                    .delete_query::<$db>(ws)
                    .build()
                    .execute(&mut *$tx)
                    .await?;
                table
                    .rebuild_query::<$db>(ws, $dialect)
                    .build()
                    .execute(&mut *$tx)
                    .await?;
            }
            found.extend(drifted);
        }
        found
    }};
}
pub(crate) use check_in_transaction;
