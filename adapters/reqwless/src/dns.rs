//! [`StaticDns`]: name resolution without DNS, for devices with fixed addresses.

use core::net::{IpAddr, Ipv4Addr};

use embedded_nal_async::{AddrType, Dns};

/// A resolver without a network: IPv4 literals, plus an optional fixed table of host names.
///
/// For firmware that knows its servers' addresses (a static network configuration, a
/// provisioned gateway): it takes the place of embassy-net's `DnsSocket`, so the stack can be
/// built without its `dns` feature (about 3 KB less flash on a Cortex-M, see
/// `examples/SIZE-LOG.md`), and no DNS query ever leaves the device.
///
/// - A host that is an IPv4 literal (`10.0.0.7`) resolves to itself. IPv6 literals are not
///   parsed (the parser costs about 1.5 KB of flash, and an IPv4-only stack cannot use them):
///   give IPv6 servers a name in the table.
/// - A host in the table resolves to its address. Names are compared ASCII case-insensitively
///   (a trailing dot is ignored): the URL keeps the name, so the `Host` header (and TLS's server
///   name, with the `tls` feature) are the real ones while the address is fixed.
/// - Anything else fails with [`UnknownHost`], which the transport reports as a resolution error
///   (`reqwless::Error::Dns`, kind `NotFound`) before connecting.
///
/// ```
/// use core::net::{IpAddr, Ipv4Addr};
/// use alf_reqwless::StaticDns;
///
/// // URLs may name `auth.lan` (sent as `Host: auth.lan`), which connects to 10.42.0.1.
/// static HOSTS: [(&str, IpAddr); 1] = [("auth.lan", IpAddr::V4(Ipv4Addr::new(10, 42, 0, 1)))];
/// let dns = StaticDns::new(&HOSTS);
/// # let _ = dns;
/// // IP literals only:
/// let literals = StaticDns::literals();
/// # let _ = literals;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct StaticDns<'a> {
    hosts: &'a [(&'a str, IpAddr)],
}

impl<'a> StaticDns<'a> {
    /// A resolver for IPv4 literals and the names in `hosts`.
    pub const fn new(hosts: &'a [(&'a str, IpAddr)]) -> Self {
        Self { hosts }
    }

    /// A resolver for IPv4 literals only.
    pub const fn literals() -> Self {
        Self { hosts: &[] }
    }

    /// The address of `host`: an IPv4 literal, or a name in the table.
    pub fn resolve(&self, host: &str) -> Result<IpAddr, UnknownHost> {
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return Ok(IpAddr::V4(v4));
        }
        let name = host.strip_suffix('.').unwrap_or(host);
        self.hosts
            .iter()
            .find(|(n, _)| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name))
            .map(|&(_, ip)| ip)
            .ok_or(UnknownHost)
    }
}

impl Default for StaticDns<'_> {
    fn default() -> Self {
        Self::literals()
    }
}

/// [`StaticDns`] has no address for this host (it is neither an IPv4 literal nor in the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownHost;

impl core::fmt::Display for UnknownHost {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("host is not an IPv4 literal and not in the static host table")
    }
}

impl core::error::Error for UnknownHost {}

impl Dns for StaticDns<'_> {
    type Error = UnknownHost;

    /// The address of `host` (see [`resolve`](StaticDns::resolve)). An address of the other
    /// family than `addr_type` asks for is an error.
    async fn get_host_by_name(
        &self,
        host: &str,
        addr_type: AddrType,
    ) -> Result<IpAddr, UnknownHost> {
        let ip = self.resolve(host)?;
        match (addr_type, ip) {
            (AddrType::IPv4, IpAddr::V6(_)) | (AddrType::IPv6, IpAddr::V4(_)) => Err(UnknownHost),
            _ => Ok(ip),
        }
    }

    /// Reverse lookups are not supported: always [`UnknownHost`].
    async fn get_host_by_address(
        &self,
        _addr: IpAddr,
        _result: &mut [u8],
    ) -> Result<usize, UnknownHost> {
        Err(UnknownHost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 42, 0, 1));
    const V6: IpAddr = IpAddr::V6(core::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7));

    fn block_on<F: core::future::Future>(f: F) -> F::Output {
        let mut f = core::pin::pin!(f);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            core::task::Poll::Ready(v) => v,
            core::task::Poll::Pending => panic!("StaticDns never waits"),
        }
    }

    #[test]
    fn literals_resolve_to_themselves() {
        let dns = StaticDns::literals();
        assert_eq!(dns.resolve("10.42.0.1"), Ok(GW));
        // IPv6 literals are not parsed: IPv6 servers go in the table.
        for bad in [
            "auth.lan",
            "",
            "10.42.0",
            "10.42.0.256",
            "fd00::7",
            "[fd00::7]",
            "[]",
        ] {
            assert_eq!(dns.resolve(bad), Err(UnknownHost), "{bad}");
        }
    }

    #[test]
    fn names_come_from_the_table_case_insensitively() {
        let hosts = [("auth.lan", GW), ("api.lan.", V6)];
        let dns = StaticDns::new(&hosts);
        assert_eq!(dns.resolve("auth.lan"), Ok(GW));
        assert_eq!(dns.resolve("AUTH.Lan."), Ok(GW));
        assert_eq!(dns.resolve("api.lan"), Ok(V6));
        assert_eq!(dns.resolve("auth.lan.example"), Err(UnknownHost));
        assert_eq!(dns.resolve("uth.lan"), Err(UnknownHost));
        // A literal wins over the table, and is never looked up in it.
        assert_eq!(
            dns.resolve("192.0.2.1"),
            Ok(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)))
        );
    }

    #[test]
    fn the_dns_trait_checks_the_address_family() {
        let hosts = [("auth.lan", GW)];
        let dns = StaticDns::new(&hosts);
        assert_eq!(
            block_on(dns.get_host_by_name("auth.lan", AddrType::Either)),
            Ok(GW)
        );
        assert_eq!(
            block_on(dns.get_host_by_name("auth.lan", AddrType::IPv4)),
            Ok(GW)
        );
        assert_eq!(
            block_on(dns.get_host_by_name("auth.lan", AddrType::IPv6)),
            Err(UnknownHost)
        );
        let hosts = [("v6.lan", V6)];
        let dns = StaticDns::new(&hosts);
        assert_eq!(
            block_on(dns.get_host_by_name("v6.lan", AddrType::IPv6)),
            Ok(V6)
        );
        assert_eq!(
            block_on(dns.get_host_by_name("v6.lan", AddrType::IPv4)),
            Err(UnknownHost)
        );
        assert_eq!(
            block_on(dns.get_host_by_name("nowhere", AddrType::Either)),
            Err(UnknownHost)
        );
        let mut buf = [0u8; 64];
        assert_eq!(
            block_on(dns.get_host_by_address(GW, &mut buf)),
            Err(UnknownHost)
        );
    }
}
