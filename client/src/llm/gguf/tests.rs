//! Round trips through [`GgufWriter`] and hostile inputs.

use super::writer::GgufWriter;
use super::*;

fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-100)),
        ("u16", Value::U16(60_000)),
        ("i16", Value::I16(-30_000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("f32", Value::F32(1.25)),
        ("bool", Value::Bool(true)),
        ("string", Value::String("héllo".into())),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(-0.125)),
        (
            "strings",
            Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
        ),
        (
            "nested",
            Value::Array(vec![
                Value::Array(vec![Value::I32(1), Value::I32(2)]),
                Value::Array(vec![Value::I32(3)]),
            ]),
        ),
    ]
}

fn sample(version: u32, alignment: Option<u32>) -> (Vec<u8>, Vec<TensorInfo>) {
    let mut w = GgufWriter::new(version);
    for (k, v) in every_value() {
        w = w.metadata(k, v);
    }
    if let Some(a) = alignment {
        w = w.metadata("general.alignment", Value::U32(a));
    }
    let mut q8 = vec![0x00, 0x3c];
    q8.extend((0..32).map(|i| i as u8));
    w.f32_tensor("plain", &[3, 2], &[1., 2., 3., 4., 5., 6.])
        .tensor("quantized", &[32], GgmlType::Q8_0, q8)
        .f32_tensor("last", &[1], &[7.0])
        .build()
}

#[test]
fn round_trip_every_type_both_versions_and_alignments() {
    for version in [2, 3] {
        for alignment in [None, Some(64), Some(8)] {
            let (bytes, infos) = sample(version, alignment);
            let file = GgufFile::from_bytes(bytes).unwrap();
            assert_eq!(file.version(), version);
            assert_eq!(file.alignment(), alignment.map_or(32, u64::from));
            for (k, v) in every_value() {
                assert_eq!(file.metadata(k), Some(&v), "{k}");
            }
            assert_eq!(file.tensors(), &infos[..]);
            assert_eq!(file.tensor("plain").unwrap().shape(), [2, 3]);
            assert_eq!(file.dequantize("plain").unwrap(), [1., 2., 3., 4., 5., 6.]);
            let q: Vec<f32> = (0..32).map(|i| i as f32).collect();
            assert_eq!(file.dequantize("quantized").unwrap(), q);
            assert_eq!(file.dequantize("last").unwrap(), [7.0]);
        }
    }
}

#[test]
fn open_reads_a_file_through_the_memory_map() {
    let (bytes, _) = sample(3, None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    std::fs::write(&path, bytes).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.require_u64("u32").unwrap(), 4_000_000_000);
    assert_eq!(file.require_f64("f32").unwrap(), 1.25);
    assert_eq!(file.require_str("string").unwrap(), "héllo");
    assert!(matches!(
        file.require_u64("i8"),
        Err(Error::Metadata { .. })
    ));
    assert!(matches!(
        file.require_str("absent"),
        Err(Error::Metadata { .. })
    ));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let (bytes, _) = sample(3, None);
    for len in 0..bytes.len() {
        let result = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(result.is_err(), "accepted a file cut at {len}");
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let (bytes, _) = sample(3, None);
    // Flip every byte of the header and metadata region, one at a time.
    for i in 0..bytes.len().min(600) {
        for x in [0xff, 0x80, 0x01] {
            let mut b = bytes.clone();
            b[i] ^= x;
            let _ = GgufFile::from_bytes(b).map(|f| {
                for t in f.tensors() {
                    let _ = f.dequantize(&t.name);
                }
            });
        }
    }
}

#[test]
fn clear_errors() {
    let (mut bytes, _) = sample(3, None);
    let good = bytes.clone();
    bytes[0] = b'X';
    assert!(matches!(
        GgufFile::from_bytes(bytes),
        Err(Error::BadMagic { .. })
    ));

    let mut bytes = good.clone();
    bytes[4] = 1;
    let err = GgufFile::from_bytes(bytes).unwrap_err();
    assert!(matches!(err, Error::UnsupportedVersion(1)), "{err}");

    let (bytes, _) = GgufWriter::new(3)
        .tensor("k", &[256], GgmlType::Q4_K, vec![0; 144])
        .build();
    let file = GgufFile::from_bytes(bytes).unwrap();
    let err = file.dequantize("k").unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedQuantization { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Q4_K"), "{err}");

    let (mut bytes, _) = GgufWriter::new(3).f32_tensor("t", &[1], &[0.0]).build();
    // The type id sits just before the 8-byte offset, after name and the single dimension.
    let type_at = 24 + 8 + 1 + 4 + 8;
    bytes[type_at] = 99;
    let err = GgufFile::from_bytes(bytes).unwrap_err();
    assert!(matches!(err, Error::UnknownType { id: 99, .. }), "{err}");

    let (bytes, _) = GgufWriter::new(3).f32_tensor("t", &[1], &[0.0]).build();
    let err = GgufFile::from_bytes(bytes[..bytes.len() - 2].to_vec()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn huge_announced_lengths_are_refused_without_allocating() {
    let mut b = MAGIC.to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b'k');
    b.extend(9u32.to_le_bytes()); // array
    b.extend(0u32.to_le_bytes()); // of u8
    b.extend(u64::MAX.to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(b),
        Err(Error::Truncated { .. })
    ));
}
