//! Answers the router gives itself: `/healthz`, the `.well-known/matrix` files, the `/auth`
//! redirect and Matrix JSON errors (`{"errcode":..,"error":..}`, spec §Standard error response).

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW,
    CACHE_CONTROL, CONTENT_TYPE, LOCATION,
};
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use url::Url;

use super::Body;
use super::route::MAS_PREFIX;
use crate::probe::probe;

/// How long `/healthz` waits for each backend's health endpoint.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A response with a body the router made itself.
pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = full(status, body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Browser clients must be able to read our errors on /_matrix paths (spec §Web Browser
    // Clients), and the well-known files must be readable cross-origin.
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// A Matrix JSON error.
pub(crate) fn matrix_error(status: StatusCode, errcode: &str, error: &str) -> Response<Body> {
    let body = serde_json::json!({ "errcode": errcode, "error": error });
    json(status, body.to_string())
}

/// 405 for a method the router does not serve on one of its own paths.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = matrix_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "M_UNRECOGNIZED",
        "Unrecognized request",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// The two `.well-known/matrix` bodies, built once from the public origin.
#[derive(Debug, Clone)]
pub(crate) struct WellKnown {
    client: Bytes,
    server: Bytes,
}

impl WellKnown {
    /// `client`: base URL, MSC2965 issuer and account URL, all public; `server`: `host:port` of
    /// the origin, the port being 443 for a default https origin.
    pub(crate) fn new(origin: &Url) -> Self {
        // The origin serialization drops a trailing slash, a path and a default port.
        let base = origin.origin().ascii_serialization();
        let client = serde_json::json!({
            "m.homeserver": { "base_url": base },
            "org.matrix.msc2965.authentication": {
                "issuer": format!("{base}{MAS_PREFIX}/"),
                "account": format!("{base}{MAS_PREFIX}/account/"),
            },
        });
        let host = origin.host_str().unwrap_or("localhost");
        let port = origin.port_or_known_default().unwrap_or(443);
        let server = serde_json::json!({ "m.server": format!("{host}:{port}") });
        Self {
            client: Bytes::from(client.to_string()),
            server: Bytes::from(server.to_string()),
        }
    }

    pub(crate) fn client(&self, method: &Method) -> Response<Body> {
        well_known(method, &self.client)
    }

    pub(crate) fn server(&self, method: &Method) -> Response<Body> {
        well_known(method, &self.server)
    }
}

/// GET/HEAD answer the body; OPTIONS answers the CORS preflight.
fn well_known(method: &Method, body: &Bytes) -> Response<Body> {
    let mut response = match *method {
        Method::GET | Method::HEAD => json(StatusCode::OK, body.clone()),
        Method::OPTIONS => {
            let mut response = full(StatusCode::NO_CONTENT, Bytes::new());
            response
                .headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            response
        }
        _ => return method_not_allowed("GET, HEAD, OPTIONS"),
    };
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
    response
}

/// `/auth` → 308 `/auth/`, keeping the query; 308 keeps the method and body too.
pub(crate) fn auth_slash(uri: &Uri) -> Response<Body> {
    let location = match uri.query() {
        Some(query) => format!("{MAS_PREFIX}/?{query}"),
        None => format!("{MAS_PREFIX}/"),
    };
    let mut response = full(StatusCode::PERMANENT_REDIRECT, Bytes::new());
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

/// The health endpoints of the two backends.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    pub(crate) synapse: Uri,
    pub(crate) mas: Uri,
}

impl Health {
    /// Probes both backends at once: 200 when both answer 2xx, else 503 with each failing
    /// component's reason.
    pub(crate) async fn check(&self, method: &Method) -> Response<Body> {
        if !matches!(*method, Method::GET | Method::HEAD) {
            return method_not_allowed("GET, HEAD");
        }
        let (synapse, mas) = tokio::join!(
            probe(&self.synapse, HEALTH_PROBE_TIMEOUT),
            probe(&self.mas, HEALTH_PROBE_TIMEOUT),
        );
        let healthy = synapse.is_ok() && mas.is_ok();
        let reason = |result: Result<(), crate::probe::ProbeError>| match result {
            Ok(()) => "ok".to_owned(),
            Err(error) => error.to_string(),
        };
        let body = serde_json::json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "synapse": reason(synapse),
            "mas": reason(mas),
        });
        let status = if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = json(status, body.to_string());
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, StatusCode, Uri};
    use http_body_util::BodyExt;
    use url::Url;

    use super::{WellKnown, auth_slash};

    async fn body_json(response: http::Response<super::Body>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn well_known_for_https_origin() {
        let wk = WellKnown::new(&Url::parse("https://matrix.example.com").unwrap());
        let response = wk.client(&Method::GET);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            body_json(response).await,
            serde_json::json!({
                "m.homeserver": {"base_url": "https://matrix.example.com"},
                "org.matrix.msc2965.authentication": {
                    "issuer": "https://matrix.example.com/auth/",
                    "account": "https://matrix.example.com/auth/account/",
                },
            })
        );
        assert_eq!(
            body_json(wk.server(&Method::GET)).await,
            serde_json::json!({"m.server": "matrix.example.com:443"})
        );
    }

    #[tokio::test]
    async fn well_known_for_http_origin_names_the_port() {
        let wk = WellKnown::new(&Url::parse("http://localhost:8000/").unwrap());
        assert_eq!(
            body_json(wk.client(&Method::GET)).await,
            serde_json::json!({
                "m.homeserver": {"base_url": "http://localhost:8000"},
                "org.matrix.msc2965.authentication": {
                    "issuer": "http://localhost:8000/auth/",
                    "account": "http://localhost:8000/auth/account/",
                },
            })
        );
        assert_eq!(
            body_json(wk.server(&Method::GET)).await,
            serde_json::json!({"m.server": "localhost:8000"})
        );
        let default_port = WellKnown::new(&Url::parse("http://example.org").unwrap());
        assert_eq!(
            body_json(default_port.server(&Method::GET)).await,
            serde_json::json!({"m.server": "example.org:80"})
        );
    }

    #[test]
    fn well_known_answers_cors_preflight() {
        let wk = WellKnown::new(&Url::parse("https://matrix.example.com").unwrap());
        let response = wk.client(&Method::OPTIONS);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert!(
            response
                .headers()
                .contains_key("access-control-allow-methods")
        );
        assert_eq!(
            wk.client(&Method::POST).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn auth_redirect_keeps_query() {
        let with_query = auth_slash(&Uri::from_static("/auth?a=1&b=%20"));
        assert_eq!(with_query.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(with_query.headers()["location"], "/auth/?a=1&b=%20");
        let without = auth_slash(&Uri::from_static("/auth"));
        assert_eq!(without.headers()["location"], "/auth/");
    }
}
