use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::llm::gguf::writer::GgufWriter;
use crate::llm::gguf::{GgufFile, Value};
use crate::llm::tokenizer::{ChatTokenizer, CONTROL_TOKEN};
use crate::llm::GGUF_ENV;
use crate::train::split::Partition;
use tch::Tensor;

fn questions_json(entries: &[(&str, &str, &[&str], &str)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(pmid, question, contexts, decision)| {
            (
                pmid.to_string(),
                serde_json::json!({
                    "QUESTION": question,
                    "CONTEXTS": contexts,
                    "LABELS": ["BACKGROUND"],
                    "final_decision": decision,
                    "LONG_ANSWER": "ignored",
                }),
            )
        })
        .collect();
    serde_json::Value::Object(map).to_string()
}

fn parse(questions: &str, test: &str) -> Result<PubMedQa> {
    PubMedQa::parse(
        questions,
        Path::new("ori_pqal.json"),
        test,
        Path::new("test_ground_truth.json"),
    )
}

fn small() -> String {
    questions_json(&[
        ("300", "Q3?", &["c3"], "maybe"),
        ("1000", "Q10?", &["c10a", "c10b"], "no"),
        ("20", "Q2?", &["c2"], "yes"),
    ])
}

/// A label flipper's answers: each moved to the next class, yes → no → maybe → yes.
#[test]
fn flipped_answers_cycle_through_the_classes() {
    let flipped: Vec<Answer> = Answer::ALL.iter().map(|a| a.flipped()).collect();
    assert_eq!(flipped, [Answer::No, Answer::Maybe, Answer::Yes]);
}

#[test]
fn questions_are_read_in_pmid_order_and_split_by_the_test_file() {
    let data = parse(&small(), r#"{"1000": "no"}"#).unwrap();
    let pmids: Vec<&str> = data.questions().iter().map(|q| q.pmid.as_str()).collect();
    assert_eq!(pmids, ["20", "300", "1000"]);
    let test: Vec<&str> = data.test().iter().map(|q| q.pmid.as_str()).collect();
    let train: Vec<&str> = data.train().iter().map(|q| q.pmid.as_str()).collect();
    assert_eq!((test, train), (vec!["1000"], vec!["20", "300"]));
    let q = data.question("1000").unwrap();
    assert_eq!(
        (q.answer, q.context()),
        (Answer::No, "c10a c10b".to_owned())
    );
}

#[test]
fn malformed_files_are_refused_with_the_question_named() {
    let cases = [
        ("[]".to_owned(), "not a JSON object"),
        (
            questions_json(&[("12", "Q?", &["c"], "perhaps")]),
            "question 12: final_decision \"perhaps\"",
        ),
        (
            questions_json(&[("12a", "Q?", &["c"], "yes")]),
            "not a PubMed id",
        ),
        (
            questions_json(&[("12", " ", &["c"], "yes")]),
            "empty QUESTION",
        ),
        (questions_json(&[("12", "Q?", &[], "yes")]), "no CONTEXTS"),
        (
            r#"{"12": {"CONTEXTS": ["c"], "final_decision": "yes"}}"#.to_owned(),
            "missing field `QUESTION`",
        ),
    ];
    for (json, expected) in cases {
        let err = parse(&json, "{}").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err} lacks {expected}");
    }
}

#[test]
fn a_test_file_that_disagrees_with_pqal_is_refused() {
    let err = parse(&small(), r#"{"1000": "yes"}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("question 1000: gold answer yes, PQA-L says no"),
        "{err}"
    );
    let err = parse(&small(), r#"{"7": "yes"}"#).unwrap_err();
    assert!(matches!(err, Error::Inconsistent { .. }), "{err}");
    let err = parse(&small(), r#"{"20": "si"}"#).unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err}");
}

/// The repository's PubMedQA files (data/README.md).
fn pubmedqa() -> PubMedQa {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(DIR);
    PubMedQa::load(&dir).expect("data/pubmedqa loads")
}

#[test]
fn the_official_split_is_500_and_500_with_the_published_answer_counts() {
    let data = pubmedqa();
    assert_eq!(data.questions().len(), 1000);
    let (test, train) = (data.test(), data.train());
    assert_eq!(answer_counts(&test), [276, 169, 55]);
    assert_eq!(answer_counts(&train), [276, 169, 55]);
    let test_ids: HashSet<&str> = test.iter().map(|q| q.pmid.as_str()).collect();
    assert!(train.iter().all(|q| !test_ids.contains(q.pmid.as_str())));
}

#[test]
fn random_subsets_are_seeded_and_mix_the_answers() {
    let data = pubmedqa();
    let test = data.test();
    let a = random_subset(&test, 60, 7).unwrap();
    assert_eq!(a, random_subset(&test, 60, 7).unwrap());
    assert_ne!(a, random_subset(&test, 60, 8).unwrap());
    let distinct: HashSet<&str> = a.iter().map(|q| q.pmid.as_str()).collect();
    assert_eq!(distinct.len(), 60);
    // A sample, not a prefix of a file sorted by answer: all three answers appear.
    assert!(
        answer_counts(&a).iter().all(|&n| n > 0),
        "{:?}",
        answer_counts(&a)
    );
    assert_eq!(random_subset(&test, 500, 1).unwrap(), test);
    assert!(matches!(random_subset(&test, 501, 1), Err(Error::Split(_))));
}

#[test]
fn a_held_out_split_is_the_random_subset_and_the_rest_is_disjoint() {
    let data = pubmedqa();
    let train = data.train();
    let (rest, held) = hold_out(&train, 100, 11).unwrap();
    assert_eq!(held, random_subset(&train, 100, 11).unwrap());
    assert_eq!((rest.len(), held.len()), (400, 100));
    let held_ids: HashSet<&str> = held.iter().map(|q| q.pmid.as_str()).collect();
    assert!(rest.iter().all(|q| !held_ids.contains(q.pmid.as_str())));
    let mut all: Vec<&str> = rest.iter().chain(&held).map(|q| q.pmid.as_str()).collect();
    all.sort_unstable();
    let mut expected: Vec<&str> = train.iter().map(|q| q.pmid.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(all, expected);
    assert_eq!(hold_out(&train, 0, 1).unwrap().0, train);
    assert!(matches!(hold_out(&train, 501, 1), Err(Error::Split(_))));
}

#[test]
fn a_shard_written_in_the_datasets_format_reads_back_and_bad_files_are_named() {
    let data = pubmedqa();
    let shard = random_subset(&data.train(), 20, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("member-1.json");
    write_questions(&path, &shard).unwrap();
    let read = read_questions(&path).unwrap();
    assert_eq!(read.iter().collect::<Vec<_>>(), shard);

    std::fs::write(
        &path,
        r#"{"123": {"QUESTION": "q?", "CONTEXTS": ["c"], "final_decision": "perhaps"}}"#,
    )
    .unwrap();
    let err = read_questions(&path).unwrap_err().to_string();
    assert!(
        err.contains("member-1.json") && err.contains("123"),
        "{err}"
    );
    let err = read_questions(&dir.path().join("absent.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.json"), "{err}");
}

#[test]
fn shards_are_written_for_each_member_with_the_test_questions_and_a_manifest() {
    let data = pubmedqa();
    let dir = tempfile::tempdir().unwrap();
    let m = write_shards(&data, dir.path(), 3, Partition::Iid, Some(30), Some(12), 5).unwrap();
    assert_eq!(m.members.len(), 3);
    assert_eq!(m.members.iter().map(|f| f.questions).sum::<usize>(), 30);
    assert_eq!(m.test.questions, 12);
    let test_ids: HashSet<String> = data.test().iter().map(|q| q.pmid.clone()).collect();
    let mut seen = HashSet::new();
    for (i, file) in m.members.iter().enumerate() {
        assert_eq!(file.path, dir.path().join(member_file(i + 1)));
        let questions = read_questions(&file.path).unwrap();
        assert_eq!(questions.len(), file.questions);
        let refs: Vec<&Question> = questions.iter().collect();
        assert_eq!(answer_counts(&refs), file.answers);
        for q in &questions {
            assert!(
                !test_ids.contains(&q.pmid),
                "a training shard holds test question {}",
                q.pmid
            );
            assert!(seen.insert(q.pmid.clone()), "{} is in two shards", q.pmid);
        }
    }
    let held = read_questions(&dir.path().join(TEST_SHARD_FILE)).unwrap();
    assert!(held.iter().all(|q| test_ids.contains(&q.pmid)));
    let manifest: ShardManifest =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(SPLIT_FILE)).unwrap())
            .unwrap();
    assert_eq!(manifest, m);
}

#[test]
fn partitions_cover_the_training_questions_once_and_dirichlet_skews_the_answers() {
    let data = pubmedqa();
    let train = data.train();
    let iid = partition(&train, 5, Partition::Iid, 3).unwrap();
    assert_eq!(iid, partition(&train, 5, Partition::Iid, 3).unwrap());
    let skewed = partition(&train, 5, Partition::Dirichlet { alpha: 0.1 }, 3).unwrap();
    for shards in [&iid, &skewed] {
        let mut all: Vec<&str> = shards.iter().flatten().map(|q| q.pmid.as_str()).collect();
        all.sort_unstable();
        let mut expected: Vec<&str> = train.iter().map(|q| q.pmid.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(all, expected);
    }
    // Largest deviation of a member's share of "yes" from the overall share.
    let spread = |shards: &[Vec<&Question>]| {
        shards
            .iter()
            .map(|s| (answer_counts(s)[0] as f64 / s.len() as f64 - 0.552).abs())
            .fold(0.0, f64::max)
    };
    assert!(spread(&iid) < 0.02, "{}", spread(&iid));
    assert!(spread(&skewed) > 0.1, "{}", spread(&skewed));
    assert!(matches!(
        partition(&train, 0, Partition::Iid, 3),
        Err(Error::Split(_))
    ));
}

/// GPT-2's map of bytes to printable characters (byte-level BPE's alphabet).
fn byte_alphabet() -> Vec<String> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut extra = 0;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                char::from(b).to_string()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap().to_string()
            }
        })
        .collect()
}

/// A byte-level tokenizer of one token per byte, with merges that make `yes`, `no` and `maybe`
/// single tokens, and the ChatML control tokens.
pub(crate) fn byte_tokenizer() -> ChatTokenizer {
    let merges = ["y e", "ye s", "n o", "m a", "ma y", "may b", "mayb e"];
    let mut tokens = byte_alphabet();
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    let mut types = vec![1i32; tokens.len()];
    for control in ["<|im_start|>", "<|im_end|>"] {
        tokens.push(control.to_owned());
        types.push(CONTROL_TOKEN as i32);
    }
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let eos = tokens.len() as u32 - 1;
    let (bytes, _) = GgufWriter::new(3)
        .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
        .metadata("tokenizer.ggml.tokens", strings(tokens))
        .metadata(
            "tokenizer.ggml.merges",
            strings(merges.iter().map(|m| m.to_string()).collect()),
        )
        .metadata(
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        )
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(eos))
        .build();
    ChatTokenizer::from_gguf(&GgufFile::from_bytes(bytes).unwrap()).unwrap()
}

fn long_question() -> Question {
    Question {
        pmid: "42".into(),
        question: "Does the tail of a long context go first?".into(),
        contexts: vec![
            "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu.".into(),
            "Nu xi omicron pi rho sigma tau upsilon phi chi psi omega.".into(),
        ],
        answer: Answer::Yes,
    }
}

#[test]
fn a_prompt_that_fits_is_the_whole_chat_turn() {
    let tokenizer = byte_tokenizer();
    let encoder = PromptEncoder::new(&tokenizer).unwrap();
    let q = long_question();
    let prompt = encoder.prompt(&q).unwrap();
    assert_eq!(prompt.context_bytes_cut, 0);
    let expected = format!(
        "<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nContext: {}\n\n\
         Question: {}\n\nAnswer with yes, no, or maybe.<|im_end|>\n<|im_start|>assistant\n",
        q.context(),
        q.question
    );
    assert_eq!(tokenizer.decode(&prompt.ids, false).unwrap(), expected);
    let answers = encoder.answers();
    for answer in Answer::ALL {
        assert_eq!(
            tokenizer.decode(&[answers.id(answer)], false).unwrap(),
            answer.as_str()
        );
        assert_eq!(encoder.answer_id(answer), answers.id(answer));
    }
}

#[test]
fn the_cut_drops_the_tail_of_the_context_and_keeps_the_question_and_the_header() {
    let tokenizer = byte_tokenizer();
    let q = long_question();
    let whole = PromptEncoder::new(&tokenizer).unwrap().prompt(&q).unwrap();
    let limit = whole.ids.len() - 40;
    let encoder = PromptEncoder::new(&tokenizer)
        .unwrap()
        .with_max_tokens(limit);
    let prompt = encoder.prompt(&q).unwrap();
    assert!(prompt.ids.len() <= limit, "{} > {limit}", prompt.ids.len());
    let text = tokenizer.decode(&prompt.ids, false).unwrap();
    let context = q.context();
    let kept = &context[..context.len() - prompt.context_bytes_cut];
    assert_eq!(text, encoder.text(&q, kept));
    assert!(text.ends_with(&format!(
        "Question: {}\n\nAnswer with yes, no, or maybe.<|im_end|>\n<|im_start|>assistant\n",
        q.question
    )));
    // The longest prefix ending at a word: the next word would not fit (one token per byte).
    assert!(context.ends_with(" omega."));
    let next_word_end = context[kept.len() + 1..]
        .find(' ')
        .map_or(context.len(), |i| kept.len() + 1 + i);
    let longer = tokenizer
        .encode(&encoder.text(&q, &context[..next_word_end]))
        .unwrap();
    assert!(longer.len() > limit);
    assert!(!kept.is_empty() && prompt.context_bytes_cut > 0);

    let err = PromptEncoder::new(&tokenizer)
        .unwrap()
        .with_max_tokens(100)
        .prompt(&q)
        .unwrap_err();
    assert!(matches!(err, Error::PromptTooLong { .. }), "{err}");
}

#[test]
fn an_answer_of_several_tokens_is_refused() {
    // Without merges, each answer is spelt byte by byte.
    let bare = {
        let tokens = byte_alphabet();
        let (bytes, _) = GgufWriter::new(3)
            .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
            .metadata(
                "tokenizer.ggml.tokens",
                Value::Array(tokens.into_iter().map(Value::String).collect()),
            )
            .metadata("tokenizer.ggml.merges", Value::Array(vec![]))
            .metadata("tokenizer.ggml.eos_token_id", Value::U32(0))
            .build();
        ChatTokenizer::from_gguf(&GgufFile::from_bytes(bytes).unwrap()).unwrap()
    };
    let err = AnswerTokens::new(&bare).unwrap_err();
    assert!(
        matches!(err, Error::AnswerNotOneToken { answer: "yes", .. }),
        "{err}"
    );
}

#[test]
fn the_prediction_is_the_likeliest_answer() {
    let answers = AnswerTokens::from_ids([1, 3, 4]);
    let logits = Tensor::from_slice(&[0.0f32, 2.0, 9.0, 1.0, 3.0]);
    let lp = AnswerLogProbs::from_logits(&logits, &answers).unwrap();
    // log-softmax over the whole vocabulary, not over the three answers.
    let log_total = [0.0f64, 2.0, 9.0, 1.0, 3.0]
        .iter()
        .map(|l| l.exp())
        .sum::<f64>()
        .ln();
    let expected = [2.0 - log_total, 1.0 - log_total, 3.0 - log_total];
    assert!((lp.yes - expected[0]).abs() < 1e-5, "{lp:?}");
    assert!((lp.no - expected[1]).abs() < 1e-5, "{lp:?}");
    assert!((lp.maybe - expected[2]).abs() < 1e-5, "{lp:?}");
    assert_eq!(lp.predicted(), Answer::Maybe);
    let tie = AnswerLogProbs {
        yes: -1.0,
        no: -1.0,
        maybe: -2.0,
    };
    assert_eq!(tie.predicted(), Answer::Yes);
}

/// SmolLM2's tokenizer (`BCFL_LLM_GGUF`), or `None` with the reason printed.
fn smollm2_tokenizer() -> Option<ChatTokenizer> {
    let path = match std::env::var_os(GGUF_ENV) {
        Some(p) if Path::new(&p).is_file() => p,
        _ => {
            eprintln!("skipped: {GGUF_ENV} names no file (source scripts/env.sh)");
            return None;
        }
    };
    Some(ChatTokenizer::from_gguf(&GgufFile::open(path).unwrap()).unwrap())
}

#[test]
fn smollm2_answers_are_single_tokens_and_every_prompt_fits() {
    let Some(tokenizer) = smollm2_tokenizer() else {
        return;
    };
    let encoder = PromptEncoder::new(&tokenizer).unwrap();
    let ids = encoder.answers().ids();
    assert_eq!(HashSet::from(ids).len(), 3);
    let data = pubmedqa();
    let mut cut = 0;
    for q in data.questions() {
        let prompt = encoder.prompt(q).unwrap();
        assert!(prompt.ids.len() <= MAX_PROMPT_TOKENS, "{}", q.pmid);
        if prompt.context_bytes_cut > 0 {
            cut += 1;
            let text = tokenizer.decode(&prompt.ids, false).unwrap();
            assert!(
                text.ends_with(&format!(
                    "Question: {}\n\nAnswer with yes, no, or maybe.<|im_end|>\n\
                     <|im_start|>assistant\n",
                    q.question
                )),
                "{}",
                q.pmid
            );
            // Cut at a word: a "word" of packed figures (`(PR0.90[95%CI...]p<0.001)`) is
            // tens of tokens, so the cut prompt can be that much under the limit.
            assert!(prompt.ids.len() > MAX_PROMPT_TOKENS - 64, "{}", q.pmid);
        }
    }
    eprintln!("{cut} of 1000 prompts cut to {MAX_PROMPT_TOKENS} tokens");
}

#[test]
fn always_yes_on_the_test_split_is_the_published_majority_baseline() {
    let data = pubmedqa();
    let gold: Vec<Answer> = data.test().iter().map(|q| q.answer).collect();
    let (answer, baseline) = majority_baseline(&gold);
    assert_eq!(answer, Answer::Yes);
    assert!((baseline.accuracy - 0.552).abs() < 1e-12);
    // F1 of yes: 2·276 / (500 + 276); no and maybe score 0.
    assert!((baseline.macro_f1 - 552.0 / 776.0 / 3.0).abs() < 1e-12);
    assert!((baseline.macro_f1 - 0.237).abs() < 5e-4);
    let predictions: Vec<Prediction> = data
        .test()
        .into_iter()
        .map(|q| {
            let lp = AnswerLogProbs {
                yes: -0.1,
                no: -3.0,
                maybe: -4.0,
            };
            Prediction::new(q, lp)
        })
        .collect();
    assert_eq!(scores(&predictions), baseline);
}

#[test]
fn a_prediction_line_round_trips_and_names_its_fields_as_documented() {
    let q = long_question();
    let mut p = Prediction::new(
        &q,
        AnswerLogProbs {
            yes: -2.0,
            no: -0.5,
            maybe: -3.0,
        },
    );
    let line = serde_json::to_string(&p).unwrap();
    assert_eq!(
        line,
        r#"{"pmid":"42","gold":"yes","pred":"no","lp":{"yes":-2.0,"no":-0.5,"maybe":-3.0}}"#
    );
    p.tokens = Some(vec![1, 2]);
    let line = serde_json::to_string(&p).unwrap();
    assert!(line.ends_with(r#","tokens":[1,2]}"#), "{line}");
    assert_eq!(serde_json::from_str::<Prediction>(&line).unwrap(), p);
}
