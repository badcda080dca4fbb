//! Scoring a prompt: the answers' log-probabilities at its last position and the prediction;
//! scoring predictions with the training engine's [`Scores`] (accuracy, macro-F1, confusion).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{Answer, AnswerTokens, Question, Result};
use crate::llm::model::Llama;
use crate::train::metrics::Scores;

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
        let logits = model.forward_last(&Tensor::from_slice(&ids).unsqueeze(0), None)?;
        Self::from_logits(&logits.select(0, 0), answers)
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

/// One scored question: a line of `bcfl llm eval --predictions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The question's PubMed id.
    pub pmid: String,
    /// The experts' answer.
    pub gold: Answer,
    /// The likeliest answer.
    pub pred: Answer,
    /// The answers' log-probabilities.
    pub lp: AnswerLogProbs,
    /// The prompt's token ids, when asked for (what `bench/llama_reference.py` reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<u32>>,
}

impl Prediction {
    /// The prediction for `question` from its answers' log-probabilities.
    pub fn new(question: &Question, lp: AnswerLogProbs) -> Self {
        Self {
            pmid: question.pmid.clone(),
            gold: question.answer,
            pred: lp.predicted(),
            lp,
            tokens: None,
        }
    }
}

/// Accuracy, macro-F1 over the three answers and the confusion matrix (rows gold, columns
/// predicted, in the order yes, no, maybe).
pub fn scores(predictions: &[Prediction]) -> Scores {
    let gold: Vec<usize> = predictions.iter().map(|p| p.gold.index()).collect();
    let pred: Vec<usize> = predictions.iter().map(|p| p.pred.index()).collect();
    Scores::new(&gold, &pred, Answer::ALL.len())
}

/// The scores of always answering the most frequent gold answer of `gold` (the first of yes,
/// no, maybe on a tie), and that answer.
pub fn majority_baseline(gold: &[Answer]) -> (Answer, Scores) {
    let mut counts = [0usize; 3];
    for a in gold {
        counts[a.index()] += 1;
    }
    let majority = Answer::ALL.into_iter().fold(Answer::Yes, |best, a| {
        if counts[a.index()] > counts[best.index()] {
            a
        } else {
            best
        }
    });
    let gold: Vec<usize> = gold.iter().map(|a| a.index()).collect();
    let pred = vec![majority.index(); gold.len()];
    (majority, Scores::new(&gold, &pred, Answer::ALL.len()))
}
