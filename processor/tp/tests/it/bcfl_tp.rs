//! The `bcfl-tp` binary on the wire: a scripted validator (a ZMQ ROUTER socket on a loopback
//! port, as Sawtooth's own `mock_validator` does) checks registration, one transaction with a
//! state read, and the clean unregister-and-exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bcfl_processor::address;
use bcfl_protos::bcfl as pb;
use bcfl_testkit::ChildGuard;
use protobuf::Message as _;
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status, TpRegisterRequest,
    TpRegisterResponse, TpRegisterResponse_Status, TpUnregisterResponse,
    TpUnregisterResponse_Status,
};
use sawtooth_sdk::messages::state_context::{
    TpStateGetRequest, TpStateGetResponse, TpStateGetResponse_Status,
};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};

struct Validator {
    socket: zmq::Socket,
    _context: zmq::Context,
    endpoint: String,
    tp: Option<Vec<u8>>,
}

impl Validator {
    fn bind() -> Self {
        let context = zmq::Context::new();
        let socket = context.socket(zmq::ROUTER).unwrap();
        socket.set_rcvtimeo(15_000).unwrap();
        socket.set_linger(0).unwrap();
        socket.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = socket.get_last_endpoint().unwrap().unwrap();
        Self {
            socket,
            _context: context,
            endpoint,
            tp: None,
        }
    }

    /// Next message from the processor, skipping pings' replies and empty probes.
    fn recv(&mut self) -> Message {
        loop {
            let frames = self
                .socket
                .recv_multipart(0)
                .expect("message from bcfl-tp in time");
            let body = frames.last().unwrap();
            if body.is_empty() {
                continue;
            }
            self.tp = Some(frames[0].clone());
            return Message::parse_from_bytes(body).unwrap();
        }
    }

    fn send(&self, kind: Type, correlation_id: &str, content: &impl protobuf::Message) {
        let mut message = Message::new();
        message.set_message_type(kind);
        message.set_correlation_id(correlation_id.to_owned());
        message.set_content(content.write_to_bytes().unwrap());
        let identity = self.tp.clone().unwrap();
        self.socket
            .send_multipart([identity, message.write_to_bytes().unwrap()], 0)
            .unwrap();
    }
}

/// `bcfl-tp` against `endpoint`, killed when the test ends (also when it fails).
fn spawn_tp(endpoint: &str) -> ChildGuard {
    ChildGuard::new(
        Command::new(env!("CARGO_BIN_EXE_bcfl-tp"))
            .args(["-C", endpoint, "-vv"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn registers_processes_and_exits_on_sigterm() {
    let mut validator = Validator::bind();
    let mut tp = spawn_tp(&validator.endpoint);

    let register = validator.recv();
    assert_eq!(register.get_message_type(), Type::TP_REGISTER_REQUEST);
    let request = TpRegisterRequest::parse_from_bytes(register.get_content()).unwrap();
    assert_eq!(
        (request.get_family(), request.get_version()),
        ("bcfl", "1.0")
    );
    assert_eq!(
        request.get_namespaces(),
        [bcfl_processor::NAMESPACE.to_owned()]
    );
    let mut ok = TpRegisterResponse::new();
    ok.set_status(TpRegisterResponse_Status::OK);
    validator.send(
        Type::TP_REGISTER_RESPONSE,
        register.get_correlation_id(),
        &ok,
    );

    // One transaction: CloseRound 1 on an empty ledger reads the consortium and is refused.
    let mut payload = pb::BcflPayload::new();
    payload.set_close_round(pb::CloseRound {
        round: 1,
        ..Default::default()
    });
    let signer = "02a1633cafcc01ebfb6d78e39f687a1f0995c62fc95f51ead10a02ee0be551b5dc".to_owned();
    let (inputs, outputs) = bcfl_processor::access::declared_addresses(&payload, &signer).unwrap();
    let mut header = TransactionHeader::new();
    header.set_family_name("bcfl".into());
    header.set_family_version("1.0".into());
    header.set_signer_public_key(signer);
    header.set_inputs(inputs.into());
    header.set_outputs(outputs.into());
    let mut process = TpProcessRequest::new();
    process.set_header(header);
    process.set_payload(payload.write_to_bytes().unwrap());
    process.set_context_id("c0ffee".into());
    process.set_signature("ab".repeat(64));
    validator.send(Type::TP_PROCESS_REQUEST, "txn-1", &process);

    let get = validator.recv();
    assert_eq!(get.get_message_type(), Type::TP_STATE_GET_REQUEST);
    let get_request = TpStateGetRequest::parse_from_bytes(get.get_content()).unwrap();
    assert_eq!(get_request.get_context_id(), "c0ffee");
    assert_eq!(get_request.get_addresses(), [address::consortium_address()]);
    let mut empty = TpStateGetResponse::new();
    empty.set_status(TpStateGetResponse_Status::OK);
    validator.send(
        Type::TP_STATE_GET_RESPONSE,
        get.get_correlation_id(),
        &empty,
    );

    let answer = validator.recv();
    assert_eq!(answer.get_message_type(), Type::TP_PROCESS_RESPONSE);
    assert_eq!(answer.get_correlation_id(), "txn-1");
    let response = TpProcessResponse::parse_from_bytes(answer.get_content()).unwrap();
    assert_eq!(
        response.get_status(),
        TpProcessResponse_Status::INVALID_TRANSACTION
    );
    assert_eq!(response.get_message(), "the consortium is not initialized");

    // SIGTERM: the processor unregisters, then exits with status 0.
    let kill = Command::new("kill")
        .args(["-TERM", &tp.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let unregister = validator.recv();
    assert_eq!(unregister.get_message_type(), Type::TP_UNREGISTER_REQUEST);
    let mut done = TpUnregisterResponse::new();
    done.set_status(TpUnregisterResponse_Status::OK);
    validator.send(
        Type::TP_UNREGISTER_RESPONSE,
        unregister.get_correlation_id(),
        &done,
    );
    let status = wait_exit(&mut tp, Duration::from_secs(10));
    if status.is_none() {
        tp.kill().unwrap();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "bcfl-tp must exit 0 after SIGTERM"
    );
}

#[test]
fn rejects_a_bad_endpoint() {
    let output = Command::new(env!("CARGO_BIN_EXE_bcfl-tp"))
        .args(["-C", "localhost:4004"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--connect must be a ZMQ endpoint"));
    let version = Command::new(env!("CARGO_BIN_EXE_bcfl-tp"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("bcfl-tp "));
}
