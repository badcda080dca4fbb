//! Bandwidth report rules.

use bcfl_protos::bcfl as pb;

use super::*;
use crate::limits::LINK_SAMPLES_KEPT;
use crate::testing::test_key;

fn report(epoch: u64, links: &[(&str, u64)]) -> pb::BcflPayload {
    with(|p| {
        p.set_report_bandwidth(pb::ReportBandwidth {
            epoch,
            measurements: links
                .iter()
                .map(|(to, bps)| pb::LinkMeasurement {
                    to: (*to).to_owned(),
                    bytes_per_sec: *bps,
                    rtt_us: 800,
                    probe_bytes: 1 << 20,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    })
}

#[test]
fn links_keep_the_newest_samples() {
    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    for epoch in 0..(LINK_SAMPLES_KEPT as u64 + 4) {
        w.ledger
            .submit(&m0, &report(epoch, &[(&m2, 1000 + epoch), (&m1, 5)]))
            .unwrap();
    }
    let link = w.ledger.link(&m0, &m2).unwrap();
    assert_eq!(
        (link.from.as_str(), link.to.as_str()),
        (m0.as_str(), m2.as_str())
    );
    let epochs: Vec<u64> = link.samples.iter().map(|s| s.epoch).collect();
    assert_eq!(epochs, (4..20).collect::<Vec<_>>());
    assert_eq!(link.samples.last().unwrap().bytes_per_sec, 1019);
    assert_eq!(
        w.ledger.link(&m0, &m1).unwrap().samples.len(),
        LINK_SAMPLES_KEPT
    );
    assert!(w.ledger.link(&m2, &m0).is_none(), "links are directed");
}

#[test]
fn report_rules() {
    let mut w = World::new();
    let (m0, m1) = (w.m(0), w.m(1));
    let msg = rejected(w.ledger.submit(&m0, &report(1, &[(&m0, 10)])));
    assert_eq!(msg, "a member may not report a link to itself");
    let stranger = test_key("stranger");
    let msg = rejected(w.ledger.submit(&m0, &report(1, &[(&stranger, 10)])));
    assert_eq!(
        msg,
        format!("link target {stranger} is not a registered member")
    );
    let msg = rejected(w.ledger.submit(&stranger, &report(1, &[(&m0, 10)])));
    assert_eq!(msg, format!("signer {stranger} is not a registered member"));
    w.ledger.submit(&m0, &report(5, &[(&m1, 10)])).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &report(4, &[(&m1, 10)])));
    assert_eq!(
        msg,
        format!("epoch 4 is older than the newest sample (epoch 5) of link {m0} -> {m1}")
    );
    let msg = rejected(w.ledger.submit(&m0, &report(6, &[(&m1, 10), (&m1, 11)])));
    assert!(
        msg.contains("must not measure the same target twice"),
        "{msg}"
    );
    let msg = rejected(w.ledger.submit(&m0, &report(6, &[(&m1, 0)])));
    assert!(msg.contains("bytes_per_sec: must be in 1..="), "{msg}");
    let admin = w.admin.clone();
    w.ledger.submit(&admin, &suspend(&m0)).unwrap();
    let msg = rejected(w.ledger.submit(&m0, &report(7, &[(&m1, 10)])));
    assert_eq!(msg, format!("signer {m0} is suspended"));
    // A suspended member is still a registered target.
    w.ledger.submit(&m1, &report(7, &[(&m0, 10)])).unwrap();
}

#[test]
fn a_members_link_index_names_whom_it_reported_once_each() {
    use crate::address::link_index_address;
    use protobuf::Message;

    let mut w = World::new();
    let (m0, m1, m2) = (w.m(0), w.m(1), w.m(2));
    let index = |w: &World, from: &str| -> Vec<String> {
        w.ledger
            .state()
            .get(&link_index_address(from))
            .map(|bytes| pb::LinkIndexList::parse_from_bytes(bytes).unwrap())
            .and_then(|list| list.entries.into_iter().find(|i| i.from == from))
            .map(|i| i.targets.into_vec())
            .unwrap_or_default()
    };
    assert!(index(&w, &m0).is_empty());
    w.ledger.submit(&m0, &report(1, &[(&m2, 10)])).unwrap();
    w.ledger
        .submit(&m0, &report(2, &[(&m2, 11), (&m1, 12)]))
        .unwrap();
    let mut expected = vec![m1.clone(), m2.clone()];
    expected.sort();
    assert_eq!(index(&w, &m0), expected);
    // A refused report changes nothing.
    let stranger = test_key("stranger");
    assert!(w.ledger.submit(&m0, &report(3, &[(&stranger, 1)])).is_err());
    assert_eq!(index(&w, &m0), expected);
    assert!(index(&w, &m1).is_empty());
}
