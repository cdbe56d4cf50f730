//! Post-authentication actions: where a login continues (an authorization grant's consent
//! page, a device grant's approval page, a legacy SSO login, the account page's deep link), carried through the login page,
//! the upstream providers and back; the login and upstream URLs that carry them; and whether a
//! browser session must log in again before an authorization grant (`prompt=login`).

use sqlx::AnyConnection;
use ulid::Ulid;

use crate::model::{AuthorizationGrant, BrowserSession, prompt_has};
use crate::routes::{self, UrlBuilder};
use crate::storage::{StorageError, browser_sessions};
use crate::templates::PostAuthAction as PostAuthActionView;

/// What to do after logging in (the `kind` and `id` of the login query). Only the kinds this
/// server implements are kept; others are dropped and the login ends on the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PostAuthAction {
    /// Back to the consent page of an authorization grant.
    ContinueAuthorizationGrant {
        /// The grant.
        id: Ulid,
    },
    /// Back to the approval page of a device authorization grant (RFC 8628 §3.3).
    ContinueDeviceCodeGrant {
        /// The device grant.
        id: Ulid,
    },
    /// Back to the "continue to the application" page of a legacy SSO login.
    ContinueCompatSsoLogin {
        /// The `compat_sso_logins` row.
        id: Ulid,
    },
    /// To the account page, with the deep link a client opened it with (MSC4191 `action`
    /// and `device_id`).
    ManageAccount {
        /// The account page's `action`.
        action: Option<String>,
        /// The account page's `device_id`.
        device_id: Option<String>,
    },
    /// To the password change page (`/account/password`, where `/.well-known/change-password`
    /// leads).
    ChangePassword,
}

impl PostAuthAction {
    const CONTINUE_AUTHORIZATION_GRANT: &'static str = "continue_authorization_grant";
    const CONTINUE_DEVICE_CODE_GRANT: &'static str = "continue_device_code_grant";
    const CONTINUE_COMPAT_SSO_LOGIN: &'static str = "continue_compat_sso_login";
    const MANAGE_ACCOUNT: &'static str = "manage_account";
    const CHANGE_PASSWORD: &'static str = "change_password";

    /// From the `kind` and `id` query or form fields. For `manage_account` the `id` is the
    /// account page's query (`action=…&device_id=…`, form-encoded), so that the login form and
    /// the upstream session carry it in the same two fields as the other kinds.
    pub(crate) fn from_fields(kind: Option<&str>, id: Option<&str>) -> Option<Self> {
        let kind = kind?;
        if kind == Self::MANAGE_ACCOUNT {
            let (mut action, mut device_id) = (None, None);
            for (name, value) in url::form_urlencoded::parse(id.unwrap_or_default().as_bytes()) {
                match &*name {
                    "action" => action = Some(value.into_owned()),
                    "device_id" => device_id = Some(value.into_owned()),
                    _ => {}
                }
            }
            return Some(Self::ManageAccount { action, device_id });
        }
        if kind == Self::CHANGE_PASSWORD {
            return Some(Self::ChangePassword);
        }
        let id = id?.parse().ok()?;
        match kind {
            Self::CONTINUE_AUTHORIZATION_GRANT => Some(Self::ContinueAuthorizationGrant { id }),
            Self::CONTINUE_DEVICE_CODE_GRANT => Some(Self::ContinueDeviceCodeGrant { id }),
            Self::CONTINUE_COMPAT_SSO_LOGIN => Some(Self::ContinueCompatSsoLogin { id }),
            _ => None,
        }
    }

    /// The `kind` and `id` fields.
    pub(crate) fn fields(&self) -> (&'static str, String) {
        match self {
            Self::ContinueAuthorizationGrant { id } => {
                (Self::CONTINUE_AUTHORIZATION_GRANT, id.to_string())
            }
            Self::ContinueDeviceCodeGrant { id } => {
                (Self::CONTINUE_DEVICE_CODE_GRANT, id.to_string())
            }
            Self::ContinueCompatSsoLogin { id } => {
                (Self::CONTINUE_COMPAT_SSO_LOGIN, id.to_string())
            }
            Self::ManageAccount { action, device_id } => (
                Self::MANAGE_ACCOUNT,
                account_query(action.as_deref(), device_id.as_deref()),
            ),
            Self::ChangePassword => (Self::CHANGE_PASSWORD, String::new()),
        }
    }

    /// The stored form (`{"kind": …, "id": …}`), e.g. in an upstream authorization session.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let (kind, id) = self.fields();
        serde_json::json!({ "kind": kind, "id": id })
    }

    /// Back from [`Self::to_json`]; anything else is no action.
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        Self::from_fields(field("kind"), field("id"))
    }

    /// The hidden fields of the login form.
    pub(crate) fn view(&self) -> PostAuthActionView {
        let (kind, id) = self.fields();
        PostAuthActionView {
            kind: kind.to_owned(),
            id,
        }
    }

    /// Where the browser goes once logged in.
    pub(crate) fn destination(action: Option<&Self>, urls: &UrlBuilder) -> String {
        match action {
            Some(Self::ContinueAuthorizationGrant { id }) => urls.relative(&routes::consent(*id)),
            Some(Self::ContinueDeviceCodeGrant { id }) => {
                urls.relative(&routes::device_consent(*id))
            }
            Some(Self::ContinueCompatSsoLogin { id }) => {
                urls.relative(&routes::complete_compat_sso(*id))
            }
            Some(Self::ManageAccount { action, device_id }) => {
                let path = urls.relative(routes::ACCOUNT);
                let query = account_query(action.as_deref(), device_id.as_deref());
                if query.is_empty() {
                    path
                } else {
                    format!("{path}?{query}")
                }
            }
            Some(Self::ChangePassword) => urls.relative(routes::ACCOUNT_PASSWORD),
            None => urls.relative(routes::INDEX),
        }
    }
}

/// The account page's deep-link query (`action=…&device_id=…`), empty without either.
fn account_query(action: Option<&str>, device_id: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(action) = action {
        query.append_pair("action", action);
    }
    if let Some(device_id) = device_id {
        query.append_pair("device_id", device_id);
    }
    query.finish()
}

/// The login page with a post-auth action and a username to fill in.
pub(crate) fn login_url(
    urls: &UrlBuilder,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    with_action_query(urls.relative(routes::LOGIN), action, login_hint)
}

/// The start of a login at an upstream provider, carrying the post-auth action and the
/// `login_hint` (the login page's buttons, and its SSO-only redirect).
pub(crate) fn upstream_authorize_url(
    urls: &UrlBuilder,
    provider_id: &str,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    let path = urls.relative(&routes::upstream_authorize(provider_id));
    with_action_query(path, action, login_hint)
}

/// `path` with the `kind`, `id` and `login_hint` query.
fn with_action_query(
    path: String,
    action: Option<&PostAuthAction>,
    login_hint: Option<&str>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if let Some(action) = action {
        let (kind, id) = action.fields();
        query.append_pair("kind", kind);
        query.append_pair("id", &id);
    }
    if let Some(hint) = login_hint {
        query.append_pair("login_hint", hint);
    }
    let query = query.finish();
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// Whether `session` must log in again before consenting to `grant`: the grant asked for
/// `prompt=login` and the session's last authentication is older than the grant.
pub(crate) async fn needs_fresh_login(
    conn: &mut AnyConnection,
    session: &BrowserSession,
    grant: &AuthorizationGrant,
) -> Result<bool, StorageError> {
    if !prompt_has(grant.request.prompt.as_deref(), "login") {
        return Ok(false);
    }
    let last = browser_sessions::last_authentication(conn, session.id).await?;
    Ok(last.is_none_or(|auth| auth.created_at < grant.created_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_auth_actions_round_trip_through_their_fields() {
        let action = PostAuthAction::ContinueAuthorizationGrant {
            id: Ulid::from_parts(1, 2),
        };
        let (kind, id) = action.fields();
        assert_eq!(
            PostAuthAction::from_fields(Some(kind), Some(&id)),
            Some(action)
        );
        assert_eq!(
            PostAuthAction::from_fields(Some("unknown_kind"), Some(&id)),
            None
        );
        assert_eq!(PostAuthAction::from_fields(Some(kind), Some("nope")), None);
        assert_eq!(PostAuthAction::from_fields(None, None), None);
    }

    #[test]
    fn a_device_grant_action_round_trips_and_leads_back_to_its_approval_page() {
        let urls = UrlBuilder::new("http://localhost:8000/auth/".parse().unwrap());
        let id = Ulid::from_parts(1, 3);
        let action = PostAuthAction::ContinueDeviceCodeGrant { id };
        let (kind, text) = action.fields();
        assert_eq!(kind, "continue_device_code_grant");
        assert_eq!(
            PostAuthAction::from_fields(Some(kind), Some(&text)),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::from_json(&action.to_json()),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::destination(Some(&action), &urls),
            format!("/auth/device/{id}")
        );
        assert_eq!(
            login_url(&urls, Some(&action), None),
            format!("/auth/login?kind=continue_device_code_grant&id={id}")
        );
    }

    #[test]
    fn manage_account_keeps_the_deep_link_through_fields_and_json() {
        let urls = UrlBuilder::new("http://localhost:8000/auth/".parse().unwrap());
        let action = PostAuthAction::ManageAccount {
            action: Some("org.matrix.session_end".to_owned()),
            device_id: Some("A&B C".to_owned()),
        };
        let (kind, id) = action.fields();
        assert_eq!(kind, "manage_account");
        assert_eq!(
            PostAuthAction::from_fields(Some(kind), Some(&id)),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::from_json(&action.to_json()),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::destination(Some(&action), &urls),
            "/auth/account/?action=org.matrix.session_end&device_id=A%26B+C"
        );
        let plain = PostAuthAction::from_fields(Some("manage_account"), None).unwrap();
        assert_eq!(
            PostAuthAction::destination(Some(&plain), &urls),
            "/auth/account/"
        );
        assert!(
            login_url(&urls, Some(&plain), None).starts_with("/auth/login?kind=manage_account")
        );
    }

    #[test]
    fn change_password_leads_back_to_the_password_page() {
        let urls = UrlBuilder::new("http://localhost:8000/auth/".parse().unwrap());
        let action = PostAuthAction::ChangePassword;
        let (kind, id) = action.fields();
        assert_eq!(
            PostAuthAction::from_fields(Some(kind), Some(&id)),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::from_json(&action.to_json()),
            Some(action.clone())
        );
        assert_eq!(
            PostAuthAction::destination(Some(&action), &urls),
            "/auth/account/password"
        );
        assert_eq!(
            login_url(&urls, Some(&action), None),
            "/auth/login?kind=change_password&id="
        );
    }

    #[test]
    fn login_urls_carry_the_action_and_hint() {
        let urls = UrlBuilder::new("http://localhost:8000/auth/".parse().unwrap());
        let action = PostAuthAction::ContinueAuthorizationGrant {
            id: Ulid::from_parts(1, 2),
        };
        assert_eq!(login_url(&urls, None, None), "/auth/login");
        assert_eq!(
            login_url(&urls, Some(&action), Some("a b")),
            format!(
                "/auth/login?kind=continue_authorization_grant&id={}&login_hint=a+b",
                Ulid::from_parts(1, 2)
            )
        );
    }
}
