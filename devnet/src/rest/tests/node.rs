//! `/receipts`, `/peers`, `/status` and what aiohttp answers itself.

use axum::http::{Method, StatusCode};
use protobuf::RepeatedField;
use sawtooth_sdk::messages::events::{Event, Event_Attribute};
use sawtooth_sdk::messages::transaction_receipt::TransactionReceipt;

use super::memory::{address, change, id, simple_batch, MemoryLedger};
use super::{app, assert_error, get, send};

#[tokio::test]
async fn receipts_drop_empty_strings_and_rename_ids() {
    let ledger = MemoryLedger::with_genesis();
    let batch = simple_batch("r");
    let txn_id = batch.get_transactions()[0]
        .get_header_signature()
        .to_owned();
    ledger.commit(vec![batch], Vec::new());
    let (set, deleted) = (address("1cf126", "a"), address("1cf126", "b"));
    let mut receipt = TransactionReceipt::new();
    receipt.set_transaction_id(txn_id.clone());
    receipt.set_state_changes(RepeatedField::from_vec(vec![
        change(&set, Some(b"v")),
        change(&deleted, None),
    ]));
    let mut attribute = Event_Attribute::new();
    attribute.set_key("round".into());
    attribute.set_value(String::new());
    let mut event = Event::new();
    event.set_event_type("bcfl/round".into());
    event.set_attributes(RepeatedField::from_vec(vec![attribute]));
    receipt.set_events(RepeatedField::from_vec(vec![event]));
    receipt.set_data(RepeatedField::from_vec(vec![b"x".to_vec(), Vec::new()]));
    ledger.set_receipt(receipt);

    let router = app(&ledger);
    let reply = get(&router, &format!("/receipts?id={txn_id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let expected = format!(
        r#"{{
  "data": [
    {{
      "data": [
        "eA==",
        ""
      ],
      "events": [
        {{
          "attributes": [
            {{
              "key": "round"
            }}
          ],
          "event_type": "bcfl/round"
        }}
      ],
      "id": "{txn_id}",
      "state_changes": [
        {{
          "address": "{set}",
          "type": "SET",
          "value": "dg=="
        }},
        {{
          "address": "{deleted}",
          "type": "DELETE"
        }}
      ]
    }}
  ],
  "link": "http://api:8008/receipts?id={txn_id}"
}}"#
    );
    assert_eq!(reply.body, expected);

    let body = serde_json::to_vec(&[&txn_id]).unwrap();
    let json = send(
        &router,
        Method::POST,
        "/receipts",
        Some("application/json"),
        body,
    )
    .await
    .json();
    assert!(json.get("link").is_none());
    assert_eq!(json["data"][0]["id"], txn_id);
}

#[tokio::test]
async fn receipt_errors() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    assert_error(
        &get(&router, &format!("/receipts?id={}", id("none"))).await,
        StatusCode::NOT_FOUND,
        80,
    );
    assert_error(
        &get(&router, "/receipts").await,
        StatusCode::BAD_REQUEST,
        83,
    );
    assert_error(
        &get(&router, "/receipts?id=").await,
        StatusCode::BAD_REQUEST,
        60,
    );
    let body = serde_json::to_vec(&[id("none")]).unwrap();
    assert_error(
        &send(&router, Method::POST, "/receipts", Some("text/plain"), body).await,
        StatusCode::BAD_REQUEST,
        81,
    );
    for body in ["[]", "{}", "[1]", "\"x\""] {
        let reply = send(
            &router,
            Method::POST,
            "/receipts",
            Some("application/json"),
            body.into(),
        )
        .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, 82);
    }
    let reply = get(&router, &format!("/receipts?id={}&wait", id("none"))).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.content_type().starts_with("text/plain"));
}

#[tokio::test]
async fn peers_and_status() {
    let ledger = MemoryLedger::with_genesis();
    let router = app(&ledger);
    let reply = get(&router, "/peers").await;
    assert_eq!(
        reply.body,
        "{\n  \"data\": [\n    \"tcp://10.0.0.2:8800\",\n    \"tcp://10.0.0.1:8800\"\n  ],\n  \"link\": \"http://api:8008/peers\"\n}"
    );
    let reply = get(&router, "/status").await;
    assert_eq!(
        reply.body,
        "{\n  \"data\": {\n    \"endpoint\": \"tcp://127.0.0.1:8800\",\n    \"peers\": [\n      {\n        \"endpoint\": \"tcp://10.0.0.1:8800\"\n      },\n      {\n        \"endpoint\": \"tcp://10.0.0.2:8800\"\n      }\n    ]\n  },\n  \"link\": \"http://api:8008/status\"\n}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_plain_text() {
    let router = app(&MemoryLedger::with_genesis());
    for uri in ["/nope", "/blocks/", "/state/", "/batches/a/b"] {
        let reply = get(&router, uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.body, "404: Not Found");
        assert_eq!(reply.content_type(), "text/plain; charset=utf-8");
    }
    let reply = send(&router, Method::DELETE, "/blocks", None, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.body, "405: Method Not Allowed");
    assert_eq!(reply.headers.get("allow").unwrap(), "GET,HEAD");
    let reply = send(&router, Method::PUT, "/batches", None, Vec::new()).await;
    assert_eq!(reply.headers.get("allow").unwrap(), "GET,HEAD,POST");
}
