//! Errors that mean "you asked for something that can't be": exit status 2, like clap's own.

use std::fmt;

/// A mistake in what the user asked, found after parsing.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
