//! Registered transaction processors, keyed by `(family, version)` (spec 1.3).
//!
//! One connection (ZMQ identity) may register several pairs, and several connections may serve
//! one pair: they are picked round-robin, skipping connections at their `max_occupancy`.

use std::collections::HashMap;

/// How a processor wants the transaction header in `TpProcessRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStyle {
    /// The parsed `TransactionHeader` (field 1); the default.
    Expanded,
    /// The signed header bytes (field 5).
    Raw,
}

/// One registration of one connection.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The connection's ZMQ identity.
    pub identity: Vec<u8>,
    /// Concurrent requests it accepts (0 on the wire becomes 10).
    pub max_occupancy: u32,
    /// Header style it asked for.
    pub header_style: HeaderStyle,
    /// Namespaces it declared (informational, as in Sawtooth).
    pub namespaces: Vec<String>,
}

/// The processor registry (see the module docs).
#[derive(Default)]
pub struct Registry {
    by_type: HashMap<(String, String), (Vec<Registration>, usize)>,
    occupancy: HashMap<Vec<u8>, u32>,
}

impl Registry {
    /// Adds (or refreshes) a registration.
    pub fn register(&mut self, family: &str, version: &str, registration: Registration) {
        let (list, _) = self
            .by_type
            .entry((family.to_string(), version.to_string()))
            .or_default();
        list.retain(|r| r.identity != registration.identity);
        list.push(registration);
    }

    /// Drops every registration of a connection; true if it had any.
    pub fn unregister(&mut self, identity: &[u8]) -> bool {
        let mut had = false;
        for (list, cursor) in self.by_type.values_mut() {
            let before = list.len();
            list.retain(|r| r.identity != identity);
            had |= list.len() != before;
            if *cursor >= list.len() {
                *cursor = 0;
            }
        }
        self.by_type.retain(|_, (list, _)| !list.is_empty());
        self.occupancy.remove(identity);
        had
    }

    /// Whether any connection serves this type.
    pub fn has_type(&self, family: &str, version: &str) -> bool {
        self.by_type
            .contains_key(&(family.to_string(), version.to_string()))
    }

    /// Whether a connection has any registration.
    pub fn is_registered(&self, identity: &[u8]) -> bool {
        self.by_type
            .values()
            .any(|(list, _)| list.iter().any(|r| r.identity == identity))
    }

    /// All registered identities.
    pub fn identities(&self) -> Vec<Vec<u8>> {
        let mut ids: Vec<Vec<u8>> = self
            .by_type
            .values()
            .flat_map(|(list, _)| list.iter().map(|r| r.identity.clone()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The next processor for a type, round-robin, skipping full ones (and `avoid` when there
    /// is any alternative). Marks it occupied; call [`Registry::release`] when done.
    pub fn pick(
        &mut self,
        family: &str,
        version: &str,
        avoid: Option<&[u8]>,
    ) -> Option<Registration> {
        let (list, cursor) = self
            .by_type
            .get_mut(&(family.to_string(), version.to_string()))?;
        let n = list.len();
        let free = |r: &Registration, occ: &HashMap<Vec<u8>, u32>| {
            occ.get(&r.identity).copied().unwrap_or(0) < r.max_occupancy
        };
        let mut fallback = None;
        for step in 0..n {
            let i = (*cursor + step) % n;
            let r = &list[i];
            if !free(r, &self.occupancy) {
                continue;
            }
            if avoid == Some(r.identity.as_slice()) && n > 1 {
                fallback.get_or_insert(i);
                continue;
            }
            *cursor = (i + 1) % n;
            let chosen = r.clone();
            *self.occupancy.entry(chosen.identity.clone()).or_default() += 1;
            return Some(chosen);
        }
        let i = fallback?;
        *cursor = (i + 1) % n;
        let chosen = list[i].clone();
        *self.occupancy.entry(chosen.identity.clone()).or_default() += 1;
        Some(chosen)
    }

    /// Releases one unit of occupancy taken by [`Registry::pick`].
    pub fn release(&mut self, identity: &[u8]) {
        if let Some(n) = self.occupancy.get_mut(identity) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: u8, occ: u32) -> Registration {
        Registration {
            identity: vec![id],
            max_occupancy: occ,
            header_style: HeaderStyle::Expanded,
            namespaces: vec![],
        }
    }

    #[test]
    fn round_robin_skips_full_and_avoided() {
        let mut r = Registry::default();
        r.register("f", "1", reg(1, 10));
        r.register("f", "1", reg(2, 1));
        r.register("g", "1", reg(1, 10));
        assert_eq!(r.pick("f", "1", None).unwrap().identity, vec![1]);
        assert_eq!(r.pick("f", "1", None).unwrap().identity, vec![2]);
        // 2 is full now.
        assert_eq!(r.pick("f", "1", None).unwrap().identity, vec![1]);
        r.release(&[2]);
        assert_eq!(r.pick("f", "1", Some(&[2])).unwrap().identity, vec![1]);
        assert!(r.pick("h", "1", None).is_none());
        assert!(r.unregister(&[1]));
        assert!(!r.has_type("g", "1"));
        assert!(r.has_type("f", "1"));
        assert_eq!(r.identities(), vec![vec![2]]);
    }
}
