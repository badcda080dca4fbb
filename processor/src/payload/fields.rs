//! Validated field types: public keys, hashes, names, URIs and reasons.
//!
//! Each type can only be built by parsing a string that satisfies its rule, so code that holds one
//! never checks it again.

use std::fmt;

use thiserror::Error;

use crate::limits::{MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_URI_CHARS};

/// Why a single field value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FieldError {
    /// Not a compressed secp256k1 public key in hex.
    #[error("must be 66 lowercase hex characters starting with 02 or 03")]
    PublicKey,
    /// Not a SHA-256 digest in hex.
    #[error("must be 64 lowercase hex characters (a SHA-256 digest)")]
    Sha256,
    /// Empty where a value is required.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit, in characters.
        max: usize,
    },
    /// Contains a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// Starts or ends with whitespace.
    #[error("must not start or end with whitespace")]
    OuterWhitespace,
    /// A URI that is not `scheme://authority[/...]` with an allowed scheme.
    #[error("must be a URI of the form {schemes}://host[...] without whitespace")]
    Uri {
        /// The allowed schemes, joined with `|`.
        schemes: &'static str,
    },
    /// A member endpoint that is not exactly `scheme://host:port` (see [`Endpoint`]).
    #[error(
        "must be http://HOST:PORT or https://HOST:PORT (port 1-65535; no path, query, fragment \
         or user info): {reason}"
    )]
    Endpoint {
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a free-text value: non-empty, at most `max` characters, no control characters, no
/// leading or trailing whitespace.
pub(crate) fn check_text(value: &str, max: usize) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::Empty);
    }
    if value.chars().count() > max {
        return Err(FieldError::TooLong { max });
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::ControlCharacter);
    }
    if value.trim() != value {
        return Err(FieldError::OuterWhitespace);
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The validated value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated value, by value.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, FieldError> {
                Self::parse(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

string_newtype!(
    /// A compressed secp256k1 public key: 66 lowercase hex characters starting `02` or `03`, the
    /// form Sawtooth signers use.
    PublicKey
);

impl PublicKey {
    /// Parses a public key.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let ok = value.len() == 66
            && (value.starts_with("02") || value.starts_with("03"))
            && is_lower_hex(value);
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::PublicKey)
        }
    }
}

string_newtype!(
    /// A SHA-256 digest as 64 lowercase hex characters.
    Sha256Hash
);

impl Sha256Hash {
    /// Parses a digest.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        if value.len() == 64 && is_lower_hex(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(FieldError::Sha256)
        }
    }
}

string_newtype!(
    /// A member's display name: 1 to 64 characters, no control characters, no outer whitespace.
    MemberName
);

impl MemberName {
    /// Parses a name.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        check_text(value, MAX_NAME_CHARS).map(|()| Self(value.to_owned()))
    }
}

string_newtype!(
    /// Why a member was suspended: 1 to 256 characters, no control characters, no outer
    /// whitespace.
    Reason
);

impl Reason {
    /// Parses a reason.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        check_text(value, MAX_REASON_CHARS).map(|()| Self(value.to_owned()))
    }
}

fn check_uri(value: &str, schemes: &[&str], label: &'static str) -> Result<(), FieldError> {
    if value.chars().count() > MAX_URI_CHARS {
        return Err(FieldError::TooLong { max: MAX_URI_CHARS });
    }
    let bad = FieldError::Uri { schemes: label };
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad);
    }
    let (scheme, rest) = value.split_once("://").ok_or_else(|| bad.clone())?;
    if !schemes.contains(&scheme) {
        return Err(bad);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad);
    }
    Ok(())
}

string_newtype!(
    /// The base URL of a member's blob server, exactly `scheme://host:port` with an optional
    /// trailing `/`: scheme `http` or `https`; host a DNS name (letters, digits, `-`, `.`), an
    /// IPv4 address or a bracketed IPv6 address; an explicit port 1-65535 in decimal; no path,
    /// query, fragment or user info; at most 512 characters.
    ///
    /// Other members' nodes call this URL (probes, fetches, relays), so it names a server and
    /// nothing more: a path, a query or user info could aim their requests at something other
    /// than a blob server.
    Endpoint
);

impl Endpoint {
    /// Parses an endpoint.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        check_uri(value, &["http", "https"], "http|https")?;
        check_endpoint(value).map_err(|reason| FieldError::Endpoint { reason })?;
        Ok(Self(value.to_owned()))
    }
}

fn check_endpoint(value: &str) -> Result<(), &'static str> {
    let (_, rest) = value.split_once("://").ok_or("no scheme")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') {
        return Err("it has a path");
    }
    if authority.contains('?') {
        return Err("it has a query");
    }
    if authority.contains('#') {
        return Err("it has a fragment");
    }
    if authority.contains('@') {
        return Err("it has user info");
    }
    let (host, port) = authority.rsplit_once(':').ok_or("no port")?;
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number from 1 to 65535");
    }
    match port.parse::<u32>() {
        Ok(1..=65535) => {}
        _ => return Err("the port is not a number from 1 to 65535"),
    }
    let valid_host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').is_some_and(|inner| {
            inner.contains(':')
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }),
        None => {
            !host.is_empty()
                && host
                    .split('.')
                    .all(|label| !label.is_empty() && label.len() <= 63)
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
    };
    if !valid_host {
        return Err("the host is not a DNS name, an IPv4 address or a bracketed IPv6 address");
    }
    Ok(())
}

string_newtype!(
    /// Where a blob can be fetched: `http://`, `https://` or `bcfl://` (a content address that the
    /// node runtime resolves), with a non-empty authority, at most 512 characters, no whitespace.
    BlobUri
);

impl BlobUri {
    /// Parses a blob URI.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        check_uri(value, &["http", "https", "bcfl"], "http|https|bcfl")
            .map(|()| Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";

    #[test]
    fn public_keys() {
        assert!(PublicKey::parse(KEY).is_ok());
        assert!(PublicKey::parse(&KEY.replace("02a", "03a")).is_ok());
        assert_eq!(
            PublicKey::parse(&KEY.replace("02a", "04a")),
            Err(FieldError::PublicKey)
        );
        assert_eq!(
            PublicKey::parse(&KEY.to_uppercase()),
            Err(FieldError::PublicKey)
        );
        assert_eq!(PublicKey::parse(&KEY[..64]), Err(FieldError::PublicKey));
        assert_eq!(PublicKey::parse(""), Err(FieldError::PublicKey));
    }

    #[test]
    fn hashes() {
        assert!(Sha256Hash::parse(&"ab".repeat(32)).is_ok());
        assert_eq!(Sha256Hash::parse(&"AB".repeat(32)), Err(FieldError::Sha256));
        assert_eq!(Sha256Hash::parse(&"ab".repeat(31)), Err(FieldError::Sha256));
        assert_eq!(Sha256Hash::parse(&"zz".repeat(32)), Err(FieldError::Sha256));
    }

    #[test]
    fn names() {
        assert!(MemberName::parse("Hospital Nord").is_ok());
        assert!(MemberName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(MemberName::parse(""), Err(FieldError::Empty));
        assert_eq!(
            MemberName::parse(&"x".repeat(65)),
            Err(FieldError::TooLong { max: 64 })
        );
        assert_eq!(MemberName::parse("a\nb"), Err(FieldError::ControlCharacter));
        assert_eq!(MemberName::parse(" a"), Err(FieldError::OuterWhitespace));
        assert_eq!(Reason::parse("x\u{7f}"), Err(FieldError::ControlCharacter));
    }

    /// Member endpoints name a server and nothing more (issue "Trust and hardening", items 4
    /// and 12): everything else is refused with the reason.
    #[test]
    fn endpoints_are_scheme_host_port_only() {
        let reason = |value: &str| match Endpoint::parse(value) {
            Err(FieldError::Endpoint { reason }) => reason,
            other => panic!("{value}: {other:?}"),
        };
        assert_eq!(reason("http://127.0.0.1:7070/v1/pull"), "it has a path");
        assert_eq!(reason("https://node.example/blobs"), "it has a path");
        assert_eq!(reason("http://h:80?x=1"), "it has a query");
        assert_eq!(reason("http://h:80/?x=1"), "it has a path");
        assert_eq!(reason("http://h:80#top"), "it has a fragment");
        assert_eq!(reason("http://user:pw@h:80"), "it has user info");
        assert_eq!(reason("http://127.0.0.1"), "no port");
        for port in ["0", "65536", "99999", "", "+80", "8o", "123456"] {
            let value = format!("http://127.0.0.1:{port}");
            assert_eq!(
                reason(&value),
                "the port is not a number from 1 to 65535",
                "{value}"
            );
        }
        for host in ["[::1", "a..b", "h_1", "[zz]", "%31"] {
            let value = format!("http://{host}:80");
            assert!(reason(&value).starts_with("the host"), "{value}");
        }
        let message = Endpoint::parse("http://h:0").unwrap_err().to_string();
        assert!(message.starts_with("must be http://HOST:PORT"), "{message}");
    }

    #[test]
    fn uris() {
        assert!(Endpoint::parse("http://127.0.0.1:9000").is_ok());
        assert!(Endpoint::parse("https://node.example:443/").is_ok());
        assert!(Endpoint::parse("http://[::1]:7070").is_ok());
        assert!(Endpoint::parse("http://node-1.example.org:1").is_ok());
        assert!(Endpoint::parse("http://h:65535").is_ok());
        assert!(Endpoint::parse("bcfl://abc").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(Endpoint::parse("http:///path").is_err());
        assert!(Endpoint::parse("http://a b").is_err());
        assert!(Endpoint::parse("ftp://host").is_err());
        assert!(BlobUri::parse("bcfl://sha256/abcd").is_ok());
        let long = format!("http://{}:1", "a.".repeat(300));
        assert_eq!(
            Endpoint::parse(&long),
            Err(FieldError::TooLong { max: MAX_URI_CHARS })
        );
    }
}
