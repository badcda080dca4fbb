//! The tokenizer of a GGUF model, built from its metadata as a Hugging Face
//! `tokenizers::Tokenizer`, and its chat format ([`ChatTokenizer`], which
//! [`crate::llm::hf`] also builds from a checkpoint's `tokenizer.json`).
//!
//! Only `tokenizer.ggml.model = "gpt2"` (byte-level BPE) is supported: the vocabulary is
//! `tokenizer.ggml.tokens` (ids are positions), the merges `tokenizer.ggml.merges` (`"a b"`,
//! in rank order) and `tokenizer.ggml.token_type` marks control tokens (type 3, such as
//! `<|im_start|>`), which become special tokens: matched whole before BPE, one id each, and
//! dropped by `decode(.., skip_special_tokens = true)`. User-defined tokens (type 4) are added
//! tokens that are not special.
//!
//! The pre-tokenizer is SmolLM2's (its `tokenizer.json`, which llama.cpp calls `smollm`):
//! digits split one by one, then GPT-2's byte-level split and byte-to-unicode mapping, without
//! a prefix space; no BOS token is added (`tokenizer.ggml.add_bos_token = false`).
//!
//! The chat format is ChatML (`<|im_start|>role\n...<|im_end|>\n`), with the default system
//! prompt that `tokenizer.chat_template` inserts when the conversation has none.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::gguf::{GgufFile, Value};
use super::{Error, Result};

/// `tokenizer.ggml.token_type` of a control token.
pub const CONTROL_TOKEN: i64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token.
pub const USER_DEFINED_TOKEN: i64 = 4;

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";

/// A model's tokenizer, its end-of-sequence token and chat format.
#[derive(Clone, Debug)]
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    eos_token_id: u32,
    chat_template: Option<String>,
    default_system_prompt: Option<String>,
}

impl ChatTokenizer {
    /// A chat tokenizer over `tokenizer`, whose end-of-sequence id is `eos_token_id`, with the
    /// model's Jinja `chat_template` (its literal default system prompt is used; ChatML is the
    /// format either way). Used for a Hugging Face checkpoint's `tokenizer.json`
    /// ([`crate::llm::hf`]).
    pub fn new(
        tokenizer: Tokenizer,
        eos_token_id: u32,
        chat_template: Option<String>,
    ) -> Result<Self> {
        if tokenizer.id_to_token(eos_token_id).is_none() {
            return Err(Error::Tokenizer(format!(
                "end-of-sequence id {eos_token_id} is not in the vocabulary"
            )));
        }
        Ok(Self {
            default_system_prompt: chat_template.as_deref().and_then(default_system_prompt),
            tokenizer,
            eos_token_id,
            chat_template,
        })
    }

    /// Builds the tokenizer described by `file`'s metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let model = file.require_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model {model:?} is not supported (gpt2 is)"
            )));
        }
        let tokens = strings(file, "tokenizer.ggml.tokens")?;
        let merges = strings(file, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| {
                        Error::metadata("tokenizer.ggml.merges", format!("{m:?} has no space"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let types = match file.metadata("tokenizer.ggml.token_type") {
            None => vec![1; tokens.len()],
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(Value::as_i64).collect::<Option<Vec<_>>>())
                .filter(|t| t.len() == tokens.len())
                .ok_or_else(|| {
                    Error::metadata("tokenizer.ggml.token_type", "not one integer per token")
                })?,
        };

        let mut vocab = Vocab::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            if vocab.insert((*token).to_owned(), id as u32).is_some() {
                return Err(Error::metadata(
                    "tokenizer.ggml.tokens",
                    format!("{token:?} appears twice"),
                ));
            }
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer
            .with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])))
            .with_decoder(Some(ByteLevelDecoder::default()));
        let added = |kind: i64, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .zip(&types)
                .filter(|(_, &t)| t == kind)
                .map(|(s, _)| AddedToken::from((*s).to_owned(), special))
                .collect()
        };
        tokenizer.add_special_tokens(&added(CONTROL_TOKEN, true));
        tokenizer.add_tokens(&added(USER_DEFINED_TOKEN, false));

        let eos_token_id = file.require_u64("tokenizer.ggml.eos_token_id")?;
        let eos_token_id = u32::try_from(eos_token_id)
            .ok()
            .filter(|&id| (id as usize) < tokens.len())
            .ok_or_else(|| Error::metadata("tokenizer.ggml.eos_token_id", "not a token id"))?;
        let chat_template = file
            .metadata("tokenizer.chat_template")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self::new(tokenizer, eos_token_id, chat_template)
    }

    /// The ids of `text`; special tokens written in the text map to their single id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The text of `ids`, with special tokens (`skip_special`) or without.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The end-of-sequence id (`tokenizer.ggml.eos_token_id`).
    pub fn eos_token_id(&self) -> u32 {
        self.eos_token_id
    }

    /// Ids that end an answer: end of sequence and `<|im_end|>`.
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids = vec![self.eos_token_id];
        ids.extend(self.token_id(IM_END).filter(|&id| id != self.eos_token_id));
        ids
    }

    /// The model's Jinja chat template (`tokenizer.chat_template`), if it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The system prompt the chat template inserts when a conversation has none.
    pub fn default_system_prompt(&self) -> Option<&str> {
        self.default_system_prompt.as_deref()
    }

    /// A one-turn ChatML conversation asking `user`, ending where the assistant's answer starts
    /// (what `apply_chat_template(.., add_generation_prompt=True)` renders).
    pub fn chat_prompt(&self, user: &str) -> String {
        let mut prompt = String::new();
        if let Some(system) = &self.default_system_prompt {
            prompt.push_str(&format!("{IM_START}system\n{system}{IM_END}\n"));
        }
        prompt.push_str(&format!(
            "{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"
        ));
        prompt
    }

    /// A one-turn ChatML conversation with the system prompt `system` asking `user`, ending
    /// where the assistant's answer starts.
    pub fn chat_prompt_with_system(&self, system: &str, user: &str) -> String {
        format!(
            "{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{user}{IM_END}\n\
             {IM_START}assistant\n"
        )
    }

    /// The underlying Hugging Face tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

fn strings<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    file.require_array(key)?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| Error::metadata(key, "not an array of strings"))
        })
        .collect()
}

/// The literal default system prompt of a ChatML template: the text between
/// `<|im_start|>system\n` and `<|im_end|>` in a literal of the template.
fn default_system_prompt(template: &str) -> Option<String> {
    let start = template
        .find("<|im_start|>system\\n")
        .map(|i| (i, 2))
        .or_else(|| template.find("<|im_start|>system\n").map(|i| (i, 1)))?;
    let (at, newline_len) = start;
    let rest = &template[at + IM_START.len() + "system".len() + newline_len..];
    let end = rest.find(IM_END)?;
    let prompt = &rest[..end];
    // A template that writes the message's content there has no literal default.
    (!prompt.contains("{{") && !prompt.contains('\'')).then(|| prompt.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_system_prompt_of_smollm2_template() {
        let template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        assert_eq!(
            default_system_prompt(template).as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            default_system_prompt("{{'<|im_start|>' + message['role'] + '\n'}}"),
            None
        );
    }
}
