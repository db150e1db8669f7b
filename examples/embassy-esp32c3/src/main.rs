//! alf on an ESP32-C3 over Wi-Fi: one OAuth 2.0 client credentials client, in a `static`,
//! calling an API once a minute.
//!
//! - esp-hal, with esp-rtos as the scheduler (an embassy executor on its main thread, and the
//!   embassy-time driver);
//! - esp-radio's Wi-Fi station as embassy-net's driver; DHCP, DNS and TCP from embassy-net;
//! - alf's `Client` over `alf_reqwless::ReqwlessTransport` (plain HTTP) and `EmbassyClock`,
//!   with alf's default capacities.
//!
//! Wi-Fi and OAuth settings are read when building (`option_env!`), never written in the
//! source:
//!
//! ```text
//! WIFI_SSID=... WIFI_PASSWORD=... ALF_TOKEN_ENDPOINT=http://auth.lan/token \
//!     ALF_CLIENT_ID=dev-17 ALF_CLIENT_SECRET=... ALF_API_URL=http://api.lan/v1/report \
//!     cargo run --release
//! ```
//!
//! Plain HTTP sends the client secret in clear text: use it only on a network you trust, or
//! read alf-reqwless's TLS section before enabling its `tls` feature.

#![no_std]
#![no_main]

use alf::http::{Method, Request};
use alf::{Client, Config};
use alf_reqwless::{EmbassyClock, ReqwlessTransport};
use embassy_executor::Spawner;
use embassy_net::dns::DnsSocket;
use embassy_net::tcp::client::{TcpClient, TcpClientState};
use embassy_net::{Runner, StackResources};
use embassy_time::{Duration, Timer};
use esp_hal::clock::CpuClock;
use esp_hal::rng::Rng;
use esp_hal::timer::timg::TimerGroup;
use esp_println::println;
use esp_radio::wifi::sta::StationConfig;
use esp_radio::wifi::{AuthenticationMethodConfig, Interface, WifiController};
use static_cell::{ConstStaticCell, StaticCell};

esp_bootloader_esp_idf::esp_app_desc!();

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

static TCP_STATE: ConstStaticCell<TcpClientState<SOCKETS, SOCKET_TX, SOCKET_RX>> =
    ConstStaticCell::new(TcpClientState::new());
static API_RX: ConstStaticCell<[u8; API_RX_LEN]> = ConstStaticCell::new([0; API_RX_LEN]);
static RESOURCES: ConstStaticCell<StackResources<3>> = ConstStaticCell::new(StackResources::new());
static TCP: StaticCell<Tcp> = StaticCell::new();
static DNS: StaticCell<DnsSocket<'static>> = StaticCell::new();
static CLIENT: StaticCell<OAuthClient> = StaticCell::new();

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {}", info);
    loop {}
}

/// Joins the access point, and joins it again whenever the link drops.
#[embassy_executor::task]
async fn wifi_task(mut controller: WifiController<'static>) -> ! {
    let password = match WIFI_PASSWORD.try_into() {
        Ok(password) => password,
        Err(_) => panic!("WIFI_PASSWORD is longer than 64 bytes"),
    };
    let auth = if WIFI_PASSWORD.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        AuthenticationMethodConfig::Wpa2Personal(password)
    };
    let ssid = match WIFI_SSID.try_into() {
        Ok(ssid) => ssid,
        Err(_) => panic!("WIFI_SSID is longer than 32 bytes"),
    };
    let config = esp_radio::wifi::Config::Station(
        StationConfig::default()
            .with_ssid(ssid)
            .with_authentication(auth),
    );
    loop {
        if let Err(e) = controller.set_config(&config) {
            println!("Wi-Fi configuration failed: {:?}", e);
        } else {
            match controller.connect_async().await {
                Ok(_) => {
                    println!("Wi-Fi connected to {}", WIFI_SSID);
                    let _ = controller.wait_for_disconnect_async().await;
                    println!("Wi-Fi disconnected");
                }
                Err(e) => println!("Wi-Fi connection failed: {:?}", e),
            }
        }
        Timer::after(Duration::from_secs(5)).await;
    }
}

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
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
            Ok(response) => println!("API: {} ({} bytes)", response.status, response.body.len()),
            Err(e) => println!("API call failed: {}", e),
        }
        Timer::after(Duration::from_secs(60)).await;
    }
}

#[esp_rtos::main]
async fn main(spawner: Spawner) {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    // The Wi-Fi driver's heap: the RAM the second-stage bootloader used, and some more.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 32 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    let controller = match WifiController::new(peripherals.WIFI, Default::default()) {
        Ok(controller) => controller,
        Err(e) => panic!("Wi-Fi start failed: {:?}", e),
    };
    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    let (stack, runner) = embassy_net::new(
        Interface::station(),
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.take(),
        seed,
    );
    spawner.spawn(wifi_task(controller).expect("spawn the Wi-Fi task"));
    spawner.spawn(net_task(runner).expect("spawn the network task"));

    let tcp: &'static Tcp = TCP.init(TcpClient::new(stack, TCP_STATE.take()));
    let dns: &'static DnsSocket<'static> = DNS.init(DnsSocket::new(stack));
    let transport = ReqwlessTransport::new(tcp, dns).with_timeout(Duration::from_secs(10));
    let config = Config::builder(TOKEN_ENDPOINT, CLIENT_ID, CLIENT_SECRET)
        .scope(SCOPE)
        // Spread the retries of a fleet of devices: seed the jitter from the hardware RNG.
        .jitter_seed(seed)
        .build()
        .expect("valid alf configuration");
    let client: &'static OAuthClient =
        CLIENT.init_with(|| Client::new(config, transport, EmbassyClock::new()));

    stack.wait_config_up().await;
    if let Some(v4) = stack.config_v4() {
        println!("network up: {}", v4.address);
    }
    spawner.spawn(api_task(client).expect("spawn the API task"));
}
