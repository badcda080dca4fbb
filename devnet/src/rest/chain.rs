//! `/blocks`, `/batches` and `/transactions`: lists walked from a head block, and fetch by id.
//!
//! Lists follow the validator's `BlockListRequest`, `BatchListRequest` and
//! `TransactionListRequest`: blocks are paged by zero-padded hex block number
//! (`0x0000000000000005`), newest first (`reverse` gives oldest first, its only sort key is
//! `block_num`); batches and transactions are collected from the head block down to genesis and
//! paged by header signature (sort key `default`). An `id` filter without `head` fetches by id,
//! in filter order; with `head` it winnows the walk.

use axum::extract::{Path, State};
use axum::response::Response;
use sawtooth_sdk::messages::block::Block;

use super::envelope::{metadata, paginate, paginated, wrap, Page};
use super::error::ApiError;
use super::params::{filter_ids, head_id, reverse, validate_id, PagingControls};
use super::render;
use super::request::RequestInfo;
use super::AppState;
use crate::view::LedgerView;

/// The block a list is evaluated at: the `head` block (code 50 if unknown) or the chain head
/// (code 15 before genesis).
pub fn head_block(ledger: &dyn LedgerView, head: Option<&str>) -> Result<Block, ApiError> {
    match head {
        Some(id) => ledger.block_by_id(id)?.ok_or(ApiError::HeadNotFound),
        None => ledger.chain_head().ok_or(ApiError::ValidatorNotReady),
    }
}

fn block_num_hex(num: u64) -> String {
    format!("{num:#018x}")
}

fn parse_block_num_hex(start: &str) -> Result<u64, ApiError> {
    let digits = start.strip_prefix("0x").ok_or(ApiError::PagingInvalid)?;
    u64::from_str_radix(digits, 16).map_err(|_| ApiError::PagingInvalid)
}

/// `GET /blocks`.
pub async fn list_blocks(
    State(app): State<AppState>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    let controls = PagingControls::parse(&req)?;
    let head_param = head_id(&req)?;
    let ids = filter_ids(&req)?;
    let ledger = app.ledger.as_ref();
    let head = head_block(ledger, head_param.as_deref())?;
    let head_num = render::block_header(&head)?.get_block_num();

    let (blocks, page) = match ids {
        Some(ids) => {
            let mut blocks = Vec::new();
            for id in &ids {
                if let Some(block) = ledger.block_by_id(id)? {
                    if render::block_header(&block)?.get_block_num() <= head_num {
                        blocks.push(block);
                    }
                }
            }
            (blocks, Page::default())
        }
        None => list_block_range(ledger, &controls, reverse(&req, "block_num")?, head_num)?,
    };
    let data = blocks
        .iter()
        .map(render::block)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paginated(
        &req,
        &controls,
        &page,
        head.get_header_signature(),
        data,
    ))
}

/// One page of blocks by number: descending from `start` (or the head), or ascending from
/// `start` (or genesis) up to the head.
fn list_block_range(
    ledger: &dyn LedgerView,
    controls: &PagingControls,
    ascending: bool,
    head_num: u64,
) -> Result<(Vec<Block>, Page), ApiError> {
    let limit = controls.page_size();
    let first = match controls.start() {
        Some(start) => {
            let num = parse_block_num_hex(start)?;
            if ascending && num > head_num {
                return Err(ApiError::PagingInvalid);
            }
            num
        }
        None if ascending => 0,
        None => head_num,
    };
    let step = |n: u64| {
        if ascending {
            n.checked_add(1).filter(|n| *n <= head_num)
        } else {
            n.checked_sub(1)
        }
    };
    let mut blocks = Vec::new();
    let mut cursor = Some(first);
    while let Some(num) = cursor {
        if blocks.len() == limit {
            break;
        }
        match ledger.block_by_num(num)? {
            Some(block) => blocks.push(block),
            None if blocks.is_empty() => return Err(ApiError::PagingInvalid),
            None => {
                cursor = None;
                break;
            }
        }
        cursor = step(num);
    }
    let next = match cursor {
        Some(num) if ledger.block_by_num(num)?.is_some() => block_num_hex(num),
        _ => String::new(),
    };
    Ok((
        blocks,
        Page {
            start: block_num_hex(first),
            limit,
            next,
        },
    ))
}

/// `GET /blocks/{block_id}`.
pub async fn fetch_block(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    validate_id(&id)?;
    let block = app
        .ledger
        .block_by_id(&id)?
        .ok_or(ApiError::BlockNotFound)?;
    Ok(wrap(metadata(&req, None), Some(render::block(&block)?)))
}

/// Which resource a block-derived list collects.
#[derive(Clone, Copy)]
enum Resource {
    Batches,
    Transactions,
}

/// A batch or transaction with its id, as collected from blocks.
enum Item {
    Batch(sawtooth_sdk::messages::batch::Batch),
    Transaction(sawtooth_sdk::messages::transaction::Transaction),
}

impl Item {
    fn id(&self) -> String {
        match self {
            Item::Batch(b) => b.get_header_signature().to_owned(),
            Item::Transaction(t) => t.get_header_signature().to_owned(),
        }
    }

    fn render(&self) -> Result<crate::rest::json::Json, ApiError> {
        match self {
            Item::Batch(b) => render::batch(b),
            Item::Transaction(t) => render::transaction(t),
        }
    }
}

fn block_items(block: &Block, resource: Resource) -> impl Iterator<Item = Item> + '_ {
    block
        .get_batches()
        .iter()
        .flat_map(move |batch| -> Vec<Item> {
            match resource {
                Resource::Batches => vec![Item::Batch(batch.clone())],
                Resource::Transactions => batch
                    .get_transactions()
                    .iter()
                    .cloned()
                    .map(Item::Transaction)
                    .collect(),
            }
        })
}

/// `_list_store_resources`: by id without `head`, else walk from the head to genesis.
fn collect_items(
    ledger: &dyn LedgerView,
    resource: Resource,
    head: &Block,
    head_given: bool,
    ids: Option<&[String]>,
    mut walk_done: impl FnMut(&[Item]) -> bool,
) -> Result<Vec<Item>, ApiError> {
    if let (Some(ids), false) = (ids, head_given) {
        let mut items = Vec::new();
        for id in ids {
            let item = match resource {
                Resource::Batches => ledger.batch_by_id(id)?.map(|(b, _)| Item::Batch(b)),
                Resource::Transactions => ledger
                    .transaction_by_id(id)?
                    .map(|(t, _)| Item::Transaction(t)),
            };
            items.extend(item);
        }
        return Ok(items);
    }
    let mut items = Vec::new();
    let mut block = Some(head.clone());
    while let Some(current) = block {
        items.extend(block_items(&current, resource));
        if walk_done(&items) {
            break;
        }
        let previous = render::block_header(&current)?
            .get_previous_block_id()
            .to_owned();
        block = ledger.block_by_id(&previous)?;
    }
    if let Some(ids) = ids {
        let mut winnowed = Vec::new();
        for id in ids {
            if let Some(pos) = items.iter().position(|item| item.id() == *id) {
                winnowed.push(items.swap_remove(pos));
            }
        }
        items = winnowed;
    }
    Ok(items)
}

/// Tracks, while items are collected, whether a page (and its `next`) is already complete.
struct PageWindow<'a> {
    start: Option<&'a str>,
    limit: usize,
    scanned: usize,
    start_index: Option<usize>,
}

impl<'a> PageWindow<'a> {
    fn new(start: Option<&'a str>, limit: usize) -> Self {
        PageWindow {
            start,
            limit,
            scanned: 0,
            start_index: if start.is_none() { Some(0) } else { None },
        }
    }

    /// Whether `items` (a growing list) holds the whole page plus the next position.
    fn complete(&mut self, items: &[Item]) -> bool {
        if self.start_index.is_none() {
            let start = self.start.unwrap_or_default();
            self.start_index = items[self.scanned..]
                .iter()
                .position(|i| i.id() == start)
                .map(|p| p + self.scanned);
            self.scanned = items.len();
        }
        self.start_index
            .is_some_and(|from| items.len() > from + self.limit)
    }
}

async fn list_items(
    app: AppState,
    req: RequestInfo,
    resource: Resource,
) -> Result<Response, ApiError> {
    let controls = PagingControls::parse(&req)?;
    let head_param = head_id(&req)?;
    let ids = filter_ids(&req)?;
    let ledger = app.ledger.as_ref();
    let head = head_block(ledger, head_param.as_deref())?;
    let reversed = reverse(&req, "default")?;
    // A forward, unfiltered page only needs the walk up to one item past its end.
    let mut window = PageWindow::new(controls.start(), controls.page_size());
    let walk_done = |items: &[Item]| !reversed && ids.is_none() && window.complete(items);
    let mut items = collect_items(
        ledger,
        resource,
        &head,
        head_param.is_some(),
        ids.as_deref(),
        walk_done,
    )?;
    if reversed {
        items.reverse();
    }
    let (items, page) = paginate(items, &controls, Item::id)?;
    let data = items
        .iter()
        .map(Item::render)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(paginated(
        &req,
        &controls,
        &page,
        head.get_header_signature(),
        data,
    ))
}

/// `GET /batches`.
pub async fn list_batches(
    State(app): State<AppState>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    list_items(app, req, Resource::Batches).await
}

/// `GET /transactions`.
pub async fn list_transactions(
    State(app): State<AppState>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    list_items(app, req, Resource::Transactions).await
}

/// `GET /batches/{batch_id}`.
pub async fn fetch_batch(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    validate_id(&id)?;
    let (batch, _) = app
        .ledger
        .batch_by_id(&id)?
        .ok_or(ApiError::BatchNotFound)?;
    Ok(wrap(metadata(&req, None), Some(render::batch(&batch)?)))
}

/// `GET /transactions/{transaction_id}`.
pub async fn fetch_transaction(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RequestInfo,
) -> Result<Response, ApiError> {
    validate_id(&id)?;
    let (txn, _) = app
        .ledger
        .transaction_by_id(&id)?
        .ok_or(ApiError::TransactionNotFound)?;
    Ok(wrap(metadata(&req, None), Some(render::transaction(&txn)?)))
}
