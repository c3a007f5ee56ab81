//! One real `redis-server` process on a free port with its own temporary directory.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::port;
use crate::resp::{self, Reply};

/// Environment variable naming the `redis-server` binary to run (default: `redis-server`
/// from `PATH`). The binary must `exec` redis-server so that its pid is the server's pid.
pub const REDIS_SERVER_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// How long a (re)started server gets to answer `PING` before the start counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a start is retried when the chosen port turns out to be taken.
const START_ATTEMPTS: usize = 5;
/// Per-probe connect/read/write timeout while waiting for readiness.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between readiness probes (polling with a deadline, never a fixed wait).
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// How long `pause`/`resume` wait for the kernel to report the new process state.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of the server log printed when a test panics while the server is alive.
const LOG_TAIL_LINES: usize = 30;

/// Builds a [`RedisServer`] with extra command-line arguments.
///
/// ```no_run
/// let server = lockstock_test_support::RedisServer::builder()
///     .args(["--appendonly", "yes"])
///     .arg("--enable-debug-command")
///     .arg("local")
///     .start();
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct RedisServerBuilder {
    binary: Option<PathBuf>,
    args: Vec<String>,
    port: Option<u16>,
}

impl RedisServerBuilder {
    /// Appends one argument, passed verbatim after the defaults (so it overrides them:
    /// `--appendonly yes` wins over the default `--appendonly no`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments, see [`arg`](Self::arg).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs this binary instead of `$REDIS_SERVER_BIN` or `redis-server`.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Listens on this port instead of a free one picked at random (no retry on a clash).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Panics
    /// When the binary cannot be run, the server exits, or it does not answer within
    /// [`READY_TIMEOUT`]; the message includes the server's log.
    pub fn start(self) -> RedisServer {
        self.start_picking_ports(port::free_port)
    }

    /// Like [`start`](Self::start), with free ports drawn from `pick_port` (retried on a
    /// clash) unless a fixed [`port`](Self::port) was set.
    pub(crate) fn start_picking_ports(self, pick_port: fn() -> u16) -> RedisServer {
        let binary = self
            .binary
            .or_else(|| std::env::var_os(REDIS_SERVER_BIN_ENV).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let dir = tempfile::Builder::new()
            .prefix("lockstock-redis-")
            .tempdir()
            .unwrap_or_else(|err| panic!("cannot create a temp dir for redis-server: {err}"));
        let mut server = RedisServer {
            binary,
            extra_args: self.args,
            dir,
            port: 0,
            child: None,
            last_pid: 0,
            paused: false,
        };
        match self.port {
            Some(port) => {
                server.port = port;
                server.launch_or_panic(1);
            }
            None => server.launch_on_free_port(pick_port),
        }
        server
    }
}

/// A running `redis-server` child process, killed (and reaped) on drop.
///
/// Started with `--bind 127.0.0.1 --save "" --appendonly no --daemonize no` in a fresh
/// temporary directory (also its `--dir`, holding `redis.log`, dumps and AOF files).
/// Drop runs on unwind too, so a failing test does not leave the server behind; a server
/// kept in a `static` is never dropped, so don't do that.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    extra_args: Vec<String>,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    last_pid: u32,
    paused: bool,
}

enum StartError {
    /// Someone else holds the port; a retry (on another port) may succeed.
    PortTaken(String),
    /// Anything else: retrying will not help.
    Fatal(String),
}

impl RedisServer {
    /// Starts a server with the default arguments on a free port. Panics on failure.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Starts a server with extra arguments, e.g. `&["--appendonly", "yes"]`.
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::builder().args(extra_args.iter().copied()).start()
    }

    /// A builder for extra arguments, another binary or a fixed port.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The TCP port the server listens on (unchanged by [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> String {
        self.socket_addr().to_string()
    }

    /// The listening address as a [`SocketAddr`].
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `"redis://127.0.0.1:<port>/"`, ready for `redis::Client::open`.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.socket_addr())
    }

    /// The pid of the current process, or of the last one after [`kill`](Self::kill).
    pub fn pid(&self) -> u32 {
        self.last_pid
    }

    /// The server's working directory (`--dir`): log, RDB and AOF files live here.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The contents of the server's log file (all runs, including before a restart).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether the process is alive (a paused process is alive).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Whether the process is stopped by [`pause`](Self::pause).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Sends one command on a fresh connection; `timeout` bounds connect, write and read.
    pub fn command(&self, args: &[&str], timeout: Duration) -> io::Result<Reply> {
        resp::command(self.socket_addr(), args, timeout)
    }

    /// Sends `PING` on a fresh connection and expects `+PONG` within `timeout`.
    ///
    /// A paused server fails with [`io::ErrorKind::WouldBlock`] or
    /// [`io::ErrorKind::TimedOut`]; a killed one with a connect error.
    pub fn ping(&self, timeout: Duration) -> io::Result<()> {
        match self.command(&["PING"], timeout)? {
            Reply::Status(pong) if pong == "PONG" => Ok(()),
            other => Err(io::Error::other(format!("PING answered {other:?}"))),
        }
    }

    /// Stops the process with `SIGSTOP`: it keeps its port and data but answers nothing
    /// (connections are still accepted by the kernel). Returns once the kernel reports
    /// the process as stopped. No-op when already paused.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        assert!(
            self.is_running(),
            "pause(): redis-server on port {} is not running",
            self.port
        );
        send_signal(self.last_pid, "STOP")
            .unwrap_or_else(|err| panic!("pause(): kill -STOP {} failed: {err}", self.last_pid));
        self.paused = true;
        wait_for_stopped_state(self.last_pid, true);
    }

    /// Continues a paused process with `SIGCONT`. No-op when not paused.
    ///
    /// # Panics
    /// When the signal cannot be sent.
    pub fn resume(&mut self) {
        if !self.paused {
            return;
        }
        send_signal(self.last_pid, "CONT")
            .unwrap_or_else(|err| panic!("resume(): kill -CONT {} failed: {err}", self.last_pid));
        self.paused = false;
        wait_for_stopped_state(self.last_pid, false);
    }

    /// Kills the process with `SIGKILL` (no shutdown, no final save) and reaps it.
    /// No-op when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only when the process has already exited; `wait` reaps it either way.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Kills the server if it still runs, then starts it again on the same port with the
    /// same directory and arguments (so AOF/RDB files are reloaded) and waits for `PING`.
    ///
    /// # Panics
    /// When the server does not come back, e.g. because another process took the port.
    pub fn restart(&mut self) {
        self.kill();
        self.launch_or_panic(START_ATTEMPTS);
    }

    /// Kills the server, deletes its persistence files (the AOF directory and any RDB
    /// dump; the log stays) and starts it again on the same port with the same
    /// arguments: a server that lost its disk. Its `run_id` changes, as on every restart.
    ///
    /// # Panics
    /// When the files cannot be removed or the server does not come back.
    pub fn restart_empty(&mut self) {
        self.kill();
        for name in ["appendonlydir", "appendonly.aof", "dump.rdb"] {
            let path = self.dir().join(name);
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => panic!("restart_empty(): cannot remove {}: {err}", path.display()),
            }
        }
        self.launch_or_panic(START_ATTEMPTS);
    }

    fn launch_on_free_port(&mut self, pick_port: fn() -> u16) {
        let mut clashes = Vec::new();
        for _ in 0..START_ATTEMPTS {
            self.port = pick_port();
            match self.launch() {
                Ok(()) => return,
                Err(StartError::PortTaken(why)) => clashes.push(why),
                Err(StartError::Fatal(why)) => panic!("{why}"),
            }
        }
        panic!(
            "redis-server could not get a free port in {START_ATTEMPTS} attempts:\n{}",
            clashes.join("\n")
        );
    }

    fn launch_or_panic(&mut self, attempts: usize) {
        let mut clashes = Vec::new();
        for attempt in 1..=attempts {
            match self.launch() {
                Ok(()) => return,
                Err(StartError::PortTaken(why)) => clashes.push(why),
                Err(StartError::Fatal(why)) => panic!("{why}"),
            }
            if attempt < attempts {
                // Give a transient holder of the port (e.g. a dying process) time to go.
                thread::sleep(POLL_INTERVAL * 20);
            }
        }
        panic!(
            "{}\n--- attempts ---\n{}",
            self.failure_report(&format!("could not listen ({attempts} attempts)")),
            clashes.join("\n")
        );
    }

    /// Spawns the process on `self.port` and waits until it, and not some other process
    /// holding that port, answers `PING`.
    fn launch(&mut self) -> Result<(), StartError> {
        let log_len_before = self.log().len();
        let output = self.output_file().map_err(|err| {
            StartError::Fatal(format!("cannot create redis-server output file: {err}"))
        })?;
        let stderr = output.try_clone().map_err(|err| {
            StartError::Fatal(format!("cannot duplicate redis-server output file: {err}"))
        })?;
        let child = Command::new(&self.binary)
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .spawn()
            .map_err(|err| {
                StartError::Fatal(format!(
                    "cannot run {:?} (set {REDIS_SERVER_BIN_ENV} to another binary): {err}",
                    self.binary
                ))
            })?;
        self.last_pid = child.id();
        self.child = Some(child);

        let result = self.wait_until_ready(log_len_before);
        if result.is_err() {
            self.kill();
        }
        result
    }

    fn wait_until_ready(&mut self, log_len_before: usize) -> Result<(), StartError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exit_status() {
                let log = self.log();
                let this_run = log.get(log_len_before..).unwrap_or(&log);
                if this_run.contains("Address already in use") {
                    return Err(StartError::PortTaken(format!(
                        "port {}: address already in use",
                        self.port
                    )));
                }
                return Err(StartError::Fatal(
                    self.failure_report(&format!("exited with {status} during start-up")),
                ));
            }
            if self.ping(PROBE_TIMEOUT).is_ok() {
                return match self.answering_pid() {
                    Some(pid) if pid == self.last_pid => Ok(()),
                    Some(pid) => Err(StartError::PortTaken(format!(
                        "port {}: answered by another redis-server (pid {pid})",
                        self.port
                    ))),
                    // INFO failed after PING worked: the server is up but misbehaving.
                    None => Err(StartError::Fatal(
                        self.failure_report("answered PING but not INFO server"),
                    )),
                };
            }
            if Instant::now() >= deadline {
                return Err(StartError::Fatal(self.failure_report(&format!(
                    "did not answer PING within {READY_TIMEOUT:?}"
                ))));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// `process_id` from `INFO server`: tells our server from a stranger on the same port.
    fn answering_pid(&self) -> Option<u32> {
        let info = self
            .command(&["INFO", "server"], PROBE_TIMEOUT)
            .ok()?
            .as_text()?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--port".into(),
            self.port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            self.dir.path().into(),
            "--logfile".into(),
            self.log_path().into(),
            "--daemonize".into(),
            "no".into(),
        ];
        args.extend(self.extra_args.iter().map(OsString::from));
        args
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("redis.out")
    }

    /// stdout/stderr of the process: redis-server writes config errors there, not to its log.
    fn output_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())
    }

    fn failure_report(&self, what: &str) -> String {
        let mut report = format!(
            "redis-server {:?} on port {} {what}\n  args: {:?}\n  dir: {}",
            self.binary,
            self.port,
            self.args(),
            self.dir.path().display()
        );
        let output = fs::read_to_string(self.output_path()).unwrap_or_default();
        if !output.trim().is_empty() {
            let _ = write!(report, "\n--- stdout/stderr ---\n{}", output.trim_end());
        }
        let _ = write!(report, "\n--- redis.log ---\n{}", self.log().trim_end());
        report
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.paused {
            let _ = send_signal(self.last_pid, "CONT");
            self.paused = false;
        }
        if thread::panicking() && self.child.is_some() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "test panicked; last {} lines of redis-server on port {} (pid {}):\n{}",
                tail.len(),
                self.port,
                self.last_pid,
                tail.join("\n")
            );
        }
        self.kill();
    }
}

/// Sends a signal with the `kill` utility (unsafe code, and so `libc::kill`, is forbidden).
fn send_signal(pid: u32, signal: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`kill -s {signal} {pid}` exited with {status}"
        )))
    }
}

/// Polls `/proc/<pid>/stat` until the process is (or is no longer) stopped, so that
/// `pause`/`resume` return only once the signal has taken effect. Without `/proc` (not
/// Linux) it returns at once.
fn wait_for_stopped_state(pid: u32, stopped: bool) {
    let deadline = Instant::now() + SIGNAL_TIMEOUT;
    loop {
        let Some(state) = process_state(pid) else {
            return;
        };
        if (state == 'T') == stopped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} still in state {state:?} {SIGNAL_TIMEOUT:?} after the signal"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// The one-letter state of a process (`R`, `S`, `T`, ...), from `/proc/<pid>/stat`.
fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may contain spaces and parentheses, so split at the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORT: Duration = Duration::from_millis(300);

    fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn starts_and_answers_ping() {
        let server = RedisServer::start();
        server.ping(SHORT).unwrap();
        assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port()));
        assert_eq!(
            server.url(),
            format!("redis://127.0.0.1:{}/", server.port())
        );
        assert!(
            server.log().contains("Ready to accept connections"),
            "{}",
            server.log()
        );
    }

    #[test]
    fn pause_resume_kill_restart() {
        let mut server = RedisServer::start();
        let port = server.port();
        let first_pid = server.pid();
        server.command(&["SET", "k", "v"], SHORT).unwrap();

        server.pause();
        assert!(server.is_paused());
        assert!(server.is_running(), "a paused server is still running");
        let err = server.ping(SHORT).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "expected a read timeout from a paused server, got {err:?}"
        );

        server.resume();
        assert!(!server.is_paused());
        server.ping(SHORT).unwrap();

        server.kill();
        assert!(!server.is_running());
        assert!(!process_exists(first_pid));
        assert!(
            server.ping(SHORT).is_err(),
            "a killed server must refuse connections"
        );

        server.restart();
        assert!(server.is_running());
        assert_eq!(server.port(), port);
        assert_ne!(server.pid(), first_pid);
        server.ping(SHORT).unwrap();
    }

    #[test]
    fn extra_args_override_defaults_and_restart_reloads_the_aof() {
        let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
        let reply = server
            .command(&["CONFIG", "GET", "appendonly"], SHORT)
            .unwrap();
        assert_eq!(
            reply,
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"appendonly".to_vec())),
                Reply::Bulk(Some(b"yes".to_vec())),
            ]))
        );
        server.command(&["SET", "k", "v"], SHORT).unwrap();
        // appendfsync everysec may lose the last second on SIGKILL; fsync explicitly.
        server
            .command(&["CONFIG", "SET", "appendfsync", "always"], SHORT)
            .unwrap();
        server.command(&["SET", "k", "v2"], SHORT).unwrap();
        server.kill();
        server.restart();
        let value = server.command(&["GET", "k"], SHORT).unwrap();
        assert_eq!(value, Reply::Bulk(Some(b"v2".to_vec())));
    }

    #[test]
    fn restart_empty_forgets_what_the_aof_held() {
        let mut server =
            RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
        let port = server.port();
        server.command(&["SET", "k", "v"], SHORT).unwrap();
        server.restart_empty();
        assert_eq!(server.port(), port);
        assert_eq!(
            server.command(&["GET", "k"], SHORT).unwrap(),
            Reply::Bulk(None)
        );
        // Still with AOF: what it is told now survives a plain restart.
        server.command(&["SET", "k", "again"], SHORT).unwrap();
        server.restart();
        assert_eq!(
            server.command(&["GET", "k"], SHORT).unwrap(),
            Reply::Bulk(Some(b"again".to_vec()))
        );
    }

    #[test]
    fn drop_leaves_no_process_even_when_paused() {
        let mut server = RedisServer::start();
        let pid = server.pid();
        assert!(process_exists(pid));
        server.pause();
        drop(server);
        assert!(!process_exists(pid), "redis-server {pid} survived Drop");
    }

    #[test]
    fn two_servers_get_different_ports() {
        let a = RedisServer::start();
        let b = RedisServer::start();
        assert_ne!(a.port(), b.port());
        a.ping(SHORT).unwrap();
        b.ping(SHORT).unwrap();
    }

    #[test]
    fn a_fixed_port_clash_is_a_clear_panic_with_the_log() {
        let a = RedisServer::start();
        let port = a.port();
        let result = std::panic::catch_unwind(|| RedisServer::builder().port(port).start());
        let message = result.unwrap_err();
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains(&port.to_string()), "{message}");
    }

    #[test]
    fn a_bad_argument_panics_with_the_server_output() {
        let result = std::panic::catch_unwind(|| RedisServer::start_with(&["--no-such-option"]));
        let message = result.unwrap_err();
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("no-such-option"), "{message}");
    }
}
