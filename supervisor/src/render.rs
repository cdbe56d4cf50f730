//! Config rendering (docs/architecture.md#configuration-rendering): the templates in
//! `templates/config/` (embedded at build time) are rendered with minijinja in strict-undefined
//! mode, then layered: appliance defaults < operator overrides in `<data>/config/` < keys the
//! appliance owns. An override of an owned key, or of a key Synapse refuses next to MAS, is dropped
//! with a log line. MAS's upstream providers are a list with a rule of their own (see `providers`):
//! the platform's comes first, the operator's are appended. Synapse gets the appservice
//! registrations of `<data>/appservices/` once they pass their checks (see `appservices`). The
//! results are written atomically, mode 0600, into the run dir (the platform provider's client
//! secret is inline in mas.yaml).

use std::io;
use std::path::Path;

use serde_yaml::Value;

use crate::env::Env;
use crate::fsutil::{ensure_dir, write_atomic};
use crate::paths::Layout;

mod context;
mod layers;
mod providers;

pub use context::Context;
pub use layers::{Ignored, deep_merge};
pub use providers::{CLOUDRON_PROVIDER_ID, ProvidersError};

const HOMESERVER_TEMPLATE: &str = include_str!("../../templates/config/homeserver.yaml");
const SYNAPSE_LOG_TEMPLATE: &str = include_str!("../../templates/config/synapse-log.yaml");
const MAS_TEMPLATE: &str = include_str!("../../templates/config/mas.yaml");

/// Synapse keys the appliance owns: an operator override of these is ignored.
pub const SYNAPSE_OWNED: &[&str] = &[
    "server_name",
    "public_baseurl",
    "listeners",
    "database",
    "log_config",
    "pid_file",
    "media_store_path",
    "signing_key_path",
    "macaroon_secret_key",
    "macaroon_secret_key_path",
    "form_secret",
    "form_secret_path",
    "registration_shared_secret",
    "registration_shared_secret_path",
    "matrix_authentication_service",
    // The checked files of `<data>/appservices/` (see `appservices`), nothing else.
    "app_service_config_files",
    // What encrypted bridges need (README "Bridges"): MSC3202's device lists and one-time key
    // counts, and MSC2409/MSC4203's to-device messages, in appservice transactions. Each
    // appservice still opts in from its registration; other experimental features stay the
    // operator's.
    "experimental_features.msc3202_transaction_extensions",
    "experimental_features.msc2409_to_device_messages_enabled",
    // Sign in with a QR code (README "Sign in with a QR code"): Synapse's rendezvous channels,
    // MSC4108 (what matrix-sdk 0.18 and current Element X speak) and MSC4388 (its successor),
    // which the new device and the signed-in one use to talk before the device grant.
    "experimental_features.msc4108_enabled",
    "experimental_features.msc4388_mode",
];

/// Synapse keys that make Synapse refuse to start when MAS is enabled (its config checks for
/// `matrix_authentication_service`; docs/architecture.md#configuration-rendering); dropped from
/// overrides.
pub const SYNAPSE_FORBIDDEN: &[&str] = &[
    "enable_registration",
    "password_config.enabled",
    "user_consent",
    "oidc_providers",
    "oidc_config",
    "saml2_config",
    "cas_config",
    "jwt_config",
    "password_providers",
    "enable_registration_captcha",
    "login_via_existing_session.enabled",
    "refresh_token_lifetime",
    "nonrefreshable_access_token_lifetime",
    "session_lifetime",
    "enable_3pid_changes",
    "experimental_features.msc3861",
];

/// MAS keys the appliance owns.
pub const MAS_OWNED: &[&str] = &[
    "http.public_base",
    "http.issuer",
    "http.listeners",
    "http.trusted_proxies",
    "database",
    "matrix",
    "secrets",
    "passwords.enabled",
];

/// Errors while rendering.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    #[error("template {name} did not render to valid YAML: {source}")]
    TemplateYaml {
        name: &'static str,
        source: serde_yaml::Error,
    },
    #[error("{path}: {message}")]
    Override { path: String, message: String },
    #[error("{path}: {source}")]
    Providers {
        path: String,
        source: providers::ProvidersError,
    },
    #[error(transparent)]
    Appservices(#[from] crate::appservices::Problems),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// The three rendered files, and what was dropped from the operator's overrides.
#[derive(Debug)]
pub struct Rendered {
    pub homeserver: String,
    pub synapse_log: String,
    pub mas: String,
    pub ignored: Vec<Ignored>,
}

/// What people may do with accounts of their own, as the rendered mas.yaml says (a takeover of
/// an earlier Synapse may keep password login on): for the front page and `appliance doctor`.
pub fn account_policy(env: &Env, layout: &Layout, server_name: &str) -> crate::env::AccountPolicy {
    let mut ctx = Context::new(env, layout, server_name);
    if let Some(import) = crate::state::read(layout).and_then(|s| s.synapse_import) {
        ctx.apply_import(env, layout, &import);
    }
    ctx.account
}

/// Renders every config for `env`, with `server_name` the pinned name.
pub fn render(env: &Env, layout: &Layout, server_name: &str) -> Result<Rendered, RenderError> {
    let import = crate::state::read(layout).and_then(|s| s.synapse_import);
    render_with(env, layout, server_name, import.as_ref())
}

/// [`render`], with `import` the takeover of an earlier Synapse in force (or about to be).
pub fn render_with(
    env: &Env,
    layout: &Layout,
    server_name: &str,
    import: Option<&crate::state::SynapseImport>,
) -> Result<Rendered, RenderError> {
    let mut ctx = Context::new(env, layout, server_name);
    if let Some(import) = import {
        ctx.apply_import(env, layout, import);
    }
    ctx.appservice_files = crate::appservices::load(&layout.appservices_dir())?
        .into_iter()
        .map(|r| r.path.display().to_string())
        .collect();
    let mut ignored = Vec::new();

    let homeserver = layered(
        "homeserver.yaml",
        &render_template("homeserver.yaml", HOMESERVER_TEMPLATE, &ctx)?,
        &layout.overrides_dir().join("homeserver.yaml"),
        &Rules {
            owned: SYNAPSE_OWNED,
            forbidden: SYNAPSE_FORBIDDEN,
            upstream_providers: false,
        },
        &mut ignored,
    )?;
    let mas = layered(
        "mas.yaml",
        &render_template("mas.yaml", MAS_TEMPLATE, &ctx)?,
        &layout.overrides_dir().join("mas.yaml"),
        &Rules {
            owned: MAS_OWNED,
            forbidden: &[],
            upstream_providers: true,
        },
        &mut ignored,
    )?;
    let synapse_log = render_template("synapse-log.yaml", SYNAPSE_LOG_TEMPLATE, &ctx)?;
    Ok(Rendered {
        homeserver,
        synapse_log,
        mas,
        ignored,
    })
}

/// Writes the rendered files into the run dir (created 0700 if missing), each 0600.
pub fn write(layout: &Layout, rendered: &Rendered) -> Result<(), RenderError> {
    let write_err = |path: &Path, source| RenderError::Write {
        path: path.display().to_string(),
        source,
    };
    ensure_dir(&layout.run, 0o700).map_err(|e| write_err(&layout.run, e))?;
    for (path, contents) in [
        (layout.homeserver_yaml(), &rendered.homeserver),
        (layout.synapse_log_yaml(), &rendered.synapse_log),
        (layout.mas_yaml(), &rendered.mas),
    ] {
        write_atomic(&path, contents.as_bytes(), 0o600).map_err(|e| write_err(&path, e))?;
    }
    Ok(())
}

fn render_template(name: &'static str, source: &str, ctx: &Context) -> Result<String, RenderError> {
    let mut jinja = minijinja::Environment::new();
    jinja.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    jinja.set_keep_trailing_newline(true);
    let err = |source| RenderError::Template { name, source };
    jinja.add_template(name, source).map_err(err)?;
    jinja
        .get_template(name)
        .map_err(err)?
        .render(ctx)
        .map_err(err)
}

/// How one file's overrides are layered.
struct Rules {
    /// Keys the appliance owns (restored from the defaults).
    owned: &'static [&'static str],
    /// Keys dropped from the overrides.
    forbidden: &'static [&'static str],
    /// Whether `upstream_oauth2.providers` is appended to instead of replaced (mas.yaml).
    upstream_providers: bool,
}

/// Applies the override file (if any) over `rendered`, then restores owned keys and drops
/// forbidden ones.
fn layered(
    name: &'static str,
    rendered: &str,
    override_path: &Path,
    rules: &Rules,
    ignored: &mut Vec<Ignored>,
) -> Result<String, RenderError> {
    let base: Value = serde_yaml::from_str(rendered)
        .map_err(|source| RenderError::TemplateYaml { name, source })?;
    let overrides = read_overrides(override_path)?;
    let Some(mut overrides) = overrides else {
        return Ok(rendered.to_owned());
    };
    let operator_providers = if rules.upstream_providers {
        providers::take_operator_providers(&mut overrides).map_err(|source| {
            RenderError::Providers {
                path: override_path.display().to_string(),
                source,
            }
        })?
    } else {
        Vec::new()
    };
    let (mut merged, mut dropped) = layers::apply(&base, &overrides, rules.owned, rules.forbidden);
    if rules.upstream_providers {
        dropped.extend(providers::append(&mut merged, &base, operator_providers));
    }
    for d in &mut dropped {
        d.file = override_path.display().to_string();
    }
    ignored.extend(dropped);
    let header = format!(
        "# Rendered by the appliance supervisor from its defaults and {}.\n",
        override_path.display()
    );
    let body = serde_yaml::to_string(&merged)
        .map_err(|source| RenderError::TemplateYaml { name, source })?;
    Ok(header + &body)
}

/// Reads an operator override file: absent → `None`; present, it must be a YAML mapping.
fn read_overrides(path: &Path) -> Result<Option<Value>, RenderError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RenderError::Override {
                path: path.display().to_string(),
                message: format!("cannot read the override file: {e}"),
            });
        }
    };
    let bad = |message: String| RenderError::Override {
        path: path.display().to_string(),
        message,
    };
    match serde_yaml::from_str::<Value>(&text) {
        Ok(Value::Null) => Ok(None),
        Ok(v @ Value::Mapping(_)) => Ok(Some(v)),
        Ok(_) => Err(bad("must be a YAML mapping of keys to values".to_owned())),
        Err(e) => Err(bad(format!("is not valid YAML: {e}"))),
    }
}

#[cfg(test)]
mod tests;
