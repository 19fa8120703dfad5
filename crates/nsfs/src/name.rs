//! Validated namespace names.

use std::ffi::OsStr;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Longest name a run-directory entry may have (`NAME_MAX`), in bytes.
///
/// # Examples
///
/// ```
/// assert!(nsfs::NsName::new("x".repeat(nsfs::NAME_MAX)).is_ok());
/// assert!(nsfs::NsName::new("x".repeat(nsfs::NAME_MAX + 1)).is_err());
/// ```
pub const NAME_MAX: usize = 255;

/// A validated network namespace name: one entry of a run directory.
///
/// Built the way `ip netns` validates names, before anything touches the
/// filesystem: the empty string, `.`, `..`, anything containing `/` or NUL, and
/// anything longer than 255 bytes are rejected. Everything else (spaces, a
/// leading `-`, non-ASCII) is accepted, as iproute2 accepts it.
///
/// # Examples
///
/// ```
/// use nsfs::NsName;
///
/// let name = NsName::new("blue")?;
/// assert_eq!(name.as_str(), "blue");
/// assert!(NsName::new("..").is_err());
/// assert!(NsName::new("a/b").is_err());
/// assert!("x".repeat(256).parse::<NsName>().is_err());
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NsName(String);

impl NsName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] with the reason, for the names listed above.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nsfs::NsName::new("red-1").is_ok());
    /// assert!(nsfs::NsName::new("").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<NsName> {
        let name = name.into();
        match invalid_reason(name.as_bytes()) {
            Some(reason) => Err(Error::InvalidName { name, reason }),
            None => Ok(NsName(name)),
        }
    }

    /// Validates a name given as an `OsStr` (a directory entry, an argument).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for an invalid or non-UTF-8 name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::ffi::OsStr;
    /// assert!(nsfs::NsName::from_os_str(OsStr::new("blue")).is_ok());
    /// ```
    pub fn from_os_str(name: &OsStr) -> Result<NsName> {
        match name.to_str() {
            Some(s) => NsName::new(s),
            None => Err(Error::InvalidName {
                name: name.to_string_lossy().into_owned(),
                reason: "not valid UTF-8",
            }),
        }
    }

    /// The name as a string slice.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsfs::NsName::new("blue")?.as_str(), "blue");
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned `String`.
    ///
    /// # Examples
    ///
    /// ```
    /// let s: String = nsfs::NsName::new("blue")?.into_string();
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Why `name` is not a valid namespace name, or `None` if it is.
fn invalid_reason(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name == b"." || name == b".." {
        Some("`.` and `..` are not names")
    } else if name.contains(&b'/') {
        Some("contains `/`")
    } else if name.contains(&0) {
        Some("contains NUL")
    } else if name.len() > NAME_MAX {
        Some("longer than 255 bytes")
    } else {
        None
    }
}

impl fmt::Debug for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NsName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<OsStr> for NsName {
    fn as_ref(&self) -> &OsStr {
        OsStr::new(&self.0)
    }
}

impl AsRef<std::path::Path> for NsName {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl FromStr for NsName {
    type Err = Error;
    fn from_str(s: &str) -> Result<NsName> {
        NsName::new(s)
    }
}

impl TryFrom<&str> for NsName {
    type Error = Error;
    fn try_from(s: &str) -> Result<NsName> {
        NsName::new(s)
    }
}

impl TryFrom<String> for NsName {
    type Error = Error;
    fn try_from(s: String) -> Result<NsName> {
        NsName::new(s)
    }
}

impl From<NsName> for String {
    fn from(name: NsName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_iproute2_rejects() {
        for bad in ["", ".", "..", "a/b", "/", "a\0b"] {
            assert!(NsName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(NsName::new("x".repeat(256)).is_err());
        assert!(NsName::new("x".repeat(255)).is_ok());
        for good in ["a", "-a", "a b", "ünï", "...", ".a"] {
            assert!(NsName::new(good).is_ok(), "{good:?} rejected");
        }
    }
}
