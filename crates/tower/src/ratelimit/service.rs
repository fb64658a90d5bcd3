//! [`RateLimit`]: the service a [`RateLimitLayer`](super::RateLimitLayer)
//! wraps around the inner one.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use crate::ratelimit::future::ResponseFuture;
use crate::ratelimit::headers::HeaderOptions;
use crate::ratelimit::key::KeyExtractor;
use crate::ratelimit::limiter::{Cost, RequestLimiter, UnitCost};

/// Checks each request before the inner service sees it.
///
/// Admitted: the [`Verdict`](super::Verdict) goes into the request's
/// extensions (a handler reads `remaining` from it), then the inner
/// response, with `RateLimit-Policy` / `RateLimit` when
/// [`HeaderOptions::on_allowed`] (appended to those of an inner layer). Denied: 429 with `Retry-After`, the
/// draft's headers and a problem+json body; a fail-closed denial (Redis
/// down) is 503 with `Retry-After`. A request without a key, or a limiter
/// error, answers by [`LimitError::problem`](super::LimitError::problem).
#[derive(Debug, Clone)]
pub struct RateLimit<S, K, C = UnitCost> {
    pub(crate) inner: S,
    pub(crate) limiter: RequestLimiter<K, C>,
    pub(crate) headers: HeaderOptions,
}

impl<S, K, C> RateLimit<S, K, C> {
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

    /// The limiter this service checks.
    pub fn limiter(&self) -> &RequestLimiter<K, C> {
        &self.limiter
    }
}

impl<S, K, C, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, K, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    K: KeyExtractor<Request<ReqBody>>,
    C: Cost<Request<ReqBody>>,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let check = self.limiter.check(&request);
        // the clone is not ready; the service polled ready goes into the future
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let options = self.headers;
        ResponseFuture::new(async move {
            let verdict = match check.await {
                Ok(verdict) => verdict,
                Err(e) => return Ok(e.problem().into_response()),
            };
            if let Some(problem) = verdict.problem() {
                let fail_closed = verdict.is_fail_closed();
                let mut response = problem.into_response();
                if !fail_closed {
                    verdict.write_headers(response.headers_mut(), options.legacy);
                }
                return Ok(response);
            }
            // handlers and later layers can read it (`Extension<Verdict>`)
            request.extensions_mut().insert(verdict.clone());
            let mut response = inner.call(request).await?;
            if options.on_allowed {
                verdict.write_headers(response.headers_mut(), options.legacy);
            }
            Ok(response)
        })
    }
}
