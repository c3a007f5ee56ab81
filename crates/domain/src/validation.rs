//! Validation failures, carried per field so the API can list every one of them.

use std::fmt;

/// One rule a value broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Name of the input field as the client sent it (e.g. `username`).
    pub field: &'static str,
    /// Human-readable reason, safe to show to the client (never echoes secrets).
    pub message: String,
}

impl ValidationError {
    /// A failure of `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Several validation failures, in the order they were found. Never empty when returned
/// as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<ValidationError>);

impl ValidationErrors {
    /// No failures yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the error of `result`, if any, and returns its value.
    pub fn check<T>(&mut self, result: Result<T, ValidationError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// Adds one failure.
    pub fn push(&mut self, error: ValidationError) {
        self.0.push(error);
    }

    /// `Ok(())` when nothing failed.
    pub fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// True when no failure was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The failures.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }
}

impl From<ValidationError> for ValidationErrors {
    fn from(error: ValidationError) -> Self {
        Self(vec![error])
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for error in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_failure_in_order() {
        let mut errors = ValidationErrors::new();
        assert_eq!(errors.check::<u8>(Ok(1)), Some(1));
        assert_eq!(
            errors.check::<u8>(Err(ValidationError::new("a", "bad"))),
            None
        );
        errors.push(ValidationError::new("b", "worse"));
        let err = errors.into_result().unwrap_err();
        assert_eq!(err.errors().len(), 2);
        assert_eq!(err.to_string(), "a: bad; b: worse");
    }

    #[test]
    fn empty_is_ok() {
        assert!(ValidationErrors::new().into_result().is_ok());
    }
}
