//! `--compare-health`: the HTTP ceiling of this machine, GET /health with the same client
//! and concurrency as the scenario, in a closed loop for a fixed time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::client::Api;
use crate::scenarios::{Status, micros, send_plain};
use crate::stats::{LatencyMs, latency, per_second};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct HealthRun {
    pub(crate) concurrency: usize,
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    pub(crate) requests_per_sec: f64,
    pub(crate) latency_ms: LatencyMs,
}

/// Runs `concurrency` clients calling GET /health for `duration`.
pub(crate) async fn measure(
    api: &Api,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<HealthRun> {
    let clients = concurrency.max(1);
    let ready = Arc::new(Barrier::new(clients));
    let mut tasks = JoinSet::new();
    for _ in 0..clients {
        let (api, ready) = (api.clone(), Arc::clone(&ready));
        tasks.spawn(async move {
            ready.wait().await;
            loop_health(&api, Instant::now() + duration).await
        });
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (part, part_failed) = joined.context("a health client panicked")?;
        latencies.extend(part);
        failed += part_failed;
    }
    let elapsed = micros(Instant::now(), started);
    let requests = latencies.len() as u64;
    Ok(HealthRun {
        concurrency: clients,
        requests,
        failed,
        requests_per_sec: per_second(requests - failed, elapsed),
        latency_ms: latency(latencies),
    })
}

/// Latencies (µs) of the requests of one client, and how many failed.
async fn loop_health(api: &Api, deadline: Instant) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    while Instant::now() < deadline {
        let Ok(request) = api.health_request() else {
            break;
        };
        let sent = Instant::now();
        let status = send_plain(api.http(), request).await;
        latencies.push(micros(Instant::now(), sent));
        if !matches!(status, Status::Code(200..=299)) {
            failed += 1;
        }
    }
    (latencies, failed)
}
