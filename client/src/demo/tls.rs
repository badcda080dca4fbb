//! The demo's opt-in TLS (`bcfl demo --tls`, `scripts/demo.sh --tls`): a throwaway CA and
//! loopback certificates under `WORK/tls/`, one for the ledger's REST API (`ledger.crt`,
//! `ledger.key`) and one per member's blob server (`member-N.crt`, `member-N.key`), all for
//! `127.0.0.1`. Members then register `https://` endpoints, serve blobs with their certificate
//! and trust the CA (`BCFL_CA_CERT`). Signed requests are on either way; TLS adds
//! confidentiality on the wire. Never for a real deployment: its certificates come from the
//! consortium's own CA.

use std::path::{Path, PathBuf};

use bcfl_tls::pki::{ServerFiles, TestCa};

use super::{Error, Result};

/// The files of the demo's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTls {
    /// The CA certificate every process trusts.
    pub ca: PathBuf,
    /// The REST API's certificate and key.
    pub ledger: ServerFiles,
    dir: PathBuf,
}

impl DemoTls {
    /// The certificates in `dir` for `members` members: made (with a new CA) unless they are
    /// all there already (`scripts/demo.sh --tls` makes them before it starts the ledger).
    pub fn prepare(dir: &Path, members: usize) -> Result<Self> {
        let files = |name: &str| ServerFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let tls = Self {
            ca: dir.join("ca.crt"),
            ledger: files("ledger"),
            dir: dir.to_owned(),
        };
        let complete = tls.ca.exists()
            && std::iter::once(tls.ledger.clone())
                .chain((1..=members).map(|i| tls.member(i)))
                .all(|f| f.cert.exists() && f.key.exists());
        if complete {
            return Ok(tls);
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::file("creating", dir, e))?;
        let ca = TestCa::new("bcfl demo CA (throwaway)")?;
        ca.write(&tls.ca)?;
        ca.server(&["127.0.0.1", "localhost"])?
            .write(dir, "ledger")?;
        for i in 1..=members {
            ca.server(&["127.0.0.1", "localhost"])?
                .write(dir, &format!("member-{i}"))?;
        }
        Ok(tls)
    }

    /// Member `i`'s blob server certificate and key (`i` from 1).
    pub fn member(&self, i: usize) -> ServerFiles {
        ServerFiles {
            cert: self.dir.join(format!("member-{i}.crt")),
            key: self.dir.join(format!("member-{i}.key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DemoTls;

    #[test]
    fn certificates_are_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let made = DemoTls::prepare(dir.path(), 2).unwrap();
        let ca = std::fs::read(&made.ca).unwrap();
        let again = DemoTls::prepare(dir.path(), 2).unwrap();
        assert_eq!(made, again);
        assert_eq!(std::fs::read(&again.ca).unwrap(), ca, "the CA is reused");
        bcfl_tls::ServerTls::from_pem_files(&made.member(2).cert, &made.member(2).key).unwrap();
        // One more member than prepared: a new set.
        let more = DemoTls::prepare(dir.path(), 3).unwrap();
        assert!(more.member(3).cert.exists());
        assert_ne!(std::fs::read(&more.ca).unwrap(), ca);
    }
}
