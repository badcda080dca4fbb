//! End to end on the real ledger core: [`Devnet`] with a minimal transaction processor speaking
//! the ZMQ protocol (register, process, state set), driven through the REST router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::batch::{Batch, BatchHeader, BatchList};
use sawtooth_sdk::messages::network::PingResponse;
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status, TpRegisterRequest,
};
use sawtooth_sdk::messages::state_context::{TpStateEntry, TpStateSetRequest};
use sawtooth_sdk::messages::transaction::{Transaction, TransactionHeader};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};
use sawtooth_sdk::signing::secp256k1::Secp256k1PrivateKey;
use sawtooth_sdk::signing::{create_context, CryptoFactory};
use sha2::{Digest, Sha512};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{assert_error, get, send};
use crate::ledger::{Devnet, DevnetConfig};

const NAMESPACE: &str = "abcdef";
const KEY: &str = "2f1e7b7a130d7ba9da0068b3bb0ba1d79e7e77110302c9f746c3c2a63fe40088";

fn sign(bytes: &[u8]) -> String {
    let context = create_context("secp256k1").unwrap();
    let key = Secp256k1PrivateKey::from_hex(KEY).unwrap();
    let factory = CryptoFactory::new(&*context);
    factory.new_signer(&key).sign(bytes).unwrap()
}

fn public_key() -> String {
    let context = create_context("secp256k1").unwrap();
    let key = Secp256k1PrivateKey::from_hex(KEY).unwrap();
    context.get_public_key(&key).unwrap().as_hex()
}

/// A signed batch whose one transaction sets `address` to `value` (payload `address=value`).
fn set_batch(address: &str, value: &str) -> Batch {
    let payload = format!("{address}={value}");
    let mut header = TransactionHeader::new();
    header.set_family_name("rest-e2e".into());
    header.set_family_version("1.0".into());
    header.set_batcher_public_key(public_key());
    header.set_signer_public_key(public_key());
    header.set_payload_sha512(hex::encode(Sha512::digest(payload.as_bytes())));
    header.set_inputs(RepeatedField::from_vec(vec![NAMESPACE.into()]));
    header.set_outputs(RepeatedField::from_vec(vec![NAMESPACE.into()]));
    let header = header.write_to_bytes().unwrap();
    let mut txn = Transaction::new();
    txn.set_header_signature(sign(&header));
    txn.set_header(header);
    txn.set_payload(payload.into_bytes());
    let mut batch_header = BatchHeader::new();
    batch_header.set_signer_public_key(public_key());
    batch_header.set_transaction_ids(RepeatedField::from_vec(vec![txn
        .get_header_signature()
        .to_owned()]));
    let batch_header = batch_header.write_to_bytes().unwrap();
    let mut batch = Batch::new();
    batch.set_header_signature(sign(&batch_header));
    batch.set_header(batch_header);
    batch.set_transactions(RepeatedField::from_vec(vec![txn]));
    batch
}

fn envelope(kind: Message_MessageType, correlation_id: &str, content: Vec<u8>) -> Vec<u8> {
    let mut message = Message::new();
    message.set_message_type(kind);
    message.set_correlation_id(correlation_id.to_owned());
    message.set_content(content);
    message.write_to_bytes().unwrap()
}

/// A processor for family `rest-e2e` 1.0: each payload `address=value` sets one leaf.
fn run_processor(endpoint: String, stop: Arc<AtomicBool>) {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::DEALER).unwrap();
    socket.set_rcvtimeo(100).unwrap();
    socket.connect(&endpoint).unwrap();
    let mut register = TpRegisterRequest::new();
    register.set_family("rest-e2e".into());
    register.set_version("1.0".into());
    register.set_namespaces(RepeatedField::from_vec(vec![NAMESPACE.into()]));
    let content = register.write_to_bytes().unwrap();
    socket
        .send(
            envelope(
                Message_MessageType::TP_REGISTER_REQUEST,
                "register",
                content,
            ),
            0,
        )
        .unwrap();
    let mut counter = 0u64;
    while !stop.load(Ordering::Acquire) {
        let Ok(bytes) = socket.recv_bytes(0) else {
            continue;
        };
        let message = Message::parse_from_bytes(&bytes).unwrap();
        match message.get_message_type() {
            Message_MessageType::PING_REQUEST => {
                let content = PingResponse::new().write_to_bytes().unwrap();
                let reply = envelope(
                    Message_MessageType::PING_RESPONSE,
                    message.get_correlation_id(),
                    content,
                );
                socket.send(reply, 0).unwrap();
            }
            Message_MessageType::TP_PROCESS_REQUEST => {
                let request = TpProcessRequest::parse_from_bytes(message.get_content()).unwrap();
                let payload = String::from_utf8(request.get_payload().to_vec()).unwrap();
                let (address, value) = payload.split_once('=').unwrap();
                let mut entry = TpStateEntry::new();
                entry.set_address(address.to_owned());
                entry.set_data(value.as_bytes().to_vec());
                let mut set = TpStateSetRequest::new();
                set.set_context_id(request.get_context_id().to_owned());
                set.set_entries(RepeatedField::from_vec(vec![entry]));
                counter += 1;
                let set_id = format!("set-{counter}");
                let content = set.write_to_bytes().unwrap();
                socket
                    .send(
                        envelope(Message_MessageType::TP_STATE_SET_REQUEST, &set_id, content),
                        0,
                    )
                    .unwrap();
                // Wait for the set's answer, answering pings meanwhile.
                loop {
                    let Ok(bytes) = socket.recv_bytes(0) else {
                        continue;
                    };
                    let reply = Message::parse_from_bytes(&bytes).unwrap();
                    if reply.get_correlation_id() == set_id {
                        break;
                    }
                }
                let mut response = TpProcessResponse::new();
                response.set_status(TpProcessResponse_Status::OK);
                let content = response.write_to_bytes().unwrap();
                let reply = envelope(
                    Message_MessageType::TP_PROCESS_RESPONSE,
                    message.get_correlation_id(),
                    content,
                );
                socket.send(reply, 0).unwrap();
            }
            _ => {}
        }
    }
}

async fn next_json<S>(socket: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let WsMessage::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

#[tokio::test]
async fn rest_api_on_the_real_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevnetConfig {
        data_dir: dir.path().to_path_buf(),
        component_endpoint: "tcp://127.0.0.1:0".into(),
        ..DevnetConfig::default()
    };
    let devnet = Devnet::start(config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let processor = {
        let (endpoint, stop) = (devnet.component_endpoint().to_owned(), stop.clone());
        std::thread::spawn(move || run_processor(endpoint, stop))
    };
    let router = crate::rest::router(devnet.ledger());

    let genesis = get(&router, "/blocks").await.json();
    assert_eq!(genesis["data"][0]["header"]["block_num"], "0");
    assert_eq!(
        genesis["data"][0]["header"]["previous_block_id"],
        "0000000000000000"
    );

    // A websocket subscriber on a real listener sees the commit with its state change.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(crate::rest::serve(
        listener,
        devnet.ledger(),
        std::future::pending(),
    ));
    let url = format!("ws://127.0.0.1:{port}/subscriptions");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let subscribe = format!(r#"{{"action": "subscribe", "address_prefixes": ["{NAMESPACE}"]}}"#);
    socket
        .send(WsMessage::Text(subscribe.into()))
        .await
        .unwrap();
    let first = next_json(&mut socket).await;
    assert_eq!(first["block_num"], "0");

    let address = format!("{NAMESPACE}{}", "0".repeat(64));
    let batch = set_batch(&address, "hello");
    let mut list = BatchList::new();
    list.set_batches(RepeatedField::from_vec(vec![batch.clone()]));
    let body = list.write_to_bytes().unwrap();
    let reply = send(
        &router,
        Method::POST,
        "/batches",
        Some("application/octet-stream"),
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let batch_id = batch.get_header_signature();
    assert_eq!(
        reply.json()["link"],
        format!("http://api:8008/batch_statuses?id={batch_id}")
    );

    let statuses = tokio::time::timeout(
        Duration::from_secs(30),
        get(&router, &format!("/batch_statuses?id={batch_id}&wait=20")),
    )
    .await
    .unwrap()
    .json();
    assert_eq!(statuses["data"][0]["status"], "COMMITTED", "{statuses}");

    let pushed = next_json(&mut socket).await;
    assert_eq!(pushed["block_num"], "1");
    assert_eq!(
        pushed["state_changes"],
        serde_json::json!([{"address": address, "value": "aGVsbG8=", "type": "SET"}])
    );
    server.abort();

    let state = get(&router, &format!("/state/{address}")).await.json();
    assert_eq!(state["data"], "aGVsbG8=");
    let listed = get(&router, &format!("/state?address={NAMESPACE}"))
        .await
        .json();
    assert_eq!(
        listed["data"],
        serde_json::json!([{"address": address, "data": "aGVsbG8="}])
    );
    assert_eq!(listed["head"], state["head"]);

    let blocks = get(&router, "/blocks").await.json();
    assert_eq!(blocks["data"][0]["header"]["block_num"], "1");
    assert_eq!(blocks["data"][0]["header"]["batch_ids"][0], batch_id);
    assert_eq!(
        blocks["data"][0]["batches"][0]["transactions"][0]["header"]["family_name"],
        "rest-e2e"
    );

    let txn_id = batch.get_transactions()[0].get_header_signature();
    let receipts = get(&router, &format!("/receipts?id={txn_id}")).await.json();
    assert_eq!(receipts["data"][0]["id"], txn_id);
    assert_eq!(receipts["data"][0]["state_changes"][0]["type"], "SET");
    assert_eq!(receipts["data"][0]["state_changes"][0]["value"], "aGVsbG8=");

    let mut forged = set_batch(&address, "evil");
    forged.set_header_signature(sign(b"something else"));
    let mut list = BatchList::new();
    list.set_batches(RepeatedField::from_vec(vec![forged]));
    let reply = send(
        &router,
        Method::POST,
        "/batches",
        Some("application/octet-stream"),
        list.write_to_bytes().unwrap(),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, 30);

    stop.store(true, Ordering::Release);
    processor.join().unwrap();
    devnet.shutdown();
}
