//! The layer runs: every layer, the edge, nginx `proxy_cache` and the bare ceiling under
//! wrk at each concurrency, for counts and for a page, and the tables of their results.

use serde_json::{json, Value};

use crate::plan::Plan;
use crate::wrk::{self, Load, Outcome, Req};
use e2e::origins::token;

const EDGE_HIT: &str = "edge KV hit (wrangler dev)";
/// The same edge with `EDGE_HOT_BYTES=0`: every hit reads KV, as before the isolate kept
/// copies.
const EDGE_NO_COPY: &str = "edge KV hit, no isolate copy (wrangler dev)";
const BARE_WORKER: &str = "bare worker (wrangler dev)";
const L1_HIT: &str = "origin L1 (moka)";
const NGINX_HIT: &str = "nginx proxy_cache hit";
const CEILING: &str = "bare hyper ceiling";
/// The targets the goals' ratios compare (the L1 hit's and the edge hit's). They are
/// measured back to back, in rounds that each start at the next of them, and each figure
/// is the median over the rounds: one 3-second run per target, with other runs between
/// them, let a burst of a shared machine's noise decide a ratio (a target's p99 moved
/// 1.5x between two runs).
const PEERS: [&str; 6] = [
    L1_HIT,
    NGINX_HIT,
    CEILING,
    EDGE_HIT,
    EDGE_NO_COPY,
    BARE_WORKER,
];

/// The base URLs of what the layer runs drive.
pub struct Targets {
    pub memory: String,
    pub l2: String,
    pub uncached: String,
    pub edge: String,
    pub edge_no_copy: String,
    pub nginx: String,
    pub ceiling_counts: String,
    pub ceiling_page: String,
    /// The bare worker answering the counts body, and the page body.
    pub bare_counts: String,
    pub bare_page: String,
}

/// The paths of the two reads measured: counts at the origin and at the edge, a page.
pub struct Reads {
    pub counts: String,
    pub edge_counts: String,
    pub page: String,
}

pub struct Row {
    pub read: &'static str,
    pub target: &'static str,
    pub connections: u32,
    pub outcome: Outcome,
    /// For edge runs: the share of requests the edge answered without KV.
    pub kv_miss_share: Option<f64>,
    /// For edge runs: requests to the generations' Durable Object per second (one
    /// isolate in `wrangler dev`).
    pub object_reads_per_sec: Option<f64>,
    /// For edge runs: the platform operations per million reads, and what a billion reads
    /// cost at `PRICES_PER_MILLION`.
    pub cost: Option<Value>,
}

/// Workers Paid list prices in USD per million, beyond the plan's monthly inclusions, as
/// developers.cloudflare.com gave them on 2026-12-06: requests (invocations), KV reads, KV
/// writes, Durable Object requests. Durations, CPU time and storage are not counted.
pub const PRICES_PER_MILLION: [(&str, f64); 4] = [
    ("invocations", 0.30),
    ("kv_reads", 0.50),
    ("kv_writes", 5.00),
    ("object_requests", 0.15),
];

/// The operations an edge run made per million reads answered, and their price for a
/// billion reads.
pub fn cost(before: &EdgeCounts, after: &EdgeCounts) -> Value {
    let reads = ((after.hits + after.misses) - (before.hits + before.misses)).max(1) as f64;
    let mut per_million = serde_json::Map::new();
    let mut dollars = 0.0;
    for (i, (name, price)) in PRICES_PER_MILLION.iter().enumerate() {
        let n = (after.operations[i] - before.operations[i]) as f64 * 1e6 / reads;
        dollars += n * price / 1e6 * 1_000.0;
        per_million.insert((*name).to_owned(), json!(n));
    }
    json!({"operationsPerMillionReads": per_million, "dollarsPerBillionReads": dollars})
}

/// Every target at every concurrency, for both reads.
pub async fn measure(
    plan: &Plan,
    ws: &str,
    boards: &[i64],
    user: &str,
    at: &Targets,
    reads: &Reads,
) -> Vec<Row> {
    let hot = |path: String| {
        vec![Req {
            path,
            token: user.to_owned(),
        }]
    };
    // Distinct keys: per-user counts, and pages over boards, filters and orders.
    let many_counts = |from: usize, n: usize, path: &str| -> Vec<Req> {
        (from..from + n)
            .map(|i| Req {
                path: path.to_owned(),
                token: token(&format!("user_{i}"), ws, false),
            })
            .collect()
    };
    let filters = [
        "all",
        "open",
        "closed",
        "unassigned",
        "high_priority",
        "needs_response",
    ];
    let mut many_pages = Vec::new();
    let sorts = ["created_at", "updated_at", "name", "last_activity_at"];
    for page in 1..=50 {
        for (filter, sort) in filters
            .iter()
            .flat_map(|f| sorts.iter().map(move |s| (f, s)))
        {
            for order in ["desc", "asc"] {
                for b in boards {
                    many_pages.push(Req {
                        path: format!(
                            "/api/boards/{b}/contacts?page={page}&filter={filter}\
                             &sort_by={sort}&sort_order={order}"
                        ),
                        token: user.to_owned(),
                    });
                }
            }
        }
    }
    let mut rows = Vec::new();
    let (edge_base, nginx_base) = (&at.edge, &at.nginx);
    for (read, hot_path, edge_path, ceiling_base, bare_base) in [
        (
            "counts",
            &reads.counts,
            &reads.edge_counts,
            &at.ceiling_counts,
            &at.bare_counts,
        ),
        (
            "page",
            &reads.page,
            &reads.page,
            &at.ceiling_page,
            &at.bare_page,
        ),
    ] {
        let hot_reqs = hot(hot_path.clone());
        let edge_hot = hot(edge_path.clone());
        warm(&at.memory, ws, &hot_reqs).await;
        warm(&at.l2, ws, &hot_reqs).await;
        warm(nginx_base, ws, &hot_reqs).await;
        warm(edge_base, ws, &edge_hot).await;
        warm(&at.edge_no_copy, ws, &edge_hot).await;
        let uncached_reqs = if read == "counts" {
            many_counts(1_000, 1_000, hot_path)
        } else {
            many_pages.clone()
        };
        // KV misses: keys the edge has never seen, each already in the origin's L1.
        let misses: Vec<usize> = if read == "counts" {
            plan.miss_counts.clone()
        } else {
            plan.miss_pages.clone()
        };
        let mut miss_sets = Vec::new();
        let mut next = 0;
        for n in &misses {
            let set: Vec<Req> = if read == "counts" {
                many_counts(10_000 + next, *n, edge_path)
            } else {
                many_pages[next..next + n].to_vec()
            };
            next += n;
            let origin_side: Vec<Req> = set
                .iter()
                .map(|r| Req {
                    path: if read == "counts" {
                        hot_path.clone()
                    } else {
                        r.path.clone()
                    },
                    token: r.token.clone(),
                })
                .collect();
            warm(&at.memory, ws, &origin_side).await;
            miss_sets.push(set);
        }
        for (i, &c) in plan.concurrency.iter().enumerate() {
            let targets: [(&'static str, String, &[Req]); 9] = [
                (
                    "origin, Postgres (no cache)",
                    at.uncached.clone(),
                    &uncached_reqs,
                ),
                ("origin L2 (Redis)", at.l2.clone(), &hot_reqs),
                (L1_HIT, at.memory.clone(), &hot_reqs),
                (EDGE_HIT, edge_base.clone(), &edge_hot),
                (EDGE_NO_COPY, at.edge_no_copy.clone(), &edge_hot),
                ("edge KV miss → origin L1", edge_base.clone(), &miss_sets[i]),
                (NGINX_HIT, nginx_base.clone(), &hot_reqs),
                (CEILING, ceiling_base.clone(), &hot_reqs),
                (BARE_WORKER, bare_base.clone(), &edge_hot),
            ];
            let (peers, others): (Vec<usize>, Vec<usize>) =
                (0..targets.len()).partition(|&t| PEERS.contains(&targets[t].0));
            let mut order = others;
            for round in 0..plan.peer_rounds {
                order.extend((0..peers.len()).map(|k| peers[(round + k) % peers.len()]));
            }
            let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); targets.len()];
            let mut edge_figures = vec![(None, None, None); targets.len()];
            for t in order {
                let (target, base, requests) = &targets[t];
                let is_edge = base == edge_base || *base == at.edge_no_copy;
                let before = if is_edge {
                    edge_lookups(base).await
                } else {
                    EdgeCounts::default()
                };
                let outcome = wrk::run(&Load {
                    base,
                    workspace: ws,
                    requests,
                    connections: c,
                    duration: plan.run_for,
                });
                let (kv_miss_share, object_reads_per_sec, cost) = if is_edge {
                    let after = edge_lookups(base).await;
                    let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
                    let reads = (after.object_reads - before.object_reads) as f64
                        / plan.run_for.as_secs_f64();
                    (
                        Some(misses as f64 / (hits + misses).max(1) as f64),
                        Some(reads),
                        Some(cost(&before, &after)),
                    )
                } else {
                    (None, None, None)
                };
                eprintln!("{read} {target} c={c}: {outcome:?} kv misses {kv_miss_share:?}");
                runs[t].push(outcome);
                edge_figures[t] = (kv_miss_share, object_reads_per_sec, cost);
            }
            for (t, (target, ..)) in targets.iter().enumerate() {
                let (kv_miss_share, object_reads_per_sec, cost) = edge_figures[t].clone();
                rows.push(Row {
                    read,
                    target,
                    connections: c,
                    outcome: wrk::median(&runs[t]),
                    kv_miss_share,
                    object_reads_per_sec,
                    cost,
                });
            }
        }
    }
    rows
}

/// Asks `base` for every request once, 16 at a time (fills the caches behind it).
pub async fn warm(base: &str, ws: &str, reqs: &[Req]) {
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for chunk in reqs.chunks(reqs.len().div_ceil(16).max(1)) {
        let (http, base, ws, chunk) =
            (http.clone(), base.to_owned(), ws.to_owned(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for r in chunk {
                let answer = http
                    .get(format!("{base}{}", r.path))
                    .bearer_auth(&r.token)
                    .header("X-Workspace-ID", &ws)
                    .send()
                    .await
                    .expect("warm request");
                assert!(
                    answer.status().is_success(),
                    "{}: {}",
                    r.path,
                    answer.status()
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("warm");
    }
}

pub async fn body_of(base: &str, ws: &str, req: &Req) -> Vec<u8> {
    reqwest::Client::new()
        .get(format!("{base}{}", req.path))
        .bearer_auth(&req.token)
        .header("X-Workspace-ID", ws)
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body")
        .to_vec()
}

/// The edge's lookups so far (hits, misses) and its reads of the generations' object,
/// from its `/metrics`.
/// What the edge isolate counted so far.
#[derive(Debug, Default)]
pub struct EdgeCounts {
    pub hits: u64,
    pub misses: u64,
    pub object_reads: u64,
    /// In the order of `PRICES_PER_MILLION`.
    pub operations: [u64; 4],
}

pub async fn edge_lookups(base: &str) -> EdgeCounts {
    let v = e2e::edge_metrics(base).await;
    let requests = find(&v, "cache_misses").unwrap_or(&Value::Null);
    let objects = find(&v, "object_reads").unwrap_or(&Value::Null);
    let operations = find(&v, "kv_writes").unwrap_or(&Value::Null);
    EdgeCounts {
        hits: requests["cache_hits"].as_u64().unwrap_or(0),
        misses: requests["cache_misses"].as_u64().unwrap_or(0),
        object_reads: objects["object_reads"].as_u64().unwrap_or(0),
        operations: PRICES_PER_MILLION.map(|(name, _)| operations[name].as_u64().unwrap_or(0)),
    }
}

/// The object holding `key`, however deep in `v`.
pub fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) if map.contains_key(key) => Some(v),
        Value::Object(map) => map.values().find_map(|c| find(c, key)),
        _ => None,
    }
}

pub fn print_table(rows: &[Row], concurrency: &[u32]) {
    for read in ["counts", "page"] {
        println!("\n### {read}: requests/s and p50 / p95 / p99 latency (ms)\n");
        let mut header = "| target |".to_owned();
        let mut rule = "|---|".to_owned();
        for c in concurrency {
            header.push_str(&format!(" c={c} req/s | c={c} p50/p95/p99 |"));
            rule.push_str("---:|---:|");
        }
        println!("{header}\n{rule}");
        let targets: Vec<&str> = rows
            .iter()
            .filter(|r| r.read == read)
            .map(|r| r.target)
            .fold(Vec::new(), |mut v, t| {
                if !v.contains(&t) {
                    v.push(t);
                }
                v
            });
        for target in targets {
            let mut line = format!("| {target} |");
            for c in concurrency {
                match rows
                    .iter()
                    .find(|r| r.read == read && r.target == target && r.connections == *c)
                {
                    Some(r) => {
                        let o = &r.outcome;
                        let mut notes = Vec::new();
                        if o.errors > 0 {
                            notes.push(format!("{} errors", o.errors));
                        }
                        if let Some(share) = r.kv_miss_share {
                            notes.push(format!("{:.0}% KV misses", share * 100.0));
                        }
                        line.push_str(&format!(
                            " {:.0}{} | {:.2} / {:.2} / {:.2} |",
                            o.rps,
                            if notes.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", notes.join(", "))
                            },
                            o.p50_us / 1000.0,
                            o.p95_us / 1000.0,
                            o.p99_us / 1000.0
                        ));
                    }
                    None => line.push_str(" – | – |"),
                }
            }
            println!("{line}");
        }
    }
}

/// `a` against `b`, which a run that served nothing (0) must not turn into a division by
/// zero.
fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(1e-9)
}

/// The concurrencies the L1-hit goal is judged at.
const GOAL_CONNECTIONS: [u32; 2] = [16, 64];

/// The L1-hit goal's throughput bars: shares of the bare ceiling's and nginx's.
const GOAL_VS_CEILING: f64 = 0.8;
const GOAL_VS_NGINX: f64 = 1.2;

/// The goal for an L1 hit: both throughput bars, with a p99 no worse than nginx's.
fn goal_met(vs_ceiling: f64, vs_nginx: f64, p99_vs_nginx: f64) -> bool {
    vs_ceiling >= GOAL_VS_CEILING && vs_nginx >= GOAL_VS_NGINX && p99_vs_nginx <= 1.0
}

/// The edge-hit goal: a KV hit near what workerd itself costs, the bare worker answering
/// the same bytes.
const EDGE_GOAL_VS_BARE_WORKER: f64 = 0.85;
const EDGE_GOAL_P99_VS_BARE_WORKER: f64 = 1.3;

fn edge_goal_met(vs_bare: f64, p99_vs_bare: f64) -> bool {
    vs_bare >= EDGE_GOAL_VS_BARE_WORKER && p99_vs_bare <= EDGE_GOAL_P99_VS_BARE_WORKER
}

/// The share of the ceiling's throughput the goal asks of an L1 hit in a run where the
/// ceiling got `ceiling_vs_nginx` times nginx's: wherever nginx comes within 1.5x of the
/// ceiling, 1.2x nginx's is more than the ceiling's 0.8, and the closer nginx comes, the
/// nearer the hit must cost what serving fixed bytes costs.
fn needed_vs_ceiling(ceiling_vs_nginx: f64) -> f64 {
    GOAL_VS_CEILING.max(ratio(GOAL_VS_NGINX, ceiling_vs_nginx))
}

/// Our memory hit (through the origin and through the edge) as ratios to the ceiling and
/// to nginx, from the same run. Each L1 cell also says whether the bare ceiling itself
/// would meet the goal against nginx in that run: where nginx comes within 1.2x of the
/// ceiling, or the ceiling's own p99 is above nginx's, no server could, and the cell
/// measures the machine, not the origin. It also says how near the ceiling the goal asks
/// the hit to come in that run: the throughput share of the ceiling's, and the p99 as a
/// multiple of the ceiling's, that nginx's figures leave.
pub fn ratios(rows: &[Row]) -> Vec<Value> {
    let find = |read: &str, target: &str, c: u32| {
        rows.iter()
            .find(|r| r.read == read && r.target == target && r.connections == c)
            .map(|r| &r.outcome)
    };
    let mut out = Vec::new();
    for r in rows
        .iter()
        .filter(|r| [EDGE_HIT, EDGE_NO_COPY].contains(&r.target))
    {
        if let Some(bare) = find(r.read, BARE_WORKER, r.connections) {
            let (vs_bare, p99_vs_bare) = (
                ratio(r.outcome.rps, bare.rps),
                ratio(r.outcome.p99_us, bare.p99_us),
            );
            let judged = GOAL_CONNECTIONS.contains(&r.connections);
            out.push(json!({
                "read": r.read,
                "target": r.target,
                "connections": r.connections,
                "edgeHitThroughputVsBareWorker": vs_bare,
                "edgeHitP99VsBareWorker": p99_vs_bare,
                "goalMet": judged.then(|| edge_goal_met(vs_bare, p99_vs_bare)),
            }));
        }
    }
    for r in rows.iter().filter(|r| r.target == L1_HIT) {
        let (Some(ceiling), Some(nginx)) = (
            find(r.read, CEILING, r.connections),
            find(r.read, NGINX_HIT, r.connections),
        ) else {
            continue;
        };
        let o = &r.outcome;
        let (vs_ceiling, vs_nginx) = (ratio(o.rps, ceiling.rps), ratio(o.rps, nginx.rps));
        let p99_vs_nginx = ratio(o.p99_us, nginx.p99_us);
        let ceiling_vs_nginx = ratio(ceiling.rps, nginx.rps);
        let ceiling_p99_vs_nginx = ratio(ceiling.p99_us, nginx.p99_us);
        let judged = GOAL_CONNECTIONS.contains(&r.connections);
        out.push(json!({
            "read": r.read,
            "connections": r.connections,
            "throughputVsCeiling": vs_ceiling,
            "throughputVsNginx": vs_nginx,
            "p99VsCeiling": ratio(o.p99_us, ceiling.p99_us),
            "p99VsNginx": p99_vs_nginx,
            "goalMet": judged.then(|| goal_met(vs_ceiling, vs_nginx, p99_vs_nginx)),
            "ceilingThroughputVsNginx": ceiling_vs_nginx,
            "ceilingP99VsNginx": ceiling_p99_vs_nginx,
            "goalMetByCeiling": judged.then(|| goal_met(1.0, ceiling_vs_nginx, ceiling_p99_vs_nginx)),
            "throughputVsCeilingNeeded": judged.then(|| needed_vs_ceiling(ceiling_vs_nginx)),
            "p99VsCeilingAllowed": judged.then(|| ratio(nginx.p99_us, ceiling.p99_us)),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{goal_met, needed_vs_ceiling};

    #[test]
    fn the_goal_needs_all_three_parts() {
        assert!(goal_met(0.8, 1.2, 1.0));
        assert!(!goal_met(0.79, 1.5, 0.5), "below the ceiling's 0.8");
        assert!(!goal_met(0.95, 1.19, 0.5), "below 1.2x nginx");
        assert!(!goal_met(0.95, 1.5, 1.01), "a p99 above nginx's");
    }

    #[test]
    fn the_share_of_the_ceiling_needed_is_what_meets_both_throughput_parts() {
        for ceiling_vs_nginx in [1.05, 1.28, 1.5, 2.0, 3.0] {
            let needed = needed_vs_ceiling(ceiling_vs_nginx);
            let at = |share: f64| goal_met(share, share * ceiling_vs_nginx, 1.0);
            assert!(at(needed + 1e-9), "{ceiling_vs_nginx}: {needed} is enough");
            assert!(
                !at(needed - 1e-3),
                "{ceiling_vs_nginx}: {needed} is the least"
            );
        }
        assert!((needed_vs_ceiling(1.28) - 0.9375).abs() < 1e-12);
        assert_eq!(needed_vs_ceiling(2.0), 0.8);
    }
}
