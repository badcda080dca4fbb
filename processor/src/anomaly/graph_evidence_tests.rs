//! The graph evidence is two-sided: what one member reports alone cannot move another member's
//! graph scores (issue: one member changed an honest member's PageRank flag by omitting a link
//! report).

use bcfl_protos::bcfl as pb;
use proptest::prelude::*;

use super::{evaluate, member_scores, Evaluation, MemberData};

fn link(from: usize, to: usize, bytes_per_sec: u64) -> pb::Link {
    pb::Link {
        from: format!("k{from:02}"),
        to: format!("k{to:02}"),
        samples: vec![pb::LinkSample {
            epoch: 1,
            bytes_per_sec,
            ..Default::default()
        }]
        .into(),
        ..Default::default()
    }
}

fn commitments(n: usize) -> Vec<pb::Commitment> {
    (0..n)
        .map(|i| pb::Commitment {
            round: 1,
            member: format!("k{i:02}"),
            norm_micro: 1_000_000,
            sketch: vec![1, 2, 3, 4],
            num_samples: 100,
            ..Default::default()
        })
        .collect()
}

fn pagerank_only() -> pb::AnomalyConfig {
    let mut config = pb::AnomalyConfig {
        ensemble_min_votes: 1,
        ..Default::default()
    };
    config.set_pagerank(super::default_pagerank());
    config
}

/// PageRank flags and scores of `links` among `n` members, with the default agreement.
fn pagerank_verdict(n: usize, links: &[pb::Link]) -> Evaluation {
    let data = MemberData::from_evidence(&commitments(n), links, &Default::default(), 0);
    evaluate(&pagerank_only(), &data).unwrap()
}

fn flagged(e: &Evaluation) -> Vec<String> {
    member_scores(&e.scored, &e.methods[0])
        .filter(|s| s.flagged)
        .map(|s| s.member.to_owned())
        .collect()
}

/// PageRank's score of member `k`.
fn score(e: &Evaluation, k: &str) -> i64 {
    member_scores(&e.scored, &e.methods[0])
        .find(|s| s.member == k)
        .unwrap()
        .score_micro
}

/// Six members; every link is 50 MB/s except k05's, which are 5 MB/s (both ends report it).
fn honest_links() -> Vec<pb::Link> {
    let mut links = Vec::new();
    for i in 0..6 {
        for j in 0..6 {
            if i != j {
                let slow = i == 5 || j == 5;
                links.push(link(i, j, if slow { 5_000_000 } else { 50_000_000 }));
            }
        }
    }
    links
}

#[test]
fn the_slow_member_is_flagged_and_a_one_sided_claim_only_removes_the_claimant_s_link() {
    let honest = pagerank_verdict(6, &honest_links());
    assert_eq!(flagged(&honest), ["k05"]);
    // k00 claims its link to the slow k05 is 100 times faster than k05 says: the pair is not
    // confirmed, so it is no evidence, exactly as if neither had reported it ...
    let mut forged = honest_links();
    for l in forged.iter_mut() {
        if l.from == "k00" && l.to == "k05" {
            l.samples[0].bytes_per_sec = 500_000_000;
        }
    }
    let unreported: Vec<pb::Link> = honest_links()
        .into_iter()
        .filter(|l| !((l.from == "k00" && l.to == "k05") || (l.from == "k05" && l.to == "k00")))
        .collect();
    let verdict = pagerank_verdict(6, &forged);
    assert_eq!(verdict, pagerank_verdict(6, &unreported));
    // ... and it is k00 that stands out for it: k05 is still flagged, k00 now too, nobody else.
    assert_eq!(flagged(&verdict), ["k00", "k05"]);
}

#[test]
fn omitting_a_report_weighs_on_the_omitter_as_on_its_peer() {
    // k00 leaves out its report of k00 -> k01: the pair is no evidence at all, for both.
    let links: Vec<pb::Link> = honest_links()
        .into_iter()
        .filter(|l| !(l.from == "k00" && l.to == "k01"))
        .collect();
    let verdict = pagerank_verdict(6, &links);
    assert_eq!(score(&verdict, "k00"), score(&verdict, "k01"));
    assert_eq!(flagged(&verdict), ["k05"]);

    // With one-sided evidence (each report on its own) the same omission singles out k01, whose
    // in-link from k00 vanished while k00's own links all stayed.
    let data = MemberData::new(
        commitments(6).iter().map(|c| c.member.clone()).collect(),
        Vec::new(),
        super::features::reported_edges(
            &commitments(6)
                .iter()
                .map(|c| c.member.clone())
                .collect::<Vec<_>>(),
            &links,
        ),
    )
    .unwrap();
    let one_sided = evaluate(&pagerank_only(), &data).unwrap();
    assert_ne!(score(&one_sided, "k00"), score(&one_sided, "k01"));
}

fn symmetric_links(n: usize, speeds: &[u64]) -> Vec<pb::Link> {
    let mut links = Vec::new();
    let mut next = speeds.iter().cycle();
    for i in 0..n {
        for j in (i + 1)..n {
            let b = *next.next().unwrap();
            links.push(link(i, j, b));
            links.push(link(j, i, b));
        }
    }
    links
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever one member reports that its peer does not confirm (a link the peer never
    /// reported, or one more than the agreement factor off) leaves every score and flag as if
    /// it had reported nothing about that link.
    #[test]
    fn unconfirmed_reports_change_no_score(
        n in 4usize..8,
        speeds in proptest::collection::vec(1_000_000u64..100_000_000, 1..40),
        liar in 0usize..8,
        victim in 0usize..8,
        factor in 5u64..1000,
        faster in any::<bool>(),
    ) {
        let (liar, victim) = (liar % n, victim % n);
        prop_assume!(liar != victim);
        let honest = symmetric_links(n, &speeds);
        // The liar withholds its report of the link to the victim.
        let without: Vec<pb::Link> = honest
            .iter()
            .filter(|l| !(l.from == format!("k{liar:02}") && l.to == format!("k{victim:02}")))
            .cloned()
            .collect();
        let baseline = pagerank_verdict(n, &without);
        // ... or reports it more than the agreement factor (4) off, either way.
        let mut lied = honest.clone();
        for l in lied.iter_mut() {
            if l.from == format!("k{liar:02}") && l.to == format!("k{victim:02}") {
                let b = l.samples[0].bytes_per_sec;
                l.samples[0].bytes_per_sec = if faster { b * factor } else { (b / factor).max(1) };
            }
        }
        prop_assert_eq!(pagerank_verdict(n, &lied), baseline.clone());
        // ... exactly as if neither end had reported the link.
        let mut neither = without.clone();
        neither.retain(|l| !(l.from == format!("k{victim:02}") && l.to == format!("k{liar:02}")));
        prop_assert_eq!(pagerank_verdict(n, &neither), baseline);
    }
}
