//! Tokenization with the Hugging Face `tokenizers` crate: texts become `[batch, seq]` id and
//! attention-mask tensors.
//!
//! A model directory's `tokenizer.json` may pad every input to a fixed length (all-MiniLM-L6-v2
//! pads to 128). [`TextEncoder`] replaces that with padding to the longest text of each batch,
//! truncated at `max_len`, and hands the mask to the model, so padding costs nothing and changes
//! nothing.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{Error, Result};

/// Special tokens of the vocabulary [`TextEncoder::from_corpus`] builds, in id order.
const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// A batch of token ids and attention masks, both `[batch, seq]` `Int64`.
#[derive(Debug)]
pub struct Batch {
    /// Token ids.
    pub ids: Tensor,
    /// 1 on tokens, 0 on padding.
    pub mask: Tensor,
}

/// A tokenizer set up for batching with masks.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("vocab_size", &self.vocab_size())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl TextEncoder {
    /// Loads `tokenizer.json` and truncates inputs at `max_len` tokens.
    pub fn from_file(path: &Path, max_len: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Self::configure(tokenizer, max_len)
    }

    /// A lower-casing BERT WordPiece tokenizer whose vocabulary is the special tokens followed
    /// by the `size` most frequent whole words of `texts` (ties broken alphabetically): for tests
    /// and for models trained from scratch.
    pub fn from_corpus<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        size: usize,
        max_len: usize,
    ) -> Result<Self> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for text in texts {
            for word in text
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(word.to_lowercase()).or_default() += 1;
            }
        }
        let mut words: Vec<(String, usize)> = counts.into_iter().collect();
        words.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let vocab: serde_json::Map<String, serde_json::Value> = SPECIAL
            .iter()
            .map(|s| s.to_string())
            .chain(words.into_iter().take(size).map(|(w, _)| w))
            .enumerate()
            .map(|(i, w)| (w, serde_json::Value::from(i)))
            .collect();
        let spec = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100, "vocab": vocab},
        });
        let tokenizer: Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e| Error::Tokenizer(format!("corpus vocabulary: {e}")))?;
        Self::configure(tokenizer, max_len)
    }

    fn configure(mut tokenizer: Tokenizer, max_len: usize) -> Result<Self> {
        if max_len < 2 {
            return Err(Error::Config(format!("max_len {max_len} < 2")));
        }
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        Ok(Self { tokenizer, max_len })
    }

    /// Writes the tokenizer as a `tokenizer.json` (with this encoder's truncation and padding).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.tokenizer
            .save(path, false)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// Size of the vocabulary, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The truncation length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids and masks of `texts`, padded to the longest, on `device`.
    pub fn encode(&self, texts: &[&str], device: Device) -> Result<Batch> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let rows = encodings.len() as i64;
        let width = encodings.first().map_or(0, |e| e.len()) as i64;
        let mut ids = Vec::with_capacity((rows * width) as usize);
        let mut mask = Vec::with_capacity(ids.capacity());
        for encoding in &encodings {
            ids.extend(encoding.get_ids().iter().map(|&i| i64::from(i)));
            mask.extend(encoding.get_attention_mask().iter().map(|&m| i64::from(m)));
        }
        let shape = [rows, width];
        Ok(Batch {
            ids: Tensor::from_slice(&ids).view(shape).to_device(device),
            mask: Tensor::from_slice(&mask)
                .view(shape)
                .to_kind(Kind::Int64)
                .to_device(device),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_tokenizer_pads_to_the_longest_and_masks_padding() {
        let texts = ["the heart beats", "the liver", "a heart"];
        let encoder = TextEncoder::from_corpus(texts, 100, 16).unwrap();
        assert_eq!(encoder.vocab_size(), SPECIAL.len() + 5);
        let batch = encoder
            .encode(&["the heart beats", "liver"], Device::Cpu)
            .unwrap();
        assert_eq!(batch.ids.size(), [2, 5]);
        let mask: Vec<i64> = Vec::try_from(batch.mask.view([-1])).unwrap();
        assert_eq!(mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        let ids: Vec<i64> = Vec::try_from(batch.ids.view([-1])).unwrap();
        assert_eq!(ids[0], 2, "[CLS] first");
        assert_eq!(ids[4], 3, "[SEP] last");
        assert_eq!(&ids[8..], [0, 0], "[PAD] after the short text");
    }

    #[test]
    fn long_texts_are_truncated() {
        let encoder = TextEncoder::from_corpus(["a b c d e f g h"], 100, 6).unwrap();
        let batch = encoder.encode(&["a b c d e f g h"], Device::Cpu).unwrap();
        assert_eq!(batch.ids.size(), [1, 6]);
    }
}
