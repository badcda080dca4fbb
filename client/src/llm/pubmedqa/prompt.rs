//! The evaluation prompt: the question in the model's chat format, cut to fit, and the token ids
//! of the three answers.

use serde::{Deserialize, Serialize};

use super::{Answer, Error, Question, Result};
use crate::llm::tokenizer::ChatTokenizer;

/// The system prompt of the evaluation.
pub const SYSTEM_PROMPT: &str = "You are a biomedical expert. Read the abstract and answer the \
                                 research question with exactly one word: yes, no, or maybe.";

/// Most tokens in a prompt (the answer is the 512th).
pub const MAX_PROMPT_TOKENS: usize = 511;

/// The user's message: the context, then the question.
pub fn user_message(context: &str, question: &str) -> String {
    format!("Context: {context}\n\nQuestion: {question}\n\nAnswer with yes, no, or maybe.")
}

/// The ids of the single tokens `yes`, `no` and `maybe`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerTokens {
    ids: [u32; 3],
}

impl AnswerTokens {
    /// The answers' ids in `tokenizer`; an error if any is not exactly one token.
    pub fn new(tokenizer: &ChatTokenizer) -> Result<Self> {
        let mut ids = [0; 3];
        for answer in Answer::ALL {
            let encoded = tokenizer.encode(answer.as_str())?;
            match encoded[..] {
                [id] => ids[answer.index()] = id,
                _ => {
                    return Err(Error::AnswerNotOneToken {
                        answer: answer.as_str(),
                        ids: encoded,
                    })
                }
            }
        }
        Ok(Self { ids })
    }

    /// Ids of yes, no and maybe, unchecked (for tests with a made-up vocabulary).
    #[cfg(test)]
    pub(crate) fn from_ids(ids: [u32; 3]) -> Self {
        Self { ids }
    }

    /// The id of `answer`.
    pub fn id(&self, answer: Answer) -> u32 {
        self.ids[answer.index()]
    }

    /// The ids of yes, no and maybe, in that order.
    pub fn ids(&self) -> [u32; 3] {
        self.ids
    }
}

/// A question's prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Its ids (at most the encoder's limit), ending with the assistant header.
    pub ids: Vec<u32>,
    /// Bytes of the context left out to fit the limit (0: the whole context).
    pub context_bytes_cut: usize,
}

/// Renders questions as prompt ids for one tokenizer (see the module docs).
#[derive(Clone, Debug)]
pub struct PromptEncoder {
    tokenizer: ChatTokenizer,
    answers: AnswerTokens,
    max_tokens: usize,
}

impl PromptEncoder {
    /// An encoder for `tokenizer`, with prompts of at most [`MAX_PROMPT_TOKENS`] tokens.
    pub fn new(tokenizer: &ChatTokenizer) -> Result<Self> {
        Ok(Self {
            answers: AnswerTokens::new(tokenizer)?,
            tokenizer: tokenizer.clone(),
            max_tokens: MAX_PROMPT_TOKENS,
        })
    }

    /// The same encoder with prompts of at most `max_tokens` tokens.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Most tokens of a prompt.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The answers' token ids.
    pub fn answers(&self) -> &AnswerTokens {
        &self.answers
    }

    /// The id of the token answering `answer` (the training target after the prompt).
    pub fn answer_id(&self, answer: Answer) -> u32 {
        self.answers.id(answer)
    }

    /// The prompt's text with `context` in place of the question's.
    pub fn text(&self, question: &Question, context: &str) -> String {
        self.tokenizer
            .chat_prompt_with_system(SYSTEM_PROMPT, &user_message(context, &question.question))
    }

    /// The ids of `question`'s prompt: the whole context when it fits, else the longest prefix
    /// of the context ending at a whitespace that does.
    pub fn prompt(&self, question: &Question) -> Result<Prompt> {
        let context = question.context();
        let encode = |context: &str| self.tokenizer.encode(&self.text(question, context));
        let ids = encode(&context)?;
        if ids.len() <= self.max_tokens {
            return Ok(Prompt {
                ids,
                context_bytes_cut: 0,
            });
        }
        // Prefixes ending before a whitespace; the longest that fits, by bisection (the token
        // count grows with the prefix).
        let mut cuts = vec![0];
        let mut previous_was_space = true;
        for (i, c) in context.char_indices() {
            if c.is_whitespace() && !previous_was_space {
                cuts.push(i);
            }
            previous_was_space = c.is_whitespace();
        }
        let shortest = encode("")?;
        if shortest.len() > self.max_tokens {
            return Err(Error::PromptTooLong {
                pmid: question.pmid.clone(),
                tokens: shortest.len(),
                limit: self.max_tokens,
            });
        }
        let (mut fits, mut best) = (0, shortest);
        let (mut lo, mut hi) = (1, cuts.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let ids = encode(&context[..cuts[mid]])?;
            if ids.len() <= self.max_tokens {
                (fits, best) = (mid, ids);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(Prompt {
            ids: best,
            context_bytes_cut: context.len() - cuts[fits],
        })
    }
}
