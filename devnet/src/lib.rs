//! bcfl-devnet: an embedded single-node ledger that speaks the Sawtooth 1.2 protocols.
//!
//! Bird's-eye view: transaction processors (the real `bcfl-tp`, or any processor built with the
//! Sawtooth SDKs) connect to the ZMQ component endpoint exactly as to a Sawtooth 1.2 validator;
//! clients use the REST API ([`rest`]), which sees the ledger only through
//! [`view::LedgerView`]. The ledger core ([`ledger`]) validates batches, executes them through
//! the processors, builds and signs blocks (devmode-style consensus bytes), keeps the
//! Merkle-Radix state with the validator's exact roots, and stores everything durably in one
//! redb file.
//!
//! ```no_run
//! use bcfl_devnet::ledger::{Devnet, DevnetConfig};
//! let devnet = Devnet::start(DevnetConfig::default())?;
//! let head = devnet.ledger().chain_head().expect("genesis exists");
//! println!("head {}", head.get_header_signature());
//! # Ok::<(), bcfl_devnet::ledger::LedgerError>(())
//! ```
//!
//! Where devnet deliberately differs from a Sawtooth validator:
//!
//! * `INTERNAL_ERROR` is retried a bounded number of times (default 3, also counting processor
//!   timeouts and disconnects), then the batch is INVALID with a message saying so. A validator
//!   retries for ever.
//! * Header `inputs`/`outputs` that are not even-length lowercase hex prefixes refuse the batch
//!   at submission (a validator fails the transaction later without an INVALID status).
//! * A batch that could never finish is refused at submission (400, code 30): one without
//!   transactions, or with a transaction that depends on itself or on a later transaction of its
//!   own batch. `max_batches_per_block` counts the batches admitted to a block, as a validator's
//!   candidate block does, so a batch left pending (its dependency's batch was invalid) never
//!   holds a block up.
//! * A lone invalid batch is dropped at once (no re-execution loop).
//! * `sawtooth.validator.transaction_families` is obeyed as by a validator (read from the
//!   settings state; unset or empty allows every family; a transaction of another family, or with
//!   an output outside its entry's `namespaces`, is INVALID without a message), and in addition
//!   such a batch is refused at submission (400, code 30). See [`ledger::settings`].
//! * Each batch signer may hold at most `max_pending_per_signer` (1000) pending batches; beyond
//!   that only its own submissions get 429 (code 31), so a key flooding the queue with batches
//!   no processor serves does not lock the other keys out. A validator has one shared queue.
//! * Genesis has no batches (no settings family is needed); the genesis state holds
//!   `sawtooth.validator.transaction_families` when `--transaction-families` gives it, written
//!   where the settings processor would write it. Later blocks carry `b"Devmode"` +
//!   SHA-256 of the batch ids as consensus bytes, signed by the devnet key in
//!   `<data-dir>/validator.priv`.
//! * Pending (uncommitted) batches live in memory and are lost on a crash, as in Sawtooth;
//!   committed blocks are fsynced before any status says COMMITTED. The store's page cache is
//!   64 MiB (`--cache-mib`), not redb's default 1 GiB.
//! * The ZMQ client API (`CLIENT_*` messages) is not served; clients use the REST API.
//! * The REST API reads at most 8 request bodies at once (a request that finds no slot within
//!   1 s gets 429 code 31 on `POST /batches`, 503 code 17 elsewhere), gives a body 60 s (then a
//!   plain 408) and a request header 30 s (then the connection is closed); see [`rest`].

pub mod ledger;
pub mod rest;
pub mod view;
