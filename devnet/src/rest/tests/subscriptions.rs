//! The `/subscriptions` websocket, on a real listener with [`serve`](crate::rest::serve).

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::memory::{address, change, MemoryLedger};
use crate::view::LedgerView;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message in time");
        match message.expect("socket open").expect("no error") {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn say(socket: &mut Socket, text: &str) {
    socket.send(Message::Text(text.into())).await.unwrap();
}

#[tokio::test]
async fn subscribe_then_one_message_per_commit() {
    let ledger = MemoryLedger::with_genesis();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::rest::serve(listener, ledger.clone(), async {
        let _ = stopped.await;
    }));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/subscriptions"))
            .await
            .unwrap();

    say(&mut socket, "not json").await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"error": "Invalid input: \"not json\""}"#
    );
    say(&mut socket, r#"{"action": "dance"}"#).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"error": "Unknown action \"dance\""}"#
    );
    say(&mut socket, r#"{"action": "get_block_deltas"}"#).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"error": "Must specify a block id"}"#
    );

    say(
        &mut socket,
        r#"{"action": "subscribe", "address_prefixes": ["1cf126"]}"#,
    )
    .await;
    let genesis = ledger
        .chain_head()
        .unwrap()
        .get_header_signature()
        .to_owned();
    assert_eq!(
        next_text(&mut socket).await,
        format!(
            r#"{{"block_id": "{genesis}", "block_num": "0", "previous_block_id": "0000000000000000", "state_changes": []}}"#
        )
    );

    let (intkey, xo) = (address("1cf126", "k"), address("5b7349", "g"));
    let block = ledger.commit(
        Vec::new(),
        vec![change(&xo, Some(b"x")), change(&intkey, Some(b"v"))],
    );
    let block_id = block.get_header_signature().to_owned();
    assert_eq!(
        next_text(&mut socket).await,
        format!(
            r#"{{"block_id": "{block_id}", "block_num": "1", "previous_block_id": "{genesis}", "state_changes": [{{"address": "{intkey}", "value": "dg==", "type": "SET"}}]}}"#
        )
    );

    say(
        &mut socket,
        &format!(r#"{{"action": "get_block_deltas", "block_id": "{block_id}"}}"#),
    )
    .await;
    let reply: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(reply["block_num"], "1");
    assert_eq!(
        reply["state_changes"].as_array().unwrap().len(),
        0,
        "the memory ledger keeps changes in receipts of transactions only"
    );

    // After unsubscribing, commits are no longer pushed: the next message is the reply.
    say(&mut socket, r#"{"action": "unsubscribe"}"#).await;
    // A round trip makes sure the unsubscribe was handled before the commit.
    say(&mut socket, r#"{"action": "sync"}"#).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"error": "Unknown action \"sync\""}"#
    );
    ledger.commit(Vec::new(), vec![change(&intkey, None)]);
    say(&mut socket, r#"{"action": "subscribe"}"#).await;
    let head: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(head["block_num"], "2");

    stop.send(()).unwrap();
    let closing = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match closing {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason.as_str(), "Server shutdown");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(socket);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn block_deltas_are_the_last_change_per_address_from_receipts() {
    let ledger = MemoryLedger::with_genesis();
    let a = address("1cf126", "a");
    let batch = super::memory::simple_batch("deltas");
    let block = ledger.commit(
        vec![batch],
        vec![change(&a, Some(b"1")), change(&a, Some(b"2"))],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(crate::rest::serve(
        listener,
        ledger.clone(),
        std::future::pending(),
    ));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/subscriptions"))
            .await
            .unwrap();
    say(
        &mut socket,
        &format!(
            r#"{{"action": "get_block_deltas", "block_id": "{}", "address_prefixes": ["1cf1"]}}"#,
            block.get_header_signature()
        ),
    )
    .await;
    let reply: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(
        reply["state_changes"],
        serde_json::json!([{"address": a, "value": "Mg==", "type": "SET"}])
    );
    server.abort();
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_catches_up_from_the_store() {
    let ledger = MemoryLedger::with_commit_capacity(2);
    ledger.commit(Vec::new(), Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(crate::rest::serve(
        listener,
        ledger.clone(),
        std::future::pending(),
    ));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/subscriptions"))
            .await
            .unwrap();
    say(&mut socket, r#"{"action": "subscribe"}"#).await;
    let head: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(head["block_num"], "0");
    // Ten commits without yielding overflow the socket's queue of two notices.
    for i in 1..=10 {
        let seed = i.to_string();
        ledger.commit(
            vec![super::memory::simple_batch(&seed)],
            vec![change(&address("1cf126", &seed), Some(b"v"))],
        );
    }
    for expected in 1..=10 {
        let message: serde_json::Value =
            serde_json::from_str(&next_text(&mut socket).await).unwrap();
        assert_eq!(message["block_num"], expected.to_string(), "{message}");
        assert!(message.get("fork_detected").is_none(), "{message}");
        assert_eq!(
            message["state_changes"].as_array().unwrap().len(),
            1,
            "{message}"
        );
    }
    ledger.commit(Vec::new(), Vec::new());
    let message: serde_json::Value = serde_json::from_str(&next_text(&mut socket).await).unwrap();
    assert_eq!(message["block_num"], "11");
    server.abort();
}
