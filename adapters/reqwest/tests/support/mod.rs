//! Real `redis-server` and `memcached` processes on free loopback ports, for the store tests.
//! Each is killed when dropped. A missing binary fails the test with a message saying what to
//! install.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `$<env>` if set, else `<name>` found on `PATH`; panics with installation advice otherwise.
fn binary(name: &str, env: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "\n\n*** {name} not found on PATH. The token store tests need a real server: \
                 install it (Debian/Ubuntu: `apt-get install -y --no-install-recommends \
                 {package}`) or set {env} to the binary. ***\n\n"
            )
        })
}

/// A server process, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// Start `name` on a free port (`command` builds its command line for a port) and wait
    /// until it answers `query` with its own process id after `marker`. A port chosen free can
    /// be taken by a server started elsewhere at the same moment: then another port is tried.
    fn start(name: &str, command: impl Fn(u16) -> Command, query: &[u8], marker: &str) -> Self {
        alf_test_hygiene::init();
        for _ in 0..10 {
            let port = free_port();
            let child = command(port)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            let mut server = Self { child, port };
            let deadline = Instant::now() + Duration::from_secs(10);
            let pid = loop {
                if let Some(pid) = alf_test_hygiene::serving_pid(port, query, marker) {
                    break pid;
                }
                if let Some(status) = server.child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    if let Some(mut e) = server.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                    }
                    panic!("{name} on port {port} exited at start: {status}\n{stderr}");
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} on port {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(10));
            };
            if pid == server.child.id() {
                return server;
            }
            // Dropping `server` kills our child: another process answers on this port.
        }
        panic!("{name}: no free port after 10 tries");
    }

    /// `redis-server` (`$ALF_REDIS_SERVER`, else from `PATH`) on a free loopback port, with no
    /// persistence.
    pub fn redis() -> Self {
        let bin = binary("redis-server", "ALF_REDIS_SERVER", "redis-server");
        let command = |port: u16| {
            let mut command = Command::new(&bin);
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(std::env::temp_dir());
            command
        };
        Self::start("redis-server", command, b"INFO server\r\n", "process_id:")
    }

    /// `memcached` (`$ALF_MEMCACHED`, else from `PATH`) on a free loopback port, TCP only.
    pub fn memcached() -> Self {
        let bin = binary("memcached", "ALF_MEMCACHED", "memcached");
        let command = |port: u16| {
            let mut command = Command::new(&bin);
            // `-u root` is needed (and only used) when running as root; `-U 0`: no UDP.
            command.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
            command.args(["-U", "0", "-m", "16", "-u", "root"]);
            command
        };
        Self::start("memcached", command, b"stats\r\n", "STAT pid ")
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
