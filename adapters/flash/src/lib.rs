#![no_std]
#![doc = include_str!("../README.md")]
//!
//! # Features
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod entry;
mod error;

use core::fmt;
use core::ops::Range;

use alf::{StoredToken, TokenStore};
use embedded_storage_async::nor_flash::NorFlash;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};
use zeroize::Zeroize;

use entry::{ENTRY_OVERHEAD as OVERHEAD, Entry, MapKey, map_key};
pub use error::{FlashStoreError, RangeError};

/// Bytes an entry takes on top of its token in the data buffer (and on flash, before
/// `sequential-storage`'s own item header and padding): the 16-byte key, the format version,
/// the expiry and the CRC-32.
pub const ENTRY_OVERHEAD: usize = OVERHEAD;

/// The data buffer size `N` that holds tokens of up to `max_token_len` bytes on any flash
/// (rounded up to 32 bytes, the largest flash word `sequential-storage` supports).
///
/// ```
/// // A store for tokens of up to 4 KiB (on a flash whose pages can hold them).
/// type BigStore<F> = alf_flash::FlashStore<F, { alf_flash::buffer_size(4096) }>;
/// // The default `N` holds alf's default token capacity (2048 bytes).
/// assert_eq!(alf_flash::buffer_size(2048), 2080);
/// ```
pub const fn buffer_size(max_token_len: usize) -> usize {
    (max_token_len + ENTRY_OVERHEAD).next_multiple_of(32)
}

type Map<F> = MapStorage<MapKey, F, Cache<Uncached, Uncached, Uncached, MapKey>>;

/// The data buffer, word-aligned for flash drivers that need it.
#[repr(C, align(4))]
struct AlignedBuf<const N: usize>([u8; N]);

/// An [`alf::TokenStore`] in NOR flash: the token survives reboots and deep sleep (see the
/// crate documentation).
///
/// - `F`: the flash, any [`NorFlash`] (a `&mut` to one works too);
/// - `N`: the size of the data buffer the store owns, in bytes. It holds one entry, so it
///   limits the token length to [`MAX_TOKEN_LEN`](Self::MAX_TOKEN_LEN) (about `N - 29`);
///   [`buffer_size`] gives the `N` for a token length. The default, 2080, holds any token of
///   alf's default capacity ([`alf::client::DEFAULT_TOKEN_CAPACITY`]). Stores sharing a flash
///   range should use the same `N`: an item larger than a store's buffer makes that store
///   erase the range on its next save.
///
/// The store keeps no other state in RAM: it can be dropped and created again at any time
/// (that is what a reboot does).
pub struct FlashStore<
    F: NorFlash,
    const N: usize = { buffer_size(alf::client::DEFAULT_TOKEN_CAPACITY) },
> {
    map: Map<F>,
    buf: AlignedBuf<N>,
}

impl<F: NorFlash, const N: usize> fmt::Debug for FlashStore<F, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlashStore")
            .field("flash_range", &self.map.flash_range())
            .field("buffer", &N)
            .finish_non_exhaustive()
    }
}

/// What the flash holds under a key.
enum Current<'b> {
    /// A token, its CRC checked.
    Token(Entry<'b>),
    /// Nothing, or a cleared entry.
    Empty,
    /// Something that does not check out: corrupted flash, another format, a bad CRC.
    Unreadable,
}

impl<F: NorFlash, const N: usize> FlashStore<F, N> {
    const WORD: usize = if F::READ_SIZE > F::WRITE_SIZE {
        F::READ_SIZE
    } else {
        F::WRITE_SIZE
    };

    /// The longest token this store can save, in bytes: limited by the data buffer `N` and by
    /// the flash page size (an entry must fit in one page, with `sequential-storage`'s page
    /// markers and item header).
    pub const MAX_TOKEN_LEN: usize = {
        let by_buffer = (N / Self::WORD * Self::WORD).saturating_sub(ENTRY_OVERHEAD);
        let page_data =
            F::ERASE_SIZE.saturating_sub(2 * Self::WORD + 8usize.next_multiple_of(Self::WORD));
        let by_page = page_data.saturating_sub(ENTRY_OVERHEAD);
        let by_length_field = u16::MAX as usize - ENTRY_OVERHEAD;
        let m = if by_buffer < by_page {
            by_buffer
        } else {
            by_page
        };
        if m < by_length_field {
            m
        } else {
            by_length_field
        }
    };

    /// A store in `range` of `flash` (addresses as the flash driver counts them).
    ///
    /// The range must start and end on erase-page boundaries and span at least two pages
    /// (three or more are recommended: see the crate documentation for sizing). The store owns the range: nothing else may
    /// write there. Nothing is read or written here.
    ///
    /// # Errors
    /// [`RangeError`] when the range does not suit the flash.
    ///
    /// # Panics
    /// At compile time (when the code is built), if `N` cannot hold a 1-byte token.
    pub fn new(flash: F, range: Range<u32>) -> Result<Self, RangeError> {
        const {
            assert!(
                (N / Self::WORD * Self::WORD) > ENTRY_OVERHEAD,
                "alf-flash: the data buffer N is too small to hold any token"
            );
        }
        let config = MapConfig::try_new(range)?;
        Ok(Self {
            map: MapStorage::new(flash, config, Cache::new_uncached()),
            buf: AlignedBuf([0; N]),
        })
    }

    /// The flash range the store uses.
    pub fn flash_range(&self) -> Range<u32> {
        self.map.flash_range()
    }

    /// Give the flash back.
    pub fn release(self) -> F {
        self.map.destroy().0
    }

    /// Erase the whole flash range: every token of every key is gone (a factory reset).
    ///
    /// # Errors
    /// [`FlashStoreError::Flash`] when the flash fails to erase.
    pub async fn erase_all(&mut self) -> Result<(), FlashStoreError<F::Error>> {
        self.map
            .erase_all()
            .await
            .map_err(FlashStoreError::from_storage)
    }

    /// Read what the flash holds under `key` into the data buffer.
    async fn current<'b>(
        map: &mut Map<F>,
        buf: &'b mut [u8],
        key: &MapKey,
    ) -> Result<Current<'b>, FlashStoreError<F::Error>> {
        match map.fetch_item::<Entry<'b>>(buf, key).await {
            Ok(None) => Ok(Current::Empty),
            Ok(Some(e)) if !e.is_intact(key) => Ok(Current::Unreadable),
            Ok(Some(e)) if e.token.is_empty() => Ok(Current::Empty),
            Ok(Some(e)) => Ok(Current::Token(e)),
            Err(sequential_storage::Error::Storage { value, .. }) => {
                Err(FlashStoreError::Flash(value))
            }
            // Corruption sequential-storage could not repair, an item larger than our buffer
            // (written with a larger `N`), another value format: no usable token here.
            Err(_) => Ok(Current::Unreadable),
        }
    }

    /// Whether the flash now holds `entry` under `key` (a cleared entry: no token).
    async fn holds(
        &mut self,
        key: &MapKey,
        entry: &Entry<'_>,
    ) -> Result<bool, FlashStoreError<F::Error>> {
        Ok(
            match Self::current(&mut self.map, &mut self.buf.0, key).await? {
                Current::Token(e) => {
                    e.token == entry.token && e.expires_at_unix_ms() == entry.expires_at_unix_ms()
                }
                Current::Empty => entry.token.is_empty(),
                Current::Unreadable => false,
            },
        )
    }

    /// Append `entry` under `key`, and read it back.
    ///
    /// When the map cannot take it (corrupted beyond sequential-storage's repair, full of
    /// other keys' entries, or holding items larger than the buffer), or it does not read back
    /// (the space it went to was not cleanly erased, or the flash is wearing out), erase the
    /// range and write once more: a token store is a cache, and losing its entries only costs
    /// token requests.
    async fn write(
        &mut self,
        key: &MapKey,
        entry: &Entry<'_>,
    ) -> Result<(), FlashStoreError<F::Error>> {
        use sequential_storage::Error as S;
        match self.map.store_item(&mut self.buf.0, key, entry).await {
            Ok(()) if self.holds(key, entry).await? => return Ok(()),
            Ok(())
            | Err(
                S::Corrupted { .. } | S::FullStorage | S::BufferTooSmall(_) | S::LogicBug { .. },
            ) => {}
            Err(e) => return Err(FlashStoreError::from_storage(e)),
        }
        self.map
            .erase_all()
            .await
            .map_err(FlashStoreError::from_storage)?;
        self.map
            .store_item(&mut self.buf.0, key, entry)
            .await
            .map_err(FlashStoreError::from_storage)?;
        if self.holds(key, entry).await? {
            Ok(())
        } else {
            Err(FlashStoreError::Corrupted)
        }
    }
}

impl<F: NorFlash, const N: usize> TokenStore for FlashStore<F, N> {
    type Error = FlashStoreError<F::Error>;

    /// The token saved under `key`, or `Ok(None)` when there is none, or anything that does
    /// not check out (bad CRC, another format, corrupted flash), or a token larger than `buf`.
    /// Only a failing flash driver is an error. May write to the flash: `sequential-storage`
    /// repairs an interrupted operation on the next access.
    async fn load<'b>(
        &mut self,
        key: &str,
        buf: &'b mut [u8],
    ) -> Result<Option<StoredToken<'b>>, Self::Error> {
        let key = map_key(key);
        let result = match Self::current(&mut self.map, &mut self.buf.0, &key).await {
            Ok(Current::Token(e)) => Ok(copy_out(&e, buf)),
            Ok(Current::Empty | Current::Unreadable) => Ok(None),
            Err(e) => Err(e),
        };
        self.buf.0.zeroize();
        result
    }

    /// Save the token under `key`. When the flash already holds this very token with this
    /// expiry, nothing is written (no wear).
    async fn save(&mut self, key: &str, token: StoredToken<'_>) -> Result<(), Self::Error> {
        let t = token.access_token;
        if !alf::response::is_valid_token(t) {
            return Err(FlashStoreError::InvalidToken);
        }
        if t.len() > Self::MAX_TOKEN_LEN {
            return Err(FlashStoreError::TooLarge);
        }
        let key = map_key(key);
        let unchanged = match Self::current(&mut self.map, &mut self.buf.0, &key).await {
            Ok(Current::Token(e)) => {
                e.token == t.as_bytes() && e.expires_at_unix_ms() == token.expires_at_unix_ms
            }
            Ok(Current::Empty | Current::Unreadable) => false,
            Err(e) => {
                self.buf.0.zeroize();
                return Err(e);
            }
        };
        let result = if unchanged {
            Ok(())
        } else {
            self.write(
                &key,
                &Entry::new(&key, token.expires_at_unix_ms, t.as_bytes()),
            )
            .await
        };
        self.buf.0.zeroize();
        result
    }

    /// Mark the entry under `key` as cleared (a small tombstone item: this works on any NOR
    /// flash, and needs no `MultiwriteNorFlash`). Nothing is written when there is no token.
    async fn clear(&mut self, key: &str) -> Result<(), Self::Error> {
        let key = map_key(key);
        let result = match Self::current(&mut self.map, &mut self.buf.0, &key).await {
            Ok(Current::Empty) => Ok(()),
            Ok(Current::Token(_) | Current::Unreadable) => {
                self.write(&key, &Entry::cleared(&key)).await
            }
            Err(e) => Err(e),
        };
        self.buf.0.zeroize();
        result
    }

    // try_lock / unlock: the defaults. A device is one process; alf's own single-flight
    // covers the tasks inside it.
}

/// Copy a checked entry's token into the caller's buffer; `None` if it is not a valid token
/// or does not fit.
fn copy_out<'b>(e: &Entry<'_>, buf: &'b mut [u8]) -> Option<StoredToken<'b>> {
    let dst = buf.get_mut(..e.token.len())?;
    dst.copy_from_slice(e.token);
    let access_token = core::str::from_utf8(dst)
        .ok()
        .filter(|t| alf::response::is_valid_token(t))?;
    Some(StoredToken {
        access_token,
        expires_at_unix_ms: e.expires_at_unix_ms(),
    })
}
