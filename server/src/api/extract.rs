//! Extractors whose rejections answer the error envelope instead of axum's plain-text bodies.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;

use super::error::ApiError;

/// `axum::Json`, with bad JSON, wrong content type and oversize bodies as envelopes.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Path`, with unparsable segments as 400 envelopes.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `axum::extract::Query`, with bad parameters as 400 envelopes.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::payload_too_large("the request body is too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::validation(
                "the request body must be JSON, sent with Content-Type: application/json",
            ),
            _ => ApiError::validation(json_message(&rejection)),
        }
    }
}

/// axum's text names the field (`visibility: unknown variant ...`); drop its generic prefix.
fn json_message(rejection: &JsonRejection) -> String {
    let text = rejection.body_text();
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
        .unwrap_or(&text);
    format!("invalid JSON body: {text}")
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::validation(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let text = rejection.body_text();
        let text = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text)
            .to_owned();
        ApiError::validation(format!("invalid query: {text}"))
    }
}
