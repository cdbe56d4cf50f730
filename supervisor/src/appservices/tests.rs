use std::path::Path;

use super::*;

/// A registration Synapse accepts; `n` varies every value that must be unique.
fn good(n: &str) -> String {
    format!(
        "id: bridge{n}\n\
         url: http://127.0.0.1:2931{n}\n\
         as_token: as-secret-{n}\n\
         hs_token: hs-secret-{n}\n\
         sender_localpart: bridgebot{n}\n\
         rate_limited: false\n\
         receive_ephemeral: true\n\
         io.element.msc4190: true\n\
         org.matrix.msc3202: true\n\
         namespaces:\n\
         \x20 users:\n\
         \x20   - exclusive: true\n\
         \x20     regex: '@bridge{n}_.*:example\\.com'\n\
         \x20 aliases: []\n\
         \x20 rooms: []\n"
    )
}

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), contents).unwrap();
}

/// The problem lines for a directory holding `files`.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        write(tmp.path(), name, contents);
    }
    match load(tmp.path()) {
        Ok(found) => panic!("expected problems, got {found:?}"),
        Err(Problems(found)) => found.iter().map(ToString::to_string).collect(),
    }
}

/// The problem lines of one file `a.yaml`: `good("1")` with `edit` applied.
fn problems_of(edit: impl Fn(String) -> String) -> Vec<String> {
    problems(&[("a.yaml", &edit(good("1")))])
}

#[test]
fn no_directory_means_no_appservices() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(load(&tmp.path().join("appservices")).unwrap(), vec![]);
}

#[test]
fn good_files_load_sorted_by_name_and_other_files_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "b.yml", &good("2"));
    write(tmp.path(), "a.yaml", &good("1"));
    write(tmp.path(), "README.md", "not a registration");
    write(tmp.path(), "c.yaml.bak", "id: [");
    let found = load(tmp.path()).unwrap();
    assert_eq!(
        found,
        vec![
            Registration {
                file: "appservices/a.yaml".to_owned(),
                path: tmp.path().join("a.yaml"),
                id: "bridge1".to_owned(),
                url: Some("http://127.0.0.1:29311".to_owned()),
                sender_localpart: "bridgebot1".to_owned(),
            },
            Registration {
                file: "appservices/b.yml".to_owned(),
                path: tmp.path().join("b.yml"),
                id: "bridge2".to_owned(),
                url: Some("http://127.0.0.1:29312".to_owned()),
                sender_localpart: "bridgebot2".to_owned(),
            },
        ]
    );
}

#[test]
fn an_explicit_null_url_is_accepted_as_push_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.yaml",
        &good("1").replace("url: http://127.0.0.1:29311", "url: null"),
    );
    assert_eq!(load(tmp.path()).unwrap()[0].url, None);
}

#[test]
fn a_missing_required_key_is_named() {
    for key in ["id", "as_token", "hs_token", "sender_localpart"] {
        let lines = problems_of(|g| {
            g.lines()
                .filter(|l| !l.starts_with(&format!("{key}:")))
                .collect::<Vec<_>>()
                .join("\n")
        });
        assert_eq!(lines, [format!("appservices/a.yaml: {key}: missing")]);
    }
}

#[test]
fn a_missing_url_is_not_taken_for_null() {
    let lines = problems_of(|g| g.replace("url: http://127.0.0.1:29311\n", ""));
    assert_eq!(
        lines,
        ["appservices/a.yaml: url: missing (the appservice's URL, or null to push nothing to it)"]
    );
}

#[test]
fn wrong_types_are_named_by_key() {
    let cases = [
        (
            "id: bridge1",
            "id: 42",
            "id: must be a string, not a number",
        ),
        (
            "url: http://127.0.0.1:29311",
            "url: [a]",
            "url: must be a string or null, not a list",
        ),
        (
            "url: http://127.0.0.1:29311",
            "url: ftp://x",
            "url: \"ftp://x\" is not an http:// or https:// URL",
        ),
        (
            "io.element.msc4190: true",
            "io.element.msc4190: \"yes\"",
            "io.element.msc4190: must be true or false",
        ),
        (
            "org.matrix.msc3202: true",
            "org.matrix.msc3202: 1",
            "org.matrix.msc3202: must be true or false",
        ),
        (
            "sender_localpart: bridgebot1",
            "sender_localpart: bridge bot",
            "sender_localpart: \"bridge bot\" has characters that need URL encoding",
        ),
        ("id: bridge1", "id: a|b", "id: \"a|b\" must not contain '|'"),
        (
            "  aliases: []",
            "  aliases: {}",
            "namespaces.aliases: must be a list of {exclusive, regex} entries",
        ),
        (
            "    - exclusive: true",
            "    - exclusive: \"true\"",
            "namespaces.users[0].exclusive: must be true or false",
        ),
        (
            "      regex: '@bridge1_.*:example\\.com'",
            "      regex: 7",
            "namespaces.users[0].regex: must be a string",
        ),
        (
            "rate_limited: false",
            "protocols: [1]",
            "protocols: must be a list of strings",
        ),
        (
            "rate_limited: false",
            "io.element.msc4502.scopes: [nope]",
            "io.element.msc4502.scopes: unknown scope \"nope\"",
        ),
        (
            "rate_limited: false",
            "io.element.msc4512.proxy_prefix: rtc/livekit",
            "io.element.msc4512.proxy_url: missing (must be set together with io.element.msc4512.proxy_prefix)",
        ),
    ];
    for (from, to, expected) in cases {
        let lines = problems_of(|g| {
            assert!(g.contains(from), "{from}");
            g.replace(from, to)
        });
        assert_eq!(lines, [format!("appservices/a.yaml: {expected}")], "{to}");
    }
}

#[test]
fn namespaces_must_be_a_mapping() {
    let lines = problems_of(|g| {
        let start = g.find("namespaces:").unwrap();
        format!("{}namespaces: [users]\n", &g[..start])
    });
    assert_eq!(
        lines,
        ["appservices/a.yaml: namespaces: must be a mapping of users, aliases and rooms lists"]
    );
}

#[test]
fn a_file_that_is_not_a_yaml_mapping_is_one_line() {
    let lines = problems(&[
        ("a.yaml", "id: [unclosed\n"),
        ("b.yaml", "- just\n- a list\n"),
        ("c.yaml", ""),
    ]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("appservices/a.yaml: is not valid YAML: "),
        "{lines:?}"
    );
    assert_eq!(
        lines[1..],
        [
            "appservices/b.yaml: must be a YAML mapping (a registration file)",
            "appservices/c.yaml: must be a YAML mapping (a registration file)",
        ]
    );
}

#[test]
fn the_same_token_twice_in_one_file_is_refused_without_showing_it() {
    let lines = problems_of(|g| g.replace("hs_token: hs-secret-1", "hs_token: as-secret-1"));
    assert_eq!(
        lines,
        ["appservices/a.yaml: hs_token: must differ from as_token"]
    );
}

#[test]
fn values_shared_between_files_name_both_files_and_never_a_token() {
    let second = good("2")
        .replace("id: bridge2", "id: bridge1")
        .replace("as_token: as-secret-2", "as_token: as-secret-1")
        .replace("hs_token: hs-secret-2", "hs_token: as-secret-1x")
        .replace(
            "sender_localpart: bridgebot2",
            "sender_localpart: bridgebot1",
        )
        .replace("@bridge2_", "@bridge1_");
    let third = good("3").replace("hs_token: hs-secret-3", "hs_token: as-secret-1x");
    let lines = problems(&[
        ("a.yaml", &good("1")),
        ("b.yaml", &second),
        ("c.yaml", &third),
    ]);
    assert_eq!(
        lines,
        [
            "appservices/b.yaml: id: \"bridge1\" is also used by appservices/a.yaml",
            "appservices/b.yaml: sender_localpart: \"bridgebot1\" is also used by appservices/a.yaml",
            "appservices/b.yaml: as_token: the same token is also the as_token of appservices/a.yaml",
            "appservices/b.yaml: namespaces.users: the exclusive regex \"@bridge1_.*:example\\\\.com\" is also claimed by appservices/a.yaml",
            "appservices/c.yaml: hs_token: the same token is also the hs_token of appservices/b.yaml",
        ]
    );
    assert!(lines.iter().all(|l| !l.contains("secret")), "{lines:?}");
}

#[test]
fn a_non_exclusive_regex_may_be_shared() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "a.yaml",
        &good("1").replace("exclusive: true", "exclusive: false"),
    );
    write(
        tmp.path(),
        "b.yaml",
        &good("2").replace("@bridge2_", "@bridge1_"),
    );
    assert_eq!(load(tmp.path()).unwrap().len(), 2);
}

#[test]
fn every_problem_of_every_file_is_reported_together() {
    let broken = "id: x\nas_token: 5\nurl: 3\nnamespaces: {}\n";
    let lines = problems(&[("a.yaml", broken), ("b.yaml", &good("2")), ("c.yml", "[")]);
    assert_eq!(
        lines,
        [
            "appservices/a.yaml: as_token: must be a string",
            "appservices/a.yaml: hs_token: missing",
            "appservices/a.yaml: sender_localpart: missing",
            "appservices/a.yaml: url: must be a string or null, not a number",
            "appservices/c.yml: is not valid YAML: did not find expected node content at line 2 column 1, while parsing a flow node",
        ]
    );
}

#[test]
fn problems_join_into_one_error_line() {
    let err = Problems(vec![
        Problem {
            file: "appservices/a.yaml".to_owned(),
            key: "id".to_owned(),
            message: "missing".to_owned(),
        },
        Problem {
            file: "appservices/b.yaml".to_owned(),
            key: String::new(),
            message: "must be a YAML mapping (a registration file)".to_owned(),
        },
    ]);
    assert_eq!(
        err.to_string(),
        "appservices/a.yaml: id: missing; appservices/b.yaml: must be a YAML mapping (a registration file)"
    );
}
