//! `bcfl-devnet-fixture-tp`: a test-fixture transaction processor for devnet's integration tests.
//!
//! It shows the behaviours no well-behaved processor shows. In `sdk` mode it is a real
//! `sawtooth_sdk` processor (family `fixture`, version `1.0` by default) whose payload is a
//! `;`-separated script:
//!
//! | command | effect |
//! | --- | --- |
//! | `set ADDR TEXT` | sets `ADDR` to the bytes of `TEXT` |
//! | `sethex ADDR HEX` | sets `ADDR` to the hex-decoded bytes |
//! | `del ADDR` | deletes `ADDR` |
//! | `expect ADDR TEXT` | INVALID unless `ADDR` holds `TEXT` (`-` means absent) |
//! | `inc ADDR` | adds one to a decimal counter at `ADDR` |
//! | `invalid MSG` / `internal MSG` | answers INVALID_TRANSACTION / INTERNAL_ERROR |
//! | `sleep MS` | sleeps |
//! | `event TYPE` / `data TEXT` | adds an event / receipt data |
//!
//! Context errors (e.g. AUTHORIZATION_ERROR) go through the SDK's own mapping. The raw-ZMQ modes
//! misbehave on the wire: `garbage` sends malformed frames and exits, `vanish` registers and exits
//! as soon as it receives a transaction, `silent` registers and never answers (it prints
//! `pinged` for each ping it answers); `raw` registers for
//! RAW headers and checks that the signed header bytes arrive.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use protobuf::Message as _;
use sawtooth_sdk::messages::processor::{
    TpProcessRequest, TpProcessResponse, TpProcessResponse_Status, TpRegisterRequest,
    TpRegisterResponse, TpRegisterResponse_Status,
};
use sawtooth_sdk::messages::transaction::TransactionHeader;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};
use sawtooth_sdk::processor::TransactionProcessor;
use sha2::{Digest, Sha512};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// A real sawtooth-sdk processor running payload scripts.
    Sdk,
    /// Send malformed frames, then exit.
    Garbage,
    /// Register, then exit on the first transaction.
    Vanish,
    /// Register, then never answer.
    Silent,
    /// Register for RAW headers (protocol version 1) and accept every transaction whose signed
    /// header bytes arrive intact.
    Raw,
}

/// Test-fixture transaction processor for bcfl-devnet.
#[derive(Parser, Debug)]
struct Cli {
    /// Validator component endpoint.
    #[arg(short = 'C', long, default_value = "tcp://127.0.0.1:4004")]
    connect: String,
    /// Behaviour.
    #[arg(long, value_enum, default_value_t = Mode::Sdk)]
    mode: Mode,
    /// Family name.
    #[arg(long, default_value = "fixture")]
    family: String,
    /// Family version.
    #[arg(long, default_value = "1.0")]
    version: String,
}

struct ScriptHandler {
    family: String,
    version: String,
}

fn invalid(msg: impl Into<String>) -> ApplyError {
    ApplyError::InvalidTransaction(msg.into())
}

impl ScriptHandler {
    fn run(&self, command: &str, ctx: &mut dyn TransactionContext) -> Result<(), ApplyError> {
        let mut words = command.trim().splitn(3, ' ');
        let verb = words.next().unwrap_or_default();
        let arg1 = words.next().unwrap_or_default();
        let arg2 = words.next().unwrap_or_default();
        match verb {
            "" => Ok(()),
            "set" => Ok(ctx.set_state_entry(arg1.to_string(), arg2.as_bytes().to_vec())?),
            "sethex" => {
                let bytes = hex::decode(arg2).map_err(|e| invalid(e.to_string()))?;
                Ok(ctx.set_state_entry(arg1.to_string(), bytes)?)
            }
            "del" => ctx.delete_state_entry(arg1).map(|_| ()).map_err(Into::into),
            "expect" => {
                let found = ctx.get_state_entry(arg1)?;
                let want = (arg2 != "-").then(|| arg2.as_bytes().to_vec());
                if found == want {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "expected {arg2} at {arg1}, found {:?}",
                        found.as_deref().map(String::from_utf8_lossy)
                    )))
                }
            }
            "inc" => {
                let current = match ctx.get_state_entry(arg1)? {
                    Some(bytes) => String::from_utf8_lossy(&bytes)
                        .parse::<u64>()
                        .map_err(|e| invalid(e.to_string()))?,
                    None => 0,
                };
                Ok(ctx.set_state_entry(arg1.to_string(), (current + 1).to_string().into_bytes())?)
            }
            "invalid" => Err(invalid(format!("{arg1} {arg2}").trim())),
            "internal" => Err(ApplyError::InternalError(
                format!("{arg1} {arg2}").trim().to_string(),
            )),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(arg1.parse().unwrap_or(0)));
                Ok(())
            }
            "event" => Ok(ctx.add_event(
                arg1.to_string(),
                vec![("k".into(), arg2.into())],
                arg2.as_bytes(),
            )?),
            "data" => Ok(ctx.add_receipt_data(arg1.as_bytes())?),
            other => Err(invalid(format!("unknown command {other}"))),
        }
    }
}

impl TransactionHandler for ScriptHandler {
    fn family_name(&self) -> String {
        self.family.clone()
    }
    fn family_versions(&self) -> Vec<String> {
        vec![self.version.clone()]
    }
    fn namespaces(&self) -> Vec<String> {
        vec![String::new()]
    }
    fn apply(
        &self,
        request: &TpProcessRequest,
        ctx: &mut dyn TransactionContext,
    ) -> Result<(), ApplyError> {
        let script =
            std::str::from_utf8(request.get_payload()).map_err(|e| invalid(e.to_string()))?;
        script
            .split(';')
            .try_for_each(|command| self.run(command, ctx))
    }
}

fn envelope(message_type: Message_MessageType, correlation_id: &str, content: Vec<u8>) -> Vec<u8> {
    let mut msg = Message::new();
    msg.set_message_type(message_type);
    msg.set_correlation_id(correlation_id.into());
    msg.set_content(content);
    msg.write_to_bytes().expect("encoding a message")
}

fn raw_socket(cli: &Cli) -> anyhow::Result<zmq::Socket> {
    let socket = zmq::Context::new().socket(zmq::DEALER)?;
    socket.set_linger(0)?;
    socket.connect(&cli.connect).context("connecting")?;
    Ok(socket)
}

fn raw_register(cli: &Cli, socket: &zmq::Socket) -> anyhow::Result<()> {
    let mut req = TpRegisterRequest::new();
    req.set_family(cli.family.clone());
    req.set_version(cli.version.clone());
    socket.send(
        envelope(
            Message_MessageType::TP_REGISTER_REQUEST,
            "reg",
            req.write_to_bytes()?,
        ),
        0,
    )?;
    socket.recv_bytes(0)?;
    Ok(())
}

fn garbage(cli: &Cli) -> anyhow::Result<()> {
    let socket = raw_socket(cli)?;
    socket.send(&b"\xff\x00not a protobuf message"[..], 0)?;
    socket.send_multipart([&b"two"[..], &b"frames"[..]], 0)?;
    socket.send(
        envelope(
            Message_MessageType::TP_STATE_GET_REQUEST,
            "g1",
            b"\xff\xff\xff".to_vec(),
        ),
        0,
    )?;
    socket.send(
        envelope(
            Message_MessageType::TP_PROCESS_RESPONSE,
            "nobody",
            Vec::new(),
        ),
        0,
    )?;
    socket.send(
        envelope(
            Message_MessageType::CLIENT_BATCH_SUBMIT_REQUEST,
            "c1",
            b"junk".to_vec(),
        ),
        0,
    )?;
    socket.send(
        envelope(
            Message_MessageType::TP_REGISTER_REQUEST,
            "r1",
            vec![0x0a, 0xff],
        ),
        0,
    )?;
    // A newer TP protocol is refused with ERROR and protocol_version 1 (field 2, which the SDK's
    // older processor.proto does not know, so it arrives as an unknown field).
    let mut req = TpRegisterRequest::new();
    req.set_family("fixture".into());
    req.set_version("9.9".into());
    req.mut_unknown_fields().add_varint(6, 2);
    socket.send(
        envelope(
            Message_MessageType::TP_REGISTER_REQUEST,
            "pv2",
            req.write_to_bytes()?,
        ),
        0,
    )?;
    let reply = Message::parse_from_bytes(&socket.recv_bytes(0)?)?;
    anyhow::ensure!(
        reply.get_correlation_id() == "pv2",
        "unexpected reply {reply:?}"
    );
    let resp = TpRegisterResponse::parse_from_bytes(reply.get_content())?;
    let version = resp
        .get_unknown_fields()
        .get(2)
        .and_then(|v| v.varint.first().copied());
    anyhow::ensure!(
        resp.get_status() == TpRegisterResponse_Status::ERROR && version == Some(1),
        "protocol_version 2 was not refused: {resp:?}"
    );
    println!("protocol version 2 refused");
    // A probe is echoed; waiting for it proves the endpoint survived everything above.
    socket.send(&[][..], 0)?;
    let echo = socket.recv_bytes(0)?;
    anyhow::ensure!(echo.is_empty(), "probe echo was not empty");
    println!("probe echoed");
    Ok(())
}

fn misbehave(cli: &Cli, exit_on_request: bool) -> anyhow::Result<()> {
    let socket = raw_socket(cli)?;
    raw_register(cli, &socket)?;
    println!("registered");
    loop {
        let bytes = socket.recv_bytes(0)?;
        let Ok(msg) = Message::parse_from_bytes(&bytes) else {
            continue;
        };
        match msg.get_message_type() {
            Message_MessageType::TP_PROCESS_REQUEST if exit_on_request => std::process::exit(3),
            Message_MessageType::PING_REQUEST => {
                println!("pinged");
                let reply = envelope(
                    Message_MessageType::PING_RESPONSE,
                    msg.get_correlation_id(),
                    Vec::new(),
                );
                socket.send(reply, 0)?;
            }
            _ => {}
        }
    }
}

/// Checks a RAW-style request: no expanded header, the signed header bytes in field 5.
fn check_raw(req: &TpProcessRequest) -> Result<(), String> {
    if req.has_header() {
        return Err("an expanded header was sent to a RAW processor".into());
    }
    let bytes = req
        .get_unknown_fields()
        .get(5)
        .and_then(|v| v.length_delimited.first())
        .ok_or("header_bytes (field 5) is missing")?;
    let header = TransactionHeader::parse_from_bytes(bytes).map_err(|e| e.to_string())?;
    let digest = hex::encode(Sha512::digest(req.get_payload()));
    if header.get_payload_sha512() != digest {
        return Err("header_bytes do not describe this payload".into());
    }
    Ok(())
}

fn raw_headers(cli: &Cli) -> anyhow::Result<()> {
    let socket = raw_socket(cli)?;
    let mut req = TpRegisterRequest::new();
    req.set_family(cli.family.clone());
    req.set_version(cli.version.clone());
    req.mut_unknown_fields().add_varint(6, 1);
    req.mut_unknown_fields().add_varint(7, 2);
    socket.send(
        envelope(
            Message_MessageType::TP_REGISTER_REQUEST,
            "reg",
            req.write_to_bytes()?,
        ),
        0,
    )?;
    loop {
        let msg = Message::parse_from_bytes(&socket.recv_bytes(0)?)?;
        let cid = msg.get_correlation_id();
        match msg.get_message_type() {
            Message_MessageType::TP_PROCESS_REQUEST => {
                let mut resp = TpProcessResponse::new();
                match check_raw(&TpProcessRequest::parse_from_bytes(msg.get_content())?) {
                    Ok(()) => resp.set_status(TpProcessResponse_Status::OK),
                    Err(why) => {
                        resp.set_status(TpProcessResponse_Status::INVALID_TRANSACTION);
                        resp.set_message(why);
                    }
                }
                let reply = envelope(
                    Message_MessageType::TP_PROCESS_RESPONSE,
                    cid,
                    resp.write_to_bytes()?,
                );
                socket.send(reply, 0)?;
            }
            Message_MessageType::PING_REQUEST => {
                socket.send(
                    envelope(Message_MessageType::PING_RESPONSE, cid, Vec::new()),
                    0,
                )?;
            }
            _ => {}
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Sdk => {
            let handler = ScriptHandler {
                family: cli.family.clone(),
                version: cli.version.clone(),
            };
            let mut processor = TransactionProcessor::new(&cli.connect);
            processor.add_handler(&handler);
            processor.start();
            Ok(())
        }
        Mode::Garbage => garbage(&cli),
        Mode::Vanish => misbehave(&cli, true),
        Mode::Silent => misbehave(&cli, false),
        Mode::Raw => raw_headers(&cli),
    }
}
