//! `/blocks`, `/batches`, `/transactions`: shapes, paging, sorting, `head` and errors.

use axum::http::StatusCode;
use protobuf::Message;
use sawtooth_sdk::messages::block::BlockHeader;

use super::memory::{batch, id, simple_batch, txn, MemoryLedger};
use super::{app, assert_error, get};

/// A chain of genesis plus `n` blocks with one single-transaction batch each.
fn chain(n: usize) -> std::sync::Arc<MemoryLedger> {
    let ledger = MemoryLedger::with_genesis();
    for i in 1..=n {
        ledger.commit(vec![simple_batch(&format!("b{i}"))], Vec::new());
    }
    ledger
}

#[tokio::test]
async fn block_by_id_golden_shape() {
    let ledger = MemoryLedger::with_genesis();
    let t = txn("t", b"hi");
    let b = batch("b", vec![t.clone()]);
    let block = ledger.commit(vec![b.clone()], Vec::new());
    let genesis = id("block 0");
    let reply = get(
        &app(&ledger),
        &format!("/blocks/{}", block.get_header_signature()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type(), "application/json; charset=utf-8");
    let header = BlockHeader::parse_from_bytes(block.get_header()).unwrap();
    let expected = format!(
        r#"{{
  "data": {{
    "batches": [
      {{
        "header": {{
          "signer_public_key": "02{bk}",
          "transaction_ids": [
            "{tid}"
          ]
        }},
        "header_signature": "{bid}",
        "trace": false,
        "transactions": [
          {{
            "header": {{
              "batcher_public_key": "02{bk}",
              "dependencies": [],
              "family_name": "intkey",
              "family_version": "1.0",
              "inputs": [
                "1cf126"
              ],
              "nonce": "",
              "outputs": [
                "1cf126"
              ],
              "payload_sha512": "{sha}",
              "signer_public_key": "03{ck}"
            }},
            "header_signature": "{tid}",
            "payload": "aGk="
          }}
        ]
      }}
    ],
    "header": {{
      "batch_ids": [
        "{bid}"
      ],
      "block_num": "1",
      "consensus": "RGV2bW9kZQ==",
      "previous_block_id": "{genesis}",
      "signer_public_key": "02{ak}",
      "state_root_hash": "{root}"
    }},
    "header_signature": "{blk}"
  }},
  "link": "http://api:8008/blocks/{blk}"
}}"#,
        bk = "b".repeat(64),
        ck = "c".repeat(64),
        ak = "a".repeat(64),
        tid = t.get_header_signature(),
        bid = b.get_header_signature(),
        sha = hex::encode(<sha2::Sha512 as sha2::Digest>::digest(b"hi")),
        root = header.get_state_root_hash(),
        blk = block.get_header_signature(),
    );
    assert_eq!(reply.body, expected);
}

#[tokio::test]
async fn fetch_by_id_errors() {
    let ledger = chain(1);
    let router = app(&ledger);
    let missing = id("nope");
    for (path, code) in [("blocks", 70), ("batches", 71), ("transactions", 72)] {
        assert_error(
            &get(&router, &format!("/{path}/{missing}")).await,
            StatusCode::NOT_FOUND,
            code,
        );
        let reply = get(&router, &format!("/{path}/ABC")).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, 60);
        assert!(reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("was invalid: ABC"));
    }
    let b = simple_batch("b1");
    let reply = get(&router, &format!("/batches/{}", b.get_header_signature())).await;
    assert_eq!(
        reply.json()["data"]["header_signature"],
        b.get_header_signature()
    );
    let t = &b.get_transactions()[0];
    let reply = get(
        &router,
        &format!("/transactions/{}?x=1", t.get_header_signature()),
    )
    .await;
    assert_eq!(reply.json()["data"]["payload"], "YjE=");
    assert_eq!(
        reply.json()["link"],
        format!(
            "http://api:8008/transactions/{}?x=1",
            t.get_header_signature()
        )
    );
    assert!(reply.json().get("head").is_none());
}

#[tokio::test]
async fn blocks_page_newest_first_with_hex_positions() {
    let ledger = chain(4);
    let router = app(&ledger);
    let head = ledger.chain_head_id();
    let reply = get(&router, "/blocks?limit=2").await;
    let json = reply.json();
    let nums: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["header"]["block_num"].as_str().unwrap())
        .collect();
    assert_eq!(nums, ["4", "3"]);
    assert_eq!(json["head"], head);
    assert_eq!(
        json["link"],
        format!("http://api:8008/blocks?head={head}&start=0x0000000000000004&limit=2")
    );
    assert_eq!(json["paging"]["limit"], 2);
    assert_eq!(json["paging"]["start"], serde_json::Value::Null);
    assert_eq!(json["paging"]["next_position"], "0x0000000000000002");
    assert_eq!(
        json["paging"]["next"],
        format!("http://api:8008/blocks?head={head}&start=0x0000000000000002&limit=2")
    );

    let json = get(&router, "/blocks?start=0x0000000000000001")
        .await
        .json();
    let nums: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["header"]["block_num"].as_str().unwrap())
        .collect();
    assert_eq!(nums, ["1", "0"]);
    assert_eq!(
        json["paging"],
        serde_json::json!({"limit": null, "start": "0x0000000000000001"})
    );

    for reverse in ["reverse", "reverse=block_num"] {
        let json = get(&router, &format!("/blocks?{reverse}&limit=3"))
            .await
            .json();
        let nums: Vec<&str> = json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["header"]["block_num"].as_str().unwrap())
            .collect();
        assert_eq!(nums, ["0", "1", "2"]);
        assert_eq!(json["paging"]["next_position"], "0x0000000000000003");
    }
    let json = get(&router, "/blocks?reverse=false").await.json();
    assert_eq!(json["data"][0]["header"]["block_num"], "4");
}

#[tokio::test]
async fn list_errors_follow_sawtooth() {
    let ledger = chain(2);
    let router = app(&ledger);
    for uri in [
        "/blocks?limit=0",
        "/blocks?limit=x",
        "/batches?limit=-1",
        "/transactions?limit=1.5",
    ] {
        assert_error(&get(&router, uri).await, StatusCode::BAD_REQUEST, 53);
    }
    for uri in [
        "/blocks?reverse=true",
        "/blocks?reverse=default",
        "/batches?reverse=block_num",
        "/transactions?reverse=true",
    ] {
        assert_error(&get(&router, uri).await, StatusCode::BAD_REQUEST, 57);
    }
    for uri in [
        "/blocks?start=5",
        "/blocks?start=0x0000000000000009",
        "/blocks?reverse&start=0x09",
        "/batches?start=abc",
    ] {
        assert_error(&get(&router, uri).await, StatusCode::BAD_REQUEST, 54);
    }
    let unknown = id("unknown head");
    for path in ["blocks", "batches", "transactions"] {
        assert_error(
            &get(&router, &format!("/{path}?head={unknown}")).await,
            StatusCode::NOT_FOUND,
            50,
        );
        assert_error(
            &get(&router, &format!("/{path}?head=xyz")).await,
            StatusCode::BAD_REQUEST,
            60,
        );
        assert_error(
            &get(&router, &format!("/{path}?id=xyz")).await,
            StatusCode::BAD_REQUEST,
            60,
        );
    }
    let empty = app(&MemoryLedger::empty());
    for path in ["blocks", "batches", "transactions", "state"] {
        assert_error(
            &get(&empty, &format!("/{path}")).await,
            StatusCode::SERVICE_UNAVAILABLE,
            15,
        );
    }
}

#[tokio::test]
async fn batches_and_transactions_walk_from_head() {
    let ledger = chain(3);
    let router = app(&ledger);
    let ids: Vec<String> = (1..=3)
        .rev()
        .map(|i| {
            simple_batch(&format!("b{i}"))
                .get_header_signature()
                .to_owned()
        })
        .collect();
    let json = get(&router, "/batches?limit=2").await.json();
    let got: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["header_signature"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(json["paging"]["next_position"], ids[2]);
    let head = ledger.chain_head_id();
    assert_eq!(
        json["link"],
        format!(
            "http://api:8008/batches?head={head}&start={}&limit=2",
            ids[0]
        )
    );

    let json = get(&router, &format!("/batches?start={}", ids[1]))
        .await
        .json();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    let json = get(&router, "/batches?reverse").await.json();
    assert_eq!(json["data"][0]["header_signature"], ids[2]);

    // At an older head, later batches are not visible.
    let block1 = ledger.block_by_num_id(1);
    let json = get(&router, &format!("/transactions?head={block1}"))
        .await
        .json();
    assert_eq!(json["data"].as_array().unwrap().len(), 1);
    assert_eq!(json["head"], block1);

    // Id filters keep the filter's order; with a head they only keep what the head sees.
    let filter = format!("{},{}", ids[2], ids[0]);
    let json = get(&router, &format!("/batches?id={filter}")).await.json();
    let got: Vec<&str> = json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["header_signature"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[2].as_str(), ids[0].as_str()]);
    let json = get(&router, &format!("/batches?id={filter}&head={block1}"))
        .await
        .json();
    assert_eq!(json["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn empty_lists_have_bare_start_and_zero_limit() {
    let ledger = MemoryLedger::with_genesis();
    let head = ledger.chain_head_id();
    let reply = get(&app(&ledger), "/transactions?limit=7").await;
    let expected = format!(
        "{{\n  \"data\": [],\n  \"head\": \"{head}\",\n  \"link\": \"http://api:8008/transactions?head={head}&start&limit=0\",\n  \"paging\": {{\n    \"limit\": 7,\n    \"start\": null\n  }}\n}}"
    );
    assert_eq!(reply.body, expected);
}

#[tokio::test]
async fn corrupt_headers_and_storage_failures_are_500() {
    let ledger = chain(1);
    let router = app(&ledger);
    let mut broken = simple_batch("broken");
    broken.set_header(vec![0xff, 0xff]);
    ledger.commit(vec![broken], Vec::new());
    assert_error(
        &get(&router, "/batches").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        21,
    );
    ledger.set_broken_storage(true);
    assert_error(
        &get(&router, "/blocks").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        10,
    );
}

impl MemoryLedger {
    fn chain_head_id(&self) -> String {
        crate::view::LedgerView::chain_head(self)
            .unwrap()
            .get_header_signature()
            .to_owned()
    }

    fn block_by_num_id(&self, num: u64) -> String {
        crate::view::LedgerView::block_by_num(self, num)
            .unwrap()
            .unwrap()
            .get_header_signature()
            .to_owned()
    }
}
