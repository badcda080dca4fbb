//! `/state` and `/state/{address}`: leaves under a block's state root.
//!
//! As in sawtooth-core, the `head` of a state query is looked up as a block (an unknown head is
//! 404 code 70, "Block Not Found", not 50), lists are sorted by address and paged by address, an
//! `address` filter that is not an even-length lowercase hex prefix lists nothing, and fetching
//! a prefix that has leaves under it is 400 code 62 while one with nothing under it is 404
//! code 75.

use axum::extract::{Path, State};
use axum::response::Response;

use super::chain::head_block;
use super::envelope::{metadata, paginate, paginated, wrap, Page};
use super::error::ApiError;
use super::json::Json;
use super::params::{is_address_prefix, reverse, validate_id, PagingControls};
use super::render;
use super::request::RequestInfo;
use super::AppState;
use crate::view::LedgerView;

/// The block id and state root a state query reads.
fn head_and_root(ledger: &dyn LedgerView, req: &RequestInfo) -> Result<(String, String), ApiError> {
    let head = match req.query("head") {
        Some(id) => {
            validate_id(id)?;
            head_block(ledger, Some(id)).map_err(|err| match err {
                ApiError::HeadNotFound => ApiError::BlockNotFound,
                other => other,
            })?
        }
        None => head_block(ledger, None)?,
    };
    let root = render::block_header(&head)?
        .get_state_root_hash()
        .to_owned();
    Ok((head.get_header_signature().to_owned(), root))
}

/// `GET /state`.
pub async fn list_state(
    State(app): State<AppState>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    let controls = PagingControls::parse(&req)?;
    let ledger = app.ledger.as_ref();
    let (head, root) = head_and_root(ledger, &req)?;
    let prefix = req.query("address").unwrap_or_default();
    if !is_address_prefix(prefix) {
        return Ok(paginated(
            &req,
            &controls,
            &Page::default(),
            &head,
            Vec::new(),
        ));
    }
    let (entries, page) = if reverse(&req, "default")? {
        let mut all = ledger.state_list(&root, prefix, None, usize::MAX)?;
        all.reverse();
        paginate(all, &controls, |(address, _)| address.clone())?
    } else {
        forward_page(ledger, &root, prefix, &controls)?
    };
    let data = entries
        .iter()
        .map(|(address, value)| {
            Json::obj([
                ("address", Json::str(address.as_str())),
                ("data", render::b64(value)),
            ])
        })
        .collect();
    Ok(paginated(&req, &controls, &page, &head, data))
}

type Entries = Vec<(String, Vec<u8>)>;

/// One ascending page read straight from the ledger (`limit + 1` leaves to learn `next`).
fn forward_page(
    ledger: &dyn LedgerView,
    root: &str,
    prefix: &str,
    controls: &PagingControls,
) -> Result<(Entries, Page), ApiError> {
    let limit = controls.page_size();
    let start = controls.start();
    let mut entries = ledger.state_list(root, prefix, start, limit + 1)?;
    if let Some(start) = start {
        if entries.first().map(|(address, _)| address.as_str()) != Some(start) {
            // The validator pages an empty list without looking at `start`.
            return if ledger.state_list(root, prefix, None, 1)?.is_empty() {
                Ok((Vec::new(), Page::default()))
            } else {
                Err(ApiError::PagingInvalid)
            };
        }
    }
    let Some((first, _)) = entries.first() else {
        return Ok((entries, Page::default()));
    };
    let first = first.clone();
    let next = if entries.len() > limit {
        entries
            .pop()
            .map(|(address, _)| address)
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((
        entries,
        Page {
            start: first,
            limit,
            next,
        },
    ))
}

/// `GET /state/{address}`.
pub async fn fetch_state(
    State(app): State<AppState>,
    Path(address): Path<String>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    let ledger = app.ledger.as_ref();
    let (head, root) = head_and_root(ledger, &req)?;
    if !is_address_prefix(&address) {
        return Err(ApiError::InvalidStateAddress);
    }
    if address.len() < 70 {
        return Err(if ledger.state_list(&root, &address, None, 1)?.is_empty() {
            ApiError::StateNotFound
        } else {
            ApiError::InvalidStateAddress
        });
    }
    let value = ledger
        .state_get(&root, &address)?
        .ok_or(ApiError::StateNotFound)?;
    Ok(wrap(metadata(&req, Some(&head)), Some(render::b64(&value))))
}
