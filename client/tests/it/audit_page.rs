//! `bcfl audit serve` in a real browser: headless Chromium (Debian's `chromium`, driven over
//! the DevTools protocol) against the page served over a real `bcfl-devnet` that a small
//! federation (`bcfl demo --tiny`, four member processes, one sign-flipping attacker, two
//! rounds) has just written to.
//!
//! Checked in the browser: the page lists the members and rounds, the round's detail and the
//! excluded attacker, the bandwidth graph and the report charts render, the page's own SHA-256
//! gives the known answers, the verify box recognizes a member's committed update and the global
//! model and rejects a changed copy (with `crypto.subtle`, and with the bundled SHA-256 when the
//! page is opened under a name that is not a secure context), a new block (a member registered with markup for a name)
//! appears without a reload and shows as text, and the page requests nothing from any other
//! origin. It writes a screenshot (to `$BCFL_AUDIT_SCREENSHOT` when set: the README's picture).
//!
//! Skipped, with a message, where Chromium is not installed, unless `BCFL_REQUIRE_BROWSER` is
//! set (`scripts/test.sh` sets it once it has installed Chromium).
#![cfg(feature = "train")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bcfl_fed::update::sha256_hex;
use bcfl_testkit::{Binary, Browser, Cli, Ledger, Spawned};
use serde_json::Value;

use crate::demo_devnet::attacked_demo;

const WAIT: Duration = Duration::from_secs(30);

/// The store file of `name`'s blob `sha256` in the demo's work folder.
fn blob(work: &Path, name: &str, sha256: &str) -> PathBuf {
    work.join("stores").join(name).join(sha256)
}

#[test]
fn the_auditors_page_shows_a_federation_verifies_files_and_follows_new_blocks() {
    if let Err(why) = Browser::available() {
        assert!(
            std::env::var_os("BCFL_REQUIRE_BROWSER").is_none(),
            "BCFL_REQUIRE_BROWSER is set, but: {why}"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::start(dir.path());
    let (report, work) = attacked_demo(ledger.url(), dir.path());
    let members = report["members"].as_array().unwrap();
    let name_of = |key: &str| {
        members.iter().find(|m| m["key"] == key).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);

    let mut serve = Command::new(Binary::Bcfl.path());
    serve
        .args(["--json", "--url", ledger.url(), "audit", "serve"])
        .args(["--listen", "127.0.0.1:0", "--reports"])
        .arg(work.join("nodes"));
    let mut server = Spawned::start("audit-serve", serve, dir.path());
    let line = server.wait_for_line("\"listening\"", WAIT);
    let ready: Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    let origin = url.trim_end_matches('/').to_owned();

    // `auditor.test` reaches the server too, as a name that is not a secure context.
    let mut browser = Browser::launch_with(
        dir.path(),
        1280,
        1000,
        &["--host-resolver-rules=MAP auditor.test 127.0.0.1"],
    );
    browser.navigate(&url);
    browser.wait_for("document.body.dataset.ready === '1'", WAIT);

    // Members and rounds.
    let listed = browser.eval(
        "Array.from(document.querySelectorAll('#members tbody td.name'), td => td.textContent)",
    );
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, serde_json::json!(names));
    assert_eq!(
        browser.eval("document.querySelectorAll('#rounds li.round').length"),
        2
    );
    // Each round's card names the members its on-chain verdict excluded; the attacker is
    // among them in round 1. The latest round is selected.
    let attacker = members.iter().find(|m| m["attack"] == "sign-flip").unwrap()["name"]
        .as_str()
        .unwrap();
    let cli = Cli::new(ledger.url(), work.join("keys"));
    for round in 1..=2 {
        let on_chain = cli.json("admin", &["audit", "round", &round.to_string()]);
        let excluded: Vec<String> = on_chain["verdict"]["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| name_of(k.as_str().unwrap()))
            .collect();
        if round == 1 {
            assert_eq!(excluded, [attacker], "the demo's verdict");
        }
        let card = browser.eval(&format!(
            "document.querySelector('#rounds li[data-round=\"{round}\"]').innerText"
        ));
        let card = card.as_str().unwrap();
        if excluded.is_empty() {
            assert!(!card.contains("excluded"), "{card}");
        } else {
            assert!(
                card.contains(&format!("excluded: {}", excluded.join(", "))),
                "{card}"
            );
        }
    }
    assert_eq!(
        browser.eval("document.querySelector('#rounds li.selected').dataset.round"),
        "2"
    );
    browser.wait_for(
        "document.querySelectorAll('#round tbody tr').length >= 4",
        WAIT,
    );
    let detail = browser.eval("document.getElementById('round').innerText");
    let global = rounds[1]["aggregate_sha256"].as_str().unwrap();
    assert!(detail.as_str().unwrap().contains(global), "{detail}");
    // The members committed sketches: the round's agreement is shown beside its phase.
    assert!(
        detail.as_str().unwrap().contains("sketch agreement"),
        "{detail}"
    );

    // A member in detail: the attacker's commitments, the verdict on each, its links.
    browser.eval(&format!(
        "Array.from(document.querySelectorAll('#members tbody tr'))\
         .find(tr => tr.querySelector('td.name').textContent === '{attacker}').click()"
    ));
    browser.wait_for(
        &format!("document.getElementById('member-title').textContent === 'Member {attacker}'"),
        WAIT,
    );
    let member = browser.eval("document.getElementById('member').innerText");
    let member = member.as_str().unwrap();
    assert!(member.contains("Commitments (2)"), "{member}");
    assert!(member.contains("excluded"), "{member}");
    assert!(member.contains("Links out (3)"), "{member}");

    // The graph and the charts are drawn images.
    for image in ["graph", "chart-accuracy", "chart-rounds"] {
        browser.wait_for(
            &format!(
                "(() => {{ const i = document.getElementById('{image}'); \
                 return i.complete && i.naturalWidth > 0 && !i.closest('section').hidden; }})()"
            ),
            WAIT,
        );
    }
    // Round 1's graph when round 1 is chosen, by keyboard.
    browser.eval(
        "document.querySelector('#rounds li[data-round=\"1\"]')\
         .dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}))",
    );
    browser.wait_for(
        "document.getElementById('round-title').textContent === 'Round 1' && \
         document.getElementById('graph').src.includes('/api/rounds/1/graph.svg') && \
         document.getElementById('graph').naturalWidth > 0",
        WAIT,
    );

    // The page's own SHA-256 (used where crypto.subtle is missing): known answers, and a
    // long message against Rust's.
    assert_eq!(
        browser.eval("bcflSha256Hex(new TextEncoder().encode('abc'))"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        browser.eval("bcflSha256Hex(new Uint8Array(0))"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let long: Vec<u8> = (0..100_003u32).map(|i| (i * 31 % 251) as u8).collect();
    assert_eq!(
        browser.eval("bcflSha256Hex(Uint8Array.from({length: 100003}, (_, i) => (i * 31) % 251))"),
        sha256_hex(&long)
    );

    // The verify box: a member's committed update, the global model, a changed copy.
    let first = &rounds[0];
    let committed = first["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["committed"] == true && m["member"] != attacker)
        .unwrap()["member"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = cli.public_key(&committed);
    assert_eq!(name_of(&key), committed);
    let round_1 = cli.json(&committed, &["audit", "round", "1"]);
    let update = round_1["commitments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["member"] == key.as_str())
        .unwrap()["update_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let update_file = blob(&work, &committed, &update);
    let verify = |browser: &mut Browser, file: &Path| -> (String, String) {
        browser.eval("document.getElementById('verify-result').dataset.result = ''");
        browser.set_files("#verify-file", &[file]);
        let result = browser.wait_for(
            "document.getElementById('verify-result').dataset.result",
            WAIT,
        );
        let text = browser.eval("document.getElementById('verify-result').innerText");
        (
            result.as_str().unwrap().to_owned(),
            text.as_str().unwrap().to_owned(),
        )
    };
    let (result, text) = verify(&mut browser, &update_file);
    assert_eq!(result, "match", "{text}");
    assert!(
        text.contains(&format!("the update {committed} committed in round 1")),
        "{text}"
    );
    assert!(text.contains(&update), "{text}");
    assert!(text.contains("by crypto.subtle"), "{text}");
    let (result, text) = verify(&mut browser, &blob(&work, &committed, global));
    assert_eq!(result, "match", "{text}");
    assert!(text.contains("the global model of round 2"), "{text}");
    let mut changed = std::fs::read(&update_file).unwrap();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    let changed_file = dir.path().join("changed-update.bin");
    std::fs::write(&changed_file, &changed).unwrap();
    let (result, text) = verify(&mut browser, &changed_file);
    assert_eq!(result, "none", "{text}");
    assert!(text.contains(&sha256_hex(&changed)), "{text}");

    // A new block appears without a reload: a member whose name is markup joins.
    browser.eval("window.notReloaded = 42");
    let head = browser.eval("document.body.dataset.head");
    let submitted_ms = browser.eval("performance.now()").as_f64().unwrap();
    let submit = std::time::Instant::now();
    let hostile = "<img src=x onerror=\"window.pwned=1\">";
    cli.keygen("mallory");
    cli.ok(
        "admin",
        &[
            "member",
            "register",
            "mallory",
            "--name",
            hostile,
            "--endpoint",
            "http://127.0.0.1:9",
        ],
    );
    let committed_ms = submit.elapsed().as_secs_f64() * 1e3;
    browser.wait_for(
        "Array.from(document.querySelectorAll('#members tbody td.name')).some(td => \
         td.textContent === '<img src=x onerror=\"window.pwned=1\">')",
        WAIT,
    );
    assert_eq!(browser.eval("window.notReloaded"), 42);
    let shown_ms = browser
        .eval("Number(document.body.dataset.refreshedMs)")
        .as_f64()
        .unwrap()
        - submitted_ms;
    assert_ne!(browser.eval("document.body.dataset.head"), head);
    assert_eq!(browser.eval("typeof window.pwned"), "undefined");
    assert_eq!(
        browser.eval("document.querySelectorAll('#members img').length"),
        0
    );
    assert_eq!(
        browser.eval("document.getElementById('live-text').textContent"),
        "live"
    );

    // What the page weighs and how fast it is (the README quotes a run of this test).
    let resources = browser.eval(
        "performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))\
         .filter(e => !e.name.includes('/api/')).reduce((n, e) => n + e.encodedBodySize, 0)",
    );
    let overview = browser.eval(
        "(() => { const e = performance.getEntriesByType('resource')\
         .filter(e => e.name.endsWith('/api/overview')).pop(); \
         return {bytes: e.decodedBodySize, ms: e.responseEnd - e.requestStart}; })()",
    );
    let measured = serde_json::json!({
        "page_bytes": resources,
        "first_render_ms": browser.eval("Number(document.body.dataset.readyMs)"),
        "overview_bytes": overview["bytes"],
        "overview_ms": overview["ms"],
        "register_submit_to_committed_ms": committed_ms.round(),
        "register_submit_to_page_ms": shown_ms.round(),
    });
    eprintln!("audit page measured: {measured}");

    // Over plain http under another name (as from another machine) there is no
    // crypto.subtle: the bundled SHA-256 verifies.
    let remote = url.replace("127.0.0.1", "auditor.test");
    browser.navigate(&remote);
    browser.wait_for("document.body.dataset.ready === '1'", WAIT);
    assert_eq!(browser.eval("window.isSecureContext"), false);
    let (result, text) = verify(&mut browser, &update_file);
    assert_eq!(result, "match", "{text}");
    assert!(text.contains("by JavaScript"), "{text}");
    browser.navigate(&url);
    browser.wait_for("document.body.dataset.ready === '1'", WAIT);
    let (result, text) = verify(&mut browser, &changed_file);
    assert_eq!(result, "none", "{text}");

    // Nothing was requested from anywhere else.
    let remote_origin = remote.trim_end_matches('/').to_owned();
    let foreign: Vec<String> = browser
        .requested_urls()
        .into_iter()
        .filter(|u| {
            !u.starts_with(&origin)
                && !u.starts_with(&remote_origin)
                && !u.starts_with("data:")
                && u != "about:blank"
        })
        .collect();
    assert!(foreign.is_empty(), "requests elsewhere: {foreign:?}");
    let console = browser.console();
    assert!(
        console.iter().all(|m| !m.starts_with("exception")),
        "{console:?}"
    );

    // Back to the latest round, and the attacker's detail, for the picture.
    browser.eval(&format!(
        "Array.from(document.querySelectorAll('#members tbody tr'))\
         .find(tr => tr.querySelector('td.name').textContent === '{attacker}').click()"
    ));
    browser.wait_for("!document.getElementById('member-section').hidden", WAIT);
    browser.eval("document.querySelector('#rounds li[data-round=\"2\"]').click()");
    browser.wait_for(
        "document.getElementById('graph').src.includes('/api/rounds/2/graph.svg') && \
         document.getElementById('graph').naturalWidth > 0",
        WAIT,
    );
    let shot = std::env::var_os("BCFL_AUDIT_SCREENSHOT")
        .map_or_else(|| dir.path().join("audit-page.png"), PathBuf::from);
    browser.screenshot(&shot);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    server.assert_running();
}
