//! What the compact stored form ([`bcfl_protos::compact`]) costs a reader: the records one
//! round of 1,000 members adds (each member's commitment with a 256-value sketch and 256
//! coordinates, its sketch sum, the round with 1,000 committers, a verdict excluding 100),
//! decoded as `EvaluateRound` and the auditor decode them, with and without expanding the keys
//! and digests, and encoded with and without compacting them. Prints one JSON object: the bytes
//! of each form and the median of 21 passes of each, in milliseconds.
//!
//! ```text
//! cargo bench -p bcfl-processor --bench compact
//! ```

use bcfl_processor::anomaly::simulate::Rng;
use bcfl_protos::bcfl::{Commitment, CommitmentList, Round, SketchSum, SketchSumList, Verdict};
use bcfl_protos::compact::Compact;
use protobuf::Message;

mod common;
use common::median_ms;

const MEMBERS: usize = 1000;
const PASSES: usize = 21;

/// Pseudo-random bytes and hex from the simulations' seeded generator.
struct Bytes(Rng);

impl Bytes {
    fn next(&mut self) -> u8 {
        (self.0.next_u64() >> 56) as u8
    }

    fn hex(&mut self, prefix: &str, bytes: usize) -> String {
        let mut s = prefix.to_owned();
        for _ in 0..bytes {
            s.push_str(&format!("{:02x}", self.next()));
        }
        s
    }
}

/// The text form of one round's records: a commitment list and a sketch sum list per member,
/// the round and the verdict.
fn records() -> (Vec<CommitmentList>, Vec<SketchSumList>, Round, Verdict) {
    let mut rng = Bytes(Rng::new(42));
    let mut keys: Vec<String> = (0..MEMBERS).map(|_| rng.hex("02", 32)).collect();
    keys.sort();
    let commitments = keys
        .iter()
        .map(|k| CommitmentList {
            entries: vec![Commitment {
                round: 7,
                member: k.clone(),
                update_sha256: rng.hex("", 32),
                size_bytes: 20_000,
                num_samples: 100,
                sketch: (0..256).map(|_| rng.next()).collect(),
                coordinate_steps: (0..256).map(|_| rng.next()).collect(),
                coordinate_step_nano: 12_345,
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        })
        .collect();
    let sums = keys
        .iter()
        .map(|k| SketchSumList {
            entries: vec![SketchSum {
                member: k.clone(),
                rounds: 7,
                last_round: 7,
                sum: (0..256).map(|_| i64::from(rng.next() as i8) * 7).collect(),
                ..Default::default()
            }]
            .into(),
            ..Default::default()
        })
        .collect();
    let round = Round {
        number: 7,
        committers: keys.clone().into(),
        ..Default::default()
    };
    let verdict = Verdict {
        round: 7,
        excluded: keys.iter().step_by(10).cloned().collect::<Vec<_>>().into(),
        ..Default::default()
    };
    (commitments, sums, round, verdict)
}

fn encoded<M: Message>(records: &[M]) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|m| m.write_to_bytes().unwrap())
        .collect()
}

fn main() {
    let (commitments, sums, round, verdict) = records();
    let text_form = || {
        [
            encoded(&commitments),
            encoded(&sums),
            encoded(std::slice::from_ref(&round)),
            encoded(std::slice::from_ref(&verdict)),
        ]
    };
    let compact_form = || {
        [
            encoded(
                &commitments
                    .iter()
                    .map(Compact::compacted)
                    .collect::<Vec<_>>(),
            ),
            encoded(&sums.iter().map(Compact::compacted).collect::<Vec<_>>()),
            encoded(&[round.compacted()]),
            encoded(&[verdict.compacted()]),
        ]
    };
    let (text, compacted) = (text_form(), compact_form());
    let size = |all: &[Vec<Vec<u8>>; 4]| all.iter().flatten().map(Vec::len).sum::<usize>();
    // Decode every record of one form; `expand` expands each too. The count of entries and
    // keys read is checked, so that nothing is optimized away.
    fn read<M: Message + Compact>(bytes: &[u8], expand: bool, count: fn(&M) -> usize) -> usize {
        let m = M::parse_from_bytes(bytes).unwrap();
        if expand {
            count(&m.expanded().unwrap())
        } else {
            count(&m)
        }
    }
    let decode = |all: &[Vec<Vec<u8>>; 4], expand: bool| {
        let commitments: usize = all[0]
            .iter()
            .map(|b| read(b, expand, |m: &CommitmentList| m.entries.len()))
            .sum();
        let sums: usize = all[1]
            .iter()
            .map(|b| read(b, expand, |m: &SketchSumList| m.entries.len()))
            .sum();
        let committers = read(&all[2][0], expand, |r: &Round| r.committers.len());
        let excluded = read(&all[3][0], expand, |v: &Verdict| v.excluded.len());
        assert_eq!(
            commitments + sums + committers + excluded,
            3 * MEMBERS + MEMBERS / 10
        );
    };
    let decode_text = median_ms(PASSES, || decode(&text, false));
    let decode_compact = median_ms(PASSES, || decode(&compacted, true));
    let encode_text = median_ms(PASSES, || {
        std::hint::black_box(text_form());
    });
    let encode_compact = median_ms(PASSES, || {
        std::hint::black_box(compact_form());
    });
    println!(
        "{{\"members\":{MEMBERS},\"bytes_text\":{},\"bytes_compact\":{},\
         \"decode_text_ms\":{decode_text:.3},\"decode_expand_ms\":{decode_compact:.3},\
         \"encode_text_ms\":{encode_text:.3},\"encode_compact_ms\":{encode_compact:.3}}}",
        size(&text),
        size(&compacted)
    );
}
