//! `inventory-api`: loads the configuration and serves until SIGTERM/SIGINT.

use anyhow::Context;
use inventory_api::{Application, config::Settings, telemetry};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
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
