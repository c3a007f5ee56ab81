//! inventory-lock
