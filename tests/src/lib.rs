//! Harness for lockstock end-to-end tests.
