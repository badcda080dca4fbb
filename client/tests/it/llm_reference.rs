//! bcfl's Llama decoder against an independent plain-PyTorch implementation
//! (`bench/llama_reference.py`: its own GGUF reader, dequantization and forward pass): on three
//! PubMedQA test prompts, the log-probabilities of `yes`, `no` and `maybe` agree to 1e-3, with
//! the reference's rotary embeddings in both layouts (Hugging Face's `rotate_half` after undoing
//! llama.cpp's row permutation, and ggml's interleaved pairs on the GGUF rows).
//!
//! Skipped, with the reason printed, when `BCFL_LLM_GGUF` names no file or no Python at hand
//! imports torch: `$BCFL_TORCH_VENV` (`bench/setup-torch-venv.sh`, default
//! `$BCFL_HOME/venv-torch`) is tried first, then `$BCFL_VENV`.
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::process::Command;

use bcfl_client::llm::pubmedqa::{
    random_subset, AnswerLogProbs, Prediction, PromptEncoder, PubMedQa, DIR,
};
use bcfl_client::llm::{LanguageModel, GGUF_ENV};
use tch::Device;

const TOLERANCE: f64 = 1e-3;

/// The first Python of the candidate venvs that imports torch.
fn python_with_torch() -> Option<PathBuf> {
    let home = std::env::var_os("BCFL_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share/bcfl")));
    let venvs = [
        std::env::var_os("BCFL_TORCH_VENV").map(PathBuf::from),
        home.map(|h| h.join("venv-torch")),
        std::env::var_os("BCFL_VENV").map(PathBuf::from),
    ];
    venvs
        .into_iter()
        .flatten()
        .map(|v| v.join("bin/python"))
        .filter(|p| p.is_file())
        .find(|p| {
            Command::new(p)
                .args(["-c", "import torch"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn rust_and_pytorch_give_the_same_answer_log_probs() {
    let gguf = match std::env::var_os(GGUF_ENV) {
        Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
        _ => {
            eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
            return;
        }
    };
    let Some(python) = python_with_torch() else {
        eprintln!(
            "skipped: no Python that imports torch in $BCFL_TORCH_VENV, $BCFL_HOME/venv-torch or \
             $BCFL_VENV (bench/setup-torch-venv.sh makes one)"
        );
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let data = PubMedQa::load(&root.join("data").join(DIR)).unwrap();
    let questions = random_subset(&data.test(), 3, 5).unwrap();
    let lm = LanguageModel::open(&gguf, Device::Cpu).unwrap();
    let encoder = PromptEncoder::new(lm.tokenizer()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let predictions_path = dir.path().join("predictions.jsonl");
    let mut lines = String::new();
    let mut ours = Vec::new();
    for q in &questions {
        let prompt = encoder.prompt(q).unwrap();
        let lp = AnswerLogProbs::of_prompt(lm.model(), &prompt.ids, encoder.answers()).unwrap();
        let mut prediction = Prediction::new(q, lp);
        prediction.tokens = Some(prompt.ids);
        lines.push_str(&serde_json::to_string(&prediction).unwrap());
        lines.push('\n');
        ours.push(prediction);
    }
    std::fs::write(&predictions_path, lines).unwrap();

    for rope in ["hf", "interleaved"] {
        let out = dir.path().join(format!("reference-{rope}.jsonl"));
        let run = Command::new(&python)
            .arg(root.join("bench/llama_reference.py"))
            .arg("--gguf")
            .arg(&gguf)
            .arg("--predictions")
            .arg(&predictions_path)
            .arg("--out")
            .arg(&out)
            .args(["--rope", rope, "--threads", "1"])
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "llama_reference.py --rope {rope} failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        eprintln!(
            "reference ({rope}): {}",
            String::from_utf8_lossy(&run.stdout).trim()
        );
        let theirs: Vec<serde_json::Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(theirs.len(), ours.len());
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(b["pmid"], a.pmid.as_str());
            for (answer, value) in [("yes", a.lp.yes), ("no", a.lp.no), ("maybe", a.lp.maybe)] {
                let reference = b["lp"][answer].as_f64().unwrap();
                assert!(
                    (value - reference).abs() < TOLERANCE,
                    "question {} ({rope}): log p({answer}) is {value} here, {reference} in PyTorch",
                    a.pmid
                );
            }
        }
    }
}
