//! A real `memcached` on a free loopback port, killed when dropped.
#![allow(dead_code, unreachable_pub)]

pub mod host;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where to find the server: `$ALF_MEMCACHED`, else `memcached` on `PATH`.
pub fn memcached_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ALF_MEMCACHED") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("memcached"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "\n\n*** memcached not found on PATH. These tests need a real memcached: install it \
                 (Debian/Ubuntu: `apt-get install -y --no-install-recommends memcached`) or set \
                 ALF_MEMCACHED to the binary. ***\n\n"
            )
        })
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `memcached`, killed on drop.
#[derive(Debug)]
pub struct MemcachedServer {
    child: Option<Child>,
    pub port: u16,
}

impl MemcachedServer {
    /// Start a server on a free port and wait until it accepts connections.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Start a server on `port` and wait until it accepts connections.
    pub fn start_on(port: u16) -> Self {
        alf_test_hygiene::init();
        let mut server = Self { child: None, port };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let bin = memcached_binary();
        // `-u root` is needed (and only used) when running as root; `-U 0`: no UDP.
        let child = Command::new(&bin)
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "0",
                "-m",
                "16",
                "-u",
                "root",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut e) = self.child.as_mut().unwrap().stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!(
                    "memcached on port {} exited at start: {status}\n{stderr}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "memcached on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A plain connection, to look at and tamper with what the store wrote.
    pub async fn raw(&self) -> async_memcached::Client {
        async_memcached::Client::new(format!("tcp://{}", self.addr()))
            .await
            .unwrap()
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[allow(dead_code)] // Not every test binary uses it.
pub fn unix_now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
