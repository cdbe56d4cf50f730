//! Fixtures for the OAuth API tests: users, clients, browser sessions and fulfilled grants
//! created directly through the storage functions (the authorize and consent pages have tests
//! of their own), and shortcuts for the requests the tests repeat.

use axum::body::Body;
use axum::http::{Method, Request, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::pool::PoolConnection;

use crate::app::testing::{TestApp, TestResponse, bearer, form_request};
use crate::crypto::{random, sha256_hex};
use crate::model::{
    ApplicationType, AuthenticationMethod, BrowserSession, Client, ClientAuthMethod,
    ClientMetadata, CodeChallenge, CodeChallengeMethod, GrantTypes, NewAuthorizationGrant,
    ResponseMode, User,
};
use crate::routes;
use crate::storage::testing::fixtures::native_client_metadata;
use crate::storage::{browser_sessions, clients, grants, passwords, users};

/// The redirect URI of the native test client.
pub(crate) const REDIRECT_URI: &str = "io.element.app:/callback";
/// The PKCE verifier of RFC 7636 appendix B…
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// …and its S256 challenge.
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A device ID that satisfies the policy.
pub(crate) const DEVICE: &str = "ABCDEFGHIJ";
/// The scope of an Element-X-style login.
pub(crate) const MATRIX_SCOPE: &str =
    "openid urn:matrix:client:api:* urn:matrix:client:device:ABCDEFGHIJ";

/// `/auth` + a route.
pub(crate) fn path(route: &str) -> String {
    format!("/auth{route}")
}

/// Tokens handed out by a successful exchange.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) body: serde_json::Value,
}

impl Tokens {
    pub(crate) fn from_response(response: &TestResponse) -> Self {
        let body = response.json();
        Self {
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
            body,
        }
    }
}

/// A [`TestApp`] with the OAuth API fixtures (a wrapper, so that the helpers of other areas'
/// tests cannot clash with these names).
pub(crate) struct ApiApp(pub(crate) TestApp);

impl std::ops::Deref for ApiApp {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl std::ops::DerefMut for ApiApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.0
    }
}

impl ApiApp {
    /// A test app over `db`.
    pub(crate) async fn new(db: crate::storage::Database) -> Self {
        Self(TestApp::new(db).await)
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self) -> PoolConnection<sqlx::Any> {
        self.state.db.pool().acquire().await.unwrap()
    }

    /// A new user (the mock homeserver knows it too).
    pub(crate) async fn user(&self, username: &str) -> User {
        let mut rng = self.state.rng.fork();
        let user = users::add_user(&mut *self.conn().await, &self.clock, &mut rng, username)
            .await
            .unwrap();
        self.homeserver
            .insert_user(username, crate::homeserver::MockUser::default());
        user
    }

    /// A public native client (Element X) with the code and refresh grants.
    pub(crate) async fn public_client(&self) -> Client {
        // The storage fixture's native client redirects to REDIRECT_URI.
        self.add_client(native_client_metadata(), None).await
    }

    /// A public native client registered for the device code and refresh grants only (what
    /// matrix-sdk registers for QR login).
    pub(crate) async fn device_client(&self) -> Client {
        let mut metadata = native_client_metadata();
        metadata.redirect_uris.clear();
        metadata.grant_types = GrantTypes {
            authorization_code: false,
            refresh_token: true,
            client_credentials: false,
            device_code: true,
        };
        self.add_client(metadata, None).await
    }

    /// `POST /oauth2/device` as the public `client`, for `scope`, from `peer` (an address with
    /// a port) when given, with a `User-Agent`.
    pub(crate) async fn device_authorization(
        &self,
        client: &Client,
        scope: &str,
        peer: Option<&str>,
    ) -> TestResponse {
        let client_id = client.id.to_string();
        let mut request = form_request(
            Method::POST,
            &path(routes::OAUTH2_DEVICE),
            &[("client_id", &client_id), ("scope", scope)],
        );
        request
            .headers_mut()
            .insert(header::USER_AGENT, "Element X/26.12".parse().unwrap());
        if let Some(peer) = peer {
            let peer: std::net::SocketAddr = peer.parse().unwrap();
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        self.request(request).await
    }

    /// One poll of the token endpoint with `device_code` as the public `client`.
    pub(crate) async fn poll_device_code(
        &self,
        client: &Client,
        device_code: &str,
    ) -> TestResponse {
        let client_id = client.id.to_string();
        self.token(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", &client_id),
        ])
        .await
    }

    /// A confidential web client authenticating with `method` and `secret`, registered for
    /// every grant.
    pub(crate) async fn confidential_client(
        &self,
        method: ClientAuthMethod,
        secret: &str,
    ) -> Client {
        let metadata = ClientMetadata {
            redirect_uris: vec!["https://app.example.com/cb".parse().unwrap()],
            grant_types: GrantTypes {
                authorization_code: true,
                refresh_token: true,
                client_credentials: true,
                device_code: false,
            },
            client_name: Some("Web app".to_owned()),
            logo_uri: None,
            client_uri: Some("https://app.example.com/".parse().unwrap()),
            policy_uri: None,
            tos_uri: None,
            jwks_uri: None,
            jwks: None,
            id_token_signed_response_alg: None,
            userinfo_signed_response_alg: None,
            token_endpoint_auth_method: method,
            token_endpoint_auth_signing_alg: None,
            initiate_login_uri: None,
            application_type: Some(ApplicationType::Web),
            contacts: Vec::new(),
        };
        self.add_client(metadata, Some(secret)).await
    }

    /// Stores a client with `metadata` and, optionally, an (encrypted) secret.
    pub(crate) async fn add_client(
        &self,
        metadata: ClientMetadata,
        secret: Option<&str>,
    ) -> Client {
        let mut rng = self.state.rng.fork();
        let encrypted =
            secret.map(|secret| self.state.encrypter.encrypt(&mut rng, secret.as_bytes()));
        clients::add_client(
            &mut *self.conn().await,
            &self.clock,
            &mut rng,
            encrypted,
            metadata,
            None,
        )
        .await
        .unwrap()
    }

    /// A browser session of `user` in which they just logged in with a password.
    pub(crate) async fn login(&self, user: &User) -> BrowserSession {
        let mut rng = self.state.rng.fork();
        let mut conn = self.conn().await;
        let session = browser_sessions::start_browser_session(
            &mut conn,
            &self.clock,
            &mut rng,
            user,
            Some("Mozilla/5.0"),
            Some("192.0.2.1"),
        )
        .await
        .unwrap();
        let password = passwords::add_password(
            &mut conn,
            &self.clock,
            &mut rng,
            user.id,
            "$argon2id$not-checked-here",
            1,
            None,
        )
        .await
        .unwrap();
        browser_sessions::record_authentication(
            &mut conn,
            &self.clock,
            &mut rng,
            session.id,
            AuthenticationMethod::Password {
                user_password_id: password.id,
            },
        )
        .await
        .unwrap();
        session
    }

    /// A grant of `client` for `scope`, consented in `browser`, with an S256 challenge of
    /// [`VERIFIER`] (or the given one); returns the code.
    pub(crate) async fn fulfilled_grant(
        &self,
        client: &Client,
        browser: &BrowserSession,
        scope: &str,
        challenge: Option<CodeChallenge>,
    ) -> String {
        let mut rng = self.state.rng.fork();
        let mut conn = self.conn().await;
        let request = NewAuthorizationGrant {
            client_id: client.id,
            redirect_uri: client.metadata.redirect_uris[0].clone(),
            // As Element X does; `exchange` repeats it.
            redirect_uri_explicit: true,
            scope: scope.parse().unwrap(),
            state: Some("xyz".to_owned()),
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            response_mode: ResponseMode::Query,
            response_type_code: true,
            response_type_id_token: false,
            code_challenge: challenge,
            login_hint: None,
            prompt: None,
        };
        let grant = grants::create_authorization_grant(&mut conn, &self.clock, &mut rng, request)
            .await
            .unwrap();
        let code = random::authorization_code(&mut rng);
        let fulfilled = grants::fulfill_authorization_grant(
            &mut conn,
            &self.clock,
            grant.id,
            browser.id,
            Some(&sha256_hex(&code)),
        )
        .await
        .unwrap();
        assert!(fulfilled);
        code
    }

    /// alice, signed in, and a code for `scope` granted to a new public client (S256 of
    /// [`VERIFIER`]): the start of most code-exchange tests.
    pub(crate) async fn alice_code(&self, scope: &str) -> AliceCode {
        let user = self.user("alice").await;
        let client = self.public_client().await;
        let browser = self.login(&user).await;
        let code = self.fulfilled_grant(&client, &browser, scope, s256()).await;
        AliceCode {
            user,
            client,
            browser,
            code,
        }
    }

    /// `POST /oauth2/token` with a form.
    pub(crate) async fn token(&self, form: &[(&str, &str)]) -> TestResponse {
        self.post_form(&path(routes::OAUTH2_TOKEN), form).await
    }

    /// Exchanges `code` as the public `client` with [`VERIFIER`].
    pub(crate) async fn exchange(&self, client: &Client, code: &str) -> TestResponse {
        let client_id = client.id.to_string();
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
        ])
        .await
    }

    /// A full login of `username` with the public client and `scope`: user, browser session,
    /// grant and exchange. Returns the client and the tokens.
    pub(crate) async fn logged_in(&self, username: &str, scope: &str) -> (Client, User, Tokens) {
        let user = self.user(username).await;
        let client = self.public_client().await;
        let browser = self.login(&user).await;
        let code = self.fulfilled_grant(&client, &browser, scope, s256()).await;
        let response = self.exchange(&client, &code).await;
        response.assert_status(axum::http::StatusCode::OK);
        (client, user, Tokens::from_response(&response))
    }

    /// Refreshes with the public `client`.
    pub(crate) async fn refresh(&self, client: &Client, refresh_token: &str) -> TestResponse {
        let client_id = client.id.to_string();
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client_id),
        ])
        .await
    }

    /// Introspects like Synapse does (shared secret, device-id header).
    pub(crate) async fn introspect(&self, token: &str) -> serde_json::Value {
        let request = form_request(
            Method::POST,
            &path(routes::OAUTH2_INTROSPECT),
            &[("token", token), ("token_type_hint", "access_token")],
        );
        let mut request = bearer(request, crate::app::testing::MATRIX_SECRET);
        request
            .headers_mut()
            .insert("x-mas-supports-device-id", "1".parse().unwrap());
        let response = self.request(request).await;
        response.assert_status(axum::http::StatusCode::OK);
        response.json()
    }

    /// Whether introspection says `token` is active.
    pub(crate) async fn is_active(&self, token: &str) -> bool {
        self.introspect(token).await["active"] == serde_json::json!(true)
    }

    /// An OAuth access token of `user` on device `PHONE00000`, through a browser session started
    /// directly (not [`login`](Self::login), which stores a placeholder password).
    pub(crate) async fn oauth_access_token(&self, user: &User) -> String {
        let client = self.public_client().await;
        let browser = browser_sessions::start_browser_session(
            &mut *self.conn().await,
            &self.clock,
            &mut self.state.rng.fork(),
            user,
            None,
            None,
        )
        .await
        .unwrap();
        let scope = "openid urn:matrix:client:api:* urn:matrix:client:device:PHONE00000";
        let code = self.fulfilled_grant(&client, &browser, scope, s256()).await;
        let response = self.exchange(&client, &code).await;
        response.assert_status(axum::http::StatusCode::OK);
        response.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST path` with a raw body and content type.
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .unwrap();
        self.request(request).await
    }
}

/// The S256 challenge of [`VERIFIER`].
pub(crate) fn s256() -> Option<CodeChallenge> {
    Some(CodeChallenge {
        challenge: CHALLENGE.to_owned(),
        method: CodeChallengeMethod::S256,
    })
}

/// An `Authorization: Basic` value for `client_id` and `secret`.
pub(crate) fn basic(client_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")))
}

/// What [`ApiApp::alice_code`] sets up.
pub(crate) struct AliceCode {
    /// alice.
    pub(crate) user: User,
    /// The public client the code is for.
    pub(crate) client: Client,
    /// alice's browser session, which consented.
    pub(crate) browser: BrowserSession,
    /// The authorization code.
    pub(crate) code: String,
}
