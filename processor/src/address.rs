//! State addresses of the `bcfl` family.
//!
//! Every address is 70 lowercase hex characters: the family [`NAMESPACE`] (6), a type tag (2) and
//! 62 hex characters that depend on the object:
//!
//! | tag | object | last 62 hex | stored message |
//! | --- | --- | --- | --- |
//! | `00` | consortium | `sha512("consortium")[..62]` | `Consortium` |
//! | `01` | member | `sha512(public_key)[..62]` | `MemberList` (collisions share it) |
//! | `02` | round N | `{N:016x}` + 46 zeros | `Round` |
//! | `03` | commitment (N, member) | `{N:016x}` + `sha512(member)[..46]` | `CommitmentList` |
//! | `04` | link (from, to) | `sha512(from)[..30]` + `sha512(to)[..32]` | `LinkList` |
//! | `05` | verdict of round N | `{N:016x}` + 46 zeros | `Verdict` |
//! | `06` | aggregate of round N | `{N:016x}` + 46 zeros | `Aggregate` |
//! | `07` | member directory | 62 zeros | `MemberList` (key and status only) |
//! | `08` | sketch sum of a member | `sha512(public_key)[..62]` | `SketchSumList` (collisions share it) |
//! | `09` | consensus sketch | 62 zeros | `ConsensusSketch` |
//! | `0a` | link index of a member | `sha512(public_key)[..62]` | `LinkIndexList` (collisions share it) |
//! | `0b` | consensus after round N, where kept | `{N:016x}` + 46 zeros | `ConsensusArchive` |
//!
//! `sha512(x)` is the lowercase hex SHA-512 of the UTF-8 bytes of `x` (a public key is hashed as
//! its 66-character hex string). The layout makes useful prefixes: all commitments of round N
//! share [`commitments_prefix`], all links out of a member share [`links_from_prefix`], and every
//! object of one type shares [`type_prefix`].
//!
//! ```
//! use bcfl_processor::address::{self, AddressKind};
//!
//! let round = address::round_address(7);
//! assert_eq!(round.len(), 70);
//! assert!(round.starts_with(&address::type_prefix(AddressKind::Round)));
//! let key = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
//! assert!(address::commitment_address(7, key).starts_with(&address::commitments_prefix(7)));
//! ```

use sha2::{Digest, Sha512};

use crate::NAMESPACE;

/// Length of every full state address, in hex characters.
pub const ADDRESS_LEN: usize = 70;

/// The kinds of object the family stores, each under its own two-hex type tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressKind {
    /// The single `Consortium` object (tag `00`).
    Consortium,
    /// A `MemberList` keyed by member public key (tag `01`).
    Member,
    /// A `Round` keyed by round number (tag `02`).
    Round,
    /// A `CommitmentList` keyed by (round, member) (tag `03`).
    Commitment,
    /// A `LinkList` keyed by (from, to) (tag `04`).
    Link,
    /// A `Verdict` keyed by round number (tag `05`).
    Verdict,
    /// An `Aggregate` keyed by round number (tag `06`).
    Aggregate,
    /// The member directory: one `MemberList` of every member's key and status (tag `07`).
    Directory,
    /// A `SketchSumList` keyed by member: its sketches summed over evaluated rounds (tag `08`).
    SketchSum,
    /// The single `ConsensusSketch`: accepted members' mean sketches summed (tag `09`).
    Consensus,
    /// A `LinkIndexList` keyed by member: whom it reported links to (tag `0a`).
    LinkIndex,
    /// A `ConsensusArchive` keyed by round number: the consensus sum after it, kept for the
    /// members whose sums still count it (tag `0b`).
    ConsensusArchive,
}

impl AddressKind {
    /// Every kind, in tag order.
    pub const ALL: [AddressKind; 12] = [
        AddressKind::Consortium,
        AddressKind::Member,
        AddressKind::Round,
        AddressKind::Commitment,
        AddressKind::Link,
        AddressKind::Verdict,
        AddressKind::Aggregate,
        AddressKind::Directory,
        AddressKind::SketchSum,
        AddressKind::Consensus,
        AddressKind::LinkIndex,
        AddressKind::ConsensusArchive,
    ];

    /// The two-hex type tag that follows the namespace.
    pub fn tag(self) -> &'static str {
        match self {
            AddressKind::Consortium => "00",
            AddressKind::Member => "01",
            AddressKind::Round => "02",
            AddressKind::Commitment => "03",
            AddressKind::Link => "04",
            AddressKind::Verdict => "05",
            AddressKind::Aggregate => "06",
            AddressKind::Directory => "07",
            AddressKind::SketchSum => "08",
            AddressKind::Consensus => "09",
            AddressKind::LinkIndex => "0a",
            AddressKind::ConsensusArchive => "0b",
        }
    }

    /// The kind of a full or partial address of this family, from its tag.
    pub fn of(address: &str) -> Option<AddressKind> {
        let tag = address.strip_prefix(NAMESPACE)?.get(..2)?;
        AddressKind::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

/// Lowercase hex SHA-512 of `data`.
pub fn sha512_hex(data: &[u8]) -> String {
    hex::encode(Sha512::digest(data))
}

/// The prefix every address of `kind` starts with: namespace + tag (8 hex).
pub fn type_prefix(kind: AddressKind) -> String {
    format!("{NAMESPACE}{}", kind.tag())
}

fn hashed(key: &str, len: usize) -> String {
    let mut digest = sha512_hex(key.as_bytes());
    digest.truncate(len);
    digest
}

fn round_keyed(kind: AddressKind, round: u64) -> String {
    format!("{}{round:016x}{}", type_prefix(kind), "0".repeat(46))
}

/// Address of the consortium object.
pub fn consortium_address() -> String {
    format!(
        "{}{}",
        type_prefix(AddressKind::Consortium),
        hashed("consortium", 62)
    )
}

/// An address of `kind` keyed by a member's public key.
fn member_keyed(kind: AddressKind, public_key: &str) -> String {
    format!("{}{}", type_prefix(kind), hashed(public_key, 62))
}

/// The one address of a single-object `kind`.
fn singleton(kind: AddressKind) -> String {
    format!("{}{}", type_prefix(kind), "0".repeat(62))
}

/// Address of the `MemberList` holding the member with `public_key`.
pub fn member_address(public_key: &str) -> String {
    member_keyed(AddressKind::Member, public_key)
}

/// Address of the member directory.
pub fn directory_address() -> String {
    singleton(AddressKind::Directory)
}

/// Address of the `SketchSumList` holding the sketch sum of the member with `public_key`.
pub fn sketch_sum_address(public_key: &str) -> String {
    member_keyed(AddressKind::SketchSum, public_key)
}

/// Address of the `LinkIndexList` holding the link index of the member with `public_key`.
pub fn link_index_address(public_key: &str) -> String {
    member_keyed(AddressKind::LinkIndex, public_key)
}

/// Address of the consensus sketch.
pub fn consensus_address() -> String {
    singleton(AddressKind::Consensus)
}

/// Address of the consensus archive of round `round`.
pub fn consensus_archive_address(round: u64) -> String {
    round_keyed(AddressKind::ConsensusArchive, round)
}

/// Address of round `round`.
pub fn round_address(round: u64) -> String {
    round_keyed(AddressKind::Round, round)
}

/// Prefix shared by every commitment of round `round` (24 hex).
pub fn commitments_prefix(round: u64) -> String {
    format!("{}{round:016x}", type_prefix(AddressKind::Commitment))
}

/// Address of the `CommitmentList` holding `member`'s commitment to round `round`.
pub fn commitment_address(round: u64, member: &str) -> String {
    format!("{}{}", commitments_prefix(round), hashed(member, 46))
}

/// Prefix shared by every link out of member `from` (38 hex).
pub fn links_from_prefix(from: &str) -> String {
    format!("{}{}", type_prefix(AddressKind::Link), hashed(from, 30))
}

/// Address of the `LinkList` holding the directed link `from -> to`.
pub fn link_address(from: &str, to: &str) -> String {
    format!("{}{}", links_from_prefix(from), hashed(to, 32))
}

/// Address of the verdict of round `round`.
pub fn verdict_address(round: u64) -> String {
    round_keyed(AddressKind::Verdict, round)
}

/// Address of the aggregate of round `round`.
pub fn aggregate_address(round: u64) -> String {
    round_keyed(AddressKind::Aggregate, round)
}

/// Whether `address` is a full state address: 70 lowercase hex characters.
pub fn is_full_address(address: &str) -> bool {
    address.len() == ADDRESS_LEN && is_lower_hex(address)
}

/// Whether `prefix` is a valid header input/output: an even number (at most 70) of lowercase hex
/// characters, as the validator requires.
pub fn is_valid_prefix(prefix: &str) -> bool {
    prefix.len() <= ADDRESS_LEN && prefix.len() % 2 == 0 && is_lower_hex(prefix)
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key_strategy() -> impl Strategy<Value = String> {
        "0[23][0-9a-f]{64}"
    }

    #[test]
    fn known_layouts() {
        assert_eq!(
            round_address(1),
            format!("{NAMESPACE}02{:016x}{}", 1, "0".repeat(46))
        );
        assert_eq!(
            verdict_address(0x1234),
            format!("{NAMESPACE}050000000000001234{}", "0".repeat(46))
        );
        assert_eq!(&aggregate_address(2)[6..8], "06");
        assert_eq!(
            consensus_archive_address(3),
            format!("{NAMESPACE}0b{:016x}{}", 3, "0".repeat(46))
        );
        assert_eq!(
            consortium_address(),
            format!("{NAMESPACE}00{}", &sha512_hex(b"consortium")[..62])
        );
        assert_eq!(
            directory_address(),
            format!("{NAMESPACE}07{}", "0".repeat(62))
        );
        assert_eq!(
            consensus_address(),
            format!("{NAMESPACE}09{}", "0".repeat(62))
        );
        let key = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc";
        assert_eq!(
            sketch_sum_address(key),
            format!("{NAMESPACE}08{}", &sha512_hex(key.as_bytes())[..62])
        );
        for addr in [
            consortium_address(),
            directory_address(),
            round_address(u64::MAX),
        ] {
            assert!(is_full_address(&addr), "{addr}");
        }
    }

    #[test]
    fn kinds_round_trip_through_tags() {
        for kind in AddressKind::ALL {
            assert_eq!(AddressKind::of(&type_prefix(kind)), Some(kind));
        }
        assert_eq!(AddressKind::of("000000"), None);
        assert_eq!(AddressKind::of(&format!("{NAMESPACE}ff")), None);
    }

    #[test]
    fn prefix_validity() {
        assert!(is_valid_prefix(""));
        assert!(is_valid_prefix(NAMESPACE));
        assert!(!is_valid_prefix("abc"));
        assert!(!is_valid_prefix("AB"));
        assert!(!is_full_address(&"a".repeat(68)));
    }

    proptest! {
        #[test]
        fn addresses_are_70_lower_hex_with_tag(a in key_strategy(), b in key_strategy(), n in any::<u64>()) {
            let cases = [
                (member_address(&a), AddressKind::Member),
                (round_address(n), AddressKind::Round),
                (commitment_address(n, &a), AddressKind::Commitment),
                (link_address(&a, &b), AddressKind::Link),
                (verdict_address(n), AddressKind::Verdict),
                (aggregate_address(n), AddressKind::Aggregate),
            ];
            for (addr, kind) in cases {
                prop_assert!(is_full_address(&addr), "{}", addr);
                prop_assert!(addr.starts_with(&type_prefix(kind)));
                prop_assert_eq!(AddressKind::of(&addr), Some(kind));
            }
        }

        #[test]
        fn prefixes_are_prefixes(a in key_strategy(), b in key_strategy(), n in any::<u64>()) {
            prop_assert!(commitment_address(n, &a).starts_with(&commitments_prefix(n)));
            prop_assert!(link_address(&a, &b).starts_with(&links_from_prefix(&a)));
            prop_assert!(is_valid_prefix(&commitments_prefix(n)));
            prop_assert!(is_valid_prefix(&links_from_prefix(&a)));
        }

        #[test]
        fn distinct_keys_give_distinct_addresses(a in key_strategy(), b in key_strategy(), n in any::<u64>(), m in any::<u64>()) {
            prop_assume!(a != b);
            prop_assert_ne!(member_address(&a), member_address(&b));
            prop_assert_ne!(commitment_address(n, &a), commitment_address(n, &b));
            prop_assert_ne!(link_address(&a, &b), link_address(&b, &a));
            prop_assume!(n != m);
            prop_assert_ne!(round_address(n), round_address(m));
            prop_assert_ne!(commitments_prefix(n), commitments_prefix(m));
        }
    }
}
