//! Rules for nicks and room names, and the case folding that makes them unique.

use std::borrow::Cow;

use crate::frame::MAX_STR8;

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
    /// The name's UTF-8 form is longer than a `str8` wire field can carry (many
    /// characters outside the Basic Multilingual Plane). Use fewer or simpler characters.
    #[error("name is longer than {max} bytes in UTF-8")]
    TooManyBytes {
        /// Maximum bytes.
        max: usize,
    },
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
    // 64 four-byte characters are 256 bytes: one more than a `str8` field holds.
    if name.len() > MAX_STR8 {
        return Err(NameError::TooManyBytes { max: MAX_STR8 });
    }
    Ok(())
}

/// Checks a nick: 1 to 32 letters, digits or `-_.[]{}|^`.
pub fn validate_nick(nick: &str) -> Result<(), NameError> {
    validate(nick, MAX_NICK_CHARS)
}

/// Checks a room name: 1 to 64 letters, digits or `-_.[]{}|^`, at most 255 bytes.
pub fn validate_room(room: &str) -> Result<(), NameError> {
    validate(room, MAX_ROOM_CHARS)
}

/// The key under which a name is unique: `Alice` and `alice` are the same user.
///
/// Always equal to `name.to_lowercase()`; borrowed when lowercasing changes nothing.
pub fn fold(name: &str) -> Cow<'_, str> {
    // Not `char::is_uppercase`: titlecase letters such as `ǅ` are not uppercase but
    // still lowercase to something else (`ǆ`).
    let unchanged = |c: char| {
        let mut lower = c.to_lowercase();
        lower.next() == Some(c) && lower.next().is_none()
    };
    if name.chars().all(unchanged) {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(name.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for nick in ["a", "guest-1", "A_b.c", "[x]{y}|z^", "Zoë", "日本語", "٣"] {
            assert_eq!(validate_nick(nick), Ok(()), "{nick}");
            assert_eq!(validate_room(nick), Ok(()), "{nick}");
        }
    }

    #[test]
    fn empty_names_are_refused() {
        assert_eq!(validate_nick(""), Err(NameError::Empty));
        assert_eq!(validate_room(""), Err(NameError::Empty));
    }

    #[test]
    fn lengths_count_characters() {
        assert_eq!(validate_nick(&"n".repeat(32)), Ok(()));
        assert_eq!(validate_nick(&"é".repeat(32)), Ok(()));
        assert_eq!(
            validate_nick(&"n".repeat(33)),
            Err(NameError::TooLong { max: 32 })
        );
        assert_eq!(validate_room(&"r".repeat(64)), Ok(()));
        assert_eq!(validate_room(&"日".repeat(64)), Ok(())); // 192 bytes
        assert_eq!(
            validate_room(&"r".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
    }

    /// Regression: 64 four-byte letters passed as a room name but are 256 bytes, one
    /// more than a `str8` field carries, so the server could not have encoded `Joined`.
    #[test]
    fn regression_room_names_fit_a_str8_field() {
        let room = "𝐀".repeat(64); // MATHEMATICAL BOLD CAPITAL A, 4 bytes each
        assert_eq!(room.len(), 256);
        assert_eq!(
            validate_room(&room),
            Err(NameError::TooManyBytes { max: 255 })
        );
        let room = "𝐀".repeat(63) + "日";
        assert_eq!(room.len(), 255);
        assert_eq!(validate_room(&room), Ok(()));
        assert_eq!(validate_nick(&"𝐀".repeat(32)), Ok(()));
    }

    #[test]
    fn bad_characters_are_named() {
        for (name, bad) in [
            ("a b", ' '),
            ("#rust", '#'),
            ("a/b", '/'),
            ("a@b", '@'),
            ("a:b", ':'),
            ("a,b", ','),
            ("a*", '*'),
            ("tab\there", '\t'),
            ("esc\u{1b}", '\u{1b}'),
            ("c1\u{9b}", '\u{9b}'),
            ("nul\0", '\0'),
            ("zero\u{200b}width", '\u{200b}'),
        ] {
            assert_eq!(
                validate_nick(name),
                Err(NameError::BadChar(bad)),
                "{name:?}"
            );
            assert_eq!(
                validate_room(name),
                Err(NameError::BadChar(bad)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn folding_makes_case_variants_equal() {
        assert_eq!(fold("Alice"), "alice");
        assert_eq!(fold("ALICE"), fold("alice"));
        assert_eq!(fold("ÉCOLE"), "école");
        assert_eq!(fold("[Guest]-1"), "[guest]-1");
        assert!(matches!(fold("already-lower"), Cow::Borrowed(_)));
        assert!(matches!(fold("ünïcode"), Cow::Borrowed(_)));
        assert!(matches!(fold("Upper"), Cow::Owned(_)));
    }

    /// Regression: titlecase letters (`ǅ`, U+01C5) are not `is_uppercase`, so `fold`
    /// returned them unchanged while `Ǆ` folded to `ǆ`: three spellings, two keys.
    #[test]
    fn regression_titlecase_letters_fold() {
        assert_eq!(fold("ǅ"), "ǆ");
        assert_eq!(fold("Ǆ"), fold("ǆ"));
        assert_eq!(fold("ǅ"), fold("ǆ"));
        assert_eq!(fold("ᾈ"), "ᾀ"); // GREEK CAPITAL ALPHA WITH PSILI AND PROSGEGRAMMENI
    }

    #[test]
    fn fold_equals_to_lowercase() {
        for code in 0u32..=0x2_0000 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let name = format!("x{c}y");
            assert_eq!(fold(&name), name.to_lowercase(), "U+{code:04X}");
        }
    }
}
