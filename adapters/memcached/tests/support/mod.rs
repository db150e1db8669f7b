//! A real `memcached` on a free loopback port, killed when dropped.
#![allow(dead_code, unreachable_pub)]

pub mod host;

use alf_test_hygiene::servers::{MEMCACHED, Server};

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    alf_test_hygiene::servers::free_port()
}

/// A running `memcached` on a loopback port, killed on drop (see
/// `alf_test_hygiene::servers`).
#[derive(Debug)]
pub struct MemcachedServer {
    server: Server,
    pub port: u16,
}

impl MemcachedServer {
    /// Start a server on a free port and wait until it answers.
    pub fn start() -> Self {
        Self::from(Server::start(&MEMCACHED))
    }

    /// Start a server on `port` and wait until it answers.
    pub fn start_on(port: u16) -> Self {
        Self::from(Server::start_on(&MEMCACHED, port))
    }

    fn from(server: Server) -> Self {
        let port = server.port;
        Self { server, port }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Start it again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.server.restart();
    }

    /// A plain connection, to look at and tamper with what the store wrote.
    pub async fn raw(&self) -> async_memcached::Client {
        async_memcached::Client::new(format!("tcp://{}", self.addr()))
            .await
            .unwrap()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    alf_test_hygiene::unix_now()
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> u64 {
    alf_test_hygiene::unix_now_ms()
}
