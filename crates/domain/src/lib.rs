//! lockstock domain: entities, validation rules, errors and ports.
//!
//! Nothing in here knows about Redis or HTTP. Values that cross the boundary are parsed
//! into the newtypes of this crate once (see [`Username::parse`], [`Quantity::parse`], …),
//! so code behind the ports never re-validates them.

mod email;
mod error;
mod idempotency;
mod ids;
mod money;
mod page;
mod password;
mod ports;
mod product;
mod product_text;
mod purchase;
mod quantity;
mod readiness;
mod stock;
mod user;
mod username;
mod validation;

pub use email::Email;
pub use error::{ProductError, PurchaseError, StoreError, UserError};
pub use idempotency::{IDEMPOTENCY_KEY_TTL, IdempotencyKey};
pub use ids::{ProductId, PurchaseId, UserId};
pub use money::{Money, Price};
pub use page::Page;
pub use password::Password;
pub use ports::{HealthCheck, ProductRepository, PurchaseService, UserRepository};
pub use product::{NewProduct, Product, StockLevel};
pub use product_text::{Description, ProductName};
pub use purchase::{OrderFingerprint, Purchase, PurchaseOrder, PurchaseReceipt};
pub use quantity::{Quantity, RestockQuantity};
pub use readiness::{LockNode, LockQuorum, LockReadiness, Readiness};
pub use stock::Stock;
pub use user::{NewUser, Role, UnknownRole, User};
pub use username::Username;
pub use validation::{ValidationError, ValidationErrors};
