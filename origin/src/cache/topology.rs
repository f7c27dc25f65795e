//! Which Redis L2 is, from `REDIS_URL`: one server (`redis://host:port`), a Redis Cluster
//! (`redis+cluster://host:port,host:port,…`), or a primary found through Sentinel
//! (`redis+sentinel://host:port,host:port,…/service-name`). Credentials in the URL apply
//! to every node. Each gives one clonable connection that reconnects by itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, Value};

/// `REDIS_URL` taken apart: the scheme and the node URLs it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Single(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        service: String,
    },
}

fn invalid(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, message))
}

/// `[user:pass@]host:port,host:port[/rest]` as one `redis://` URL per host.
fn node_urls(rest: &str) -> Result<(Vec<String>, &str), RedisError> {
    let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (auth, hosts) = match hosts.rsplit_once('@') {
        Some((auth, hosts)) => (format!("{auth}@"), hosts),
        None => (String::new(), hosts),
    };
    let urls: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| format!("redis://{auth}{h}"))
        .collect();
    if urls.is_empty() {
        return Err(invalid("REDIS_URL names no host"));
    }
    Ok((urls, path))
}

impl Layout {
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            return Ok(Self::Cluster(node_urls(rest)?.0));
        }
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let (sentinels, service) = node_urls(rest)?;
            let service = service.trim_matches('/');
            if service.is_empty() {
                return Err(invalid(
                    "redis+sentinel:// needs the service name as its path, e.g. /mymaster",
                ));
            }
            return Ok(Self::Sentinel {
                sentinels,
                service: service.to_owned(),
            });
        }
        Ok(Self::Single(url.to_owned()))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Single(_) => "single",
            Self::Cluster(_) => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
    }
}

/// Whether the server behind `c` answers (a probe, and what wakes a stale connection).
pub async fn ping(c: &mut Conn) -> Result<(), RedisError> {
    redis::cmd("PING").query_async::<String>(c).await.map(drop)
}

/// A connection to whichever layout L2 has; cheap to clone, like the ones it wraps.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Connections to one server (single or Sentinel's primary): each multiplexes its
/// callers' commands on one socket, and several of them keep one reply that is slow to
/// arrive (a large value, a loaded server) from holding up every caller behind it.
const CONNECTIONS: usize = 4;

enum Source {
    Single {
        pool: Vec<ConnectionManager>,
        next: AtomicUsize,
    },
    Cluster {
        client: ClusterClient,
        nodes: Vec<Client>,
        next_node: AtomicUsize,
    },
    /// Asked again for the primary whenever a call fails: after a failover the old
    /// address is a replica (or gone) and the connection to it must be dropped.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

/// Connects on first use (the origin starts while Redis is down) and keeps the
/// connection until a failure says it may point at the wrong server.
pub struct Connector {
    layout: Layout,
    source: Source,
    current: Mutex<Option<Conn>>,
    timeout: Duration,
}

fn manager_config(timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

impl Connector {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let layout = Layout::parse(url)?;
        let (source, current) = match &layout {
            Layout::Single(url) => {
                let client = Client::open(url.as_str())?;
                let pool = (0..CONNECTIONS)
                    .map(|_| {
                        ConnectionManager::new_lazy_with_config(
                            client.clone(),
                            manager_config(timeout),
                        )
                    })
                    .collect::<Result<_, _>>()?;
                let next = AtomicUsize::new(0);
                (Source::Single { pool, next }, None)
            }
            Layout::Cluster(urls) => {
                let client = ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                let nodes = urls
                    .iter()
                    .map(|u| Client::open(u.as_str()))
                    .collect::<Result<_, _>>()?;
                let next_node = AtomicUsize::new(0);
                (
                    Source::Cluster {
                        client,
                        nodes,
                        next_node,
                    },
                    None,
                )
            }
            Layout::Sentinel { sentinels, service } => {
                let client = SentinelClient::build(
                    sentinels.clone(),
                    service.clone(),
                    None,
                    SentinelServerType::Master,
                )?;
                (Source::Sentinel(tokio::sync::Mutex::new(client)), None)
            }
        };
        Ok(Self {
            layout,
            source,
            current: Mutex::new(current),
            timeout,
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<Conn>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn get(&self) -> Result<Conn, RedisError> {
        if let Source::Single { pool, next } = &self.source {
            let n = next.fetch_add(1, Ordering::Relaxed);
            return Ok(Conn::Single(pool[n % pool.len()].clone()));
        }
        if let Some(conn) = self.current().clone() {
            return Ok(conn);
        }
        let conn = match &self.source {
            Source::Single { .. } => return Err(invalid("no connection")),
            Source::Cluster { client, .. } => Conn::Cluster(client.get_async_connection().await?),
            Source::Sentinel(sentinel) => {
                let primary = sentinel.lock().await.async_get_client().await?;
                Conn::Single(ConnectionManager::new_lazy_with_config(
                    primary,
                    manager_config(self.timeout),
                )?)
            }
        };
        *self.current() = Some(conn.clone());
        Ok(conn)
    }

    /// Sets every pooled connection that lost its server reconnecting, and waits for
    /// them. A connection manager whose reconnect failed during an outage answers that
    /// failure to the next call made on it, and only then reconnects: after Redis returns,
    /// each of the pool would fail one more call, one breaker probe a second apart, and
    /// keep L2 away for seconds. Other layouts connect afresh after a failure (`failed`).
    pub async fn wake(&self) {
        let Source::Single { pool, .. } = &self.source else {
            return;
        };
        let pings = pool.iter().map(|manager| {
            let mut c = Conn::Single(manager.clone());
            // A stale connection fails the first PING at once and reconnects for the second.
            async move {
                if ping(&mut c).await.is_err() {
                    let _ = ping(&mut c).await;
                }
            }
        });
        join_all(pings).await;
    }

    /// A call failed: reconnect from scratch next time, except to a single server, whose
    /// connection manager reconnects to the one address there is by itself.
    pub fn failed(&self) {
        if !matches!(self.source, Source::Single { .. }) {
            *self.current() = None;
        }
    }

    /// A client for a subscription. In a cluster any node delivers every PUBLISH (the
    /// cluster bus forwards them), so each reconnect tries the next node.
    pub async fn pubsub_client(&self) -> Result<Client, RedisError> {
        match (&self.source, &self.layout) {
            (Source::Single { .. }, Layout::Single(url)) => Client::open(url.as_str()),
            (
                Source::Cluster {
                    nodes, next_node, ..
                },
                _,
            ) => {
                let n = next_node.fetch_add(1, Ordering::Relaxed);
                Ok(nodes[n % nodes.len()].clone())
            }
            (Source::Sentinel(sentinel), _) => sentinel.lock().await.async_get_client().await,
            _ => Err(invalid("no subscription client")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_layout() {
        assert_eq!(
            Layout::parse("redis://127.0.0.1:6379/2").expect("single"),
            Layout::Single("redis://127.0.0.1:6379/2".into())
        );
        assert_eq!(
            Layout::parse("redis+cluster://:pw@10.0.0.1:7000, 10.0.0.2:7001/").expect("cluster"),
            Layout::Cluster(vec![
                "redis://:pw@10.0.0.1:7000".into(),
                "redis://:pw@10.0.0.2:7001".into()
            ])
        );
        assert_eq!(
            Layout::parse("redis+sentinel://s1:26379,s2:26379/mymaster").expect("sentinel"),
            Layout::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                service: "mymaster".into()
            }
        );
        for bad in [
            "redis+cluster://",
            "redis+sentinel://s1:26379",
            "redis+sentinel:///x",
        ] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
    }
}
