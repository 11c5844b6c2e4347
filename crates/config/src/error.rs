//! Configuration errors: one line each, naming the field.

/// Why a configuration was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config field `{field}`: {reason}")]
    Field { field: String, reason: String },
    #[error("config syntax error at line {line}: {reason}")]
    Syntax { line: usize, reason: String },
}

impl ConfigError {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Turns a TOML error into one line naming the field: the key on the offending line,
/// prefixed with the table it stands in.
pub(crate) fn from_toml(text: &str, err: &toml::de::Error) -> ConfigError {
    let reason = err
        .message()
        .lines()
        .next()
        .unwrap_or("invalid")
        .to_string();
    let Some(span) = err.span() else {
        return ConfigError::Syntax { line: 0, reason };
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match line.split_once('=') {
        Some((key, _)) if !key.trim().starts_with('[') => {
            let key = key.trim();
            let field = match table {
                Some(t) if !t.is_empty() => format!("{t}.{key}"),
                _ => key.to_string(),
            };
            ConfigError::Field { field, reason }
        }
        _ => match (table, reason.contains("missing field")) {
            (Some(t), _) if line.trim().starts_with('[') => ConfigError::Field { field: t, reason },
            _ => ConfigError::Syntax {
                line: line_no,
                reason,
            },
        },
    }
}
