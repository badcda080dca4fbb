//! `/state` and `/state/{address}`.

use axum::http::StatusCode;

use super::memory::{address, change, id, MemoryLedger};
use super::{app, assert_error, get};

fn ledger_with_state() -> (std::sync::Arc<MemoryLedger>, Vec<String>) {
    let ledger = MemoryLedger::with_genesis();
    let mut addresses: Vec<String> = (0..5).map(|i| address("1cf126", &i.to_string())).collect();
    addresses.push(address("5b7349", "xo"));
    addresses.sort();
    let changes = addresses
        .iter()
        .map(|a| change(a, Some(&a.as_bytes()[..8])))
        .collect();
    ledger.commit(Vec::new(), changes);
    (ledger, addresses)
}

#[tokio::test]
async fn state_list_pages_by_address() {
    let (ledger, addresses) = ledger_with_state();
    let router = app(&ledger);
    let intkey: Vec<&String> = addresses
        .iter()
        .filter(|a| a.starts_with("1cf126"))
        .collect();
    let json = get(&router, "/state?address=1cf126&limit=2").await.json();
    let head = json["head"].as_str().unwrap().to_owned();
    assert_eq!(json["data"][0]["address"], *intkey[0]);
    assert_eq!(json["data"][0]["data"], base64_of(&intkey[0][..8]));
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["link"],
        format!(
            "http://api:8008/state?head={head}&start={}&limit=2&address=1cf126",
            intkey[0]
        )
    );
    assert_eq!(json["paging"]["next_position"], *intkey[2]);
    assert_eq!(
        json["paging"]["next"],
        format!(
            "http://api:8008/state?head={head}&start={}&limit=2&address=1cf126",
            intkey[2]
        )
    );

    let json = get(
        &router,
        &format!("/state?address=1cf126&start={}", intkey[3]),
    )
    .await
    .json();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    assert!(json["paging"].get("next").is_none());

    let json = get(&router, "/state?reverse").await.json();
    assert_eq!(json["data"][0]["address"], *addresses.last().unwrap());
    assert_eq!(json["data"].as_array().unwrap().len(), 6);
    let json = get(&router, "/state?reverse=default&limit=1").await.json();
    assert_eq!(json["paging"]["next_position"], addresses[4]);

    // An invalid prefix lists nothing (the validator's INVALID_ADDRESS is not trapped).
    let json = get(&router, "/state?address=1CF").await.json();
    assert_eq!(json["data"], serde_json::json!([]));
    assert_eq!(
        json["link"],
        format!("http://api:8008/state?head={head}&start&limit=0&address=1CF")
    );

    assert_error(
        &get(&router, "/state?start=ffff").await,
        StatusCode::BAD_REQUEST,
        54,
    );
    assert_error(
        &get(&router, "/state?reverse=address").await,
        StatusCode::BAD_REQUEST,
        57,
    );
    assert_error(
        &get(&router, "/state?limit=0").await,
        StatusCode::BAD_REQUEST,
        53,
    );
}

#[tokio::test]
async fn state_at_an_older_head() {
    let (ledger, addresses) = ledger_with_state();
    let router = app(&ledger);
    let genesis = id("block 0");
    let json = get(&router, &format!("/state?head={genesis}")).await.json();
    assert_eq!(json["data"], serde_json::json!([]));
    assert_eq!(json["head"], genesis);
    assert_error(
        &get(&router, &format!("/state/{}?head={genesis}", addresses[0])).await,
        StatusCode::NOT_FOUND,
        75,
    );
    // Sawtooth looks the head of a state query up as a block: 70, not 50.
    assert_error(
        &get(&router, &format!("/state?head={}", id("x"))).await,
        StatusCode::NOT_FOUND,
        70,
    );
    assert_error(
        &get(
            &router,
            &format!("/state/{}?head={}", addresses[0], id("x")),
        )
        .await,
        StatusCode::NOT_FOUND,
        70,
    );
}

#[tokio::test]
async fn fetch_state_by_address() {
    let (ledger, addresses) = ledger_with_state();
    let router = app(&ledger);
    let reply = get(&router, &format!("/state/{}", addresses[0])).await;
    let head = super::super::params::is_resource_id(reply.json()["head"].as_str().unwrap());
    assert!(head);
    let head = reply.json()["head"].as_str().unwrap().to_owned();
    let expected = format!(
        "{{\n  \"data\": \"{}\",\n  \"head\": \"{head}\",\n  \"link\": \"http://api:8008/state/{}?head={head}\"\n}}",
        base64_of(&addresses[0][..8]),
        addresses[0]
    );
    assert_eq!(reply.body, expected);

    assert_error(
        &get(&router, "/state/1cf126").await,
        StatusCode::BAD_REQUEST,
        62,
    );
    assert_error(
        &get(&router, "/state/1cf12").await,
        StatusCode::BAD_REQUEST,
        62,
    );
    assert_error(
        &get(&router, &format!("/state/{}", "G".repeat(70))).await,
        StatusCode::BAD_REQUEST,
        62,
    );
    assert_error(
        &get(&router, "/state/abcdef").await,
        StatusCode::NOT_FOUND,
        75,
    );
    assert_error(
        &get(&router, &format!("/state/{}", address("1cf126", "missing"))).await,
        StatusCode::NOT_FOUND,
        75,
    );
    let reply = get(&router, &format!("/state/{}", address("1cf126", "missing"))).await;
    assert_eq!(
        reply.body,
        "{\n  \"error\": {\n    \"code\": 75,\n    \"message\": \"There is no state data at the address specified.\",\n    \"title\": \"State Not Found\"\n  }\n}"
    );
    assert_error(
        &get(
            &app(&MemoryLedger::empty()),
            &format!("/state/{}", addresses[0]),
        )
        .await,
        StatusCode::SERVICE_UNAVAILABLE,
        15,
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
