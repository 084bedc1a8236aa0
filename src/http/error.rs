//! The API's one error type: every failure answers `{"success": false, "message", "error":
//! {"code", "message"}}` with a status from one match; causes of 5xx are logged, never sent.
//! The top-level `message` is what the app's admin route shows (`admin_rebuild_cache` in
//! `src/api/rest/admin_historical_data.py` reads `message` of a non-202 answer); `error` keeps
//! the stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong X-API-Key")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("a cache sync job is already running ({0})")]
    AlreadyRunning(String),
    #[error("{0}")]
    Conflict(String),
    #[error("refused by guard rails: {0}")]
    Refused(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::AlreadyRunning(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::AlreadyRunning(_) => "already_running",
            ApiError::Conflict(_) => "conflict",
            ApiError::Refused(_) => "refused",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Wraps any unexpected failure (logged server-side, generic to the client).
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error.cause_chain = ?cause, error.message = %cause, "request failed");
        }
        error_response(self.status_code(), self.code(), &self.to_string())
    }
}

/// The error body, written only here: `{"success": false, "message", "error": {"code",
/// "message"}}` (also for the framework's own rejections, which `http::json_errors` rewrites).
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "success": false,
        "message": message,
        "error": {"code": code, "message": message},
    });
    (status, Json(body)).into_response()
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<crate::history::HistoryError> for ApiError {
    fn from(e: crate::history::HistoryError) -> Self {
        use crate::history::HistoryError;
        match e {
            HistoryError::UnknownRun(_)
            | HistoryError::NothingBefore(_)
            | HistoryError::BeforeHorizon { .. } => ApiError::NotFound(e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::job::RunError> for ApiError {
    fn from(e: crate::job::RunError) -> Self {
        use crate::job::RunError;
        match e {
            RunError::LockHeld => ApiError::AlreadyRunning("the writer lock is held".to_owned()),
            RunError::Refused { .. } | RunError::Collision { .. } => {
                ApiError::Refused(e.to_string())
            }
            RunError::Config(c) => ApiError::BadRequest(c.to_string()),
            RunError::NoPrices => ApiError::Conflict(e.to_string()),
            RunError::History(h) => ApiError::from(h),
            other => ApiError::internal(other),
        }
    }
}

/// Malformed JSON bodies answer in the same shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}
