//! A small client of the SPEC §2 paths. It depends on status codes and ids only (plus the
//! field names of the spec), so it also drives other implementations of these paths.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Client, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

/// Largest page the tool asks for when it reads purchases back.
const PAGE_SIZE: usize = 100;
/// Idle connections are dropped after this (see `build_http_client`).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on the pages read for one buyer, so a misbehaving server cannot loop us forever.
const MAX_PAGES: usize = 100_000;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{what}: request failed")]
    Transport {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status}: {body}")]
    Status {
        what: &'static str,
        status: StatusCode,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("{what}: unexpected response body: {detail}")]
    Body { what: &'static str, detail: String },
}

impl ApiError {
    /// Whether retrying the same call may succeed (throttled, busy, or connection trouble).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Transport { source, .. } => {
                source.is_connect() || source.is_timeout() || source.is_request()
            }
            Self::Status { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
            Self::Body { .. } => false,
        }
    }

    /// How long the server asked us to wait, if it said.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::Transport { .. } | Self::Body { .. } => None,
        }
    }
}

/// An id as the server spells it (integer or string); compared and printed as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub(crate) struct Id(String);

impl Id {
    /// Reads an id from a JSON value: a string as is, a number in decimal.
    pub(crate) fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(text) if !text.is_empty() => Some(Self(text.clone())),
            Value::Number(number) => Some(Self(number.to_string())),
            _ => None,
        }
    }

    /// The JSON value to send back to the server: a number when the id looks like one.
    pub(crate) fn to_json(&self) -> Value {
        self.0
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(self.0.clone()))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tuning of the HTTP client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientOptions {
    /// Idle connections kept per host: the scenario's concurrency, so none is re-opened.
    pub(crate) pool: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

/// Builds the one HTTP client of a run: HTTP/1.1, no proxy, no TLS, pooled keep-alive.
pub(crate) fn build_http_client(options: ClientOptions) -> Result<Client, reqwest::Error> {
    Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(options.pool.max(1))
        // Under the server's keep-alive (actix: 5 s): never reuse a connection the server
        // may be closing at that moment, which would fail a request that is never retried.
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .connect_timeout(options.connect_timeout)
        .timeout(options.request_timeout)
        .user_agent(concat!("inventory-loadgen/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Result of registering a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    Created,
    AlreadyExists,
}

/// Stock figures of one product as read back from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StockView {
    pub(crate) stock: i64,
}

/// One purchase record as listed by GET /api/purchases/me.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurchaseRecord {
    pub(crate) id: Id,
    pub(crate) product_id: Id,
    pub(crate) quantity: u64,
}

/// A bearer token with its lifetime as announced by the server.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Token {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// The API at one base URL.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: Client,
    base: String,
}

impl Api {
    pub(crate) fn new(http: Client, base_url: &str) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    pub(crate) fn http(&self) -> &Client {
        &self.http
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST /api/auth/register; 409 means the account exists already.
    pub(crate) async fn register(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Registered, ApiError> {
        const WHAT: &str = "register";
        let body = serde_json::json!({ "username": username, "password": password });
        let response = self
            .http
            .post(self.url("/api/auth/register"))
            .json(&body)
            .send()
            .await;
        let response = transport(WHAT, response)?;
        if response.status() == StatusCode::CONFLICT {
            drain(response).await;
            return Ok(Registered::AlreadyExists);
        }
        expect_success(WHAT, response).await?;
        Ok(Registered::Created)
    }

    /// POST /api/auth/login with the OAuth2 password form.
    pub(crate) async fn login(&self, username: &str, password: &str) -> Result<Token, ApiError> {
        const WHAT: &str = "login";
        let form = [
            ("username", username),
            ("password", password),
            ("grant_type", "password"),
        ];
        let response = self
            .http
            .post(self.url("/api/auth/login"))
            .form(&form)
            .send()
            .await;
        let body = expect_success(WHAT, transport(WHAT, response)?).await?;
        parse(WHAT, &body)
    }

    /// GET /api/auth/me: whether the token is still accepted.
    pub(crate) async fn token_is_valid(&self, token: &str) -> Result<bool, ApiError> {
        const WHAT: &str = "auth/me";
        let response = self
            .http
            .get(self.url("/api/auth/me"))
            .bearer_auth(token)
            .send()
            .await;
        let response = transport(WHAT, response)?;
        let status = response.status();
        drain(response).await;
        Ok(status.is_success())
    }

    /// POST /api/products (admin); returns the new product's id.
    pub(crate) async fn create_product(
        &self,
        admin_token: &str,
        name: &str,
        price: u64,
        stock: u64,
    ) -> Result<Id, ApiError> {
        const WHAT: &str = "create product";
        let body = serde_json::json!({
            "name": name,
            "price": price,
            "stock": stock,
            "description": "created by inventory-loadgen",
        });
        let request = self
            .http
            .post(self.url("/api/products"))
            .bearer_auth(admin_token)
            .json(&body);
        let body = expect_success(WHAT, transport(WHAT, request.send().await)?).await?;
        let value: Value = parse(WHAT, &body)?;
        value
            .get("id")
            .and_then(Id::from_json)
            .ok_or_else(|| ApiError::Body {
                what: WHAT,
                detail: "no `id` in the product".to_owned(),
            })
    }

    /// GET /api/products/{id}/stock, falling back to GET /api/products/{id} when the server
    /// has no stock endpoint.
    pub(crate) async fn stock(&self, token: &str, product: &Id) -> Result<StockView, ApiError> {
        const WHAT: &str = "read stock";
        let url = self.url(&format!("/api/products/{product}/stock"));
        let response = transport(WHAT, self.http.get(url).bearer_auth(token).send().await)?;
        let response = if response.status() == StatusCode::NOT_FOUND {
            drain(response).await;
            let url = self.url(&format!("/api/products/{product}"));
            transport(WHAT, self.http.get(url).bearer_auth(token).send().await)?
        } else {
            response
        };
        let body = expect_success(WHAT, response).await?;
        let value: Value = parse(WHAT, &body)?;
        let stock = value
            .get("stock")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::Body {
                what: WHAT,
                detail: "no integer `stock`".to_owned(),
            })?;
        Ok(StockView { stock })
    }

    /// Every purchase of the token's owner (GET /api/purchases/me, all pages).
    pub(crate) async fn my_purchases(&self, token: &str) -> Result<Vec<PurchaseRecord>, ApiError> {
        // The offset advances by what came back: a server may cap `limit` below ours.
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let records = self.purchases_page(token, all.len()).await?;
            if records.is_empty() {
                break;
            }
            all.extend(records);
        }
        Ok(all)
    }

    async fn purchases_page(
        &self,
        token: &str,
        offset: usize,
    ) -> Result<Vec<PurchaseRecord>, ApiError> {
        const WHAT: &str = "list purchases";
        let url = self.url(&format!(
            "/api/purchases/me?limit={PAGE_SIZE}&offset={offset}"
        ));
        let response = transport(WHAT, self.http.get(url).bearer_auth(token).send().await)?;
        let body = expect_success(WHAT, response).await?;
        let value: Value = parse(WHAT, &body)?;
        list_items(&value)
            .ok_or_else(|| ApiError::Body {
                what: WHAT,
                detail: "not a list of purchases".to_owned(),
            })?
            .iter()
            .map(|item| {
                purchase_record(item).ok_or_else(|| ApiError::Body {
                    what: WHAT,
                    detail: format!("a purchase without id/product_id: {item}"),
                })
            })
            .collect()
    }

    /// GET /health; an error unless 2xx.
    pub(crate) async fn health(&self) -> Result<(), ApiError> {
        const WHAT: &str = "health";
        let response = transport(WHAT, self.http.get(self.url("/health")).send().await)?;
        expect_success(WHAT, response).await.map(drop)
    }

    /// A purchase request built ahead of time, so that firing it costs only the send.
    pub(crate) fn purchase_request(
        &self,
        token: &str,
        product: &Id,
        quantity: u32,
        idempotency_key: &str,
    ) -> Result<Request, reqwest::Error> {
        let body = serde_json::json!({ "product_id": product.to_json(), "quantity": quantity });
        self.http
            .post(self.url("/api/purchases"))
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .json(&body)
            .build()
    }

    /// An order request (`cart`) built ahead of time: `items` as `(product, quantity)`.
    pub(crate) fn order_request(
        &self,
        token: &str,
        items: &[(&Id, u32)],
        idempotency_key: &str,
    ) -> Result<Request, reqwest::Error> {
        let items: Vec<Value> = items
            .iter()
            .map(|(product, quantity)| {
                serde_json::json!({ "product_id": product.to_json(), "quantity": quantity })
            })
            .collect();
        self.http
            .post(self.url("/api/orders"))
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .json(&serde_json::json!({ "items": items }))
            .build()
    }

    /// Every order line of the token's owner (GET /api/orders/me, all pages), one
    /// record per line: the order's id, the product and the units.
    pub(crate) async fn my_order_lines(
        &self,
        token: &str,
    ) -> Result<Vec<PurchaseRecord>, ApiError> {
        const WHAT: &str = "list orders";
        let mut lines = Vec::new();
        let mut offset = 0;
        for _ in 0..MAX_PAGES {
            let url = self.url(&format!("/api/orders/me?limit={PAGE_SIZE}&offset={offset}"));
            let response = transport(WHAT, self.http.get(url).bearer_auth(token).send().await)?;
            let body = expect_success(WHAT, response).await?;
            let value: Value = parse(WHAT, &body)?;
            let orders = list_items(&value).ok_or_else(|| ApiError::Body {
                what: WHAT,
                detail: "not a list of orders".to_owned(),
            })?;
            if orders.is_empty() {
                break;
            }
            offset += orders.len();
            for order in orders {
                lines.extend(order_lines(order).ok_or_else(|| ApiError::Body {
                    what: WHAT,
                    detail: format!("an order without id/items: {order}"),
                })?);
            }
        }
        Ok(lines)
    }

    /// GET /api/admin/reconcile: `Ok(None)` when the server has no such endpoint.
    pub(crate) async fn reconcile(&self, admin_token: &str) -> Result<Option<Value>, ApiError> {
        const WHAT: &str = "reconcile";
        let url = self.url("/api/admin/reconcile");
        let response = transport(
            WHAT,
            self.http.get(url).bearer_auth(admin_token).send().await,
        )?;
        if response.status() == StatusCode::NOT_FOUND {
            drain(response).await;
            return Ok(None);
        }
        let body = expect_success(WHAT, response).await?;
        parse(WHAT, &body).map(Some)
    }

    /// GET /api/products/{id}/stock, built ahead of time (the read side of `sustained`).
    pub(crate) fn stock_request(
        &self,
        token: &str,
        product: &Id,
    ) -> Result<Request, reqwest::Error> {
        self.http
            .get(self.url(&format!("/api/products/{product}/stock")))
            .bearer_auth(token)
            .build()
    }

    pub(crate) fn health_request(&self) -> Result<Request, reqwest::Error> {
        self.http.get(self.url("/health")).build()
    }
}

/// The items of a list response: a bare array, or an object wrapping one.
fn list_items(value: &Value) -> Option<&Vec<Value>> {
    if let Some(items) = value.as_array() {
        return Some(items);
    }
    ["items", "data", "purchases", "results"]
        .iter()
        .find_map(|key| value.get(*key).and_then(Value::as_array))
}

fn purchase_record(item: &Value) -> Option<PurchaseRecord> {
    Some(PurchaseRecord {
        id: item.get("id").and_then(Id::from_json)?,
        product_id: item.get("product_id").and_then(Id::from_json)?,
        quantity: item.get("quantity").and_then(Value::as_u64).unwrap_or(1),
    })
}

/// The lines of one listed order, each as a record keyed by the order's id.
fn order_lines(order: &Value) -> Option<Vec<PurchaseRecord>> {
    let id = order.get("id").and_then(Id::from_json)?;
    order
        .get("items")?
        .as_array()?
        .iter()
        .map(|line| {
            Some(PurchaseRecord {
                id: id.clone(),
                product_id: line.get("product_id").and_then(Id::from_json)?,
                quantity: line.get("quantity").and_then(Value::as_u64)?,
            })
        })
        .collect()
}

/// Seconds of a `Retry-After` header (the delta-seconds form).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

fn transport(what: &'static str, result: reqwest::Result<Response>) -> Result<Response, ApiError> {
    result.map_err(|source| ApiError::Transport { what, source })
}

/// The body of a 2xx response, or the error carrying status, body and Retry-After.
async fn expect_success(what: &'static str, response: Response) -> Result<Vec<u8>, ApiError> {
    let status = response.status();
    let retry = retry_after(response.headers());
    let body = response
        .bytes()
        .await
        .map_err(|source| ApiError::Transport { what, source })?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let body = String::from_utf8_lossy(&body).chars().take(300).collect();
    Err(ApiError::Status {
        what,
        status,
        body,
        retry_after: retry,
    })
}

/// Reads a body to its end so that the connection goes back to the pool.
pub(crate) async fn drain(response: Response) {
    // The body is of no interest; a failure to read it only costs the connection.
    let _ignored = response.bytes().await;
}

fn parse<T: serde::de::DeserializeOwned>(what: &'static str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::Body {
        what,
        detail: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_keep_their_json_kind() {
        let numeric = Id::from_json(&json!(42)).unwrap();
        assert_eq!(numeric.to_string(), "42");
        assert_eq!(numeric.to_json(), json!(42));
        let text = Id::from_json(&json!("0192-abc")).unwrap();
        assert_eq!(text.to_json(), json!("0192-abc"));
        assert_eq!(Id::from_json(&json!(null)), None);
        assert_eq!(Id::from_json(&json!("")), None);
    }

    #[test]
    fn lists_may_be_bare_or_wrapped() {
        let bare = json!([{ "id": 1, "product_id": 7, "quantity": 2 }]);
        let wrapped = json!({ "items": [{ "id": "a", "product_id": "p" }], "total": 1 });
        let records: Vec<_> = list_items(&bare)
            .unwrap()
            .iter()
            .filter_map(purchase_record)
            .collect();
        assert_eq!(records[0].quantity, 2);
        assert_eq!(records[0].product_id.to_string(), "7");
        let records: Vec<_> = list_items(&wrapped)
            .unwrap()
            .iter()
            .filter_map(purchase_record)
            .collect();
        assert_eq!(records[0].quantity, 1);
        assert!(list_items(&json!({ "detail": "x" })).is_none());
    }

    #[test]
    fn order_lines_are_records_keyed_by_the_order() {
        let order = json!({"id": 7_000_000_001_u64, "items": [
            {"product_id": 3, "quantity": 2}, {"product_id": 5, "quantity": 1}]});
        let lines = order_lines(&order).unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.id.to_string() == "7000000001"));
        assert_eq!(
            (lines[0].product_id.to_string(), lines[0].quantity),
            ("3".into(), 2)
        );
        assert!(order_lines(&json!({"id": 1})).is_none());
    }

    #[test]
    fn retry_after_reads_delta_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
    }
}
