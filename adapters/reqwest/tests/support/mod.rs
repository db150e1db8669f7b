//! Real `redis-server` and `memcached` processes on free loopback ports, for the store tests.
//! Each is killed when dropped. A missing binary fails the test with a message saying what to
//! install. (The processes are `alf_test_hygiene::servers`, shared with alf-redis's and
//! alf-memcached's tests.)
#![allow(dead_code, unreachable_pub)]

use alf_test_hygiene::servers::{MEMCACHED, REDIS};

/// A loopback port nothing listens on (just now).
pub fn free_port() -> u16 {
    alf_test_hygiene::servers::free_port()
}

/// A server process, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct Server {
    server: alf_test_hygiene::servers::Server,
    pub port: u16,
}

impl Server {
    /// `redis-server` (`$ALF_REDIS_SERVER`, else from `PATH`) on a free loopback port, with no
    /// persistence.
    pub fn redis() -> Self {
        Self::from(alf_test_hygiene::servers::Server::start(&REDIS))
    }

    /// `memcached` (`$ALF_MEMCACHED`, else from `PATH`) on a free loopback port, TCP only.
    pub fn memcached() -> Self {
        Self::from(alf_test_hygiene::servers::Server::start(&MEMCACHED))
    }

    fn from(server: alf_test_hygiene::servers::Server) -> Self {
        let port = server.port;
        Self { server, port }
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
