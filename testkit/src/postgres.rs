//! A private PostgreSQL cluster for one test: `initdb` in a new directory under /tmp, the
//! server listening on a Unix socket in that directory only (no TCP), stopped and removed
//! when the value is dropped. The server binaries come from Debian's `postgresql` package
//! (`scripts/test.sh` installs it when missing), or from `TRON_SIGNER_PG_BIN`.
//!
//! PostgreSQL refuses to run as root; when the tests run as root, every server command runs
//! as the `postgres` user the package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the server binaries are: `TRON_SIGNER_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` holding `initdb`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRON_SIGNER_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server found under /usr/lib/postgresql (scripts/test.sh installs \
             Debian's postgresql package; or set TRON_SIGNER_PG_BIN)"
        ),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A running private cluster.
pub struct Cluster {
    /// The cluster's directory: `data/`, the socket, the server log.
    pub dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Cluster {
    /// Creates and starts a cluster; panics, with the server's own words, if it cannot.
    pub fn start() -> Cluster {
        let bin = bin_dir();
        // Short, since the socket's path must fit in 107 bytes.
        let dir = PathBuf::from(format!(
            "/tmp/tspg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let as_postgres = is_root();
        let c = Cluster {
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            c.ok(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&c.dir));
        }
        let data = c.data();
        c.ok(c
            .server_cmd("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-D",
            ])
            .arg(&data));
        c.start_again();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server program, run as `postgres` when we are root.
    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn ok(&self, cmd: &mut Command) -> Output {
        let out = cmd.output().expect("run a PostgreSQL command");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
        out
    }

    /// Starts the server (again, after [`Cluster::stop`]) and waits until it accepts.
    pub fn start_again(&self) {
        let opts = format!(
            "-c listen_addresses='' -k {} -c max_connections=200 -c fsync=on",
            self.dir.display()
        );
        self.ok(self
            .server_cmd("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &opts, "start"]));
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or `immediate` (as if
    /// it crashed; recovery runs at the next start).
    pub fn stop(&self, mode: &str) {
        self.ok(self
            .server_cmd("pg_ctl")
            .args(["-w", "-t", "60", "-m", mode, "-D"])
            .arg(self.data())
            .arg("stop"));
    }

    /// A connection string for database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("host={} user=postgres dbname={db}", self.dir.display())
    }

    /// Creates an empty database.
    pub fn create_db(&self, name: &str) {
        self.ok(Command::new(self.bin.join("createdb"))
            .args(["-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", name]));
    }

    /// Runs SQL with `psql` on database `db`; returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.ok(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", db, "-c", sql]));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .server_cmd("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
