//! Any JSON body for a settings update: parsing never panics, an accepted update gives
//! settings within the bounds the panel shows, and those settings survive the JSON round
//! trip they make through the store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::settings::{CacheSettings, SettingsUpdate, MAX_TTL_SECS, MIN_TTL_SECS};

fuzz_target!(|raw: &[u8]| {
    let Ok(update) = serde_json::from_slice::<SettingsUpdate>(raw) else {
        return;
    };
    let Ok(settings) = CacheSettings::default().apply(&update) else {
        return;
    };
    let c = settings.cache_config;
    for ttl in [c.contact_counts_ttl, c.contacts_ttl, c.search_ttl, c.message_history_ttl] {
        assert!((MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl), "{ttl}");
    }
    let stored = serde_json::to_string(&settings).expect("settings serialize");
    let loaded: CacheSettings = serde_json::from_str(&stored).expect("settings deserialize");
    assert_eq!(loaded, settings);
});
