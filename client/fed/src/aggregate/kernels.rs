//! The inner loops of aggregation over tensor views: weighted sums in `f64`, decoding, and the
//! division that ends FedAvg.
//!
//! Every loop runs over coordinates (the vectorised dimension) and, per coordinate, adds the
//! members in the order given, so the result is the same whether a loop handles one member at a
//! time, four or eight: `s = (((s + w₀x₀) + w₁x₁) + w₂x₂) + w₃x₃` is the same sequence of roundings as
//! four single-member passes. There is no fused multiply-add (Rust never contracts `a * b + c`),
//! so the portable and the AVX2 builds of these loops give the same bits.
//!
//! Values are read straight from the little-endian bytes of the update file (no intermediate
//! `f32` copy); int8 values are decoded exactly as [`Entry::int8_value`] does.

use crate::update::Entry;

/// One member's values of a run of coordinates, as stored in its update file.
#[derive(Clone, Copy, Debug)]
pub enum View<'a> {
    /// Little-endian `f32` values, 4 bytes each.
    F32(&'a [u8]),
    /// int8 values, 1 byte each, and the tensor's scale.
    Int8(&'a [u8], f32),
}

impl<'a> View<'a> {
    /// The view of a tensor's bytes with its entry's encoding.
    pub fn of(entry: &Entry, bytes: &'a [u8]) -> Self {
        match entry.encoding {
            crate::update::Encoding::F32 => View::F32(bytes),
            crate::update::Encoding::Int8 => View::Int8(bytes, entry.scale),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            View::F32(bytes) => bytes.len() / 4,
            View::Int8(bytes, _) => bytes.len(),
        }
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of coordinates `start..start + len`.
    pub fn slice(&self, start: usize, len: usize) -> View<'a> {
        match *self {
            View::F32(bytes) => View::F32(&bytes[4 * start..4 * (start + len)]),
            View::Int8(bytes, scale) => View::Int8(&bytes[start..start + len], scale),
        }
    }
}

#[inline(always)]
fn f32_at(bytes: &[u8]) -> f64 {
    f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

#[inline(always)]
fn int8_value(byte: u8, scale: f32) -> f32 {
    Entry::int8_value(byte, scale)
}

#[inline(always)]
fn add_one(sums: &mut [f64], view: View<'_>, weight: f64) {
    match view {
        View::F32(bytes) => {
            for (s, x) in sums.iter_mut().zip(bytes.chunks_exact(4)) {
                *s += weight * f32_at(x);
            }
        }
        View::Int8(bytes, scale) => {
            for (s, &q) in sums.iter_mut().zip(bytes) {
                *s += weight * f64::from(int8_value(q, scale));
            }
        }
    }
}

#[inline(always)]
fn add_four_f32(sums: &mut [f64], bytes: [&[u8]; 4], w: [f64; 4]) {
    let [a, b, c, d] = bytes.map(|b| b.chunks_exact(4));
    for ((((s, a), b), c), d) in sums.iter_mut().zip(a).zip(b).zip(c).zip(d) {
        *s = *s + w[0] * f32_at(a) + w[1] * f32_at(b) + w[2] * f32_at(c) + w[3] * f32_at(d);
    }
}

#[inline(always)]
fn add_eight_f32(sums: &mut [f64], bytes: [&[u8]; 8], w: [f64; 8]) {
    let [a, b, c, d, e, f, g, h] = bytes.map(|b| b.chunks_exact(4));
    let columns = a.zip(b).zip(c).zip(d).zip(e).zip(f).zip(g).zip(h);
    for (s, (((((((a, b), c), d), e), f), g), h)) in sums.iter_mut().zip(columns) {
        *s = *s
            + w[0] * f32_at(a)
            + w[1] * f32_at(b)
            + w[2] * f32_at(c)
            + w[3] * f32_at(d)
            + w[4] * f32_at(e)
            + w[5] * f32_at(f)
            + w[6] * f32_at(g)
            + w[7] * f32_at(h);
    }
}

/// The leading `N` members if they are all `f32`: their bytes and weights.
#[inline(always)]
fn leading_f32<'a, const N: usize>(
    members: &[(View<'a>, f64)],
) -> Option<([&'a [u8]; N], [f64; N])> {
    let group = members.get(..N)?;
    let mut bytes = [&[][..]; N];
    let mut weights = [0f64; N];
    for (i, (view, weight)) in group.iter().enumerate() {
        let View::F32(b) = *view else { return None };
        bytes[i] = b;
        weights[i] = *weight;
    }
    Some((bytes, weights))
}

#[inline(always)]
fn accumulate_portable(sums: &mut [f64], members: &[(View<'_>, f64)]) {
    let mut rest = members;
    while let Some(((view, weight), tail)) = rest.split_first() {
        // Eight members per pass, else four, else one: fewer loads and stores of the sums.
        if let Some((bytes, weights)) = leading_f32::<8>(rest) {
            add_eight_f32(sums, bytes, weights);
            rest = &rest[8..];
        } else if let Some((bytes, weights)) = leading_f32::<4>(rest) {
            add_four_f32(sums, bytes, weights);
            rest = &rest[4..];
        } else {
            add_one(sums, *view, *weight);
            rest = tail;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn accumulate_avx2(sums: &mut [f64], members: &[(View<'_>, f64)]) {
    accumulate_portable(sums, members);
}

/// Which build of [`accumulate`] this CPU runs: `"avx2"` or `"portable"`.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return "avx2";
    }
    "portable"
}

/// Adds `weight · x` of every member to `sums`, coordinate by coordinate, members in the order
/// given. Every view must hold `sums.len()` values.
pub fn accumulate(sums: &mut [f64], members: &[(View<'_>, f64)]) {
    assert!(
        members.iter().all(|(v, _)| v.len() == sums.len()),
        "views and sums differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only requirement of `accumulate_avx2`, which runs
        // the same safe code compiled for AVX2.
        #[allow(unsafe_code)]
        unsafe {
            accumulate_avx2(sums, members)
        };
        return;
    }
    accumulate_portable(sums, members);
}

/// `out[j] = sums[j] / total`, rounded once to `f32`.
pub fn divide(out: &mut [f32], sums: &[f64], total: f64) {
    for (o, s) in out.iter_mut().zip(sums) {
        *o = (s / total) as f32;
    }
}

/// Decodes a view into `out` (cleared first).
pub fn decode(view: View<'_>, out: &mut Vec<f32>) {
    out.clear();
    match view {
        View::F32(bytes) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]])),
        ),
        View::Int8(bytes, scale) => out.extend(bytes.iter().map(|&q| int8_value(q, scale))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn le_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// The dispatched loop, members grouped by eight and four, gives the bits of the plain definition: each
        /// coordinate summed member by member in order, from +0.0, in `f64`.
        #[test]
        fn accumulate_is_the_sequential_sum(
            rows in proptest::collection::vec(proptest::collection::vec(-1e30f32..1e30, 37), 1..11),
            int8_rows in proptest::collection::vec(0usize..11, 0..3),
            weights in proptest::collection::vec(0u64..1 << 40, 11),
        ) {
            let bytes: Vec<Vec<u8>> = rows.iter().map(|r| le_bytes(r)).collect();
            let quantized: Vec<u8> = (0..37u8).map(|i| i.wrapping_mul(97)).collect();
            let members: Vec<(View<'_>, f64)> = bytes
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let view = if int8_rows.contains(&i) {
                        View::Int8(&quantized, 0.013)
                    } else {
                        View::F32(b)
                    };
                    (view, weights[i] as f64)
                })
                .collect();
            let mut sums = vec![0f64; 37];
            accumulate(&mut sums, &members);
            let mut column = Vec::new();
            for (j, &sum) in sums.iter().enumerate() {
                let mut expected = 0f64;
                for (view, weight) in &members {
                    decode(view.slice(j, 1), &mut column);
                    expected += weight * f64::from(column[0]);
                }
                prop_assert_eq!(sum.to_bits(), expected.to_bits());
            }
        }
    }

    #[test]
    fn views_slice_and_decode_both_encodings() {
        let bytes = le_bytes(&[1.5, -2.0, 0.25]);
        let mut out = Vec::new();
        decode(View::F32(&bytes).slice(1, 2), &mut out);
        assert_eq!(out, [-2.0, 0.25]);
        decode(View::Int8(&[254, 3, 127], 0.5).slice(0, 2), &mut out);
        assert_eq!(out, [-1.0, 1.5]);
        let mut quotient = [0f32; 2];
        divide(&mut quotient, &[3.0, -1.0], 4.0);
        assert_eq!(quotient, [0.75, -0.25]);
    }
}
