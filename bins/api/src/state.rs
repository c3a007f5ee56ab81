//! What every handler can reach.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use inventory_infra::Repositories;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    auth::{JwtKeys, PasswordHasher},
    throttle::LoginThrottle,
};

/// Shared application state (behind `web::Data`).
pub struct AppState {
    /// The ports.
    pub repos: Repositories,
    /// Token keys.
    pub jwt: JwtKeys,
    /// bcrypt.
    pub passwords: PasswordHasher,
    /// Failed-login throttle.
    pub throttle: LoginThrottle,
    /// `MAX_PURCHASE_QUANTITY`.
    pub max_purchase_quantity: u32,
    /// Flipped when shutdown begins: `/ready` answers 503 from then on.
    pub shutting_down: Arc<AtomicBool>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
