//! On-chain settings devnet obeys, read from state exactly where a validator reads them.
//!
//! Settings live in the `sawtooth_settings` namespace (`000000`): the address of a key is
//! `000000` followed by the first 16 hex of SHA-256 of each of its first four dot-separated
//! parts (the rest of the key stays in the fourth part; missing parts hash the empty string),
//! and the value is a `Setting` protobuf whose entries map keys to strings
//! (sawtooth-core `validator/sawtooth_validator/state/settings_view.py`). Whoever writes that
//! address (the settings processor, or devnet's genesis, see [`super::DevnetConfig`]) sets it.
//!
//! The one setting devnet enforces is `sawtooth.validator.transaction_families`
//! ([`FamilyAllowList`]), with the validator's semantics (`execution/executor.py`): a JSON list
//! such as `[{"family": "bcfl", "version": "1.0", "namespaces": ["1cf126"]}]`. When it is absent,
//! not valid JSON, or an empty list, every family is allowed. Otherwise a transaction whose
//! `(family, version)` is not listed is invalid, and so is one of a listed family with an output
//! that starts with none of the entry's `namespaces` (default `[""]`, i.e. any output).
//!
//! ```
//! use bcfl_devnet::ledger::settings::{setting_address, FamilyAllowList};
//! assert_eq!(setting_address("sawtooth.validator.transaction_families").len(), 70);
//! let list = FamilyAllowList::parse(Some(r#"[{"family": "bcfl", "version": "1.0"}]"#));
//! assert!(list.allows_type("bcfl", "1.0"));
//! assert!(!list.allows_type("intkey", "1.0"));
//! assert!(FamilyAllowList::parse(None).allows_type("intkey", "1.0"));
//! ```

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::setting::{Setting, Setting_Entry};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sha2::{Digest, Sha256};

/// The allow-list setting's key.
pub const TRANSACTION_FAMILIES: &str = "sawtooth.validator.transaction_families";

/// The settings namespace.
pub const SETTINGS_NAMESPACE: &str = "000000";

/// The state address of a setting key.
pub fn setting_address(key: &str) -> String {
    let short = |part: &str| hex::encode(&Sha256::digest(part.as_bytes())[..8]);
    let mut address = SETTINGS_NAMESPACE.to_owned();
    let parts: Vec<&str> = key.splitn(4, '.').collect();
    for i in 0..4 {
        address.push_str(&short(parts.get(i).copied().unwrap_or("")));
    }
    address
}

/// The state value holding `key = value`, as the settings processor writes it.
pub fn encode_setting(key: &str, value: &str) -> Vec<u8> {
    let mut entry = Setting_Entry::new();
    entry.set_key(key.to_owned());
    entry.set_value(value.to_owned());
    let mut setting = Setting::new();
    setting.set_entries(RepeatedField::from_vec(vec![entry]));
    setting.write_to_bytes().unwrap_or_default()
}

/// The value of `key` in a stored `Setting`; `None` if it is absent or does not decode.
pub fn decode_setting(stored: &[u8], key: &str) -> Option<String> {
    let setting = Setting::parse_from_bytes(stored).ok()?;
    setting
        .get_entries()
        .iter()
        .find(|e| e.get_key() == key)
        .map(|e| e.get_value().to_owned())
}

/// The allow-list from the stored value at its address (`None`: nothing stored).
pub fn allow_list_from(stored: Option<Vec<u8>>) -> FamilyAllowList {
    FamilyAllowList::parse(
        stored
            .and_then(|v| decode_setting(&v, TRANSACTION_FAMILIES))
            .as_deref(),
    )
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedFamily {
    /// Family name.
    pub family: String,
    /// Family version.
    pub version: String,
    /// Prefixes every output must start with one of.
    pub namespaces: Vec<String>,
}

/// `sawtooth.validator.transaction_families` (see the module docs); `None` allows every family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyAllowList(Option<Vec<AllowedFamily>>);

impl FamilyAllowList {
    /// Reads the setting's value (`None`: absent). Anything that is not a non-empty JSON list
    /// allows every family, as in the validator; entries that are not objects are skipped (the
    /// validator's executor thread would crash on them).
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self(None);
        };
        let list = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Array(list)) => list,
            _ => {
                tracing::error!(
                    value,
                    "{TRANSACTION_FAMILIES} misconfigured: expecting a JSON array; every family \
                     is allowed"
                );
                return Self(None);
            }
        };
        if list.is_empty() {
            return Self(None);
        }
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_str).map(str::to_owned)
        };
        let entries = list
            .iter()
            .filter_map(serde_json::Value::as_object)
            .map(|entry| {
                let namespaces = match entry.get("namespaces") {
                    None => vec![String::new()],
                    Some(serde_json::Value::Array(list)) => {
                        list.iter().filter_map(|n| text(Some(n))).collect()
                    }
                    // Python iterates a string character by character.
                    Some(serde_json::Value::String(s)) => s.chars().map(String::from).collect(),
                    Some(_) => Vec::new(),
                };
                AllowedFamily {
                    family: text(entry.get("family")).unwrap_or_default(),
                    version: text(entry.get("version")).unwrap_or_default(),
                    namespaces,
                }
            })
            .collect();
        Self(Some(entries))
    }

    /// Whether the list is set (some family may be refused).
    pub fn is_restricted(&self) -> bool {
        self.0.is_some()
    }

    fn entry(&self, family: &str, version: &str) -> Option<&AllowedFamily> {
        self.0
            .as_ref()?
            .iter()
            .find(|e| e.family == family && e.version == version)
    }

    /// Whether transactions of `(family, version)` may run at all.
    pub fn allows_type(&self, family: &str, version: &str) -> bool {
        self.0.is_none() || self.entry(family, version).is_some()
    }

    /// Checks one transaction; the error says why it is not allowed.
    pub fn check(&self, header: &TransactionHeader) -> Result<(), String> {
        if self.0.is_none() {
            return Ok(());
        }
        let (family, version) = (header.get_family_name(), header.get_family_version());
        let Some(entry) = self.entry(family, version) else {
            return Err(format!(
                "family {family:?} version {version:?} is not in {TRANSACTION_FAMILIES}"
            ));
        };
        match header
            .get_outputs()
            .iter()
            .find(|o| !entry.namespaces.iter().any(|n| o.starts_with(n.as_str())))
        {
            Some(output) => Err(format!(
                "output {output:?} is outside the namespaces {TRANSACTION_FAMILIES} gives \
                 family {family:?}"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(family: &str, version: &str, outputs: &[&str]) -> TransactionHeader {
        let mut h = TransactionHeader::new();
        h.set_family_name(family.into());
        h.set_family_version(version.into());
        h.set_outputs(outputs.iter().map(|s| s.to_string()).collect());
        h
    }

    #[test]
    fn addresses_match_the_settings_view() {
        // Known answer from sawtooth-core's settings_view.py for this key.
        let expected = format!(
            "000000{}{}{}{}",
            hex::encode(&Sha256::digest(b"sawtooth")[..8]),
            hex::encode(&Sha256::digest(b"validator")[..8]),
            hex::encode(&Sha256::digest(b"transaction_families")[..8]),
            hex::encode(&Sha256::digest(b"")[..8]),
        );
        assert_eq!(setting_address(TRANSACTION_FAMILIES), expected);
        // The fourth part keeps the rest of a long key.
        assert!(setting_address("a.b.c.d.e").ends_with(&hex::encode(&Sha256::digest(b"d.e")[..8])));
        let stored = encode_setting(TRANSACTION_FAMILIES, "[]");
        assert_eq!(
            decode_setting(&stored, TRANSACTION_FAMILIES).as_deref(),
            Some("[]")
        );
        assert_eq!(decode_setting(&stored, "other"), None);
    }

    #[test]
    fn absent_malformed_or_empty_allows_everything() {
        for value in [
            None,
            Some("not json"),
            Some("[]"),
            Some(r#"{"family":"x"}"#),
        ] {
            let list = FamilyAllowList::parse(value);
            assert!(!list.is_restricted(), "{value:?}");
            assert_eq!(list.check(&header("any", "9", &["ff"])), Ok(()));
        }
    }

    #[test]
    fn listed_families_only_and_outputs_inside_their_namespaces() {
        let list = FamilyAllowList::parse(Some(
            r#"[{"family": "sawtooth_settings", "version": "1.0"},
                {"family": "bcfl", "version": "1.0", "namespaces": ["1cf126", "abcd"]}]"#,
        ));
        assert!(list.is_restricted());
        assert_eq!(
            list.check(&header("sawtooth_settings", "1.0", &["00"])),
            Ok(())
        );
        assert_eq!(
            list.check(&header("bcfl", "1.0", &["1cf12600", "abcd"])),
            Ok(())
        );
        assert!(list.check(&header("bcfl", "1.0", &["1cf1"])).is_err());
        assert!(list.check(&header("bcfl", "2.0", &[])).is_err());
        assert!(list.check(&header("intkey", "1.0", &[])).is_err());
        assert!(!list.allows_type("intkey", "1.0"));
    }
}
