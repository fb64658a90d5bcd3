//! [`SessionLayer`]: builds [`SessionService`](super::SessionService)s.

use std::sync::Arc;

use aeturnis_session::SessionManager;
use tower::Layer;

use crate::session::config::SessionLayerConfig;
use crate::session::service::SessionService;

/// Gives every request a lazy [`SessionHandle`](super::SessionHandle) (in
/// its extensions) read from the cookie or the bearer token, and writes the
/// `Set-Cookie` its handlers asked for. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionLayer {
    manager: SessionManager,
    config: Arc<SessionLayerConfig>,
}

impl SessionLayer {
    /// The layer over `manager` with `config`, checked by
    /// [`SessionLayerConfig::validate`].
    pub fn new(manager: SessionManager, config: SessionLayerConfig) -> crate::Result<Self> {
        config.validate()?;
        Ok(SessionLayer {
            manager,
            config: Arc::new(config),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &SessionLayerConfig {
        &self.config
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            config: Arc::clone(&self.config),
        }
    }
}
