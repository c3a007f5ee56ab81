//! Several independent redis-server processes, e.g. the N masters of Redlock.

use std::ops::{Index, IndexMut};
use std::thread;

use crate::server::RedisServer;

/// `n` independent, unconnected redis-servers; all are killed on drop.
///
/// Index to reach one node (`nodes[2].pause()`), e.g. to take a minority of Redlock
/// nodes down.
#[derive(Debug)]
pub struct RedisNodes {
    servers: Vec<RedisServer>,
}

impl RedisNodes {
    /// Starts `n` servers with the default arguments. Panics if one fails to start.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, &[])
    }

    /// Starts `n` servers, each with `extra_args` (see [`RedisServer::start_with`]).
    /// They start in parallel; this returns once every one answers `PING`.
    pub fn start_with(n: usize, extra_args: &[&str]) -> Self {
        let servers = thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| RedisServer::start_with(extra_args)))
                .collect();
            starting
                .into_iter()
                // A start that panicked panics here too, with its message (and the log).
                .map(|start| {
                    start
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        Self { servers }
    }

    /// The `redis://127.0.0.1:<port>/` URL of every node, in index order.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::url).collect()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// The nodes, in index order.
    pub fn iter(&self) -> std::slice::Iter<'_, RedisServer> {
        self.servers.iter()
    }

    /// The nodes, mutably (to pause, kill or restart several).
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, RedisServer> {
        self.servers.iter_mut()
    }
}

impl Index<usize> for RedisNodes {
    type Output = RedisServer;

    fn index(&self, index: usize) -> &RedisServer {
        &self.servers[index]
    }
}

impl IndexMut<usize> for RedisNodes {
    fn index_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.servers[index]
    }
}

impl<'a> IntoIterator for &'a RedisNodes {
    type Item = &'a RedisServer;
    type IntoIter = std::slice::Iter<'a, RedisServer>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut RedisNodes {
    type Item = &'a mut RedisServer;
    type IntoIter = std::slice::IterMut<'a, RedisServer>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn nodes_are_independent() {
        let mut nodes = RedisNodes::start(3);
        assert_eq!(nodes.len(), 3);
        let urls = nodes.urls();
        assert_eq!(urls.len(), 3);
        assert!(urls.iter().all(|url| url.starts_with("redis://127.0.0.1:")));

        nodes[1].kill();
        assert!(nodes[0].ping(Duration::from_millis(300)).is_ok());
        assert!(nodes[1].ping(Duration::from_millis(300)).is_err());
        assert!(nodes[2].ping(Duration::from_millis(300)).is_ok());
    }
}
