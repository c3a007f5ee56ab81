//! lockstock domain: entities, validation rules, errors and ports.
//!
//! Nothing in here knows about Redis or HTTP. Values that cross the boundary are parsed
//! into the newtypes of this crate once (see [`Username::parse`], [`Quantity::parse`], …),
//! so code behind the ports never re-validates them.

mod audit;
mod email;
mod error;
mod idempotency;
mod ids;
mod money;
mod order;
mod page;
mod password;
mod ports;
mod product;
mod product_text;
mod purchase;
mod quantity;
mod readiness;
mod reconcile;
mod request;
mod stock;
mod stock_change;
mod user;
mod username;
mod validation;

pub use audit::{AuditCursor, AuditEntry, AuditKind, AuditPage, AuditQuery, replay};
pub use email::Email;
pub use error::{OrderError, ProductError, PurchaseError, StoreError, UserError};
pub use idempotency::{IDEMPOTENCY_KEY_TTL, IdempotencyKey};
pub use ids::{OrderId, ProductId, PurchaseId, UserId};
pub use money::{Money, Price};
pub use order::{NewOrder, Order, OrderItem, OrderLine, OrderLines, OrderReceipt, ShortLine};
pub use page::Page;
pub use password::Password;
pub use ports::{
    HealthCheck, OrderService, ProductRepository, PurchaseService, Reconciler, UserRepository,
};
pub use product::{NewProduct, Product, StockLevel};
pub use product_text::{Description, ProductName};
pub use purchase::{OrderFingerprint, Purchase, PurchaseOrder, PurchaseReceipt};
pub use quantity::{Quantity, RestockQuantity};
pub use readiness::{LockNode, LockQuorum, LockReadiness, Readiness};
pub use reconcile::{Check, Difference, ReconcileReport, check_accounting, check_audit};
pub use request::{Actor, RequestId};
pub use stock::Stock;
pub use stock_change::{AdjustReason, Adjustment, RestockOrder, RestockReceipt};
pub use user::{NewUser, Role, UnknownRole, User};
pub use username::Username;
pub use validation::{ValidationError, ValidationErrors};
