//! What the scenarios share: the record of one request, how a purchase is sent and
//! classified, and the connection warm-up.
//!
//! Classification relies on status codes and ids only: 2xx = accepted, 409 = refused as
//! sold out, anything else (or no answer) = other.

pub(crate) mod black_friday;
pub(crate) mod cart;
pub(crate) mod multi_product;
pub(crate) mod sustained;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::{Client, Request, Response, StatusCode};
use serde_json::Value;

use crate::cli::QuantityRange;
use crate::client::{Api, Id, drain, retry_after};

/// Longest Retry-After honoured between two attempts of a purchase.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(2);

/// How a request ended on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Status {
    Code(u16),
    Timeout,
    Transport,
}

impl Status {
    /// Key of `status_counts` in the report.
    pub(crate) fn key(self) -> String {
        match self {
            Self::Code(code) => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport => "transport_error".to_owned(),
        }
    }
}

/// One request of a run, as measured by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Send order over the whole run (0-based), taken immediately before the send.
    pub(crate) seq: u64,
    /// Index of the product in the run's product list.
    pub(crate) product: usize,
    /// Units asked for (0 for stock reads).
    pub(crate) quantity: u32,
    /// Microseconds from the run's start to the send and to the full response.
    pub(crate) sent_us: u64,
    pub(crate) done_us: u64,
    pub(crate) status: Status,
    /// Id of the purchase when the server accepted it and said which.
    pub(crate) purchase_id: Option<Id>,
}

impl Sample {
    pub(crate) fn is_accepted(&self) -> bool {
        matches!(self.status, Status::Code(code) if (200..300).contains(&code))
    }

    pub(crate) fn is_sold_out(&self) -> bool {
        self.status == Status::Code(StatusCode::CONFLICT.as_u16())
    }

    pub(crate) fn latency_us(&self) -> u64 {
        self.done_us.saturating_sub(self.sent_us)
    }
}

/// A purchase built ahead of time.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) product: usize,
    pub(crate) quantity: u32,
    pub(crate) request: Request,
}

/// Draws quantities from a range with a seeded generator (reproducible runs).
#[derive(Debug)]
pub(crate) struct Quantities {
    range: QuantityRange,
    rng: StdRng,
}

impl Quantities {
    pub(crate) fn new(range: QuantityRange, seed: u64) -> Self {
        Self {
            range,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn next(&mut self) -> u32 {
        if self.range.is_fixed() {
            self.range.min()
        } else {
            self.rng.random_range(self.range.min()..=self.range.max())
        }
    }
}

/// A fresh Idempotency-Key: a retry with the same key can never buy twice.
pub(crate) fn idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// What `send_purchase` saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) seq: u64,
    pub(crate) sent_us: u64,
    pub(crate) done_us: u64,
    pub(crate) status: Status,
    pub(crate) purchase_id: Option<Id>,
}

impl Sent {
    pub(crate) fn into_sample(self, product: usize, quantity: u32) -> Sample {
        Sample {
            seq: self.seq,
            product,
            quantity,
            sent_us: self.sent_us,
            done_us: self.done_us,
            status: self.status,
            purchase_id: self.purchase_id,
        }
    }
}

/// Sends `request`, retrying on 503 up to `retries` times with the same request (same
/// Idempotency-Key). The send order is taken immediately before the first send.
pub(crate) async fn send_purchase(
    http: &Client,
    mut request: Request,
    sequence: &AtomicU64,
    t0: Instant,
    retries: u32,
) -> Sent {
    let seq = sequence.fetch_add(1, Ordering::Relaxed);
    let sent = Instant::now();
    let mut attempt = 0;
    let answer = loop {
        let spare = if attempt < retries {
            request.try_clone()
        } else {
            None
        };
        let answer = http.execute(request).await;
        let busy = matches!(&answer, Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE);
        match spare.filter(|_| busy) {
            Some(spare) => {
                let pause = answer.as_ref().ok().and_then(|r| retry_after(r.headers()));
                if let Ok(response) = answer {
                    drain(response).await;
                }
                tokio::time::sleep(
                    pause
                        .unwrap_or(Duration::from_millis(50))
                        .min(MAX_RETRY_WAIT),
                )
                .await;
                request = spare;
                attempt += 1;
            }
            None => break answer,
        }
    };
    let (status, purchase_id) = classify(answer).await;
    Sent {
        seq,
        sent_us: micros(sent, t0),
        done_us: micros(Instant::now(), t0),
        status,
        purchase_id,
    }
}

/// Sends a request whose body is of no interest (stock reads, health).
pub(crate) async fn send_plain(http: &Client, request: Request) -> Status {
    match http.execute(request).await {
        Ok(response) => {
            let status = Status::Code(response.status().as_u16());
            drain(response).await;
            status
        }
        Err(error) => transport_status(&error),
    }
}

/// Status and (for 2xx) purchase id of an answer; reads the body to its end.
async fn classify(answer: reqwest::Result<Response>) -> (Status, Option<Id>) {
    let response = match answer {
        Ok(response) => response,
        Err(error) => return (transport_status(&error), None),
    };
    let status = response.status();
    if !status.is_success() {
        drain(response).await;
        return (Status::Code(status.as_u16()), None);
    }
    match response.bytes().await {
        Ok(body) => (Status::Code(status.as_u16()), purchase_id(&body)),
        Err(error) => (transport_status(&error), None),
    }
}

fn purchase_id(body: &[u8]) -> Option<Id> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("id")
        .and_then(Id::from_json)
}

fn transport_status(error: &reqwest::Error) -> Status {
    if error.is_timeout() {
        Status::Timeout
    } else {
        Status::Transport
    }
}

/// Microseconds from `t0` to `at` (0 if `at` is earlier).
pub(crate) fn micros(at: Instant, t0: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX)
}

/// Opens `connections` keep-alive connections (concurrent GET /health) so that the
/// measured requests do not pay for connecting.
pub(crate) async fn warm_up(api: &Api, connections: usize) -> anyhow::Result<()> {
    let requests = (0..connections)
        .map(|_| api.health_request())
        .collect::<Result<Vec<_>, _>>()?;
    let statuses = join_all(
        requests
            .into_iter()
            .map(|request| send_plain(api.http(), request)),
    )
    .await;
    let failed = statuses
        .iter()
        .filter(|status| !matches!(status, Status::Code(200..=299)))
        .count();
    anyhow::ensure!(
        failed == 0,
        "warm-up: {failed} of {connections} GET /health failed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: Status) -> Sample {
        Sample {
            seq: 0,
            product: 0,
            quantity: 1,
            sent_us: 10,
            done_us: 25,
            status,
            purchase_id: None,
        }
    }

    #[test]
    fn outcomes_follow_status_codes() {
        assert!(sample(Status::Code(201)).is_accepted());
        assert!(sample(Status::Code(200)).is_accepted());
        assert!(sample(Status::Code(409)).is_sold_out());
        assert!(!sample(Status::Code(503)).is_accepted());
        assert!(!sample(Status::Timeout).is_sold_out());
        assert_eq!(sample(Status::Code(201)).latency_us(), 15);
        assert_eq!(Status::Transport.key(), "transport_error");
    }

    #[test]
    fn purchase_ids_come_from_the_body() {
        assert_eq!(
            purchase_id(br#"{"id": 5, "quantity": 1}"#),
            Id::from_json(&Value::from(5))
        );
        assert_eq!(purchase_id(b"not json"), None);
    }

    #[test]
    fn quantities_stay_in_range_and_are_reproducible() {
        let range = QuantityRange::new(1, 3).unwrap();
        let first: Vec<u32> = {
            let mut q = Quantities::new(range, 7);
            (0..100).map(|_| q.next()).collect()
        };
        let mut again = Quantities::new(range, 7);
        assert!(first.iter().all(|n| (1..=3).contains(n)));
        assert!(first.contains(&3));
        assert_eq!(first, (0..100).map(|_| again.next()).collect::<Vec<_>>());
    }

    /// A scripted HTTP/1.1 server on loopback: answers the i-th request with `replies[i]`
    /// and reports the Idempotency-Key of each request it saw.
    async fn scripted_server(
        replies: Vec<&'static str>,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (keys, seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut replies = replies.into_iter();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = vec![0_u8; 8192];
                let mut filled = 0;
                loop {
                    let read = socket.read(&mut buffer[filled..]).await.unwrap_or(0);
                    if read == 0 {
                        break;
                    }
                    filled += read;
                    let text = String::from_utf8_lossy(&buffer[..filled]).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = header(&text, "content-length").map_or(0, |v| v.parse().unwrap());
                    if filled < end + 4 + length {
                        continue;
                    }
                    keys.send(header(&text, "idempotency-key").unwrap_or_default())
                        .unwrap();
                    filled = 0;
                    let Some(reply) = replies.next() else { return };
                    socket.write_all(reply.as_bytes()).await.unwrap();
                }
            }
        });
        (url, seen)
    }

    fn header(request: &str, name: &str) -> Option<String> {
        request.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    const BUSY: &str =
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 2\r\n\r\n{}";
    const CREATED: &str = "HTTP/1.1 201 Created\r\ncontent-length: 9\r\n\r\n{\"id\": 7}";
    const SOLD_OUT: &str = "HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}";

    async fn purchase_against(replies: Vec<&'static str>, retries: u32) -> (Sent, Vec<String>) {
        let (url, mut seen) = scripted_server(replies).await;
        let options = crate::client::ClientOptions {
            pool: 1,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        };
        let api = Api::new(crate::client::build_http_client(options).unwrap(), &url);
        let product = Id::from_json(&Value::from(1)).unwrap();
        let key = idempotency_key();
        let request = api.purchase_request("token", &product, 1, &key).unwrap();
        let sequence = AtomicU64::new(5);
        let sent = send_purchase(api.http(), request, &sequence, Instant::now(), retries).await;
        assert_eq!(
            sequence.load(Ordering::Relaxed),
            6,
            "one send-order number per purchase"
        );
        let mut keys = Vec::new();
        while let Ok(key) = seen.try_recv() {
            keys.push(key);
        }
        assert!(keys.iter().all(|seen| *seen == key), "{keys:?} vs {key}");
        (sent, keys)
    }

    #[tokio::test]
    async fn a_503_is_retried_with_the_same_idempotency_key() {
        let (sent, keys) = purchase_against(vec![BUSY, BUSY, CREATED], 3).await;
        assert_eq!((sent.seq, sent.status), (5, Status::Code(201)));
        assert_eq!(sent.purchase_id, Id::from_json(&Value::from(7)));
        assert_eq!(keys.len(), 3);
    }

    #[tokio::test]
    async fn purchases_are_not_retried_by_default() {
        let (sent, keys) = purchase_against(vec![BUSY, CREATED], 0).await;
        assert_eq!(sent.status, Status::Code(503));
        assert_eq!(keys.len(), 1);
    }

    #[tokio::test]
    async fn a_conflict_is_sold_out_and_final() {
        let (sent, keys) = purchase_against(vec![SOLD_OUT, CREATED], 3).await;
        assert_eq!(sent.status, Status::Code(409));
        assert_eq!(sent.purchase_id, None);
        assert_eq!(keys.len(), 1);
    }
}
