//! `inventory-api`: loads the configuration and serves until SIGTERM/SIGINT.
//!
//! `inventory-api reconcile [--json]` instead checks, with the same configuration, that
//! stock, sales records and audit trails agree (finishing interrupted orders first),
//! prints every difference and exits 0 when clean, 1 when something differs, 2 when it
//! could not run.

use std::process::ExitCode;

use anyhow::Context;
use inventory_api::{
    Application,
    config::{Settings, StorageSettings},
    routes::admin::ReconcileResponse,
    startup, telemetry,
};
use inventory_domain::{ReconcileReport, RequestId};

const USAGE: &str = "usage: inventory-api            serve the API (configuration from the environment)
       inventory-api reconcile  [--json]  check stock, sales and audit trails; exit 0 when clean, 1 when not";

#[actix_web::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => match serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("Error: {error:?}");
                ExitCode::FAILURE
            }
        },
        ["reconcile"] => reconcile(false).await,
        ["reconcile", "--json"] => reconcile(true).await,
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::from_env().context("invalid configuration")?;
    telemetry::init_tracing(settings.log_format);
    if settings.jwt.secret_generated {
        tracing::warn!(
            "DEVELOPMENT MODE: JWT_SECRET is not set; a random secret was generated, so tokens \
             do not survive a restart"
        );
    }
    let app = Application::build(settings).await?;
    // A machine-readable line for supervisors and the end-to-end tests (port 0 → real port).
    println!("listening on {}", app.local_addr());
    tracing::info!(addr = %app.local_addr(), "lockstock is listening");
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

/// `inventory-api reconcile`: the report on stdout, logs on stderr.
async fn reconcile(json: bool) -> ExitCode {
    telemetry::init_cli_tracing();
    let report = match run_reconcile().await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("reconcile could not run: {error:?}");
            return ExitCode::from(2);
        }
    };
    let clean = report.is_clean();
    if json {
        match serde_json::to_string_pretty(&ReconcileResponse::from(report)) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("reconcile could not print its report: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render(&report));
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_reconcile() -> anyhow::Result<ReconcileReport> {
    let settings = Settings::from_env().context("invalid configuration")?;
    if matches!(settings.storage, StorageSettings::Memory) {
        eprintln!(
            "note: REDIS_URL is not set: the in-memory store belongs to a running server \
             process, and this one starts empty; use GET /api/admin/reconcile there"
        );
    }
    let repositories = startup::connect(&settings).await?;
    let request_id = RequestId::parse(format!("reconcile-{}", uuid::Uuid::new_v4()))
        .context("making a request id")?;
    Ok(repositories.reconciler.reconcile(&request_id).await?)
}

fn render(report: &ReconcileReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "reconcile: {} product(s) checked, {} interrupted order(s) finished",
        report.products_checked, report.orders_recovered
    );
    for difference in &report.differences {
        let _ = writeln!(out, "DIFFERENCE {difference}");
    }
    let _ = if report.is_clean() {
        writeln!(out, "reconcile: clean")
    } else {
        writeln!(out, "reconcile: {} difference(s)", report.differences.len())
    };
    out
}
