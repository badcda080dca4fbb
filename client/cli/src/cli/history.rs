//! `bcfl audit history`: the family's transactions block by block, newest first.

use bcfl_ledger::json::message_to_json;
use bcfl_ledger::rest::Block;
use bcfl_processor::{Action, FAMILY_NAME};
use bcfl_protos::bcfl::BcflPayload;
use protobuf::Message as _;
use serde_json::{json, Value};

use super::table::Table;
use super::Context;

/// Arguments of `audit history`.
#[derive(Debug, clap::Args)]
pub(crate) struct HistoryArgs {
    /// Scan at most this many blocks back from the head [default: the whole chain].
    #[arg(long)]
    blocks: Option<usize>,
    /// Block id to start from [default: the chain head].
    #[arg(long, value_name = "BLOCK_ID")]
    head: Option<String>,
}

/// One `bcfl` transaction found in a block.
struct Entry<'a> {
    block: &'a Block,
    transaction_id: &'a str,
    batch_id: &'a str,
    signer: &'a str,
    action: &'static str,
    payload: Option<BcflPayload>,
}

fn entries(blocks: &[Block]) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for block in blocks {
        for txn in block
            .transactions
            .iter()
            .filter(|t| t.family_name == FAMILY_NAME)
        {
            let payload = BcflPayload::parse_from_bytes(&txn.payload).ok();
            let action = payload
                .as_ref()
                .and_then(|p| Action::from_proto(p).ok())
                .map_or("unparsable", |a| a.name());
            out.push(Entry {
                block,
                transaction_id: &txn.id,
                batch_id: &txn.batch_id,
                signer: &txn.signer_public_key,
                action,
                payload,
            });
        }
    }
    out
}

pub(crate) async fn history(ctx: &Context, args: HistoryArgs) -> anyhow::Result<()> {
    let blocks = ctx
        .client()?
        .blocks(args.head.as_deref(), args.blocks)
        .await?;
    let entries = entries(&blocks);
    if ctx.json() {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "block_num": e.block.block_num,
                    "block_id": e.block.id,
                    "batch_id": e.batch_id,
                    "transaction_id": e.transaction_id,
                    "signer_public_key": e.signer,
                    "action": e.action,
                    "payload": e.payload.as_ref().map_or(Value::Null, |p| message_to_json(p)),
                })
            })
            .collect();
        ctx.print_json(&Value::Array(list));
    } else {
        let mut t = Table::new(&["BLOCK", "ACTION", "SIGNER", "TRANSACTION"]);
        for e in &entries {
            t.row(vec![
                e.block.block_num.to_string(),
                e.action.to_owned(),
                e.signer.to_owned(),
                e.transaction_id.to_owned(),
            ]);
        }
        t.print();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfl_ledger::rest::BlockTransaction;
    use bcfl_protos::bcfl::CloseRound;

    #[test]
    fn keeps_bcfl_transactions_and_names_actions() {
        let mut payload = BcflPayload::new();
        payload.set_close_round(CloseRound {
            round: 4,
            ..Default::default()
        });
        let txn = |family: &str, payload: Vec<u8>| BlockTransaction {
            id: format!("{family}-txn"),
            batch_id: "b".into(),
            family_name: family.into(),
            family_version: "1.0".into(),
            signer_public_key: "k".into(),
            payload,
        };
        let block = Block {
            id: "blk".into(),
            block_num: 9,
            previous_block_id: String::new(),
            signer_public_key: String::new(),
            state_root_hash: String::new(),
            batch_ids: vec![],
            transactions: vec![
                txn("sawtooth_settings", vec![1, 2]),
                txn(FAMILY_NAME, payload.write_to_bytes().unwrap()),
                txn(FAMILY_NAME, vec![0xff]),
            ],
        };
        let blocks = [block];
        let found = entries(&blocks);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].action, "close_round");
        assert_eq!(
            found[0].payload.as_ref().unwrap().get_close_round().round,
            4
        );
        assert_eq!(found[1].action, "unparsable");
    }
}
