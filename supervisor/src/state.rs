//! `<data>/appliance.json`: what must never change once the appliance has started once — the
//! pinned server_name (user IDs and federation keys depend on it), the first-start time and the
//! data layout version.

use std::io;

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::fsutil::write_atomic;
use crate::paths::Layout;

/// The current data dir layout version.
pub const LAYOUT_VERSION: u32 = 1;

/// The contents of `appliance.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub server_name: String,
    /// Unix seconds of the first start.
    pub first_start: u64,
    pub layout_version: u32,
    /// What was taken over from an earlier Synapse (`appliance migrate --from`, the stock
    /// Cloudron package's config, or users found in Synapse's database), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse_import: Option<SynapseImport>,
    /// Unix seconds of the completed `mas-cli syn2mas migrate`: set once, never run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrated_from_synapse: Option<u64>,
}

/// The decisions taken when an earlier Synapse was taken over, kept so later starts render the
/// same configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynapseImport {
    /// The old `homeserver.yaml`, or `database` when the users were found in place.
    pub source: String,
    /// The old Synapse let people sign in with a password: password login stays on in MAS
    /// (unless `APPLIANCE_PASSWORD_LOGIN` says otherwise).
    pub password_login: bool,
    /// Synapse's auth provider id of the old OIDC provider, rendered as the platform
    /// provider's `synapse_idp_id` so its users' links carry over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse_idp_id: Option<String>,
}

/// The outcome of comparing the environment with the pinned state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// No state yet: this is the first start, with this server name.
    First(String),
    /// Already pinned. `derived_differs` is set when the derived default no longer matches
    /// (e.g. the app moved to another domain); the pinned name is used regardless.
    Pinned {
        state: State,
        derived_differs: Option<String>,
    },
}

impl Pin {
    pub fn server_name(&self) -> &str {
        match self {
            Pin::First(name) => name,
            Pin::Pinned { state, .. } => &state.server_name,
        }
    }
}

/// Errors reading or checking the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "APPLIANCE_SERVER_NAME: this data dir belongs to server name {pinned:?}, not {wanted:?}; \
         a Matrix server name cannot change (unset the variable or set it back to {pinned:?})"
    )]
    ServerNameChanged { pinned: String, wanted: String },
    #[error("{path}: {message}; fix or restore the file (it pins the server name)")]
    Unreadable { path: String, message: String },
    #[error(
        "{path}: layout version {found} is newer than this appliance understands ({LAYOUT_VERSION}); upgrade the appliance"
    )]
    TooNew { path: String, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: io::Error },
}

/// Reads `appliance.json` (if any) and checks it against the environment. Writes nothing.
pub fn check(layout: &Layout, env: &Env) -> Result<Pin, StateError> {
    let path = layout.state_file();
    let unreadable = |message: String| StateError::Unreadable {
        path: path.display().to_string(),
        message,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Pin::First(env.server_name.clone()));
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    let state: State =
        serde_json::from_str(&text).map_err(|e| unreadable(format!("not valid: {e}")))?;
    if state.layout_version > LAYOUT_VERSION {
        return Err(StateError::TooNew {
            path: path.display().to_string(),
            found: state.layout_version,
        });
    }
    if state.server_name == env.server_name {
        return Ok(Pin::Pinned {
            state,
            derived_differs: None,
        });
    }
    if env.server_name_explicit {
        return Err(StateError::ServerNameChanged {
            pinned: state.server_name,
            wanted: env.server_name.clone(),
        });
    }
    Ok(Pin::Pinned {
        state,
        derived_differs: Some(env.server_name.clone()),
    })
}

/// Writes `appliance.json` on the first start; later starts leave it alone.
pub fn pin(layout: &Layout, pin: &Pin, now_unix: u64) -> Result<State, StateError> {
    match pin {
        Pin::Pinned { state, .. } => Ok(state.clone()),
        Pin::First(server_name) => {
            let state = State {
                server_name: server_name.clone(),
                first_start: now_unix,
                layout_version: LAYOUT_VERSION,
                synapse_import: None,
                migrated_from_synapse: None,
            };
            write(layout, &state)?;
            Ok(state)
        }
    }
}

/// Reads `appliance.json` as it is (`None` when absent or unreadable: `check` reports that).
pub fn read(layout: &Layout) -> Option<State> {
    let text = std::fs::read_to_string(layout.state_file()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Rewrites `appliance.json` (which must exist) with `change` applied.
pub fn update(layout: &Layout, change: impl FnOnce(&mut State)) -> Result<State, StateError> {
    let path = layout.state_file();
    let mut state = read(layout).ok_or_else(|| StateError::Unreadable {
        path: path.display().to_string(),
        message: "missing or not valid".to_owned(),
    })?;
    change(&mut state);
    write(layout, &state)?;
    Ok(state)
}

/// Writes `state` to `appliance.json` (atomically, 0600, pretty JSON with a final newline).
fn write(layout: &Layout, state: &State) -> Result<(), StateError> {
    let path = layout.state_file();
    let mut json = serde_json::to_vec_pretty(state).expect("State serializes");
    json.push(b'\n');
    write_atomic(&path, &json, 0o600).map_err(|source| StateError::Write {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::parse(&map, Path::new("/")).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path(), &tmp.path().join("run"));
        (tmp, layout)
    }

    #[test]
    fn first_start_pins_the_server_name() {
        let (_tmp, layout) = setup();
        let e = env(&[("APPLIANCE_SERVER_NAME", "example.com")]);
        let p = check(&layout, &e).unwrap();
        assert_eq!(p, Pin::First("example.com".to_owned()));
        let state = pin(&layout, &p, 1_700_000_000).unwrap();
        assert_eq!(state.first_start, 1_700_000_000);
        let again = check(&layout, &e).unwrap();
        assert_eq!(
            again,
            Pin::Pinned {
                state,
                derived_differs: None
            }
        );
    }

    #[test]
    fn a_changed_explicit_server_name_is_refused() {
        let (_tmp, layout) = setup();
        let p = check(&layout, &env(&[("APPLIANCE_SERVER_NAME", "example.com")])).unwrap();
        pin(&layout, &p, 1).unwrap();
        let err = check(&layout, &env(&[("APPLIANCE_SERVER_NAME", "other.org")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("APPLIANCE_SERVER_NAME: "), "{msg}");
        assert!(
            msg.contains("\"example.com\"") && msg.contains("\"other.org\""),
            "{msg}"
        );
    }

    #[test]
    fn a_changed_derived_name_keeps_the_pinned_one() {
        let (_tmp, layout) = setup();
        let p = check(
            &layout,
            &env(&[("CLOUDRON_APP_ORIGIN", "https://a.example.com")]),
        )
        .unwrap();
        pin(&layout, &p, 1).unwrap();
        let p = check(
            &layout,
            &env(&[("CLOUDRON_APP_ORIGIN", "https://b.example.com")]),
        )
        .unwrap();
        assert_eq!(p.server_name(), "a.example.com");
        assert!(
            matches!(p, Pin::Pinned { derived_differs: Some(ref d), .. } if d == "b.example.com")
        );
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_new_start() {
        let (_tmp, layout) = setup();
        std::fs::write(layout.state_file(), "{not json").unwrap();
        let err = check(&layout, &env(&[])).unwrap_err();
        assert!(matches!(err, StateError::Unreadable { .. }));
        assert_eq!(
            std::fs::read_to_string(layout.state_file()).unwrap(),
            "{not json"
        );
    }

    #[test]
    fn a_newer_layout_is_refused() {
        let (_tmp, layout) = setup();
        std::fs::write(
            layout.state_file(),
            r#"{"server_name":"localhost","first_start":1,"layout_version":99}"#,
        )
        .unwrap();
        assert!(matches!(
            check(&layout, &env(&[])),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }
}
