//! The arithmetic of Redlock: quorum size, remaining validity, per-node
//! timeout and the tally of one round of votes. Pure functions, no I/O.

use std::time::Duration;

/// Votes needed out of `nodes` independent masters: a strict majority, so two
/// quorums always share at least one node.
pub(crate) fn quorum(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// Lease left after `elapsed`: `ttl − elapsed − drift`, or `None` once nothing
/// is left. `elapsed` must be measured on a monotonic clock started *before*
/// the first request of the acquisition (or extension) left.
pub(crate) fn validity_left(ttl: Duration, drift: Duration, elapsed: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed)?
        .checked_sub(drift)
        .filter(|left| !left.is_zero())
}

/// Shortest automatic per-node timeout: below this, scheduling noise on a busy
/// host would make healthy nodes miss votes.
pub(crate) const AUTO_NODE_TIMEOUT_MIN: Duration = Duration::from_millis(10);
/// Longest automatic per-node timeout: a dead or partitioned node costs an
/// attempt at most this much, whatever the TTL.
pub(crate) const AUTO_NODE_TIMEOUT_MAX: Duration = Duration::from_millis(100);

/// How long one node may take to answer one request of an acquisition with
/// this `ttl`: the configured value, else TTL/100 within
/// [[`AUTO_NODE_TIMEOUT_MIN`], [`AUTO_NODE_TIMEOUT_MAX`]]. A node that does
/// not answer in time loses its vote; the others decide.
pub(crate) fn node_timeout(ttl: Duration, configured: Option<Duration>) -> Duration {
    configured.unwrap_or_else(|| (ttl / 100).clamp(AUTO_NODE_TIMEOUT_MIN, AUTO_NODE_TIMEOUT_MAX))
}

/// One node's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Done: the key was set (acquire), renewed (extend) or deleted (release).
    Yes,
    /// Refused: the key holds another token (or, for extend/release, is gone).
    /// `pttl` is the other holder's remaining lease, when known.
    No { pttl: Option<Duration> },
    /// No usable answer: unreachable, timed out, or an error reply. Whether the
    /// request took effect is unknown.
    Failed,
}

/// Counts one round of answers. A node's `Yes` and `No` count toward the
/// quorum only when the node is *eligible* (reachable on a connection whose
/// server was identified, and not in its post-restart quarantine); eligible
/// nodes are identified by their server `run_id`, so one server listed twice
/// (two addresses, two databases) is counted once.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    nodes: usize,
    quorum: usize,
    yes: Vec<String>,
    answered: Vec<String>,
    no: usize,
    failed: usize,
    shortest_pttl: Option<Duration>,
}

/// What a finished round amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A quorum of eligible nodes said yes.
    Quorum,
    /// Enough eligible nodes answered to decide, and some refused: the key is
    /// held (or being contended) elsewhere. `pttl`: the shortest lease left
    /// among the refusals.
    Contended { pttl: Option<Duration> },
    /// Fewer than a quorum of eligible nodes answered at all: nobody can take
    /// the key now, whether it is held or not.
    NoQuorum {
        /// Eligible nodes that answered.
        answered: usize,
    },
}

impl Tally {
    pub(crate) fn new(nodes: usize) -> Self {
        Self {
            nodes,
            quorum: quorum(nodes),
            yes: Vec::new(),
            answered: Vec::new(),
            no: 0,
            failed: 0,
            shortest_pttl: None,
        }
    }

    /// Records one node's answer. `voter` is the node's server `run_id` when
    /// the node is eligible, `None` when its answer must not count.
    pub(crate) fn record(&mut self, voter: Option<&str>, answer: Answer) {
        match answer {
            Answer::Yes => {
                if let Some(id) = voter {
                    insert_distinct(&mut self.yes, id);
                }
            }
            Answer::No { pttl } => {
                self.no += 1;
                if let Some(pttl) = pttl {
                    self.shortest_pttl = Some(self.shortest_pttl.map_or(pttl, |p| p.min(pttl)));
                }
            }
            Answer::Failed => self.failed += 1,
        }
        if let (Some(id), Answer::Yes | Answer::No { .. }) = (voter, answer) {
            insert_distinct(&mut self.answered, id);
        }
    }

    /// Eligible, distinct yes votes.
    pub(crate) fn granted(&self) -> usize {
        self.yes.len()
    }

    /// Eligible, distinct nodes that answered yes or no.
    pub(crate) fn answered(&self) -> usize {
        self.answered.len()
    }

    /// Nodes whose answer was unusable so far.
    pub(crate) fn failed(&self) -> usize {
        self.failed
    }

    /// Votes needed.
    pub(crate) fn quorum(&self) -> usize {
        self.quorum
    }

    /// Nodes configured.
    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    pub(crate) fn has_quorum(&self) -> bool {
        self.granted() >= self.quorum
    }

    /// Whether a round can stop waiting for the `outstanding` nodes: a quorum
    /// is won, or it is lost to contention whatever they say. (A round
    /// without a quorum of usable nodes waits for every answer, so that its
    /// error says how many nodes answered; a stopped node costs it at most
    /// the node timeout.)
    pub(crate) fn settled(&self, outstanding: usize) -> bool {
        if outstanding == 0 || self.has_quorum() {
            return true;
        }
        let winnable = self.granted() + outstanding >= self.quorum;
        let contended = self.no > 0 && self.answered() >= self.quorum;
        !winnable && contended
    }

    /// So many nodes definitely lack our token (any `No`, eligible or not: a
    /// missing key is missing) that a quorum can never hold it again: a lease
    /// that an extension finds in this state is lost.
    pub(crate) fn is_lost(&self) -> bool {
        self.no > self.nodes - self.quorum
    }

    /// The verdict once every node has answered (or timed out).
    pub(crate) fn verdict(&self) -> Verdict {
        if self.has_quorum() {
            Verdict::Quorum
        } else if self.no > 0 && self.answered() >= self.quorum {
            Verdict::Contended {
                pttl: self.shortest_pttl,
            }
        } else {
            Verdict::NoQuorum {
                answered: self.answered(),
            }
        }
    }
}

fn insert_distinct(ids: &mut Vec<String>, id: &str) {
    if !ids.iter().any(|known| known == id) {
        ids.push(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn quorum_is_a_strict_majority() {
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
        assert_eq!(quorum(6), 4);
        assert_eq!(quorum(7), 4);
        // Two quorums always overlap.
        for n in 3..20 {
            assert!(2 * quorum(n) > n, "n = {n}");
        }
    }

    #[test]
    fn validity_is_ttl_minus_elapsed_minus_drift() {
        let ttl = 10_000 * MS;
        let drift = 102 * MS;
        assert_eq!(validity_left(ttl, drift, Duration::ZERO), Some(9_898 * MS));
        assert_eq!(validity_left(ttl, drift, 898 * MS), Some(9_000 * MS));
        assert_eq!(validity_left(ttl, drift, 9_897 * MS), Some(MS));
        assert_eq!(validity_left(ttl, drift, 9_898 * MS), None, "nothing left");
        assert_eq!(validity_left(ttl, drift, 9_999 * MS), None, "no underflow");
        assert_eq!(validity_left(ttl, drift, 60_000 * MS), None, "no underflow");
    }

    #[test]
    fn node_timeout_is_a_hundredth_of_the_ttl_within_bounds() {
        assert_eq!(node_timeout(5_000 * MS, None), 50 * MS);
        assert_eq!(node_timeout(100 * MS, None), AUTO_NODE_TIMEOUT_MIN);
        assert_eq!(node_timeout(60_000 * MS, None), AUTO_NODE_TIMEOUT_MAX);
        assert_eq!(node_timeout(60_000 * MS, Some(7 * MS)), 7 * MS);
    }

    fn tally(answers: &[(Option<&str>, Answer)]) -> Tally {
        let mut tally = Tally::new(5);
        for (voter, answer) in answers {
            tally.record(*voter, *answer);
        }
        tally
    }

    const NO: Answer = Answer::No { pttl: None };

    #[test]
    fn three_eligible_yes_of_five_is_a_quorum() {
        let t = tally(&[
            (Some("a"), Answer::Yes),
            (Some("b"), Answer::Yes),
            (None, Answer::Failed),
            (None, Answer::Failed),
            (Some("c"), Answer::Yes),
        ]);
        assert!(t.has_quorum());
        assert_eq!(t.verdict(), Verdict::Quorum);
    }

    #[test]
    fn one_server_listed_twice_votes_once() {
        let t = tally(&[
            (Some("a"), Answer::Yes),
            (Some("a"), Answer::Yes),
            (Some("b"), Answer::Yes),
            (None, Answer::Failed),
            (None, Answer::Failed),
        ]);
        assert_eq!(t.granted(), 2);
        assert_eq!(t.verdict(), Verdict::NoQuorum { answered: 2 });
    }

    #[test]
    fn quarantined_yes_votes_do_not_count() {
        // d and e restarted recently: they said yes (their memory is empty) but
        // must not make up a quorum with c.
        let t = tally(&[
            (Some("a"), NO),
            (Some("b"), NO),
            (Some("c"), Answer::Yes),
            (None, Answer::Yes),
            (None, Answer::Yes),
        ]);
        assert_eq!(t.granted(), 1);
        assert_eq!(t.verdict(), Verdict::Contended { pttl: None });
    }

    #[test]
    fn refusals_from_enough_nodes_mean_contention() {
        let t = tally(&[
            (
                Some("a"),
                Answer::No {
                    pttl: Some(900 * MS),
                },
            ),
            (
                Some("b"),
                Answer::No {
                    pttl: Some(400 * MS),
                },
            ),
            (Some("c"), Answer::Yes),
            (None, Answer::Failed),
            (None, Answer::Failed),
        ]);
        assert_eq!(
            t.verdict(),
            Verdict::Contended {
                pttl: Some(400 * MS)
            }
        );
    }

    #[test]
    fn too_few_answers_mean_no_quorum_even_with_refusals() {
        // Three nodes down: whatever the other two say, no quorum is possible.
        let t = tally(&[
            (Some("a"), NO),
            (Some("b"), Answer::Yes),
            (None, Answer::Failed),
            (None, Answer::Failed),
            (None, Answer::Failed),
        ]);
        assert_eq!(t.verdict(), Verdict::NoQuorum { answered: 2 });
        assert_eq!(t.failed(), 3);
    }

    #[test]
    fn a_round_stops_waiting_once_won_or_lost_to_contention() {
        // Two yes, two silent: still winnable.
        let t = tally(&[(Some("a"), Answer::Yes), (Some("b"), Answer::Yes)]);
        assert!(!t.settled(3));
        let won = tally(&[
            (Some("a"), Answer::Yes),
            (Some("b"), Answer::Yes),
            (Some("c"), Answer::Yes),
        ]);
        assert!(won.settled(2));
        // Three no: lost to contention whatever the last two say.
        let t = tally(&[(Some("a"), NO), (Some("b"), NO), (Some("c"), NO)]);
        assert!(t.settled(2));
        // Three dead: no quorum, but the error should say how many of the
        // other two answered, so the round waits for them.
        let t = tally(&[
            (None, Answer::Failed),
            (None, Answer::Failed),
            (None, Answer::Failed),
        ]);
        assert!(!t.settled(2));
        assert!(t.settled(0));
    }

    #[test]
    fn a_lease_is_lost_once_a_quorum_can_no_longer_hold_it() {
        let two_gone = tally(&[(Some("a"), NO), (None, NO)]);
        assert!(!two_gone.is_lost(), "3 of 5 may still hold it");
        let three_gone = tally(&[(Some("a"), NO), (None, NO), (None, NO)]);
        assert!(three_gone.is_lost());
        let failures = tally(&[
            (None, Answer::Failed),
            (None, Answer::Failed),
            (None, Answer::Failed),
        ]);
        assert!(!failures.is_lost(), "failures are not refusals");
    }
}
