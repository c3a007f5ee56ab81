//! Extractor configuration: body limits and problem+json for every extractor failure
//! (actix's defaults answer `text/plain` 400s).

use actix_web::{
    error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError, UrlencodedError},
    web,
};

use crate::error::ApiError;

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest form body accepted (the login form).
pub const FORM_LIMIT: usize = 16 * 1024;

/// `Json<T>` settings: 64 KiB, `application/json` required, problem+json errors.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .content_type_required(true)
        .error_handler(|err, _req| json_error(err).into())
}

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

/// Maps a JSON body failure: syntax → 400, shape or range → 422, size → 413, type → 415.
pub fn json_error(err: JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("the body must be application/json".into())
        }
        JsonPayloadError::Deserialize(e) => serde_json_error(&e),
        JsonPayloadError::Payload(e) => payload_error(e),
        other => ApiError::Malformed(other.to_string()),
    }
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
pub fn payload_error(err: PayloadError) -> ApiError {
    match err {
        PayloadError::Overflow => ApiError::PayloadTooLarge { limit: JSON_LIMIT },
        other => ApiError::Malformed(format!("could not read the body: {other}")),
    }
}
