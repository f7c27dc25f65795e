//! The one definition of each list filter as SQL. Counts are built from the same
//! predicates, which is what makes a filtered list total equal its count.

use shared::model::Counts;
use shared::query::Filter;
use sqlx::{Postgres, QueryBuilder};

/// Appends `filter`'s predicate; `user` is bound for `assigned_to_me`.
pub fn push_predicate(qb: &mut QueryBuilder<'_, Postgres>, filter: Filter, user: &str) {
    let sql = match filter {
        Filter::All => "NOT archived",
        Filter::Open => "NOT archived AND status = 'open'",
        Filter::Closed => "NOT archived AND status = 'closed'",
        Filter::Unassigned => "NOT archived AND assigned_to IS NULL",
        Filter::AssignedToMe => {
            qb.push("NOT archived AND assigned_to = ")
                .push_bind(user.to_owned());
            return;
        }
        Filter::HighPriority => "NOT archived AND priority = 'high'",
        Filter::MediumPriority => "NOT archived AND priority = 'medium'",
        Filter::LowPriority => "NOT archived AND priority = 'low'",
        Filter::NeedsResponse => "NOT archived AND needs_response",
        Filter::FollowUp => "NOT archived AND follow_up",
        Filter::Favorites => "NOT archived AND favorite",
        Filter::Archived => "archived",
        Filter::UnhappyCustomers => "NOT archived AND sentiment = 'negative'",
        Filter::NewCustomers => "NOT archived AND created_at > now() - interval '7 days'",
        Filter::RecentActivity => "NOT archived AND last_activity_at > now() - interval '24 hours'",
    };
    qb.push(sql);
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
