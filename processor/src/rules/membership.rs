//! Consortium creation and the member registry.
//!
//! - `InitConsortium` succeeds once; the signer must be one of the admins it names.
//! - `RegisterMember` (admin): adds an active member, or reinstates a suspended one (new name and
//!   endpoint, reason cleared, `registered_at_round` kept, its sample cap kept unless the payload
//!   sets one). At most [`MAX_MEMBERS`] members. The sample cap (`max_samples`) is the most
//!   samples the member's commitments may claim: FedAvg weighs an update by its claim, so the
//!   consortium fixes each member's shard size when it admits it, and `CommitUpdate` refuses a
//!   claim above it.
//! - `UpdateMember`: an admin, or the member itself while active; only an admin changes the cap.
//! - `SuspendMember` (admin): an active member becomes suspended, with the reason stored.
//!
//! Registration and suspension also update the member directory (key and status of every
//! member), which lets `OpenRound` count active members.

use bcfl_protos::bcfl as pb;

use super::{attr, ensure, is_admin, reject, require_admin, require_consortium, Attributes};
use crate::error::Result;
use crate::limits::MAX_MEMBERS;
use crate::payload::{InitConsortium, PublicKey, RegisterMember, SuspendMember, UpdateMember};
use crate::state::BcflState;

/// `InitConsortium`: creates the consortium with its admins and parameters.
pub fn init_consortium(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &InitConsortium,
) -> Result<Attributes> {
    ensure!(
        state.consortium()?.is_none(),
        "the consortium is already initialized"
    );
    ensure!(
        action.admins.contains(signer),
        "the signer must be one of the admin keys it names"
    );
    let consortium = pb::Consortium {
        admin_keys: action
            .admins
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect(),
        params: protobuf::SingularPtrField::some(action.params.clone()),
        current_round: 0,
        ..Default::default()
    };
    state.put_consortium(&consortium)?;
    Ok(vec![
        attr("admins", action.admins.len()),
        attr("model_id", &action.params.model_id),
    ])
}

/// `RegisterMember`: registers a member or reinstates a suspended one.
pub fn register_member(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &RegisterMember,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    require_admin(&consortium, signer, "register members")?;
    let key = action.public_key.as_str();
    let existing = state.member(key)?;
    let reinstated = existing.is_some();
    let member = match existing {
        Some(existing) => {
            ensure!(
                existing.status != pb::MemberStatus::ACTIVE,
                "member {key} is already registered"
            );
            pb::Member {
                name: action.name.as_str().to_owned(),
                endpoint: action.endpoint.as_str().to_owned(),
                status: pb::MemberStatus::ACTIVE,
                suspend_reason: String::new(),
                max_samples: action.max_samples.unwrap_or(existing.max_samples),
                ..existing
            }
        }
        None => {
            ensure!(
                state.directory()?.len() < MAX_MEMBERS,
                "the registry is full ({MAX_MEMBERS} members)"
            );
            pb::Member {
                public_key: key.to_owned(),
                name: action.name.as_str().to_owned(),
                endpoint: action.endpoint.as_str().to_owned(),
                status: pb::MemberStatus::ACTIVE,
                registered_at_round: consortium.current_round,
                max_samples: action.max_samples.unwrap_or(0),
                ..Default::default()
            }
        }
    };
    let cap = member_cap(&member);
    state.put_directory_entry(&member)?;
    state.put_member(member)?;
    Ok(vec![
        attr("member", key),
        attr("reinstated", reinstated),
        attr("max_samples", cap),
    ])
}

/// A member's sample cap as events and printouts give it: the number, or `none`.
pub fn member_cap(member: &pb::Member) -> String {
    match member.max_samples {
        0 => "none".to_owned(),
        n => n.to_string(),
    }
}

/// `UpdateMember`: changes a member's name, endpoint and/or sample cap.
pub fn update_member(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &UpdateMember,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    let key = action.public_key.as_str();
    let mut member = state
        .member(key)?
        .ok_or_else(|| reject(format!("member {key} is not registered")))?;
    if !is_admin(&consortium, signer) {
        ensure!(
            signer == &action.public_key,
            "only an admin or the member itself may update member {key}"
        );
        ensure!(
            member.status == pb::MemberStatus::ACTIVE,
            "a suspended member may not update itself"
        );
        ensure!(
            action.max_samples.is_none(),
            "only an admin may change member {key}'s sample cap"
        );
    }
    if let Some(cap) = action.max_samples {
        member.max_samples = cap;
    }
    if let Some(name) = &action.name {
        member.name = name.as_str().to_owned();
    }
    if let Some(endpoint) = &action.endpoint {
        member.endpoint = endpoint.as_str().to_owned();
    }
    state.put_member(member)?;
    Ok(vec![attr("member", key)])
}

/// `SuspendMember`: suspends an active member.
pub fn suspend_member(
    state: &mut BcflState<'_>,
    signer: &PublicKey,
    action: &SuspendMember,
) -> Result<Attributes> {
    let consortium = require_consortium(state)?;
    require_admin(&consortium, signer, "suspend members")?;
    let key = action.public_key.as_str();
    let mut member = state
        .member(key)?
        .ok_or_else(|| reject(format!("member {key} is not registered")))?;
    ensure!(
        member.status == pb::MemberStatus::ACTIVE,
        "member {key} is already suspended"
    );
    member.status = pb::MemberStatus::SUSPENDED;
    member.suspend_reason = action.reason.as_str().to_owned();
    state.put_directory_entry(&member)?;
    state.put_member(member)?;
    Ok(vec![attr("member", key), attr("reason", &action.reason)])
}
