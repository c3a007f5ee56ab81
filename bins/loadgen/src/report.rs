//! The report of a run: assembled from the samples and the read-back, printed as a table
//! and written as JSON. Field names of `Report` are part of the tool's interface.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::audit::{Audit, Books, audit};
use crate::client::Id;
use crate::fairness::{Attempt, Fairness, Verdict, fairness};
use crate::health::HealthRun;
use crate::read_back::ReadBack;
use crate::scenarios::Sample;
use crate::stats::{LatencyMs, latency, per_second, round3, us_to_ms};

/// The run's settings, echoed in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Config {
    pub(crate) stock: u64,
    pub(crate) buyers: usize,
    pub(crate) products: usize,
    /// Set for the burst scenarios.
    pub(crate) window_ms: Option<u64>,
    pub(crate) concurrency: usize,
    /// Set for `sustained`.
    pub(crate) duration_s: Option<u64>,
    pub(crate) quantity: String,
    pub(crate) read_ratio: f64,
    pub(crate) retries_on_503: u32,
    pub(crate) warm_up: bool,
    pub(crate) seed: u64,
}

/// Everything the report is made from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunResult<'a> {
    pub(crate) scenario: &'static str,
    pub(crate) base_url: &'a str,
    pub(crate) config: &'a Config,
    pub(crate) products: &'a [Id],
    pub(crate) purchases: &'a [Sample],
    /// The requests as they bear on each product: `purchases` itself, except for `cart`,
    /// where an order is one sample per line.
    pub(crate) per_product: &'a [Sample],
    /// Whether arrival-order fairness means anything (not for multi-product orders,
    /// whose refusal may come from another product's line).
    pub(crate) fairness: bool,
    pub(crate) reads: &'a [Sample],
    /// What GET /api/admin/reconcile said afterwards, when the server has it.
    pub(crate) reconcile: Option<&'a serde_json::Value>,
    pub(crate) read_back: &'a ReadBack,
    pub(crate) health: Option<HealthRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) base_url: String,
    pub(crate) config: Config,
    /// First purchase sent to last purchase answered.
    pub(crate) wall_ms: f64,
    /// First to last purchase sent.
    pub(crate) send_spread_ms: f64,
    /// Burst scenarios with a window: whether every purchase was sent within it.
    pub(crate) fired_within_window: Option<bool>,
    /// First purchase sent to the last accepted one answered, when the stock ran out.
    pub(crate) sold_out_ms: Option<f64>,
    pub(crate) requests: u64,
    pub(crate) status_counts: BTreeMap<String, u64>,
    pub(crate) accepted: u64,
    pub(crate) refused_sold_out: u64,
    pub(crate) other_errors: u64,
    pub(crate) purchases_per_sec: f64,
    pub(crate) requests_per_sec: f64,
    pub(crate) latency_ms: LatencyMs,
    pub(crate) latency_accepted_ms: LatencyMs,
    pub(crate) latency_refused_ms: LatencyMs,
    pub(crate) initial_stock: u64,
    pub(crate) final_stock: i64,
    pub(crate) units_accepted: u64,
    pub(crate) units_removed_from_stock: i64,
    pub(crate) purchase_records: u64,
    pub(crate) units_recorded: u64,
    pub(crate) records_without_answer: u64,
    pub(crate) duplicate_records: u64,
    pub(crate) oversell: u64,
    pub(crate) lost: u64,
    pub(crate) fairness: Fairness,
    pub(crate) products: Vec<ProductReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stock_reads: Option<ReadsReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) health: Option<HealthRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) health_requests_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio_to_health: Option<f64>,
    /// The server's own reconciliation after the run (`ok`, `differences`, …), when it
    /// has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reconcile: Option<serde_json::Value>,
    /// No oversell, nothing lost, and (when there is one) a clean reconciliation.
    pub(crate) ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ProductReport {
    pub(crate) id: Id,
    pub(crate) initial_stock: u64,
    pub(crate) final_stock: i64,
    pub(crate) requests: u64,
    pub(crate) accepted: u64,
    pub(crate) refused_sold_out: u64,
    #[serde(flatten)]
    pub(crate) audit: Audit,
    pub(crate) fairness: Fairness,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ReadsReport {
    pub(crate) requests: u64,
    pub(crate) status_counts: BTreeMap<String, u64>,
    pub(crate) requests_per_sec: f64,
    pub(crate) latency_ms: LatencyMs,
}

pub(crate) fn assemble(run: &RunResult<'_>) -> Report {
    let purchases = run.purchases;
    let first_sent = purchases.iter().map(|s| s.sent_us).min().unwrap_or(0);
    let last_sent = purchases.iter().map(|s| s.sent_us).max().unwrap_or(0);
    let last_done = purchases.iter().map(|s| s.done_us).max().unwrap_or(0);
    let wall_us = last_done.saturating_sub(first_sent);
    let products: Vec<ProductReport> = (0..run.products.len())
        .map(|index| product_report(run, index))
        .collect();
    let totals = products
        .iter()
        .fold(Audit::default(), |sum, product| sum.plus(product.audit));
    let accepted = count(purchases, Sample::is_accepted);
    let refused_sold_out = count(purchases, Sample::is_sold_out);
    let purchases_per_sec = per_second(accepted, wall_us);
    let health_rps = run.health.map(|health| health.requests_per_sec);
    Report {
        scenario: run.scenario.to_owned(),
        base_url: run.base_url.to_owned(),
        config: run.config.clone(),
        wall_ms: us_to_ms(wall_us),
        send_spread_ms: us_to_ms(last_sent - first_sent),
        fired_within_window: run
            .config
            .window_ms
            .filter(|window| *window > 0)
            .map(|window| last_sent - first_sent <= window * 1000),
        sold_out_ms: sold_out_us(purchases, first_sent).map(us_to_ms),
        requests: purchases.len() as u64,
        status_counts: status_counts(purchases),
        accepted,
        refused_sold_out,
        other_errors: purchases.len() as u64 - accepted - refused_sold_out,
        purchases_per_sec,
        requests_per_sec: per_second(purchases.len() as u64, wall_us),
        latency_ms: latency(purchases.iter().map(Sample::latency_us)),
        latency_accepted_ms: latency_of(purchases, Sample::is_accepted),
        latency_refused_ms: latency_of(purchases, Sample::is_sold_out),
        initial_stock: products.iter().map(|p| p.initial_stock).sum(),
        final_stock: products.iter().map(|p| p.final_stock).sum(),
        units_accepted: totals.units_accepted,
        units_removed_from_stock: totals.units_removed_from_stock,
        purchase_records: totals.purchase_records,
        units_recorded: totals.units_recorded,
        records_without_answer: totals.records_without_answer,
        duplicate_records: totals.duplicate_records,
        oversell: totals.oversell,
        lost: totals.lost,
        fairness: products
            .iter()
            .fold(Fairness::default(), |sum, p| sum.plus(p.fairness)),
        stock_reads: (!run.reads.is_empty()).then(|| reads_report(run.reads)),
        health: run.health,
        health_requests_per_sec: health_rps,
        ratio_to_health: health_rps
            .filter(|rps| *rps > 0.0)
            .map(|rps| ratio(purchases_per_sec, rps)),
        reconcile: run.reconcile.cloned(),
        ok: totals.is_clean()
            && run
                .reconcile
                .is_none_or(|report| report.get("ok") == Some(&serde_json::Value::Bool(true))),
        products,
    }
}

fn product_report(run: &RunResult<'_>, index: usize) -> ProductReport {
    let samples: Vec<&Sample> = run
        .per_product
        .iter()
        .filter(|s| s.product == index)
        .collect();
    let accepted: Vec<(Option<Id>, u32)> = samples
        .iter()
        .filter(|s| s.is_accepted())
        .map(|s| (s.purchase_id.clone(), s.quantity))
        .collect();
    let final_stock = run.read_back.final_stock.get(index).copied().unwrap_or(0);
    let records = run
        .read_back
        .records
        .get(index)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let initial_stock = run.config.stock;
    let attempts: Vec<Attempt> = samples.iter().map(|s| attempt(s)).collect();
    ProductReport {
        id: run.products[index].clone(),
        initial_stock,
        final_stock,
        requests: samples.len() as u64,
        accepted: accepted.len() as u64,
        refused_sold_out: samples.iter().filter(|s| s.is_sold_out()).count() as u64,
        audit: audit(Books {
            initial_stock,
            final_stock,
            accepted: &accepted,
            records,
        }),
        fairness: if run.fairness {
            fairness(&attempts, initial_stock)
        } else {
            Fairness::default()
        },
    }
}

/// A sample as fairness sees it (samples are kept in send order).
fn attempt(sample: &Sample) -> Attempt {
    let verdict = if sample.is_accepted() {
        Verdict::Accepted
    } else if sample.is_sold_out() {
        Verdict::SoldOut
    } else {
        Verdict::Other
    };
    Attempt {
        quantity: sample.quantity,
        verdict,
    }
}

/// When the last accepted purchase was answered, if the sale sold out at all.
fn sold_out_us(purchases: &[Sample], first_sent: u64) -> Option<u64> {
    if !purchases.iter().any(Sample::is_sold_out) {
        return None;
    }
    let last_accepted = purchases
        .iter()
        .filter(|s| s.is_accepted())
        .map(|s| s.done_us)
        .max()?;
    Some(last_accepted.saturating_sub(first_sent))
}

fn reads_report(reads: &[Sample]) -> ReadsReport {
    let first = reads.iter().map(|s| s.sent_us).min().unwrap_or(0);
    let last = reads.iter().map(|s| s.done_us).max().unwrap_or(0);
    ReadsReport {
        requests: reads.len() as u64,
        status_counts: status_counts(reads),
        requests_per_sec: per_second(reads.len() as u64, last.saturating_sub(first)),
        latency_ms: latency(reads.iter().map(Sample::latency_us)),
    }
}

fn status_counts(samples: &[Sample]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for sample in samples {
        *counts.entry(sample.status.key()).or_insert(0) += 1;
    }
    counts
}

fn count(samples: &[Sample], predicate: impl Fn(&Sample) -> bool) -> u64 {
    samples.iter().filter(|sample| predicate(sample)).count() as u64
}

fn latency_of(samples: &[Sample], predicate: impl Fn(&Sample) -> bool) -> LatencyMs {
    latency(
        samples
            .iter()
            .filter(|sample| predicate(sample))
            .map(Sample::latency_us),
    )
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    (numerator / denominator * 10_000.0).round() / 10_000.0
}

/// The report as a table for the terminal.
pub(crate) fn render(report: &Report) -> String {
    let mut out = String::new();
    let c = &report.config;
    let _ = writeln!(
        out,
        "inventory-loadgen {} against {}",
        report.scenario, report.base_url
    );
    let _ = writeln!(
        out,
        "  setup         {} product(s) x stock {}, {} buyers, quantity {}, concurrency {}{}{}",
        c.products,
        c.stock,
        c.buyers,
        c.quantity,
        c.concurrency,
        c.window_ms
            .map(|w| format!(", window {w} ms"))
            .unwrap_or_default(),
        c.duration_s
            .map(|d| format!(", duration {d} s"))
            .unwrap_or_default(),
    );
    let window = match (report.fired_within_window, c.window_ms) {
        (Some(true), _) => " (within the window)",
        (Some(false), _) => " (NOT within the window)",
        (None, Some(0)) => " (all released at once)",
        (None, _) => "",
    };
    let _ = writeln!(
        out,
        "  requests      {} in {} ms; sent over {} ms{window}",
        report.requests, report.wall_ms, report.send_spread_ms
    );
    let statuses: Vec<String> = report
        .status_counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(out, "  status        {}", statuses.join("  "));
    let _ = writeln!(
        out,
        "  outcomes      accepted {}  refused sold out {}  other errors {}",
        report.accepted, report.refused_sold_out, report.other_errors
    );
    let sold_out = report
        .sold_out_ms
        .map(|ms| format!("; sold out after {ms} ms"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  throughput    {} purchases/s, {} requests/s{sold_out}",
        report.purchases_per_sec, report.requests_per_sec
    );
    write_latency(&mut out, "latency", &report.latency_ms);
    if report.accepted > 0 && report.accepted < report.requests {
        write_latency(&mut out, " accepted", &report.latency_accepted_ms);
    }
    if report.refused_sold_out > 0 && report.refused_sold_out < report.requests {
        write_latency(&mut out, " refused", &report.latency_refused_ms);
    }
    let _ = writeln!(
        out,
        "  stock         initial {}  final {}  removed {}",
        report.initial_stock, report.final_stock, report.units_removed_from_stock
    );
    let _ = writeln!(
        out,
        "  units         accepted {}  removed {}  recorded {} in {} record(s)",
        report.units_accepted,
        report.units_removed_from_stock,
        report.units_recorded,
        report.purchase_records
    );
    let _ = writeln!(out, "  oversell      {}", report.oversell);
    let _ = writeln!(out, "  lost          {}", report.lost);
    if let Some(reconcile) = &report.reconcile {
        let differences = reconcile["differences"].as_array().map_or(0, Vec::len);
        let _ = writeln!(
            out,
            "  reconcile     {} ({} difference(s), {} product(s) checked)",
            if reconcile["ok"] == true {
                "clean"
            } else {
                "DIFFERENCES"
            },
            differences,
            reconcile["products_checked"]
        );
    }
    let f = &report.fairness;
    if report.scenario == "cart" {
        // An order refused for one short line says nothing of the others' arrival order.
        let _ = writeln!(out, "  fairness      n/a (orders of several products)");
    } else {
        let _ = writeln!(
            out,
            "  fairness      of the first {} sent, {} accepted; inversions {}",
            f.first_k, f.first_k_accepted, f.inversions
        );
    }
    if let Some(reads) = &report.stock_reads {
        let _ = writeln!(
            out,
            "  stock reads   {} at {} /s",
            reads.requests, reads.requests_per_sec
        );
        write_latency(&mut out, " reads", &reads.latency_ms);
    }
    if let (Some(health), Some(ratio)) = (&report.health, report.ratio_to_health) {
        let _ = writeln!(
            out,
            "  /health       {} requests/s at concurrency {} (p50 {} ms); purchases/s : health = {ratio}",
            health.requests_per_sec, health.concurrency, health.latency_ms.p50
        );
    }
    let verdict = if report.ok {
        "OK (no oversell, nothing lost)"
    } else {
        "FAILED (oversell or lost purchases)"
    };
    let _ = writeln!(out, "  result        {verdict}");
    out
}

fn write_latency(out: &mut String, label: &str, latency: &LatencyMs) {
    let _ = writeln!(
        out,
        "  {label:<12}  p50 {} ms  p95 {} ms  p99 {} ms  max {} ms",
        latency.p50,
        latency.p95,
        latency.p99,
        round3(latency.max)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::PurchaseRecord;
    use crate::scenarios::Status;
    use serde_json::json;

    fn id(n: u64) -> Id {
        Id::from_json(&json!(n)).unwrap()
    }

    fn sample(seq: u64, code: u16) -> Sample {
        Sample {
            seq,
            product: 0,
            quantity: 1,
            sent_us: seq * 1_000,
            done_us: seq * 1_000 + 2_000,
            status: Status::Code(code),
            purchase_id: (code == 201).then(|| id(seq + 1)),
        }
    }

    fn config() -> Config {
        Config {
            stock: 3,
            buyers: 5,
            products: 1,
            window_ms: Some(1000),
            concurrency: 5,
            duration_s: None,
            quantity: "1".to_owned(),
            read_ratio: 0.0,
            retries_on_503: 0,
            warm_up: true,
            seed: 1,
        }
    }

    fn report(codes: &[u16], final_stock: i64, recorded: &[u64]) -> Report {
        let purchases: Vec<Sample> = codes
            .iter()
            .enumerate()
            .map(|(seq, code)| sample(seq as u64, *code))
            .collect();
        let records = recorded.iter().map(|n| PurchaseRecord {
            id: id(*n),
            product_id: id(42),
            quantity: 1,
        });
        let read_back = ReadBack {
            final_stock: vec![final_stock],
            records: vec![records.collect()],
        };
        let config = config();
        assemble(&RunResult {
            scenario: "black-friday",
            base_url: "http://127.0.0.1:8000",
            config: &config,
            products: &[id(42)],
            purchases: &purchases,
            per_product: &purchases,
            fairness: true,
            reads: &[],
            reconcile: None,
            read_back: &read_back,
            health: None,
        })
    }

    #[test]
    fn a_clean_sale_reports_counts_and_fairness() {
        let report = report(&[201, 201, 201, 409, 409], 0, &[1, 2, 3]);
        assert_eq!(
            (
                report.accepted,
                report.refused_sold_out,
                report.other_errors
            ),
            (3, 2, 0)
        );
        assert_eq!(
            report.status_counts,
            BTreeMap::from([("201".to_owned(), 3), ("409".to_owned(), 2)])
        );
        assert_eq!(
            (report.oversell, report.lost, report.purchase_records),
            (0, 0, 3)
        );
        assert_eq!(
            report.fairness,
            Fairness {
                first_k: 3,
                first_k_accepted: 3,
                inversions: 0
            }
        );
        assert_eq!((report.wall_ms, report.send_spread_ms), (6.0, 4.0));
        assert_eq!(report.fired_within_window, Some(true));
        assert_eq!(report.sold_out_ms, Some(4.0));
        assert_eq!(report.purchases_per_sec, 500.0);
        assert!(report.ok);
    }

    #[test]
    fn the_json_has_the_documented_fields() {
        let value = serde_json::to_value(report(&[201, 409, 503], 2, &[1])).unwrap();
        for field in [
            "scenario",
            "wall_ms",
            "status_counts",
            "accepted",
            "refused_sold_out",
            "other_errors",
            "purchases_per_sec",
            "final_stock",
            "units_accepted",
            "units_removed_from_stock",
            "purchase_records",
            "oversell",
            "lost",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        for field in ["p50", "p95", "p99", "max"] {
            assert!(
                value["latency_ms"].get(field).is_some(),
                "missing latency_ms.{field}"
            );
        }
        for field in ["first_k", "first_k_accepted", "inversions"] {
            assert!(
                value["fairness"].get(field).is_some(),
                "missing fairness.{field}"
            );
        }
        assert_eq!(value["other_errors"], 1);
        assert!(value.get("ratio_to_health").is_none());
    }

    #[test]
    fn window_zero_has_no_window_to_be_within() {
        let purchases = [sample(0, 201), sample(1, 409)];
        let read_back = ReadBack {
            final_stock: vec![0],
            records: vec![vec![PurchaseRecord {
                id: id(1),
                product_id: id(42),
                quantity: 1,
            }]],
        };
        let config = Config {
            stock: 1,
            window_ms: Some(0),
            ..config()
        };
        let report = assemble(&RunResult {
            scenario: "black-friday",
            base_url: "http://127.0.0.1:8000",
            config: &config,
            products: &[id(42)],
            purchases: &purchases,
            per_product: &purchases,
            fairness: true,
            reads: &[],
            reconcile: None,
            read_back: &read_back,
            health: None,
        });
        assert_eq!(report.fired_within_window, None);
        assert!(render(&report).contains("all released at once"));
        assert!(report.ok);
    }

    #[test]
    fn oversell_fails_the_run() {
        let report = report(&[201, 201, 201, 201, 409], -1, &[1, 2, 3, 4]);
        assert_eq!(report.oversell, 1);
        assert!(!report.ok);
        assert!(render(&report).contains("FAILED"));
    }

    #[test]
    fn a_reconcile_with_differences_fails_the_run() {
        let purchases = [sample(0, 201)];
        let read_back = ReadBack {
            final_stock: vec![2],
            records: vec![vec![PurchaseRecord {
                id: id(1),
                product_id: id(42),
                quantity: 1,
            }]],
        };
        let differences = serde_json::json!({"ok": false, "products_checked": 1,
            "differences": [{"product_id": 42, "what": "stock", "expected": 2, "found": 9}]});
        let run = |reconcile| {
            assemble(&RunResult {
                scenario: "cart",
                base_url: "http://127.0.0.1:8000",
                config: &config(),
                products: &[id(42)],
                purchases: &purchases,
                per_product: &purchases,
                fairness: false,
                reads: &[],
                reconcile,
                read_back: &read_back,
                health: None,
            })
        };
        let failed = run(Some(&differences));
        assert_eq!((failed.oversell, failed.lost), (0, 0));
        assert!(!failed.ok);
        assert!(render(&failed).contains("reconcile     DIFFERENCES (1 difference(s)"));
        assert_eq!(failed.fairness, Fairness::default());
        assert!(run(None).ok);
    }

    #[test]
    fn the_health_ratio_is_purchases_over_health() {
        let mut report = report(&[201, 201, 201, 409, 409], 0, &[1, 2, 3]);
        report.ratio_to_health = Some(ratio(report.purchases_per_sec, 10_000.0));
        assert_eq!(report.ratio_to_health, Some(0.05));
        assert!(render(&report).contains("result        OK"));
    }
}
