//! Running as the right user (docs/architecture.md#start-restart-and-stop): started as root with a
//! target user (`cloudron` on Cloudron, else `APPLIANCE_USER`), the supervisor gives the data and
//! run dirs to that user and then drops its own privileges, so that every child runs as that user
//! too. Started as non-root, it runs as is. Tools that stay root for their own checks (`appliance
//! doctor`) start their children through [`command_as`] instead, so that only the child changes
//! user.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Gid, Uid, User};

/// The account to become.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: std::path::PathBuf,
}

/// Errors while preparing or dropping privileges.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{var}: there is no user named {name:?} on this system")]
    NoSuchUser { var: &'static str, name: String },
    #[error("cannot change the owner of {path}: {source}")]
    Chown {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot switch to user {name:?}: {source}")]
    Switch { name: String, source: nix::Error },
}

/// Whether we run as root.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Resolves the user to run as: `None` when not root or when no user is configured.
pub fn target(user: Option<&str>, cloudron: bool) -> Result<Option<Target>, PrivilegeError> {
    let Some(name) = user else { return Ok(None) };
    if !is_root() {
        return Ok(None);
    }
    let var = if cloudron {
        "CLOUDRON"
    } else {
        "APPLIANCE_USER"
    };
    let found = User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::NoSuchUser {
            var,
            name: name.to_owned(),
        })?;
    Ok(Some(Target {
        name: found.name,
        uid: found.uid,
        gid: found.gid,
        home: found.dir,
    }))
}

/// Gives `dir` and everything below it to `target` (symlinks themselves, never their targets).
pub fn chown_tree(dir: &Path, target: &Target) -> Result<(), PrivilegeError> {
    let chown = |path: &Path| {
        std::os::unix::fs::lchown(path, Some(target.uid.as_raw()), Some(target.gid.as_raw()))
            .map_err(|source| PrivilegeError::Chown {
                path: path.display().to_string(),
                source,
            })
    };
    if !dir.exists() {
        return Ok(());
    }
    chown(dir)?;
    let meta = std::fs::symlink_metadata(dir).map_err(|source| PrivilegeError::Chown {
        path: dir.display().to_string(),
        source,
    })?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(dir).map_err(|source| PrivilegeError::Chown {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                chown_tree(&path, target)?
            } else {
                chown(&path)?
            }
        }
    }
    Ok(())
}

/// Becomes `target` for good: supplementary groups, then group, then user.
/// Call before any thread is started.
pub fn drop_to(target: &Target) -> Result<(), PrivilegeError> {
    let switch = |source| PrivilegeError::Switch {
        name: target.name.clone(),
        source,
    };
    nix::unistd::setgroups(&[target.gid]).map_err(switch)?;
    nix::unistd::setgid(target.gid).map_err(switch)?;
    nix::unistd::setuid(target.uid).map_err(switch)?;
    Ok(())
}

/// A command for `program` that runs as `target` (when given) from its first instruction.
///
/// The child sets its group, drops the supplementary groups and sets its user before `exec`
/// (std's `CommandExt::gid` and `uid`; std clears the supplementary groups when the parent is
/// root), the order [`drop_to`] uses: the parent keeps its own privileges.
pub fn command_as(program: impl AsRef<OsStr>, target: Option<&Target>) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(program);
    if let Some(target) = target {
        command.gid(target.gid.as_raw()).uid(target.uid.as_raw());
    }
    command
}

#[cfg(test)]
mod tests {
    use super::{command_as, is_root, target};

    /// `id -u`, `id -g` and `id -G` of a command run as `nobody` (uid and gid 65534 on Debian).
    #[test]
    fn command_as_runs_the_child_as_the_target_user_with_only_its_group() {
        if !is_root() {
            eprintln!("skipped: changing user needs root (CI runs as root)");
            return;
        }
        let nobody = target(Some("nobody"), false).unwrap().unwrap();
        let out = command_as("sh", Some(&nobody))
            .args(["-c", "id -u; id -g; id -G"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{uid}\n{gid}\n{gid}\n")
        );
    }

    #[test]
    fn command_as_without_target_keeps_our_user() {
        let out = command_as("id", None).arg("-u").output().unwrap();
        let ours = nix::unistd::Uid::effective().as_raw();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{ours}\n"));
    }
}
