//! A real Redis Cluster of masters only, created with `redis-cli --cluster create`.

use std::fs::File;
use std::io::{Read, Seek};
use std::ops::{Index, IndexMut};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::port;
use crate::resp::Reply;
use crate::server::RedisServer;

/// Environment variable naming the `redis-cli` binary (default: `redis-cli` from `PATH`).
pub const REDIS_CLI_BIN_ENV: &str = "REDIS_CLI_BIN";

/// How long cluster creation plus convergence to `cluster_state:ok` may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A Redis Cluster of `masters` nodes (no replicas) sharing the 16384 slots; every node
/// is killed on drop.
///
/// Each node is a [`RedisServer`] started with `--cluster-enabled yes` on a port `P` whose
/// bus port `P + 10000` was free too; `nodes.conf` lives in the node's directory, so a
/// [`restart`](RedisServer::restart)ed node rejoins the cluster.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes, joins them into a cluster and waits until every node reports
    /// `cluster_state:ok` and knows all the others.
    ///
    /// # Panics
    /// When `masters < 3` (Redis Cluster's minimum), a node fails to start, `redis-cli`
    /// fails, or the cluster does not converge within 30 s; the message includes the
    /// `redis-cli` output or the nodes' `CLUSTER INFO`.
    pub fn start(masters: usize) -> Self {
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, got {masters}"
        );
        let nodes = (0..masters)
            .map(|_| {
                RedisServer::builder()
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                    .start_picking_ports(port::free_cluster_port)
            })
            .collect();
        let cluster = Self { nodes };
        cluster.create();
        cluster.wait_until_ok();
        cluster
    }

    /// The `redis://127.0.0.1:<port>/` URL of every node, in index order (seed nodes).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The `127.0.0.1:<port>` address of every node, in index order.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes, in index order.
    pub fn iter(&self) -> std::slice::Iter<'_, RedisServer> {
        self.nodes.iter()
    }

    /// The nodes, mutably (to pause, kill or restart them).
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, RedisServer> {
        self.nodes.iter_mut()
    }

    fn create(&self) {
        let binary = std::env::var_os(REDIS_CLI_BIN_ENV).unwrap_or_else(|| "redis-cli".into());
        let mut output = tempfile::tempfile()
            .unwrap_or_else(|err| panic!("cannot create a temp file for redis-cli output: {err}"));
        let stderr = output
            .try_clone()
            .unwrap_or_else(|err| panic!("cannot duplicate the redis-cli output file: {err}"));
        let stdout = output
            .try_clone()
            .unwrap_or_else(|err| panic!("cannot duplicate the redis-cli output file: {err}"));
        let mut child = Command::new(&binary)
            .arg("--cluster")
            .arg("create")
            .args(self.addrs())
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot run {binary:?} (set {REDIS_CLI_BIN_ENV} to another binary): {err}")
            });

        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("did not finish within {CLUSTER_TIMEOUT:?}"));
                }
                Ok(None) => thread::sleep(POLL_INTERVAL),
                Err(err) => break Err(format!("could not be waited for: {err}")),
            }
        };
        let status = match status {
            Ok(status) if status.success() => return,
            Ok(status) => format!("exited with {status}"),
            Err(why) => why,
        };
        panic!(
            "`redis-cli --cluster create {}` {status}:\n{}",
            self.addrs().join(" "),
            read_all(&mut output)
        );
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let expected_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let infos: Vec<String> = self.nodes.iter().map(cluster_info).collect();
            let converged = infos
                .iter()
                .all(|info| info.contains("cluster_state:ok") && info.contains(&expected_nodes));
            if converged {
                return;
            }
            if Instant::now() >= deadline {
                let report: Vec<String> = self
                    .nodes
                    .iter()
                    .zip(&infos)
                    .map(|(node, info)| format!("--- {} ---\n{}", node.addr(), info.trim_end()))
                    .collect();
                panic!(
                    "Redis Cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}:\n{}",
                    report.join("\n")
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

fn cluster_info(node: &RedisServer) -> String {
    match node.command(&["CLUSTER", "INFO"], PROBE_TIMEOUT) {
        Ok(reply @ (Reply::Status(_) | Reply::Bulk(_))) => reply.as_text().unwrap_or_default(),
        Ok(other) => format!("unexpected reply {other:?}"),
        Err(err) => format!("error: {err}"),
    }
}

fn read_all(file: &mut File) -> String {
    let mut text = String::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_string(&mut text);
    }
    text
}

impl Index<usize> for RedisCluster {
    type Output = RedisServer;

    fn index(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }
}

impl IndexMut<usize> for RedisCluster {
    fn index_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_masters_serve_every_slot() {
        let cluster = RedisCluster::start(3);
        assert_eq!(cluster.urls().len(), 3);
        let info = cluster_info(&cluster[0]);
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");

        // Keys with one hash tag share a slot, so one node owns both; others redirect.
        let replies: Vec<Reply> = cluster
            .iter()
            .map(|node| {
                node.command(&["SET", "{product:42}:stock", "100"], PROBE_TIMEOUT)
                    .unwrap()
            })
            .collect();
        let owners = replies
            .iter()
            .filter(|r| **r == Reply::Status("OK".into()))
            .count();
        assert_eq!(owners, 1, "{replies:?}");
        assert!(
            replies
                .iter()
                .any(|r| matches!(r, Reply::Error(e) if e.starts_with("MOVED"))),
            "{replies:?}"
        );
    }
}
