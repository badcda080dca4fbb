//! PubMedQA PQA-L (Jin et al. 2019, "PubMedQA: A Dataset for Biomedical Research Question
//! Answering", EMNLP-IJCNLP; <https://github.com/pubmedqa/pubmedqa>) as a task for the decoder:
//! the questions, the official split, and the prompt the model answers in one token.
//!
//! - [`PubMedQa::load`] reads `ori_pqal.json` (1,000 expert-labelled questions keyed by PubMed id:
//!   `QUESTION`, `CONTEXTS`, `final_decision`) and `test_ground_truth.json` (the official
//!   500-question test split, PubMed id → answer). The test split is those 500 ids, whose gold
//!   answers must agree with `ori_pqal.json`; the training split is the other 500.
//! - [`random_subset`] draws questions with a seed (the test file is sorted by answer, so a
//!   prefix of it is not a sample) and [`partition`] spreads training questions over members,
//!   IID or skewed by answer (Dirichlet), with the training engine's
//!   [`crate::train::split::partition`].
//! - [`write_shards`] writes each member's training questions and the held-out questions as
//!   files in `ori_pqal.json`'s format ([`write_questions`], [`read_questions`]): a member's
//!   private data for `bcfl node run` with a decoder package.
//! - [`PromptEncoder`] renders a question in the model's chat format ([`SYSTEM_PROMPT`], then
//!   [`user_message`]), ending after the assistant header, as at most [`MAX_PROMPT_TOKENS`]
//!   tokens: a longer prompt loses the tail of its context (cut where a word ends), never the
//!   question. The answer is the next token: `yes`, `no` or `maybe`, each one token of the
//!   vocabulary ([`AnswerTokens`]); [`PromptEncoder::answer_id`] is a gold answer's target id.
//! - [`AnswerLogProbs`] are the log-probabilities of the three answers at the last prompt
//!   position (log-softmax over the whole vocabulary); the prediction is the likeliest
//!   ([`Prediction`]), scored by [`scores`] against the gold answers and by
//!   [`majority_baseline`] for the answer a constant model would give.
//!
//! ```no_run
//! use bcfl_client::llm::pubmedqa::{AnswerLogProbs, PromptEncoder, PubMedQa};
//! use bcfl_client::llm::LanguageModel;
//!
//! # fn main() -> Result<(), bcfl_client::llm::pubmedqa::Error> {
//! let data = PubMedQa::load("data/pubmedqa".as_ref())?;
//! let lm = LanguageModel::open("SmolLM2-135M-Instruct.Q4_1.gguf", tch::Device::Cpu)?;
//! let encoder = PromptEncoder::new(lm.tokenizer())?;
//! let question = data.test()[0];
//! let prompt = encoder.prompt(question)?;
//! let scores = AnswerLogProbs::of_prompt(lm.model(), &prompt.ids, encoder.answers())?;
//! println!("{}: gold {}, predicted {}", question.pmid, question.answer, scores.predicted());
//! # Ok(())
//! # }
//! ```

mod data;
mod error;
mod eval;
mod prompt;

pub use data::{
    answer_counts, hold_out, member_file, parse_questions, partition, random_subset,
    read_questions, write_questions, write_shards, Answer, PubMedQa, Question, ShardFile,
    ShardManifest, Split, SPLIT_FILE, TEST_SHARD_FILE,
};
pub use error::{Error, Result};
pub use eval::{majority_baseline, scores, AnswerLogProbs, Prediction};
pub use prompt::{
    user_message, AnswerTokens, Prompt, PromptEncoder, MAX_PROMPT_TOKENS, SYSTEM_PROMPT,
};

/// The PubMedQA folder in a data directory.
pub const DIR: &str = "pubmedqa";
/// The PQA-L questions in [`DIR`].
pub const QUESTIONS_FILE: &str = "ori_pqal.json";
/// The official test split (PubMed id → answer) in [`DIR`].
pub const TEST_FILE: &str = "test_ground_truth.json";

#[cfg(test)]
pub(crate) mod tests;
