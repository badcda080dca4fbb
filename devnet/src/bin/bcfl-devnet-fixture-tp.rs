//! `bcfl-devnet-fixture-tp`: a test-fixture transaction processor for devnet's integration tests.
//!
//! It shows the behaviours no well-behaved processor shows. In `sdk` mode it is a real
//! `sawtooth_sdk` processor (family `fixture`, version `1.0` by default) whose payload is a
//! `;`-separated script:
//!
//! | command | effect |
//! | --- | --- |
//! | `set ADDR TEXT` | sets `ADDR` to the bytes of `TEXT` |
//! | `del ADDR` | deletes `ADDR` |
//! | `expect ADDR TEXT` | INVALID unless `ADDR` holds `TEXT` (`-` means absent) |
//! | `inc ADDR` | adds one to a decimal counter at `ADDR` |
//! | `invalid MSG` / `internal MSG` | answers INVALID_TRANSACTION / INTERNAL_ERROR |
//! | `sleep MS` | sleeps |
//! | `event TYPE` / `data TEXT` | adds an event / receipt data |
//!
//! Context errors (e.g. AUTHORIZATION_ERROR) go through the SDK's own mapping. The raw-ZMQ modes
//! misbehave on the wire: `garbage` sends malformed frames and exits, `vanish` registers and exits
//! as soon as it receives a transaction, `silent` registers and never answers.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use protobuf::Message as _;
use sawtooth_sdk::messages::processor::{TpProcessRequest, TpRegisterRequest};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType};
use sawtooth_sdk::processor::handler::{ApplyError, TransactionContext, TransactionHandler};
use sawtooth_sdk::processor::TransactionProcessor;

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
    }
}
