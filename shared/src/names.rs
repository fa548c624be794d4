//! Rules for nicks and room names, and the case folding that makes them unique.

use std::borrow::Cow;

/// Longest nick, in characters.
pub const MAX_NICK_CHARS: usize = 32;
/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("name is empty")]
    Empty,
    /// The name has more characters than allowed.
    #[error("name is longer than {max} characters")]
    TooLong {
        /// Maximum characters.
        max: usize,
    },
    /// The name holds a character outside letters, digits and `-_.[]{}|^`.
    #[error("name contains {0:?}; use letters, digits and -_.[]{{}}|^")]
    BadChar(char),
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || "-_.[]{}|^".contains(c)
}

fn validate(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(bad) = name.chars().find(|&c| !is_name_char(c)) {
        return Err(NameError::BadChar(bad));
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { max });
    }
    Ok(())
}

/// Checks a nick: 1 to 32 letters, digits or `-_.[]{}|^`.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    validate(nick, MAX_NICK_CHARS)
}

/// Checks a room name: 1 to 64 letters, digits or `-_.[]{}|^`.
pub fn validate_room(room: &str) -> Result<(), NameError> {
    validate(room, MAX_ROOM_CHARS)
}

/// The key under which a name is unique: `Alice` and `alice` are the same user.
pub fn fold(name: &str) -> Cow<'_, str> {
    if name.chars().any(char::is_uppercase) {
        Cow::Owned(name.to_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}
