//! [`SessionService`] and its [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use aeturnis_session::SessionManager;
use http::{Request, Response};
use tower::Service;

use crate::session::config::SessionLayerConfig;
use crate::session::handle::{read_token, SessionHandle};

/// The service a [`SessionLayer`](super::SessionLayer) wraps around the
/// inner one.
#[derive(Debug, Clone)]
pub struct SessionService<S> {
    pub(crate) inner: S,
    pub(crate) manager: SessionManager,
    pub(crate) config: Arc<SessionLayerConfig>,
}

impl<S> SessionService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (token, from_cookie) = read_token(&self.config, request.headers());
        let handle = SessionHandle::new(
            self.manager.clone(),
            Arc::clone(&self.config),
            token,
            from_cookie,
        );
        request.extensions_mut().insert(handle.clone());
        ResponseFuture {
            inner: self.inner.call(request),
            handle,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner response, then the `Set-Cookie` the request called for.
    /// No allocation: it wraps the inner future.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        handle: SessionHandle,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        this.handle.finish(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}
