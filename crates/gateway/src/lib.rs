//! The front door in front of every service.
//!
//! Services arrive with the services issue; until then no URL routes anywhere, and the gateway answers every request
//! with the 404 page Cloud Run serves for a URL that names no service.
//!
//! Architecture Invariant: the hot path does no database query and no signing.

#![forbid(unsafe_code)]

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// Cloud Run's page for a URL that names no service.
pub const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL was not found on this server.  <ins>That’s all we know.</ins>\n";

pub fn router() -> Router {
    Router::new().fallback(not_found)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], NOT_FOUND_PAGE).into_response()
}
