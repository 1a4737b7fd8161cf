//! Query parameters the server understands. Unknown parameters are ignored, as on GCE.

/// `?alt=`: the representation of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alt {
    Text,
    Json,
}

#[derive(Debug, Default)]
pub(crate) struct Params {
    pub alt: Option<Alt>,
    pub recursive: bool,
    pub wait_for_change: bool,
    /// `identity`: the raw values, checked by the identity handler.
    pub audience: Option<String>,
    pub format: Option<String>,
    pub licenses: Option<String>,
    /// `token`: comma-separated scopes.
    pub scopes: Option<String>,
}

/// Parses the query string. The error is a message for a 400.
pub(crate) fn parse(query: Option<&str>) -> Result<Params, String> {
    let mut params = Params::default();
    let Some(query) = query else {
        return Ok(params);
    };
    // form_urlencoded decodes lossily: an audience of `%ff` would become U+FFFD and be signed as such.
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let strict = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().is_ok();
        if !strict(name) || !strict(value) {
            return Err(format!("query parameter `{pair}` is not UTF-8 once percent-decoded"));
        }
    }
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "alt" => {
                params.alt = Some(match &*value {
                    "text" => Alt::Text,
                    "json" => Alt::Json,
                    _ => return Err(format!("invalid value `{value}` for `alt`; use `text` or `json`")),
                })
            }
            "recursive" => params.recursive = boolean("recursive", &value)?,
            "wait_for_change" => params.wait_for_change = boolean("wait_for_change", &value)?,
            "audience" => params.audience = Some(value.into_owned()),
            "format" => params.format = Some(value.into_owned()),
            "licenses" => params.licenses = Some(value.into_owned()),
            "scopes" => params.scopes = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(params)
}

fn boolean(name: &str, value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") || value.is_empty() {
        Ok(false)
    } else {
        Err(format!("invalid value `{value}` for `{name}`; use `true` or `false`"))
    }
}

/// Splits `?scopes=a,b` into a sorted, de-duplicated list (also the cache key). `None` when no scope is given.
pub(crate) fn scope_list(raw: &str) -> Option<Vec<String>> {
    let mut scopes: Vec<String> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    scopes.sort();
    scopes.dedup();
    (!scopes.is_empty()).then_some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_google_auth_and_gcloud_send() {
        assert!(parse(Some("audience=%ff")).unwrap_err().contains("not UTF-8"));
        let p = parse(Some("audience=https%3A%2F%2Fsvc-abc-uc.a.run.app&format=full&licenses=FALSE")).unwrap();
        assert_eq!(p.audience.as_deref(), Some("https://svc-abc-uc.a.run.app"));
        assert_eq!(p.format.as_deref(), Some("full"));
        assert_eq!(p.licenses.as_deref(), Some("FALSE"));
        assert!(parse(Some("recursive=True")).unwrap().recursive);
        assert!(parse(Some("alt=xml")).is_err());
        assert!(parse(Some("recursive=maybe")).is_err());
    }

    #[test]
    fn scopes_are_normalised() {
        assert_eq!(scope_list(" b,a,,b ").unwrap(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(scope_list(" , "), None);
    }
}
