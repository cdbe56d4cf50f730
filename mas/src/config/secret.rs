//! Secrets given inline (`secret: ...`) or by file (`secret_file: /path`), never both.

use camino::{Utf8Path, Utf8PathBuf};

use super::Problems;

/// Why a secret could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Neither form is set.
    #[error("set `{0}` or `{0}_file`")]
    Missing(&'static str),
    /// Both forms are set.
    #[error("set either `{0}` or `{0}_file`, not both")]
    Both(&'static str),
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The value is there but unusable (wrong length, not a key…).
    #[error("{0}")]
    Invalid(String),
}

impl SecretError {
    /// Records this error as a validation problem under `section` (`matrix`,
    /// `secrets.keys[0]`): a file error names the `*_file` key, the rest name the key itself.
    pub(crate) fn report(&self, problems: &mut Problems, section: &str, name: &str) {
        match self {
            Self::Read { path, source } => problems.push(
                format!("{section}.{name}_file"),
                format!("cannot read {path}: {source}"),
            ),
            other => problems.push(format!("{section}.{name}"), other.to_string()),
        }
    }
}

/// Reads a secret from its inline value or its file. A file's content is trimmed of
/// surrounding whitespace (a trailing newline is not part of the secret).
pub(crate) fn read(
    name: &'static str,
    inline: Option<&str>,
    file: Option<&Utf8Path>,
) -> Result<String, SecretError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(SecretError::Both(name)),
        (None, None) => Err(SecretError::Missing(name)),
        (Some(value), None) => Ok(value.to_owned()),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| text.trim().to_owned())
            .map_err(|source| SecretError::Read {
                path: path.to_owned(),
                source,
            }),
    }
}

/// Like [`read`], but absence is fine.
pub(crate) fn read_optional(
    name: &'static str,
    inline: Option<&str>,
    file: Option<&Utf8Path>,
) -> Result<Option<String>, SecretError> {
    match read(name, inline, file) {
        Err(SecretError::Missing(_)) => Ok(None),
        other => other.map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().join("s")).unwrap();
        std::fs::write(&path, "hunter2\n").unwrap();
        assert_eq!(read("secret", None, Some(&path)).unwrap(), "hunter2");
    }

    #[test]
    fn both_forms_are_refused() {
        let path = Utf8Path::new("/nonexistent");
        assert!(matches!(
            read("secret", Some("x"), Some(path)),
            Err(SecretError::Both("secret"))
        ));
    }

    #[test]
    fn optional_absence_is_none() {
        assert!(read_optional("secret", None, None).unwrap().is_none());
    }
}
