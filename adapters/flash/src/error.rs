//! Errors of [`FlashStore`](crate::FlashStore).

use core::fmt;

use sequential_storage::map::MapConfigError;

/// What went wrong in a [`FlashStore`](crate::FlashStore) operation.
///
/// alf treats every error as "no token in the store" and fetches one itself, so these are for
/// logs and metrics. Neither `Debug` nor `Display` ever includes a token or flash contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FlashStoreError<E> {
    /// The flash driver failed to read, write or erase.
    Flash(E),
    /// The flash range holds data that `sequential-storage` could not repair, and erasing the
    /// range did not help either (so the flash itself misbehaves).
    Corrupted,
    /// The token does not fit: it is longer than
    /// [`FlashStore::MAX_TOKEN_LEN`](crate::FlashStore::MAX_TOKEN_LEN) (the data buffer `N`
    /// or the flash page is too small), or the range cannot hold it.
    TooLarge,
    /// The token given to `save` is not a valid bearer token (empty, or not visible ASCII), so
    /// it was not stored.
    InvalidToken,
    /// `sequential-storage` reported an internal error.
    Internal,
}

impl<E> FlashStoreError<E> {
    pub(crate) fn from_storage(e: sequential_storage::Error<E>) -> Self {
        use sequential_storage::Error as S;
        match e {
            S::Storage { value, .. } => Self::Flash(value),
            S::Corrupted { .. } => Self::Corrupted,
            S::FullStorage | S::ItemTooBig | S::BufferTooSmall(_) => Self::TooLarge,
            _ => Self::Internal,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for FlashStoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(e) => write!(f, "flash error: {e:?}"),
            Self::Corrupted => f.write_str("the token store's flash range is corrupted"),
            Self::TooLarge => f.write_str("the token does not fit in the flash token store"),
            Self::InvalidToken => f.write_str("refusing to store an invalid token"),
            Self::Internal => f.write_str("internal error in sequential-storage"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for FlashStoreError<E> {}

/// Why [`FlashStore::new`](crate::FlashStore::new) refused a flash range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RangeError {
    /// The range does not start and end on erase-page boundaries (`NorFlash::ERASE_SIZE`).
    NotPageAligned,
    /// The range has fewer than two pages.
    TooSmall,
    /// The flash's pages are too small to hold even an empty item.
    PagesTooSmall,
    /// The flash's word size is larger than `sequential-storage` supports (32 bytes).
    WordSizeTooLarge,
}

impl From<MapConfigError> for RangeError {
    fn from(e: MapConfigError) -> Self {
        match e {
            MapConfigError::StartRangeNotAtPageBoundary
            | MapConfigError::EndRangeNotAtPageBoundary => Self::NotPageAligned,
            MapConfigError::RangeTooSmall => Self::TooSmall,
            MapConfigError::PagesTooSmall => Self::PagesTooSmall,
            MapConfigError::WordSizeTooLarge => Self::WordSizeTooLarge,
        }
    }
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotPageAligned => "the flash range must start and end on erase-page boundaries",
            Self::TooSmall => "the flash range must span at least two erase pages",
            Self::PagesTooSmall => "the flash's erase pages are too small",
            Self::WordSizeTooLarge => "the flash's word size is larger than 32 bytes",
        })
    }
}

impl core::error::Error for RangeError {}
