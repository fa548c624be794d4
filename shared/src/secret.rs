//! [`Password`]: a password on its way from a client to the server's account check.
//! Its `Debug` prints `<redacted>`, so a password carried in a [`crate::Frame`] or a
//! parsed command never reaches a log line, a panic message or a test failure.

use std::fmt;

/// A password as a client sent it. Read it with [`Password::expose`], only where it is
/// checked; everything else sees `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    /// Wraps `password`.
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself, for the one place that checks or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&p)), "Some(<redacted>)");
        assert_eq!(p.expose(), "hunter2");
    }
}
