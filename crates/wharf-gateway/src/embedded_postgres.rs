//! A private PostgreSQL cluster for installs that configure no database.
//!
//! With no `database.url`, Wharf keeps a cluster of its own under
//! `<data_dir>/postgres` using the PostgreSQL server binaries installed on the
//! machine (`initdb`, `pg_ctl`): initialised once, started when Wharf starts and
//! stopped when it stops. [`EmbeddedPostgres`] is the guard; dropping it stops the
//! cluster, so error paths clean up too.
//!
//! Layout of `<data_dir>/postgres` (mode 0700, owned by the user PostgreSQL runs as):
//! `data/` (PGDATA), `postgres.log`, `wharf.lock`, and the unix socket.
//!
//! Security: the cluster listens on a unix socket only (`listen_addresses = ''`)
//! in a 0700 directory, so `trust` authentication admits only the user that owns
//! that directory (and root). TCP is refused outright in `pg_hba.conf`. When the
//! socket path would exceed the kernel's 107-byte limit, the socket goes into a
//! fresh 0700 directory under /tmp instead of falling back to TCP.
//!
//! Root: `initdb` refuses to run as root, so as root every PostgreSQL command runs
//! as the `postgres` user (`runuser`) when it exists, else as `nobody`
//! (`setpriv`), and the cluster directory is handed to that user.
//!
//! Crashes: `pg_ctl` starts the postmaster in its own process group, so a Ctrl-C
//! at a terminal reaches Wharf, which then stops PostgreSQL after in-flight
//! requests finish. If Wharf dies without stopping it (SIGKILL), the next start
//! finds the orphaned postmaster through `postmaster.pid`, checks it really is a
//! postgres serving this directory, and stops it; a `postmaster.pid` naming any
//! other process is stale and removed. `wharf.lock` (an exclusive file lock held
//! while Wharf runs) makes sure no live Wharf is using the cluster meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// Name of the database Wharf uses inside its cluster.
pub const DATABASE: &str = "wharf";
/// Superuser created by `initdb`.
const SUPERUSER: &str = "postgres";
/// The "port" only names the socket file (`.s.PGSQL.5432`); there is no TCP listener.
const PORT: u16 = 5432;
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Seconds `pg_ctl` waits for start and stop.
const PG_CTL_TIMEOUT_SECS: &str = "120";
/// Settings Wharf owns, rewritten at every start and included from postgresql.conf.
const WHARF_CONF: &str = "wharf.conf";
const INCLUDE_LINE: &str = "include_if_exists = 'wharf.conf'";

/// Why the embedded cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPostgresError {
    #[error(
        "no database configured and no PostgreSQL server binaries (initdb, pg_ctl) found \
         on PATH or in /usr/lib/postgresql/*/bin. Either install PostgreSQL \
         (e.g. `apt-get install postgresql`) so Wharf can run a private cluster under \
         {data_dir}, or point Wharf at an existing database with \
         DATABASE_URL=postgres://user:password@host:5432/wharf"
    )]
    NotInstalled { data_dir: String },
    #[error("database.postgres_bin_dir {0} does not contain both initdb and pg_ctl")]
    BadBinDir(PathBuf),
    #[error(
        "the embedded PostgreSQL in {0} is in use by another Wharf process; \
         give each Wharf its own --data-dir or share a database through DATABASE_URL"
    )]
    InUse(PathBuf),
    #[error(
        "Wharf runs as root, so PostgreSQL runs as user {user:?}, which cannot reach {dir}: \
         every parent directory must be searchable by that user. Use a --data-dir it can \
         reach (e.g. under /var/lib or /srv) or set DATABASE_URL"
    )]
    Unreachable { user: String, dir: PathBuf },
    #[error("{action} failed: {detail}")]
    Command { action: String, detail: String },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the {DATABASE} database in the embedded PostgreSQL")]
    CreateDatabase(#[source] sqlx::Error),
}

type Result<T, E = EmbeddedPostgresError> = std::result::Result<T, E>;

fn io_err(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> EmbeddedPostgresError {
    let path = path.to_owned();
    move |source| EmbeddedPostgresError::Io {
        action,
        path,
        source,
    }
}

/// A running private cluster. Stop it with [`EmbeddedPostgres::stop`]; dropping it
/// stops it too (blocking).
#[derive(Debug)]
pub struct EmbeddedPostgres {
    root: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    /// Set when the socket lives in a directory of its own under /tmp.
    temporary_socket_dir: bool,
    bins: Binaries,
    runner: Runner,
    /// Held for the life of the guard; the OS releases it if the process dies.
    _lock: File,
    running: bool,
}

impl EmbeddedPostgres {
    /// Initialise (first time only) and start the cluster under `<data_dir>/postgres`,
    /// then make sure the `wharf` database exists.
    pub async fn start(data_dir: &Path, bin_dir: Option<&Path>) -> Result<Self> {
        let data_dir = std::path::absolute(data_dir).map_err(io_err("resolve", data_dir))?;
        let bin_dir = bin_dir.map(Path::to_owned);
        let guard = tokio::task::spawn_blocking(move || {
            Self::start_blocking(&data_dir, bin_dir.as_deref())
        })
        .await
        .map_err(|e| EmbeddedPostgresError::Command {
            action: "starting PostgreSQL".into(),
            detail: e.to_string(),
        })??;
        if let Err(e) = guard.create_database().await {
            guard.stop().await;
            return Err(e);
        }
        Ok(guard)
    }

    fn start_blocking(data_dir: &Path, bin_dir: Option<&Path>) -> Result<Self> {
        let bins = Binaries::find(bin_dir, data_dir)?;
        let root = data_dir.join("postgres");
        let pgdata = root.join("data");
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", &root))?;

        let runner = Runner::detect()?;
        let lock_path = root.join("wharf.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(EmbeddedPostgresError::InUse(root));
        }
        runner.give(&root)?;
        runner.check_reachable(&root)?;

        let (socket_dir, temporary_socket_dir) = socket_dir_for(&root, &runner)?;
        let mut guard = Self {
            root,
            pgdata,
            socket_dir,
            temporary_socket_dir,
            bins,
            runner,
            _lock: lock,
            running: false,
        };
        // From here on, dropping `guard` on an error cleans up (socket dir, server).
        guard.init_once()?;
        guard.write_settings()?;
        guard.clear_leftover_server()?;
        if let Err(e) = guard.pg_ctl_start() {
            // A server that came up too slowly for `--wait` must not outlive us.
            if guard.pgdata.join("postmaster.pid").exists() {
                let _ = guard.pg_ctl_stop("immediate");
            }
            return Err(e);
        }
        guard.running = true;
        tracing::info!(
            dir = %guard.root.display(),
            socket = %guard.socket_dir.display(),
            version = %guard.bins.version,
            "embedded PostgreSQL started"
        );
        Ok(guard)
    }

    /// How to connect to the `wharf` database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.connect_options_for(DATABASE)
    }

    fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(&self.socket_dir)
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
    }

    /// The cluster directory, `<data_dir>/postgres`.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The PGDATA directory (holds `postmaster.pid` while running).
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// Stop the cluster (`pg_ctl -m fast stop`): open sessions are disconnected,
    /// which is why the caller closes its pool first.
    pub async fn stop(mut self) {
        // Move the work off the async runtime; Drop then finds nothing left to do.
        let _ = tokio::task::spawn_blocking(move || {
            self.stop_blocking();
        })
        .await;
    }

    fn stop_blocking(&mut self) {
        if self.running {
            self.running = false;
            match self.pg_ctl_stop("fast") {
                Ok(()) => tracing::info!(dir = %self.root.display(), "embedded PostgreSQL stopped"),
                Err(e) => {
                    tracing::warn!(error = %e, "fast stop of the embedded PostgreSQL failed; stopping immediately");
                    if let Err(e) = self.pg_ctl_stop("immediate") {
                        tracing::error!(error = %e, "the embedded PostgreSQL could not be stopped");
                    }
                }
            }
        }
        if self.temporary_socket_dir {
            self.temporary_socket_dir = false;
            let _ = fs::remove_dir_all(&self.socket_dir);
            let _ = fs::remove_file(self.root.join("socket_dir"));
        }
    }

    /// `initdb` unless PGDATA already holds a cluster. A half-made PGDATA (no
    /// PG_VERSION: an earlier initdb was interrupted) is removed and made again.
    fn init_once(&self) -> Result<()> {
        if self.pgdata.join("PG_VERSION").exists() {
            return Ok(());
        }
        if self.pgdata.exists() {
            tracing::warn!(dir = %self.pgdata.display(), "removing an incomplete PostgreSQL data directory");
            fs::remove_dir_all(&self.pgdata).map_err(io_err("remove", &self.pgdata))?;
        }
        tracing::info!(dir = %self.pgdata.display(), "initialising the embedded PostgreSQL cluster");
        let mut cmd = self.runner.command(&self.bins.initdb);
        cmd.arg("--pgdata")
            .arg(&self.pgdata)
            .args([
                "--username",
                SUPERUSER,
                "--encoding",
                "UTF8",
                "--locale",
                "C",
            ])
            // trust only over the socket; see the module comment.
            .args(["--auth-local", "trust", "--auth-host", "reject"])
            .current_dir(&self.root);
        run(cmd, "initdb")?;
        Ok(())
    }

    /// Write `wharf.conf` and make sure postgresql.conf includes it. Rewritten every
    /// start so a moved data dir or changed socket location takes effect.
    fn write_settings(&self) -> Result<()> {
        let conf = self.pgdata.join("postgresql.conf");
        let text = fs::read_to_string(&conf).map_err(io_err("read", &conf))?;
        if !text.lines().any(|l| l.trim() == INCLUDE_LINE) {
            let mut f = OpenOptions::new()
                .append(true)
                .open(&conf)
                .map_err(io_err("open", &conf))?;
            writeln!(
                f,
                "\n# Wharf's settings (rewritten at every start)\n{INCLUDE_LINE}"
            )
            .map_err(io_err("write", &conf))?;
        }
        let quote = |p: &Path| p.to_string_lossy().replace('\'', "''");
        let settings = format!(
            "# Written by Wharf at every start; edits are lost.\n\
             listen_addresses = ''\n\
             port = {PORT}\n\
             unix_socket_directories = '{}'\n\
             unix_socket_permissions = 0700\n\
             logging_collector = off\n",
            quote(&self.socket_dir),
        );
        let path = self.pgdata.join(WHARF_CONF);
        fs::write(&path, settings).map_err(io_err("write", &path))?;
        self.runner.give(&path)?;
        Ok(())
    }

    /// Deal with a `postmaster.pid` left by a run that did not stop cleanly. We hold
    /// `wharf.lock`, so no live Wharf owns a server on this directory.
    fn clear_leftover_server(&self) -> Result<()> {
        let pid_file = self.pgdata.join("postmaster.pid");
        let Ok(contents) = fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let pid = contents
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok());
        match pid {
            Some(pid) if is_postmaster_of(pid, &self.pgdata) => {
                tracing::warn!(
                    pid,
                    "stopping a PostgreSQL server left running by an earlier Wharf"
                );
                if self.pg_ctl_stop("fast").is_err() {
                    self.pg_ctl_stop("immediate")?;
                }
            }
            _ => {
                tracing::warn!(file = %pid_file.display(), "removing a stale postmaster.pid");
                fs::remove_file(&pid_file).map_err(io_err("remove", &pid_file))?;
            }
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let log = self.root.join("postgres.log");
        let mut cmd = self.runner.command(&self.bins.pg_ctl);
        cmd.arg("start")
            .arg("--pgdata")
            .arg(&self.pgdata)
            .arg("--log")
            .arg(&log)
            .args(["--wait", "--timeout", PG_CTL_TIMEOUT_SECS, "--silent"])
            .current_dir(&self.root);
        run(cmd, "pg_ctl start").map_err(|e| match e {
            EmbeddedPostgresError::Command { action, detail } => EmbeddedPostgresError::Command {
                action,
                detail: format!(
                    "{detail}\nlast lines of {}:\n{}",
                    log.display(),
                    tail(&log, 15)
                ),
            },
            other => other,
        })?;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        let mut cmd = self.runner.command(&self.bins.pg_ctl);
        cmd.arg("stop")
            .arg("--pgdata")
            .arg(&self.pgdata)
            .args([
                "--mode",
                mode,
                "--wait",
                "--timeout",
                PG_CTL_TIMEOUT_SECS,
                "--silent",
            ])
            .current_dir(&self.root);
        run(cmd, "pg_ctl stop").map(|_| ())
    }

    async fn create_database(&self) -> Result<()> {
        let mut conn = PgConnection::connect_with(&self.connect_options_for("postgres"))
            .await
            .map_err(EmbeddedPostgresError::CreateDatabase)?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(DATABASE)
                .fetch_one(&mut conn)
                .await
                .map_err(EmbeddedPostgresError::CreateDatabase)?;
        if !exists {
            // DATABASE is a constant identifier, not input.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
                .execute(&mut conn)
                .await
                .map_err(EmbeddedPostgresError::CreateDatabase)?;
            tracing::info!(
                database = DATABASE,
                "created the database in the embedded PostgreSQL"
            );
        }
        conn.close()
            .await
            .map_err(EmbeddedPostgresError::CreateDatabase)?;
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}

/// The socket directory: the cluster directory when the socket path fits the
/// kernel limit, else a new 0700 directory under /tmp.
fn socket_dir_for(root: &Path, runner: &Runner) -> Result<(PathBuf, bool)> {
    // A /tmp socket directory of a run that crashed is recorded here; clear it.
    let record = root.join("socket_dir");
    if let Ok(previous) = fs::read_to_string(&record) {
        let previous = Path::new(previous.trim());
        if previous.starts_with("/tmp")
            && previous
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("wharf-pg-"))
        {
            let _ = fs::remove_dir_all(previous);
        }
        let _ = fs::remove_file(&record);
    }
    let socket = root.join(format!(".s.PGSQL.{PORT}"));
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok((root.to_owned(), false));
    }
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos();
    for attempt in 0..100u128 {
        let dir = PathBuf::from(format!(
            "/tmp/wharf-pg-{}-{:x}",
            std::process::id(),
            seed + attempt
        ));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("chmod", &dir))?;
                runner.give(&dir)?;
                fs::write(&record, dir.as_os_str().as_encoded_bytes())
                    .map_err(io_err("write", &record))?;
                tracing::info!(
                    dir = %dir.display(),
                    "the socket path under the data directory is too long; using a private directory in /tmp"
                );
                return Ok((dir, true));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &dir)(e)),
        }
    }
    Err(EmbeddedPostgresError::Command {
        action: "creating a socket directory in /tmp".into(),
        detail: "no free name".into(),
    })
}

/// Whether `pid` is a postgres process serving `pgdata` (its command line names it).
fn is_postmaster_of(pid: u32, pgdata: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let program_is_postgres = args
        .first()
        .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)))
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "postgres" || n == "postmaster");
    let names_pgdata = args.contains(&pgdata.as_os_str().as_encoded_bytes());
    program_is_postgres && names_pgdata
}

/// Run `cmd` to completion, turning a failure into an error with its output.
fn run(mut cmd: Command, action: &str) -> Result<Output> {
    // PG* variables would redirect the tools to some other server or directory.
    for var in [
        "PGDATA",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGOPTIONS",
        "PGPASSWORD",
    ] {
        cmd.env_remove(var);
    }
    // A process group of its own: a terminal's Ctrl-C goes to Wharf only, and Wharf
    // decides when PostgreSQL stops (after in-flight requests).
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = cmd.output().map_err(|e| EmbeddedPostgresError::Command {
        action: action.to_owned(),
        detail: format!("cannot run {:?}: {e}", cmd.get_program()),
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        let mut detail = format!("{}", output.status);
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            if !text.trim().is_empty() {
                detail.push_str(": ");
                detail.push_str(text.trim());
            }
        }
        Err(EmbeddedPostgresError::Command {
            action: action.to_owned(),
            detail,
        })
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The PostgreSQL server programs Wharf needs.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
    /// Major version as found, for the log (e.g. "15"), or "unknown".
    version: String,
}

impl Binaries {
    /// `bin_dir` if configured; else a directory on PATH holding both programs;
    /// else the highest `/usr/lib/postgresql/<version>/bin` (Debian, Ubuntu) or
    /// `/usr/pgsql-<version>/bin` (RHEL and the PGDG packages).
    fn find(bin_dir: Option<&Path>, data_dir: &Path) -> Result<Self> {
        if let Some(dir) = bin_dir {
            return Self::in_dir(dir)
                .ok_or_else(|| EmbeddedPostgresError::BadBinDir(dir.to_owned()));
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(found) = on_path.iter().find_map(|dir| Self::in_dir(dir)) {
            return Ok(found);
        }
        let mut versioned: Vec<(u32, PathBuf)> = Vec::new();
        for (parent, prefix, suffix) in [
            ("/usr/lib/postgresql", "", "bin"),
            ("/usr", "pgsql-", "bin"),
        ] {
            let Ok(entries) = fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(version) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
                    continue;
                };
                let Ok(major) = version.split('.').next().unwrap_or("").parse::<u32>() else {
                    continue;
                };
                versioned.push((major, entry.path().join(suffix)));
            }
        }
        versioned.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        versioned
            .iter()
            .find_map(|(_, dir)| Self::in_dir(dir))
            .ok_or_else(|| EmbeddedPostgresError::NotInstalled {
                data_dir: data_dir.join("postgres").display().to_string(),
            })
    }

    fn in_dir(dir: &Path) -> Option<Self> {
        let initdb = dir.join("initdb");
        let pg_ctl = dir.join("pg_ctl");
        if !is_executable(&initdb) || !is_executable(&pg_ctl) {
            return None;
        }
        // Resolve symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
        // so the version shows, and so initdb finds its sibling `postgres`.
        let initdb = fs::canonicalize(&initdb).unwrap_or(initdb);
        let pg_ctl = fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
        let version = initdb
            .components()
            .rev()
            .nth(2)
            .and_then(|c| c.as_os_str().to_str())
            .filter(|v| {
                v.trim_start_matches("pgsql-")
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == '.')
            })
            .unwrap_or("unknown")
            .trim_start_matches("pgsql-")
            .to_owned();
        Some(Self {
            initdb,
            pg_ctl,
            version,
        })
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Which user PostgreSQL's programs run as.
#[derive(Debug, Clone)]
enum Runner {
    /// Not root: run them directly.
    CurrentUser,
    /// Root: `runuser -u <name> --` (the `postgres` account exists).
    Runuser { name: String, uid: u32, gid: u32 },
    /// Root without a `postgres` account: `setpriv` to `nobody`.
    Setpriv { name: String, uid: u32, gid: u32 },
}

impl Runner {
    fn detect() -> Result<Self> {
        if effective_uid() != Some(0) {
            return Ok(Self::CurrentUser);
        }
        if let Some((uid, gid)) = passwd_entry("postgres") {
            return Ok(Self::Runuser {
                name: "postgres".into(),
                uid,
                gid,
            });
        }
        if let Some((uid, gid)) = passwd_entry("nobody") {
            return Ok(Self::Setpriv {
                name: "nobody".into(),
                uid,
                gid,
            });
        }
        Err(EmbeddedPostgresError::Command {
            action: "choosing a user for PostgreSQL".into(),
            detail: "Wharf runs as root and neither a `postgres` nor a `nobody` user exists; \
                     initdb refuses to run as root. Create a postgres user or set DATABASE_URL"
                .into(),
        })
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Self::CurrentUser => Command::new(program),
            Self::Runuser { name, .. } => {
                let mut cmd = Command::new(system_program("runuser"));
                cmd.args(["-u", name, "--"]).arg(program);
                cmd
            }
            Self::Setpriv { uid, gid, .. } => {
                let mut cmd = Command::new(system_program("setpriv"));
                cmd.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .args(["--clear-groups", "--"])
                    .arg(program);
                cmd
            }
        }
    }

    /// Hand `path` (recursively) to the PostgreSQL user. A no-op when not root.
    fn give(&self, path: &Path) -> Result<()> {
        let (Self::Runuser { uid, gid, .. } | Self::Setpriv { uid, gid, .. }) = self else {
            return Ok(());
        };
        chown_recursive(path, *uid, *gid)
    }

    /// As root, fail early and clearly when the PostgreSQL user cannot reach `dir`.
    fn check_reachable(&self, dir: &Path) -> Result<()> {
        let (Self::Runuser { name, .. } | Self::Setpriv { name, .. }) = self else {
            return Ok(());
        };
        let mut cmd = self.command(Path::new("test"));
        cmd.arg("-w").arg(dir).current_dir("/");
        match run(cmd, "test") {
            Ok(_) => Ok(()),
            Err(_) => Err(EmbeddedPostgresError::Unreachable {
                user: name.clone(),
                dir: dir.to_owned(),
            }),
        }
    }
}

/// util-linux programs live in sbin directories that a service's PATH may lack.
fn system_program(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| is_executable(p))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn chown_recursive(path: &Path, uid: u32, gid: u32) -> Result<()> {
    lchown(path, Some(uid), Some(gid)).map_err(io_err("chown", path))?;
    let meta = fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("read", path))? {
            let entry = entry.map_err(io_err("read", path))?;
            chown_recursive(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The effective uid, from /proc (Linux) or `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        // "Uid:\treal\teffective\tsaved\tfs"
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            return line.split_whitespace().nth(2).and_then(|v| v.parse().ok());
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// uid and primary gid of a local account, from /etc/passwd.
fn passwd_entry(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 4 && fields[0] == name)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_installed_binaries_or_explains_what_to_install() {
        match Binaries::find(None, Path::new("/srv/wharf")) {
            Ok(bins) => assert!(bins.initdb.ends_with("initdb") && bins.pg_ctl.ends_with("pg_ctl")),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("apt-get install postgresql") && msg.contains("DATABASE_URL"),
                    "{msg}"
                );
            }
        }
    }

    #[test]
    fn a_bin_dir_without_the_programs_is_refused() {
        let err = Binaries::find(Some(Path::new("/nonexistent")), Path::new("/d")).unwrap_err();
        assert!(matches!(err, EmbeddedPostgresError::BadBinDir(_)));
    }

    #[test]
    fn long_data_dirs_put_the_socket_in_tmp() {
        let base = tempfile::tempdir().unwrap();
        let long = base.path().join("x".repeat(120));
        fs::create_dir(&long).unwrap();
        let (dir, temporary) = socket_dir_for(&long, &Runner::CurrentUser).unwrap();
        assert!(temporary && dir.starts_with("/tmp"));
        assert!(dir.join(".s.PGSQL.5432").as_os_str().len() <= MAX_SOCKET_PATH);

        // The next start (say after a crash) clears the old directory first.
        let (next, _) = socket_dir_for(&long, &Runner::CurrentUser).unwrap();
        assert!(!dir.exists(), "a leftover socket directory is removed");
        fs::remove_dir(&next).unwrap();

        let (dir, temporary) = socket_dir_for(base.path(), &Runner::CurrentUser).unwrap();
        assert!(!temporary);
        assert_eq!(dir, base.path());
    }

    #[test]
    fn our_own_process_is_not_a_postmaster() {
        assert!(!is_postmaster_of(std::process::id(), Path::new("/x")));
        assert!(!is_postmaster_of(u32::MAX, Path::new("/x")));
    }

    #[test]
    fn passwd_lookup_finds_root() {
        assert_eq!(passwd_entry("root"), Some((0, 0)));
        assert_eq!(passwd_entry("no-such-user-here"), None);
    }
}
