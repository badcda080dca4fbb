//! `bcfl keygen`.

use std::process::ExitCode;

use bcfl_ledger::keys::{write_key_pair, PrivateKey};

use super::Context;

/// Arguments of `bcfl keygen`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Name of the key pair (files NAME.priv and NAME.pub).
    name: String,
    /// Overwrite an existing key pair of that name.
    #[arg(long)]
    force: bool,
}

pub(crate) fn keygen(ctx: &Context, args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let dir = ctx.key_dir()?;
    let key = PrivateKey::random();
    let files = write_key_pair(&dir, &args.name, &key, args.force)?;
    let public = key.public_key();
    if ctx.json() {
        ctx.print_json(&serde_json::json!({
            "name": args.name,
            "public_key": public.as_hex(),
            "private_key_file": files.private,
            "public_key_file": files.public,
        }));
    } else {
        println!("writing file: {}", files.private.display());
        println!("writing file: {}", files.public.display());
        println!("public key: {public}");
    }
    Ok(ExitCode::SUCCESS)
}
