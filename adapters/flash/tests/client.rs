//! `alf::Client` with a `FlashStore`: a device that reboots (a new client over the same
//! flash) reuses its token when it knows the wall time, and fetches otherwise.

mod support;

use alf::testing::{Expect, MockClock, ScriptedTransport};
use alf::{Client, Config, StoredToken, TokenStore};
use alf_flash::FlashStore;
use embassy_futures::block_on;
use support::{MockFlash, XorShift};

const EP: &str = "https://auth.example.com/token";
/// Wall time at the first boot.
const T0: u64 = 1_750_000_000;
const TOKEN_A: &[u8] = br#"{"access_token":"token-a","token_type":"Bearer","expires_in":3600}"#;
const TOKEN_B: &[u8] = br#"{"access_token":"token-b","token_type":"Bearer","expires_in":3600}"#;

/// 16 KiB of flash in 4 KiB pages; the store uses all of it.
type Flash = MockFlash<4, 4096>;
type Device<'a> = Client<ScriptedTransport<4>, &'a MockClock, FlashStore<&'a mut Flash, 2048>>;

fn config(client_id: &str) -> Config {
    Config::builder(EP, client_id, "secret")
        .scope("telemetry:write")
        .build()
        .unwrap()
}

/// A clock just after boot (monotonic time 0) that knows the wall time, or not.
fn clock(unix: Option<u64>) -> MockClock {
    let c = MockClock::new();
    c.set_unix_time(unix);
    c
}

fn transport(replies: &[&'static [u8]]) -> ScriptedTransport<4> {
    let mut t = ScriptedTransport::new();
    for body in replies {
        t.expect(Expect::post(EP).respond(200, body));
    }
    t
}

/// Boot: a new client over `flash`; get a token; return it and how many token requests it
/// took.
fn boot(
    flash: &mut Flash,
    client_id: &str,
    clock: &MockClock,
    replies: &[&'static [u8]],
) -> (String, usize) {
    let store = FlashStore::new(flash, 0..4 * 4096).unwrap();
    let device: Device<'_> =
        Client::with_store(config(client_id), transport(replies), clock, store);
    let token = block_on(device.token()).unwrap().token.secret().to_owned();
    block_on(device.with_transport(|t| t.done()));
    (token, block_on(device.with_transport(|t| t.sent())))
}

#[test]
fn a_rebooted_device_with_a_wall_clock_reuses_its_token_without_a_request() {
    let mut flash = Flash::new(4);
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]),
        ("token-a".into(), 1)
    );
    let written = flash.stats;
    assert!(written.writes > 0);

    // Ten minutes later, after a reboot (or deep sleep): no request, and nothing written.
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 600)), &[]),
        ("token-a".into(), 0)
    );
    assert_eq!(
        flash.stats.mutations(),
        written.mutations(),
        "a boot that reuses the token wrote to flash"
    );
    // And again.
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 1_200)), &[]),
        ("token-a".into(), 0)
    );
}

#[test]
fn without_a_wall_clock_the_device_fetches() {
    let mut flash = Flash::new(4);
    boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]);
    let before = flash.stats;
    // No RTC, no SNTP yet: the stored expiry cannot be checked, so it is not used.
    assert_eq!(
        boot(&mut flash, "device-42", &clock(None), &[TOKEN_B]),
        ("token-b".into(), 1)
    );
    // Nor is the flash touched: alf uses a store only with a wall clock.
    assert_eq!(flash.stats.mutations(), before.mutations());
    assert_eq!(flash.stats.reads, before.reads);
    // The token on flash is still token-a, good until T0 + 3600.
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 60)), &[]),
        ("token-a".into(), 0)
    );
}

#[test]
fn an_expired_stored_token_is_not_used() {
    let mut flash = Flash::new(4);
    boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]);
    // One hour and ten seconds later token-a has expired: fetch, and save the new one.
    assert_eq!(
        boot(
            &mut flash,
            "device-42",
            &clock(Some(T0 + 3_610)),
            &[TOKEN_B]
        ),
        ("token-b".into(), 1)
    );
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 3_700)), &[]),
        ("token-b".into(), 0)
    );
}

#[test]
fn a_token_saved_by_hand_with_a_past_expiry_is_not_used() {
    let mut flash = Flash::new(4);
    {
        let mut store: FlashStore<_, 2048> = FlashStore::new(&mut flash, 0..4 * 4096).unwrap();
        let key = config("device-42").store_key();
        let stale = StoredToken {
            access_token: "stale-token",
            expires_at_unix_ms: (T0 - 1) * 1000,
        };
        block_on(store.save(&key, stale)).unwrap();
    }
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]),
        ("token-a".into(), 1)
    );
}

#[test]
fn a_refreshed_token_is_saved_for_the_next_boot() {
    let mut flash = Flash::new(4);
    let c = clock(Some(T0));
    {
        let store = FlashStore::new(&mut flash, 0..4 * 4096).unwrap();
        let device: Device<'_> = Client::with_store(
            config("device-42"),
            transport(&[TOKEN_A, TOKEN_B]),
            &c,
            store,
        );
        assert_eq!(block_on(device.access_token()).unwrap().secret(), "token-a");
        // Just before expiry the client refreshes, and saves the new token.
        c.advance_ms(3_590_000);
        assert_eq!(block_on(device.access_token()).unwrap().secret(), "token-b");
        block_on(device.with_transport(|t| t.done()));
    }
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 3_600)), &[]),
        ("token-b".into(), 0)
    );
}

#[test]
fn forget_token_clears_the_flash() {
    let mut flash = Flash::new(4);
    {
        let c = clock(Some(T0));
        let store = FlashStore::new(&mut flash, 0..4 * 4096).unwrap();
        let device: Device<'_> =
            Client::with_store(config("device-42"), transport(&[TOKEN_A]), &c, store);
        block_on(device.token()).unwrap();
        block_on(device.forget_token());
    }
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 60)), &[TOKEN_B]),
        ("token-b".into(), 1)
    );
}

#[test]
fn another_client_configuration_does_not_get_the_token() {
    let mut flash = Flash::new(4);
    boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]);
    assert_eq!(
        boot(&mut flash, "device-43", &clock(Some(T0 + 60)), &[TOKEN_B]),
        ("token-b".into(), 1)
    );
    // Both live side by side.
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 120)), &[]),
        ("token-a".into(), 0)
    );
    assert_eq!(
        boot(&mut flash, "device-43", &clock(Some(T0 + 120)), &[]),
        ("token-b".into(), 0)
    );
}

#[test]
fn flash_errors_never_fail_a_request() {
    let mut flash = Flash::new(4);
    boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]);

    // The flash cannot be read: fetch.
    flash.fail.reads = true;
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 60)), &[TOKEN_B]),
        ("token-b".into(), 1)
    );
    flash.reboot();

    // The flash cannot be written: fetch, and the failed save does not fail the request.
    flash.fail.writes = true;
    flash.fail.erases = true;
    assert_eq!(
        boot(
            &mut flash,
            "device-42",
            &clock(Some(T0 + 3_700)),
            &[TOKEN_B]
        ),
        ("token-b".into(), 1)
    );
    flash.reboot();
    // token-b was never written: token-a (expired) is there, so fetch once more.
    assert_eq!(
        boot(
            &mut flash,
            "device-42",
            &clock(Some(T0 + 3_800)),
            &[TOKEN_B]
        ),
        ("token-b".into(), 1)
    );
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 3_900)), &[]),
        ("token-b".into(), 0)
    );
}

#[test]
fn garbage_on_flash_means_a_fetch_and_is_then_replaced() {
    let mut flash = Flash::new(4);
    XorShift(7).fill(&mut flash.mem);
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]),
        ("token-a".into(), 1)
    );
    assert_eq!(
        boot(&mut flash, "device-42", &clock(Some(T0 + 60)), &[]),
        ("token-a".into(), 0)
    );
}

#[test]
fn a_torn_save_means_a_fetch_at_the_next_boot() {
    // The power goes while the device saves its first token: at the next boot there is no
    // token (or a complete one), and the device fetches.
    let mut dry = Flash::new(4);
    boot(&mut dry, "device-42", &clock(Some(T0)), &[TOKEN_A]);
    let mutations = dry.stats.mutations();
    for at in 0..mutations {
        for bytes in [0, 3, 8, 40] {
            let mut flash = Flash::new(4);
            flash.cut_power(at, bytes);
            // The request itself succeeds: the failed save is only a warning.
            assert_eq!(
                boot(&mut flash, "device-42", &clock(Some(T0)), &[TOKEN_A]).0,
                "token-a"
            );
            flash.reboot();
            let c = clock(Some(T0 + 60));
            let store = FlashStore::new(&mut flash, 0..4 * 4096).unwrap();
            let device: Device<'_> =
                Client::with_store(config("device-42"), transport(&[TOKEN_B]), &c, store);
            let token = block_on(device.token()).unwrap().token.secret().to_owned();
            let sent = block_on(device.with_transport(|t| t.sent()));
            assert!(
                (token == "token-b" && sent == 1) || (token == "token-a" && sent == 0),
                "cut at {at}/{bytes}: {token} after {sent} request(s)"
            );
        }
    }
}
