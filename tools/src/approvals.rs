//! Approvers for the approvals benchmark: Ed25519 keys written beside the bench policy, the
//! policy sections that name them, and the approvals of a request made the way an approver
//! makes them (`ssh-keygen -Y sign` over the statement the signer rebuilds).
//!
//! Only USDT transfers above [`THRESHOLD_USDT`] need the approvers, so one running signer can
//! be driven with approvals and without them in the same session.

use std::error::Error;
use std::io::Read;
use std::path::{Path, PathBuf};

use ssh_key::private::Ed25519Keypair;
use ssh_key::{HashAlg, LineEnding, PrivateKey};
use tron_proto::signer::Approval;
use tron_proto::Address;
use tron_signer::approval::{statement, Verdict, NAMESPACE};
use tron_signer::policy::LoadedPolicy;

/// The approver group the bench rule asks for.
pub const GROUP: &str = "bench";

/// USDT transfers strictly above this many token units need every bench approver.
pub const THRESHOLD_USDT: &str = "1";

fn key_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("approver-{i}"))
}

/// Writes `n` fresh approver keys into `dir` (`approver-0`, … as OpenSSH private keys, mode
/// 0600) and returns the policy text naming them, with a rule that asks all `n` of them for
/// every USDT transfer above [`THRESHOLD_USDT`]. Empty for `n = 0`.
pub fn write_approvers(dir: &Path, n: usize) -> Result<String, Box<dyn Error>> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    for i in 0..n {
        let mut seed = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(key_file(dir, i))?
            .write_all(key.to_openssh(LineEnding::LF)?.as_bytes())?;
        write!(
            text,
            "\n[[approver]]\nname = \"bench approver {i}\"\ngroups = [\"{GROUP}\"]\nkey = \"{}\"\n",
            key.public_key().to_openssh()?
        )?;
    }
    if n > 0 {
        write!(
            text,
            "\n[[approval]]\nasset = \"USDT\"\nabove = \"{THRESHOLD_USDT}\"\nrequire = {{ {GROUP} = {n} }}\n"
        )?;
    }
    Ok(text)
}

/// The approver keys [`write_approvers`] wrote into `dir`, in order.
pub fn read_approvers(dir: &Path) -> Result<Vec<PrivateKey>, Box<dyn Error>> {
    let mut keys = Vec::new();
    while let Ok(text) = std::fs::read_to_string(key_file(dir, keys.len())) {
        keys.push(PrivateKey::from_openssh(&text)?);
    }
    if keys.is_empty() {
        return Err(format!("no approver-0 in {}", dir.display()).into());
    }
    Ok(keys)
}

/// Every one of `approvers`' approval of `raw`, signed by `key` for `payout_id` under
/// `policy`. The statement itself is not sent: the signer rebuilds it and never trusts one.
pub fn approve(
    policy: &LoadedPolicy,
    approvers: &[PrivateKey],
    key: &Address,
    raw: &[u8],
    payout_id: &str,
) -> Result<Vec<Approval>, Box<dyn Error>> {
    let decoded = tron_signer::decode::decode(raw)?;
    let text = statement(policy, key, &decoded, payout_id, Verdict::Approve);
    approvers
        .iter()
        .map(|k| {
            let sig = k.sign(NAMESPACE, HashAlg::Sha512, text.as_bytes())?;
            Ok(Approval {
                signature: sig.to_pem(LineEnding::LF)?,
                statement: String::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_verify_over_the_signers_statement_and_the_rule_loads() {
        let dir = tempfile::tempdir().unwrap();
        let sections = write_approvers(dir.path(), 2).unwrap();
        let keys = read_approvers(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        let owner: Address = "TPX6HK2NRN4XKRX1JAhbC827bm7gMmy5w1".parse().unwrap();
        let mut text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/nile.toml"
        ))
        .unwrap();
        text.push_str(&sections);
        let policy = tron_signer::policy::parse(&text, "nile.toml").unwrap();
        let token: Address = "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf".parse().unwrap();
        let to: Address = "TFMvmdXpeTUadpGe54SPqb2uA8TA7F6acd".parse().unwrap();
        let raw = crate::tx::transfer(owner, to, Some(token), 2_000_000, 1, 60_000);
        let approvals = approve(&policy, &keys, &owner, &raw, "p-1").unwrap();
        let decoded = tron_signer::decode::decode(&raw).unwrap();
        let expected = statement(&policy, &owner, &decoded, "p-1", Verdict::Approve);
        for (a, k) in approvals.iter().zip(&keys) {
            let v =
                tron_signer::sshsig::verify(&a.signature, NAMESPACE, expected.as_bytes()).unwrap();
            assert_eq!(&v.key, k.public_key().key_data());
        }
        // Another payout id is another statement: these approvals do not verify over it.
        let other = statement(&policy, &owner, &decoded, "p-2", Verdict::Approve);
        assert!(
            tron_signer::sshsig::verify(&approvals[0].signature, NAMESPACE, other.as_bytes())
                .is_err()
        );
    }
}
