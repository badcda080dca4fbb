//! Keys and digests as bytes in the records the ledger stores for every member every round.
//!
//! A compressed secp256k1 public key is 66 lowercase hex characters and a SHA-256 digest 64: in
//! text, each takes twice its bytes. The records written once per member and round (a
//! [`Commitment`]'s member and update digest, a [`Round`]'s committers and participants, a
//! member's cumulative [`SketchSum`], a [`Verdict`]'s excluded, disputed and unrevealed members)
//! store them as bytes, 33 and 32 each, in fields of their own (`member_key`, `update_digest`,
//! `committer_keys`, ...); the rules and the readers see the hex strings, as the payloads carry
//! them. (The ledger's verdicts store their excluded members as positions among the round's
//! committers, [`Verdict::stored`], which leaves `excluded_keys` empty.) [`Compact::compacted`] gives the stored form, [`Compact::expanded`] the form the rules
//! use. A value that is not in that canonical form (upper case, another length: never one the
//! processor's rules store, since they validate every key and digest) stays text in the stored
//! form, so the conversion loses nothing. A sketch sum's `earlier_sum` is stored one byte a
//! value (`earlier_sum_bytes`, [`crate::signed_bytes`]) while every value fits one, as after a
//! member's second round, when it is a single sketch.
//!
//! ```
//! use bcfl_protos::bcfl::Commitment;
//! use bcfl_protos::compact::Compact;
//! use protobuf::Message;
//!
//! let commitment = Commitment {
//!     round: 3,
//!     member: format!("02{}", "ab".repeat(32)),
//!     update_sha256: "cd".repeat(32),
//!     ..Default::default()
//! };
//! let stored = commitment.compacted();
//! assert!(stored.member.is_empty() && stored.member_key.len() == 33);
//! assert_eq!(commitment.write_to_bytes().unwrap().len(), 136);
//! assert_eq!(stored.write_to_bytes().unwrap().len(), 73);
//! assert_eq!(stored.expanded().unwrap(), commitment);
//! ```

use protobuf::RepeatedField;

use crate::bcfl::{Commitment, CommitmentList, Round, SketchSum, SketchSumList, Verdict};

/// Bytes of a compressed public key.
pub const KEY_BYTES: usize = 33;
/// Bytes of a SHA-256 digest.
pub const DIGEST_BYTES: usize = 32;

/// A stored record whose bytes fields do not stand for keys or digests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// A bytes field whose length is not a whole number of values.
    #[error("{field} holds {len} bytes, not a whole number of {width}-byte values")]
    Length {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bytes of one value.
        width: usize,
    },
    /// A value stored both as text and as bytes.
    #[error("{field} is stored both as text and as bytes")]
    Both {
        /// The bytes field.
        field: &'static str,
    },
}

/// A state record with a stored form that holds keys and digests as bytes.
pub trait Compact: Sized {
    /// The record as the ledger stores it.
    fn compacted(&self) -> Self;
    /// The record a stored one stands for: every key and digest as hex again.
    fn expanded(self) -> Result<Self, CompactError>;
}

/// `bytes` as lowercase hex.
fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(2 * bytes.len());
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    text
}

/// The value of a lowercase hex digit.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Appends the bytes of `text` to `out` when it is lowercase hex of `width` bytes; leaves `out`
/// as it was otherwise.
fn push_lower_hex(text: &str, width: usize, out: &mut Vec<u8>) -> bool {
    if text.len() != 2 * width {
        return false;
    }
    let start = out.len();
    for pair in text.as_bytes().chunks_exact(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => {
                out.truncate(start);
                return false;
            }
        }
    }
    true
}

/// Appends `key`'s 33 bytes to `out` when it is a compressed public key in lowercase hex.
fn push_key(key: &str, out: &mut Vec<u8>) -> bool {
    (key.starts_with("02") || key.starts_with("03")) && push_lower_hex(key, KEY_BYTES, out)
}

/// Appends `digest`'s 32 bytes to `out` when it is 64 lowercase hex characters.
fn push_digest(digest: &str, out: &mut Vec<u8>) -> bool {
    push_lower_hex(digest, DIGEST_BYTES, out)
}

/// Moves `text` into `bytes` when `push` takes it.
fn compact_one(text: &mut String, bytes: &mut Vec<u8>, push: fn(&str, &mut Vec<u8>) -> bool) {
    let mut b = Vec::new();
    if push(text, &mut b) {
        *bytes = b;
        text.clear();
    }
}

/// Moves `bytes` (one value of `width` bytes, or none) back into `text`.
fn expand_one(
    text: &mut String,
    bytes: &mut Vec<u8>,
    width: usize,
    field: &'static str,
) -> Result<(), CompactError> {
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() != width {
        return Err(CompactError::Length {
            field,
            len: bytes.len(),
            width,
        });
    }
    if !text.is_empty() {
        return Err(CompactError::Both { field });
    }
    *text = lower_hex(&std::mem::take(bytes));
    Ok(())
}

/// Moves the keys of `list` that are compressed public keys into `bytes`, in order.
fn compact_list(list: &mut RepeatedField<String>, bytes: &mut Vec<u8>) {
    bytes.reserve(list.len() * KEY_BYTES);
    let mut kept = Vec::new();
    for key in std::mem::take(list) {
        if !push_key(&key, bytes) {
            kept.push(key);
        }
    }
    *list = kept.into();
}

/// Moves the keys of `bytes` back into `list`: in their stored order when the list kept none
/// as text, else merged with them and sorted (the lists compacted are sorted).
fn expand_list(
    list: &mut RepeatedField<String>,
    bytes: &mut Vec<u8>,
    field: &'static str,
) -> Result<(), CompactError> {
    if bytes.is_empty() {
        return Ok(());
    }
    if bytes.len() % KEY_BYTES != 0 {
        return Err(CompactError::Length {
            field,
            len: bytes.len(),
            width: KEY_BYTES,
        });
    }
    let keys = std::mem::take(bytes)
        .chunks(KEY_BYTES)
        .map(lower_hex)
        .collect::<Vec<_>>();
    if list.is_empty() {
        *list = keys.into();
    } else {
        let mut all: Vec<String> = list.iter().cloned().chain(keys).collect();
        all.sort();
        *list = all.into();
    }
    Ok(())
}

impl Compact for Commitment {
    fn compacted(&self) -> Self {
        let mut c = self.clone();
        compact_one(&mut c.member, &mut c.member_key, push_key);
        compact_one(&mut c.update_sha256, &mut c.update_digest, push_digest);
        c
    }

    fn expanded(mut self) -> Result<Self, CompactError> {
        expand_one(
            &mut self.member,
            &mut self.member_key,
            KEY_BYTES,
            "Commitment.member_key",
        )?;
        expand_one(
            &mut self.update_sha256,
            &mut self.update_digest,
            DIGEST_BYTES,
            "Commitment.update_digest",
        )?;
        Ok(self)
    }
}

impl Compact for Round {
    fn compacted(&self) -> Self {
        let mut r = self.clone();
        compact_list(&mut r.committers, &mut r.committer_keys);
        compact_list(&mut r.participants, &mut r.participant_keys);
        r
    }

    fn expanded(mut self) -> Result<Self, CompactError> {
        expand_list(
            &mut self.committers,
            &mut self.committer_keys,
            "Round.committer_keys",
        )?;
        expand_list(
            &mut self.participants,
            &mut self.participant_keys,
            "Round.participant_keys",
        )?;
        Ok(self)
    }
}

impl Compact for SketchSum {
    fn compacted(&self) -> Self {
        let mut s = self.clone();
        compact_one(&mut s.member, &mut s.member_key, push_key);
        // The sum of one sketch fits a byte a value, as the commitment's sketch does.
        if let Some(bytes) = crate::signed_bytes::pack(&s.earlier_sum) {
            s.earlier_sum_bytes = bytes;
            s.earlier_sum.clear();
        }
        s
    }

    fn expanded(mut self) -> Result<Self, CompactError> {
        expand_one(
            &mut self.member,
            &mut self.member_key,
            KEY_BYTES,
            "SketchSum.member_key",
        )?;
        if !self.earlier_sum_bytes.is_empty() {
            if !self.earlier_sum.is_empty() {
                return Err(CompactError::Both {
                    field: "SketchSum.earlier_sum_bytes",
                });
            }
            self.earlier_sum = crate::signed_bytes::unpack(&self.earlier_sum_bytes)
                .into_iter()
                .map(i64::from)
                .collect();
            self.earlier_sum_bytes.clear();
        }
        Ok(self)
    }
}

impl Compact for Verdict {
    fn compacted(&self) -> Self {
        let mut v = self.clone();
        compact_list(&mut v.excluded, &mut v.excluded_keys);
        compact_list(&mut v.disputed, &mut v.disputed_keys);
        compact_list(&mut v.unrevealed, &mut v.unrevealed_keys);
        v
    }

    fn expanded(mut self) -> Result<Self, CompactError> {
        expand_list(
            &mut self.excluded,
            &mut self.excluded_keys,
            "Verdict.excluded_keys",
        )?;
        expand_list(
            &mut self.disputed,
            &mut self.disputed_keys,
            "Verdict.disputed_keys",
        )?;
        expand_list(
            &mut self.unrevealed,
            &mut self.unrevealed_keys,
            "Verdict.unrevealed_keys",
        )?;
        Ok(self)
    }
}

/// A container of entries that are compacted and expanded one by one (members whose addresses
/// collide share one).
macro_rules! compact_entries {
    ($list:ty) => {
        impl Compact for $list {
            fn compacted(&self) -> Self {
                Self {
                    entries: self.entries.iter().map(Compact::compacted).collect(),
                    ..Default::default()
                }
            }

            fn expanded(self) -> Result<Self, CompactError> {
                let entries = self
                    .entries
                    .into_iter()
                    .map(Compact::expanded)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Self {
                    entries: entries.into(),
                    ..Default::default()
                })
            }
        }
    };
}

compact_entries!(CommitmentList);
compact_entries!(SketchSumList);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use protobuf::Message;

    fn key(i: u8) -> String {
        format!("0{}{}", 2 + i % 2, format!("{i:02x}").repeat(32))
    }

    #[test]
    fn a_round_stores_its_committers_as_bytes_and_restores_them_in_order() {
        let mut committers: Vec<String> = (0..5).map(key).collect();
        committers.sort();
        let round = Round {
            number: 2,
            committers: committers.clone().into(),
            participants: committers[..2].to_vec().into(),
            ..Default::default()
        };
        let stored = round.compacted();
        assert!(stored.committers.is_empty() && stored.participants.is_empty());
        assert_eq!(stored.committer_keys.len(), 5 * KEY_BYTES);
        // 68 bytes a key as text (a tag, a length, 66 characters); as bytes 33 a key and, for
        // each list, a two-byte tag and a length (two bytes from 128).
        let (before, after) = (
            round.write_to_bytes().unwrap().len(),
            stored.write_to_bytes().unwrap().len(),
        );
        assert_eq!(
            before - after,
            7 * 68 - (2 + 2 + 5 * KEY_BYTES) - (2 + 1 + 2 * KEY_BYTES)
        );
        assert_eq!(stored.expanded().unwrap(), round);
    }

    #[test]
    fn keys_not_in_canonical_form_stay_text_and_merge_back_sorted() {
        let upper = key(0xab).to_uppercase();
        let verdict = Verdict {
            excluded: vec![key(0), upper.clone(), "b".into(), key(3)].into(),
            ..Default::default()
        };
        let mut sorted = verdict.clone();
        sorted.excluded.sort();
        let stored = sorted.compacted();
        assert_eq!(stored.excluded.to_vec(), vec![upper, "b".to_owned()]);
        assert_eq!(stored.excluded_keys.len(), 2 * KEY_BYTES);
        assert_eq!(stored.expanded().unwrap(), sorted);
        // A digest in upper case, a short key: text.
        let c = Commitment {
            member: "02ab".into(),
            update_sha256: "AB".repeat(32),
            ..Default::default()
        };
        assert_eq!(c.compacted(), c);
    }

    #[test]
    fn stored_bytes_that_are_no_whole_keys_are_refused() {
        let round = Round {
            committer_keys: vec![2; KEY_BYTES + 1],
            ..Default::default()
        };
        assert_eq!(
            round.expanded(),
            Err(CompactError::Length {
                field: "Round.committer_keys",
                len: KEY_BYTES + 1,
                width: KEY_BYTES
            })
        );
        let sum = SketchSum {
            member: key(1),
            member_key: vec![3; KEY_BYTES],
            ..Default::default()
        };
        assert_eq!(
            sum.expanded(),
            Err(CompactError::Both {
                field: "SketchSum.member_key"
            })
        );
        let c = Commitment {
            update_digest: vec![0; 31],
            ..Default::default()
        };
        assert!(matches!(
            c.expanded(),
            Err(CompactError::Length { width: 32, .. })
        ));
        let sum = SketchSum {
            earlier_sum: vec![1],
            earlier_sum_bytes: vec![2],
            ..Default::default()
        };
        assert_eq!(
            sum.expanded(),
            Err(CompactError::Both {
                field: "SketchSum.earlier_sum_bytes"
            })
        );
    }

    #[test]
    fn an_earlier_sum_within_a_byte_a_value_is_stored_as_bytes() {
        let one = SketchSum {
            earlier_sum: vec![0, 1, -1, 127, -128, 64],
            ..Default::default()
        };
        let stored = one.compacted();
        assert!(stored.earlier_sum.is_empty());
        assert_eq!(stored.earlier_sum_bytes, vec![0, 1, 255, 127, 128, 64]);
        // 6 bytes and a 2-byte tag and length, against 9 bytes of varints (127, -128 and 64
        // take two) and the same 2.
        assert_eq!(stored.write_to_bytes().unwrap().len(), 8);
        assert_eq!(one.write_to_bytes().unwrap().len(), 11);
        assert_eq!(stored.expanded().unwrap(), one);
        // A value beyond a byte keeps the whole sum as varints.
        let wide = SketchSum {
            earlier_sum: vec![1, 128],
            ..Default::default()
        };
        assert_eq!(wide.compacted(), wide);
    }

    proptest! {
        #[test]
        fn compacting_loses_nothing(
            members in proptest::collection::btree_set("0[23][0-9a-f]{64}|[0-9a-fA-F]{0,70}", 0..6),
            digest in "[0-9a-f]{64}|[0-9a-zA-Z]{0,70}",
            earlier in proptest::collection::vec(-300i64..300, 0..8),
        ) {
            let members: Vec<String> = members.into_iter().collect();
            let list = CommitmentList {
                entries: members
                    .iter()
                    .map(|m| Commitment {
                        member: m.clone(),
                        update_sha256: digest.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            prop_assert_eq!(list.compacted().expanded().unwrap(), list.clone());
            let verdict = Verdict {
                excluded: members.clone().into(),
                disputed: members.iter().take(2).cloned().collect::<Vec<_>>().into(),
                ..Default::default()
            };
            prop_assert_eq!(verdict.compacted().expanded().unwrap(), verdict.clone());
            let sums = SketchSumList {
                entries: members
                    .iter()
                    .map(|m| SketchSum {
                        member: m.clone(),
                        rounds: 1,
                        earlier_sum: earlier.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            prop_assert_eq!(sums.compacted().expanded().unwrap(), sums.clone());
            prop_assert!(
                sums.compacted().write_to_bytes().unwrap().len()
                    <= sums.write_to_bytes().unwrap().len()
            );
            // Never larger than the text form.
            prop_assert!(
                verdict.compacted().write_to_bytes().unwrap().len()
                    <= verdict.write_to_bytes().unwrap().len()
            );
        }
    }
}
