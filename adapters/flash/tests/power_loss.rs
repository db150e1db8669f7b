//! Power loss and cancellation: cut the power at every write and erase of a `save` or a
//! `clear` (and at several points inside each), reboot, and load. The result must be the
//! previous token, the new one, or nothing: never another token, never a panic; and the store
//! must work again afterwards.

mod support;

use core::pin::pin;
use core::task::{Context, Poll, Waker};

use alf::{StoredToken, TokenStore};
use alf_flash::FlashStore;
use embassy_futures::block_on;
use support::{MockFlash, token};

const KEY: &str = "alf:00112233445566778899aabbccddeeff";
const OTHER: &str = "alf:ffeeddccbbaa99887766554433221100";

/// Where inside an operation the power goes: after this many bytes (the mock clamps to the
/// operation's length; the last one completes the operation and loses power right after).
const CUT_POINTS: &[usize] = &[0, 1, 3, 4, 5, 8, 9, 16, 64, 200, 600, usize::MAX];

type Entry = Option<(String, u64)>;

fn load<const W: usize, const E: usize, const N: usize>(
    flash: &mut MockFlash<W, E>,
    pages: u32,
    key: &str,
) -> Entry {
    let mut s: FlashStore<_, N> = FlashStore::new(flash, 0..pages * E as u32).unwrap();
    let mut buf = [0u8; 2048];
    match block_on(s.load(key, &mut buf)) {
        Ok(t) => t.map(|t| (t.access_token.to_owned(), t.expires_at_unix_ms)),
        Err(e) => panic!("load failed after a reboot: {e:?}"),
    }
}

fn save<const W: usize, const E: usize, const N: usize>(
    flash: &mut MockFlash<W, E>,
    pages: u32,
    key: &str,
    t: &str,
    exp: u64,
) -> bool {
    let mut s: FlashStore<_, N> = FlashStore::new(flash, 0..pages * E as u32).unwrap();
    block_on(s.save(
        key,
        StoredToken {
            access_token: t,
            expires_at_unix_ms: exp,
        },
    ))
    .is_ok()
}

fn clear<const W: usize, const E: usize, const N: usize>(
    flash: &mut MockFlash<W, E>,
    pages: u32,
    key: &str,
) -> bool {
    let mut s: FlashStore<_, N> = FlashStore::new(flash, 0..pages * E as u32).unwrap();
    block_on(s.clear(key)).is_ok()
}

#[derive(Clone, Copy)]
enum Op {
    Save,
    Clear,
}

/// Save `saves` tokens of `len` bytes in turn (with one token under another key saved first);
/// before each one, and for a clear at each point, cut the power at every mutation and
/// cut point, and check what a reboot finds.
fn sweep<const W: usize, const E: usize, const N: usize>(
    pages: u32,
    len: usize,
    saves: u64,
) -> Outcomes {
    let other = (token(1_000, 40), 9_999);
    let mut base = MockFlash::<W, E>::new(pages as usize);
    assert!(save::<W, E, N>(&mut base, pages, OTHER, &other.0, other.1));
    let mut previous: Entry = None;
    let mut seen = Outcomes::default();
    for i in 0..saves {
        let next = (token(i, len - (i as usize % 3) * 10), 1_000 + i);
        for op in [Op::Save, Op::Clear] {
            // How many mutations does the operation make, uninterrupted?
            let mut dry = base.clone();
            let before = dry.stats.mutations();
            match op {
                Op::Save => assert!(
                    save::<W, E, N>(&mut dry, pages, KEY, &next.0, next.1),
                    "save {i}"
                ),
                Op::Clear => assert!(clear::<W, E, N>(&mut dry, pages, KEY), "clear {i}"),
            }
            assert_eq!(dry.stats.rewrites, 0, "save {i}: a word written twice");
            let mutations = dry.stats.mutations() - before;
            for at in 0..mutations {
                for &bytes in CUT_POINTS {
                    let mut f = base.clone();
                    f.cut_power(at, bytes);
                    let ok = match op {
                        Op::Save => save::<W, E, N>(&mut f, pages, KEY, &next.0, next.1),
                        Op::Clear => clear::<W, E, N>(&mut f, pages, KEY),
                    };
                    assert!(
                        f.lost_power(),
                        "save {i}, mutation {at}: the cut did not happen"
                    );
                    assert!(
                        !ok,
                        "save {i}, mutation {at}: reported success without power"
                    );
                    f.reboot();
                    let ctx = format!(
                        "before save {i}, {:?} cut at mutation {at}/{mutations} byte {bytes}",
                        op as u8
                    );
                    let got = load::<W, E, N>(&mut f, pages, KEY);
                    let allowed = match op {
                        Op::Save => got.is_none() || got == previous || got.as_ref() == Some(&next),
                        Op::Clear => got.is_none() || got == previous,
                    };
                    assert!(allowed, "{ctx}: loaded {got:?}, previous {previous:?}");
                    match &got {
                        None => seen.nothing += 1,
                        Some(t) if Some(t) == previous.as_ref() => seen.previous += 1,
                        Some(_) => seen.new += 1,
                    }
                    let o = load::<W, E, N>(&mut f, pages, OTHER);
                    assert!(
                        o.is_none() || o.as_ref() == Some(&other),
                        "{ctx}: other key loaded {o:?}"
                    );
                    seen.rewrites += f.stats.rewrites;
                    // The store works again.
                    let again = (token(i + 500, len), 5_000 + i);
                    assert!(
                        save::<W, E, N>(&mut f, pages, KEY, &again.0, again.1),
                        "{ctx}: save after reboot"
                    );
                    assert_eq!(
                        load::<W, E, N>(&mut f, pages, KEY),
                        Some(again),
                        "{ctx}: load after recovery"
                    );
                    let o = load::<W, E, N>(&mut f, pages, OTHER);
                    assert!(
                        o.is_none() || o.as_ref() == Some(&other),
                        "{ctx}: other key after recovery {o:?}"
                    );
                }
            }
        }
        assert!(save::<W, E, N>(&mut base, pages, KEY, &next.0, next.1));
        previous = Some(next);
    }
    seen
}

/// What the loads after the cuts found.
#[derive(Debug, Default)]
struct Outcomes {
    previous: u32,
    new: u32,
    nothing: u32,
    /// Words written when not erased, during the cut operation or the recovery.
    rewrites: u32,
}

#[test]
fn power_loss_small_tokens_many_per_page() {
    // 4 KiB in 1 KiB pages, 4-byte words; ~4 entries per page, so pages fill, close, and get
    // erased with their live entries moved.
    let seen = sweep::<4, 1024, 512>(4, 200, 16);
    eprintln!("{seen:?}");
    // Each outcome happens: the sweep reaches every stage of a save and of a clear.
    assert!(
        seen.previous > 100 && seen.new > 100 && seen.nothing > 100,
        "{seen:?}"
    );
}

#[test]
fn power_loss_large_tokens_one_per_page() {
    // A token that fills most of a page: every save moves pages; with two pages the map is
    // full and the store falls back to erasing the range.
    eprintln!("{:?}", sweep::<4, 1024, 1024>(2, 900, 5));
    eprintln!("{:?}", sweep::<4, 1024, 1024>(3, 900, 6));
}

#[test]
fn power_loss_wide_words_small_pages() {
    // 8-byte words (as on STM32L4/G4), 256-byte pages.
    eprintln!("{:?}", sweep::<8, 256, 256>(4, 60, 14));
}

#[test]
fn power_loss_byte_words() {
    eprintln!("{:?}", sweep::<1, 512, 512>(3, 100, 12));
}

#[test]
fn a_cancelled_save_or_clear_leaves_the_previous_token_or_nothing() {
    const E: usize = 1024;
    let mut base = MockFlash::<4, E>::new(4);
    let mut previous: Entry = None;
    for i in 0..16u64 {
        let next = (token(i, 210), 100 + i);
        for at in 0..64 {
            for clearing in [false, true] {
                let mut f = base.clone();
                f.hang(at);
                let completed = {
                    let mut s: FlashStore<_, 512> =
                        FlashStore::new(&mut f, 0..4 * E as u32).unwrap();
                    let mut cx = Context::from_waker(Waker::noop());
                    if clearing {
                        let mut fut = pin!(s.clear(KEY));
                        matches!(fut.as_mut().poll(&mut cx), Poll::Ready(_))
                    } else {
                        let mut fut = pin!(s.save(
                            KEY,
                            StoredToken {
                                access_token: &next.0,
                                expires_at_unix_ms: next.1
                            }
                        ));
                        matches!(fut.as_mut().poll(&mut cx), Poll::Ready(_))
                    }
                    // The future is dropped here, in the middle of its flash operation.
                };
                f.reboot();
                let got = load::<4, E, 512>(&mut f, 4, KEY);
                let allowed = got.is_none()
                    || got == previous
                    || (!clearing && got.as_ref() == Some(&next))
                    || completed;
                assert!(
                    allowed,
                    "save {i}, dropped at mutation {at}: loaded {got:?}"
                );
                if completed {
                    let expected = if clearing { None } else { Some(next.clone()) };
                    assert_eq!(got, expected, "save {i}: completed without hanging");
                }
                assert!(save::<4, E, 512>(&mut f, 4, KEY, "recovered", 1));
                assert_eq!(
                    load::<4, E, 512>(&mut f, 4, KEY),
                    Some(("recovered".into(), 1))
                );
            }
        }
        assert!(save::<4, E, 512>(&mut base, 4, KEY, &next.0, next.1));
        previous = Some(next);
    }
}
