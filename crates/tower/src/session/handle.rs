//! [`SessionHandle`]: the request's session, loaded lazily and at most
//! once, and the login, rotation and logout that change its cookie.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aeturnis_session::{Session, SessionManager, SessionMetadata, UserId};
use http::{header, HeaderMap, HeaderValue};

use crate::session::config::{SameSite, SessionLayerConfig};

/// The session of one request, put in its extensions by the
/// [`SessionLayer`](super::SessionLayer). Cheap to clone (one `Arc`).
///
/// Nothing touches Redis until [`get`](Self::get) is called (by a handler,
/// an extractor or a later layer); the first call loads and slides the
/// session (one round trip), later calls reuse it.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

struct Shared {
    manager: SessionManager,
    config: Arc<SessionLayerConfig>,
    token: Option<String>,
    from_cookie: bool,
    /// `None` until loaded; then the session, if live.
    loaded: tokio::sync::Mutex<Option<Option<Session>>>,
    change: Mutex<Option<CookieChange>>,
}

enum CookieChange {
    Set { token: String, max_age: Duration },
    Clear,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the token is a bearer secret: never printed
        f.debug_struct("SessionHandle")
            .field("has_token", &self.shared.token.is_some())
            .field("from_cookie", &self.shared.from_cookie)
            .finish_non_exhaustive()
    }
}

impl SessionHandle {
    pub(crate) fn new(
        manager: SessionManager,
        config: Arc<SessionLayerConfig>,
        token: Option<String>,
        from_cookie: bool,
    ) -> SessionHandle {
        SessionHandle {
            shared: Arc::new(Shared {
                manager,
                config,
                token,
                from_cookie,
                loaded: tokio::sync::Mutex::new(None),
                change: Mutex::new(None),
            }),
        }
    }

    /// The session manager (for listing, revoking others, ...).
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.shared.manager
    }

    /// Whether the request carried a token at all.
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.shared.token.is_some()
    }

    /// The live session, loaded and slid on the first call (one round
    /// trip; a malformed token is `None` without one), reused afterwards.
    /// An error is not remembered: the next call tries again.
    pub async fn get(&self) -> aeturnis_session::Result<Option<Session>> {
        let mut loaded = self.shared.loaded.lock().await;
        if let Some(session) = &*loaded {
            return Ok(session.clone());
        }
        let session = match &self.shared.token {
            Some(token) => self.shared.manager.get_by_token(token).await?,
            None => None,
        };
        #[cfg(feature = "metrics")]
        crate::metrics::record_session_load(session.is_some());
        *loaded = Some(session.clone());
        Ok(session)
    }

    /// Logs `user` in: creates a session and, when cookies are in use, sets
    /// the cookie on the response (`Max-Age` = the session's absolute
    /// lifetime left, so the cookie never outlives the session).
    pub async fn login(
        &self,
        user: &UserId,
        metadata: SessionMetadata,
    ) -> aeturnis_session::Result<Session> {
        let session = self.shared.manager.create(user, metadata).await?;
        self.replace(Some(session.clone()));
        Ok(session)
    }

    /// Gives the current session a new id (after a privilege change) and
    /// sets the new cookie. `None` when there is no live session.
    pub async fn rotate(&self) -> aeturnis_session::Result<Option<Session>> {
        let Some(current) = self.get().await? else {
            return Ok(None);
        };
        let rotated = self.shared.manager.rotate(&current.id).await?;
        self.replace(rotated.clone());
        Ok(rotated)
    }

    /// Revokes the current session (if any) and clears the cookie. Whether
    /// a live session was revoked.
    pub async fn logout(&self) -> aeturnis_session::Result<bool> {
        let revoked = match self.get().await? {
            Some(session) => self.shared.manager.revoke(&session.id).await?,
            None => false,
        };
        self.replace(None);
        Ok(revoked)
    }

    /// Records `session` as the request's session and its cookie change.
    fn replace(&self, session: Option<Session>) {
        if let Ok(mut loaded) = self.shared.loaded.try_lock() {
            *loaded = Some(session.clone());
        }
        let change = match session {
            Some(s) => CookieChange::Set {
                token: s.id.as_str().to_owned(),
                max_age: s
                    .absolute_expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            },
            None => CookieChange::Clear,
        };
        *self
            .shared
            .change
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(change);
    }

    /// Writes the `Set-Cookie` the request calls for: the one login,
    /// rotation or logout asked for, or a clearing one when the request's
    /// cookie named a session that is gone.
    pub(crate) fn finish(&self, headers: &mut HeaderMap) {
        let config = &*self.shared.config;
        if !config.token_source.uses_cookie() {
            return;
        }
        let change = self
            .shared
            .change
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let change = change.or_else(|| {
            let gone = self.shared.from_cookie
                && matches!(self.shared.loaded.try_lock().as_deref(), Ok(Some(None)));
            gone.then_some(CookieChange::Clear)
        });
        let Some(change) = change else { return };
        let (value, max_age) = match change {
            CookieChange::Set { token, max_age } => (token, max_age.as_secs()),
            CookieChange::Clear => (String::new(), 0),
        };
        if let Ok(v) = HeaderValue::from_str(&set_cookie(config, &value, max_age)) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

/// The `Set-Cookie` value: `name=value; Max-Age=N; Path=..; Domain=..;
/// Secure; HttpOnly; SameSite=..`.
fn set_cookie(config: &SessionLayerConfig, value: &str, max_age: u64) -> String {
    let c = &config.cookie;
    let mut cookie = cookie::Cookie::build((c.name.as_str(), value))
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .path(c.path.as_str())
        .secure(c.secure)
        .http_only(c.http_only)
        .same_site(match c.same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
    if let Some(domain) = &c.domain {
        cookie = cookie.domain(domain.as_str());
    }
    cookie.build().to_string()
}

/// The token of `headers` per the configured source: `Authorization:
/// Bearer` first (when accepted), then the cookie. `true` when it came from
/// the cookie.
pub(crate) fn read_token(
    config: &SessionLayerConfig,
    headers: &HeaderMap,
) -> (Option<String>, bool) {
    if config.token_source.uses_bearer() {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty());
        if let Some(token) = bearer {
            return (Some(token.to_owned()), false);
        }
    }
    if config.token_source.uses_cookie() {
        let name = config.cookie.name.as_str();
        let found = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name && !c.value().is_empty())
            .map(|c| c.value().to_owned());
        if found.is_some() {
            return (found, true);
        }
    }
    (None, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_write_every_cookie_attribute() {
        let config = SessionLayerConfig::default()
            .with_domain("example.com")
            .with_same_site(SameSite::Strict);
        assert_eq!(
            set_cookie(&config, "tok", 60),
            "session=tok; HttpOnly; SameSite=Strict; Secure; Path=/; Domain=example.com; Max-Age=60"
        );
    }

    #[test]
    fn should_prefer_bearer_and_fall_back_to_the_cookie() {
        let config = SessionLayerConfig::default();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; session=c"));
        assert_eq!(read_token(&config, &headers), (Some("c".to_owned()), true));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  b "),
        );
        assert_eq!(read_token(&config, &headers), (Some("b".to_owned()), false));
        let cookie_only =
            SessionLayerConfig::default().with_token_source(crate::session::TokenSource::Cookie);
        assert_eq!(
            read_token(&cookie_only, &headers),
            (Some("c".to_owned()), true)
        );
    }
}
