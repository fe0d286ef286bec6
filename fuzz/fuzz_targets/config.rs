//! Fuzzes the signer's configuration parser (`Config::parse`, all of `Config::load` after
//! the read).
//!
//! Properties: a refused config has a stable code and a message; an accepted one names a
//! key source, passes the transport check the server repeats at start, has every path made
//! absolute against the file's directory, and its listen address prints back to itself.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tron_signer::config::{Config, Listen};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/etc/tron-signer/signer.toml");
    match Config::parse(text, path) {
        Ok(cfg) => {
            assert!(cfg.keystore.is_some() || cfg.pkcs11.is_some());
            if let Err(e) = cfg.check_transport(path) {
                panic!("accepted config fails the start-time transport check: {e}");
            }
            assert!(cfg.data_dir.is_absolute(), "{:?}", cfg.data_dir);
            assert!(cfg.policy.is_absolute(), "{:?}", cfg.policy);
            if let Some(ks) = &cfg.keystore {
                assert!(ks.path.is_absolute(), "{:?}", ks.path);
            }
            let printed = cfg.listen.to_string();
            match printed.parse::<Listen>() {
                Ok(back) => assert_eq!(back, cfg.listen, "{printed}"),
                Err(e) => panic!("listen {printed:?} does not parse back: {e}"),
            }
            // Deterministic: the same text gives the same config.
            let again = Config::parse(text, path).map(|c| format!("{c:?}"));
            assert_eq!(again.ok(), Some(format!("{cfg:?}")));
        }
        Err(e) => {
            assert!(e.code().starts_with("config_"), "{}", e.code());
            assert!(!e.to_string().is_empty());
        }
    }
});
