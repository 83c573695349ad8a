//! Reading settings from environment variables, with errors that name the variable and value.
//!
//! Readers take the lookup as a function so tests (and a TOML layer) can supply variables
//! without touching the process environment.

use std::str::FromStr;

/// An environment variable holds a value its setting cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid environment variable {variable}={value:?}: expected {expected}")]
#[non_exhaustive]
pub struct EnvError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it should hold.
    pub expected: &'static str,
}

resilience_core::governed_by_process!(EnvError);

/// Looks a variable up; `None` when unset.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment (a value that is not UTF-8 comes back lossily, and then fails to
/// parse with the value shown).
pub(crate) fn process(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// `variable` parsed as `T`; `None` when unset or blank.
pub(crate) fn parsed<T: FromStr>(
    lookup: Lookup<'_>,
    variable: &'static str,
    expected: &'static str,
) -> Result<Option<T>, EnvError> {
    match lookup(variable) {
        Some(value) if value.trim().is_empty() => Ok(None),
        Some(value) => value.trim().parse().map(Some).map_err(|_| EnvError {
            variable,
            // Echoed to people: never with a password in it.
            value: crate::redact_text(&value),
            expected,
        }),
        None => Ok(None),
    }
}

/// `variable` as a boolean (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`).
pub(crate) fn flag(lookup: Lookup<'_>, variable: &'static str) -> Result<Option<bool>, EnvError> {
    let Some(raw) = parsed::<String>(lookup, variable, "true or false")? else {
        return Ok(None);
    };
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => Err(EnvError {
            variable,
            value: crate::redact_text(&raw),
            expected: "true or false",
        }),
    }
}
