//! `oauth2_clients`: registered and static OAuth 2.0 clients (migration 0005).

use rand::RngCore;
use sqlx::AnyConnection;
use ulid::Ulid;

use super::StorageError;
use super::rows::{self, Unique, map_unique};
use crate::clock::Clock;
use crate::model::{Client, ClientMetadata, GrantTypes};
use crate::rng::new_ulid;

const METADATA_DIGEST_UNIQUE: Unique = Unique {
    name: "oauth2_clients_metadata_digest_unique",
    sqlite_columns: "oauth2_clients.metadata_digest",
};

macro_rules! client_columns {
    () => {
        "oauth2_client_id, encrypted_client_secret, redirect_uris, \
         CAST(grant_type_authorization_code AS INTEGER) AS grant_type_authorization_code, \
         CAST(grant_type_refresh_token AS INTEGER) AS grant_type_refresh_token, \
         CAST(grant_type_client_credentials AS INTEGER) AS grant_type_client_credentials, \
         CAST(grant_type_device_code AS INTEGER) AS grant_type_device_code, \
         client_name, logo_uri, client_uri, policy_uri, tos_uri, jwks_uri, jwks, \
         id_token_signed_response_alg, userinfo_signed_response_alg, \
         token_endpoint_auth_method, token_endpoint_auth_signing_alg, initiate_login_uri, \
         application_type, contacts, metadata_digest, \
         CAST(is_static AS INTEGER) AS is_static, created_at"
    };
}

/// The insert list, in the order [`bind_client`] binds `$1…$24`.
macro_rules! insert_client {
    () => {
        "INSERT INTO oauth2_clients \
         (oauth2_client_id, encrypted_client_secret, redirect_uris, \
          grant_type_authorization_code, grant_type_refresh_token, \
          grant_type_client_credentials, grant_type_device_code, \
          client_name, logo_uri, client_uri, policy_uri, tos_uri, jwks_uri, jwks, \
          id_token_signed_response_alg, userinfo_signed_response_alg, \
          token_endpoint_auth_method, token_endpoint_auth_signing_alg, initiate_login_uri, \
          application_type, contacts, metadata_digest, is_static, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21, $22, $23, $24)"
    };
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    oauth2_client_id: String,
    encrypted_client_secret: Option<String>,
    redirect_uris: String,
    grant_type_authorization_code: i64,
    grant_type_refresh_token: i64,
    grant_type_client_credentials: i64,
    grant_type_device_code: i64,
    client_name: Option<String>,
    logo_uri: Option<String>,
    client_uri: Option<String>,
    policy_uri: Option<String>,
    tos_uri: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<String>,
    id_token_signed_response_alg: Option<String>,
    userinfo_signed_response_alg: Option<String>,
    token_endpoint_auth_method: String,
    token_endpoint_auth_signing_alg: Option<String>,
    initiate_login_uri: Option<String>,
    application_type: Option<String>,
    contacts: String,
    metadata_digest: Option<String>,
    is_static: i64,
    created_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StorageError;

    fn try_from(row: ClientRow) -> Result<Self, Self::Error> {
        let jwks = row
            .jwks
            .as_deref()
            .map(|jwks| rows::json("oauth2_clients.jwks", jwks))
            .transpose()?;
        let metadata = ClientMetadata {
            redirect_uris: rows::json("oauth2_clients.redirect_uris", &row.redirect_uris)?,
            grant_types: GrantTypes {
                authorization_code: row.grant_type_authorization_code != 0,
                refresh_token: row.grant_type_refresh_token != 0,
                client_credentials: row.grant_type_client_credentials != 0,
                device_code: row.grant_type_device_code != 0,
            },
            client_name: row.client_name,
            logo_uri: rows::opt_url("oauth2_clients.logo_uri", row.logo_uri.as_deref())?,
            client_uri: rows::opt_url("oauth2_clients.client_uri", row.client_uri.as_deref())?,
            policy_uri: rows::opt_url("oauth2_clients.policy_uri", row.policy_uri.as_deref())?,
            tos_uri: rows::opt_url("oauth2_clients.tos_uri", row.tos_uri.as_deref())?,
            jwks_uri: rows::opt_url("oauth2_clients.jwks_uri", row.jwks_uri.as_deref())?,
            jwks,
            id_token_signed_response_alg: row.id_token_signed_response_alg,
            userinfo_signed_response_alg: row.userinfo_signed_response_alg,
            token_endpoint_auth_method: rows::parse(
                "oauth2_clients.token_endpoint_auth_method",
                &row.token_endpoint_auth_method,
            )?,
            token_endpoint_auth_signing_alg: row.token_endpoint_auth_signing_alg,
            initiate_login_uri: rows::opt_url(
                "oauth2_clients.initiate_login_uri",
                row.initiate_login_uri.as_deref(),
            )?,
            application_type: rows::opt_parse(
                "oauth2_clients.application_type",
                row.application_type.as_deref(),
            )?,
            contacts: rows::json("oauth2_clients.contacts", &row.contacts)?,
        };
        Ok(Self {
            id: rows::ulid("oauth2_clients.oauth2_client_id", &row.oauth2_client_id)?,
            encrypted_client_secret: row.encrypted_client_secret,
            metadata,
            metadata_digest: row.metadata_digest,
            is_static: row.is_static != 0,
            created_at: row.created_at,
        })
    }
}

/// Binds a whole client in the order of [`insert_client!`].
fn bind_client<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    client: &'q Client,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>, StorageError> {
    let metadata = &client.metadata;
    let url = |url: &Option<url::Url>| url.as_ref().map(url::Url::to_string);
    let jwks = metadata
        .jwks
        .as_ref()
        .map(|jwks| rows::to_json("oauth2_clients.jwks", jwks))
        .transpose()?;
    Ok(query
        .bind(client.id.to_string())
        .bind(client.encrypted_client_secret.as_deref())
        .bind(rows::to_json(
            "oauth2_clients.redirect_uris",
            &metadata.redirect_uris,
        )?)
        .bind(metadata.grant_types.authorization_code)
        .bind(metadata.grant_types.refresh_token)
        .bind(metadata.grant_types.client_credentials)
        .bind(metadata.grant_types.device_code)
        .bind(metadata.client_name.as_deref())
        .bind(url(&metadata.logo_uri))
        .bind(url(&metadata.client_uri))
        .bind(url(&metadata.policy_uri))
        .bind(url(&metadata.tos_uri))
        .bind(url(&metadata.jwks_uri))
        .bind(jwks)
        .bind(metadata.id_token_signed_response_alg.as_deref())
        .bind(metadata.userinfo_signed_response_alg.as_deref())
        .bind(metadata.token_endpoint_auth_method.as_str())
        .bind(metadata.token_endpoint_auth_signing_alg.as_deref())
        .bind(url(&metadata.initiate_login_uri))
        .bind(metadata.application_type.map(|kind| kind.as_str()))
        .bind(rows::to_json(
            "oauth2_clients.contacts",
            &metadata.contacts,
        )?)
        .bind(client.metadata_digest.as_deref())
        .bind(client.is_static)
        .bind(client.created_at))
}

/// Registers a client (dynamic registration). With a `metadata_digest` that another client
/// already has, fails with [`StorageError::DuplicateClientMetadata`]: the caller then returns
/// [`find_client_by_metadata_digest`]'s client instead.
#[tracing::instrument(
    name = "db.oauth2_clients.add",
    skip_all,
    fields(oauth2_client.id = tracing::field::Empty),
    err
)]
pub async fn add_client(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    rng: &mut (impl RngCore + ?Sized),
    encrypted_client_secret: Option<String>,
    metadata: ClientMetadata,
    metadata_digest: Option<String>,
) -> Result<Client, StorageError> {
    let now = clock.now_unix_ms();
    let client = Client {
        id: new_ulid(now, rng),
        encrypted_client_secret,
        metadata,
        metadata_digest,
        is_static: false,
        created_at: now,
    };
    tracing::Span::current().record("oauth2_client.id", tracing::field::display(client.id));
    bind_client(sqlx::query(insert_client!()), &client)?
        .execute(&mut *conn)
        .await
        .map_err(|error| {
            map_unique(
                error,
                &METADATA_DIGEST_UNIQUE,
                StorageError::DuplicateClientMetadata,
            )
        })?;
    Ok(client)
}

/// Creates or replaces a client declared in the config under its configured id, keeping its
/// first `created_at`.
#[tracing::instrument(name = "db.oauth2_clients.upsert_static", skip_all, fields(oauth2_client.id = %id), err)]
pub async fn upsert_static_client(
    conn: &mut AnyConnection,
    clock: &dyn Clock,
    id: Ulid,
    encrypted_client_secret: Option<String>,
    metadata: ClientMetadata,
) -> Result<Client, StorageError> {
    let client = Client {
        id,
        encrypted_client_secret,
        metadata,
        metadata_digest: None,
        is_static: true,
        created_at: clock.now_unix_ms(),
    };
    let row: ClientRow = bind_client(
        sqlx::query(concat!(
            insert_client!(),
            " ON CONFLICT (oauth2_client_id) DO UPDATE SET \
              encrypted_client_secret = EXCLUDED.encrypted_client_secret, \
              redirect_uris = EXCLUDED.redirect_uris, \
              grant_type_authorization_code = EXCLUDED.grant_type_authorization_code, \
              grant_type_refresh_token = EXCLUDED.grant_type_refresh_token, \
              grant_type_client_credentials = EXCLUDED.grant_type_client_credentials, \
              grant_type_device_code = EXCLUDED.grant_type_device_code, \
              client_name = EXCLUDED.client_name, logo_uri = EXCLUDED.logo_uri, \
              client_uri = EXCLUDED.client_uri, policy_uri = EXCLUDED.policy_uri, \
              tos_uri = EXCLUDED.tos_uri, jwks_uri = EXCLUDED.jwks_uri, jwks = EXCLUDED.jwks, \
              id_token_signed_response_alg = EXCLUDED.id_token_signed_response_alg, \
              userinfo_signed_response_alg = EXCLUDED.userinfo_signed_response_alg, \
              token_endpoint_auth_method = EXCLUDED.token_endpoint_auth_method, \
              token_endpoint_auth_signing_alg = EXCLUDED.token_endpoint_auth_signing_alg, \
              initiate_login_uri = EXCLUDED.initiate_login_uri, \
              application_type = EXCLUDED.application_type, contacts = EXCLUDED.contacts, \
              metadata_digest = NULL, is_static = EXCLUDED.is_static \
             RETURNING ",
            client_columns!()
        )),
        &client,
    )?
    .try_map(|row| sqlx::FromRow::from_row(&row))
    .fetch_one(&mut *conn)
    .await?;
    Client::try_from(row)
}

/// The client with this id.
#[tracing::instrument(name = "db.oauth2_clients.find", skip_all, fields(oauth2_client.id = %id), err)]
pub async fn find_client(
    conn: &mut AnyConnection,
    id: Ulid,
) -> Result<Option<Client>, StorageError> {
    let row: Option<ClientRow> = sqlx::query_as(concat!(
        "SELECT ",
        client_columns!(),
        " FROM oauth2_clients WHERE oauth2_client_id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Client::try_from).transpose()
}

/// The client registered with this metadata digest (deduplication of public clients).
#[tracing::instrument(name = "db.oauth2_clients.find_by_metadata_digest", skip_all, err)]
pub async fn find_client_by_metadata_digest(
    conn: &mut AnyConnection,
    digest: &str,
) -> Result<Option<Client>, StorageError> {
    let row: Option<ClientRow> = sqlx::query_as(concat!(
        "SELECT ",
        client_columns!(),
        " FROM oauth2_clients WHERE metadata_digest = $1"
    ))
    .bind(digest)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(Client::try_from).transpose()
}

#[cfg(test)]
mod tests;
