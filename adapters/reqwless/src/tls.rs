//! [`Tls`]: how `https://` connections are made (feature `tls`). Read the crate's TLS section.

use embedded_io::ErrorKind;
use embedded_tls::TlsError;
use rand_core::CryptoRngCore;
use reqwless::client::{TlsConfig, TlsVerify};

/// TLS settings for [`ReqwlessTransport::with_tls`](crate::ReqwlessTransport::with_tls):
/// buffers, a random number generator and how the server is authenticated.
///
/// TLS is embedded-tls through reqwless: TLS 1.3 only, cipher suite
/// `TLS_AES_128_GCM_SHA256` only.
///
/// # Server authentication
/// - [`verify_ca`](Self::verify_ca): the server's chain must lead to the CA certificate you
///   give, and the leaf certificate's Common Name must equal the URL's host. **Read the
///   limits in the crate documentation** (no expiry check, Common Name only, no CA-flag
///   check): pin a private CA, or your server's own certificate, rather than a public CA.
/// - [`insecure_no_verification`](Self::insecure_no_verification): encryption without
///   authentication. Anyone on the network path can impersonate the token endpoint and
///   receive the client secret.
///
/// # Buffers
/// `read_buffer` must hold a whole TLS record: 16 640 bytes for a server that sends full-size
/// records (most do). `write_buffer` must hold the largest request (4 KiB is plenty for
/// token requests).
///
/// # Randomness
/// Every connection is seeded from `rng` (reqwless seeds its ChaCha generator from 64 bits).
/// Use the hardware RNG: a predictable seed breaks TLS entirely.
pub struct Tls<'a> {
    read_buffer: &'a mut [u8],
    write_buffer: &'a mut [u8],
    rng: &'a mut (dyn CryptoRngCore + Send),
    verify: Verify<'a>,
}

#[derive(Clone, Copy)]
enum Verify<'a> {
    None,
    Ca {
        ca: &'a [u8],
        cert: Option<&'a [u8]>,
        key: Option<&'a [u8]>,
    },
}

impl<'a> Tls<'a> {
    /// Authenticate the server against one CA certificate, `ca_der` (DER, not PEM).
    ///
    /// The CA must sign the topmost certificate of the chain the server sends with ECDSA
    /// (P-256 or P-384) or Ed25519; RSA signatures are not supported (reqwless's `rsa`
    /// feature needs `alloc`).
    pub fn verify_ca(
        ca_der: &'a [u8],
        rng: &'a mut (dyn CryptoRngCore + Send),
        read_buffer: &'a mut [u8],
        write_buffer: &'a mut [u8],
    ) -> Self {
        Self {
            read_buffer,
            write_buffer,
            rng,
            verify: Verify::Ca {
                ca: ca_der,
                cert: None,
                key: None,
            },
        }
    }

    /// Also present a client certificate (mutual TLS): `cert_der` (DER) and its P-256
    /// private key `key_der` (PKCS#8 DER). Only with [`verify_ca`](Self::verify_ca); ignored
    /// otherwise.
    #[must_use]
    pub fn client_certificate(mut self, cert_der: &'a [u8], key_der: &'a [u8]) -> Self {
        if let Verify::Ca { cert, key, .. } = &mut self.verify {
            *cert = Some(cert_der);
            *key = Some(key_der);
        }
        self
    }

    /// Encrypt without authenticating the server. **Anyone who can intercept the device's
    /// traffic can pose as the token endpoint and collect the client secret.** For a lab
    /// network, or a server reached through a trusted link, only.
    pub fn insecure_no_verification(
        rng: &'a mut (dyn CryptoRngCore + Send),
        read_buffer: &'a mut [u8],
        write_buffer: &'a mut [u8],
    ) -> Self {
        Self {
            read_buffer,
            write_buffer,
            rng,
            verify: Verify::None,
        }
    }

    /// The same settings, borrowed for a shorter time (the random number generator's
    /// borrow makes `Tls` invariant; this is the coercion the compiler cannot do alone).
    pub(crate) fn shorten<'s>(self) -> Tls<'s>
    where
        'a: 's,
    {
        let rng: &'s mut (dyn CryptoRngCore + Send + 's) = self.rng;
        let verify = match self.verify {
            Verify::None => Verify::None,
            Verify::Ca { ca, cert, key } => Verify::Ca { ca, cert, key },
        };
        Tls {
            read_buffer: self.read_buffer,
            write_buffer: self.write_buffer,
            rng,
            verify,
        }
    }

    /// `true` when the server's certificate is checked.
    pub fn verifies_server(&self) -> bool {
        matches!(self.verify, Verify::Ca { .. })
    }

    /// reqwless's configuration for one connection, freshly seeded.
    pub(crate) fn config(&mut self) -> TlsConfig<'_> {
        let seed = self.rng.next_u64();
        let verify = match self.verify {
            Verify::None => TlsVerify::None,
            Verify::Ca { ca, cert, key } => TlsVerify::Certificate { ca, cert, key },
        };
        TlsConfig::new(seed, self.read_buffer, self.write_buffer, verify)
    }
}

impl core::fmt::Debug for Tls<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tls")
            .field("verifies_server", &self.verifies_server())
            .field("read_buffer", &self.read_buffer.len())
            .field("write_buffer", &self.write_buffer.len())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Tls<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Tls {{ verifies_server: {} }}", self.verifies_server());
    }
}

/// The `embedded_io` kind of a TLS failure: I/O kinds pass through; certificate and protocol
/// failures are `InvalidData` (alf does not retry them: a retry meets the same server).
pub(crate) fn kind(e: &TlsError) -> ErrorKind {
    match e {
        TlsError::Io(kind) => *kind,
        TlsError::ConnectionClosed => ErrorKind::ConnectionAborted,
        TlsError::IoError => ErrorKind::Other,
        TlsError::InsufficientSpace | TlsError::OutOfMemory => ErrorKind::OutOfMemory,
        TlsError::Unimplemented | TlsError::InvalidCipherSuite => ErrorKind::Unsupported,
        TlsError::InvalidPrivateKey => ErrorKind::InvalidInput,
        _ => ErrorKind::InvalidData,
    }
}
