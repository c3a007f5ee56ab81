//! What every handler can reach.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix_web::{HttpRequest, web};
use inventory_infra::Repositories;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{
    auth::{JwtKeys, PasswordHasher},
    client_addr::TrustedProxies,
    throttle::{LoginThrottle, RegistrationThrottle},
};

/// Shared application state (behind `web::Data`).
pub struct AppState {
    /// The ports.
    pub repos: Repositories,
    /// Token keys (also registered on their own for the bearer extractors).
    pub jwt: web::Data<JwtKeys>,
    /// bcrypt.
    pub passwords: PasswordHasher,
    /// Login throttle.
    pub login_throttle: LoginThrottle,
    /// Registration throttle.
    pub registration_throttle: RegistrationThrottle,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
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

    /// The client's address (see [`TrustedProxies::client_address`]).
    pub fn client_address(&self, req: &HttpRequest) -> Option<IpAddr> {
        self.trusted_proxies
            .client_address(req.peer_addr().map(|a| a.ip()), req.headers())
    }
}
