//! One run from start to end: setup, scenario, read-back, optional health ceiling,
//! report. Progress goes to stderr; the report table to stdout.

use std::time::Duration;

use anyhow::Context;

use crate::cli::{Cli, Scenario};
use crate::client::{Api, ClientOptions, build_http_client};
use crate::read_back::{Records, read_back};
use crate::report::{Config, Report, RunResult, assemble, render};
use crate::scenarios::black_friday::BurstOptions;
use crate::scenarios::sustained::{SustainedOptions, SustainedRun};
use crate::scenarios::{Quantities, black_friday, cart, multi_product, sustained};
use crate::setup::{self, BuyerPlan};
use crate::{chart, health};

/// Time a cached token must still be valid beyond the run itself.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

pub(crate) async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let concurrency = cli.effective_concurrency();
    let http = build_http_client(ClientOptions {
        pool: concurrency.max(cli.setup_concurrency),
        request_timeout: cli.request_timeout(),
        connect_timeout: Duration::from_secs(5),
    })
    .context("building the HTTP client")?;
    let api = Api::new(http, &cli.base_url);
    setup::with_retries(|| api.health())
        .await
        .with_context(|| format!("the server at {} does not answer GET /health", cli.base_url))?;

    let admin = setup::admin_token(&api, &cli.admin_username, &cli.admin_password).await?;
    let stock = cli.stock();
    let products = setup::create_products(
        &api,
        &admin,
        cli.scenario.name(),
        cli.product_count(),
        cli.price,
        stock,
    )
    .await?;
    let buyers = setup::buyers(&api, &cli.base_url, &buyer_plan(cli)).await?;
    note(
        cli,
        &format!(
            "{} buyers ready; running {}",
            buyers.len(),
            cli.scenario.name()
        ),
    );

    let mut quantities = Quantities::new(cli.quantity, cli.seed);
    // For `cart`: the orders as samples per line, for the per-product books.
    let mut lines = None;
    let run = match cli.scenario {
        Scenario::Cart => {
            let carts = cart::run(
                &api,
                &buyers,
                &products,
                &mut quantities,
                cli.seed,
                burst(cli),
            )
            .await?;
            lines = Some(carts.lines);
            SustainedRun {
                purchases: carts.orders,
                reads: Vec::new(),
            }
        }
        Scenario::BlackFriday => SustainedRun {
            purchases: black_friday::run(&api, &buyers, &products[0], &mut quantities, burst(cli))
                .await?,
            reads: Vec::new(),
        },
        Scenario::MultiProduct => SustainedRun {
            purchases: multi_product::run(&api, &buyers, &products, &mut quantities, burst(cli))
                .await?,
            reads: Vec::new(),
        },
        Scenario::Sustained => {
            sustained::run(&api, &buyers, &products, sustained_options(cli)).await?
        }
    };

    note(cli, "reading stock and purchases back");
    let records = if cli.scenario == Scenario::Cart {
        Records::OrderLines
    } else {
        Records::Purchases
    };
    let read_back = read_back(
        &api,
        &admin,
        &products,
        &buyers,
        records,
        cli.setup_concurrency,
        !cli.quiet,
    )
    .await?;
    let reconcile = if cli.reconcile {
        note(cli, "asking the server to reconcile");
        setup::with_retries(|| api.reconcile(&admin))
            .await
            .context("GET /api/admin/reconcile")?
    } else {
        None
    };
    let health = if cli.compare_health {
        note(cli, "measuring GET /health at the same concurrency");
        Some(
            health::measure(
                &api,
                concurrency,
                Duration::from_secs(cli.health_duration_s.max(1)),
            )
            .await?,
        )
    } else {
        None
    };

    let config = config(cli);
    let report = assemble(&RunResult {
        scenario: cli.scenario.name(),
        base_url: &cli.base_url,
        config: &config,
        products: &products,
        purchases: &run.purchases,
        per_product: lines.as_deref().unwrap_or(&run.purchases),
        fairness: lines.is_none(),
        reads: &run.reads,
        reconcile: reconcile.as_ref(),
        read_back: &read_back,
        health,
    });
    print!("{}", render(&report));
    write_outputs(cli, &report, &run)?;
    Ok(report)
}

fn write_outputs(cli: &Cli, report: &Report, run: &SustainedRun) -> anyhow::Result<()> {
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.chart {
        let title = format!(
            "{}: {} purchases, {} accepted, stock {}",
            report.scenario, report.requests, report.accepted, report.initial_stock
        );
        chart::write(path, &title, &run.purchases, report.fairness.first_k)?;
    }
    Ok(())
}

fn buyer_plan(cli: &Cli) -> BuyerPlan {
    let run_length = match cli.scenario {
        Scenario::Sustained => cli.duration_s,
        Scenario::BlackFriday | Scenario::MultiProduct | Scenario::Cart => cli.window_ms / 1000 + 1,
    };
    BuyerPlan {
        prefix: cli.user_prefix.clone(),
        password: cli.user_password.clone(),
        count: cli.buyers(),
        concurrency: cli.setup_concurrency,
        cache: cli.token_cache.clone(),
        min_validity: TOKEN_MARGIN + Duration::from_secs(run_length + cli.health_duration_s),
        progress: !cli.quiet,
    }
}

fn burst(cli: &Cli) -> BurstOptions {
    BurstOptions {
        window: cli.window(),
        max_in_flight: cli.concurrency,
        retries_on_503: cli.retries_on_503,
        warm_up: !cli.no_warmup,
    }
}

fn sustained_options(cli: &Cli) -> SustainedOptions {
    SustainedOptions {
        concurrency: cli.sustained_concurrency(),
        duration: Duration::from_secs(cli.duration_s),
        read_ratio: cli.read_ratio,
        quantity: cli.quantity,
        seed: cli.seed,
        retries_on_503: cli.retries_on_503,
        warm_up: !cli.no_warmup,
    }
}

fn config(cli: &Cli) -> Config {
    let burst = cli.scenario != Scenario::Sustained;
    Config {
        stock: cli.stock(),
        buyers: cli.buyers(),
        products: cli.product_count(),
        window_ms: burst.then_some(cli.window_ms),
        concurrency: cli.effective_concurrency(),
        duration_s: (!burst).then_some(cli.duration_s),
        quantity: cli.quantity.to_string(),
        read_ratio: cli.read_ratio,
        retries_on_503: cli.retries_on_503,
        warm_up: !cli.no_warmup,
        seed: cli.seed,
    }
}

/// A progress line on stderr (unless `--quiet`).
fn note(cli: &Cli, message: &str) {
    if !cli.quiet {
        eprintln!("loadgen: {message}");
    }
}
