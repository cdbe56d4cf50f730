//! Test helpers for the pages: a [`Browser`] that keeps cookies across requests (and may
//! claim a peer address), and fixtures for users with passwords and clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use url::Url;

use crate::app::testing::{TestApp, TestResponse, form_request};
use crate::model::{Client, ClientAuthMethod, User};
use crate::storage::testing::fixtures::native_client_metadata;
use crate::storage::{clients, passwords, users};

/// A browser: sends requests through a router, keeping the cookies it is given.
pub(crate) struct Browser {
    router: Router,
    cookies: BTreeMap<String, String>,
    peer: Option<SocketAddr>,
}

impl TestApp {
    /// A browser without cookies on this app.
    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.router.clone())
    }

    /// A user with a password hashed by the app's current scheme.
    pub(crate) async fn user_with_password(&self, username: &str, password: &str) -> User {
        let manager = self.state.passwords.clone().unwrap();
        let mut rng = self.state.rng.fork();
        let (version, hash) = manager.hash(&mut rng, password).await.unwrap();
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        let user = users::add_user(&mut conn, &self.clock, &mut rng, username)
            .await
            .unwrap();
        passwords::add_password(
            &mut conn,
            &self.clock,
            &mut rng,
            user.id,
            &hash,
            version,
            None,
        )
        .await
        .unwrap();
        user
    }

    /// A client with these redirect URIs and auth method.
    pub(crate) async fn client_with(
        &self,
        redirect_uris: &[&str],
        auth_method: ClientAuthMethod,
    ) -> Client {
        let mut metadata = test_metadata(redirect_uris, auth_method, "Test Client");
        // A registered web client's home page is on its redirect URIs' host (MSC2966).
        if let Some(first) = metadata.redirect_uris.first()
            && first.scheme() == "https"
            && let Some(host) = first.host_str()
        {
            metadata.client_uri = Some(format!("https://{host}/").parse().unwrap());
        }
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        let mut rng = self.state.rng.fork();
        clients::add_client(&mut conn, &self.clock, &mut rng, None, metadata, None)
            .await
            .unwrap()
    }

    /// A client declared in the config (`clients`), with these redirect URIs and auth method.
    pub(crate) async fn static_client_with(
        &self,
        redirect_uris: &[&str],
        auth_method: ClientAuthMethod,
    ) -> Client {
        let metadata = test_metadata(redirect_uris, auth_method, "Config Client");
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        let id = ulid::Ulid::from_parts(1, 42);
        clients::upsert_static_client(&mut conn, &self.clock, id, None, metadata)
            .await
            .unwrap()
    }

    /// A user with no password (as made by an upstream sign-in).
    pub(crate) async fn user_without_password(&self, username: &str) -> User {
        let mut conn = self.state.db.pool().acquire().await.unwrap();
        users::add_user(&mut conn, &self.clock, &mut self.state.rng.fork(), username)
            .await
            .unwrap()
    }

    /// A public native client declared in the config, with one redirect URI.
    pub(crate) async fn static_test_client(&self) -> Client {
        self.static_client_with(&["io.element.app:/callback"], ClientAuthMethod::None)
            .await
    }

    /// A public native client (Element X style) with one redirect URI.
    pub(crate) async fn native_test_client(&self) -> Client {
        self.client_with(&["io.element.app:/callback"], ClientAuthMethod::None)
            .await
    }
}

/// Native-client metadata with these redirect URIs, auth method and name.
fn test_metadata(
    redirect_uris: &[&str],
    auth_method: ClientAuthMethod,
    name: &str,
) -> crate::model::ClientMetadata {
    let mut metadata = native_client_metadata();
    metadata.redirect_uris = redirect_uris
        .iter()
        .map(|uri| uri.parse().unwrap())
        .collect();
    metadata.token_endpoint_auth_method = auth_method;
    metadata.client_name = Some(name.to_owned());
    metadata
}

impl Browser {
    /// A browser on `router`.
    pub(crate) fn new(router: Router) -> Self {
        Self {
            router,
            cookies: BTreeMap::new(),
            peer: None,
        }
    }

    /// Requests come from `peer` (as the server's connect info would say).
    pub(crate) fn with_peer(mut self, peer: &str) -> Self {
        self.peer = Some(peer.parse().unwrap());
        self
    }

    /// Whether the browser holds cookie `name`.
    pub(crate) fn has_cookie(&self, name: &str) -> bool {
        self.cookies.contains_key(name)
    }

    /// The value of cookie `name`, as the browser holds it.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.get(name).cloned()
    }

    /// Sets cookie `name` as if some other site had planted it.
    pub(crate) fn plant_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// Forgets cookie `name`.
    pub(crate) fn drop_cookie(&mut self, name: &str) {
        self.cookies.remove(name);
    }

    /// Sends `request` with the cookies, and keeps the ones set by the answer.
    pub(crate) async fn send(&mut self, mut request: Request<Body>) -> TestResponse {
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request
                .headers_mut()
                .insert(header::COOKIE, cookie.parse().unwrap());
        }
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = TestApp::send_to(&self.router, request).await;
        for value in response.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap();
            let (name, content) = pair.split_once('=').unwrap();
            if value.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), content.to_owned());
            }
        }
        response
    }

    /// `GET path`.
    pub(crate) async fn get(&mut self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// `POST path` with a form.
    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        self.send(form_request(Method::POST, path, form)).await
    }

    /// GETs the login page at `path` and posts the credentials with its CSRF token and hidden
    /// fields; returns the answer to the POST.
    pub(crate) async fn login_at(
        &mut self,
        path: &str,
        username: &str,
        password: &str,
    ) -> TestResponse {
        let page = self.get(path).await;
        page.assert_status(StatusCode::OK);
        let html = page.text();
        let mut form = vec![
            ("csrf", csrf_of(&html)),
            ("username", username.to_owned()),
            ("password", password.to_owned()),
        ];
        for name in ["kind", "id"] {
            if let Some(value) = hidden_field(&html, name) {
                form.push((name, value));
            }
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post("/auth/login", &form).await
    }

    /// Logs in from the plain login page; panics unless it worked.
    pub(crate) async fn login(&mut self, username: &str, password: &str) {
        let response = self.login_at("/auth/login", username, password).await;
        response.assert_status(StatusCode::SEE_OTHER);
    }
}

impl TestApp {
    /// Sends `request` through `router` and collects the answer.
    pub(crate) async fn send_to(router: &Router, request: Request<Body>) -> TestResponse {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body,
        }
    }
}

/// The value of the hidden input `name` of a page (the first one).
pub(crate) fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html_unescape(&html[start..end]))
}

/// The CSRF token of a page's form.
pub(crate) fn csrf_of(html: &str) -> String {
    hidden_field(html, "csrf").unwrap_or_else(|| panic!("no CSRF field in {html}"))
}

/// Undoes minijinja's attribute escaping.
pub(crate) fn html_unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `Location` of a redirect, checking the status is 303.
#[track_caller]
pub(crate) fn location(response: &TestResponse) -> String {
    response.assert_status(StatusCode::SEE_OTHER);
    response
        .header("location")
        .unwrap_or_else(|| panic!("no location: {response:?}"))
        .to_owned()
}

/// The query (or fragment, with `fragment`) parameters of a URL as a map.
pub(crate) fn url_params(url: &str, fragment: bool) -> BTreeMap<String, String> {
    let url = Url::parse(url).unwrap();
    let text = if fragment {
        url.fragment().unwrap_or_default().to_owned()
    } else {
        url.query().unwrap_or_default().to_owned()
    };
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}
