//! alf on a Cortex-M4F: one OAuth 2.0 client credentials client, in a `static`, calling an API
//! in a loop over embassy-net.
//!
//! - embassy-executor (thread mode) and an embassy-time driver on SysTick (`time_driver.rs`);
//! - embassy-net with TCP over a network driver without a wire (`no_wire.rs`): there is no
//!   NIC on a generic Cortex-M, and the point is a realistic link, not a run. By default the
//!   minimal build: a static IPv4 address (`ALF_DEVICE_IPV4`) and no DNS (`alf_reqwless::StaticDns`:
//!   the URLs hold IP literals); with the `dhcp-dns` feature, DHCP and DNS (embassy-net's
//!   `DnsSocket`), as on most networks;
//! - alf's `Client` over `alf_reqwless::ReqwlessTransport` (reqwless, plain HTTP) and
//!   `EmbassyClock`, with alf's default capacities (2 KiB token, 4 KiB token responses).
//!
//! Credentials and URLs are read when building (`option_env!`), never written in the source:
//!
//! ```text
//! ALF_TOKEN_ENDPOINT=http://auth.lan/token ALF_CLIENT_ID=dev-17 ALF_CLIENT_SECRET=... \
//!     ALF_API_URL=http://api.lan/v1/report cargo build --release
//! ```
//!
//! Every buffer whose size is the user's choice is a named `static` (`TCP_STATE`, `API_RX`) or
//! a parameter of the client type (its `RX`), so that `examples/size-report.sh` can tell them
//! apart from the rest of the RAM.

#![no_std]
#![no_main]

#[macro_use]
mod settings;
mod no_wire;
mod time_driver;

use alf::http::{Method, Request};
use alf::{Client, Config};
use alf_reqwless::{EmbassyClock, ReqwlessTransport};
use embassy_executor::Spawner;
#[cfg(feature = "dhcp-dns")]
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, StackResources};
use embassy_time::{Duration, Timer};
use static_cell::{ConstStaticCell, StaticCell};

#[cfg(not(feature = "defmt"))]
use panic_halt as _;
#[cfg(feature = "defmt")]
use {defmt_rtt as _, panic_probe as _};

use no_wire::NoWire;
use settings::{CLIENT_ID, CLIENT_SECRET, SCOPE, TOKEN_ENDPOINT};

/// The API to call (`ALF_API_URL`).
const API_URL: &str = setting!("ALF_API_URL", "http://10.42.0.1:8080/api/hello");

// The user's buffers. One TCP socket is enough: alf sends one request at a time per client.
/// TCP sockets the client may hold at once.
const SOCKETS: usize = 1;
/// Each socket's transmit buffer.
const SOCKET_TX: usize = 1024;
/// Each socket's receive buffer.
const SOCKET_RX: usize = 1024;
/// The API response buffer passed to `send` (headers and body with reqwless).
const API_RX_LEN: usize = 1024;

type Tcp = TcpClient<'static, SOCKETS, SOCKET_TX, SOCKET_RX>;
#[cfg(feature = "dhcp-dns")]
type Resolver = DnsSocket<'static>;
#[cfg(not(feature = "dhcp-dns"))]
type Resolver = alf_reqwless::StaticDns<'static>;
type Transport = ReqwlessTransport<'static, Tcp, Resolver>;
/// alf's defaults: `NoStore`, 2 KiB token capacity, 4 KiB buffer for token responses.
type OAuthClient = Client<Transport, EmbassyClock>;

static TCP_STATE: ConstStaticCell<TcpClientState<SOCKETS, SOCKET_TX, SOCKET_RX>> =
    ConstStaticCell::new(TcpClientState::new());
static API_RX: ConstStaticCell<[u8; API_RX_LEN]> = ConstStaticCell::new([0; API_RX_LEN]);

/// The stack's sockets: the TCP socket, plus DNS and DHCP with `dhcp-dns`.
#[cfg(feature = "dhcp-dns")]
const STACK_SOCKETS: usize = 3;
#[cfg(not(feature = "dhcp-dns"))]
const STACK_SOCKETS: usize = 1;
static RESOURCES: ConstStaticCell<StackResources<STACK_SOCKETS>> =
    ConstStaticCell::new(StackResources::new());
static TCP: StaticCell<Tcp> = StaticCell::new();
static DNS: StaticCell<Resolver> = StaticCell::new();
static CLIENT: StaticCell<OAuthClient> = StaticCell::new();

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, NoWire>) -> ! {
    runner.run().await
}

/// Calls the API once a minute; alf fetches and renews the token as needed.
#[embassy_executor::task]
async fn api_task(client: &'static OAuthClient) -> ! {
    let rx = API_RX.take();
    let headers = [("Accept", "application/json")];
    let request = Request::new(Method::Get, API_URL).headers(&headers);
    loop {
        match client.send(&request, rx).await {
            Ok(response) => log!(
                info,
                "API: {} ({} bytes)",
                response.status,
                response.body.len()
            ),
            Err(e) => log!(warn, "API call failed: {}", e),
        }
        Timer::after(Duration::from_secs(60)).await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let core = cortex_m::Peripherals::take().expect("core peripherals, taken once");
    time_driver::start(core.SYST);
    log!(info, "alf firmware: token endpoint {}", TOKEN_ENDPOINT);

    // A fixed seed for smoltcp's port and sequence numbers: use the chip's RNG on a product.
    let seed = 0x0123_4567_89ab_cdef;
    let (stack, runner) = embassy_net::new(
        NoWire::new([0x02, 0x00, 0x00, 0x00, 0x00, 0x17]),
        network_config(),
        RESOURCES.take(),
        seed,
    );
    spawner.spawn(net_task(runner).expect("spawn the network task"));

    let tcp: &'static Tcp = TCP.init(TcpClient::new(stack, TCP_STATE.take()));
    #[cfg(feature = "dhcp-dns")]
    let dns: &'static Resolver = DNS.init(DnsSocket::new(stack));
    // No DNS: the URLs hold IP literals (a table of names is possible: `StaticDns::new`).
    #[cfg(not(feature = "dhcp-dns"))]
    let dns: &'static Resolver = DNS.init(alf_reqwless::StaticDns::literals());
    let transport = ReqwlessTransport::new(tcp, dns).with_timeout(Duration::from_secs(10));

    let config = Config::builder(TOKEN_ENDPOINT, CLIENT_ID, CLIENT_SECRET)
        .scope(SCOPE)
        .build()
        .expect("valid alf configuration");
    let client: &'static OAuthClient =
        CLIENT.init_with(|| Client::new(config, transport, EmbassyClock::new()));

    stack.wait_config_up().await;
    log!(info, "network up");
    spawner.spawn(api_task(client).expect("spawn the API task"));
}

/// DHCP (`dhcp-dns`), or the static address `settings::DEVICE_IPV4`.
#[cfg(feature = "dhcp-dns")]
fn network_config() -> embassy_net::Config {
    embassy_net::Config::dhcpv4(Default::default())
}

/// DHCP (`dhcp-dns`), or the static address `settings::DEVICE_IPV4`.
#[cfg(not(feature = "dhcp-dns"))]
fn network_config() -> embassy_net::Config {
    use embassy_net::{Ipv4Address, Ipv4Cidr, StaticConfigV4};
    let ([a, b, c, d], prefix) = settings::DEVICE_IPV4;
    embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), prefix),
        // Same subnet as the servers in the default URLs: no gateway needed.
        gateway: None,
        dns_servers: Default::default(),
    })
}
