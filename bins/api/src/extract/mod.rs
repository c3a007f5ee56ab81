//! Request extraction: the JSON body extractor, integers as JSON Schema defines them, body
//! limits, and problem+json for every extractor failure (actix's defaults answer
//! `text/plain` 400s).

pub mod integer;
mod json;

use actix_web::{
    error::{PathError, PayloadError, QueryPayloadError, UrlencodedError},
    web,
};
use futures::StreamExt;

pub use json::{Json, parse_json};

use crate::error::ApiError;

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest form body accepted (the login form).
pub const FORM_LIMIT: usize = 16 * 1024;

/// `Path<T>` settings: an unparsable id is simply a resource that does not exist.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err: PathError, _req| {
        ApiError::NotFound(format!("no such resource ({err})")).into()
    })
}

/// `Query<T>` settings.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        ApiError::Unprocessable(format!("invalid query string: {err}")).into()
    })
}

/// `Form<T>` settings.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(FORM_LIMIT)
        .error_handler(|err, _req| form_error(err).into())
}

/// Maps a serde_json failure: data errors (types, unknown fields, ranges) are 422,
/// everything else (syntax, truncation) 400.
pub fn serde_json_error(e: &serde_json::Error) -> ApiError {
    match e.classify() {
        serde_json::error::Category::Data => ApiError::Unprocessable(e.to_string()),
        _ => ApiError::Malformed(format!("malformed JSON: {e}")),
    }
}

fn form_error(err: UrlencodedError) -> ApiError {
    match err {
        UrlencodedError::Overflow { limit, .. } => ApiError::PayloadTooLarge { limit },
        UrlencodedError::ContentType => ApiError::UnsupportedMediaType(
            "the body must be application/x-www-form-urlencoded".into(),
        ),
        UrlencodedError::Parse(e) => ApiError::Unprocessable(format!("invalid form body: {e}")),
        other => ApiError::Malformed(other.to_string()),
    }
}

/// Maps a failure to read the body.
pub fn payload_error(err: PayloadError, limit: usize) -> ApiError {
    match err {
        PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
        other => ApiError::Malformed(format!("could not read the body: {other}")),
    }
}

/// Reads a whole body of at most `limit` bytes (413 beyond).
pub async fn read_body(
    mut payload: actix_web::dev::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| payload_error(e, limit))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// A declared `Content-Length` above `limit` is refused before anything is read.
pub fn check_declared_length(req: &actix_web::HttpRequest, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}
