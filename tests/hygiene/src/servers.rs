//! Real `redis-server` and `memcached` processes on loopback ports, for the store tests of
//! alf-redis, alf-memcached and alf-reqwest. Each is killed (SIGKILL) when dropped; a missing
//! binary fails the test with a message saying what to install.
//!
//! A port chosen free can be taken by a server started elsewhere at the same moment (another
//! test of the same binary, another test process). The server that then fails to bind would
//! go unnoticed, since a connection to the port (the other server) succeeds, until that other
//! server goes away mid-test. So a server counts as started only once the process answering
//! on its port reports the pid of the child started here; otherwise another port is tried.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A kind of server: how to find, start and recognise it.
#[derive(Debug)]
pub struct Kind {
    /// The binary's name on `PATH`.
    pub name: &'static str,
    /// The environment variable that may name the binary instead.
    pub env: &'static str,
    /// The Debian package to install when it is missing.
    pub package: &'static str,
    /// The arguments for a server on a loopback port.
    pub args: fn(u16) -> Vec<String>,
    /// A request whose answer holds the server's pid after `pid_marker`, up to a CRLF.
    pub pid_query: &'static [u8],
    /// What precedes the pid in the answer to `pid_query`.
    pub pid_marker: &'static str,
}

/// `redis-server` without persistence.
pub const REDIS: Kind = Kind {
    name: "redis-server",
    env: "ALF_REDIS_SERVER",
    package: "redis-server",
    args: |port| {
        let mut args = vec!["--port".into(), port.to_string()];
        for a in ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"] {
            args.push(a.into());
        }
        args.extend(["--daemonize".into(), "no".into(), "--dir".into()]);
        args.push(std::env::temp_dir().to_string_lossy().into_owned());
        args
    },
    pid_query: b"INFO server\r\n",
    pid_marker: "process_id:",
};

/// `memcached`, TCP only, 16 MB. `-u root` is needed (and only used) when running as root.
pub const MEMCACHED: Kind = Kind {
    name: "memcached",
    env: "ALF_MEMCACHED",
    package: "memcached",
    args: |port| {
        let mut args = vec![
            "-l".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        for a in ["-U", "0", "-m", "16", "-u", "root"] {
            args.push(a.into());
        }
        args
    },
    pid_query: b"stats\r\n",
    pid_marker: "STAT pid ",
};

impl Kind {
    /// `$<env>` if set, else `<name>` found on `PATH`; panics with installation advice
    /// otherwise.
    pub fn binary(&self) -> PathBuf {
        if let Some(path) = std::env::var_os(self.env) {
            return PathBuf::from(path);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join(self.name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "\n\n*** {} not found on PATH. These tests need a real server: install it \
                     (Debian/Ubuntu: `apt-get install -y --no-install-recommends {}`) or set {} \
                     to the binary. ***\n\n",
                    self.name, self.package, self.env
                )
            })
    }
}

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server, killed on drop.
#[derive(Debug)]
pub struct Server {
    kind: &'static Kind,
    child: Option<Child>,
    /// Its loopback port.
    pub port: u16,
}

impl Server {
    /// Start a server on a free port and wait until it answers.
    pub fn start(kind: &'static Kind) -> Self {
        crate::init();
        for _ in 0..10 {
            let mut server = Self {
                kind,
                child: None,
                port: free_port(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("{}: no free port after 10 tries", kind.name);
    }

    /// Start a server on `port` and wait until it answers.
    pub fn start_on(kind: &'static Kind, port: u16) -> Self {
        crate::init();
        let mut server = Self {
            kind,
            child: None,
            port,
        };
        assert!(
            server.spawn(),
            "{}: port {port} is taken by another process",
            kind.name
        );
        server
    }

    /// Start the server on `self.port` and wait until it answers. `false` (and the child
    /// killed) when another process answers on the port.
    fn spawn(&mut self) -> bool {
        let (kind, port) = (self.kind, self.port);
        let bin = kind.binary();
        let mut child = Command::new(&bin)
            .args((kind.args)(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = serving_pid(port, kind.pid_query, kind.pid_marker) {
                if pid == child.id() {
                    self.child = Some(child);
                    return true;
                }
                // Ours failed to bind (or will): someone else answers on this port.
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!(
                    "{} on port {port} exited at start: {status}\n{stderr}",
                    kind.name
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} on port {port} did not start", kind.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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
        assert!(
            self.spawn(),
            "{}: port {} was taken by another process",
            self.kind.name,
            self.port
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The process id that the server on loopback `port` reports after `marker` (up to the next
/// CRLF) in its answer to `query`, if one answers within 2 s.
pub fn serving_pid(port: u16, query: &[u8], marker: &str) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(query).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some((_, rest)) = text.split_once(marker)
            && let Some((pid, _)) = rest.split_once("\r\n")
        {
            return pid.trim().parse().ok();
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || reply.len() > 64 * 1024 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-connection server that answers any request with `reply`, in two pieces.
    fn fake_server(reply: &'static [u8]) -> u16 {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _ = s.read(&mut [0u8; 64]).unwrap();
            let (a, b) = reply.split_at(reply.len() / 2);
            s.write_all(a).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b).unwrap();
        });
        port
    }

    #[test]
    fn serving_pid_reads_the_pid_after_the_marker() {
        let redis =
            fake_server(b"$40\r\n# Server\r\nredis_version:7\r\nprocess_id:4242\r\ntcp_port:1\r\n");
        assert_eq!(
            serving_pid(redis, REDIS.pid_query, REDIS.pid_marker),
            Some(4242)
        );
        let memcached = fake_server(b"STAT pid 17\r\nSTAT uptime 3\r\nEND\r\n");
        assert_eq!(
            serving_pid(memcached, MEMCACHED.pid_query, MEMCACHED.pid_marker),
            Some(17)
        );
        let other = fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert_eq!(serving_pid(other, b"stats\r\n", "STAT pid "), None);
        assert_eq!(serving_pid(free_port(), b"stats\r\n", "STAT pid "), None);
    }
}
