//! Per-workspace cache settings in the JSON shape of API.md, with the contract's
//! defaults and the bounds the admin panel shows.

use serde::{Deserialize, Serialize};

use crate::InputError;

pub const MIN_TTL_SECS: u32 = 1;
pub const MAX_TTL_SECS: u32 = 86_400;
/// Bounds of a rate limit (per minute), a workspace's own or the deployment's default.
/// The top is more than one instance can serve (1.7M requests a second), so a limit set
/// there never caps a workspace.
pub const MAX_RATE_PER_MIN: u32 = 100_000_000;

/// Whether `per_min` is a rate limit the origin can enforce (1 to `MAX_RATE_PER_MIN`).
pub fn rate_in_bounds(per_min: u32) -> bool {
    (1..=MAX_RATE_PER_MIN).contains(&per_min)
}

/// TTL defaults of API.md not tied to a setting.
pub const CONTACT_DETAILS_TTL_SECS: u32 = 600;
pub const WORKSPACE_CONFIG_TTL_SECS: u32 = 3600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub contact_counts: bool,
    pub contact_lists: bool,
    pub search: bool,
    pub message_history: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    #[serde(rename = "contactCountsTTL")]
    pub contact_counts_ttl: u32,
    #[serde(rename = "contactsTTL")]
    pub contacts_ttl: u32,
    #[serde(rename = "searchTTL")]
    pub search_ttl: u32,
    #[serde(rename = "messageHistoryTTL")]
    pub message_history_ttl: u32,
}

/// A workspace's own rate limits; `None` keeps the deployment's default
/// (`RATE_LIMIT_REQUESTS_PER_MIN`, `RATE_LIMIT_WRITES_PER_MIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    pub requests_per_minute: Option<u32>,
    /// Each member's share of the workspace's requests, so that one member looping
    /// reads cannot spend every other member's budget (absent in older settings).
    #[serde(default)]
    pub requests_per_user_per_minute: Option<u32>,
    /// Searches each member may run a minute that the caches do not answer: a search
    /// costs the database far more than a page.
    #[serde(default)]
    pub searches_per_user_per_minute: Option<u32>,
    pub writes_per_user_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheSettings {
    pub cache_enabled: bool,
    pub features: Features,
    pub cache_config: CacheConfig,
    /// Absent in settings saved before it existed.
    #[serde(default)]
    pub rate_limits: RateLimits,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            cache_enabled: true,
            features: Features {
                contact_counts: true,
                contact_lists: true,
                search: false,
                message_history: false,
            },
            cache_config: CacheConfig {
                contact_counts_ttl: 300,
                contacts_ttl: 180,
                search_ttl: 120,
                message_history_ttl: 300,
            },
            rate_limits: RateLimits::default(),
        }
    }
}

/// What a settings POST may carry: any subset, applied over the current settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsUpdate {
    pub cache_enabled: Option<bool>,
    pub features: Option<FeaturesUpdate>,
    pub cache_config: Option<CacheConfigUpdate>,
    pub rate_limits: Option<RateLimitsUpdate>,
}

/// Each limit: absent leaves it, `null` returns to the default, a number sets it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitsUpdate {
    #[serde(default, deserialize_with = "present")]
    pub requests_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub requests_per_user_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub searches_per_user_per_minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub writes_per_user_per_minute: Option<Option<i64>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

fn rate(
    name: &str,
    value: Option<Option<i64>>,
    current: Option<u32>,
) -> Result<Option<u32>, InputError> {
    match value {
        None => Ok(current),
        Some(None) => Ok(None),
        Some(Some(v)) => u32::try_from(v)
            .ok()
            .filter(|v| rate_in_bounds(*v))
            .map(Some)
            .ok_or_else(|| {
                InputError::new(
                    "invalid_rate_limit",
                    format!("{name} must be between 1 and {MAX_RATE_PER_MIN} per minute, got {v}"),
                )
            }),
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeaturesUpdate {
    pub contact_counts: Option<bool>,
    pub contact_lists: Option<bool>,
    pub search: Option<bool>,
    pub message_history: Option<bool>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfigUpdate {
    #[serde(rename = "contactCountsTTL")]
    pub contact_counts_ttl: Option<i64>,
    #[serde(rename = "contactsTTL")]
    pub contacts_ttl: Option<i64>,
    #[serde(rename = "searchTTL")]
    pub search_ttl: Option<i64>,
    #[serde(rename = "messageHistoryTTL")]
    pub message_history_ttl: Option<i64>,
}

fn ttl(name: &str, value: Option<i64>, current: u32) -> Result<u32, InputError> {
    let Some(value) = value else {
        return Ok(current);
    };
    u32::try_from(value)
        .ok()
        .filter(|v| (MIN_TTL_SECS..=MAX_TTL_SECS).contains(v))
        .ok_or_else(|| {
            InputError::new(
                "invalid_ttl",
                format!(
                    "{name} must be between {MIN_TTL_SECS} and {MAX_TTL_SECS} seconds, got {value}"
                ),
            )
        })
}

impl CacheSettings {
    /// Applies an update, all or nothing: one bad TTL leaves every setting as it was.
    pub fn apply(&self, update: &SettingsUpdate) -> Result<Self, InputError> {
        let mut next = *self;
        if let Some(enabled) = update.cache_enabled {
            next.cache_enabled = enabled;
        }
        if let Some(f) = &update.features {
            let cur = self.features;
            next.features = Features {
                contact_counts: f.contact_counts.unwrap_or(cur.contact_counts),
                contact_lists: f.contact_lists.unwrap_or(cur.contact_lists),
                search: f.search.unwrap_or(cur.search),
                message_history: f.message_history.unwrap_or(cur.message_history),
            };
        }
        if let Some(c) = &update.cache_config {
            let cur = self.cache_config;
            next.cache_config = CacheConfig {
                contact_counts_ttl: ttl(
                    "contactCountsTTL",
                    c.contact_counts_ttl,
                    cur.contact_counts_ttl,
                )?,
                contacts_ttl: ttl("contactsTTL", c.contacts_ttl, cur.contacts_ttl)?,
                search_ttl: ttl("searchTTL", c.search_ttl, cur.search_ttl)?,
                message_history_ttl: ttl(
                    "messageHistoryTTL",
                    c.message_history_ttl,
                    cur.message_history_ttl,
                )?,
            };
        }
        if let Some(r) = &update.rate_limits {
            let cur = self.rate_limits;
            next.rate_limits = RateLimits {
                requests_per_minute: rate(
                    "requestsPerMinute",
                    r.requests_per_minute,
                    cur.requests_per_minute,
                )?,
                requests_per_user_per_minute: rate(
                    "requestsPerUserPerMinute",
                    r.requests_per_user_per_minute,
                    cur.requests_per_user_per_minute,
                )?,
                searches_per_user_per_minute: rate(
                    "searchesPerUserPerMinute",
                    r.searches_per_user_per_minute,
                    cur.searches_per_user_per_minute,
                )?,
                writes_per_user_per_minute: rate(
                    "writesPerUserPerMinute",
                    r.writes_per_user_per_minute,
                    cur.writes_per_user_per_minute,
                )?,
            };
        }
        Ok(next)
    }

    /// Whether counts are cached, and for how long.
    pub fn counts_ttl(&self) -> Option<u32> {
        (self.cache_enabled && self.features.contact_counts)
            .then_some(self.cache_config.contact_counts_ttl)
    }

    /// Whether message pages are cached, and for how long.
    pub fn messages_ttl(&self) -> Option<u32> {
        (self.cache_enabled && self.features.message_history)
            .then_some(self.cache_config.message_history_ttl)
    }

    /// Whether message searches are cached, and for how long.
    pub fn message_search_ttl(&self) -> Option<u32> {
        (self.cache_enabled && self.features.search).then_some(self.cache_config.search_ttl)
    }

    /// Whether a list page is cached, and for how long: searches follow the search toggle.
    pub fn list_ttl(&self, is_search: bool) -> Option<u32> {
        if !self.cache_enabled || !self.features.contact_lists {
            return None;
        }
        if is_search {
            return self.features.search.then_some(self.cache_config.search_ttl);
        }
        Some(self.cache_config.contacts_ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_set_bounded_and_reset_with_null() {
        let base = CacheSettings::default();
        let set = base
            .apply(&update(r#"{"rateLimits": {"requestsPerMinute": 120}}"#))
            .expect("valid");
        assert_eq!(set.rate_limits.requests_per_minute, Some(120));
        assert_eq!(set.rate_limits.writes_per_user_per_minute, None);
        for bad in [0, -1, i64::from(MAX_RATE_PER_MIN) + 1] {
            let body = format!(r#"{{"rateLimits": {{"writesPerUserPerMinute": {bad}}}}}"#);
            assert!(set.apply(&update(&body)).is_err(), "{bad}");
        }
        let reset = set
            .apply(&update(r#"{"rateLimits": {"requestsPerMinute": null}}"#))
            .expect("valid");
        assert_eq!(reset.rate_limits, RateLimits::default());
        let stored: CacheSettings = serde_json::from_str(
            r#"{"cacheEnabled":true,"features":{"contactCounts":true,"contactLists":true,"search":false,"messageHistory":false},"cacheConfig":{"contactCountsTTL":300,"contactsTTL":180,"searchTTL":120,"messageHistoryTTL":300}}"#,
        )
        .expect("settings saved before rate limits existed");
        assert_eq!(stored, CacheSettings::default());
    }

    fn update(json: &str) -> SettingsUpdate {
        serde_json::from_str(json).expect("valid update json")
    }

    #[test]
    fn the_default_serializes_to_the_contract_shape() {
        let json = serde_json::to_value(CacheSettings::default()).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"cacheEnabled":true,"features":{"contactCounts":true,"contactLists":true,"search":false,"messageHistory":false},"cacheConfig":{"contactCountsTTL":300,"contactsTTL":180,"searchTTL":120,"messageHistoryTTL":300},"rateLimits":{"requestsPerMinute":null,"requestsPerUserPerMinute":null,"searchesPerUserPerMinute":null,"writesPerUserPerMinute":null}})
        );
    }

    #[test]
    fn a_partial_update_keeps_the_other_settings() {
        let next = CacheSettings::default()
            .apply(&update(r#"{"cacheConfig":{"contactsTTL":60}}"#))
            .expect("valid");
        assert_eq!(next.cache_config.contacts_ttl, 60);
        assert_eq!(next.cache_config.contact_counts_ttl, 300);
        assert!(next.cache_enabled);
    }

    #[test]
    fn a_ttl_out_of_bounds_is_refused_and_changes_nothing() {
        for bad in ["0", "-5", "86401", "99999999999"] {
            let json = format!(r#"{{"cacheEnabled":false,"cacheConfig":{{"searchTTL":{bad}}}}}"#);
            let err = CacheSettings::default()
                .apply(&update(&json))
                .expect_err(bad);
            assert_eq!(err.code, "invalid_ttl");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<SettingsUpdate>(r#"{"cacheEnabld":true}"#).is_err());
    }

    #[test]
    fn search_pages_follow_the_search_toggle() {
        let s = CacheSettings::default();
        assert_eq!(s.list_ttl(false), Some(180));
        assert_eq!(s.list_ttl(true), None);
        let off = s
            .apply(&update(r#"{"cacheEnabled":false}"#))
            .expect("valid");
        assert_eq!((off.list_ttl(false), off.counts_ttl()), (None, None));
    }
}
