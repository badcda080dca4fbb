//! Typed access to the family's state through a transaction's [`StateContext`].
//!
//! [`BcflState`] computes addresses ([`crate::address`]), decodes and encodes the state messages,
//! keeps collision containers (`MemberList`, `CommitmentList`, `LinkList`) sorted by their natural
//! key, and caches every read (and its own writes) for the length of one `apply`, so the rules can
//! read an object as often as they like at the cost of one validator round trip. Writes are
//! buffered and sent in one request ([`BcflState::flush`]); the validator discards them if the
//! transaction turns out invalid.
//! The records written for every member every round (rounds, commitments, sketch sums, verdicts)
//! are stored with their keys and digests as bytes and expanded on reading
//! ([`bcfl_protos::compact`]): the rules only ever see hex.
//!
//! An empty value counts as absent (the SDK drops empty entries); no state message of this family
//! ever encodes to zero bytes.

use std::collections::BTreeMap;

use bcfl_protos::bcfl as pb;
use bcfl_protos::compact::Compact;
use protobuf::{Message, RepeatedField};
use thiserror::Error;

use crate::address;
use crate::context::{ContextError, StateContext};

/// A failed state access.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// The validator refused an address the header does not declare (or that is malformed).
    #[error("state access refused ({0}); the transaction header must declare the addresses `bcfl_processor::access` lists")]
    Unauthorized(String),
    /// The context failed for another reason (transport, protocol); the validator retries.
    #[error("state context failed: {0}")]
    Context(String),
    /// Stored bytes that do not decode, or objects that contradict each other.
    #[error("state at {address} is not a valid {kind}: {detail}")]
    Corrupt {
        /// The address read.
        address: String,
        /// The message expected there.
        kind: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl From<ContextError> for StateError {
    fn from(err: ContextError) -> Self {
        match err {
            ContextError::Authorization(msg) => StateError::Unauthorized(msg),
            ContextError::Failed(msg) => StateError::Context(msg),
        }
    }
}

/// Result alias of state access.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// The family's state, seen through one transaction's context.
///
/// Reads are cached for the transaction; writes are buffered and sent to the validator in one
/// request by [`BcflState::flush`] (each context request is a round trip, and a rejected
/// transaction's writes are discarded by the validator anyway).
pub struct BcflState<'a> {
    context: &'a dyn StateContext,
    cache: BTreeMap<String, Option<Vec<u8>>>,
    pending: BTreeMap<String, Vec<u8>>,
}

fn decode<M: Message>(address: &str, kind: &'static str, bytes: &[u8]) -> Result<M> {
    M::parse_from_bytes(bytes).map_err(|e| StateError::Corrupt {
        address: address.to_owned(),
        kind,
        detail: e.to_string(),
    })
}

fn encode<M: Message>(message: &M) -> Result<Vec<u8>> {
    message
        .write_to_bytes()
        .map_err(|e| StateError::Context(format!("cannot encode state: {e}")))
}

/// Inserts or replaces `entry` in a list kept sorted by `key`.
fn upsert<E, K: Ord>(list: &mut RepeatedField<E>, entry: E, key: impl Fn(&E) -> K) {
    let k = key(&entry);
    match list.binary_search_by(|e| key(e).cmp(&k)) {
        Ok(i) => list[i] = entry,
        Err(i) => list.insert(i, entry),
    }
}

impl<'a> BcflState<'a> {
    /// Wraps a transaction's context.
    pub fn new(context: &'a dyn StateContext) -> Self {
        Self {
            context,
            cache: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Sends every buffered write to the validator in one request, in address order.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, Vec<u8>)> =
            std::mem::take(&mut self.pending).into_iter().collect();
        self.context.set_state_entries(entries)?;
        Ok(())
    }

    /// Reads every uncached address of `addresses` in one validator request.
    pub fn prefetch(&mut self, addresses: &[String]) -> Result<()> {
        let mut missing: Vec<String> = addresses
            .iter()
            .filter(|a| !self.cache.contains_key(a.as_str()))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let entries = self.context.get_state_entries(&missing)?;
        for address in missing {
            self.cache.insert(address, None);
        }
        for (address, data) in entries {
            if !data.is_empty() {
                self.cache.insert(address, Some(data));
            }
        }
        Ok(())
    }

    fn raw(&mut self, address: &str) -> Result<Option<Vec<u8>>> {
        if !self.cache.contains_key(address) {
            self.prefetch(&[address.to_owned()])?;
        }
        Ok(self.cache.get(address).cloned().flatten())
    }

    fn read<M: Message>(&mut self, address: &str, kind: &'static str) -> Result<Option<M>> {
        self.raw(address)?
            .map(|bytes| decode(address, kind, &bytes))
            .transpose()
    }

    fn write<M: Message>(&mut self, address: String, message: &M) -> Result<()> {
        let bytes = encode(message)?;
        self.pending.insert(address.clone(), bytes.clone());
        self.cache.insert(address, Some(bytes));
        Ok(())
    }

    /// Reads a record stored with its keys and digests as bytes ([`Compact`]), expanded.
    fn read_expanded<M: Message + Compact>(
        &mut self,
        address: &str,
        kind: &'static str,
    ) -> Result<Option<M>> {
        self.read::<M>(address, kind)?
            .map(|m| {
                m.expanded().map_err(|e| StateError::Corrupt {
                    address: address.to_owned(),
                    kind,
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    /// Stores a record with its keys and digests as bytes ([`Compact`]).
    fn write_compacted<M: Message + Compact>(
        &mut self,
        address: String,
        message: &M,
    ) -> Result<()> {
        self.write(address, &message.compacted())
    }

    /// The consortium, if initialized.
    pub fn consortium(&mut self) -> Result<Option<pb::Consortium>> {
        self.read(&address::consortium_address(), "Consortium")
    }

    /// Stores the consortium.
    pub fn put_consortium(&mut self, consortium: &pb::Consortium) -> Result<()> {
        self.write(address::consortium_address(), consortium)
    }

    fn member_list(&mut self, address: &str) -> Result<pb::MemberList> {
        Ok(self.read(address, "MemberList")?.unwrap_or_default())
    }

    /// The member with `public_key`, if registered.
    pub fn member(&mut self, public_key: &str) -> Result<Option<pb::Member>> {
        let list = self.member_list(&address::member_address(public_key))?;
        Ok(list
            .entries
            .into_iter()
            .find(|m| m.public_key == public_key))
    }

    /// Stores `member` in its container (replacing an entry with the same key).
    pub fn put_member(&mut self, member: pb::Member) -> Result<()> {
        let address = address::member_address(&member.public_key);
        let mut list = self.member_list(&address)?;
        upsert(&mut list.entries, member, |m| m.public_key.clone());
        self.write(address, &list)
    }

    /// The member directory: every member's key and status, sorted by key.
    pub fn directory(&mut self) -> Result<Vec<pb::Member>> {
        Ok(self
            .member_list(&address::directory_address())?
            .entries
            .into_vec())
    }

    /// Records `member`'s key and status in the directory.
    pub fn put_directory_entry(&mut self, member: &pb::Member) -> Result<()> {
        let address = address::directory_address();
        let mut list = self.member_list(&address)?;
        let entry = pb::Member {
            public_key: member.public_key.clone(),
            status: member.status,
            ..Default::default()
        };
        upsert(&mut list.entries, entry, |m| m.public_key.clone());
        self.write(address, &list)
    }

    /// Round `round`, if opened.
    pub fn round(&mut self, round: u64) -> Result<Option<pb::Round>> {
        self.read_expanded(&address::round_address(round), "Round")
    }

    /// Stores a round.
    pub fn put_round(&mut self, round: &pb::Round) -> Result<()> {
        self.write_compacted(address::round_address(round.number), round)
    }

    fn commitment_list(&mut self, address: &str) -> Result<pb::CommitmentList> {
        Ok(self
            .read_expanded(address, "CommitmentList")?
            .unwrap_or_default())
    }

    /// `member`'s commitment to `round`, if any.
    pub fn commitment(&mut self, round: u64, member: &str) -> Result<Option<pb::Commitment>> {
        let list = self.commitment_list(&address::commitment_address(round, member))?;
        Ok(list
            .entries
            .into_iter()
            .find(|c| c.round == round && c.member == member))
    }

    /// Stores a commitment in its container.
    pub fn put_commitment(&mut self, commitment: pb::Commitment) -> Result<()> {
        let address = address::commitment_address(commitment.round, &commitment.member);
        let mut list = self.commitment_list(&address)?;
        upsert(&mut list.entries, commitment, |c| c.member.clone());
        self.write_compacted(address, &list)
    }

    /// The commitments of `members` to `round`, in the order of `members`. A listed member without
    /// a commitment means the round and its commitments disagree: corrupt state.
    pub fn commitments(&mut self, round: u64, members: &[String]) -> Result<Vec<pb::Commitment>> {
        let wanted: Vec<(u64, &str)> = members.iter().map(|m| (round, m.as_str())).collect();
        self.commitments_at(&wanted)
    }

    /// The commitment of each `(round, member)`, in that order, read in one batch. A missing one
    /// means the state disagrees with the record that named it (a round's committers, a sketch
    /// sum's last round): corrupt state.
    pub fn commitments_at(&mut self, wanted: &[(u64, &str)]) -> Result<Vec<pb::Commitment>> {
        let addresses: Vec<String> = wanted
            .iter()
            .map(|(round, m)| address::commitment_address(*round, m))
            .collect();
        self.prefetch(&addresses)?;
        wanted
            .iter()
            .zip(&addresses)
            .map(|((round, member), addr)| {
                self.commitment(*round, member)?
                    .ok_or_else(|| StateError::Corrupt {
                        address: addr.clone(),
                        kind: "CommitmentList",
                        detail: format!("the state names {member}'s commitment to round {round}, which it does not hold"),
                    })
            })
            .collect()
    }

    fn link_list(&mut self, address: &str) -> Result<pb::LinkList> {
        Ok(self.read(address, "LinkList")?.unwrap_or_default())
    }

    /// The measured link `from -> to`, if any.
    pub fn link(&mut self, from: &str, to: &str) -> Result<Option<pb::Link>> {
        let list = self.link_list(&address::link_address(from, to))?;
        Ok(list
            .entries
            .into_iter()
            .find(|l| l.from == from && l.to == to))
    }

    /// Stores a link in its container.
    pub fn put_link(&mut self, link: pb::Link) -> Result<()> {
        let address = address::link_address(&link.from, &link.to);
        let mut list = self.link_list(&address)?;
        upsert(&mut list.entries, link, |l| (l.from.clone(), l.to.clone()));
        self.write(address, &list)
    }

    /// The members `from` has reported links to (sorted), from its link index.
    pub fn link_targets(&mut self, from: &str) -> Result<Vec<String>> {
        let list: pb::LinkIndexList = self
            .read(&address::link_index_address(from), "LinkIndexList")?
            .unwrap_or_default();
        Ok(list
            .entries
            .into_iter()
            .find(|i| i.from == from)
            .map(|i| i.targets.into_vec())
            .unwrap_or_default())
    }

    /// Adds `targets` to the link index of `from`.
    pub fn add_link_targets<'t>(
        &mut self,
        from: &str,
        targets: impl IntoIterator<Item = &'t str>,
    ) -> Result<()> {
        let address = address::link_index_address(from);
        let mut list: pb::LinkIndexList = self.read(&address, "LinkIndexList")?.unwrap_or_default();
        let mut index = list
            .entries
            .iter()
            .find(|i| i.from == from)
            .cloned()
            .unwrap_or_else(|| pb::LinkIndex {
                from: from.to_owned(),
                ..Default::default()
            });
        let mut all: std::collections::BTreeSet<String> = index.targets.iter().cloned().collect();
        let before = all.len();
        all.extend(targets.into_iter().map(str::to_owned));
        if all.len() == before && !index.targets.is_empty() {
            return Ok(());
        }
        index.targets = all.into_iter().collect::<Vec<_>>().into();
        upsert(&mut list.entries, index, |i| i.from.clone());
        self.write(address, &list)
    }

    /// Every measured link between two distinct members of `members`, sorted by (from, to): the
    /// links each member's index names to another of `members` (two state requests, and
    /// addresses for the reported links only, not for every pair).
    pub fn links_among(&mut self, members: &[String]) -> Result<Vec<pb::Link>> {
        let wanted: std::collections::BTreeSet<&str> = members.iter().map(String::as_str).collect();
        let indexes: Vec<String> = members
            .iter()
            .map(|m| address::link_index_address(m))
            .collect();
        self.prefetch(&indexes)?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for from in members {
            for to in self.link_targets(from)? {
                if to != *from && wanted.contains(to.as_str()) {
                    pairs.push((from.clone(), to));
                }
            }
        }
        let addresses: Vec<String> = pairs
            .iter()
            .map(|(a, b)| address::link_address(a, b))
            .collect();
        self.prefetch(&addresses)?;
        let mut links = Vec::new();
        for (from, to) in &pairs {
            if let Some(link) = self.link(from, to)? {
                links.push(link);
            }
        }
        links.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        Ok(links)
    }

    /// The verdict of `round`, if evaluated, its `excluded` and `accepted` restored from the
    /// round's committers ([`pb::Verdict::restored`]: the round is read too, and must be
    /// declared).
    pub fn verdict(&mut self, round: u64) -> Result<Option<pb::Verdict>> {
        let Some(stored) =
            self.read_expanded::<pb::Verdict>(&address::verdict_address(round), "Verdict")?
        else {
            return Ok(None);
        };
        let committers = self.verdict_round(round)?.committers;
        stored
            .restored(&committers)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                address: address::verdict_address(round),
                kind: "Verdict",
                detail: e.to_string(),
            })
    }

    /// Stores a verdict without its `accepted` and with its excluded as positions among its
    /// round's committers ([`pb::Verdict::stored`]); its accepted members must be the
    /// committers that are not excluded.
    pub fn put_verdict(&mut self, verdict: &pb::Verdict) -> Result<()> {
        let committers = self.verdict_round(verdict.round)?.committers;
        let stored = verdict.stored(&committers);
        if stored.clone().restored(&committers).as_ref() != Ok(verdict) {
            return Err(StateError::Corrupt {
                address: address::verdict_address(verdict.round),
                kind: "Verdict",
                detail: "its accepted members are not the round's committers without the excluded"
                    .to_owned(),
            });
        }
        self.write_compacted(address::verdict_address(verdict.round), &stored)
    }

    /// The round a verdict of `round` belongs to, which must exist.
    fn verdict_round(&mut self, round: u64) -> Result<pb::Round> {
        self.round(round)?.ok_or_else(|| StateError::Corrupt {
            address: address::verdict_address(round),
            kind: "Verdict",
            detail: format!("round {round} is not in the state"),
        })
    }

    fn sketch_sum_list(&mut self, address: &str) -> Result<pb::SketchSumList> {
        Ok(self
            .read_expanded(address, "SketchSumList")?
            .unwrap_or_default())
    }

    /// The stored sketch sums of `members` (sorted keys), sorted by member; a member without one
    /// (it never committed to an evaluated round) is left out.
    pub fn sketch_sums(&mut self, members: &[String]) -> Result<pb::SketchHistory> {
        let addresses: Vec<String> = members
            .iter()
            .map(|m| address::sketch_sum_address(m))
            .collect();
        self.prefetch(&addresses)?;
        let mut entries = Vec::new();
        for (member, address) in members.iter().zip(&addresses) {
            let list = self.sketch_sum_list(address)?;
            if let Some(sum) = list.entries.into_iter().find(|s| &s.member == member) {
                entries.push(sum);
            }
        }
        // `members` is sorted, so `entries` is too.
        Ok(pb::SketchHistory {
            entries: entries.into(),
            ..Default::default()
        })
    }

    /// The consensus sketch (empty before the first evaluated round).
    pub fn consensus(&mut self) -> Result<pb::ConsensusSketch> {
        Ok(self
            .read(&address::consensus_address(), "ConsensusSketch")?
            .unwrap_or_default())
    }

    /// Stores the consensus sketch.
    pub fn put_consensus(&mut self, consensus: &pb::ConsensusSketch) -> Result<()> {
        self.write(address::consensus_address(), consensus)
    }

    /// The consensus sum archived after `round`, if one was kept.
    pub fn consensus_archive(&mut self, round: u64) -> Result<Option<pb::ConsensusArchive>> {
        self.read(
            &address::consensus_archive_address(round),
            "ConsensusArchive",
        )
    }

    /// Stores a consensus archive.
    pub fn put_consensus_archive(&mut self, archive: &pb::ConsensusArchive) -> Result<()> {
        self.write(address::consensus_archive_address(archive.round), archive)
    }

    /// Stores a member's sketch sum in its container (replacing its previous one).
    pub fn put_sketch_sum(&mut self, sum: pb::SketchSum) -> Result<()> {
        let address = address::sketch_sum_address(&sum.member);
        let mut list = self.sketch_sum_list(&address)?;
        upsert(&mut list.entries, sum, |s| s.member.clone());
        self.write_compacted(address, &list)
    }

    /// The aggregate of `round`, if committed.
    pub fn aggregate(&mut self, round: u64) -> Result<Option<pb::Aggregate>> {
        self.read(&address::aggregate_address(round), "Aggregate")
    }

    /// Stores an aggregate.
    pub fn put_aggregate(&mut self, aggregate: &pb::Aggregate) -> Result<()> {
        self.write(address::aggregate_address(aggregate.round), aggregate)
    }

    /// Adds an event to the transaction's receipt.
    pub fn emit(&self, event_type: String, attributes: Vec<(String, String)>) -> Result<()> {
        self.context.add_event(event_type, attributes, &[])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryContext;

    /// A verdict is stored without its accepted members, restored from its round's committers;
    /// one whose accepted members are not those is refused rather than stored wrong.
    #[test]
    fn a_verdict_is_stored_once_its_accepted_match_the_round() {
        let keys = |v: &[&str]| -> Vec<String> { v.iter().map(|k| k.to_string()).collect() };
        let everything = vec![crate::NAMESPACE.to_owned()];
        let context = MemoryContext::new(BTreeMap::new(), everything.clone(), everything);
        let mut state = BcflState::new(&context);
        let verdict = pb::Verdict {
            round: 2,
            accepted: keys(&["a", "c"]).into(),
            excluded: keys(&["b"]).into(),
            ..Default::default()
        };
        // No round 2 yet: the verdict has no committers to be restored from.
        assert!(matches!(
            state.put_verdict(&verdict),
            Err(StateError::Corrupt { .. })
        ));
        state
            .put_round(&pb::Round {
                number: 2,
                committers: keys(&["a", "b", "c"]).into(),
                ..Default::default()
            })
            .unwrap();
        state.put_verdict(&verdict).unwrap();
        assert_eq!(state.verdict(2).unwrap(), Some(verdict.clone()));
        let wrong = pb::Verdict {
            accepted: keys(&["a"]).into(),
            ..verdict
        };
        let refused = state.put_verdict(&wrong).unwrap_err();
        assert!(
            refused.to_string().contains("accepted members"),
            "{refused}"
        );
    }

    /// A round is stored with its committers' keys as bytes and read back as hex; stored bytes
    /// that are no whole keys are corrupt state, named by address and field.
    #[test]
    fn a_round_is_stored_with_keys_as_bytes_and_a_cut_key_is_corrupt_state() {
        let keys = vec![
            format!("02{}", "a1".repeat(32)),
            format!("03{}", "b2".repeat(32)),
        ];
        let everything = vec![crate::NAMESPACE.to_owned()];
        let context = MemoryContext::new(BTreeMap::new(), everything.clone(), everything.clone());
        let mut state = BcflState::new(&context);
        let round = pb::Round {
            number: 3,
            committers: keys.clone().into(),
            ..Default::default()
        };
        state.put_round(&round).unwrap();
        state.flush().unwrap();
        let address = address::round_address(3);
        let raw = context
            .get_state_entries(std::slice::from_ref(&address))
            .unwrap()[0]
            .1
            .clone();
        let stored = pb::Round::parse_from_bytes(&raw).unwrap();
        assert!(stored.committers.is_empty());
        assert_eq!(stored.committer_keys, hex::decode(keys.concat()).unwrap());
        assert_eq!(BcflState::new(&context).round(3).unwrap(), Some(round));

        let cut = pb::Round {
            committer_keys: stored.committer_keys[..40].to_vec(),
            ..stored
        };
        let forged = BTreeMap::from([(address.clone(), cut.write_to_bytes().unwrap())]);
        let context = MemoryContext::new(forged, everything.clone(), everything);
        let err = BcflState::new(&context).round(3).unwrap_err();
        assert!(
            matches!(&err, StateError::Corrupt { address: a, kind: "Round", .. } if *a == address),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("Round.committer_keys holds 40 bytes"),
            "{err}"
        );
    }
}
