//! `pageSize` / `pageToken` for list methods whose items are all in memory: the token is the offset of the next
//! page, as a decimal string (opaque to clients).

use model::ApiError;
use serde_json::{json, Map, Value};

/// One page of `items` under `field`, with `nextPageToken` when more follow. `pageSize` absent or 0: the server's
/// choice, `default`; above `max`: `max` (Google caps, it does not refuse); not a number, or negative: 400. An
/// empty list is `{}`, as Google answers.
pub(crate) fn page(
    items: Vec<Value>,
    page_size: Option<&str>,
    page_token: Option<&str>,
    field: &str,
    default: usize,
    max: usize,
) -> Result<Map<String, Value>, ApiError> {
    let size = match page_size.filter(|s| !s.is_empty()) {
        None => default,
        Some(s) => match s.parse::<u64>() {
            Ok(0) => default,
            Ok(n) => usize::try_from(n).unwrap_or(usize::MAX).min(max),
            Err(_) => return Err(ApiError::invalid(format!("invalid `pageSize` `{s}`; use a number from 0 to {max}"))),
        },
    };
    let skip = match page_token.filter(|s| !s.is_empty()) {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| {
            ApiError::invalid(format!("invalid `pageToken` `{t}`; pass the `nextPageToken` of the previous page"))
        })?,
    };
    let total = items.len();
    let mut out = Map::new();
    let page: Vec<Value> = items.into_iter().skip(skip).take(size).collect();
    if !page.is_empty() {
        out.insert(field.to_owned(), Value::Array(page));
    }
    if skip.saturating_add(size) < total {
        out.insert("nextPageToken".into(), json!((skip + size).to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!(i)).collect()
    }

    #[test]
    fn pages_follow_their_tokens_and_sizes_are_capped_not_refused() {
        let first = page(items(5), Some("2"), None, "x", 10, 3).unwrap();
        assert_eq!(first["x"], json!([0, 1]));
        assert_eq!(first["nextPageToken"], "2");
        let last = page(items(5), Some("2"), Some("4"), "x", 10, 3).unwrap();
        assert_eq!((last["x"].clone(), last.get("nextPageToken")), (json!([4]), None));
        // 0 is the server's choice; too big is capped.
        assert_eq!(page(items(5), Some("0"), None, "x", 4, 10).unwrap()["x"], json!([0, 1, 2, 3]));
        assert_eq!(page(items(5), Some("99999999999"), None, "x", 10, 3).unwrap()["x"], json!([0, 1, 2]));
        assert!(page(items(0), None, None, "x", 10, 3).unwrap().is_empty());
        for (size, token) in [(Some("-1"), None), (Some("many"), None), (None, Some("zzz")), (None, Some("-3"))] {
            assert!(page(items(5), size, token, "x", 10, 3).is_err(), "{size:?} {token:?}");
        }
    }
}
