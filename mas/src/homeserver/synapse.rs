//! [`SynapseConnection`]: the `/_synapse/mas/*` client (docs/protocol.md#calls-to-synapse). Plain
//! HTTP over hyper-util's pooled client (Synapse is on loopback), the shared secret as a bearer
//! token, JSON bodies, and the exact success status of each call.

mod body;

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

use super::{
    CALL_TIMEOUT, HomeserverConnection, HomeserverError, HomeserverUser, ProvisionRequest,
    Upserted, is_ascii_localpart,
};
use crate::config::{HomeserverKind, MatrixConfig, SecretError};

/// Time limit for opening a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Larger answers are refused (Synapse's are a few hundred bytes).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("mas-appliance/", env!("CARGO_PKG_VERSION"));

/// Why a [`SynapseConnection`] cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SynapseSetupError {
    /// `matrix.kind` names an API this MAS does not speak.
    #[error("matrix.kind: {0:?} is not supported (use synapse)")]
    UnsupportedKind(HomeserverKind),
    /// The endpoint is not plain `http://`.
    #[error("matrix.endpoint: only http:// endpoints are supported, got {0}")]
    UnsupportedScheme(String),
    /// The shared secret could not be read.
    #[error("matrix.secret")]
    Secret(#[from] SecretError),
    /// The shared secret has characters an HTTP header cannot carry.
    #[error("matrix.secret: the secret must be printable ASCII")]
    UnprintableSecret,
}

/// The Synapse `/_synapse/mas` client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct SynapseConnection {
    homeserver: String,
    /// The endpoint, with a trailing slash.
    base: Url,
    /// `Bearer <secret>`, marked sensitive.
    authorization: HeaderValue,
    client: Client<HttpConnector, Full<Bytes>>,
    read_only: bool,
}

impl std::fmt::Debug for SynapseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SynapseConnection")
            .field("homeserver", &self.homeserver)
            .field("endpoint", &self.base.as_str())
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl SynapseConnection {
    /// A client for `homeserver` (server name) at `endpoint`, authenticating with `secret`.
    pub fn new(
        homeserver: impl Into<String>,
        mut endpoint: Url,
        secret: &str,
    ) -> Result<Self, SynapseSetupError> {
        if endpoint.scheme() != "http" {
            return Err(SynapseSetupError::UnsupportedScheme(endpoint.to_string()));
        }
        if !endpoint.path().ends_with('/') {
            let path = format!("{}/", endpoint.path());
            endpoint.set_path(&path);
        }
        endpoint.set_query(None);
        endpoint.set_fragment(None);
        let mut authorization = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| SynapseSetupError::UnprintableSecret)?;
        authorization.set_sensitive(true);

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Self {
            homeserver: homeserver.into(),
            base: endpoint,
            authorization,
            client,
            read_only: false,
        })
    }

    /// The client `matrix` describes (`kind` `synapse`, `synapse_modern` or
    /// `synapse_read_only`), with the secret read from `secret` or `secret_file`.
    pub fn from_config(config: &MatrixConfig) -> Result<Self, SynapseSetupError> {
        let read_only = match config.kind {
            HomeserverKind::Synapse | HomeserverKind::SynapseModern => false,
            HomeserverKind::SynapseReadOnly => true,
            kind @ HomeserverKind::SynapseLegacy => {
                return Err(SynapseSetupError::UnsupportedKind(kind));
            }
        };
        let secret = config.load_secret()?;
        let connection = Self::new(&config.homeserver, config.endpoint.clone(), &secret)?;
        Ok(connection.with_read_only(read_only))
    }

    /// In read-only mode every write is skipped (and reported as done); reads still happen.
    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The URI of `/_synapse/mas/<call>` with an optional `localpart` query.
    fn uri(&self, call: &'static str, localpart: Option<&str>) -> Result<Uri, HomeserverError> {
        let mut url = self.base.clone();
        url.set_path(&format!("{}_synapse/mas/{call}", self.base.path()));
        if let Some(localpart) = localpart {
            url.query_pairs_mut().append_pair("localpart", localpart);
        }
        Uri::try_from(url.as_str()).map_err(|error| HomeserverError::Unreachable {
            call,
            source: Box::new(error),
        })
    }

    /// Sends one request and reads the whole answer, all within `timeout`.
    async fn send(
        &self,
        call: &'static str,
        method: Method,
        uri: Uri,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), HomeserverError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|error| HomeserverError::Unreachable {
                call,
                source: Box::new(error),
            })?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|error| {
                HomeserverError::Unreachable {
                    call,
                    source: Box::new(error),
                }
            })?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|error| read_error(call, error))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HomeserverError::Timeout { call, timeout })?
    }

    /// POSTs `body` as JSON and returns the status if it is one of `expected`.
    async fn post(
        &self,
        call: &'static str,
        body: &impl serde::Serialize,
        expected: &[StatusCode],
    ) -> Result<StatusCode, HomeserverError> {
        let json = serde_json::to_vec(body).map_err(|error| HomeserverError::BadResponse {
            call,
            reason: format!("cannot encode the request: {error}"),
        })?;
        let uri = self.uri(call, None)?;
        let (status, body) = self
            .send(call, Method::POST, uri, Some(json), CALL_TIMEOUT)
            .await?;
        check_status(call, status, &body, expected)
    }

    /// Whether to skip a write (read-only mode).
    fn skip_write(&self, call: &'static str) -> bool {
        if self.read_only {
            tracing::debug!(call, "read-only homeserver connection: write skipped");
        }
        self.read_only
    }
}

fn read_error(
    call: &'static str,
    error: Box<dyn std::error::Error + Send + Sync>,
) -> HomeserverError {
    if error.is::<http_body_util::LengthLimitError>() {
        HomeserverError::BadResponse {
            call,
            reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
        }
    } else {
        HomeserverError::Unreachable {
            call,
            source: error,
        }
    }
}

/// `status` if expected; otherwise the error it stands for, with the Matrix `errcode` and
/// `error` of the body when it has them.
fn check_status(
    call: &'static str,
    status: StatusCode,
    body: &[u8],
    expected: &[StatusCode],
) -> Result<StatusCode, HomeserverError> {
    if expected.contains(&status) {
        return Ok(status);
    }
    if status.is_success() {
        return Err(HomeserverError::BadResponse {
            call,
            reason: format!("unexpected success status {}", status.as_u16()),
        });
    }
    let error = body::MatrixError::parse(body);
    Err(HomeserverError::Status {
        call,
        status: status.as_u16(),
        errcode: error.errcode,
        message: error.error,
    })
}

#[async_trait]
impl HomeserverConnection for SynapseConnection {
    fn homeserver(&self) -> &str {
        &self.homeserver
    }

    #[tracing::instrument(name = "homeserver.query_user", skip_all, fields(localpart = %localpart), err)]
    async fn query_user(
        &self,
        localpart: &str,
        timeout: Duration,
    ) -> Result<Option<HomeserverUser>, HomeserverError> {
        const CALL: &str = "query_user";
        let uri = self.uri(CALL, Some(localpart))?;
        let (status, body) = self.send(CALL, Method::GET, uri, None, timeout).await?;
        if status == StatusCode::NOT_FOUND
            && body::MatrixError::parse(&body).errcode.as_deref() == Some("M_NOT_FOUND")
        {
            return Ok(None);
        }
        check_status(CALL, status, &body, &[StatusCode::OK])?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|error| HomeserverError::BadResponse {
                call: CALL,
                reason: format!("invalid user JSON: {error}"),
            })
    }

    #[tracing::instrument(
        name = "homeserver.is_localpart_available",
        skip_all,
        fields(localpart = %localpart),
        err
    )]
    async fn is_localpart_available(&self, localpart: &str) -> Result<bool, HomeserverError> {
        const CALL: &str = "is_localpart_available";
        if !is_ascii_localpart(localpart) {
            return Ok(false);
        }
        let uri = self.uri(CALL, Some(localpart))?;
        let (status, body) = self
            .send(CALL, Method::GET, uri, None, CALL_TIMEOUT)
            .await?;
        if status == StatusCode::BAD_REQUEST {
            let errcode = body::MatrixError::parse(&body).errcode;
            if matches!(
                errcode.as_deref(),
                Some("M_USER_IN_USE" | "M_INVALID_USERNAME" | "M_EXCLUSIVE")
            ) {
                return Ok(false);
            }
        }
        check_status(CALL, status, &body, &[StatusCode::OK]).map(|_| true)
    }

    #[tracing::instrument(
        name = "homeserver.provision_user",
        skip_all,
        fields(localpart = %request.localpart),
        err
    )]
    async fn provision_user(
        &self,
        request: &ProvisionRequest,
    ) -> Result<Upserted, HomeserverError> {
        const CALL: &str = "provision_user";
        if self.skip_write(CALL) {
            return Ok(Upserted::Updated);
        }
        let body = body::ProvisionUser::from(request);
        let status = self
            .post(CALL, &body, &[StatusCode::CREATED, StatusCode::OK])
            .await?;
        Ok(upserted(status))
    }

    #[tracing::instrument(name = "homeserver.upsert_device", skip_all, fields(localpart = %localpart, device_id = %device_id), err)]
    async fn upsert_device(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<Upserted, HomeserverError> {
        const CALL: &str = "upsert_device";
        if self.skip_write(CALL) {
            return Ok(Upserted::Updated);
        }
        let body = body::Device {
            localpart,
            device_id,
            display_name,
        };
        let status = self
            .post(CALL, &body, &[StatusCode::CREATED, StatusCode::OK])
            .await?;
        Ok(upserted(status))
    }

    #[tracing::instrument(
        name = "homeserver.update_device_display_name",
        skip_all,
        fields(localpart = %localpart, device_id = %device_id),
        err
    )]
    async fn update_device_display_name(
        &self,
        localpart: &str,
        device_id: &str,
        display_name: &str,
    ) -> Result<(), HomeserverError> {
        const CALL: &str = "update_device_display_name";
        if self.skip_write(CALL) {
            return Ok(());
        }
        let body = body::Device {
            localpart,
            device_id,
            display_name: Some(display_name),
        };
        self.post(CALL, &body, &[StatusCode::OK]).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.delete_device", skip_all, fields(localpart = %localpart, device_id = %device_id), err)]
    async fn delete_device(&self, localpart: &str, device_id: &str) -> Result<(), HomeserverError> {
        const CALL: &str = "delete_device";
        if self.skip_write(CALL) {
            return Ok(());
        }
        let body = body::Device {
            localpart,
            device_id,
            display_name: None,
        };
        self.post(CALL, &body, &[StatusCode::NO_CONTENT])
            .await
            .map(drop)
    }

    #[tracing::instrument(
        name = "homeserver.sync_devices",
        skip_all,
        fields(localpart = %localpart, devices = devices.len()),
        err
    )]
    async fn sync_devices(
        &self,
        localpart: &str,
        devices: &BTreeSet<String>,
    ) -> Result<(), HomeserverError> {
        const CALL: &str = "sync_devices";
        if self.skip_write(CALL) {
            return Ok(());
        }
        let body = body::SyncDevices { localpart, devices };
        self.post(CALL, &body, &[StatusCode::OK]).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.delete_user", skip_all, fields(localpart = %localpart, erase = erase), err)]
    async fn delete_user(&self, localpart: &str, erase: bool) -> Result<(), HomeserverError> {
        const CALL: &str = "delete_user";
        if self.skip_write(CALL) {
            return Ok(());
        }
        let body = body::DeleteUser { localpart, erase };
        self.post(CALL, &body, &[StatusCode::OK]).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.reactivate_user", skip_all, fields(localpart = %localpart), err)]
    async fn reactivate_user(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post_localpart("reactivate_user", localpart).await
    }

    #[tracing::instrument(name = "homeserver.set_displayname", skip_all, fields(localpart = %localpart), err)]
    async fn set_displayname(
        &self,
        localpart: &str,
        displayname: &str,
    ) -> Result<(), HomeserverError> {
        const CALL: &str = "set_displayname";
        if self.skip_write(CALL) {
            return Ok(());
        }
        let body = body::SetDisplayname {
            localpart,
            displayname,
        };
        self.post(CALL, &body, &[StatusCode::OK]).await.map(drop)
    }

    #[tracing::instrument(name = "homeserver.unset_displayname", skip_all, fields(localpart = %localpart), err)]
    async fn unset_displayname(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post_localpart("unset_displayname", localpart).await
    }

    #[tracing::instrument(
        name = "homeserver.allow_cross_signing_reset",
        skip_all,
        fields(localpart = %localpart),
        err
    )]
    async fn allow_cross_signing_reset(&self, localpart: &str) -> Result<(), HomeserverError> {
        self.post_localpart("allow_cross_signing_reset", localpart)
            .await
    }
}

impl SynapseConnection {
    /// A write whose body is just `{"localpart": …}` and whose success is 200.
    async fn post_localpart(
        &self,
        call: &'static str,
        localpart: &str,
    ) -> Result<(), HomeserverError> {
        if self.skip_write(call) {
            return Ok(());
        }
        let body = body::Localpart { localpart };
        self.post(call, &body, &[StatusCode::OK]).await.map(drop)
    }
}

fn upserted(status: StatusCode) -> Upserted {
    if status == StatusCode::CREATED {
        Upserted::Created
    } else {
        Upserted::Updated
    }
}

#[cfg(test)]
mod tests;
