//! Identifiers that travel in URLs, queue messages and MongoDB keys.
//!
//! Both paredão and participant ids are slugs: short, lowercase, URL-safe, and free of the `|`
//! that separates the parts of a counter key. Parsing them once at the edge means every later
//! layer can use them as path segments and keys without escaping.

use thiserror::Error;

pub const MAX_SLUG_LEN: usize = 64;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SlugError {
    #[error("{kind} id must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} id is longer than {MAX_SLUG_LEN} characters")]
    TooLong { kind: &'static str },
    #[error("{kind} id may only hold lowercase letters, digits, '-' and '_'")]
    InvalidCharacter { kind: &'static str },
}

pub(crate) fn check(kind: &'static str, s: &str) -> Result<(), SlugError> {
    if s.is_empty() {
        return Err(SlugError::Empty { kind });
    }
    if s.len() > MAX_SLUG_LEN {
        return Err(SlugError::TooLong { kind });
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
        return Err(SlugError::InvalidCharacter { kind });
    }
    Ok(())
}

/// Declares a validated slug newtype: it can only be built through `parse`, and deserializing
/// runs the same check, so a value of the type is always valid.
macro_rules! slug_id {
    ($name:ident, $kind:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, $crate::slug::SlugError> {
                let s = s.into();
                $crate::slug::check($kind, &s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::slug::SlugError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[a-z0-9_-]{1,64}$"))
                    .examples([serde_json::json!("ana")])
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use slug_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_dash_underscore() {
        assert!(check("x", "paredao-10_b").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        assert_eq!(check("x", ""), Err(SlugError::Empty { kind: "x" }));
        assert_eq!(check("x", &"a".repeat(65)), Err(SlugError::TooLong { kind: "x" }));
        for bad in ["Ana", "a b", "a|b", "ana/..", "josé"] {
            assert_eq!(check("x", bad), Err(SlugError::InvalidCharacter { kind: "x" }), "{bad}");
        }
    }
}
