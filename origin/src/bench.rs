//! `origin bench`: latency of one counts read and one list page from each layer, in
//! process (no HTTP), so the figures are the layers' own. Ratios are to the database path
//! measured in the same run.

use std::time::{Duration, Instant};

use shared::query::ContactListQuery;
use shared::{UserId, WorkspaceId};

use std::sync::Arc;

use crate::cache::entry::Entry;
use crate::cache::memory::{weigh, Memory};
use crate::cache::{Cache, Layers};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{self, Read};

struct Sample {
    p50: Duration,
    p99: Duration,
}

fn percentiles(mut times: Vec<Duration>) -> Sample {
    times.sort();
    let at = |q: f64| shared::stats::quantile(&times, q).unwrap_or_default();
    Sample {
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn time_n<F, Fut>(n: usize, mut f: F) -> Result<Sample>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await?;
        times.push(started.elapsed());
    }
    Ok(percentiles(times))
}

/// Times `compute` from the database, then the same key from Redis only, then from memory.
async fn layers<F, Fut>(
    cache: &Cache,
    key: &str,
    n: usize,
    compute: F,
) -> Result<Vec<(&'static str, Sample)>>
where
    F: Fn() -> Fut + Copy,
    Fut: std::future::Future<Output = Result<String>> + Send + 'static,
{
    let database = time_n(n, || async { compute().await.map(drop) }).await?;
    let mut out = vec![("database", database)];
    cache.remove(key).await;
    if cache.redis().is_some() {
        let redis_only = Layers {
            memory: false,
            redis: true,
        };
        cache
            .read_through(key.to_owned(), 3600, redis_only, None, |_| None, compute)
            .await?;
        let redis = time_n(n, || async {
            cache
                .read_through(key.to_owned(), 3600, redis_only, None, |_| None, compute)
                .await
                .map(drop)
        })
        .await?;
        out.push(("redis", redis));
    }
    cache
        .read_through(key.to_owned(), 3600, Layers::ALL, None, |_| None, compute)
        .await?;
    let memory = time_n(n, || async {
        cache
            .read_through(key.to_owned(), 3600, Layers::ALL, None, |_| None, compute)
            .await
            .map(drop)
    })
    .await?;
    out.push(("memory", memory));
    Ok(out)
}

fn print(what: &str, rows: &[(&str, Sample)]) {
    let Some((_, db)) = rows.first() else { return };
    println!("{what}");
    println!(
        "  {:<9} {:>10} {:>10} {:>12} {:>12}",
        "layer", "p50 µs", "p99 µs", "p50 speedup", "p99 speedup"
    );
    for (layer, s) in rows {
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
        println!(
            "  {:<9} {:>10.1} {:>10.1} {:>11.0}x {:>11.0}x",
            layer,
            s.p50.as_secs_f64() * 1e6,
            s.p99.as_secs_f64() * 1e6,
            ratio(s.p50, db.p50),
            ratio(s.p99, db.p99)
        );
    }
}

pub async fn run(state: &AppState, ws: &WorkspaceId, n: usize) -> Result<()> {
    let user = UserId::parse("user_3")?;
    let cache = &state.cache;
    let counts_key = state.cache.counts_key(ws, &user).await;
    let counts =
        || store::counts_json(state.store.clone(), Read::Primary, ws.clone(), user.clone());
    print("counts", &layers(cache, &counts_key, n, counts).await?);

    let board = *state
        .store
        .boards(Read::Primary, ws)
        .await?
        .first()
        .ok_or(Error::NotFound("board"))?;
    let q = ContactListQuery::default();
    let page_key = cache.page_key(ws, board, &q).await;
    let page = || {
        let (ws, q, user) = (ws.clone(), q.clone(), user.clone());
        store::page_json(state.store.clone(), Read::Primary, ws, board, q, user)
    };
    print(
        "list page 1 (50 contacts)",
        &layers(cache, &page_key, n, page).await?,
    );
    Ok(())
}

/// Resident set size of this process, from `/proc/self/status` (Linux), in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What L1 costs when full: for each size, an L1 bounded to hold that many counts-sized
/// entries (by its weigher) is filled with half as many again, then the process's
/// resident memory is set against the bound, and lookups over every key inserted are
/// timed. One JSON line per size, for the benchmark harness (one process per size, so
/// each starts from the same resident memory).
pub async fn l1(sizes: &[usize], body: &str) -> Result<()> {
    let key = |i: usize| format!("ec:v4:counts:{{ws{}}}:g1.1:user_{i}", i % 500);
    let entry = || Arc::new(Entry::new(body.to_owned(), 3600, None));
    for &n in sizes {
        let bound = n as u64 * u64::from(weigh(&key(n), &entry()));
        let memory = Memory::new(bound, Duration::from_secs(3600));
        let before = resident_bytes().unwrap_or(0);
        let inserted = n + n / 2;
        for i in 0..inserted {
            memory.insert(key(i), entry());
        }
        memory.settle();
        let added = resident_bytes().unwrap_or(0).saturating_sub(before);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut times = Vec::with_capacity(100_000);
        let mut hits = 0;
        for _ in 0..100_000 {
            // xorshift: a spread of keys without a dependency for randomness.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let k = key(usize::try_from(state % inserted.max(1) as u64).unwrap_or(0));
            let started = Instant::now();
            hits += usize::from(memory.get(&k).is_some());
            times.push(started.elapsed());
        }
        times.sort();
        let at = |q: f64| shared::stats::quantile(&times, q).unwrap_or_default();
        println!(
            "{}",
            serde_json::json!({
                "entries": n,
                "inserted": inserted,
                "entryCount": memory.entry_count(),
                "boundBytes": bound,
                "weightedBytes": memory.weighted_bytes(),
                "rssAddedBytes": added,
                "rssPerBound": added as f64 / bound.max(1) as f64,
                "hitShare": hits as f64 / times.len() as f64,
                "getP50Ns": at(0.50).as_nanos(),
                "getP99Ns": at(0.99).as_nanos(),
            })
        );
    }
    Ok(())
}
