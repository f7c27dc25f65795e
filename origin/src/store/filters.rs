//! The one definition of each list filter as SQL. Counts are built from the same
//! predicates, which is what makes a filtered list total equal its count.

use chrono::{DateTime, SecondsFormat, Utc};
use shared::model::Counts;
use shared::query::Filter;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Whether a contact active at `last_activity_at` (as the API writes it) is inside the
/// `recent_activity` window (24 hours, as the predicates below say) now and will stay in
/// it for another minute, which covers the clocks of the database and the instances:
/// a contact touched by a message then stays in the filter and no count moves.
pub fn recently_active(last_activity_at: &str) -> bool {
    DateTime::parse_from_rfc3339(last_activity_at).is_ok_and(|t| {
        t.with_timezone(&Utc)
            > Utc::now() - chrono::Duration::hours(24) + chrono::Duration::minutes(1)
    })
}

/// Where the two stores' SQL differs: time arithmetic and text search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The current time as the store writes timestamps.
    pub fn now(self) -> &'static str {
        match self {
            Self::Postgres => "now()",
            Self::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        }
    }

    pub fn predicate(self, filter: Filter) -> &'static str {
        match (filter, self) {
            (Filter::All, _) => "NOT archived",
            (Filter::Open, _) => "NOT archived AND status = 'open'",
            (Filter::Closed, _) => "NOT archived AND status = 'closed'",
            (Filter::Unassigned, _) => "NOT archived AND assigned_to IS NULL",
            (Filter::AssignedToMe, _) => "NOT archived AND assigned_to = ",
            (Filter::HighPriority, _) => "NOT archived AND priority = 'high'",
            (Filter::MediumPriority, _) => "NOT archived AND priority = 'medium'",
            (Filter::LowPriority, _) => "NOT archived AND priority = 'low'",
            (Filter::NeedsResponse, _) => "NOT archived AND needs_response",
            (Filter::FollowUp, _) => "NOT archived AND follow_up",
            (Filter::Favorites, _) => "NOT archived AND favorite",
            (Filter::Archived, _) => "archived",
            (Filter::UnhappyCustomers, _) => "NOT archived AND sentiment = 'negative'",
            (Filter::NewCustomers, Self::Postgres) => {
                "NOT archived AND created_at > now() - interval '7 days'"
            }
            (Filter::NewCustomers, Self::Sqlite) => {
                "NOT archived AND created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days')"
            }
            (Filter::RecentActivity, Self::Postgres) => {
                "NOT archived AND last_activity_at > now() - interval '24 hours'"
            }
            (Filter::RecentActivity, Self::Sqlite) => {
                "NOT archived AND last_activity_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-24 hours')"
            }
        }
    }

    /// The time `span` (e.g. `7 days`) before now, as the store compares timestamps.
    pub fn ago(self, span: &str) -> String {
        match self {
            Self::Postgres => format!("(now() - interval '{span}')"),
            Self::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{span}')"),
        }
    }

    /// The hour since the epoch of timestamp `t`: the unit of `contact_clock_counters`.
    pub fn hour(self, t: &str) -> String {
        match self {
            Self::Postgres => format!("contact_hour({t})"),
            Self::Sqlite => format!("(CAST(strftime('%s', {t}) AS INTEGER) / 3600)"),
        }
    }

    /// The first instant of hour `h`, as the store compares timestamps.
    pub fn hour_start(self, h: &str) -> String {
        match self {
            Self::Postgres => format!("to_timestamp({h} * 3600)"),
            Self::Sqlite => format!("strftime('%Y-%m-%dT%H:%M:%fZ', {h} * 3600, 'unixepoch')"),
        }
    }

    /// A cursor's sort value as this store compares it: Postgres keeps microseconds,
    /// SQLite the millisecond text it writes. Anything coarser would skip or repeat rows
    /// that share a truncated timestamp.
    pub fn cursor_time(self, t: DateTime<Utc>) -> String {
        let precision = match self {
            Self::Postgres => SecondsFormat::Micros,
            Self::Sqlite => SecondsFormat::Millis,
        };
        t.to_rfc3339_opts(precision, true)
    }

    /// What turns a bound cursor time back into a timestamp (SQLite compares the text).
    pub fn time_param(self) -> &'static str {
        match self {
            Self::Postgres => "::timestamptz",
            Self::Sqlite => "",
        }
    }
}

/// Appends `filter`'s predicate; `user` is bound for `assigned_to_me`.
pub fn push_predicate<'a, DB>(qb: &mut QueryBuilder<'a, DB>, filter: Filter, user: &str, d: Dialect)
where
    DB: Database,
    String: Encode<'a, DB> + Type<DB>,
{
    qb.push(d.predicate(filter));
    if filter == Filter::AssignedToMe {
        qb.push_bind(user.to_owned());
    }
}

/// Whose contacts a counter sum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignee {
    Anyone,
    Nobody,
    Reader,
}

/// The columns of `contact_counters` (see its migration) and the filter each keeps, in
/// the table's order. A column counts, per bucket, the contacts its filter matches.
pub const COUNTERS: [(&str, Filter); 11] = [
    ("live", Filter::All),
    ("open", Filter::Open),
    ("closed", Filter::Closed),
    ("high", Filter::HighPriority),
    ("medium", Filter::MediumPriority),
    ("low", Filter::LowPriority),
    ("needs_response", Filter::NeedsResponse),
    ("follow_up", Filter::FollowUp),
    ("favorites", Filter::Favorites),
    ("archived", Filter::Archived),
    ("unhappy", Filter::UnhappyCustomers),
];

/// The counter column that holds `filter`'s count and the assignee buckets to sum it
/// over; `None` for the clock's filters (see `clock`), whose counts also depend on when
/// they are read: a contact leaves "new customers" by aging, with no write to trigger on.
pub fn counter(filter: Filter) -> Option<(&'static str, Assignee)> {
    match filter {
        Filter::Unassigned => Some(("live", Assignee::Nobody)),
        Filter::AssignedToMe => Some(("live", Assignee::Reader)),
        _ => COUNTERS
            .iter()
            .find(|(_, kept)| *kept == filter)
            .map(|(column, _)| (*column, Assignee::Anyone)),
    }
}

/// The clock's filters as `contact_clock_counters` keeps them: the contact column whose
/// hour a row counts, and how far back the filter's window reaches.
pub const CLOCKS: [(Filter, &str, &str); 2] = [
    (Filter::NewCustomers, "created_at", "7 days"),
    (Filter::RecentActivity, "last_activity_at", "24 hours"),
];

/// The column and window of a clock filter, `None` for any other.
pub fn clock(filter: Filter) -> Option<(&'static str, &'static str)> {
    CLOCKS
        .iter()
        .find(|(kept, _, _)| *kept == filter)
        .map(|(_, column, span)| (*column, *span))
}

/// Each count and the filter it counts, in the order the counts query returns them.
pub const COUNTED: [Filter; 15] = [
    Filter::Unassigned,
    Filter::AssignedToMe,
    Filter::Open,
    Filter::Closed,
    Filter::All,
    Filter::HighPriority,
    Filter::MediumPriority,
    Filter::LowPriority,
    Filter::NeedsResponse,
    Filter::FollowUp,
    Filter::Favorites,
    Filter::Archived,
    Filter::UnhappyCustomers,
    Filter::NewCustomers,
    Filter::RecentActivity,
];

pub fn counts_from(values: &[i64; 15]) -> Counts {
    let [unassigned, assigned_to_me, open, closed, total, high_priority, medium_priority, low_priority, needs_response, follow_up, favorites, archived, unhappy_customers, new_customers, recent_activity] =
        *values;
    Counts {
        unassigned,
        assigned_to_me,
        open,
        closed,
        total,
        high_priority,
        medium_priority,
        low_priority,
        needs_response,
        follow_up,
        favorites,
        archived,
        unhappy_customers,
        new_customers,
        recent_activity,
    }
}
