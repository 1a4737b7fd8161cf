//! Every response the server sends is built here, so every one carries `Metadata-Flavor: Google` and the Cloud Run
//! `Server` header (google-auth's ping requires the former on a 200).

use axum::body::Body;
use axum::http::header::{ALLOW, CONTENT_TYPE, SERVER};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

pub(crate) const METADATA_FLAVOR: HeaderName = HeaderName::from_static("metadata-flavor");
const GOOGLE: HeaderValue = HeaderValue::from_static("Google");
const SERVER_NAME: HeaderValue = HeaderValue::from_static("Metadata Server for Serverless");

/// Plain values and listings, as GCE sends them.
const APPLICATION_TEXT: HeaderValue = HeaderValue::from_static("application/text");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The `identity` JWT. google-auth requires a `Content-Type` and runs `json.loads` on `application/json`, so the JWT
/// goes out as HTML, like GCE's.
const JWT_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const ERROR_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/html; charset=UTF-8");

fn respond(status: StatusCode, content_type: HeaderValue, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(METADATA_FLAVOR, GOOGLE);
    headers.insert(SERVER, SERVER_NAME);
    headers.insert(CONTENT_TYPE, content_type);
    response
}

pub(crate) fn text(body: String) -> Response {
    respond(StatusCode::OK, APPLICATION_TEXT, body)
}

pub(crate) fn json(value: &serde_json::Value) -> Response {
    respond(StatusCode::OK, APPLICATION_JSON, value.to_string())
}

pub(crate) fn jwt(token: String) -> Response {
    respond(StatusCode::OK, JWT_CONTENT_TYPE, token)
}

/// An error page. The message is HTML-escaped (it may echo caller input) and is the whole body, so google-auth's
/// `RefreshError` shows it as is.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    respond(status, ERROR_CONTENT_TYPE, format!("{}\n", escape_html(message)))
}

pub(crate) fn method_not_allowed() -> Response {
    let mut response =
        error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed; the metadata server answers GET only.");
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Escapes the characters that could open markup. Quotes are left alone: the body is never inside an attribute, and
/// Google's permission messages quote with `'`.
fn escape_html(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_but_keeps_quotes() {
        assert_eq!(escape_html("<b>'x' & y</b>"), "&lt;b&gt;'x' &amp; y&lt;/b&gt;");
    }
}
