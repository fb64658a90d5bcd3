//! [`SessionLayerConfig`]: where the token comes from, and the cookie's
//! attributes.

/// Where a request's session token is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenSource {
    /// The session cookie only.
    Cookie,
    /// `Authorization: Bearer <token>` only; the layer never sets cookies.
    Bearer,
    /// `Authorization: Bearer` when present, else the cookie. Default.
    #[default]
    CookieOrBearer,
}

impl TokenSource {
    /// Whether the cookie is read and written.
    #[must_use]
    pub fn uses_cookie(self) -> bool {
        matches!(self, TokenSource::Cookie | TokenSource::CookieOrBearer)
    }

    /// Whether the `Authorization` header is read.
    #[must_use]
    pub fn uses_bearer(self) -> bool {
        matches!(self, TokenSource::Bearer | TokenSource::CookieOrBearer)
    }
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSite {
    /// Only same-site requests carry the cookie.
    Strict,
    /// Same-site requests and top-level navigations. Default.
    #[default]
    Lax,
    /// Every request (browsers require `Secure` with it).
    None,
}

/// The session cookie's name and attributes. The defaults are the secure
/// ones: `Secure`, `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain` (the
/// cookie stays on the host that set it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieConfig {
    /// The cookie name. Default: `session`.
    pub name: String,
    /// `Secure` (sent over HTTPS only). Default: `true`.
    pub secure: bool,
    /// `HttpOnly` (hidden from scripts). Default: `true`.
    pub http_only: bool,
    /// `SameSite`. Default: [`SameSite::Lax`].
    pub same_site: SameSite,
    /// `Path`. Default: `/`.
    pub path: String,
    /// `Domain`. Default: none (host-only).
    pub domain: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            name: "session".to_owned(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".to_owned(),
            domain: None,
        }
    }
}

/// The [`SessionLayer`](super::SessionLayer)'s settings.
///
/// ```
/// use aeturnis_tower::session::{SameSite, SessionLayerConfig, TokenSource};
/// let config = SessionLayerConfig::default()
///     .with_token_source(TokenSource::Cookie)
///     .with_cookie_name("sid")
///     .with_same_site(SameSite::Strict);
/// assert!(config.validate().is_ok());
/// assert!(SessionLayerConfig::default().with_cookie_name("a b").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionLayerConfig {
    /// Where tokens come from. Default: [`TokenSource::CookieOrBearer`].
    pub token_source: TokenSource,
    /// The cookie. Default: [`CookieConfig::default`].
    pub cookie: CookieConfig,
}

impl SessionLayerConfig {
    /// Sets [`token_source`](Self::token_source).
    #[must_use]
    pub fn with_token_source(mut self, source: TokenSource) -> Self {
        self.token_source = source;
        self
    }

    /// Sets the cookie name.
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// Sets `Secure` (turn it off only for plain-HTTP development).
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// Sets `HttpOnly`.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// Sets `SameSite`.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Sets `Path`.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// Sets `Domain`.
    #[must_use]
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// Checks the cookie name is an RFC 6265 token
    /// ([`Error::InvalidCookieName`](crate::Error::InvalidCookieName)
    /// otherwise), and that path and domain hold no `;` or control
    /// characters ([`Error::InvalidCookieAttribute`](crate::Error::InvalidCookieAttribute)).
    pub fn validate(&self) -> crate::Result<()> {
        let c = &self.cookie;
        let token = |b: u8| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b);
        if c.name.is_empty() || !c.name.bytes().all(token) {
            return Err(crate::Error::InvalidCookieName(c.name.clone()));
        }
        let attr = |s: &str| s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b';');
        for value in std::iter::once(c.path.as_str()).chain(c.domain.as_deref()) {
            if !attr(value) {
                return Err(crate::Error::InvalidCookieAttribute(value.to_owned()));
            }
        }
        Ok(())
    }
}
