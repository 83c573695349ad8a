//! The gate in front of state-changing endpoints: a bearer token, and a JSON content type.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::config::AdminToken;
use super::routes::error;

/// How to enable mutations, for the 403 of a server without a token.
const HOW_TO_ENABLE: &str = "state-changing endpoints are disabled: configure a token \
(http.admin_token, http.admin_token_file, or RESILIENCE_ADMIN_TOKEN) and send it as \
`Authorization: Bearer <token>` with `Content-Type: application/json`";

/// Lets a request through only with the admin token and a JSON content type.
pub(super) async fn require_admin(
    State(token): State<Arc<Option<AdminToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_ref() else {
        return error(StatusCode::FORBIDDEN, HOW_TO_ENABLE);
    };
    if !bearer(request.headers()).is_some_and(|offered| token.matches(offered)) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a valid `Authorization: Bearer <admin token>` is required",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    if !json(request.headers()) {
        // A simple cross-site form can only send text/plain, urlencoded or multipart bodies.
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "state-changing requests must be sent as `Content-Type: application/json`",
        );
    }
    next.run(request).await.into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
