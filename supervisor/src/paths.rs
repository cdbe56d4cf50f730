//! Where things live: the data dir layout (docs/architecture.md#data-dir-and-run-dir), the run dir,
//! and the files that ship next to the binaries (the `mas-cli` binary, MAS templates and assets,
//! the Synapse venv).

use std::path::{Path, PathBuf};

/// Names of the files in `<data>/secrets/`, generated once and never regenerated.
pub const SECRET_FILES: [&str; 8] = [
    "synapse_signing.key",
    "synapse_macaroon",
    "synapse_form_secret",
    "synapse_registration_secret",
    "mas_synapse_shared_secret",
    "mas_encryption_key",
    "mas_rsa.pem",
    "mas_ec_p256.pem",
];

/// `<data>/secrets/` file holding an imported Synapse's `password_config.pepper`.
pub const PEPPER_FILE: &str = "synapse_password_pepper";

/// The data dir (persistent, backed up) and the run dir (rendered on every start).
#[derive(Debug, Clone)]
pub struct Layout {
    pub data: PathBuf,
    pub run: PathBuf,
}

impl Layout {
    pub fn new(data: &Path, run: &Path) -> Self {
        Layout {
            data: data.to_owned(),
            run: run.to_owned(),
        }
    }

    /// `<data>/appliance.json`: pinned server_name, first-start time, layout version.
    pub fn state_file(&self) -> PathBuf {
        self.data.join("appliance.json")
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.data.join("secrets")
    }

    pub fn secret(&self, name: &str) -> PathBuf {
        self.secrets_dir().join(name)
    }

    /// `<data>/config/`: optional operator overrides.
    pub fn overrides_dir(&self) -> PathBuf {
        self.data.join("config")
    }

    /// `<data>/appservices/`: the operator's appservice registration files.
    pub fn appservices_dir(&self) -> PathBuf {
        self.data.join(crate::appservices::DIR_NAME)
    }

    pub fn synapse_dir(&self) -> PathBuf {
        self.data.join("synapse")
    }

    pub fn mas_dir(&self) -> PathBuf {
        self.data.join("mas")
    }

    /// `<data>/backups/`: what `appliance migrate` replaced, one `<UTC timestamp>/` per run.
    pub fn backups_dir(&self) -> PathBuf {
        self.data.join("backups")
    }

    /// `<data>/configs/homeserver.yaml`: the stock Cloudron Synapse package's config.
    pub fn cloudron_package_config(&self) -> PathBuf {
        self.data.join("configs").join("homeserver.yaml")
    }

    /// `<run>/syn2mas-synapse.yaml`: the Synapse config `mas-cli syn2mas` reads.
    pub fn syn2mas_synapse_yaml(&self) -> PathBuf {
        self.run.join("syn2mas-synapse.yaml")
    }

    pub fn homeserver_yaml(&self) -> PathBuf {
        self.run.join("homeserver.yaml")
    }

    pub fn synapse_log_yaml(&self) -> PathBuf {
        self.run.join("synapse-log.yaml")
    }

    pub fn mas_yaml(&self) -> PathBuf {
        self.run.join("mas.yaml")
    }
}

/// The directory holding `templates/mas` and `assets`: next to the binary in the image
/// (`/app/code`), or the repository root for `target/{debug,release}/appliance`.
pub fn share_dir() -> PathBuf {
    let exe_dir = exe_dir();
    let candidates = [exe_dir.clone(), exe_dir.join("../..")];
    for dir in &candidates {
        if dir.join("templates/mas").is_dir() {
            return dir.canonicalize().unwrap_or_else(|_| dir.clone());
        }
    }
    exe_dir
}

/// The `mas-cli` binary, which is built and shipped next to `appliance`.
pub fn mas_cli() -> PathBuf {
    exe_dir().join("mas-cli")
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The Python with `matrix-synapse`: the image's venv, else the repository's `.venv`.
pub fn default_synapse_python() -> Option<PathBuf> {
    [
        PathBuf::from("/app/code/venv/bin/python"),
        share_dir().join(".venv/bin/python"),
    ]
    .into_iter()
    .find(|p| p.exists())
}
