//! The pre-flight checks (docs/protocol.md#syn2mas): what would be lost or would break if this
//! Synapse were moved behind MAS. Errors block `migrate`; warnings are printed and it goes on.
//! Each problem says what to do about it.

use std::collections::HashMap;

use serde_yaml::Value;

use super::source::SourceStats;
use super::synapse_config::SynapseConfig;
use crate::config::{HashingAlgorithm, RootConfig};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Blocks the migration.
    Error,
    /// Printed; the migration goes ahead.
    Warning,
}

/// One finding of the checks: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The message, with the fix.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}", self.message)
    }
}

/// `synapse_idp_id` → MAS upstream provider id, from the MAS config.
pub fn provider_map(mas: &RootConfig) -> HashMap<String, String> {
    mas.upstream_oauth2
        .providers
        .iter()
        .filter_map(|p| Some((p.synapse_idp_id.clone()?, p.id.clone())))
        .collect()
}

/// Runs every check. `mas_not_empty` lists the MAS tables that have rows.
pub fn run(
    mas: &RootConfig,
    synapse: &SynapseConfig,
    stats: &SourceStats,
    mas_not_empty: &[&str],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut error = |message: String| {
        problems.push(Problem {
            severity: Severity::Error,
            message,
        });
    };
    if let Some(message) = password_scheme(mas, synapse) {
        error(message);
    }
    if mas.matrix.homeserver != synapse.server_name {
        error(format!(
            "MAS matrix.homeserver is `{}` but Synapse's server_name is `{}`; set \
             matrix.homeserver to Synapse's server_name",
            mas.matrix.homeserver, synapse.server_name
        ));
    }
    if !mas_not_empty.is_empty() {
        error(format!(
            "the MAS database is not empty ({} have rows); syn2mas only imports into a new, \
             empty MAS database",
            mas_not_empty.join(", ")
        ));
    }
    for message in synapse_options(synapse) {
        error(message);
    }
    for message in providers(mas, synapse, stats) {
        error(message);
    }
    problems.extend(warnings(synapse, stats).into_iter().map(|message| Problem {
        severity: Severity::Warning,
        message,
    }));
    problems
}

fn password_scheme(mas: &RootConfig, synapse: &SynapseConfig) -> Option<String> {
    if !mas.passwords.enabled {
        return None;
    }
    let synapse_pepper = synapse
        .password_config
        .pepper
        .clone()
        .filter(|p| !p.is_empty());
    let wanted = "passwords.schemes needs `{version: 1, algorithm: bcrypt, \
                  unicode_normalization: true, secret: <Synapse's password_config.pepper>}` \
                  (no secret when Synapse has no pepper) so imported passwords keep working";
    let Some(scheme) = mas.passwords.schemes.iter().find(|s| s.version == 1) else {
        return Some(format!("MAS has no password scheme version 1; {wanted}"));
    };
    if scheme.algorithm != HashingAlgorithm::Bcrypt || !scheme.unicode_normalization {
        return Some(format!(
            "MAS password scheme version 1 is not bcrypt with unicode_normalization; {wanted}"
        ));
    }
    let mas_pepper = match scheme.pepper() {
        Ok(pepper) => pepper.filter(|p| !p.is_empty()),
        Err(error) => return Some(format!("MAS password scheme version 1: {error}")),
    };
    (mas_pepper != synapse_pepper).then(|| {
        format!(
            "the secret of MAS password scheme version 1 differs from Synapse's \
             password_config.pepper ({} vs {}); {wanted}",
            if mas_pepper.is_some() { "set" } else { "unset" },
            if synapse_pepper.is_some() {
                "set"
            } else {
                "unset"
            },
        )
    })
}

/// Synapse options that MAS replaces or that would stop working.
fn synapse_options(synapse: &SynapseConfig) -> Vec<String> {
    let mut errors = Vec::new();
    if synapse.allow_guest_access {
        errors.push(
            "Synapse has allow_guest_access enabled; MAS has no guest access: set it to false"
                .to_owned(),
        );
    }
    if synapse.enable_3pid_changes == Some(true) {
        errors.push(
            "Synapse has enable_3pid_changes enabled; email addresses are managed by MAS after \
             the move: remove it"
                .to_owned(),
        );
    }
    if section_enabled(synapse.login_via_existing_session.as_ref(), false) {
        errors.push(
            "Synapse has login_via_existing_session enabled; MAS has its own QR/device login: \
             remove it"
                .to_owned(),
        );
    }
    let lost = "Synapse would lose them behind MAS: remove them (or give their users passwords \
                or an upstream provider first)";
    if synapse
        .password_providers
        .as_ref()
        .is_some_and(|p| !p.is_empty())
    {
        errors.push(format!("Synapse has password_providers configured; {lost}"));
    }
    for module in synapse.modules.iter().flatten() {
        if is_auth_module(&module.module) {
            errors.push(format!(
                "Synapse has the authentication module `{}` configured; {lost}",
                module.module
            ));
        }
    }
    if synapse.cas_config.as_ref().is_some_and(|c| c.enabled) {
        errors.push(format!(
            "Synapse has CAS login (cas_config) enabled; {lost}"
        ));
    }
    if section_enabled(synapse.saml2_config.as_ref(), true) {
        errors.push(format!(
            "Synapse has SAML login (saml2_config) enabled; {lost}"
        ));
    }
    if section_enabled(synapse.jwt_config.as_ref(), false) {
        errors.push(format!(
            "Synapse has JWT login (jwt_config) enabled; {lost}"
        ));
    }
    errors
}

/// Whether a `modules` entry looks like it authenticates people (LDAP, REST or shared-secret
/// password providers and the like), judged by its Python path.
fn is_auth_module(module: &str) -> bool {
    let module = module.to_ascii_lowercase();
    [
        "auth", "ldap", "password", "saml", "cas", "jwt", "oidc", "login",
    ]
    .iter()
    .any(|word| module.contains(word))
}

/// A section present and not `enabled: false` (or, when `default` is false, `enabled: true`).
fn section_enabled(section: Option<&Value>, default: bool) -> bool {
    match section {
        None | Some(Value::Null) => false,
        Some(Value::Mapping(map)) => match map.get("enabled") {
            Some(Value::Bool(enabled)) => *enabled,
            _ => default,
        },
        Some(_) => default,
    }
}

fn providers(mas: &RootConfig, synapse: &SynapseConfig, stats: &SourceStats) -> Vec<String> {
    let mapped = provider_map(mas);
    let in_synapse = synapse.oidc_auth_providers();
    let mut errors = Vec::new();
    for (provider, users) in &stats.external_providers {
        if provider == "oauth-delegated" {
            errors.push(format!(
                "Synapse's database has {users} `oauth-delegated` external ids from an earlier \
                 MAS; this Synapse was already delegated to a MAS: move that MAS's database \
                 instead"
            ));
        } else if !mapped.contains_key(provider) {
            let elsewhere = if in_synapse.contains(provider) {
                ""
            } else {
                " (it is not in Synapse's config either)"
            };
            errors.push(format!(
                "{users} external ids use Synapse's SSO provider `{provider}`{elsewhere}, which \
                 no MAS upstream provider maps: set `synapse_idp_id: {provider}` on the \
                 matching entry of upstream_oauth2.providers"
            ));
        }
    }
    errors
}

fn warnings(synapse: &SynapseConfig, stats: &SourceStats) -> Vec<String> {
    let mut warnings = Vec::new();
    if synapse.enable_registration {
        warnings.push(
            "Synapse has enable_registration on; registration moves to MAS \
             (account.password_registration_enabled): disable it in Synapse"
                .to_owned(),
        );
    }
    if synapse.user_consent.as_ref().is_some_and(|v| !v.is_null()) {
        warnings.push(
            "Synapse has user_consent configured; MAS does not ask for it: remove it and \
             link the terms from MAS instead"
                .to_owned(),
        );
    }
    if synapse.enable_registration_captcha {
        warnings.push(
            "Synapse asks for a captcha at registration; MAS registration has none: remove \
             enable_registration_captcha"
                .to_owned(),
        );
    }
    if stats.guests > 0 {
        warnings.push(format!(
            "{} guest users are imported as legacy guests, without sessions",
            stats.guests
        ));
    }
    if stats.non_email_threepids > 0 {
        warnings.push(format!(
            "{} phone numbers are not imported (MAS keeps only emails); {} users with only a \
             phone number will need an email or a password to recover their account",
            stats.non_email_threepids, stats.users_with_only_phone
        ));
    }
    warnings
}
