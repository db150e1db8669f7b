//! `FlashStore` on its own, on a RAM flash model: the contract, wear, garbage, flash errors.

mod support;

use alf::{StoredToken, TokenStore};
use alf_flash::{FlashStore, FlashStoreError, RangeError};
use embassy_futures::block_on;
use support::{MockError, MockFlash, XorShift, token};

/// Four 1 KiB pages at 4 KiB, inside an 8-page flash (the pages around it must stay untouched).
const RANGE: core::ops::Range<u32> = 0x1000..0x2000;
const KEY: &str = "alf:00112233445566778899aabbccddeeff";
const OTHER: &str = "alf:ffeeddccbbaa99887766554433221100";

type Flash = MockFlash<4, 1024>;
type Store<'f> = FlashStore<&'f mut Flash, 512>;

fn flash() -> Flash {
    let mut f = Flash::new(8);
    // Mark the pages outside the range, to see that they stay as they are.
    for (i, b) in f.mem.iter_mut().enumerate() {
        if !(RANGE.start as usize..RANGE.end as usize).contains(&i) {
            *b = (i % 251) as u8;
        }
    }
    f
}

fn outside_untouched(f: &Flash) -> bool {
    f.mem
        .iter()
        .enumerate()
        .filter(|(i, _)| !(RANGE.start as usize..RANGE.end as usize).contains(i))
        .all(|(i, &b)| b == (i % 251) as u8)
}

fn store(f: &mut Flash) -> Store<'_> {
    FlashStore::new(f, RANGE).unwrap()
}

fn load(s: &mut Store<'_>, key: &str) -> Result<Option<(String, u64)>, FlashStoreError<MockError>> {
    let mut buf = [0u8; 1024];
    block_on(s.load(key, &mut buf))
        .map(|t| t.map(|t| (t.access_token.to_owned(), t.expires_at_unix_ms)))
}

fn save(s: &mut Store<'_>, key: &str, t: &str, exp: u64) -> Result<(), FlashStoreError<MockError>> {
    block_on(s.save(
        key,
        StoredToken {
            access_token: t,
            expires_at_unix_ms: exp,
        },
    ))
}

#[test]
fn saves_loads_replaces_and_clears() {
    let mut f = flash();
    let mut s = store(&mut f);
    assert_eq!(load(&mut s, KEY).unwrap(), None);
    save(&mut s, KEY, "token-a", 1_700_000_000).unwrap();
    assert_eq!(
        load(&mut s, KEY).unwrap(),
        Some(("token-a".into(), 1_700_000_000))
    );
    save(&mut s, KEY, "token-b", 1_700_003_600).unwrap();
    assert_eq!(
        load(&mut s, KEY).unwrap(),
        Some(("token-b".into(), 1_700_003_600))
    );
    // Same token, new expiry: a new entry.
    save(&mut s, KEY, "token-b", 1_700_007_200).unwrap();
    assert_eq!(
        load(&mut s, KEY).unwrap(),
        Some(("token-b".into(), 1_700_007_200))
    );
    block_on(s.clear(KEY)).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), None);
    save(&mut s, KEY, "token-c", 5).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), Some(("token-c".into(), 5)));
    s.release();
    assert!(outside_untouched(&f));
}

#[test]
fn survives_a_reboot() {
    let mut f = flash();
    save(&mut store(&mut f), KEY, "token-a", 42).unwrap();
    // A new store over the same flash: all state is on flash.
    assert_eq!(
        load(&mut store(&mut f), KEY).unwrap(),
        Some(("token-a".into(), 42))
    );
}

#[test]
fn keys_are_separate() {
    let mut f = flash();
    let mut s = store(&mut f);
    save(&mut s, KEY, "token-a", 1).unwrap();
    save(&mut s, OTHER, "token-o", 2).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), Some(("token-a".into(), 1)));
    assert_eq!(load(&mut s, OTHER).unwrap(), Some(("token-o".into(), 2)));
    block_on(s.clear(KEY)).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), None);
    assert_eq!(load(&mut s, OTHER).unwrap(), Some(("token-o".into(), 2)));
    // Any string is a key.
    save(&mut s, "", "token-e", 3).unwrap();
    assert_eq!(load(&mut s, "").unwrap(), Some(("token-e".into(), 3)));
    assert_eq!(load(&mut s, "alf:").unwrap(), None);
}

#[test]
fn many_saves_cycle_through_the_pages_and_keep_every_key() {
    let mut f = flash();
    let mut s = store(&mut f);
    save(&mut s, OTHER, "other-token", 7).unwrap();
    for i in 0..200u64 {
        let t = token(i, 150 + (i as usize * 7) % 200);
        save(&mut s, KEY, &t, 1_000 + i).unwrap();
        assert_eq!(load(&mut s, KEY).unwrap(), Some((t, 1_000 + i)), "save {i}");
    }
    assert_eq!(
        load(&mut s, OTHER).unwrap(),
        Some(("other-token".into(), 7))
    );
    s.release();
    assert!(f.stats.pages_erased > 20, "pages are reused: {:?}", f.stats);
    assert_eq!(
        f.stats.rewrites, 0,
        "a word was written twice: not allowed on NOR flash"
    );
    assert!(outside_untouched(&f));
}

#[test]
fn wear_saving_the_same_token_again_writes_nothing() {
    let mut f = flash();
    save(&mut store(&mut f), KEY, "token-a", 100).unwrap();
    let before = f.stats;
    let mut s = store(&mut f);
    save(&mut s, KEY, "token-a", 100).unwrap();
    save(&mut s, KEY, "token-a", 100).unwrap();
    s.release();
    assert_eq!(
        (f.stats.writes, f.stats.erases),
        (before.writes, before.erases),
        "{:?}",
        f.stats
    );
    assert!(f.stats.reads > before.reads);

    // A different expiry or token is written.
    save(&mut store(&mut f), KEY, "token-a", 101).unwrap();
    assert!(f.stats.writes > before.writes);
    let before = f.stats;
    save(&mut store(&mut f), KEY, "token-b", 101).unwrap();
    assert!(f.stats.writes > before.writes);
}

#[test]
fn wear_loads_and_needless_clears_write_nothing() {
    let mut f = flash();
    let mut s = store(&mut f);
    // Empty flash: a load does not even format it.
    assert_eq!(load(&mut s, KEY).unwrap(), None);
    block_on(s.clear(KEY)).unwrap();
    s.release();
    assert_eq!(f.stats.mutations(), 0, "{:?}", f.stats);

    save(&mut store(&mut f), KEY, "token-a", 100).unwrap();
    let before = f.stats;
    let mut s = store(&mut f);
    for _ in 0..10 {
        assert!(load(&mut s, KEY).unwrap().is_some());
    }
    block_on(s.clear(KEY)).unwrap();
    let after_clear = s.release().stats;
    assert_eq!(after_clear.erases, before.erases);
    assert!(
        after_clear.writes > before.writes,
        "the clear wrote its tombstone"
    );
    let mut s = store(&mut f);
    block_on(s.clear(KEY)).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), None);
    s.release();
    assert_eq!(
        f.stats.mutations(),
        after_clear.mutations(),
        "a second clear wrote"
    );
}

#[test]
fn invalid_tokens_are_refused_before_touching_the_flash() {
    let mut f = flash();
    let mut s = store(&mut f);
    for bad in ["", "a b", "a\nb", "é", "a\tb"] {
        assert_eq!(
            save(&mut s, KEY, bad, 1),
            Err(FlashStoreError::InvalidToken),
            "{bad:?}"
        );
    }
    s.release();
    assert_eq!(f.stats.mutations(), 0);
}

#[test]
fn max_token_len_is_exact() {
    // Limited by the buffer: 512 - 29 = 483.
    assert_eq!(Store::MAX_TOKEN_LEN, 483);
    let mut f = flash();
    let mut s = store(&mut f);
    let t = token(1, Store::MAX_TOKEN_LEN);
    save(&mut s, KEY, &t, 9).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), Some((t, 9)));
    let long = token(2, Store::MAX_TOKEN_LEN + 1);
    assert_eq!(save(&mut s, KEY, &long, 9), Err(FlashStoreError::TooLarge));

    // Limited by the page: 256-byte pages, 8-byte words: 256 - 2*8 - 8 - 29 = 203.
    type Small = MockFlash<8, 256>;
    type SmallStore<'f> = FlashStore<&'f mut Small, 1024>;
    assert_eq!(SmallStore::MAX_TOKEN_LEN, 203);
    let mut f = Small::new(4);
    let mut s: SmallStore<'_> = FlashStore::new(&mut f, 0..1024).unwrap();
    let t = token(3, SmallStore::MAX_TOKEN_LEN);
    block_on(s.save(
        KEY,
        StoredToken {
            access_token: &t,
            expires_at_unix_ms: 1,
        },
    ))
    .unwrap();
    let mut buf = [0u8; 256];
    let got = block_on(s.load(KEY, &mut buf)).unwrap().unwrap();
    assert_eq!(got.access_token, t);
    let long = token(4, SmallStore::MAX_TOKEN_LEN + 1);
    let r = block_on(s.save(
        KEY,
        StoredToken {
            access_token: &long,
            expires_at_unix_ms: 1,
        },
    ));
    assert_eq!(r, Err(FlashStoreError::TooLarge));
}

#[test]
fn a_token_larger_than_the_callers_buffer_loads_as_none() {
    let mut f = flash();
    let mut s = store(&mut f);
    save(&mut s, KEY, "0123456789", 1).unwrap();
    let mut small = [0u8; 9];
    assert!(block_on(s.load(KEY, &mut small)).unwrap().is_none());
    let mut exact = [0u8; 10];
    assert!(block_on(s.load(KEY, &mut exact)).unwrap().is_some());
}

#[test]
fn bad_ranges_are_refused() {
    let mut f = flash();
    assert_eq!(
        Store::new(&mut f, 0x1000..0x1400).unwrap_err(),
        RangeError::TooSmall
    );
    assert_eq!(
        Store::new(&mut f, 0x1001..0x2000).unwrap_err(),
        RangeError::NotPageAligned
    );
    assert_eq!(
        Store::new(&mut f, 0x1000..0x1fff).unwrap_err(),
        RangeError::NotPageAligned
    );
    assert!(Store::new(&mut f, 0x1000..0x1800).is_ok());
}

#[test]
fn garbage_in_the_range_loads_as_none_and_is_then_replaced() {
    for seed in 1..=300u64 {
        let mut f = flash();
        let mut rng = XorShift(seed);
        match seed % 5 {
            // Random bytes everywhere.
            0 => rng.fill(&mut f.mem[RANGE.start as usize..RANGE.end as usize]),
            // All zeros: every page "closed".
            1 => f.mem[RANGE.start as usize..RANGE.end as usize].fill(0),
            // One page of random bytes, the others erased.
            2 => {
                let page = RANGE.start as usize + (seed as usize % 4) * 1024;
                rng.fill(&mut f.mem[page..page + 1024]);
            }
            // Valid-looking page markers (first page partly open), random item area.
            3 => {
                let r = RANGE.start as usize..RANGE.end as usize;
                rng.fill(&mut f.mem[r.clone()]);
                for p in 0..4 {
                    let page = r.start + p * 1024;
                    f.mem[page..page + 4].fill(0);
                    f.mem[page + 1020..page + 1024].fill(if p == 0 { 0xFF } else { 0 });
                }
                let page = r.start + 1024;
                f.mem[page..page + 1024].fill(0xFF);
            }
            // A real entry, then random bytes written over part of it.
            _ => {
                save(&mut store(&mut f), KEY, &token(seed, 300), 77).unwrap();
                let at = RANGE.start as usize + (rng.next() % 400) as usize;
                let len = 1 + (rng.next() % 64) as usize;
                rng.fill(&mut f.mem[at..at + len]);
            }
        }
        let mut s = store(&mut f);
        match load(&mut s, KEY) {
            Ok(None) => {}
            // The overwrite may have missed the token (it landed in padding or the CRC field
            // of sequential-storage's header, which it then repaired).
            Ok(Some((t, 77))) if seed % 5 == 4 && t == token(seed, 300) => {}
            other => panic!("seed {seed}: garbage loaded as {other:?}"),
        }
        save(&mut s, KEY, "fresh-token", 88)
            .unwrap_or_else(|e| panic!("seed {seed}: save failed: {e:?}"));
        assert_eq!(
            load(&mut s, KEY).unwrap(),
            Some(("fresh-token".into(), 88)),
            "seed {seed}"
        );
        s.release();
        assert_eq!(
            load(&mut store(&mut f), KEY).unwrap(),
            Some(("fresh-token".into(), 88)),
            "seed {seed}"
        );
        assert!(outside_untouched(&f), "seed {seed}");
    }
}

#[test]
fn a_corrupted_value_loads_as_none() {
    // Flip each bit of the stored item in turn: whatever sequential-storage makes of it, the
    // load is the token, nothing, or (for a flip in its header that it repairs) the token,
    // never another token.
    let mut base = flash();
    save(&mut store(&mut base), KEY, "token-abcdef", 12_345).unwrap();
    let used: Vec<usize> = (RANGE.start as usize..RANGE.end as usize)
        .filter(|&i| base.mem[i] != 0xFF)
        .collect();
    assert!(!used.is_empty());
    for &i in &used {
        for bit in 0..8 {
            let mut f = base.clone();
            f.mem[i] ^= 1 << bit;
            match load(&mut store(&mut f), KEY) {
                Ok(None) => {}
                Ok(Some((t, e))) => assert_eq!(
                    (t.as_str(), e),
                    ("token-abcdef", 12_345),
                    "byte {i} bit {bit}"
                ),
                Err(e) => panic!("byte {i} bit {bit}: {e:?}"),
            }
        }
    }
}

#[test]
fn flash_errors_are_errors() {
    let mut f = flash();
    save(&mut store(&mut f), KEY, "token-a", 1).unwrap();

    f.fail.reads = true;
    let mut s = store(&mut f);
    assert_eq!(
        load(&mut s, KEY),
        Err(FlashStoreError::Flash(MockError::Injected))
    );
    assert_eq!(
        save(&mut s, KEY, "token-b", 2),
        Err(FlashStoreError::Flash(MockError::Injected))
    );
    assert_eq!(
        block_on(s.clear(KEY)),
        Err(FlashStoreError::Flash(MockError::Injected))
    );
    s.release();
    f.reboot();

    f.fail.writes = true;
    let mut s = store(&mut f);
    assert_eq!(load(&mut s, KEY).unwrap(), Some(("token-a".into(), 1)));
    assert_eq!(
        save(&mut s, KEY, "token-b", 2),
        Err(FlashStoreError::Flash(MockError::Injected))
    );
    assert_eq!(
        block_on(s.clear(KEY)),
        Err(FlashStoreError::Flash(MockError::Injected))
    );
    s.release();
    f.reboot();
    let mut s = store(&mut f);
    assert_eq!(load(&mut s, KEY).unwrap(), Some(("token-a".into(), 1)));
    save(&mut s, KEY, "token-b", 2).unwrap();
    assert_eq!(load(&mut s, KEY).unwrap(), Some(("token-b".into(), 2)));
}

#[test]
fn debug_shows_no_token() {
    let mut f = flash();
    let mut s = store(&mut f);
    save(&mut s, KEY, "secret-token-value", 1).unwrap();
    let d = format!("{s:?}");
    assert!(
        d.contains("FlashStore") && !d.contains("secret-token-value"),
        "{d}"
    );
    let e: FlashStoreError<MockError> = FlashStoreError::TooLarge;
    assert!(!format!("{e} {e:?}").is_empty());
}
