//! The map key and the stored value.
//!
//! Key: the first 16 bytes of the SHA-256 of alf's store key (see [`map_key`]).
//!
//! Value, format version 2 (all integers little-endian):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | format version, `2` |
//! | 1 | 8 | `expires_at_unix_ms`, milliseconds since the Unix epoch |
//! | 9 | n | the access token (visible ASCII); empty for a cleared entry |
//! | 9 + n | 4 | CRC-32 (ISO-HDLC, the zlib one) of key ‖ version ‖ expiry ‖ token |
//!
//! Version 1 is the same layout with the expiry in whole seconds: it is still read (the
//! expiry converted to milliseconds), so a token saved before an upgrade is used after it.
//! Everything written is version 2.
//!
//! The CRC covers the key too, so a value read under another key does not check out.
//! `sequential-storage` keeps its own CRC over each item; this one is end to end: it is
//! computed before the value reaches the flash layer and checked after it comes back.

use sequential_storage::map::{SerializationError, Value};
use sha2::Digest;

/// The key type of the map: a truncated SHA-256 of alf's store key.
pub(crate) type MapKey = [u8; KEY_LEN];

/// Bytes of the map key.
pub(crate) const KEY_LEN: usize = 16;
/// The format version written by this crate: the expiry in milliseconds.
pub(crate) const VERSION: u8 = 2;
/// The previous format version, still read: the expiry in seconds.
const VERSION_1: u8 = 1;
/// Version, expiry and CRC around the token.
const VALUE_OVERHEAD: usize = 1 + 8 + 4;
/// Key, version, expiry and CRC: an item's payload is this plus the token.
pub(crate) const ENTRY_OVERHEAD: usize = KEY_LEN + VALUE_OVERHEAD;

const CRC32: crc::Crc<u32, crc::NoTable> =
    crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);

/// The map key for alf's store `key`.
///
/// alf's keys are themselves hashes (`alf:` and 32 hex digits), but the trait allows any key
/// of up to 64 bytes; hashing keeps every key at 16 bytes on flash. Two keys share a map key
/// with probability 2⁻¹²⁸ (the CRC covers the map key, so it cannot tell them apart either).
pub(crate) fn map_key(key: &str) -> MapKey {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut out = [0; KEY_LEN];
    out.copy_from_slice(&digest[..KEY_LEN]);
    out
}

fn checksum(key: &MapKey, version: u8, expiry: u64, token: &[u8]) -> u32 {
    let mut d = CRC32.digest();
    d.update(key);
    d.update(&[version]);
    d.update(&expiry.to_le_bytes());
    d.update(token);
    d.finalize()
}

/// A stored value, borrowed from the token (to write) or from the data buffer (read back).
pub(crate) struct Entry<'a> {
    version: u8,
    /// As stored: milliseconds (version 2) or seconds (version 1) since the Unix epoch.
    expiry: u64,
    /// Empty for a cleared entry (a tombstone).
    pub(crate) token: &'a [u8],
    crc: u32,
}

impl<'a> Entry<'a> {
    /// The entry for `token` under `key`, in the current format.
    pub(crate) fn new(key: &MapKey, expires_at_unix_ms: u64, token: &'a [u8]) -> Self {
        Self::with_version(key, VERSION, expires_at_unix_ms, token)
    }

    fn with_version(key: &MapKey, version: u8, expiry: u64, token: &'a [u8]) -> Self {
        Self {
            version,
            expiry,
            token,
            crc: checksum(key, version, expiry, token),
        }
    }

    /// The entry that marks `key` as cleared.
    pub(crate) fn cleared(key: &MapKey) -> Self {
        Self::new(key, 0, &[])
    }

    /// When the token expires, in milliseconds since the Unix epoch (a version 1 expiry in
    /// seconds converted, saturating).
    pub(crate) fn expires_at_unix_ms(&self) -> u64 {
        match self.version {
            VERSION_1 => self.expiry.saturating_mul(1000),
            _ => self.expiry,
        }
    }

    /// Whether the CRC matches the contents and `key`.
    pub(crate) fn is_intact(&self, key: &MapKey) -> bool {
        self.crc == checksum(key, self.version, self.expiry, self.token)
    }
}

impl<'a> Value<'a> for Entry<'a> {
    fn serialize_into(&self, buffer: &mut [u8]) -> Result<usize, SerializationError> {
        let len = VALUE_OVERHEAD + self.token.len();
        let out = buffer
            .get_mut(..len)
            .ok_or(SerializationError::BufferTooSmall)?;
        let (version, rest) = out.split_at_mut(1);
        let (expiry, rest) = rest.split_at_mut(8);
        let (token, crc) = rest.split_at_mut(self.token.len());
        version[0] = self.version;
        expiry.copy_from_slice(&self.expiry.to_le_bytes());
        token.copy_from_slice(self.token);
        crc.copy_from_slice(&self.crc.to_le_bytes());
        Ok(len)
    }

    fn deserialize_from(buffer: &'a [u8]) -> Result<(Self, usize), SerializationError> {
        if buffer.len() < VALUE_OVERHEAD || !matches!(buffer[0], VERSION | VERSION_1) {
            return Err(SerializationError::InvalidFormat);
        }
        let (head, crc) = buffer.split_at(buffer.len() - 4);
        let (expiry, token) = head[1..].split_at(8);
        let mut e = [0; 8];
        e.copy_from_slice(expiry);
        let mut c = [0; 4];
        c.copy_from_slice(crc);
        let entry = Self {
            version: buffer[0],
            expiry: u64::from_le_bytes(e),
            token,
            crc: u32::from_le_bytes(c),
        };
        Ok((entry, buffer.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<'b>(entry: &Entry<'_>, buf: &'b mut [u8]) -> Option<Entry<'b>> {
        let len = entry.serialize_into(buf).ok()?;
        Entry::deserialize_from(&buf[..len]).ok().map(|(e, _)| e)
    }

    #[test]
    fn round_trips_and_checks_out() {
        let key = map_key("alf:0123");
        let mut buf = [0; 64];
        let e = round_trip(&Entry::new(&key, 1_700_000_000_123, b"tok.en"), &mut buf).unwrap();
        assert_eq!(
            (e.expires_at_unix_ms(), e.token),
            (1_700_000_000_123, &b"tok.en"[..])
        );
        assert!(e.is_intact(&key));
        assert!(!e.is_intact(&map_key("alf:0124")), "the CRC covers the key");
    }

    #[test]
    fn the_layout_is_as_documented() {
        let key = map_key("k");
        let mut buf = [0; 32];
        let len = Entry::new(&key, 0x0102_0304_0506_0708, b"ab")
            .serialize_into(&mut buf)
            .unwrap();
        assert_eq!(len, 1 + 8 + 2 + 4);
        assert_eq!(&buf[..11], &[2, 8, 7, 6, 5, 4, 3, 2, 1, b'a', b'b']);
        let mut check = CRC32.digest();
        check.update(&key);
        check.update(&buf[..11]);
        assert_eq!(buf[11..15], check.finalize().to_le_bytes());
        // CRC-32/ISO-HDLC, as zlib computes it.
        assert_eq!(CRC32.checksum(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn version_1_entries_are_still_read_with_their_expiry_in_seconds() {
        let key = map_key("alf:0123");
        // A version 1 entry as the previous release wrote it, byte by byte.
        let mut raw = [0u8; 32];
        raw[0] = 1;
        raw[1..9].copy_from_slice(&1_700_000_000u64.to_le_bytes());
        raw[9..12].copy_from_slice(b"tok");
        let mut crc = CRC32.digest();
        crc.update(&key);
        crc.update(&raw[..12]);
        raw[12..16].copy_from_slice(&crc.finalize().to_le_bytes());
        let (e, len) = Entry::deserialize_from(&raw[..16]).unwrap();
        assert_eq!(len, 16);
        assert!(e.is_intact(&key));
        assert_eq!(
            (e.expires_at_unix_ms(), e.token),
            (1_700_000_000_000, &b"tok"[..])
        );
        // The same bytes read as version 2 do not check out (the CRC covers the version).
        let mut v2 = raw;
        v2[0] = 2;
        let (e, _) = Entry::deserialize_from(&v2[..16]).unwrap();
        assert!(!e.is_intact(&key));
        // A version 1 expiry beyond u64::MAX milliseconds saturates.
        let far = Entry::with_version(&key, 1, u64::MAX / 10, b"t");
        assert_eq!(far.expires_at_unix_ms(), u64::MAX);
        let mut buf = [0; 32];
        let back = round_trip(&far, &mut buf).unwrap();
        assert!(back.is_intact(&key));
        assert_eq!(back.expires_at_unix_ms(), u64::MAX);
    }

    #[test]
    fn any_changed_bit_fails_the_check() {
        let key = map_key("k");
        let mut buf = [0; 32];
        let len = Entry::new(&key, 42, b"token")
            .serialize_into(&mut buf)
            .unwrap();
        for bit in 0..len * 8 {
            let mut copy = buf;
            copy[bit / 8] ^= 1 << (bit % 8);
            if let Ok((e, _)) = Entry::deserialize_from(&copy[..len]) {
                assert!(!e.is_intact(&key), "bit {bit}");
            }
        }
    }

    #[test]
    fn short_or_foreign_values_do_not_decode() {
        for raw in [
            &[][..],
            &[1],
            &[2],
            &[1; 12],
            &[2; 12],
            &[0; 13],
            &[3; 13],
            &[0xFF; 20],
        ] {
            assert!(Entry::deserialize_from(raw).is_err(), "{raw:?}");
        }
    }

    #[test]
    fn a_too_small_buffer_is_an_error() {
        let key = map_key("k");
        let mut buf = [0; 15];
        assert!(
            Entry::new(&key, 1, b"abc")
                .serialize_into(&mut buf)
                .is_err()
        );
    }

    #[test]
    fn keys_are_16_bytes_of_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 ...
        assert_eq!(
            map_key("abc"),
            [
                0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
                0x22, 0x23
            ]
        );
    }
}
