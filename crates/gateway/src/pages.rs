//! Google Front End's error pages, byte for byte as captured (PROTOCOL §3.2), and Cloud Run's terse answers for
//! upstream trouble. The request path is HTML-escaped before it is quoted.

/// Content type of every page.
pub const HTML: &str = "text/html; charset=utf-8";

/// Cloud Run's page for a URL that names no service.
pub const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> <ins>That’s an error.</ins>\n  <p>The requested URL was not found on this server.  <ins>That’s all we know.</ins>\n";

/// Google's front end's page for a request it will not route: no `Host`, or more than one (RFC 9112 §3.2).
pub const BAD_REQUEST_PAGE: &str = "<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <title>Error 400 (Bad Request)!!1</title>\n  <p><b>400.</b> <ins>That’s an error.</ins>\n  <p>Your client has issued a malformed or illegal request.  <ins>That’s all we know.</ins>\n";

/// The h2 of the 403 for a private service called without a token (PROTOCOL §3.1).
pub const NOT_AUTHENTICATED: &str =
    "The request was not authenticated. Either allow public access or set the proper Authorization header";

/// Body of the 429 when no instance is free (Cloud Run's wording).
pub const RATE_EXCEEDED: &str = "Rate exceeded.";
/// Body of the 503 when the service cannot serve.
pub const SERVICE_UNAVAILABLE: &str = "Service Unavailable";
/// Body of the 504 when the instance does not answer in time.
pub const UPSTREAM_TIMEOUT: &str = "upstream request timeout";
/// Body of the 502 when the instance broke the connection.
pub const BAD_GATEWAY: &str = "upstream connect error or disconnect/reset before headers";

fn gfe(title: &str, h1: &str, h2: &str) -> String {
    let mut s = String::with_capacity(256 + h2.len());
    s.push_str("<html><head>\n<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n<title>");
    s.push_str(title);
    s.push_str("</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: ");
    s.push_str(h1);
    s.push_str("</h1>\n<h2>");
    s.push_str(h2);
    s.push_str("</h2>\n<h2></h2>\n</body></html>\n");
    s
}

/// 401: the token was refused.
pub fn unauthorized(path: &str) -> String {
    let mut h2 = String::from("Your client does not have permission to the requested URL <code>");
    model::html::escape_into(&mut h2, path);
    h2.push_str("</code>.");
    gfe("401 Unauthorized", "Unauthorized", &h2)
}

/// 403: the principal lacks `run.routes.invoke`.
pub fn forbidden(path: &str) -> String {
    let mut h2 = String::from("Your client does not have permission to get URL <code>");
    model::html::escape_into(&mut h2, path);
    h2.push_str("</code> from this server.");
    gfe("403 Forbidden", "Forbidden", &h2)
}

/// 403: a private service called without a token.
pub fn not_authenticated() -> String {
    gfe("403 Forbidden", "Forbidden", NOT_AUTHENTICATED)
}

/// 503 with the reason the instance could not start.
pub fn unavailable(reason: Option<&str>) -> String {
    let mut s = String::from(SERVICE_UNAVAILABLE);
    if let Some(r) = reason {
        s.push_str(": ");
        model::html::escape_into(&mut s, r);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_matches_the_captured_page() {
        assert_eq!(
            unauthorized("/endpoint/xxxxx"),
            "<html><head>\n<meta http-equiv=\"content-type\" content=\"text/html;charset=utf-8\">\n<title>401 \
             Unauthorized</title>\n</head>\n<body text=#000000 bgcolor=#ffffff>\n<h1>Error: Unauthorized</h1>\n<h2>Your \
             client does not have permission to the requested URL <code>/endpoint/xxxxx</code>.</h2>\n<h2></h2>\n\
             </body></html>\n"
        );
    }

    #[test]
    fn paths_are_escaped() {
        let page = forbidden("/<script>alert('x')</script>&");
        assert!(page.contains("<code>/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</code> from this server."));
        assert!(!page.contains("<script>"));
        assert!(not_authenticated().contains(&format!("<h2>{NOT_AUTHENTICATED}</h2>")));
        assert_eq!(unavailable(Some("<x>")), "Service Unavailable: &lt;x&gt;");
    }
}
