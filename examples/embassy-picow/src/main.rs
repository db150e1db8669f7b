//! alf on a Raspberry Pi Pico W over Wi-Fi: one OAuth 2.0 client credentials client, in a
//! `static`, calling an API once a minute. The on-board LED shows the last call: on after a
//! 2xx, off otherwise.
//!
//! - embassy-rp (its executor platform is embassy-executor's `platform-cortex-m`; its time
//!   driver is the RP2040 timer);
//! - the CYW43439 Wi-Fi chip through `cyw43` over PIO SPI, with the firmware blobs of the
//!   `cyw43-firmware` crate, as embassy-net's driver; DHCP, DNS and TCP from embassy-net;
//! - alf's `Client` over `alf_reqwless::ReqwlessTransport` (plain HTTP) and `EmbassyClock`,
//!   with alf's default capacities.
//!
//! Wi-Fi and OAuth settings are read when building (`option_env!`), never written in the
//! source:
//!
//! ```text
//! WIFI_SSID=... WIFI_PASSWORD=... ALF_TOKEN_ENDPOINT=http://auth.lan/token \
//!     ALF_CLIENT_ID=dev-17 ALF_CLIENT_SECRET=... ALF_API_URL=http://api.lan/v1/report \
//!     cargo build --release
//! ```
//!
//! Plain HTTP sends the client secret in clear text: use it only on a network you trust, or
//! read alf-reqwless's TLS section before enabling its `tls` feature.

#![no_std]
#![no_main]

use alf::http::{Method, Request};
use alf::{Client, Config};
use alf_reqwless::{EmbassyClock, ReqwlessTransport};
use cyw43::JoinOptions;
use cyw43_pio::{DEFAULT_CLOCK_DIVIDER, PioSpi};
use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, Stack, StackResources};
use embassy_rp::bind_interrupts;
use embassy_rp::clocks::RoscRng;
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{DMA_CH0, PIO0};
use embassy_rp::pio::{InterruptHandler, Pio};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Timer};
use panic_halt as _;
use static_cell::{ConstStaticCell, StaticCell};

bind_interrupts!(struct Irqs {
    PIO0_IRQ_0 => InterruptHandler<PIO0>;
});

/// Build-time setting `$name`, or `$default` when it is not set.
macro_rules! setting {
    ($name:literal, $default:literal) => {
        match option_env!($name) {
            Some(value) => value,
            None => $default,
        }
    };
}

const WIFI_SSID: &str = setting!("WIFI_SSID", "alf-example");
const WIFI_PASSWORD: &str = setting!("WIFI_PASSWORD", "");
const TOKEN_ENDPOINT: &str = setting!("ALF_TOKEN_ENDPOINT", "http://192.168.1.10:8080/token");
const CLIENT_ID: &str = setting!("ALF_CLIENT_ID", "example-device");
const CLIENT_SECRET: &str = setting!("ALF_CLIENT_SECRET", "not-a-secret");
const SCOPE: &str = setting!("ALF_SCOPE", "telemetry:write");
const API_URL: &str = setting!("ALF_API_URL", "http://192.168.1.10:8080/api/hello");

// The user's buffers, as in `examples/embassy-firmware`.
const SOCKETS: usize = 1;
const SOCKET_TX: usize = 1024;
const SOCKET_RX: usize = 1024;
const API_RX_LEN: usize = 1024;

type Tcp = TcpClient<'static, SOCKETS, SOCKET_TX, SOCKET_RX>;
type Transport = ReqwlessTransport<'static, Tcp, DnsSocket<'static>>;
type OAuthClient = Client<Transport, EmbassyClock>;
type WifiBus = PioSpi<'static, PIO0, 0, DMA_CH0>;

static TCP_STATE: ConstStaticCell<TcpClientState<SOCKETS, SOCKET_TX, SOCKET_RX>> =
    ConstStaticCell::new(TcpClientState::new());
static API_RX: ConstStaticCell<[u8; API_RX_LEN]> = ConstStaticCell::new([0; API_RX_LEN]);
static RESOURCES: ConstStaticCell<StackResources<3>> = ConstStaticCell::new(StackResources::new());
static WIFI_STATE: StaticCell<cyw43::State> = StaticCell::new();
static TCP: StaticCell<Tcp> = StaticCell::new();
static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
static CLIENT: StaticCell<OAuthClient> = StaticCell::new();
/// The outcome of the last API call, for the LED (which the Wi-Fi chip drives).
static LAST_CALL_OK: Signal<CriticalSectionRawMutex, bool> = Signal::new();

/// Talks to the Wi-Fi chip: runs for ever.
#[embassy_executor::task]
async fn wifi_runner_task(runner: cyw43::Runner<'static, Output<'static>, WifiBus>) -> ! {
    runner.run().await
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, cyw43::NetDriver<'static>>) -> ! {
    runner.run().await
}

/// Calls the API once a minute; alf fetches and renews the token as needed.
#[embassy_executor::task]
async fn api_task(stack: Stack<'static>, client: &'static OAuthClient) -> ! {
    let rx = API_RX.take();
    let headers = [("Accept", "application/json")];
    let request = Request::new(Method::Get, API_URL).headers(&headers);
    loop {
        stack.wait_config_up().await;
        let ok = matches!(client.send(&request, rx).await, Ok(r) if (200..300).contains(&r.status));
        LAST_CALL_OK.signal(ok);
        Timer::after(Duration::from_secs(60)).await;
    }
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());

    // The CYW43439 on the Pico W: power on GPIO 23, SPI over PIO on GPIO 24/25/29.
    let power = Output::new(p.PIN_23, Level::Low);
    let cs = Output::new(p.PIN_25, Level::High);
    let mut pio = Pio::new(p.PIO0, Irqs);
    let bus = PioSpi::new(
        &mut pio.common,
        pio.sm0,
        DEFAULT_CLOCK_DIVIDER,
        pio.irq0,
        cs,
        p.PIN_24,
        p.PIN_29,
        p.DMA_CH0,
    );
    let state = WIFI_STATE.init(cyw43::State::new());
    let (device, mut control, runner) =
        cyw43::new(state, power, bus, cyw43_firmware::CYW43_43439A0).await;
    spawner.spawn(wifi_runner_task(runner).expect("spawn the Wi-Fi runner"));
    control.init(cyw43_firmware::CYW43_43439A0_CLM).await;
    control
        .set_power_management(cyw43::PowerManagementMode::PowerSave)
        .await;

    let seed = RoscRng.next_u64();
    let (stack, runner) = embassy_net::new(
        device,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.take(),
        seed,
    );
    spawner.spawn(net_task(runner).expect("spawn the network task"));

    let tcp: &'static Tcp = TCP.init(TcpClient::new(stack, TCP_STATE.take()));
    let dns: &'static DnsSocket<'static> = DNS.init(DnsSocket::new(stack));
    let transport = ReqwlessTransport::new(tcp, dns).with_timeout(Duration::from_secs(10));
    let config = Config::builder(TOKEN_ENDPOINT, CLIENT_ID, CLIENT_SECRET)
        .scope(SCOPE)
        // Spread the retries of a fleet of devices: seed the jitter from the ring oscillator.
        .jitter_seed(seed)
        .build()
        .expect("valid alf configuration");
    let client: &'static OAuthClient =
        CLIENT.init_with(|| Client::new(config, transport, EmbassyClock::new()));
    spawner.spawn(api_task(stack, client).expect("spawn the API task"));

    loop {
        // Join the access point whenever the link is down.
        if !stack.is_link_up() {
            let options = if WIFI_PASSWORD.is_empty() {
                JoinOptions::new_open()
            } else {
                JoinOptions::new(WIFI_PASSWORD.as_bytes())
            };
            if control.join(WIFI_SSID, options).await.is_err() {
                Timer::after(Duration::from_secs(5)).await;
                continue;
            }
        }
        // Show the last API call on the LED; look at the link again every 10 s.
        if let Either::First(ok) =
            select(LAST_CALL_OK.wait(), Timer::after(Duration::from_secs(10))).await
        {
            control.gpio_set(0, ok).await;
        }
    }
}
