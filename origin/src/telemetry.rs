//! Logs (tracing) and the Prometheus recorder. The recorder is process-global, so it is
//! installed once and shared by every application built in the process (tests build many).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_ok() {
                describe();
            }
            handle
        })
        .clone()
}

/// Every metric the origin exports, with its help text. Unlabelled ones are registered at
/// zero, so that a scrape shows them before their first event: an alert on the rate of
/// something that has not happened yet still has a series to evaluate
/// (docs/monitoring/alerts.yml, checked against a scrape by the API tests).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "edgecache_cache_hits_total",
        "Reads answered by a cache layer (label layer: memory, redis_cache)"
    );
    describe_histogram!(
        "edgecache_read_duration_seconds",
        Unit::Seconds,
        "Time to answer a read, by the layer that answered it"
    );
    let counters = [
        ("edgecache_cache_misses_total", "Reads no cache layer held"),
        (
            "edgecache_stale_served_total",
            "Answers served stale (past their TTL, within grace) because a fill failed",
        ),
        (
            "edgecache_db_queries_total",
            "Statements the read path sent to Postgres",
        ),
        (
            "edgecache_pages_read_on_total",
            "Cached pages checked against the board's edit log and kept",
        ),
        (
            "edgecache_replica_behind_total",
            "Reads sent to the primary because the replica had not replayed a write",
        ),
        (
            "edgecache_edge_outbox_dead_letters_total",
            "Changes the edge refused; set aside, never retried",
        ),
    ];
    for (name, help) in counters {
        describe_counter!(name, help);
        metrics::counter!(name).absolute(0);
    }
    describe_counter!(
        "edgecache_redis_errors_total",
        "Redis calls that failed or timed out (label op)"
    );
    describe_histogram!(
        "edgecache_edge_propagation_seconds",
        Unit::Seconds,
        "From a change's acknowledgement to the edge's confirmation that it took it"
    );
    let gauges = [
        (
            "edgecache_redis_up",
            "1 while Redis answers, 0 while reads skip it",
        ),
        (
            "edgecache_db_pool_connections",
            "Open Postgres connections of the pool",
        ),
        (
            "edgecache_db_pool_idle",
            "Idle Postgres connections of the pool",
        ),
        ("edgecache_l1_entries", "Entries in the in-process cache"),
        (
            "edgecache_l1_bytes",
            "Weighted bytes in the in-process cache",
        ),
        (
            "edgecache_live_connections",
            "Open event streams on this instance",
        ),
        (
            "edgecache_edge_outbox_depth",
            "Changes waiting to be pushed to the edge",
        ),
    ];
    for (name, help) in gauges {
        describe_gauge!(name, help);
        metrics::gauge!(name).increment(0.0);
    }
}
