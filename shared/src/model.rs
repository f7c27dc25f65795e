//! JSON shapes of API.md that both services produce or read.

use serde::{Deserialize, Serialize};

/// The workspace counts of API.md. Every field is also a list filter, so the counts and
/// a filtered list total agree by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub unassigned: i64,
    pub assigned_to_me: i64,
    pub open: i64,
    pub closed: i64,
    pub total: i64,
    pub high_priority: i64,
    pub medium_priority: i64,
    pub low_priority: i64,
    pub needs_response: i64,
    pub follow_up: i64,
    pub favorites: i64,
    pub archived: i64,
    pub unhappy_customers: i64,
    pub new_customers: i64,
    pub recent_activity: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: i64,
    pub workspace_id: String,
    pub board_id: i64,
    pub column_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub status: String,
    pub priority: String,
    pub assigned_to: Option<String>,
    pub needs_response: bool,
    pub follow_up: bool,
    pub favorite: bool,
    pub archived: bool,
    pub sentiment: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    pub custom_attributes: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pagination {
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
    pub total_pages: i64,
    /// `cursor=` of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
    pub has_more: bool,
    /// False when `total` is a lower bound: a search counts its matches only up to a cap,
    /// so that a broad search never scans the whole workspace to report a number.
    pub total_exact: bool,
}

impl Pagination {
    pub fn new(page: u32, per_page: u32, total: Total, next_cursor: Option<String>) -> Self {
        let per = i64::from(per_page.max(1));
        Self {
            page,
            per_page,
            total: total.count,
            total_pages: (total.count + per - 1) / per,
            has_more: next_cursor.is_some(),
            next_cursor,
            total_exact: total.exact,
        }
    }
}

/// A list total: exact, or a lower bound where counting further was not worth it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub pagination: Pagination,
}

#[derive(Deserialize)]
struct PageIds {
    contacts: Vec<IdOnly>,
}

#[derive(Deserialize)]
struct PageEnd {
    pagination: CursorOnly,
}

#[derive(Deserialize)]
struct CursorOnly {
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: i64,
}

impl ContactPage {
    /// The ids of the contacts a page's JSON shows, the rest of it skipped.
    pub fn ids_in(json: &str) -> Option<Vec<i64>> {
        let page: PageIds = serde_json::from_str(json).ok()?;
        Some(page.contacts.into_iter().map(|c| c.id).collect())
    }

    /// The `next_cursor` of a page's JSON, the contacts skipped.
    pub fn next_cursor_in(json: &str) -> Option<String> {
        let page: PageEnd = serde_json::from_str(json).ok()?;
        page.pagination.next_cursor
    }
}

/// How a response was answered, as API.md's `_cache.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }
}

/// Which layer answered, as API.md's `_source` and `_cache.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    CloudflareKv,
    RedisCache,
    Memory,
    Database,
}

impl Source {
    /// Every source, in the order `index` numbers them.
    pub const ALL: [Self; 4] = [
        Self::CloudflareKv,
        Self::RedisCache,
        Self::Memory,
        Self::Database,
    ];

    /// This source's place in `ALL`, for what is kept per source.
    pub fn index(self) -> usize {
        match self {
            Self::CloudflareKv => 0,
            Self::RedisCache => 1,
            Self::Memory => 2,
            Self::Database => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudflareKv => "cloudflare_kv",
            Self::RedisCache => "redis_cache",
            Self::Memory => "memory",
            Self::Database => "database",
        }
    }
}

/// API.md's `_cache` block of a list or counts answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    pub status: CacheStatus,
    pub source: Source,
    /// Seconds the answer stays fresh from now (0 when bypassed or stale).
    pub ttl: u64,
    pub edge_location: Option<String>,
    pub response_time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_is_at_its_index_once() {
        for (i, source) in Source::ALL.into_iter().enumerate() {
            assert_eq!(source.index(), i, "{source:?}");
        }
    }

    #[test]
    fn a_page_names_its_contacts_and_anything_else_names_none() {
        let page = r#"{"contacts":[{"id":4,"name":"a"},{"id":2,"tags":[1]}],"pagination":{}}"#;
        assert_eq!(ContactPage::ids_in(page), Some(vec![4, 2]));
        assert_eq!(ContactPage::ids_in(r#"{"total":1}"#), None);
    }

    #[test]
    fn a_page_names_the_cursor_of_the_next_and_the_last_page_none() {
        let custom = r#"{"custom_attributes":{"pagination":{"next_cursor":"x"}}}"#;
        let page = format!(r#"{{"contacts":[{custom}],"pagination":{{"next_cursor":"c2"}}}}"#);
        assert_eq!(ContactPage::next_cursor_in(&page).as_deref(), Some("c2"));
        let last = r#"{"contacts":[],"pagination":{"next_cursor":null}}"#;
        assert_eq!(ContactPage::next_cursor_in(last), None);
        assert_eq!(ContactPage::next_cursor_in(r#"{"total":1}"#), None);
    }
}
