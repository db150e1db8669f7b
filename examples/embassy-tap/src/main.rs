//! alf-reqwless on the host: the embassy executor, embassy-net over a TAP device, and one
//! alf client shared by several tasks. The same code runs on a microcontroller with a
//! different network driver and time driver.
//!
//! The stack is 10.42.0.2/24 on `tap0`; the token endpoint and the API are at 10.42.0.1. Run
//! it inside a network namespace that holds only `lo` and `tap0`, so that nothing leaves the
//! machine (see "embassy-net on a host" in alf's design notes):
//!
//! ```text
//! ip netns exec alf-tap <token server and API on 10.42.0.1:8080> &
//! ip netns exec alf-tap env RUST_LOG=debug cargo run --release
//! ```
//!
//! Environment (all optional): `ALF_TAP` (default `tap0`), `ALF_TOKEN_URL` (default
//! `http://10.42.0.1:8080/token`), `ALF_API_URL` (default `http://10.42.0.1:8080/api/hello`),
//! `ALF_CLIENT_ID`, `ALF_CLIENT_SECRET`, `ALF_SCOPE`, `ALF_ROUNDS` (requests per worker,
//! default 3).

use alf::http::{Method, Request};
use alf::{Client, Config};
use alf_reqwless::{EmbassyClock, ReqwlessTransport};
use embassy_executor::Spawner;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Ipv4Address, Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Duration, Timer};
use static_cell::StaticCell;

/// alf sends one request at a time through a client, so one TCP socket is enough.
type Tcp = TcpClient<'static, 1, 1024, 1024>;
type Transport = ReqwlessTransport<'static, Tcp, DnsSocket<'static>>;
type OAuthClient = Client<Transport, EmbassyClock>;

const WORKERS: usize = 3;

fn env(name: &str, default: &str) -> &'static str {
    // Leaked once at start-up: tasks take `'static` arguments.
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .leak()
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, TunTapDevice>) -> ! {
    runner.run().await
}

/// Keeps the token fresh in the background, so that workers never wait for one.
#[embassy_executor::task]
async fn refresher(client: &'static OAuthClient) {
    client.keep_fresh().await;
}

/// Calls the API a few times. All workers share one client, hence one token and one fetch.
#[embassy_executor::task(pool_size = WORKERS)]
async fn worker(id: usize, client: &'static OAuthClient, api: &'static str, rounds: u32) {
    for round in 0..rounds {
        let mut rx = [0u8; 1024];
        match client.send(&Request::new(Method::Get, api), &mut rx).await {
            Ok(r) => {
                let body = core::str::from_utf8(r.body).unwrap_or("<binary>");
                println!("worker {id} round {round}: {} {body}", r.status);
            }
            Err(e) => println!(
                "worker {id} round {round}: failed: {e} (kind {:?})",
                e.kind()
            ),
        }
        Timer::after(Duration::from_millis(500 * (id as u64 + 1))).await;
    }
    println!("worker {id}: done");
    if id == 0 {
        // Give the others time to finish, then end the program.
        Timer::after(Duration::from_secs(3)).await;
        std::process::exit(0);
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    env_logger::init();

    let device = TunTapDevice::new(env("ALF_TAP", "tap0"))
        .expect("open the TAP device (run inside the namespace)");
    let net_config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(Ipv4Address::new(10, 42, 0, 2), 24),
        gateway: Some(Ipv4Address::new(10, 42, 0, 1)),
        dns_servers: heapless::Vec::new(),
    });
    static RESOURCES: StaticCell<StackResources<4>> = StaticCell::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (stack, runner) = embassy_net::new(
        device,
        net_config,
        RESOURCES.init(StackResources::new()),
        seed,
    );
    spawner.spawn(net_task(runner).expect("spawn the network task"));
    stack.wait_config_up().await;
    println!("network up: {:?}", stack.config_v4());

    static TCP_STATE: StaticCell<TcpClientState<1, 1024, 1024>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let dns = DNS.init(DnsSocket::new(stack));
    let transport = ReqwlessTransport::new(&*tcp, &*dns).with_timeout(Duration::from_secs(10));

    let config = Config::builder(
        env("ALF_TOKEN_URL", "http://10.42.0.1:8080/token"),
        env("ALF_CLIENT_ID", "device-17"),
        env("ALF_CLIENT_SECRET", "device-17-secret"),
    )
    .scope(env("ALF_SCOPE", "telemetry:write"))
    .build()
    .expect("valid alf configuration");

    // The wall clock is only needed for a shared token store and `Retry-After` dates; a
    // device would set it after SNTP. Here the host knows it.
    let clock = EmbassyClock::new();
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        clock.set_unix_time(now.as_secs());
    }
    static CLIENT: StaticCell<OAuthClient> = StaticCell::new();
    let client: &'static OAuthClient = CLIENT.init(Client::new(config, transport, clock));

    let api = env("ALF_API_URL", "http://10.42.0.1:8080/api/hello");
    let rounds = env("ALF_ROUNDS", "3").parse().unwrap_or(3);
    spawner.spawn(refresher(client).expect("spawn the refresher"));
    for id in 0..WORKERS {
        spawner.spawn(worker(id, client, api, rounds).expect("spawn a worker"));
    }
}
