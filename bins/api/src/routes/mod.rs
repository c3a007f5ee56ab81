//! HTTP handlers, one module per area. Each is parse → call → map.

pub mod auth;
pub mod health;
pub mod products;
pub mod purchases;

use serde::Deserialize;
use utoipa::IntoParams;

use inventory_domain::Page;

use crate::error::ApiError;

/// `?limit=&offset=` of list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl PageQuery {
    /// The validated page.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page::parse(self.limit, self.offset)?)
    }
}
