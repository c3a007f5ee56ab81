//! The JSON body extractor: `application/json`, at most [`JSON_LIMIT`] bytes, valid UTF-8
//! from the first byte to the last — including inside fields the target type ignores,
//! which serde_json skips without checking.

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload};
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::{JSON_LIMIT, check_declared_length, read_body, serde_json_error};
use crate::error::ApiError;

/// A JSON request body parsed into `T`. Failures: 415 (not JSON), 413 (too large), 400
/// (not UTF-8, not JSON), 422 (JSON of the wrong shape).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_content_type(req).and_then(|()| check_declared_length(req, JSON_LIMIT));
        let payload = payload.take();
        Box::pin(async move {
            checked?;
            let body = read_body(payload, JSON_LIMIT).await?;
            parse_json(&body).map(Json)
        })
    }
}

/// `application/json`, or a `+json` type such as `application/merge-patch+json`.
fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req.content_type().to_ascii_lowercase();
    let json = content_type == "application/json"
        || (content_type.starts_with("application/") && content_type.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".into(),
        ))
    }
}

/// Parses a JSON document that must be valid UTF-8 throughout (RFC 8259 §8.1).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::Malformed(format!(
            "the body is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        )));
    }
    serde_json::from_slice(body).map_err(|e| serde_json_error(&e))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Login {
        #[expect(dead_code, reason = "only parsed")]
        username: String,
    }

    #[test]
    fn invalid_utf8_anywhere_is_malformed() {
        // Inside a field serde would skip without looking.
        let body = b"{\"username\":\"alice\",\"ignored\":\"\xff\xfe\"}";
        assert!(matches!(
            parse_json::<Login>(body),
            Err(ApiError::Malformed(_))
        ));
        // Inside a field that is read.
        let body = b"{\"username\":\"al\xc3ice\"}";
        assert!(matches!(
            parse_json::<Login>(body),
            Err(ApiError::Malformed(_))
        ));
        // Outside any string.
        let body = b"{\"username\":\"alice\"}\xff";
        assert!(matches!(
            parse_json::<Login>(body),
            Err(ApiError::Malformed(_))
        ));
        assert!(parse_json::<Login>("{\"username\":\"ålice\",\"x\":\"é\"}".as_bytes()).is_ok());
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        assert!(matches!(
            parse_json::<Login>(b"{"),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            parse_json::<Login>(b"{\"username\": 5}"),
            Err(ApiError::Unprocessable(_))
        ));
    }
}
