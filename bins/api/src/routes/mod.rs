//! HTTP handlers, one module per area. Each is parse → call → map.

pub mod admin;
pub mod auth;
pub mod health;
pub mod orders;
pub mod products;
pub mod purchases;

use serde::Deserialize;
use utoipa::IntoParams;

use inventory_domain::Page;

use crate::{error::ApiError, extract::integer};

/// `?limit=&offset=` of list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    #[serde(default, deserialize_with = "integer::query")]
    pub limit: Option<i64>,
    /// Items to skip, 0–1,000,000,000 (default 0).
    #[param(minimum = 0, maximum = 1_000_000_000)]
    #[serde(default, deserialize_with = "integer::query")]
    pub offset: Option<i64>,
}

impl PageQuery {
    /// The validated page.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page::parse(self.limit, self.offset)?)
    }
}
