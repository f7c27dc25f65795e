//! Redis servers of a test's own, on free loopback ports: a plain one the test can stop
//! and restart, a three-node Redis Cluster, and a primary with a replica and a Sentinel.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::helpers::*;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A scratch directory for a server's files, removed with it.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgecache-redis-{}", unique_namespace()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A redis-server of the test's own, on a free port, that the test can stop and restart.
pub struct PrivateRedis {
    pub port: u16,
    pub child: Child,
    dir: PathBuf,
}

impl PrivateRedis {
    /// Starts `redis-server` (with `args` after the common ones) without waiting for it.
    pub fn start(port: u16, args: &[&str]) -> Self {
        let dir = scratch();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        Self { port, child, dir }
    }

    pub async fn on_free_port(args: &[&str]) -> Self {
        let redis = Self::start(free_port(), args);
        redis.wait_ready().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// An origin on seeded workspaces that uses this Redis.
    pub async fn app(&self, db: PgPool) -> TestApp {
        app_on_redis(db, self.url()).await
    }

    pub async fn wait_ready(&self) {
        eventually(Duration::from_secs(5), || async {
            self.query::<String>(&redis::cmd("PING")).await.ok()
        })
        .await;
    }

    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async(&mut conn).await
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An origin on seeded workspaces whose L2 is at `redis_url`.
pub async fn app_on_redis(db: PgPool, redis_url: String) -> TestApp {
    let seeded = seed_workspaces(&db).await;
    let mut config = test_config(&unique_namespace());
    config.redis_url = Some(redis_url);
    TestApp::spawn_with(db, config, seeded.boards).await
}

/// Three masters, no replicas, slots spread by `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<PrivateRedis>,
}

impl Cluster {
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                PrivateRedis::on_free_port(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            eventually(Duration::from_secs(15), || async {
                let info: String = node.query(redis::cmd("CLUSTER").arg("INFO")).await.ok()?;
                info.contains("cluster_state:ok").then_some(())
            })
            .await;
        }
        cluster
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// A primary, its replica and one Sentinel watching them as `mymaster`.
pub struct Sentinel {
    pub primary: PrivateRedis,
    pub replica: PrivateRedis,
    pub sentinel: PrivateRedis,
}

pub const SERVICE: &str = "mymaster";

impl Sentinel {
    pub async fn start() -> Self {
        let primary = PrivateRedis::on_free_port(&[]).await;
        let primary_port = primary.port.to_string();
        let replica =
            PrivateRedis::on_free_port(&["--replicaof", "127.0.0.1", &primary_port]).await;
        eventually(Duration::from_secs(10), || async {
            let info: String = replica
                .query(redis::cmd("INFO").arg("replication"))
                .await
                .ok()?;
            info.contains("master_link_status:up").then_some(())
        })
        .await;
        let port = free_port();
        let dir = scratch();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 5000\n",
                dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel runs");
        let sentinel = PrivateRedis { port, child, dir };
        sentinel.wait_ready().await;
        let s = Self {
            primary,
            replica,
            sentinel,
        };
        // The Sentinel learns of the replica from the primary within a few seconds.
        eventually(Duration::from_secs(20), || async {
            let replicas: Vec<redis::Value> = s
                .sentinel
                .query(redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE))
                .await
                .ok()?;
            (!replicas.is_empty()).then_some(())
        })
        .await;
        s
    }

    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{SERVICE}",
            self.sentinel.port
        )
    }

    /// The port the Sentinel names as the primary now.
    pub async fn primary_port(&self) -> Option<u16> {
        let (_, port): (String, u16) = self
            .sentinel
            .query(
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(SERVICE),
            )
            .await
            .ok()?;
        Some(port)
    }
}
