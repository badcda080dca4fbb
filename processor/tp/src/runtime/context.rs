//! [`PipelinedContext`]: the `TransactionContext` of one transaction on a [`Connection`].
//!
//! Reads (`get`) and deletes wait for their replies, because their answers carry data. Writes,
//! receipt data and events are sent at once and their replies collected later, in
//! [`PipelinedContext::settle`]: before the next read (so a read sees every earlier write) and
//! before the runtime answers the `TpProcessRequest`. The statuses are interpreted exactly as the
//! SDK's context does, with the same error variants and messages.

use std::cell::RefCell;
use std::time::Duration;

use protobuf::{Message as _, RepeatedField};
use sawtooth_sdk::messages::events::{Event, Event_Attribute};
use sawtooth_sdk::messages::state_context::{
    TpEventAddRequest, TpEventAddResponse, TpEventAddResponse_Status, TpReceiptAddDataRequest,
    TpReceiptAddDataResponse, TpReceiptAddDataResponse_Status, TpStateDeleteRequest,
    TpStateDeleteResponse, TpStateDeleteResponse_Status, TpStateEntry, TpStateGetRequest,
    TpStateGetResponse, TpStateGetResponse_Status, TpStateSetRequest, TpStateSetResponse,
    TpStateSetResponse_Status,
};
use sawtooth_sdk::messages::validator::{Message, Message_MessageType as Type};
use sawtooth_sdk::processor::handler::{ContextError, TransactionContext};

use super::connection::{Connection, Inbound};

/// A request whose reply is collected later.
#[derive(Debug)]
enum Deferred {
    Set(Vec<String>),
    ReceiptData,
    Event(String),
}

/// One transaction's context (see the module documentation).
pub struct PipelinedContext<'c> {
    connection: RefCell<&'c mut Connection>,
    context_id: String,
    deferred: RefCell<Vec<(String, Deferred)>>,
}

fn serialization(err: protobuf::ProtobufError) -> ContextError {
    ContextError::SerializationError(Box::new(err))
}

fn disconnected() -> ContextError {
    ContextError::ReceiveError("the validator disconnected during the transaction".into())
}

impl<'c> PipelinedContext<'c> {
    pub(crate) fn new(connection: &'c mut Connection, context_id: &str) -> Self {
        Self {
            connection: RefCell::new(connection),
            context_id: context_id.to_owned(),
            deferred: RefCell::new(Vec::new()),
        }
    }

    /// Sends a request and waits for its reply.
    fn call(&self, kind: Type, content: Vec<u8>) -> Result<Message, ContextError> {
        let mut connection = self.connection.borrow_mut();
        let id = connection.request(kind, content);
        wait(&mut connection, &id)
    }

    /// Sends a request whose reply [`PipelinedContext::settle`] collects.
    fn defer(&self, kind: Type, content: Vec<u8>, what: Deferred) {
        let id = self.connection.borrow_mut().request(kind, content);
        self.deferred.borrow_mut().push((id, what));
    }

    /// Collects the replies of every deferred request, in the order they were sent; the first
    /// failure, if any (all replies are collected either way).
    pub fn settle(&self) -> Result<(), ContextError> {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        let mut connection = self.connection.borrow_mut();
        let mut first_error = None;
        for (id, what) in deferred {
            let outcome = wait(&mut connection, &id).and_then(|reply| check(&reply, what));
            if let Err(err) = outcome {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Waits for the reply to `id` (no time limit: the validator answers or goes away).
fn wait(connection: &mut Connection, id: &str) -> Result<Message, ContextError> {
    loop {
        match connection.reply(id, Duration::from_secs(1)) {
            Inbound::Message(reply) => return Ok(reply),
            Inbound::Idle => continue,
            Inbound::Disconnected => return Err(disconnected()),
        }
    }
}

/// Interprets a deferred request's reply as the SDK's context would have.
fn check(reply: &Message, what: Deferred) -> Result<(), ContextError> {
    let content = reply.get_content();
    match what {
        Deferred::Set(addresses) => {
            let response = TpStateSetResponse::parse_from_bytes(content).map_err(serialization)?;
            match response.get_status() {
                TpStateSetResponse_Status::OK => Ok(()),
                TpStateSetResponse_Status::AUTHORIZATION_ERROR => {
                    Err(ContextError::AuthorizationError(format!(
                        "Tried to set unauthorized addresses: {addresses:?}"
                    )))
                }
                TpStateSetResponse_Status::STATUS_UNSET => {
                    Err(ContextError::ResponseAttributeError(
                        "Status was not set for TpStateSetResponse".into(),
                    ))
                }
            }
        }
        Deferred::ReceiptData => {
            let response =
                TpReceiptAddDataResponse::parse_from_bytes(content).map_err(serialization)?;
            match response.get_status() {
                TpReceiptAddDataResponse_Status::OK => Ok(()),
                TpReceiptAddDataResponse_Status::ERROR => Err(
                    ContextError::TransactionReceiptError("Failed to add receipt data".into()),
                ),
                TpReceiptAddDataResponse_Status::STATUS_UNSET => {
                    Err(ContextError::ResponseAttributeError(
                        "Status was not set for TpReceiptAddDataResponse".into(),
                    ))
                }
            }
        }
        Deferred::Event(event_type) => {
            let response = TpEventAddResponse::parse_from_bytes(content).map_err(serialization)?;
            match response.get_status() {
                TpEventAddResponse_Status::OK => Ok(()),
                TpEventAddResponse_Status::ERROR => Err(ContextError::TransactionReceiptError(
                    format!("Failed to add event {event_type}"),
                )),
                TpEventAddResponse_Status::STATUS_UNSET => {
                    Err(ContextError::ResponseAttributeError(
                        "Status was not set for TpEventAddResponse".into(),
                    ))
                }
            }
        }
    }
}

impl TransactionContext for PipelinedContext<'_> {
    fn get_state_entries(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, ContextError> {
        self.settle()?;
        let mut request = TpStateGetRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_addresses(RepeatedField::from_slice(addresses));
        let content = request.write_to_bytes().map_err(serialization)?;
        let reply = self.call(Type::TP_STATE_GET_REQUEST, content)?;
        let response =
            TpStateGetResponse::parse_from_bytes(reply.get_content()).map_err(serialization)?;
        match response.get_status() {
            TpStateGetResponse_Status::OK => Ok(response
                .get_entries()
                .iter()
                .filter(|entry| !entry.get_data().is_empty())
                .map(|entry| (entry.get_address().to_owned(), entry.get_data().to_vec()))
                .collect()),
            TpStateGetResponse_Status::AUTHORIZATION_ERROR => {
                Err(ContextError::AuthorizationError(format!(
                    "Tried to get unauthorized addresses: {addresses:?}"
                )))
            }
            TpStateGetResponse_Status::STATUS_UNSET => Err(ContextError::ResponseAttributeError(
                "Status was not set for TpStateGetResponse".into(),
            )),
        }
    }

    fn set_state_entries(&self, entries: Vec<(String, Vec<u8>)>) -> Result<(), ContextError> {
        let addresses = entries.iter().map(|(address, _)| address.clone()).collect();
        let mut request = TpStateSetRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_entries(
            entries
                .into_iter()
                .map(|(address, data)| {
                    let mut entry = TpStateEntry::new();
                    entry.set_address(address);
                    entry.set_data(data);
                    entry
                })
                .collect(),
        );
        let content = request.write_to_bytes().map_err(serialization)?;
        self.defer(
            Type::TP_STATE_SET_REQUEST,
            content,
            Deferred::Set(addresses),
        );
        Ok(())
    }

    fn delete_state_entries(&self, addresses: &[String]) -> Result<Vec<String>, ContextError> {
        self.settle()?;
        let mut request = TpStateDeleteRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_addresses(RepeatedField::from_slice(addresses));
        let content = request.write_to_bytes().map_err(serialization)?;
        let reply = self.call(Type::TP_STATE_DELETE_REQUEST, content)?;
        let response =
            TpStateDeleteResponse::parse_from_bytes(reply.get_content()).map_err(serialization)?;
        match response.get_status() {
            TpStateDeleteResponse_Status::OK => Ok(response.get_addresses().to_vec()),
            TpStateDeleteResponse_Status::AUTHORIZATION_ERROR => {
                Err(ContextError::AuthorizationError(format!(
                    "Tried to delete unauthorized addresses: {addresses:?}"
                )))
            }
            TpStateDeleteResponse_Status::STATUS_UNSET => {
                Err(ContextError::ResponseAttributeError(
                    "Status was not set for TpStateDeleteResponse".into(),
                ))
            }
        }
    }

    fn add_receipt_data(&self, data: &[u8]) -> Result<(), ContextError> {
        let mut request = TpReceiptAddDataRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_data(data.to_vec());
        let content = request.write_to_bytes().map_err(serialization)?;
        self.defer(
            Type::TP_RECEIPT_ADD_DATA_REQUEST,
            content,
            Deferred::ReceiptData,
        );
        Ok(())
    }

    fn add_event(
        &self,
        event_type: String,
        attributes: Vec<(String, String)>,
        data: &[u8],
    ) -> Result<(), ContextError> {
        let mut event = Event::new();
        event.set_event_type(event_type.clone());
        event.set_attributes(
            attributes
                .into_iter()
                .map(|(key, value)| {
                    let mut attribute = Event_Attribute::new();
                    attribute.set_key(key);
                    attribute.set_value(value);
                    attribute
                })
                .collect(),
        );
        event.set_data(data.to_vec());
        let mut request = TpEventAddRequest::new();
        request.set_context_id(self.context_id.clone());
        request.set_event(event);
        let content = request.write_to_bytes().map_err(serialization)?;
        self.defer(
            Type::TP_EVENT_ADD_REQUEST,
            content,
            Deferred::Event(event_type),
        );
        Ok(())
    }
}
