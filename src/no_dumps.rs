//! Keeps the key material in this process's memory out of core dumps and away from other
//! processes of the same user.
//!
//! A core dump would write decrypted keys to disk, and a same-user process could read them
//! through `ptrace` or `/proc/<pid>/mem`. The core size limit is set to zero (soft and hard,
//! so nothing in the process can raise it again), and on Linux the process is marked not
//! dumpable, which also makes its `/proc` entries root's and refuses `ptrace` attach to
//! anyone but root.

/// Applies both protections. Called before any key is read; a failure is reported to the
/// caller to log (the signer still runs, like with an mlock the OS refuses).
pub fn deny_core_dumps_and_tracing() -> Result<(), String> {
    // Both are tried whatever the other does: not dumpable also stops a core piped to a
    // handler, which the size limit alone does not.
    let mut failed = Vec::new();
    #[cfg(unix)]
    if let Err(e) = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    ) {
        failed.push(format!("could not set the core dump size limit to 0: {e}"));
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        failed.push(format!("could not mark the process not dumpable: {e}"));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_core_dumps_and_not_dumpable() {
        deny_core_dumps_and_tracing().unwrap();
        let core = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        #[cfg(target_os = "linux")]
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
        // Idempotent: a second call (another command path) succeeds too.
        deny_core_dumps_and_tracing().unwrap();
    }
}
