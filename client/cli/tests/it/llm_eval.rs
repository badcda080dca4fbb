//! `bcfl llm eval --task pubmedqa` end to end on two test questions: the JSON report, the
//! predictions file (one line per question, with the prompt's tokens on request), `--ids`, and
//! the refusal of an id outside the split. Skips, saying so, without bcfl-train or without the
//! model (`BCFL_LLM_GGUF`, set by scripts/env.sh).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{bcfl, bcfl_train};

fn model(test: &str) -> bool {
    match std::env::var_os("BCFL_LLM_GGUF") {
        Some(p) if Path::new(&p).is_file() => true,
        _ => {
            eprintln!("{test}: skipped, BCFL_LLM_GGUF names no file (source scripts/env.sh)");
            false
        }
    }
}

#[test]
fn eval_scores_questions_and_writes_one_line_each() {
    let test = "eval_scores_questions_and_writes_one_line_each";
    if bcfl_train(test).is_none() || !model(test) {
        return;
    }
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let dir = tempfile::tempdir().unwrap();
    let predictions = dir.path().join("p.jsonl");
    let run = |extra: &[&str]| {
        Command::new(bcfl())
            .args([
                "--json",
                "llm",
                "eval",
                "--task",
                "pubmedqa",
                "--predictions",
            ])
            .arg(&predictions)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap()
    };

    let out = run(&["--limit", "2", "--seed", "3", "--with-tokens"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["questions"], 2);
    assert_eq!(report["labels"], serde_json::json!(["yes", "no", "maybe"]));
    let confusion: u64 = report["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(confusion, 2);
    let lines: Vec<Value> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let lp = &line["lp"];
        let best = ["yes", "no", "maybe"]
            .into_iter()
            .max_by(|a, b| lp[a].as_f64().unwrap().total_cmp(&lp[b].as_f64().unwrap()))
            .unwrap();
        assert_eq!(line["pred"], best, "{line}");
        let tokens = line["tokens"].as_array().unwrap().len();
        assert!(tokens > 50 && tokens <= 511, "{tokens}");
    }

    // The same two questions by id, without the tokens.
    let ids = dir.path().join("ids.txt");
    let pmids: Vec<&str> = lines.iter().map(|l| l["pmid"].as_str().unwrap()).collect();
    std::fs::write(&ids, format!("{}\n\n{}\n", pmids[0], pmids[1])).unwrap();
    let out = run(&["--ids", ids.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again: Vec<Value> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected = lines.clone();
    expected.sort_by_key(|l| l["pmid"].as_str().unwrap().parse::<u64>().unwrap());
    for (a, b) in again.iter().zip(&expected) {
        assert_eq!((&a["pmid"], &a["lp"]), (&b["pmid"], &b["lp"]));
        assert!(a.get("tokens").is_none());
    }

    // A training question is not in the test split.
    let train_id = "10808977";
    std::fs::write(&ids, format!("{train_id}\n")).unwrap();
    let out = run(&["--ids", ids.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "PubMed id {train_id} is not a question of the test split"
        )),
        "{stderr}"
    );
}
