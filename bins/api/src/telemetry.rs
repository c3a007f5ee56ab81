//! Logs, request ids and HTTP metrics.

use std::{sync::OnceLock, time::Instant};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{
        ConnectionType, Method,
        header::{HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};
use futures::future::{Ready, ready};
use inventory_domain::RequestId;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing_subscriber::{EnvFilter, fmt};

use crate::{config::LogFormat, state::AppState};

/// The request id header, read from clients and echoed back.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global tracing subscriber (once; later calls are no-ops). Filter from
/// `RUST_LOG`, default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// Tracing for the command-line tools (`inventory-api reconcile`): warnings and errors
/// on stderr, so that stdout carries only the report.
pub fn init_cli_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])?
        .install_recorder()?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The `method` label: the standard methods by name, anything else (any token is a valid
/// HTTP method) as `OTHER`, so that made-up methods cannot grow `/metrics`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The `route` label: the matched route pattern, or `unmatched` for every path no route
/// matches (never the raw path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Middleware: request id (echoed in `X-Request-Id`), one span and one log line per
/// request, and the HTTP metrics labelled by method, route pattern and status — each
/// from a bounded set, whatever clients send. Once shutdown has begun, responses carry
/// `Connection: close` so that keep-alive clients reconnect (to another instance).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request_id(&req);
    // Handed to the handlers as data (see `CurrentRequest`), e.g. for audit entries.
    if let Ok(request_id) = RequestId::parse(id.clone()) {
        req.extensions_mut().insert(request_id);
    }
    let method = req.method().to_string();
    let method_label = method_label(req.method());
    let span = tracing::info_span!(
        "http.request",
        request.id = %id,
        http.method = %method,
        http.route = tracing::field::Empty,
        http.status = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    let elapsed = started.elapsed();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let status = response.status().as_u16();
    span.record("http.route", route.as_str());
    span.record("http.status", status);
    let labels = [
        ("method", method_label.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let draining = response
        .request()
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.is_shutting_down());
    if draining {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    span.in_scope(|| {
        tracing::info!(
            http.duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request completed"
        );
    });
    Ok(response)
}

/// The id of the current request, as [`observe`] assigned it (the client's
/// `X-Request-Id` when valid, else a fresh one): what handlers pass down to the
/// ports for the audit trail.
#[derive(Debug, Clone)]
pub struct CurrentRequest(pub RequestId);

impl FromRequest for CurrentRequest {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let assigned = req.extensions().get::<RequestId>().cloned();
        // Without the middleware (unit tests of a handler): an id of its own.
        let id = assigned.unwrap_or_else(|| {
            RequestId::parse(uuid::Uuid::new_v4().to_string())
                .unwrap_or_else(|_| unreachable!("a UUID is a valid request id"))
        });
        ready(Ok(Self(id)))
    }
}
