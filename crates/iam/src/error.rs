//! The errors the `iam` crate returns, and how they map onto Google's API error.
//!
//! Every variant is caused by the caller (a bad role, permission, condition or policy), so every one maps to
//! `INVALID_ARGUMENT`. Messages are lowercase, name the user's input in backticks and say what would be valid.

use model::ApiError;

/// Why a role, permission, condition or policy was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IamError {
    #[error("unknown role `{role}`{}", did_you_mean(suggestion))]
    UnknownRole { role: String, suggestion: Option<String> },
    #[error("unknown permission `{permission}`{}", did_you_mean(suggestion))]
    UnknownPermission { permission: String, suggestion: Option<String> },
    #[error("invalid condition `{expression}`: {reason}")]
    InvalidCondition { expression: String, reason: String },
    #[error("{0}")]
    InvalidPolicy(String),
    #[error("{0}")]
    InvalidRole(String),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    }
}

/// Long conditions are shortened in API messages so a 12,800-character expression does not flood the reply.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

impl From<IamError> for ApiError {
    fn from(e: IamError) -> ApiError {
        let message = match &e {
            // Google: "Role roles/x is not supported for this resource." We add the suggestion.
            IamError::UnknownRole { role, suggestion } => {
                format!("Role {role} is not supported for this resource.{}", suggestion_sentence(suggestion))
            }
            // Google: "Permission x is not valid."
            IamError::UnknownPermission { permission, suggestion } => {
                format!("Permission {permission} is not valid.{}", suggestion_sentence(suggestion))
            }
            IamError::InvalidCondition { expression, reason } => {
                format!("Condition expression `{}` is invalid: {reason}", shorten(expression))
            }
            IamError::InvalidPolicy(m) | IamError::InvalidRole(m) => m.clone(),
        };
        ApiError::invalid(message)
    }
}

fn suggestion_sentence(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" Did you mean `{s}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Code;

    #[test]
    fn messages_name_the_input_and_the_fix() {
        let e = IamError::UnknownRole { role: "roles/run.invokr".into(), suggestion: Some("roles/run.invoker".into()) };
        assert_eq!(e.to_string(), "unknown role `roles/run.invokr`; did you mean `roles/run.invoker`?");
        let api: ApiError = e.into();
        assert_eq!(api.code, Code::InvalidArgument);
        assert_eq!(
            api.message,
            "Role roles/run.invokr is not supported for this resource. Did you mean `roles/run.invoker`?"
        );
        let e = IamError::UnknownPermission { permission: "run.foo".into(), suggestion: None };
        assert_eq!(e.to_string(), "unknown permission `run.foo`");
        assert_eq!(ApiError::from(e).message, "Permission run.foo is not valid.");
    }
}
