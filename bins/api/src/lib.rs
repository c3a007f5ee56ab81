//! lockstock HTTP server: configuration, composition root, routes, auth, problem+json,
//! OpenAPI and Swagger UI. `main.rs` only loads the settings and runs [`Application`].

pub mod auth;
pub mod client_addr;
pub mod config;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod throttle;

pub use startup::Application;
