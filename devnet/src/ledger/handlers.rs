//! Message handling and block driving for the component loop ([`super::engine::Engine`]).
//!
//! Registration (spec 1.3), `TpProcessRequest` dispatch and responses (1.4), state context
//! requests with address checks and prefix authorization (1.5), pings (1.6), and the publisher
//! cycle: start a block, run its transactions (conflict-free ones in parallel, see
//! [`super::publisher`]), seal and durably commit it. A transaction that the
//! `sawtooth.validator.transaction_families` allow-list ([`super::settings`]) of the state the
//! block builds on does not allow is invalid at once, with no message, as in a validator; it
//! needs no processor.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::network::PingResponse;
use sawtooth_sdk::messages::processor::*;
use sawtooth_sdk::messages::state_context::*;
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as T};

use super::committer::SealJob;
use super::engine::{Engine, InFlight, Outstanding};
use super::publisher::{BlockBuild, NextTxn, TxnOutcome};
use super::registry::{HeaderStyle, Registration};
use super::settings::{allow_list_from, setting_address, FamilyAllowList, TRANSACTION_FAMILIES};
use super::validate::is_full_address;

/// Blocks that may wait for the committer before execution pauses.
pub(super) const MAX_OUTSTANDING: usize = 2;

/// Highest TP protocol version devnet speaks (Sawtooth's `MAX_SDK_PROTOCOL_VERSION`).
const MAX_PROTOCOL_VERSION: u64 = 1;

fn unknown_varint(fields: &protobuf::UnknownFields, number: u32) -> u64 {
    fields
        .get(number)
        .and_then(|v| v.varint.last().copied())
        .unwrap_or(0)
}

impl Engine {
    pub(super) fn on_message(&mut self, identity: Vec<u8>, msg: Message) {
        let cid = msg.get_correlation_id().to_string();
        let content = msg.get_content();
        let outcome = match msg.get_message_type() {
            T::TP_REGISTER_REQUEST => TpRegisterRequest::parse_from_bytes(content)
                .map(|req| self.on_register(&identity, &cid, req)),
            T::TP_UNREGISTER_REQUEST => {
                self.drop_connection(&identity, "unregistered");
                let mut resp = TpUnregisterResponse::new();
                resp.set_status(TpUnregisterResponse_Status::OK);
                let _ = self.send(&identity, T::TP_UNREGISTER_RESPONSE, &cid, &resp);
                Ok(())
            }
            T::TP_PROCESS_RESPONSE => TpProcessResponse::parse_from_bytes(content)
                .map(|r| self.on_process_response(&identity, &cid, r)),
            T::TP_STATE_GET_REQUEST => TpStateGetRequest::parse_from_bytes(content)
                .map(|r| self.on_get(&identity, &cid, r)),
            T::TP_STATE_SET_REQUEST => TpStateSetRequest::parse_from_bytes(content)
                .map(|r| self.on_set(&identity, &cid, r)),
            T::TP_STATE_DELETE_REQUEST => TpStateDeleteRequest::parse_from_bytes(content)
                .map(|r| self.on_delete(&identity, &cid, r)),
            T::TP_RECEIPT_ADD_DATA_REQUEST => TpReceiptAddDataRequest::parse_from_bytes(content)
                .map(|r| self.on_receipt_data(&identity, &cid, r)),
            T::TP_EVENT_ADD_REQUEST => TpEventAddRequest::parse_from_bytes(content)
                .map(|r| self.on_event(&identity, &cid, r)),
            T::PING_REQUEST => {
                let _ = self.send(&identity, T::PING_RESPONSE, &cid, &PingResponse::new());
                Ok(())
            }
            T::PING_RESPONSE => Ok(()),
            other => {
                tracing::debug!(
                    ?other,
                    "ignoring an unsupported message type on the component endpoint"
                );
                Ok(())
            }
        };
        if let Err(err) = outcome {
            tracing::warn!(%err, ?msg.message_type, "ignoring a message with undecodable content");
        }
    }

    fn on_register(&mut self, identity: &[u8], cid: &str, req: TpRegisterRequest) {
        let protocol_version = unknown_varint(req.get_unknown_fields(), 6);
        let style = unknown_varint(req.get_unknown_fields(), 7);
        let mut resp = TpRegisterResponse::new();
        if protocol_version > MAX_PROTOCOL_VERSION {
            tracing::warn!(
                protocol_version,
                family = req.get_family(),
                "refusing a newer TP protocol"
            );
            resp.set_status(TpRegisterResponse_Status::ERROR);
            resp.mut_unknown_fields()
                .add_varint(2, MAX_PROTOCOL_VERSION);
            let _ = self.send(identity, T::TP_REGISTER_RESPONSE, cid, &resp);
            return;
        }
        resp.set_status(TpRegisterResponse_Status::OK);
        if protocol_version != 0 {
            resp.mut_unknown_fields().add_varint(2, protocol_version);
        }
        if self
            .send(identity, T::TP_REGISTER_RESPONSE, cid, &resp)
            .is_err()
        {
            return;
        }
        let registration = Registration {
            identity: identity.to_vec(),
            max_occupancy: if req.get_max_occupancy() == 0 {
                10
            } else {
                req.get_max_occupancy()
            },
            header_style: if style == 2 {
                HeaderStyle::Raw
            } else {
                HeaderStyle::Expanded
            },
            namespaces: req.get_namespaces().to_vec(),
        };
        tracing::info!(
            family = req.get_family(),
            version = req.get_version(),
            identity = %hex::encode(identity),
            "transaction processor registered"
        );
        self.registry
            .register(req.get_family(), req.get_version(), registration);
    }

    /// Whether `identity` is running the transaction of `context_id` in the current block.
    fn context_for(&self, identity: &[u8], context_id: &str) -> bool {
        self.inflight
            .values()
            .any(|f| f.context_id == context_id && f.identity == identity)
            && self
                .block
                .as_ref()
                .is_some_and(|b| b.context(context_id).is_some())
    }

    fn on_get(&mut self, identity: &[u8], cid: &str, req: TpStateGetRequest) {
        let mut resp = TpStateGetResponse::new();
        resp.set_status(TpStateGetResponse_Status::OK);
        let context_id = req.get_context_id();
        if self.context_for(identity, context_id) {
            let block = self.block.as_ref().expect("context_for checked the block");
            let ctx = block
                .context(context_id)
                .expect("context_for checked the context");
            let addresses = req.get_addresses();
            if addresses
                .iter()
                .all(|a| is_full_address(a) && ctx.may_read(a))
            {
                let entries = addresses.iter().map(|a| {
                    let mut entry = TpStateEntry::new();
                    entry.set_address(a.clone());
                    entry.set_data(
                        block
                            .read(context_id, a, &self.shared.store, &mut self.head_cache)
                            .unwrap_or_default(),
                    );
                    entry
                });
                resp.set_entries(entries.collect());
            } else {
                resp.set_status(TpStateGetResponse_Status::AUTHORIZATION_ERROR);
            }
        }
        let _ = self.send(identity, T::TP_STATE_GET_RESPONSE, cid, &resp);
    }

    fn on_set(&mut self, identity: &[u8], cid: &str, mut req: TpStateSetRequest) {
        let mut resp = TpStateSetResponse::new();
        resp.set_status(TpStateSetResponse_Status::OK);
        if self.context_for(identity, req.get_context_id()) {
            let ctx = self
                .block
                .as_mut()
                .and_then(|b| b.context_mut(req.get_context_id()))
                .expect("checked");
            if req
                .get_entries()
                .iter()
                .all(|e| is_full_address(e.get_address()) && ctx.may_write(e.get_address()))
            {
                let mut addresses = Vec::with_capacity(req.get_entries().len());
                for mut entry in req.take_entries() {
                    addresses.push(entry.get_address().to_string());
                    ctx.write(entry.take_address(), Some(entry.take_data()));
                }
                resp.set_addresses(RepeatedField::from_vec(addresses));
            } else {
                resp.set_status(TpStateSetResponse_Status::AUTHORIZATION_ERROR);
            }
        }
        let _ = self.send(identity, T::TP_STATE_SET_RESPONSE, cid, &resp);
    }

    fn on_delete(&mut self, identity: &[u8], cid: &str, mut req: TpStateDeleteRequest) {
        let mut resp = TpStateDeleteResponse::new();
        resp.set_status(TpStateDeleteResponse_Status::OK);
        if self.context_for(identity, req.get_context_id()) {
            let ctx = self
                .block
                .as_mut()
                .and_then(|b| b.context_mut(req.get_context_id()))
                .expect("checked");
            if req
                .get_addresses()
                .iter()
                .all(|a| is_full_address(a) && ctx.may_write(a))
            {
                let addresses = req.take_addresses();
                for a in addresses.iter() {
                    ctx.write(a.clone(), None);
                }
                resp.set_addresses(addresses);
            } else {
                resp.set_status(TpStateDeleteResponse_Status::AUTHORIZATION_ERROR);
            }
        }
        let _ = self.send(identity, T::TP_STATE_DELETE_RESPONSE, cid, &resp);
    }

    fn on_receipt_data(&mut self, identity: &[u8], cid: &str, mut req: TpReceiptAddDataRequest) {
        let mut resp = TpReceiptAddDataResponse::new();
        resp.set_status(TpReceiptAddDataResponse_Status::ERROR);
        if self.context_for(identity, req.get_context_id()) {
            let context_id = req.get_context_id().to_owned();
            if let Some(ctx) = self.block.as_mut().and_then(|b| b.context_mut(&context_id)) {
                ctx.add_data(req.take_data());
                resp.set_status(TpReceiptAddDataResponse_Status::OK);
            }
        }
        let _ = self.send(identity, T::TP_RECEIPT_ADD_DATA_RESPONSE, cid, &resp);
    }

    fn on_event(&mut self, identity: &[u8], cid: &str, mut req: TpEventAddRequest) {
        let mut resp = TpEventAddResponse::new();
        resp.set_status(TpEventAddResponse_Status::ERROR);
        if self.context_for(identity, req.get_context_id()) {
            let context_id = req.get_context_id().to_owned();
            if let Some(ctx) = self.block.as_mut().and_then(|b| b.context_mut(&context_id)) {
                ctx.add_event(req.take_event());
                resp.set_status(TpEventAddResponse_Status::OK);
            }
        }
        let _ = self.send(identity, T::TP_EVENT_ADD_RESPONSE, cid, &resp);
    }

    fn on_process_response(&mut self, identity: &[u8], cid: &str, mut resp: TpProcessResponse) {
        let matches = self
            .inflight
            .get(cid)
            .is_some_and(|f| f.identity == identity);
        if !matches {
            tracing::warn!(
                correlation_id = cid,
                "ignoring a late or unknown TpProcessResponse"
            );
            return;
        }
        let flight = self.inflight.remove(cid).expect("checked above");
        self.registry.release(identity);
        let outcome = match resp.get_status() {
            TpProcessResponse_Status::OK => TxnOutcome::Valid,
            TpProcessResponse_Status::INTERNAL_ERROR => {
                self.avoid = Some(identity.to_vec());
                TxnOutcome::Failed {
                    reason: resp.take_message(),
                }
            }
            _ => TxnOutcome::Invalid {
                message: resp.take_message(),
                extended_data: resp.take_extended_data(),
            },
        };
        self.finish_running(&flight.context_id, outcome);
    }

    /// Fails a running transaction (retry or give up), e.g. after a timeout or disconnect.
    pub(super) fn fail_running(&mut self, flight: InFlight, reason: String) {
        self.avoid = Some(flight.identity);
        self.finish_running(&flight.context_id, TxnOutcome::Failed { reason });
    }

    fn finish_running(&mut self, context_id: &str, outcome: TxnOutcome) {
        let Some(block) = self.block.as_mut() else {
            return;
        };
        if let Some((batch_id, info)) = block.finish_txn(context_id, outcome) {
            tracing::info!(batch = %batch_id, message = %info[0].message, "batch invalid");
            self.shared
                .pool
                .mark_invalid(&batch_id, info, &self.shared.store);
            self.shared.bump_status();
        }
    }

    /// Advances block building as far as it can go without waiting for a processor.
    pub(super) fn drive(&mut self) {
        loop {
            if self.block.is_none() && !self.start_block() {
                return;
            }
            let block = self.block.as_mut().expect("a block is being built");
            match block.next_txn(&self.shared.store) {
                NextTxn::Done => {
                    self.finish_block();
                    return;
                }
                NextTxn::Wait => return,
                NextTxn::Run(batch, index, context_id) => self.dispatch(batch, index, context_id),
            }
        }
    }

    fn start_block(&mut self) -> bool {
        if self.shared.shutdown.load(Ordering::Acquire) || self.committing.len() >= MAX_OUTSTANDING
        {
            return false;
        }
        let pending = self.shared.pool.pending_len();
        let due = self.idle
            || self
                .last_block_start
                .is_none_or(|t| t.elapsed() >= self.settings.block_interval);
        if pending == 0 || !(due || pending >= self.settings.publish_threshold) {
            return false;
        }
        // Only batches whose every family has a processor now (or is not allowed, which fails
        // at once), and that are not already in a block being committed; the others stay
        // pending.
        self.families = self.block_allow_list();
        let families = &self.families;
        let registry = &self.registry;
        let outstanding: HashSet<&str> = self
            .committing
            .iter()
            .flat_map(|o| o.batch_ids.iter().map(String::as_str))
            .collect();
        let batches = self.shared.pool.snapshot(0, |b| {
            !outstanding.contains(b.id.as_str())
                && b.families
                    .iter()
                    .all(|(f, v)| registry.has_type(f, v) || !families.allows_type(f, v))
        });
        if batches.is_empty() {
            if outstanding.is_empty() {
                // Nothing runnable (no processor for what is pending): retry after an interval.
                self.idle = false;
                self.last_block_start = Some(Instant::now());
            }
            return false;
        }
        self.idle = false;
        self.last_block_start = Some(Instant::now());
        let parents = self
            .committing
            .iter()
            .rev()
            .map(|o| Arc::clone(&o.writes))
            .collect();
        let parent_txns = self
            .committing
            .iter()
            .flat_map(|o| o.txn_ids.iter().cloned())
            .collect();
        self.block = Some(BlockBuild::new(
            batches,
            self.settings.max_retries,
            self.settings.max_inflight,
            self.settings.max_batches_per_block,
            parents,
            Arc::new(parent_txns),
        ));
        true
    }

    /// The allow-list in the state the next block builds on: the newest block still with the
    /// committer that wrote it, else the head.
    fn block_allow_list(&self) -> FamilyAllowList {
        let address = setting_address(TRANSACTION_FAMILIES);
        let stored = self
            .committing
            .iter()
            .rev()
            .find_map(|o| o.writes.get(&address).cloned())
            .unwrap_or_else(|| {
                self.shared.store.head_value(&address).unwrap_or_else(|err| {
                    tracing::error!(%err, "reading the allow-list failed; reading it as absent");
                    None
                })
            });
        allow_list_from(stored)
    }

    fn dispatch(
        &mut self,
        batch: Arc<super::validate::QueuedBatch>,
        index: usize,
        context_id: String,
    ) {
        let txn = &batch.txns[index];
        let (family, version) = (
            txn.header.get_family_name(),
            txn.header.get_family_version(),
        );
        if let Err(reason) = self.families.check(&txn.header) {
            // As a validator does: invalid at once, without a message.
            tracing::info!(txn = %txn.id, %reason, "transaction not allowed");
            self.finish_running(
                &context_id,
                TxnOutcome::Invalid {
                    message: String::new(),
                    extended_data: Vec::new(),
                },
            );
            return;
        }
        let avoid = self.avoid.take();
        let Some(tp) = self.registry.pick(family, version, avoid.as_deref()) else {
            tracing::debug!(family, version, "waiting for a processor to register");
            self.finish_running(&context_id, TxnOutcome::NoProcessor);
            return;
        };
        let signed = &batch.batch.get_transactions()[index];
        let mut req = TpProcessRequest::new();
        match tp.header_style {
            HeaderStyle::Expanded => req.set_header(txn.header.clone()),
            HeaderStyle::Raw => req
                .mut_unknown_fields()
                .add_length_delimited(5, signed.get_header().to_vec()),
        }
        req.set_payload(signed.get_payload().to_vec());
        req.set_signature(txn.id.clone());
        req.set_context_id(context_id.clone());
        let correlation_id = super::uuid4_hex();
        if self
            .send(&tp.identity, T::TP_PROCESS_REQUEST, &correlation_id, &req)
            .is_err()
        {
            // The connection is gone (now unregistered) or its pipe is full: pick again
            // without counting a failure.
            self.registry.release(&tp.identity);
            if let Some(b) = self.block.as_mut() {
                b.requeue(&context_id);
            }
            return;
        }
        self.inflight.insert(
            correlation_id,
            InFlight {
                context_id,
                identity: tp.identity,
                deadline: Instant::now() + self.settings.processor_timeout,
            },
        );
    }

    fn finish_block(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        let dropped: HashSet<&str> = block.dropped.iter().map(String::as_str).collect();
        self.shared.pool.remove(&dropped, &self.shared.store);
        if !dropped.is_empty() || !block.invalid.is_empty() {
            self.shared.bump_status();
        }
        let executed = block.finish();
        if !executed.accepted.is_empty() {
            let writes = Arc::new(executed.writes);
            self.committing.push_back(Outstanding {
                writes: Arc::clone(&writes),
                batch_ids: executed.accepted.iter().map(|b| b.id.clone()).collect(),
                txn_ids: executed
                    .accepted
                    .iter()
                    .flat_map(|b| b.txns.iter().map(|t| t.id.clone()))
                    .collect(),
            });
            let job = SealJob {
                generation: self.generation,
                writes,
                batches: executed.accepted,
                receipts: executed.receipts,
            };
            if self
                .jobs
                .as_ref()
                .is_none_or(|jobs| jobs.send(job).is_err())
            {
                tracing::error!("the committer is gone; the block's batches stay pending");
                self.committing.pop_back();
            }
        }
        let outstanding: usize = self.committing.iter().map(|o| o.batch_ids.len()).sum();
        self.idle = self.shared.pool.pending_len() <= outstanding;
    }
}
