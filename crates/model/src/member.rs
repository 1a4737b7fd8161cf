//! IAM members (`user:…`, `serviceAccount:…`, `allUsers`, …), parsed from the strings policies carry.

use std::fmt;

/// One member of an IAM binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    AllUsers,
    AllAuthenticatedUsers,
    User(String),
    ServiceAccount(String),
    Group(String),
    Domain(String),
    /// `deleted:{kind}:{email}?uid={id}`: a principal that was deleted; it matches nobody.
    Deleted {
        kind: DeletedKind,
        email: String,
        uid: String,
    },
    /// `principal://…` and `principalSet://…` (workload identity federation); kept as written, matches nobody here.
    Federated(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeletedKind {
    User,
    ServiceAccount,
    Group,
}

impl DeletedKind {
    fn prefix(self) -> &'static str {
        match self {
            DeletedKind::User => "user",
            DeletedKind::ServiceAccount => "serviceAccount",
            DeletedKind::Group => "group",
        }
    }
}

/// Why a member string was rejected. The message names the member and says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid member `{member}`: {reason}")]
pub struct MemberError {
    pub member: String,
    pub reason: String,
}

const FORMS: &str =
    "use `user:EMAIL`, `serviceAccount:EMAIL`, `group:EMAIL`, `domain:DOMAIN`, `allUsers` or `allAuthenticatedUsers`";

impl Member {
    /// Parses a member exactly as Google writes it (case-sensitive prefixes, no surrounding spaces).
    pub fn parse(s: &str) -> Result<Member, MemberError> {
        let err = |reason: String| MemberError { member: s.to_owned(), reason };
        if s.len() > 512 {
            return Err(err("a member is at most 512 characters".into()));
        }
        match s {
            "allUsers" => return Ok(Member::AllUsers),
            "allAuthenticatedUsers" => return Ok(Member::AllAuthenticatedUsers),
            _ => {}
        }
        if s.starts_with("principal://") || s.starts_with("principalSet://") {
            let rest = s.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if rest.is_empty() || rest.chars().any(char::is_whitespace) {
                return Err(err("a federated principal needs an identifier after `://`".into()));
            }
            return Ok(Member::Federated(s.to_owned()));
        }
        let Some((kind, value)) = s.split_once(':') else {
            let hint = if s.contains('@') {
                format!("it has no type prefix; did you mean `user:{s}` or `serviceAccount:{s}`?")
            } else {
                format!("it has no type prefix; {FORMS}")
            };
            return Err(err(hint));
        };
        match kind {
            "user" => valid_email(value).map(|e| Member::User(e.to_owned())).map_err(err),
            "serviceAccount" => valid_email(value).map(|e| Member::ServiceAccount(e.to_owned())).map_err(err),
            "group" => valid_email(value).map(|e| Member::Group(e.to_owned())).map_err(err),
            "domain" => valid_domain(value).map(|d| Member::Domain(d.to_owned())).map_err(err),
            "deleted" => parse_deleted(value).map_err(err),
            other => {
                let suggestion = ["user", "serviceAccount", "group", "domain", "deleted"]
                    .into_iter()
                    .find(|k| k.eq_ignore_ascii_case(other));
                Err(err(match suggestion {
                    Some(k) => format!("unknown member type `{other}`; did you mean `{k}:`?"),
                    None => format!("unknown member type `{other}`; {FORMS}"),
                }))
            }
        }
    }

    /// The email of a principal member (`user`, `serviceAccount`, `group`), if it has one.
    pub fn email(&self) -> Option<&str> {
        match self {
            Member::User(e) | Member::ServiceAccount(e) | Member::Group(e) => Some(e),
            _ => None,
        }
    }

    /// True for `allUsers`, `allAuthenticatedUsers` and `domain:` — members that reach beyond named principals.
    pub fn is_public(&self) -> bool {
        matches!(self, Member::AllUsers | Member::AllAuthenticatedUsers | Member::Domain(_))
    }
}

fn parse_deleted(value: &str) -> Result<Member, String> {
    let (kind, rest) =
        value.split_once(':').ok_or_else(|| "a deleted member looks like `deleted:user:EMAIL?uid=ID`".to_owned())?;
    let kind = match kind {
        "user" => DeletedKind::User,
        "serviceAccount" => DeletedKind::ServiceAccount,
        "group" => DeletedKind::Group,
        other => return Err(format!("unknown deleted member type `{other}`; use `user`, `serviceAccount` or `group`")),
    };
    let (email, uid) = rest.split_once("?uid=").ok_or_else(|| "a deleted member ends with `?uid=ID`".to_owned())?;
    let email = valid_email(email)?;
    if uid.is_empty() || !uid.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{uid}` is not a numeric uid"));
    }
    Ok(Member::Deleted { kind, email: email.to_owned(), uid: uid.to_owned() })
}

/// Checks the shape of an email address: `local@domain.tld`, ASCII, no spaces.
pub fn valid_email(s: &str) -> Result<&str, String> {
    let Some((local, domain)) = s.split_once('@') else {
        return Err(format!("`{s}` is not an email address"));
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "._+-'".contains(c));
    if !local_ok {
        return Err(format!("`{s}` is not an email address"));
    }
    valid_domain(domain).map_err(|_| format!("`{s}` is not an email address"))?;
    Ok(s)
}

fn valid_domain(s: &str) -> Result<&str, String> {
    // `localhost` is the one dotless domain allowed: the platform's operator is `owner@localhost`.
    let ok = s.len() <= 253
        && (s.contains('.') || s == "localhost")
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(s)
    } else {
        Err(format!("`{s}` is not a domain name"))
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::AllUsers => f.write_str("allUsers"),
            Member::AllAuthenticatedUsers => f.write_str("allAuthenticatedUsers"),
            Member::User(e) => write!(f, "user:{e}"),
            Member::ServiceAccount(e) => write!(f, "serviceAccount:{e}"),
            Member::Group(e) => write!(f, "group:{e}"),
            Member::Domain(d) => write!(f, "domain:{d}"),
            Member::Deleted { kind, email, uid } => write!(f, "deleted:{}:{email}?uid={uid}", kind.prefix()),
            Member::Federated(s) => f.write_str(s),
        }
    }
}

impl std::str::FromStr for Member {
    type Err = MemberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Member::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid_members_round_trip() {
        for s in [
            "allUsers",
            "allAuthenticatedUsers",
            "user:a@example.com",
            "serviceAccount:sa@p.iam.gserviceaccount.com",
            "group:g@example.com",
            "domain:example.com",
            "deleted:user:a@example.com?uid=123",
            "deleted:serviceAccount:sa@p.iam.gserviceaccount.com?uid=1",
            "principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/*",
        ] {
            let m = Member::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(m.to_string(), s);
        }
    }

    #[test]
    fn malformed_members_name_the_problem() {
        for (s, want) in [
            ("bob@example.com", "did you mean `user:bob@example.com`"),
            ("User:bob@example.com", "did you mean `user:`"),
            ("user:bob", "not an email address"),
            ("user:", "not an email address"),
            ("allusers", "no type prefix"),
            ("domain:example", "not a domain name"),
            ("deleted:user:a@example.com", "?uid="),
            ("deleted:user:a@example.com?uid=x", "not a numeric uid"),
            ("serviceAccount:a b@example.com", "not an email address"),
        ] {
            let e = Member::parse(s).unwrap_err();
            assert_eq!(e.member, s);
            assert!(e.to_string().contains(want), "{s}: {e}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in ".{0,80}") {
            if let Ok(m) = Member::parse(&s) {
                prop_assert_eq!(m.to_string(), s);
            }
        }
    }
}
