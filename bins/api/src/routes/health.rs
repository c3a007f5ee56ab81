//! Probes, metrics and the docs redirect.

use actix_web::{HttpResponse, http::header, web};
use inventory_domain::{LockReadiness, Readiness};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, RetryLaterResponse},
    state::AppState,
};

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers. Never checks Redis.
#[utoipa::path(
    get, path = "/health", operation_id = "health", tag = "operations",
    responses((status = 200, description = "Alive", body = Status))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// What `/ready` found: the data store, and where product locks are held. The same
/// object is the `checks` member of the 503 problem.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// The data store (`REDIS_URL`, or this process's memory in development mode).
    pub data_store: DataStoreCheck,
    /// Product locks.
    pub locks: LockCheck,
}

/// The data store's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataStoreCheck {
    /// It answered `PING` in time.
    pub reachable: bool,
}

/// Where product locks are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LockModeDto {
    /// In this process (development mode).
    InProcess,
    /// On the data store (`LOCK_MODE=single`).
    Single,
    /// On a quorum of independent lock nodes (`LOCK_MODE=redlock`).
    Redlock,
}

/// Whether product locks can be taken, and with Redlock, every lock node.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "mode": "redlock",
    "ready": true,
    "quorum": 3,
    "counting": 4,
    "nodes": [
        {"address": "lock-1:6379/0", "reachable": true, "counts_toward_quorum": true,
         "quarantine_left_ms": 0, "fsync_always": true},
        {"address": "lock-2:6379/0", "reachable": false, "counts_toward_quorum": false,
         "quarantine_left_ms": 0, "fsync_always": true},
        {"address": "lock-3:6379/0", "reachable": true, "counts_toward_quorum": true,
         "quarantine_left_ms": 0, "fsync_always": true},
        {"address": "lock-4:6379/0", "reachable": true, "counts_toward_quorum": true,
         "quarantine_left_ms": 0, "fsync_always": true},
        {"address": "lock-5:6379/0", "reachable": true, "counts_toward_quorum": true,
         "quarantine_left_ms": 0, "fsync_always": true}
    ]
}))]
pub struct LockCheck {
    /// `in-process`, `single` or `redlock`.
    pub mode: LockModeDto,
    /// Locks can be taken now (Redlock: at least `quorum` nodes count).
    pub ready: bool,
    /// Redlock: votes an acquisition needs (N/2 + 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u64>,
    /// Redlock: distinct lock nodes whose votes count right now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counting: Option<u64>,
    /// Redlock: every lock node, in `REDLOCK_NODES` order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<LockNodeCheck>,
}

/// One Redlock lock node.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LockNodeCheck {
    /// `host:port/db` (never credentials).
    pub address: String,
    /// It answered `PING` just now.
    pub reachable: bool,
    /// Reachable and not sitting out a restart: its votes count toward the quorum.
    pub counts_toward_quorum: bool,
    /// How much longer (ms) a node that (re)started without being declared
    /// fsync-always sits out of quorums; 0 when it is not in quarantine.
    pub quarantine_left_ms: u64,
    /// Declared fsync-always (`REDLOCK_FSYNC_ALWAYS`): it counts again at once
    /// after a restart.
    pub fsync_always: bool,
}

/// Readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// Always `ready`.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// What was checked.
    pub checks: ReadinessChecks,
}

impl From<&Readiness> for ReadinessChecks {
    fn from(readiness: &Readiness) -> Self {
        let locks_ready = readiness.locks_ready();
        let locks = match &readiness.locks {
            LockReadiness::InProcess => {
                LockCheck::without_nodes(LockModeDto::InProcess, locks_ready)
            }
            LockReadiness::DataStore => LockCheck::without_nodes(LockModeDto::Single, locks_ready),
            LockReadiness::Quorum(quorum) => LockCheck {
                mode: LockModeDto::Redlock,
                ready: locks_ready,
                quorum: Some(count(quorum.quorum)),
                counting: Some(count(quorum.counting)),
                nodes: quorum
                    .nodes
                    .iter()
                    .map(|node| LockNodeCheck {
                        address: node.address.clone(),
                        reachable: node.reachable,
                        counts_toward_quorum: node.counts_toward_quorum,
                        quarantine_left_ms: node.quarantine_left.map_or(0, |left| {
                            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
                        }),
                        fsync_always: node.fsync_always,
                    })
                    .collect(),
            },
        };
        Self {
            data_store: DataStoreCheck {
                reachable: readiness.data_store_reachable(),
            },
            locks,
        }
    }
}

impl LockCheck {
    fn without_nodes(mode: LockModeDto, ready: bool) -> Self {
        Self {
            mode,
            ready,
            quorum: None,
            counting: None,
            nodes: Vec::new(),
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Readiness: the data store answers, product locks can be taken, shutdown has not begun.
///
/// Locks can be taken when they live on the data store (`single`) or in-process, or, with
/// Redlock, when a quorum of lock nodes counts. The body shows every part: the data store
/// and, with Redlock, every lock node (reachable, counting toward the quorum, restart
/// quarantine left).
///
/// Errors: 503 `not-ready` when shutting down (from the moment SIGTERM arrives, for the
/// drain window before the listener closes), when the data store does not answer, or
/// when fewer than a quorum of lock nodes count; the problem's `checks` member then
/// says which.
#[utoipa::path(
    get, path = "/ready", operation_id = "ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::NotReady {
            detail: "the server is shutting down".into(),
            checks: None,
        });
    }
    let readiness = state.repos.health.readiness().await;
    let checks = ReadinessChecks::from(&readiness);
    if readiness.is_ready() {
        return Ok(HttpResponse::Ok().json(ReadyResponse {
            status: "ready",
            checks,
        }));
    }
    let detail = if let Some(error) = &readiness.data_store_error {
        tracing::warn!(%error, "readiness: the data store does not answer");
        "the data store does not answer"
    } else {
        tracing::warn!(
            lock.quorum = checks.locks.quorum,
            lock.counting = checks.locks.counting,
            "readiness: too few lock nodes count toward a quorum"
        );
        "too few lock nodes count toward a quorum"
    };
    Err(ApiError::NotReady {
        detail: detail.into(),
        checks: Some(Box::new(checks)),
    })
}

/// Prometheus metrics: HTTP requests and latency, lock wait/hold/timeouts, purchases by
/// outcome, stock per product.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// `/docs` → `/docs/` (Swagger UI lives under the trailing slash).
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
