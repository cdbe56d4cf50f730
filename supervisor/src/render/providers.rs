//! MAS's upstream OIDC providers (`upstream_oauth2.providers`): a list, so the generic layering
//! (where an operator's list replaces ours) does not fit. The platform's provider, rendered from
//! `CLOUDRON_OIDC_*` with the reserved id [`CLOUDRON_PROVIDER_ID`], comes first; the operator's
//! providers from `<data>/config/mas.yaml` are appended after it.
//!
//! An operator entry with the reserved id tunes the platform's provider instead: it is
//! deep-merged into ours, except for the keys that connect it to the platform
//! ([`PLATFORM_OWNED`]), each of which is dropped with a log line. That is how an operator
//! links platform accounts to existing local ones (`claims_imports.localpart.on_conflict`) or
//! renames the button. Without a platform provider such an entry is dropped whole.

use serde_yaml::{Mapping, Value};

use super::layers::{Ignored, deep_merge};

/// The id of the platform's provider. The platform's manifest registers the callback
/// `ORIGIN/auth/upstream/callback/01J00000000000000000PR0V1D`, so it never changes.
pub const CLOUDRON_PROVIDER_ID: &str = "01J00000000000000000PR0V1D";

const SECTION: &str = "upstream_oauth2";
const LIST: &str = "providers";

/// Keys of the platform's provider that come from `CLOUDRON_OIDC_*` and the manifest: an
/// operator's value for one of them is ignored.
pub(super) const PLATFORM_OWNED: &[&str] = &[
    "id",
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "token_endpoint_auth_method",
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
];

/// An operator's `upstream_oauth2` section that is not shaped as MAS reads it.
#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    #[error("{SECTION} must be a mapping (with a `{LIST}` list)")]
    SectionNotMapping,
    #[error("{SECTION}.{LIST} must be a list of providers")]
    NotList,
}

/// Takes `upstream_oauth2.providers` out of the operator's overrides (removing an
/// `upstream_oauth2` section left empty), so the generic merge never sees it. `Err` when it is
/// there but not a list.
pub(super) fn take_operator_providers(overrides: &mut Value) -> Result<Vec<Value>, ProvidersError> {
    let Some(section) = overrides.get_mut(SECTION) else {
        return Ok(Vec::new());
    };
    let Some(section_map) = section.as_mapping_mut() else {
        return Err(ProvidersError::SectionNotMapping);
    };
    let taken = section_map.remove(LIST);
    let now_empty = section_map.is_empty();
    if now_empty && let Some(root) = overrides.as_mapping_mut() {
        root.remove(SECTION);
    }
    match taken {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(list)) => Ok(list),
        Some(_) => Err(ProvidersError::NotList),
    }
}

/// Sets `upstream_oauth2.providers` in `merged` to ours (from `base`) followed by the
/// operator's. An operator entry with the reserved id is merged into the platform's provider
/// (its platform-owned keys dropped), or dropped whole when there is none. Returns what was
/// dropped.
pub(super) fn append(merged: &mut Value, base: &Value, operator: Vec<Value>) -> Vec<Ignored> {
    let mut providers: Vec<Value> = base
        .get(SECTION)
        .and_then(|s| s.get(LIST))
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let mut ignored = Vec::new();
    for (index, provider) in operator.into_iter().enumerate() {
        if provider.get("id").and_then(Value::as_str) != Some(CLOUDRON_PROVIDER_ID) {
            providers.push(provider);
            continue;
        }
        let platform = providers
            .iter_mut()
            .find(|p| p.get("id").and_then(Value::as_str) == Some(CLOUDRON_PROVIDER_ID));
        let Some(platform) = platform else {
            ignored.push(Ignored {
                file: String::new(),
                key: format!("{SECTION}.{LIST}.{index} (id {CLOUDRON_PROVIDER_ID})"),
                reason: "this provider id is reserved for the platform's provider, which is only rendered when CLOUDRON_OIDC_* are set",
            });
            continue;
        };
        let mut tuning = provider;
        if let Some(keys) = tuning.as_mapping_mut() {
            for key in PLATFORM_OWNED {
                // `id` only selects the entry; it is the same value.
                if keys.remove(*key).is_some() && *key != "id" {
                    ignored.push(Ignored {
                        file: String::new(),
                        key: format!("{SECTION}.{LIST}.{index}.{key} (id {CLOUDRON_PROVIDER_ID})"),
                        reason: "the platform's provider takes this key from CLOUDRON_OIDC_*",
                    });
                }
            }
        }
        deep_merge(platform, &tuning);
    }
    if providers.is_empty() {
        return ignored;
    }
    if let Some(root) = merged.as_mapping_mut() {
        let section = root
            .entry(Value::from(SECTION))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !section.is_mapping() {
            *section = Value::Mapping(Mapping::new());
        }
        if let Some(section) = section.as_mapping_mut() {
            section.insert(Value::from(LIST), Value::Sequence(providers));
        }
    }
    ignored
}
