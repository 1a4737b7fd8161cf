//! Step 1: which service does this request name? By the listener's port (each service has its own loopback URL) or,
//! on the main gateway port, by the `Host` header (lowercase, port removed); on the load balancer's, by the `Host`
//! header or a service URL's own `127.0.0.1:PORT` in it. No match is Google's 404 page.

use std::sync::Arc;

use http::{header, HeaderMap, Uri};

use crate::{Route, RouteBy, Routes};

/// The route for a request, if any. Allocates only when the host has upper-case letters.
pub fn find(routes: &Routes, by: RouteBy, headers: &HeaderMap, uri: &Uri) -> Option<Arc<Route>> {
    let host = match headers.get(header::HOST) {
        Some(v) => v.to_str().ok(),
        None => uri.host(),
    };
    find_host(routes, by, host)
}

/// As [`find`], given the request's host (its `Host` header, or the authority of an absolute-form target).
pub fn find_host(routes: &Routes, by: RouteBy, host: Option<&str>) -> Option<Arc<Route>> {
    match by {
        RouteBy::Port(port) => routes.by_port.get(&port).cloned(),
        RouteBy::Host => by_host(routes, host?),
        // A service URL's own `127.0.0.1:PORT` as the Host names the service too (the load balancer's backends
        // are the services, whatever URL the caller used).
        RouteBy::HostOrServiceUrl => {
            let host = host?;
            by_host(routes, host).or_else(|| match host.rsplit_once(':') {
                Some(("127.0.0.1" | "localhost", port)) => routes.by_port.get(&port.parse().ok()?).cloned(),
                _ => None,
            })
        }
    }
}

fn by_host(routes: &Routes, host: &str) -> Option<Arc<Route>> {
    let host = strip_port(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        routes.by_host.get(&host.to_ascii_lowercase()).cloned()
    } else {
        routes.by_host.get(host).cloned()
    }
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`; a trailing dot (`a.run.app.`) is dropped too.
pub fn strip_port(host: &str) -> &str {
    let host = if host.starts_with('[') {
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.run.app:8080"), "a.run.app");
        assert_eq!(strip_port("a.run.app"), "a.run.app");
        assert_eq!(strip_port("a.run.app."), "a.run.app");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn host_routing_ignores_case_and_port() {
        let route = Arc::new(Route {
            service: "api".into(),
            resource: "r".into(),
            audiences: vec![],
            invoker_iam_disabled: false,
            timeout: None,
            ingress: crate::Ingress::All,
        });
        let mut routes = Routes::default();
        routes.by_host.insert("api.run.app".into(), route);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "API.Run.App:9000".parse().unwrap());
        assert!(find(&routes, RouteBy::Host, &h, &Uri::from_static("/")).is_some());
        h.insert(header::HOST, "other.run.app".parse().unwrap());
        assert!(find(&routes, RouteBy::Host, &h, &Uri::from_static("/")).is_none());
        assert!(find(&routes, RouteBy::Port(1), &h, &Uri::from_static("/")).is_none());
    }
}
