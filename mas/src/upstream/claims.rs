//! Claims import (upstream MAS's `claims_imports`; docs/protocol.md#upstream-login): minijinja
//! templates over the provider's claims give the subject, localpart, display name, email and
//! account label; each attribute's action says whether it is ignored, suggested, forced or
//! required.
//!
//! Templates see `user` (the merged claims), `id_token_claims`, `userinfo_claims` and
//! `extra_callback_parameters` (always empty here), with the filters `b64decode`, `b64encode`,
//! `string`, `from_json` and Python-style string methods (`.lower()`, `.split()`); upstream's
//! `tlvdecode` is not provided. Undefined values are strict: a template naming a missing claim
//! yields "missing", as does an empty result or a claim whose value is `null`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value};

use super::{ClaimsError, ImportAction, OnConflict, Provider, UpstreamIdentity};
use crate::config::upstream::ClaimsImportsConfig;

const SUBJECT: &str = "subject";
const LOCALPART: &str = "localpart";
const DISPLAYNAME: &str = "displayname";
const EMAIL: &str = "email";
const ACCOUNT_NAME: &str = "account_name";

/// A provider's `claims_imports`, compiled.
pub struct ClaimsImports {
    /// Skip the confirmation page (then `localpart` is `require` and nothing is `suggest`).
    pub skip_confirmation: bool,
    /// What to do when the localpart belongs to an existing local user.
    pub on_conflict: OnConflict,
    /// The localpart's action.
    pub localpart: ImportAction,
    /// The display name's action.
    pub displayname: ImportAction,
    /// The email's action.
    pub email: ImportAction,
    templates: Environment<'static>,
    has_account_name: bool,
}

impl std::fmt::Debug for ClaimsImports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimsImports")
            .field("skip_confirmation", &self.skip_confirmation)
            .field("on_conflict", &self.on_conflict)
            .field("localpart", &self.localpart)
            .field("displayname", &self.displayname)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// One imported attribute: its value (`None` when missing or ignored) and its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The rendered value; `None` when the action is `ignore` or the claim is missing.
    pub value: Option<String>,
    /// What to do with it.
    pub action: ImportAction,
}

/// The account attributes from one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedClaims {
    /// The stable link key.
    pub subject: String,
    /// The Matrix username, lower-cased and checked against the localpart grammar.
    pub localpart: Imported,
    /// The display name.
    pub displayname: Imported,
    /// The email address; `None` unless the provider said `email_verified: true` (an
    /// unverified address is not imported; a `require`d one then fails as missing).
    pub email: Imported,
    /// The provider's `email_verified`.
    pub email_verified: bool,
    /// A display-only label of the upstream account.
    pub account_name: Option<String>,
}

impl ClaimsImports {
    pub(super) fn from_config(config: &ClaimsImportsConfig) -> Result<Self, String> {
        let mut templates = environment();
        let sources = [
            (
                SUBJECT,
                config.subject.template.as_deref(),
                "{{ user.sub }}",
            ),
            (
                LOCALPART,
                config.localpart.template.as_deref(),
                "{{ user.preferred_username }}",
            ),
            (
                DISPLAYNAME,
                config.displayname.template.as_deref(),
                "{{ user.name }}",
            ),
            (EMAIL, config.email.template.as_deref(), "{{ user.email }}"),
        ];
        for (name, template, default) in sources {
            templates
                .add_template_owned(name, template.unwrap_or(default).to_owned())
                .map_err(|error| format!("claims_imports.{name}.template: {error}"))?;
        }
        if let Some(template) = &config.account_name.template {
            templates
                .add_template_owned(ACCOUNT_NAME, template.clone())
                .map_err(|error| format!("claims_imports.account_name.template: {error}"))?;
        }
        Ok(Self {
            skip_confirmation: config.skip_confirmation,
            on_conflict: config.localpart.on_conflict,
            localpart: config.localpart.action,
            displayname: config.displayname.action,
            email: config.email.action,
            templates,
            has_account_name: config.account_name.template.is_some(),
        })
    }

    /// Renders one template; `Ok(None)` when a claim it names is missing or the result is
    /// empty.
    fn render(
        &self,
        attribute: &'static str,
        context: &minijinja::Value,
    ) -> Result<Option<String>, ClaimsError> {
        let template_error = |error: minijinja::Error| ClaimsError::Template {
            attribute,
            message: error.to_string(),
        };
        let template = self
            .templates
            .get_template(attribute)
            .map_err(template_error)?;
        match template.render(context) {
            Ok(value) => {
                let value = value.trim();
                Ok((!value.is_empty()).then(|| value.to_owned()))
            }
            Err(error) if error.kind() == ErrorKind::UndefinedError => Ok(None),
            Err(error) => Err(template_error(error)),
        }
    }

    /// Renders an attribute per its action: `ignore` renders nothing, `require` fails when
    /// missing.
    fn import(
        &self,
        attribute: &'static str,
        action: ImportAction,
        context: &minijinja::Value,
    ) -> Result<Imported, ClaimsError> {
        let value = match action {
            ImportAction::Ignore => None,
            _ => self.render(attribute, context)?,
        };
        Ok(Imported { value, action })
    }
}

/// The template environment: strict undefined, our filters, Python-style methods.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("b64encode", |value: minijinja::Value| {
        let bytes = value
            .as_bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| value.to_string().into_bytes());
        STANDARD.encode(bytes)
    });
    env.add_filter("b64decode", |value: &str| {
        let bytes = STANDARD.decode(value.trim()).map_err(|error| {
            minijinja::Error::new(ErrorKind::InvalidOperation, error.to_string())
        })?;
        Ok::<_, minijinja::Error>(match String::from_utf8(bytes) {
            Ok(text) => minijinja::Value::from(text),
            Err(error) => minijinja::Value::from_bytes(error.into_bytes()),
        })
    });
    env.add_filter("string", |value: minijinja::Value| value.to_string());
    env.add_filter("from_json", |value: &str| {
        serde_json::from_str::<Value>(value)
            .map(minijinja::Value::from_serialize)
            .map_err(|error| minijinja::Error::new(ErrorKind::InvalidOperation, error.to_string()))
    });
    env
}

/// `additional_authorization_parameters` rendered once (no downstream `params` here: a
/// template naming them renders empty and the parameter is dropped).
pub(super) fn render_static_parameters(
    parameters: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, String> {
    let env = Environment::new();
    let context = minijinja::context! { params => minijinja::context! {}, logged_out => false };
    let mut rendered = Vec::new();
    for (name, template) in parameters {
        let value = env
            .render_str(template, &context)
            .map_err(|error| format!("additional_authorization_parameters.{name}: {error}"))?;
        if !value.is_empty() {
            rendered.push((name.clone(), value));
        }
    }
    Ok(rendered)
}

/// A claims map without `null` values (a `null` claim counts as missing).
fn without_nulls(claims: &Map<String, Value>) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// Whether `localpart` is a valid Matrix username: `[a-z0-9._=/+-]+`, not only digits
/// (Synapse reserves those for guests).
pub(crate) fn is_valid_localpart(localpart: &str) -> bool {
    !localpart.is_empty()
        && localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'/' | b'+' | b'-'),
        )
        && !localpart.bytes().all(|b| b.is_ascii_digit())
}

/// Applies `provider`'s `claims_imports` to a validated identity.
pub fn import_claims(
    provider: &Provider,
    identity: &UpstreamIdentity,
) -> Result<ImportedClaims, ClaimsError> {
    let imports = provider.claims();
    let merged = without_nulls(&identity.merged());
    let context = minijinja::context! {
        user => minijinja::Value::from_serialize(&merged),
        id_token_claims => minijinja::Value::from_serialize(without_nulls(&identity.id_token_claims)),
        userinfo_claims => minijinja::Value::from_serialize(
            identity.userinfo.as_ref().map(without_nulls).unwrap_or_default()
        ),
        extra_callback_parameters => minijinja::context! {},
    };

    let subject = imports
        .render(SUBJECT, &context)?
        .ok_or(ClaimsError::MissingRequired { attribute: SUBJECT })?;

    let mut localpart = imports.import(LOCALPART, imports.localpart, &context)?;
    if let Some(value) = &mut localpart.value {
        *value = value.to_lowercase();
        if !is_valid_localpart(value) {
            return Err(ClaimsError::InvalidLocalpart {
                value: value.clone(),
            });
        }
    }
    let displayname = imports.import(DISPLAYNAME, imports.displayname, &context)?;

    let email_verified = match merged.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(verified)) => verified == "true",
        _ => false,
    };
    let mut email = imports.import(EMAIL, imports.email, &context)?;
    if email.value.is_some() && !email_verified {
        tracing::info!(
            provider = %provider.id,
            "the provider's email address is not verified; not importing it"
        );
        email.value = None;
    }

    let account_name = if imports.has_account_name {
        imports.render(ACCOUNT_NAME, &context)?
    } else {
        None
    };

    for (attribute, imported) in [
        (LOCALPART, &localpart),
        (DISPLAYNAME, &displayname),
        (EMAIL, &email),
    ] {
        if imported.action == ImportAction::Require && imported.value.is_none() {
            return Err(ClaimsError::MissingRequired { attribute });
        }
    }
    Ok(ImportedClaims {
        subject,
        localpart,
        displayname,
        email,
        email_verified,
        account_name,
    })
}

#[cfg(test)]
mod tests;
