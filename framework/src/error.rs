//! `ApiError`: the error answer a plugin's handlers return, as JSON `{"error": "..."}` with
//! the right status, documented in the plugin's OpenAPI document. Datastore errors turn
//! into it with `?`: a client's mistake is a 4xx, only the server's own failure a 5xx.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::store::StoreError;

/// The body of every error: `{"error": "..."}`.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// What went wrong, naming the thing and the reason.
    pub error: String,
}

/// An error answer of a plugin's API.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Nothing is there.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the current state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// A condition of the request (`If-Match`) does not hold.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// The request body is over a limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not of a content type the operation takes.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// The server failed; the details are in its log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(body(message))
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(body(message))
    }

    /// 409 with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict(body(message))
    }

    /// 413 with `message`.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        ApiError::PayloadTooLarge(body(message))
    }

    /// 500; `error` goes to the log, the client gets a generic message.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %crate::manager::error_chain(error), "request failed");
        ApiError::Internal(body("internal error; the server log has the details"))
    }
}

fn body(message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: message.into(),
    })
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidKey { .. } | StoreError::Body { .. } => {
                ApiError::bad_request(error.to_string())
            }
            StoreError::TooLarge { .. } => ApiError::payload_too_large(error.to_string()),
            StoreError::PreconditionFailed { .. } => {
                ApiError::PreconditionFailed(body(error.to_string()))
            }
            other => ApiError::internal(&other),
        }
    }
}
