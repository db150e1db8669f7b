//! Client configuration, validated and encoded once, when it is built.
//!
//! [`Config::builder`] takes the token endpoint, client id and secret, then scopes, extra
//! parameters (`audience`, `resource`...), the client authentication method and the policies.
//! [`ConfigBuilder::build`] checks everything and precomputes the exact form body and
//! `Authorization` value, so that an invalid configuration is a typed error at start-up, not
//! at the first request, and a token request costs no encoding work.

use core::fmt::{self, Write};

use heapless::{String, Vec};

use crate::error::ConfigError;
use crate::policy::{RefreshPolicy, RetryPolicy};
use crate::request::{write_basic_authorization, write_encoded};
use crate::secret::{CLIENT_SECRET_CAPACITY, SecretString};
use crate::store::StorePolicy;

/// Capacity of the token endpoint URL.
pub const TOKEN_ENDPOINT_CAPACITY: usize = 256;
/// Capacity of the client id.
pub const CLIENT_ID_CAPACITY: usize = 128;
/// Capacity of the encoded form body of the token request.
pub const FORM_CAPACITY: usize = 768;
/// Capacity of the encoded `Authorization: Basic` value.
pub const AUTHORIZATION_CAPACITY: usize = 512;
/// Most scopes a builder takes.
pub const MAX_SCOPES: usize = 16;
/// Most extra parameters a builder takes.
pub const MAX_PARAMS: usize = 8;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the percent-encoded id and secret. The default,
    /// and the method every server must support.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
}

/// A validated client configuration. Build it with [`Config::builder`].
///
/// `Debug` shows the endpoint and client id, never the secret or the encoded credentials.
#[derive(Clone)]
pub struct Config {
    pub(crate) token_endpoint: String<TOKEN_ENDPOINT_CAPACITY>,
    pub(crate) client_id: String<CLIENT_ID_CAPACITY>,
    pub(crate) auth: ClientAuth,
    /// The complete form body. Holds the secret under [`ClientAuth::Post`].
    pub(crate) form: SecretString<FORM_CAPACITY>,
    /// `form[..params_end]` is grant type, scope and extra parameters: no credentials.
    pub(crate) params_end: usize,
    /// `Basic ...` under [`ClientAuth::Basic`], empty otherwise.
    pub(crate) authorization: SecretString<AUTHORIZATION_CAPACITY>,
    /// The client secret, kept only to scrub it from error texts.
    pub(crate) secret: SecretString<CLIENT_SECRET_CAPACITY>,
    pub(crate) refresh: RefreshPolicy,
    pub(crate) retry: RetryPolicy,
    pub(crate) jitter_seed: u64,
    pub(crate) store: StorePolicy,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("client_secret", &"[redacted]")
            .field("refresh", &self.refresh)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Start a configuration for the client credentials grant.
    pub fn builder<'a>(
        token_endpoint: &'a str,
        client_id: &'a str,
        client_secret: &'a str,
    ) -> ConfigBuilder<'a> {
        ConfigBuilder {
            token_endpoint,
            client_id,
            client_secret,
            auth: ClientAuth::Basic,
            scopes: Vec::new(),
            params: Vec::new(),
            refresh: RefreshPolicy::DEFAULT,
            retry: RetryPolicy::DEFAULT,
            jitter_seed: None,
            store: StorePolicy::DEFAULT,
            overflow: false,
        }
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The client authentication method.
    pub fn client_auth(&self) -> ClientAuth {
        self.auth
    }
    /// The refresh policy.
    pub fn refresh_policy(&self) -> &RefreshPolicy {
        &self.refresh
    }
    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }
    /// The shared-store policy.
    pub fn store_policy(&self) -> &StorePolicy {
        &self.store
    }

    /// The part of the form body without credentials: `grant_type`, `scope` and the extra
    /// parameters, encoded.
    pub fn form_params(&self) -> &str {
        &self.form.secret()[..self.params_end]
    }

    /// The exact form body of the token request.
    ///
    /// # Security
    /// Under [`ClientAuth::Post`] it contains the client secret: never log it.
    pub fn form_body(&self) -> &str {
        self.form.secret()
    }

    /// The `Authorization` value of the token request (`Basic ...`), or `None` under
    /// [`ClientAuth::Post`].
    ///
    /// # Security
    /// Contains the client secret: never log it.
    pub fn authorization(&self) -> Option<&str> {
        (!self.authorization.is_empty()).then(|| self.authorization.secret())
    }

    /// The key this client's token is kept under in a [`TokenStore`](crate::TokenStore):
    /// `alf:` and 32 hex digits of a SHA-256 over the token endpoint, the client id, the
    /// scopes and the extra parameters. The secret is not part of it.
    pub fn store_key(&self) -> String<64> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.token_endpoint.as_bytes());
        h.update([0]);
        h.update(self.client_id.as_bytes());
        h.update([0]);
        h.update(self.form_params().as_bytes());
        let digest = h.finalize();
        let mut key = String::new();
        let _ = key.push_str("alf:");
        for b in &digest[..16] {
            let _ = write!(key, "{b:02x}");
        }
        key
    }
}

/// Builder for [`Config`]; see [`Config::builder`].
#[derive(Clone)]
pub struct ConfigBuilder<'a> {
    token_endpoint: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
    auth: ClientAuth,
    scopes: Vec<&'a str, MAX_SCOPES>,
    params: Vec<(&'a str, &'a str), MAX_PARAMS>,
    refresh: RefreshPolicy,
    retry: RetryPolicy,
    jitter_seed: Option<u64>,
    store: StorePolicy,
    overflow: bool,
}

impl fmt::Debug for ConfigBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigBuilder")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl<'a> ConfigBuilder<'a> {
    /// Choose the client authentication method (default [`ClientAuth::Basic`]).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Add a scope; scopes are sent space-separated in one `scope` parameter, in order.
    /// `scope("a b")` adds two.
    pub fn scope(mut self, scope: &'a str) -> Self {
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            self.overflow |= self.scopes.push(s).is_err();
        }
        if scope.split(' ').all(str::is_empty) {
            // An empty or blank scope is a mistake worth reporting.
            self.overflow |= self.scopes.push("").is_err();
        }
        self
    }

    /// Add an extra form parameter, such as `audience` or `resource` (repeatable: each call
    /// adds one, in order).
    pub fn param(mut self, name: &'a str, value: &'a str) -> Self {
        self.overflow |= self.params.push((name, value)).is_err();
        self
    }

    /// Set the refresh policy.
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }

    /// Set the retry policy for the token request.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Set how a client coordinates with other processes through a shared store.
    pub fn store_policy(mut self, policy: StorePolicy) -> Self {
        self.store = policy;
        self
    }

    /// Seed for the jitter of refresh times and backoff. Give each device its own (a hardware
    /// random number, a MAC address); the default derives one from the client id, so devices
    /// sharing a client id would jitter alike.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Validate and encode.
    pub fn build(self) -> Result<Config, ConfigError> {
        if self.overflow {
            return Err(ConfigError::TooMany);
        }
        validate_endpoint(self.token_endpoint)?;
        if self.client_id.is_empty() || self.client_id.len() > CLIENT_ID_CAPACITY {
            return Err(ConfigError::InvalidClientId);
        }
        let secret = SecretString::try_from_str(self.client_secret)
            .ok_or(ConfigError::InvalidClientSecret)?;
        for s in &self.scopes {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let ok = !s.is_empty()
                && s.bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E));
            if !ok {
                return Err(ConfigError::InvalidScope);
            }
        }
        for (name, _) in &self.params {
            if name.is_empty()
                || matches!(
                    *name,
                    "grant_type" | "scope" | "client_id" | "client_secret"
                )
            {
                return Err(ConfigError::InvalidParameter);
            }
        }

        let mut form = SecretString::<FORM_CAPACITY>::new();
        let mut authorization = SecretString::<AUTHORIZATION_CAPACITY>::new();
        let too_long = |_| ConfigError::TooLong;
        form.write_str("grant_type=client_credentials")
            .map_err(too_long)?;
        if !self.scopes.is_empty() {
            form.write_str("&scope=").map_err(too_long)?;
            for (i, s) in self.scopes.iter().enumerate() {
                if i > 0 {
                    form.write_str("%20").map_err(too_long)?;
                }
                write_encoded(&mut form, s).map_err(too_long)?;
            }
        }
        for (name, value) in &self.params {
            form.write_str("&").map_err(too_long)?;
            write_encoded(&mut form, name).map_err(too_long)?;
            form.write_str("=").map_err(too_long)?;
            write_encoded(&mut form, value).map_err(too_long)?;
        }
        let params_end = form.len();
        match self.auth {
            ClientAuth::Basic => {
                write_basic_authorization(&mut authorization, self.client_id, self.client_secret)?;
            }
            ClientAuth::Post => {
                form.write_str("&client_id=").map_err(too_long)?;
                write_encoded(&mut form, self.client_id).map_err(too_long)?;
                form.write_str("&client_secret=").map_err(too_long)?;
                write_encoded(&mut form, self.client_secret).map_err(too_long)?;
            }
        }

        if self.refresh.default_lifetime == crate::Duration::ZERO
            || self.refresh.max_lifetime == crate::Duration::ZERO
        {
            return Err(ConfigError::InvalidPolicy);
        }

        let jitter_seed = self.jitter_seed.unwrap_or_else(|| {
            // FNV-1a of the client id: stable, cheap, and different per client.
            self.client_id
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
        });

        Ok(Config {
            token_endpoint: String::try_from(self.token_endpoint)
                .map_err(|_| ConfigError::InvalidTokenEndpoint)?,
            client_id: String::try_from(self.client_id)
                .map_err(|_| ConfigError::InvalidClientId)?,
            auth: self.auth,
            form,
            params_end,
            authorization,
            secret,
            refresh: self.refresh,
            retry: self.retry,
            jitter_seed,
            store: self.store,
        })
    }
}

/// `http(s)://host[:port][/path][?query]`, no fragment, no whitespace or control bytes, and
/// no user info (credentials in a URL would leak into logs).
fn validate_endpoint(url: &str) -> Result<(), ConfigError> {
    let bad = Err(ConfigError::InvalidTokenEndpoint);
    if url.len() > TOKEN_ENDPOINT_CAPACITY || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return bad;
    }
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        r
    } else {
        return bad;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty()
        || authority.starts_with(':')
        || authority.contains('@')
        || url.contains('#')
    {
        return bad;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "https://auth.example.com/oauth2/token";

    #[test]
    fn basic_is_the_default_and_the_form_holds_no_secret() {
        let c = Config::builder(EP, "client", "s3cret")
            .scope("read write")
            .scope("admin")
            .param("audience", "https://api.example.com")
            .param("resource", "urn:a")
            .param("resource", "urn:b")
            .build()
            .unwrap();
        assert_eq!(
            c.form_body(),
            "grant_type=client_credentials&scope=read%20write%20admin\
             &audience=https%3A%2F%2Fapi.example.com&resource=urn%3Aa&resource=urn%3Ab"
        );
        assert_eq!(c.form_params(), c.form_body());
        assert_eq!(c.authorization(), Some("Basic Y2xpZW50OnMzY3JldA=="));
    }

    #[test]
    fn post_puts_credentials_last_in_the_body() {
        let c = Config::builder(EP, "id with space", "p+q&r")
            .client_auth(ClientAuth::Post)
            .build()
            .unwrap();
        assert_eq!(
            c.form_body(),
            "grant_type=client_credentials&client_id=id%20with%20space&client_secret=p%2Bq%26r"
        );
        assert_eq!(c.form_params(), "grant_type=client_credentials");
        assert_eq!(c.authorization(), None);
    }

    #[test]
    fn invalid_configuration_fails_at_build() {
        let cases: &[(ConfigBuilder<'_>, ConfigError)] = &[
            (
                Config::builder("ftp://x/token", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (
                Config::builder("https://", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (
                Config::builder("https://a b/t", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (
                Config::builder("https://u:p@h/t", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (
                Config::builder("https://h/t#frag", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (
                Config::builder("https://h/t\r\n", "id", "s"),
                ConfigError::InvalidTokenEndpoint,
            ),
            (Config::builder(EP, "", "s"), ConfigError::InvalidClientId),
            (
                Config::builder(EP, "id", "s").scope("bad\"scope"),
                ConfigError::InvalidScope,
            ),
            (
                Config::builder(EP, "id", "s").scope("  "),
                ConfigError::InvalidScope,
            ),
            (
                Config::builder(EP, "id", "s").param("client_secret", "x"),
                ConfigError::InvalidParameter,
            ),
            (
                Config::builder(EP, "id", "s").param("", "x"),
                ConfigError::InvalidParameter,
            ),
            (
                Config::builder(EP, "id", "s")
                    .refresh_policy(RefreshPolicy::DEFAULT.default_lifetime(crate::Duration::ZERO)),
                ConfigError::InvalidPolicy,
            ),
        ];
        for (b, want) in cases {
            assert_eq!(b.clone().build().err(), Some(*want), "{b:?}");
        }
        let long = [b'x'; 300];
        let long = core::str::from_utf8(&long).unwrap();
        assert_eq!(
            Config::builder(EP, "id", long).build().err(),
            Some(ConfigError::InvalidClientSecret)
        );
        assert_eq!(
            Config::builder(EP, long, "s").build().err(),
            Some(ConfigError::InvalidClientId)
        );
        let mut b = Config::builder(EP, "id", "s");
        for _ in 0..=MAX_PARAMS {
            b = b.param("resource", "r");
        }
        assert_eq!(b.build().err(), Some(ConfigError::TooMany));
        let b = Config::builder(EP, "id", "s")
            .param("audience", long)
            .param("resource", long)
            .param("x", long);
        assert_eq!(b.build().err(), Some(ConfigError::TooLong));
    }

    #[test]
    fn store_key_depends_on_scope_and_client_but_not_secret() {
        let k = |id: &str, secret: &str, scope: &'static str| {
            Config::builder(EP, id, secret)
                .scope(scope)
                .build()
                .unwrap()
                .store_key()
        };
        assert_eq!(k("a", "s1", "x"), k("a", "s2", "x"));
        assert_ne!(k("a", "s", "x"), k("b", "s", "x"));
        assert_ne!(k("a", "s", "x"), k("a", "s", "y"));
        let key = k("a", "s", "x");
        assert!(key.starts_with("alf:") && key.len() == 36);
    }

    #[test]
    fn debug_redacts() {
        extern crate std;
        let c = Config::builder(EP, "id", "topsecret").build().unwrap();
        let s = std::format!("{c:?} {:?}", Config::builder(EP, "id", "topsecret"));
        assert!(!s.contains("topsecret"));
        assert!(!s.contains(c.authorization().unwrap()));
    }
}
