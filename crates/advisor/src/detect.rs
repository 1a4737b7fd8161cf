//! Does a plain environment variable look like a secret? By its name (PASSWORD, TOKEN, API_KEY, …) or by its value
//! (a private-key block, a known token format, a URL with a password in it, a long high-entropy string).
//!
//! The answer is a reason in words, never the value or a part of it: findings quote the reason.

/// Words in a variable name that say it holds a secret, matched against the name's `_`/`-`/`.`-separated words
/// (or, for the compound ones, anywhere in the name).
const SECRET_WORDS: [&str; 9] =
    ["PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "CREDENTIALS", "CREDENTIAL", "DSN"];
const SECRET_COMPOUNDS: [&str; 10] = [
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "SECRET_KEY",
    "SIGNING_KEY",
    "ENCRYPTION_KEY",
    "CLIENT_SECRET",
    "CONNECTION_STRING",
    "AUTH_KEY",
];
/// Last words that make the name about a secret rather than the secret itself (`TOKEN_URL`, `PASSWORD_MIN_LENGTH`,
/// `SECRET_NAME`); such a variable is judged by its value only.
const NOT_THE_SECRET: [&str; 14] = [
    "URL", "URI", "ENDPOINT", "HOST", "PATH", "FILE", "NAME", "ID", "LENGTH", "TTL", "HEADER", "EXPIRY", "TIMEOUT",
    "VERSION",
];

/// Why the name says "secret", or `None`.
pub fn secret_name(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(['_', '-', '.']).filter(|w| !w.is_empty()).collect();
    if words.last().is_some_and(|w| NOT_THE_SECRET.contains(w)) {
        return None;
    }
    if let Some(c) = SECRET_COMPOUNDS.iter().find(|c| upper.contains(*c)) {
        return Some(format!("its name contains {c}"));
    }
    words.iter().find(|w| SECRET_WORDS.contains(w)).map(|w| format!("its name contains the word {w}"))
}

/// Prefixes of well-known credential formats, with a minimum total length and what they are.
const TOKEN_PREFIXES: [(&str, usize, &str); 14] = [
    ("AKIA", 20, "an AWS access key id"),
    ("ASIA", 20, "an AWS temporary access key id"),
    ("ghp_", 40, "a GitHub personal access token"),
    ("gho_", 40, "a GitHub OAuth token"),
    ("ghs_", 40, "a GitHub app token"),
    ("ghu_", 40, "a GitHub user-to-server token"),
    ("github_pat_", 40, "a GitHub fine-grained token"),
    ("glpat-", 26, "a GitLab personal access token"),
    ("xoxb-", 20, "a Slack bot token"),
    ("xoxp-", 20, "a Slack user token"),
    ("sk_live_", 24, "a Stripe secret key"),
    ("AIza", 39, "a Google API key"),
    ("ya29.", 30, "a Google OAuth access token"),
    ("npm_", 40, "an npm token"),
];

/// Why the value looks like a secret, or `None`. The reason never quotes the value.
pub fn secret_value(value: &str) -> Option<String> {
    let v = value.trim();
    if v.contains("-----BEGIN") && v.contains("PRIVATE KEY") {
        return Some("its value holds a PEM private key block".into());
    }
    for (prefix, min, what) in TOKEN_PREFIXES {
        if v.starts_with(prefix) && v.len() >= min && v.bytes().all(|b| b.is_ascii_graphic()) {
            return Some(format!("its value has the format of {what}"));
        }
    }
    if (v.starts_with("sk-") && v.len() >= 40 && !v.contains(' ')) || (v.starts_with("SG.") && v.len() >= 60) {
        return Some("its value has the format of an API secret key".into());
    }
    if is_jwt(v) {
        return Some("its value is a JSON Web Token".into());
    }
    if url_with_password(v) {
        return Some("its value is a URL with a password in it".into());
    }
    if high_entropy(v) {
        return Some("its value is a long random-looking string".into());
    }
    None
}

/// The reason a plain variable looks like a secret: name first, then value. An empty value is no secret.
pub fn looks_secret(name: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return None;
    }
    secret_value(value).or_else(|| secret_name(name))
}

fn is_jwt(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// `scheme://user:password@host…` with a non-empty password.
fn url_with_password(v: &str) -> bool {
    let Some((_, rest)) = v.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let Some((userinfo, _host)) = authority.rsplit_once('@') else { return false };
    userinfo.split_once(':').is_some_and(|(_, pass)| !pass.is_empty())
}

/// At least 32 characters of one token (no spaces, not a URL or a path), from a base64/hex-like alphabet, with
/// enough Shannon entropy per character: ≥ 3.0 bits for hex, ≥ 4.0 otherwise (English words and identifiers
/// stay below).
fn high_entropy(v: &str) -> bool {
    if v.len() < 32 || v.contains("://") || v.starts_with('/') || v.contains(char::is_whitespace) {
        return false;
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=_-.".contains(&b)) {
        return false;
    }
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
    ];
    let hex = v.bytes().all(|b| b.is_ascii_hexdigit());
    let e = entropy(v);
    if hex {
        e >= 3.0
    } else {
        classes.iter().filter(|c| **c).count() >= 2 && e >= 4.0
    }
}

fn entropy(v: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in v.bytes() {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|&c| c as f64 / n).map(|p| -p * p.log2()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_hit() {
        for name in [
            "DB_PASSWORD",
            "db-pass",
            "API_KEY",
            "STRIPE_APIKEY",
            "GITHUB_TOKEN",
            "JWT_SECRET",
            "SENTRY_DSN",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SERVICE_PRIVATE_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "OAUTH_CLIENT_SECRET",
        ] {
            assert!(secret_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn names_about_secrets_are_near_misses() {
        for name in [
            "TOKEN_URL",
            "PASSWORD_MIN_LENGTH",
            "SECRET_NAME",
            "LOG_LEVEL",
            "PASSPORT_REGION",
            "KEYBOARD",
            "BYPASS_CACHE",
            "TOKENIZER_MODEL",
            "PORT",
        ] {
            assert_eq!(secret_name(name), None, "{name}");
        }
    }

    #[test]
    fn secret_values_hit_and_the_reason_never_quotes_them() {
        let values = [
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "xoxb-123456789012-abcdefghijkl",
            "postgres://app:s3cr3t-pw@10.0.0.5:5432/db",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlX2J5dGVzX2hlcmU",
            "q8ZrT2vN5xLp0aWc7KdYm3HsBf9GjE1u",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ];
        for v in values {
            let why = secret_value(v).unwrap_or_else(|| panic!("not detected: {v}"));
            assert!(!why.contains(v) && !why.contains(&v[..6]), "{why}");
        }
    }

    #[test]
    fn ordinary_values_are_near_misses() {
        for v in [
            "production",
            "https://api.example.com/v1",
            "postgres://app@10.0.0.5:5432/db",
            "https://user@example.com/",
            "/var/run/secrets/cloud.google.com",
            "us-docker.pkg.dev/cloudrun/container/hello",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "this_is_a_long_configuration_value_name",
            "AKIA-short",
            "8080",
        ] {
            assert_eq!(secret_value(v), None, "{v}");
        }
    }

    #[test]
    fn looks_secret_needs_a_value() {
        assert!(looks_secret("DB_PASSWORD", "hunter2").is_some());
        assert_eq!(looks_secret("DB_PASSWORD", ""), None);
        assert!(looks_secret("DATABASE_URL", "mysql://root:pw@db/app").is_some());
        assert_eq!(looks_secret("DATABASE_URL", "mysql://db/app"), None);
    }
}
