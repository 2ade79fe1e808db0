//! The HTTP client that posts events to the business's endpoints (reqwest): a 15 s budget per
//! request, no redirects, and — unless private networks are allowed — a resolver that hands
//! reqwest only public addresses, so that a host which resolves to a public address when the
//! endpoint is created and to an internal one later (DNS rebinding) is still never reached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::endpoint::{forbidden_address, literal_address, UrlError};

/// A 2xx within this long is delivered (API.md).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long connecting may take of that.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the resolver answers for a host with no public address; found again in the error's
/// chain to tell the attempt why.
const INTERNAL_ONLY: &str = "the host resolves only to internal addresses";

/// Posts events to endpoints. Cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

/// What became of one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// Why it is not delivered, in a few words (no URL: it may carry a token of the
    /// business's); `None` when delivered.
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl PostOutcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// Resolves a host to its public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !forbidden_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(std::io::Error::other(INTERNAL_ONLY).into());
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

impl WebhookClient {
    /// A client that reaches internal addresses only when `allow_private`.
    pub fn new(allow_private: bool) -> Result<WebhookClient, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect would be a way around the address check; and a receiver that moved
            // is told by its failing attempts.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(WebhookClient {
            http: builder.build()?,
            allow_private,
        })
    }

    /// Whether internal addresses may be reached.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Refuses a URL whose host is, or resolves only to, an internal address (unless allowed).
    pub async fn check_address(&self, url: &url::Url) -> Result<(), UrlError> {
        if self.allow_private {
            return Ok(());
        }
        if let Some(ip) = literal_address(url) {
            return match forbidden_address(ip) {
                true => Err(UrlError::Private(ip)),
                false => Ok(()),
            };
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|_| UrlError::Unresolved(host.clone()))?
            .collect();
        match addrs.iter().find(|a| forbidden_address(a.ip())) {
            Some(a) => Err(UrlError::Private(a.ip())),
            None if addrs.is_empty() => Err(UrlError::Unresolved(host)),
            None => Ok(()),
        }
    }

    /// POSTs `body` with `headers` to `url`; delivered on a 2xx within [`DELIVERY_TIMEOUT`].
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> PostOutcome {
        let started = Instant::now();
        let elapsed =
            |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // A literal address is never resolved, so it is checked here (it was at creation, but
        // the setting may have changed since).
        let literal = url::Url::parse(url).ok().and_then(|u| literal_address(&u));
        if let Some(ip) = literal.filter(|ip| !self.allow_private && forbidden_address(*ip)) {
            return PostOutcome {
                status: None,
                error: Some(UrlError::Private(ip).to_string()),
                duration_ms: 0,
            };
        }
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                // The body is read (and dropped) so that the connection can be used again.
                let _ = response.bytes().await;
                PostOutcome {
                    status: Some(status.as_u16()),
                    error: (!status.is_success())
                        .then(|| format!("the endpoint answered {}", status.as_u16())),
                    duration_ms: elapsed(started),
                }
            }
            Err(e) => PostOutcome {
                status: None,
                error: Some(describe(&e)),
                duration_ms: elapsed(started),
            },
        }
    }
}

/// A failed request in a few words, without its URL.
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.to_string().contains(INTERNAL_ONLY) {
            return INTERNAL_ONLY.to_owned();
        }
        source = s.source();
    }
    if e.is_timeout() {
        format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}
