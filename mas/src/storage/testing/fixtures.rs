//! Rows that storage tests build on, created through the storage functions themselves.

use super::TestDb;
use crate::model::{
    ApplicationType, BrowserSession, Client, ClientAuthMethod, ClientMetadata, GrantTypes,
    NewSession, Session, User,
};
use crate::storage::{browser_sessions, clients, oauth2_sessions, users};

/// The metadata of a native public client such as Element X.
pub(crate) fn native_client_metadata() -> ClientMetadata {
    ClientMetadata {
        redirect_uris: vec!["io.element.app:/callback".parse().unwrap()],
        grant_types: GrantTypes {
            authorization_code: true,
            refresh_token: true,
            ..GrantTypes::default()
        },
        client_name: Some("Element X".to_owned()),
        logo_uri: None,
        client_uri: Some("https://element.io/".parse().unwrap()),
        policy_uri: None,
        tos_uri: None,
        jwks_uri: None,
        jwks: None,
        id_token_signed_response_alg: None,
        userinfo_signed_response_alg: None,
        token_endpoint_auth_method: ClientAuthMethod::None,
        token_endpoint_auth_signing_alg: None,
        initiate_login_uri: None,
        application_type: Some(ApplicationType::Native),
        contacts: Vec::new(),
    }
}

impl TestDb {
    /// A new user.
    pub(crate) async fn user(&mut self, username: &str) -> User {
        users::add_user(&mut self.conn, &self.clock, &mut self.rng, username)
            .await
            .unwrap()
    }

    /// A new public native client (no digest).
    pub(crate) async fn client(&mut self) -> Client {
        let metadata = native_client_metadata();
        clients::add_client(
            &mut self.conn,
            &self.clock,
            &mut self.rng,
            None,
            metadata,
            None,
        )
        .await
        .unwrap()
    }

    /// A new browser session of `user`.
    pub(crate) async fn browser_session(&mut self, user: &User) -> BrowserSession {
        browser_sessions::start_browser_session(
            &mut self.conn,
            &self.clock,
            &mut self.rng,
            user,
            Some("Mozilla/5.0"),
            Some("192.0.2.1"),
        )
        .await
        .unwrap()
    }

    /// A new OAuth 2.0 session of `client` for `user` with `scope`.
    pub(crate) async fn oauth2_session(
        &mut self,
        client: &Client,
        user: Option<&User>,
        scope: &str,
    ) -> Session {
        let new = NewSession {
            client_id: client.id,
            user_id: user.map(|user| user.id),
            user_session_id: None,
            scope: scope.parse().unwrap(),
            user_agent: Some("ElementX/1.0".to_owned()),
            human_name: None,
        };
        oauth2_sessions::create_oauth2_session(&mut self.conn, &self.clock, &mut self.rng, new)
            .await
            .unwrap()
    }
}
