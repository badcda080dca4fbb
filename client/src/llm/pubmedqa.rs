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
//! - [`PromptEncoder`] renders a question in the model's chat format ([`SYSTEM_PROMPT`], then
//!   [`user_message`]), ending after the assistant header, as at most [`MAX_PROMPT_TOKENS`]
//!   tokens: a longer prompt loses the tail of its context, never the question. The answer is
//!   the next token: `yes`, `no` or `maybe`, each one token of the vocabulary ([`AnswerTokens`]).
//! - [`AnswerLogProbs`] are the log-probabilities of the three answers at the last prompt
//!   position (log-softmax over the whole vocabulary); the prediction is the likeliest.
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::model::Llama;
use super::tokenizer::ChatTokenizer;
use crate::train::data::{Dataset, Example};
use crate::train::split::Partition;

/// The PubMedQA folder in a data directory.
pub const DIR: &str = "pubmedqa";
/// The PQA-L questions in [`DIR`].
pub const QUESTIONS_FILE: &str = "ori_pqal.json";
/// The official test split (PubMed id → answer) in [`DIR`].
pub const TEST_FILE: &str = "test_ground_truth.json";

/// The system prompt of the evaluation.
pub const SYSTEM_PROMPT: &str = "You are a biomedical expert. Read the abstract and answer the \
                                 research question with exactly one word: yes, no, or maybe.";

/// Most tokens in a prompt (the answer is the 512th).
pub const MAX_PROMPT_TOKENS: usize = 511;

/// A failure to read PubMedQA, split it or build its prompts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what PubMedQA publishes (bad JSON, missing field, unknown answer...).
    #[error("{path}: {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The test split names a question PQA-L lacks, or gives it another answer.
    #[error("{path}: {problem}")]
    Inconsistent {
        /// The test-split file.
        path: PathBuf,
        /// Which question and how.
        problem: String,
    },
    /// A subset or partition cannot be drawn as asked.
    #[error("split: {0}")]
    Split(String),
    /// An answer is not a single token of the model's vocabulary.
    #[error("answer {answer:?} is {} tokens in this tokenizer ({ids:?}), not one", ids.len())]
    AnswerNotOneToken {
        /// The answer.
        answer: &'static str,
        /// Its ids.
        ids: Vec<u32>,
    },
    /// Even without any context, a question's prompt is longer than the limit.
    #[error(
        "question {pmid}: its prompt is {tokens} tokens without context, over the {limit} allowed"
    )]
    PromptTooLong {
        /// The question.
        pmid: String,
        /// Tokens of the prompt with an empty context.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
    /// The tokenizer or the model failed.
    #[error(transparent)]
    Model(#[from] super::Error),
}

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Self::Model(e.into())
    }
}

/// This module's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A PubMedQA decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Answer {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Maybe.
    Maybe,
}

impl Answer {
    /// The answers in class order (the index of each is [`Answer::index`]).
    pub const ALL: [Answer; 3] = [Answer::Yes, Answer::No, Answer::Maybe];

    /// Its class index: yes 0, no 1, maybe 2.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The answer of class `index`.
    pub fn from_index(index: usize) -> Option<Self> {
        Self::ALL.get(index).copied()
    }

    /// `yes`, `no` or `maybe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::Maybe => "maybe",
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Answer {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not yes, no or maybe"))
    }
}

/// One PQA-L question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Its PubMed id (the key in the files).
    pub pmid: String,
    /// The research question (`QUESTION`).
    pub question: String,
    /// The abstract's passages without its conclusion (`CONTEXTS`).
    pub contexts: Vec<String>,
    /// The experts' decision (`final_decision`).
    pub answer: Answer,
}

impl Question {
    /// The passages joined by one space, as the prompt shows them.
    pub fn context(&self) -> String {
        self.contexts.join(" ")
    }
}

/// The fields of an `ori_pqal.json` entry that the task uses.
#[derive(Deserialize)]
struct RawQuestion {
    #[serde(rename = "QUESTION")]
    question: String,
    #[serde(rename = "CONTEXTS")]
    contexts: Vec<String>,
    final_decision: String,
}

/// Which side of the official split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Split {
    /// The 500 questions not in the test file.
    Train,
    /// The 500 questions of `test_ground_truth.json`.
    Test,
}

/// The PQA-L questions, in PubMed-id order, and the official test split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubMedQa {
    questions: Vec<Question>,
    in_test: Vec<bool>,
}

impl PubMedQa {
    /// Reads [`QUESTIONS_FILE`] and [`TEST_FILE`] in `dir` (the data directory's [`DIR`]).
    pub fn load(dir: &Path) -> Result<Self> {
        let questions = dir.join(QUESTIONS_FILE);
        let test = dir.join(TEST_FILE);
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })
        };
        Self::parse(&read(&questions)?, &questions, &read(&test)?, &test)
    }

    /// Parses the contents of the questions file and of the test-split file (`*_path` name them
    /// in errors).
    pub fn parse(
        questions_json: &str,
        questions_path: &Path,
        test_json: &str,
        test_path: &Path,
    ) -> Result<Self> {
        let malformed = |path: &Path, problem: String| Error::Malformed {
            path: path.to_owned(),
            problem,
        };
        let entries: BTreeMap<String, serde_json::Value> = serde_json::from_str(questions_json)
            .map_err(|e| {
                malformed(
                    questions_path,
                    format!("not a JSON object of questions keyed by PubMed id: {e}"),
                )
            })?;
        let mut questions = Vec::with_capacity(entries.len());
        for (pmid, entry) in entries {
            let problem = |p: String| malformed(questions_path, format!("question {pmid}: {p}"));
            if pmid.is_empty() || !pmid.bytes().all(|b| b.is_ascii_digit()) {
                return Err(problem("the key is not a PubMed id".into()));
            }
            let raw: RawQuestion =
                serde_json::from_value(entry).map_err(|e| problem(e.to_string()))?;
            let answer = raw
                .final_decision
                .parse()
                .map_err(|e| problem(format!("final_decision {e}")))?;
            if raw.question.trim().is_empty() {
                return Err(problem("empty QUESTION".into()));
            }
            if raw.contexts.is_empty() {
                return Err(problem("no CONTEXTS".into()));
            }
            questions.push(Question {
                pmid,
                question: raw.question,
                contexts: raw.contexts,
                answer,
            });
        }
        // Numeric order of the ids (all digits: by length, then lexically).
        questions.sort_by(|a, b| (a.pmid.len(), &a.pmid).cmp(&(b.pmid.len(), &b.pmid)));

        let gold: BTreeMap<String, String> = serde_json::from_str(test_json).map_err(|e| {
            malformed(
                test_path,
                format!("not a JSON object PubMed id -> answer: {e}"),
            )
        })?;
        let mut in_test = vec![false; questions.len()];
        for (pmid, answer) in gold {
            let answer: Answer = answer
                .parse()
                .map_err(|e| malformed(test_path, format!("question {pmid}: {e}")))?;
            let inconsistent = |problem: String| Error::Inconsistent {
                path: test_path.to_owned(),
                problem,
            };
            let i = questions
                .iter()
                .position(|q| q.pmid == pmid)
                .ok_or_else(|| inconsistent(format!("question {pmid} is not in PQA-L")))?;
            if questions[i].answer != answer {
                return Err(inconsistent(format!(
                    "question {pmid}: gold answer {answer}, PQA-L says {}",
                    questions[i].answer
                )));
            }
            in_test[i] = true;
        }
        Ok(Self { questions, in_test })
    }

    /// All questions, in PubMed-id order.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }

    /// The question of `pmid`.
    pub fn question(&self, pmid: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.pmid == pmid)
    }

    /// The questions of one side of the split, in PubMed-id order.
    pub fn split(&self, split: Split) -> Vec<&Question> {
        let want = split == Split::Test;
        self.questions
            .iter()
            .zip(&self.in_test)
            .filter(|(_, &t)| t == want)
            .map(|(q, _)| q)
            .collect()
    }

    /// The official test questions.
    pub fn test(&self) -> Vec<&Question> {
        self.split(Split::Test)
    }

    /// The questions outside the test split.
    pub fn train(&self) -> Vec<&Question> {
        self.split(Split::Train)
    }
}

/// Answer counts `[yes, no, maybe]` of `questions`.
pub fn answer_counts(questions: &[&Question]) -> [usize; 3] {
    let mut counts = [0; 3];
    for q in questions {
        counts[q.answer.index()] += 1;
    }
    counts
}

/// `n` of `questions` drawn at random with `seed`, kept in their given order.
pub fn random_subset<'a>(
    questions: &[&'a Question],
    n: usize,
    seed: u64,
) -> Result<Vec<&'a Question>> {
    if n > questions.len() {
        return Err(Error::Split(format!(
            "{n} questions asked of {}",
            questions.len()
        )));
    }
    let mut indices: Vec<usize> = (0..questions.len()).collect();
    indices.shuffle(&mut StdRng::seed_from_u64(seed));
    indices.truncate(n);
    indices.sort_unstable();
    Ok(indices.into_iter().map(|i| questions[i]).collect())
}

/// `questions` spread over `members` with `scheme` and `seed` (at least one each):
/// [`Partition::Iid`] deals each answer evenly, [`Partition::Dirichlet`] skews the answers
/// (small alpha, strong skew). Each member's questions stay in their given order.
pub fn partition<'a>(
    questions: &[&'a Question],
    members: usize,
    scheme: Partition,
    seed: u64,
) -> Result<Vec<Vec<&'a Question>>> {
    let data = Dataset {
        examples: questions
            .iter()
            .map(|q| Example {
                text: q.pmid.clone(),
                label: q.answer.index(),
            })
            .collect(),
        label_names: Answer::ALL.iter().map(|a| a.to_string()).collect(),
    };
    let shards = crate::train::split::partition(&data, members, scheme, 1, seed)
        .map_err(|e| Error::Split(e.to_string()))?;
    Ok(shards
        .into_iter()
        .map(|shard| shard.into_iter().map(|i| questions[i]).collect())
        .collect())
}

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

/// Log-probabilities of the three answers as the next token.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnswerLogProbs {
    /// Of `yes`.
    pub yes: f64,
    /// Of `no`.
    pub no: f64,
    /// Of `maybe`.
    pub maybe: f64,
}

impl AnswerLogProbs {
    /// The answers' log-probabilities in next-token `logits` (`[vocab]`, one position):
    /// log-softmax over the whole vocabulary.
    pub fn from_logits(logits: &Tensor, answers: &AnswerTokens) -> Result<Self> {
        let log_probs = logits
            .to_kind(Kind::Float)
            .log_softmax(-1, Kind::Float)
            .to_device(Device::Cpu);
        let at = |answer: Answer| log_probs.double_value(&[i64::from(answers.id(answer))]);
        Ok(Self {
            yes: at(Answer::Yes),
            no: at(Answer::No),
            maybe: at(Answer::Maybe),
        })
    }

    /// The answers' log-probabilities after `prompt` (one forward pass without a cache).
    pub fn of_prompt(model: &Llama, prompt: &[u32], answers: &AnswerTokens) -> Result<Self> {
        let ids: Vec<i64> = prompt.iter().map(|&i| i64::from(i)).collect();
        let logits = model.forward(&Tensor::from_slice(&ids).unsqueeze(0), None)?;
        Self::from_logits(&logits.select(0, 0).select(0, -1), answers)
    }

    /// The log-probability of `answer`.
    pub fn of(&self, answer: Answer) -> f64 {
        match answer {
            Answer::Yes => self.yes,
            Answer::No => self.no,
            Answer::Maybe => self.maybe,
        }
    }

    /// The likeliest answer (the first of yes, no, maybe on a tie).
    pub fn predicted(&self) -> Answer {
        Answer::ALL.into_iter().fold(Answer::Yes, |best, a| {
            if self.of(a) > self.of(best) {
                a
            } else {
                best
            }
        })
    }
}

#[cfg(test)]
mod tests;
