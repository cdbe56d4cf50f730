//! Appservice registrations (docs/architecture.md#data-dir-and-run-dir): the operator drops one
//! registration file per bridge into `<data>/appservices/` (`*.yaml` or `*.yml`), and the
//! appliance hands them to Synapse in `app_service_config_files`.
//!
//! Synapse reads these files only when it starts and stops on the first bad one, which under the
//! supervisor would be a crash loop with the reason buried in Synapse's log. So every file is
//! checked here first, against the rules of Synapse's appservice config loader (the keys and
//! types of the "Registering an Application Service" documentation and the unstable flags of
//! MSC3202, MSC4190, MSC4502 and MSC4512) plus a few cross-file rules Synapse leaves to luck:
//! unique `id`, tokens and `sender_localpart`, and no exclusive user regex claimed twice. Every
//! problem is one line naming the file and the key; all of them are reported together.
//!
//! Tokens are secrets: no problem line, log line or `Debug` output ever contains one.
//!
//! What this does not check: whether a namespace regex compiles (Synapse uses Python's `re`,
//! whose syntax is not Rust's), and `ip_range_whitelist`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

/// The directory's name under the data dir.
pub const DIR_NAME: &str = "appservices";

/// The namespaces a registration may claim.
const NAMESPACES: [&str; 3] = ["users", "aliases", "rooms"];

/// The MSC4502 scopes Synapse knows.
const KNOWN_SCOPES: [&str; 1] = ["urn:matrix:client:io.element.msc4502:rooms:is_joined"];

/// The MSC4512 proxy prefixes Synapse lets an appservice claim.
const ALLOWED_PROXY_PREFIXES: [&str; 1] = ["rtc/livekit"];

/// One checked registration file; what the render and the doctor need of it (no tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// `appservices/<file name>`, as lines name the file.
    pub file: String,
    /// The file's path, as given to Synapse.
    pub path: PathBuf,
    pub id: String,
    /// `None` when the registration says `url: null` (Synapse then pushes nothing to it).
    pub url: Option<String>,
    pub sender_localpart: String,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `appservices/<file name>`.
    pub file: String,
    /// The dotted key, or empty when the problem is the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Problems(pub Vec<Problem>);

/// Reads and checks every registration in `dir` (sorted by file name). No directory means no
/// appservices.
pub fn load(dir: &Path) -> Result<Vec<Registration>, Problems> {
    let files = list(dir).map_err(|e| {
        Problems(vec![Problem {
            file: format!("{DIR_NAME}/"),
            key: String::new(),
            message: format!("cannot read the directory {}: {e}", dir.display()),
        }])
    })?;
    let mut problems = Vec::new();
    let mut parsed = Vec::new();
    for (name, path) in files {
        let mut file = FileCheck {
            file: format!("{DIR_NAME}/{name}"),
            problems: &mut problems,
        };
        if let Some(p) = file.read(&path) {
            parsed.push(p);
        }
    }
    cross_check(&parsed, &mut problems);
    if problems.is_empty() {
        Ok(parsed.into_iter().map(|p| p.registration).collect())
    } else {
        Err(Problems(problems))
    }
}

/// The registration files in `dir`: `*.yaml` and `*.yml`, sorted by name.
fn list(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// A file that passed its own checks, with what the cross-file checks need.
struct Parsed {
    registration: Registration,
    as_token: String,
    hs_token: String,
    exclusive_user_regexes: Vec<String>,
    proxy_prefix: Option<String>,
}

/// The checks of one file, collecting its problems.
struct FileCheck<'p> {
    file: String,
    problems: &'p mut Vec<Problem>,
}

impl FileCheck<'_> {
    fn bad(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.clone(),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn read(&mut self, path: &Path) -> Option<Parsed> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                self.bad("", format!("cannot read the file: {e}"));
                return None;
            }
        };
        // The parser's messages name a position and the expected token, never the content.
        let doc = match serde_yaml::from_str::<Value>(&text) {
            Ok(Value::Mapping(doc)) => doc,
            Ok(_) => {
                self.bad("", "must be a YAML mapping (a registration file)");
                return None;
            }
            Err(e) => {
                self.bad("", format!("is not valid YAML: {e}"));
                return None;
            }
        };
        let before = self.problems.len();
        let parsed = self.registration(&doc, path);
        (self.problems.len() == before).then_some(parsed).flatten()
    }

    fn registration(&mut self, doc: &Mapping, path: &Path) -> Option<Parsed> {
        let id = self.required_string(doc, "id", true);
        let as_token = self.required_string(doc, "as_token", false);
        let hs_token = self.required_string(doc, "hs_token", false);
        let sender_localpart = self.required_string(doc, "sender_localpart", true);
        if let Some(id) = &id
            && id.contains('|')
        {
            self.bad("id", format!("{id:?} must not contain '|'"));
        }
        if let Some(localpart) = &sender_localpart
            && !localpart.chars().all(is_url_safe)
        {
            self.bad(
                "sender_localpart",
                format!("{localpart:?} has characters that need URL encoding"),
            );
        }
        if let (Some(a), Some(h)) = (&as_token, &hs_token)
            && a == h
        {
            self.bad("hs_token", "must differ from as_token");
        }
        let url = self.url(doc);
        let exclusive_user_regexes = self.namespaces(doc);
        self.protocols(doc);
        for flag in ["org.matrix.msc3202", "io.element.msc4190"] {
            if doc.get(flag).is_some_and(|v| !v.is_bool()) {
                self.bad(flag, "must be true or false");
            }
        }
        self.scopes(doc);
        let proxy_prefix = self.proxy(doc);
        Some(Parsed {
            registration: Registration {
                file: self.file.clone(),
                path: path.to_owned(),
                id: id?,
                url: url?,
                sender_localpart: sender_localpart?,
            },
            as_token: as_token?,
            hs_token: hs_token?,
            exclusive_user_regexes,
            proxy_prefix,
        })
    }

    /// A non-empty string; `show` says whether the value may appear in a problem line.
    fn required_string(&mut self, doc: &Mapping, key: &str, show: bool) -> Option<String> {
        match doc.get(key) {
            None | Some(Value::Null) => self.bad(key, "missing"),
            Some(Value::String(s)) if s.is_empty() => self.bad(key, "must not be empty"),
            Some(Value::String(s)) => return Some(s.clone()),
            Some(other) if show => self.bad(key, format!("must be a string, not {}", kind(other))),
            Some(_) => self.bad(key, "must be a string"),
        }
        None
    }

    /// `url`: a string or an explicit null, never missing (so push is never turned off by
    /// accident, the rule of Synapse's loader). `Some(None)` is the explicit null.
    fn url(&mut self, doc: &Mapping) -> Option<Option<String>> {
        match doc.get("url") {
            None => self.bad(
                "url",
                "missing (the appservice's URL, or null to push nothing to it)",
            ),
            Some(Value::Null) => return Some(None),
            Some(Value::String(s)) => match url::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => return Some(Some(s.clone())),
                _ => self.bad("url", format!("{s:?} is not an http:// or https:// URL")),
            },
            Some(other) => self.bad(
                "url",
                format!("must be a string or null, not {}", kind(other)),
            ),
        }
        None
    }

    /// `namespaces`: a mapping whose optional `users`, `aliases` and `rooms` are lists of
    /// `{exclusive: bool, regex: string}`. Returns the exclusive user regexes.
    fn namespaces(&mut self, doc: &Mapping) -> Vec<String> {
        let mut exclusive_users = Vec::new();
        let namespaces = match doc.get("namespaces") {
            None | Some(Value::Null) => {
                self.bad("namespaces", "missing");
                return exclusive_users;
            }
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                self.bad(
                    "namespaces",
                    "must be a mapping of users, aliases and rooms lists",
                );
                return exclusive_users;
            }
        };
        for ns in NAMESPACES {
            let Some(entries) = namespaces.get(ns) else {
                continue;
            };
            let key = format!("namespaces.{ns}");
            let Value::Sequence(entries) = entries else {
                self.bad(&key, "must be a list of {exclusive, regex} entries");
                continue;
            };
            for (i, entry) in entries.iter().enumerate() {
                let key = format!("{key}[{i}]");
                let Value::Mapping(entry) = entry else {
                    self.bad(&key, "must be a mapping with exclusive and regex");
                    continue;
                };
                let exclusive = entry.get("exclusive").and_then(Value::as_bool);
                if exclusive.is_none() {
                    self.bad(&format!("{key}.exclusive"), "must be true or false");
                }
                let regex = entry.get("regex").and_then(Value::as_str);
                if regex.is_none() {
                    self.bad(&format!("{key}.regex"), "must be a string");
                }
                if let (Some(true), Some(regex), "users") = (exclusive, regex, ns) {
                    exclusive_users.push(regex.to_owned());
                }
            }
        }
        exclusive_users
    }

    fn protocols(&mut self, doc: &Mapping) {
        match doc.get("protocols") {
            // Synapse ignores an empty or null list.
            None | Some(Value::Null) => {}
            Some(Value::Sequence(items)) if items.iter().all(Value::is_string) => {}
            Some(_) => self.bad("protocols", "must be a list of strings"),
        }
    }

    /// MSC4502 `io.element.msc4502.scopes`: a list of the scopes Synapse knows.
    fn scopes(&mut self, doc: &Mapping) {
        const KEY: &str = "io.element.msc4502.scopes";
        let Some(scopes) = doc.get(KEY) else { return };
        let Value::Sequence(scopes) = scopes else {
            self.bad(KEY, "must be a list of strings");
            return;
        };
        for scope in scopes {
            match scope.as_str() {
                Some(s) if KNOWN_SCOPES.contains(&s) => {}
                Some(s) => self.bad(KEY, format!("unknown scope {s:?}")),
                None => self.bad(KEY, "must be a list of strings"),
            }
        }
    }

    /// MSC4512 `io.element.msc4512.proxy_prefix` and `.proxy_url`: both or neither, non-empty
    /// strings, the prefix one Synapse allows. Returns the prefix without its trailing slashes.
    fn proxy(&mut self, doc: &Mapping) -> Option<String> {
        const PREFIX: &str = "io.element.msc4512.proxy_prefix";
        const URL: &str = "io.element.msc4512.proxy_url";
        let mut get = |key: &str| match doc.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                self.bad(key, "must be a non-empty string");
                None
            }
        };
        let (prefix, url) = (get(PREFIX), get(URL));
        match (prefix, url) {
            (Some(prefix), Some(_)) => {
                let prefix = prefix.trim_end_matches('/').to_owned();
                let allowed = ALLOWED_PROXY_PREFIXES
                    .iter()
                    .any(|a| prefix == *a || prefix.starts_with(&format!("{a}/")));
                if !allowed {
                    self.bad(PREFIX, format!("{prefix:?} is not a prefix Synapse allows"));
                }
                Some(prefix)
            }
            (None, None) => None,
            (Some(_), None) => {
                self.bad(URL, format!("missing (must be set together with {PREFIX})"));
                None
            }
            (None, Some(_)) => {
                self.bad(PREFIX, format!("missing (must be set together with {URL})"));
                None
            }
        }
    }
}

/// The rules across files: unique ids, sender localparts and tokens (an `as_token` used as
/// another file's `hs_token` counts), exclusive user regexes and proxy prefixes claimed once.
fn cross_check(parsed: &[Parsed], problems: &mut Vec<Problem>) {
    let mut ids: HashMap<&str, &str> = HashMap::new();
    let mut senders: HashMap<&str, &str> = HashMap::new();
    let mut tokens: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut regexes: HashMap<&str, &str> = HashMap::new();
    let mut prefixes: Vec<(&str, &str)> = Vec::new();
    for p in parsed {
        let file = p.registration.file.as_str();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem {
                file: file.to_owned(),
                key: key.to_owned(),
                message,
            })
        };
        let id = p.registration.id.as_str();
        if let Some(other) = ids.insert(id, file) {
            bad("id", format!("{id:?} is also used by {other}"));
        }
        let sender = p.registration.sender_localpart.as_str();
        if let Some(other) = senders.insert(sender, file) {
            bad(
                "sender_localpart",
                format!("{sender:?} is also used by {other}"),
            );
        }
        for (key, token) in [("as_token", &p.as_token), ("hs_token", &p.hs_token)] {
            match tokens.get(token.as_str()) {
                // The same file's as_token = hs_token is reported by the file's own checks.
                Some((other, _)) if *other == file => {}
                Some((other, other_key)) => bad(
                    key,
                    format!("the same token is also the {other_key} of {other}"),
                ),
                None => {
                    tokens.insert(token.as_str(), (file, key));
                }
            }
        }
        for regex in &p.exclusive_user_regexes {
            match regexes.get(regex.as_str()) {
                Some(other) if *other != file => bad(
                    "namespaces.users",
                    format!("the exclusive regex {regex:?} is also claimed by {other}"),
                ),
                _ => {
                    regexes.insert(regex.as_str(), file);
                }
            }
        }
        if let Some(prefix) = &p.proxy_prefix {
            let overlapping = prefixes.iter().find(|(seen, _)| {
                prefix == seen
                    || prefix.starts_with(&format!("{seen}/"))
                    || seen.starts_with(&format!("{prefix}/"))
            });
            if let Some((seen, other)) = overlapping {
                bad(
                    "io.element.msc4512.proxy_prefix",
                    format!("{prefix:?} overlaps {seen:?} of {other}"),
                );
            }
            prefixes.push((prefix, file));
        }
    }
}

/// The characters Python's `urllib.parse.quote` leaves alone, which Synapse requires of
/// `sender_localpart`.
fn is_url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '~' | '/')
}

/// A YAML value's kind, for problem lines (never the value itself).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests;
