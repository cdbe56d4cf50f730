//! MAS's upstream OIDC providers (`upstream_oauth2.providers`): a list, so the generic layering
//! (where an operator's list replaces ours) does not fit. The platform's provider, rendered from
//! `CLOUDRON_OIDC_*` with the reserved id [`CLOUDRON_PROVIDER_ID`], comes first; the operator's
//! providers from `<data>/config/mas.yaml` are appended after it, except an entry with the
//! reserved id, which is dropped with a log line (whether or not the platform provider is set).

use serde_yaml::{Mapping, Value};

use super::layers::Ignored;

/// The id of the platform's provider. The platform's manifest registers the callback
/// `ORIGIN/auth/upstream/callback/01J00000000000000000PR0V1D`, so it never changes.
pub const CLOUDRON_PROVIDER_ID: &str = "01J00000000000000000PR0V1D";

const SECTION: &str = "upstream_oauth2";
const LIST: &str = "providers";

/// Takes `upstream_oauth2.providers` out of the operator's overrides (removing an
/// `upstream_oauth2` section left empty), so the generic merge never sees it. `Err` with a
/// message when it is there but not a list.
pub(super) fn take_operator_providers(overrides: &mut Value) -> Result<Vec<Value>, String> {
    let Some(section) = overrides.get_mut(SECTION) else {
        return Ok(Vec::new());
    };
    let Some(section_map) = section.as_mapping_mut() else {
        return Err(format!(
            "{SECTION} must be a mapping (with a `{LIST}` list)"
        ));
    };
    let taken = section_map.remove(LIST);
    let now_empty = section_map.is_empty();
    if now_empty && let Some(root) = overrides.as_mapping_mut() {
        root.remove(SECTION);
    }
    match taken {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(list)) => Ok(list),
        Some(_) => Err(format!("{SECTION}.{LIST} must be a list of providers")),
    }
}

/// Sets `upstream_oauth2.providers` in `merged` to ours (from `base`) followed by the
/// operator's, minus any operator entry with the reserved id. Returns those dropped entries.
pub(super) fn append(merged: &mut Value, base: &Value, operator: Vec<Value>) -> Vec<Ignored> {
    let mut providers: Vec<Value> = base
        .get(SECTION)
        .and_then(|s| s.get(LIST))
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    let mut ignored = Vec::new();
    for (index, provider) in operator.into_iter().enumerate() {
        if provider.get("id").and_then(Value::as_str) == Some(CLOUDRON_PROVIDER_ID) {
            ignored.push(Ignored {
                file: String::new(),
                key: format!("{SECTION}.{LIST}.{index} (id {CLOUDRON_PROVIDER_ID})"),
                reason: "this provider id is reserved for the platform's provider, which the appliance renders from CLOUDRON_OIDC_*",
            });
            continue;
        }
        providers.push(provider);
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
