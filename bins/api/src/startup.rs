//! The composition root: the only place that picks the store and the lock (in-memory,
//! Redis with the single-node lock, or Redis with Redlock), builds the state, binds the
//! listener and wires the routes.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_web::{
    App, HttpResponse, HttpServer,
    dev::{Server, ServiceResponse},
    http::{StatusCode, header},
    middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn},
    web,
};
use anyhow::Context;
use inventory_domain::{LockReadiness, NewUser, Password, Readiness, Role, UserError};
use inventory_infra::{
    Repositories,
    memory::{MemorySettings, MemoryStore},
    redis::{RedisSettings, RedlockSettings},
};
use secrecy::ExposeSecret;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    auth::{JwtKeys, PasswordHasher},
    config::{AdminSettings, LockMode, Settings, ShutdownSettings, StorageSettings},
    error::ApiError,
    extract, openapi, routes,
    state::AppState,
    telemetry,
    throttle::{Limit, LoginThrottle, RegistrationThrottle},
};

/// A built, bound, not yet running server.
pub struct Application {
    addr: SocketAddr,
    server: Server,
    shutting_down: Arc<AtomicBool>,
    shutdown: ShutdownSettings,
    _stores: StoreRuntime,
}

/// The runtime the stores live on: their Redis connection drivers and the
/// purchase lines' commit workers (`GroupCommit` runs its workers on the
/// runtime it was built on).
///
/// actix-web runs one single-threaded runtime per HTTP worker plus its system
/// thread. Built there, every product's commit work would share one thread, and
/// a hot product's batches would compete with the reading of requests on that
/// thread only — which skews the arrival order of the product's line. On their
/// own small multi-thread runtime, batches of different products commit in
/// parallel and every HTTP worker hands its requests over alike.
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lockstock-store")
            .enable_all()
            .build()
            .context("starting the store runtime")?;
        Ok(Self(Some(runtime)))
    }

    /// Runs `future` to completion on the store runtime; whatever it spawns
    /// (connection drivers, line workers) stays there.
    async fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let runtime = self.0.as_ref().context("the store runtime is gone")?;
        runtime
            .spawn(future)
            .await
            .context("building the stores panicked")
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which is not allowed
        // inside another runtime; by now the server has stopped, so let the
        // remaining tasks go.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Application {
    /// Builds the stores, keys and state, ensures the admin account, and binds
    /// `settings.bind_addr` (port 0 picks a free port; see [`Application::port`]).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle()?;
        let stores = StoreRuntime::start()?;
        let repos = {
            let settings = settings.clone();
            stores
                .run(async move { connect(&settings).await })
                .await??
        };
        let passwords = PasswordHasher::new(settings.bcrypt_cost)
            .await
            .context("preparing bcrypt")?;
        ensure_admin(&repos, &passwords, &settings.admin).await?;

        let listener = TcpListener::bind(settings.bind_addr)
            .with_context(|| format!("binding BIND_ADDR {}", settings.bind_addr))?;
        let addr = listener.local_addr()?;
        let shutting_down = Arc::new(AtomicBool::new(false));
        let throttle = settings.throttle;
        let jwt = web::Data::new(JwtKeys::new(&settings.jwt));
        let state = web::Data::new(AppState {
            repos,
            jwt: jwt.clone(),
            passwords,
            login_throttle: LoginThrottle::new(
                Limit {
                    max: throttle.login_per_username,
                    window: throttle.login_window,
                },
                Limit {
                    max: throttle.login_per_address,
                    window: throttle.login_window,
                },
            ),
            registration_throttle: RegistrationThrottle::new(Limit {
                max: throttle.registrations_per_address,
                window: throttle.registration_window,
            }),
            trusted_proxies: settings.trusted_proxies.clone(),
            max_purchase_quantity: settings.max_purchase_quantity,
            shutting_down: shutting_down.clone(),
            metrics: metrics.clone(),
        });
        let openapi = openapi::document(settings.max_purchase_quantity);

        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(jwt.clone())
                .app_data(extract::path_config())
                .app_data(extract::query_config())
                .app_data(extract::form_config())
                .wrap(
                    ErrorHandlers::new()
                        .handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed),
                )
                .wrap(from_fn(telemetry::observe))
                .configure(api_routes)
                .service(web::resource("/docs").route(web::get().to(routes::health::docs_redirect)))
                .service(
                    SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", openapi.clone()),
                )
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.shutdown.grace.as_secs())
        .run();

        // Histograms need periodic upkeep when nothing scrapes /metrics for a while.
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });

        Ok(Self {
            addr,
            server,
            shutting_down,
            shutdown: settings.shutdown,
            _stores: stores,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM or SIGINT. On SIGTERM (what orchestrators send) `/ready`
    /// answers 503 at once while the listener keeps serving for `READY_DRAIN_MS`, so that
    /// load balancers see the instance leave before its port closes; then the listener
    /// closes and in-flight requests (purchases included) get `SHUTDOWN_GRACE_SECONDS` to
    /// finish. SIGINT (Ctrl-C at a terminal), or a second signal during the drain, skips
    /// the rest of the drain.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let flag = self.shutting_down;
        let drain = self.shutdown.ready_drain;
        actix_web::rt::spawn(async move {
            let signal = shutdown_signal().await;
            flag.store(true, Ordering::SeqCst);
            if signal == Signal::Terminate && !drain.is_zero() {
                tracing::info!(
                    drain.ms = drain.as_millis(),
                    "SIGTERM: /ready answers 503; still serving for the drain window"
                );
                tokio::select! {
                    () = tokio::time::sleep(drain) => {}
                    _ = shutdown_signal() => tracing::info!("second signal: drain cut short"),
                }
            }
            tracing::info!("closing the listener; letting in-flight requests finish");
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// Every API route. `web::resource(..).route(..)` so that a wrong method is a 405 with
/// `Allow`; `/api/purchases/me` before `/api/purchases/{id}` (orders likewise).
fn api_routes(cfg: &mut web::ServiceConfig) {
    use routes::{admin, auth, health, orders, products, purchases};
    cfg.service(web::resource("/api/auth/register").route(web::post().to(auth::register)))
        .service(web::resource("/api/auth/login").route(web::post().to(auth::login)))
        .service(web::resource("/api/auth/me").route(web::get().to(auth::me)))
        .service(
            web::resource("/api/products")
                .route(web::get().to(products::list))
                .route(web::post().to(products::create)),
        )
        .service(web::resource("/api/products/{id}").route(web::get().to(products::get)))
        .service(web::resource("/api/products/{id}/stock").route(web::get().to(products::stock)))
        .service(
            web::resource("/api/products/{id}/restock").route(web::post().to(products::restock)),
        )
        .service(web::resource("/api/products/{id}/adjust").route(web::post().to(products::adjust)))
        .service(web::resource("/api/products/{id}/audit").route(web::get().to(products::audit)))
        .service(web::resource("/api/orders").route(web::post().to(orders::create)))
        .service(web::resource("/api/orders/me").route(web::get().to(orders::mine)))
        .service(web::resource("/api/orders/{id}").route(web::get().to(orders::get)))
        .service(web::resource("/api/admin/reconcile").route(web::get().to(admin::reconcile)))
        .service(web::resource("/api/purchases").route(web::post().to(purchases::create)))
        .service(web::resource("/api/purchases/me").route(web::get().to(purchases::mine)))
        .service(web::resource("/api/purchases/{id}").route(web::get().to(purchases::get)))
        .service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)));
}

/// The stores the configuration names (Redis, or memory in development mode). Used by
/// the server and by `inventory-api reconcile`.
pub async fn connect(settings: &Settings) -> anyhow::Result<Repositories> {
    match &settings.storage {
        StorageSettings::Memory => {
            tracing::warn!(
                "DEVELOPMENT MODE: REDIS_URL is not set, so data lives in this process's memory \
                 and is lost on exit, and locks only work within this single process. \
                 Do not run this in production."
            );
            Ok(MemoryStore::new(MemorySettings {
                lock_ttl: settings.lock.ttl,
                lock_wait_timeout: settings.lock.wait_timeout,
                purchase_batch_max: settings.purchase_batch_max,
            })
            .repositories())
        }
        StorageSettings::Redis(redis) => {
            let Some(url) = &redis.url else {
                anyhow::bail!(
                    "REDIS_CLUSTER_NODES: Redis Cluster data storage is not supported yet; \
                     set REDIS_URL to a single Redis node"
                );
            };
            let data_url = inventory_infra::redis::redacted(url.expose_secret());
            let mut redis_settings = RedisSettings::new(url.expose_secret());
            redis_settings.lock_ttl = settings.lock.ttl;
            redis_settings.lock_wait_timeout = settings.lock.wait_timeout;
            redis_settings.response_timeout = redis.response_timeout;
            redis_settings.pool_size = redis.pool_size;
            redis_settings.purchase_batch_max = settings.purchase_batch_max;
            let repositories = match redis.lock_mode {
                LockMode::Single => {
                    let repositories = inventory_infra::redis::connect(&redis_settings)
                        .await
                        .with_context(|| format!("REDIS_URL: cannot use Redis at {data_url}"))?;
                    tracing::info!(
                        redis.url = %data_url,
                        "storage: Redis (single node, single-node lock)"
                    );
                    repositories
                }
                LockMode::Redlock => {
                    let redlock = RedlockSettings {
                        nodes: redis
                            .redlock_nodes
                            .iter()
                            .map(|node| node.expose_secret().to_owned())
                            .collect(),
                        fsync_always: redis.redlock_fsync_always,
                        node_timeout: redis.redlock_node_timeout,
                    };
                    let repositories =
                        inventory_infra::redis::connect_redlock(&redis_settings, &redlock)
                            .await
                            .with_context(|| {
                                format!(
                                    "LOCK_MODE=redlock: cannot use the data Redis at {data_url} \
                                     (REDIS_URL) with REDLOCK_NODES"
                                )
                            })?;
                    tracing::info!(
                        redis.url = %data_url,
                        redlock.nodes = redlock.nodes.len(),
                        redlock.fsync_always = redlock.fsync_always,
                        "storage: Redis (data node, fence store) with Redlock over independent \
                         lock nodes"
                    );
                    log_lock_nodes(&repositories.health.readiness().await);
                    repositories
                }
            };
            Ok(repositories)
        }
    }
}

/// Says at start-up which lock nodes count toward the quorum, and warns when too few
/// do (the server still starts: `/ready` answers 503 until a quorum counts).
fn log_lock_nodes(readiness: &Readiness) {
    let LockReadiness::Quorum(quorum) = &readiness.locks else {
        return;
    };
    for node in &quorum.nodes {
        tracing::info!(
            redlock.node = %node.address,
            redlock.reachable = node.reachable,
            redlock.counts = node.counts_toward_quorum,
            redlock.quarantine_left_ms = node.quarantine_left.map_or(0, |left| left.as_millis()),
            redlock.fsync_always = node.fsync_always,
            "lock node"
        );
    }
    if quorum.has_quorum() {
        tracing::info!(
            redlock.counting = quorum.counting,
            redlock.quorum = quorum.quorum,
            "lock nodes: a quorum counts"
        );
    } else {
        tracing::warn!(
            redlock.counting = quorum.counting,
            redlock.quorum = quorum.quorum,
            "lock nodes: fewer than a quorum count; purchases and restocks answer 503 and \
             /ready answers 503 until enough nodes are reachable (and out of their restart \
             quarantine, LOCK_TTL_MS after a restart unless REDLOCK_FSYNC_ALWAYS=true)"
        );
    }
}

/// Creates the admin account if it does not exist (start-up, idempotent across replicas).
async fn ensure_admin(
    repos: &Repositories,
    passwords: &PasswordHasher,
    admin: &AdminSettings,
) -> anyhow::Result<()> {
    if let Some(existing) = repos.users.find_by_username(&admin.username).await? {
        if existing.role != Role::Admin {
            tracing::warn!(user.id = %existing.id, "ADMIN_USERNAME names an existing non-admin account");
        }
        return Ok(());
    }
    let Some(secret) = &admin.password else {
        tracing::warn!("no admin account exists and ADMIN_PASSWORD is not set: none was created");
        return Ok(());
    };
    let password = Password::parse(secret.expose_secret().to_owned())
        .map_err(|e| anyhow::anyhow!("invalid ADMIN_PASSWORD: {}", e.message))?;
    let password_hash = passwords
        .hash(password)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the admin password: {e}"))?;
    match repos
        .users
        .create(NewUser {
            username: admin.username.clone(),
            email: None,
            role: Role::Admin,
            password_hash,
        })
        .await
    {
        Ok(user) => tracing::info!(user.id = %user.id, "admin account created"),
        // Another replica created it at the same moment.
        Err(UserError::UsernameTaken) => {}
        Err(UserError::Store(e)) => return Err(e).context("creating the admin account"),
    }
    if admin.password_generated {
        // Printed once on stderr, deliberately not through the logger.
        eprintln!(
            "\n  ==> development admin account: username `{}`, password `{}`\n",
            admin.username,
            secret.expose_secret()
        );
    }
    Ok(())
}

/// Turns actix's empty 405 into a problem body, keeping its `Allow` header.
fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let allow = res
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed { allow });
    let (req, _) = res.into_parts();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such resource".into()))
}

/// Which signal asked the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

async fn shutdown_signal() -> Signal {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => Signal::Interrupt,
        () = terminate => Signal::Terminate,
    }
}
