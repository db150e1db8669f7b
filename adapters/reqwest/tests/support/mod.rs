//! Real `redis-server` and `memcached` processes on free loopback ports, for the store tests.
//! Each is killed when dropped. A missing binary fails the test with a message saying what to
//! install.
#![allow(dead_code, unreachable_pub)]

use std::net::{TcpListener, TcpStream};
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
    fn start(name: &str, mut command: Command, port: u16) -> Self {
        alf_test_hygiene::init();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
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
        }
        server
    }

    /// `redis-server` (`$ALF_REDIS_SERVER`, else from `PATH`) on a free loopback port, with no
    /// persistence.
    pub fn redis() -> Self {
        let port = free_port();
        let mut command = Command::new(binary("redis-server", "ALF_REDIS_SERVER", "redis-server"));
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir());
        Self::start("redis-server", command, port)
    }

    /// `memcached` (`$ALF_MEMCACHED`, else from `PATH`) on a free loopback port, TCP only.
    pub fn memcached() -> Self {
        let port = free_port();
        let mut command = Command::new(binary("memcached", "ALF_MEMCACHED", "memcached"));
        // `-u root` is needed (and only used) when running as root; `-U 0`: no UDP.
        command.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
        command.args(["-U", "0", "-m", "16", "-u", "root"]);
        Self::start("memcached", command, port)
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
