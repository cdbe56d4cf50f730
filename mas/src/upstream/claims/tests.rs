use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::clock::MockClock;
use crate::config::UpstreamOAuth2Config;
use crate::config::upstream::ProviderConfig;
use crate::upstream::UpstreamProviders;

/// A provider (never contacted) with `claims_imports` from YAML.
fn provider(claims_imports: &str) -> Arc<Provider> {
    let mut config: ProviderConfig = serde_yaml::from_str(
        "id: 01J00000000000000000PR0V1D\n\
         issuer: https://idp.example.com\n\
         client_id: matrix\n\
         client_secret: s\n",
    )
    .unwrap();
    config.claims_imports = serde_yaml::from_str(claims_imports).unwrap();
    let providers = UpstreamProviders::from_config(
        &UpstreamOAuth2Config {
            providers: vec![config],
        },
        Arc::new(MockClock::default()),
    )
    .unwrap();
    providers.enabled()[0].clone()
}

const CLOUDRON: &str = "
subject: { template: '{{ user.sub }}' }
localpart: { action: require, template: '{{ user.preferred_username }}' }
displayname: { action: force, template: '{{ user.name }}' }
email: { action: force, template: '{{ user.email }}' }
skip_confirmation: true
";

fn identity(id_token: serde_json::Value, userinfo: Option<serde_json::Value>) -> UpstreamIdentity {
    let object = |value: serde_json::Value| match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    };
    UpstreamIdentity {
        id_token: "header.payload.signature".to_owned(),
        id_token_claims: object(id_token),
        userinfo: userinfo.map(object),
    }
}

fn alice() -> UpstreamIdentity {
    identity(
        json!({"sub": "alice-sub", "iss": "https://idp.example.com"}),
        Some(json!({
            "sub": "alice-sub",
            "preferred_username": "Alice",
            "name": "Alice Liddell",
            "email": "alice@example.org",
            "email_verified": true,
        })),
    )
}

#[test]
fn cloudron_style_imports_take_the_merged_claims() {
    let provider = provider(CLOUDRON);
    let claims = import_claims(&provider, &alice()).unwrap();
    assert_eq!(claims.subject, "alice-sub");
    assert_eq!(
        claims.localpart,
        Imported {
            value: Some("alice".to_owned()),
            action: ImportAction::Require
        }
    );
    assert_eq!(claims.displayname.value.as_deref(), Some("Alice Liddell"));
    assert_eq!(claims.displayname.action, ImportAction::Force);
    assert_eq!(claims.email.value.as_deref(), Some("alice@example.org"));
    assert!(claims.email_verified);
    assert_eq!(claims.account_name, None);
    assert!(provider.claims().skip_confirmation);
    assert_eq!(provider.claims().on_conflict, OnConflict::Fail);
}

#[test]
fn defaults_ignore_everything_but_the_subject() {
    let claims = import_claims(&provider("{}"), &alice()).unwrap();
    assert_eq!(claims.subject, "alice-sub");
    for imported in [&claims.localpart, &claims.displayname, &claims.email] {
        assert_eq!(imported.action, ImportAction::Ignore);
        assert_eq!(imported.value, None);
    }
}

#[test]
fn a_missing_subject_is_refused() {
    let provider = provider("subject: { template: '{{ user.oid }}' }");
    let error = import_claims(&provider, &alice()).unwrap_err();
    assert!(matches!(
        error,
        ClaimsError::MissingRequired {
            attribute: "subject"
        }
    ));
    assert_eq!(error.reason(), "missing_claim");
}

#[test]
fn a_required_attribute_must_be_present_a_forced_one_may_be_missing() {
    let no_username = identity(json!({"sub": "x", "name": "X"}), None);
    let error = import_claims(&provider(CLOUDRON), &no_username).unwrap_err();
    assert!(matches!(
        error,
        ClaimsError::MissingRequired {
            attribute: "localpart"
        }
    ));
    assert_eq!(error.to_string(), "the provider did not send the localpart");

    let forced = provider("localpart: { action: force }\ndisplayname: { action: suggest }");
    let claims = import_claims(&forced, &identity(json!({"sub": "x"}), None)).unwrap();
    assert_eq!(claims.localpart.value, None);
    assert_eq!(claims.displayname.value, None);
    assert_eq!(claims.displayname.action, ImportAction::Suggest);
}

#[test]
fn null_and_empty_claims_count_as_missing() {
    let provider = provider(CLOUDRON);
    let null = identity(json!({"sub": "x", "preferred_username": null}), None);
    assert!(matches!(
        import_claims(&provider, &null),
        Err(ClaimsError::MissingRequired {
            attribute: "localpart"
        })
    ));
    let empty = identity(json!({"sub": "x", "preferred_username": "  "}), None);
    assert!(matches!(
        import_claims(&provider, &empty),
        Err(ClaimsError::MissingRequired {
            attribute: "localpart"
        })
    ));
}

#[test]
fn localparts_are_lower_cased_and_checked() {
    let provider = provider(CLOUDRON);
    for (username, expected) in [("Bob.Smith_1", "bob.smith_1"), ("a=b/c+d-e", "a=b/c+d-e")] {
        let claims = import_claims(
            &provider,
            &identity(json!({"sub": "x", "preferred_username": username}), None),
        )
        .unwrap();
        assert_eq!(claims.localpart.value.as_deref(), Some(expected));
    }
    for bad in ["bob smith", "bob@example", "élodie", "12345"] {
        let error = import_claims(
            &provider,
            &identity(json!({"sub": "x", "preferred_username": bad}), None),
        )
        .unwrap_err();
        assert!(
            matches!(&error, ClaimsError::InvalidLocalpart { value } if *value == bad.to_lowercase()),
            "{bad}: {error:?}"
        );
        assert_eq!(error.reason(), "invalid_localpart");
    }
}

#[test]
fn an_unverified_email_is_not_imported() {
    let provider = provider(CLOUDRON);
    let unverified = identity(
        json!({"sub": "x", "preferred_username": "x", "email": "x@example.org", "email_verified": false}),
        None,
    );
    let claims = import_claims(&provider, &unverified).unwrap();
    assert_eq!(claims.email.value, None);
    assert!(!claims.email_verified);

    let required = self::provider("localpart: { action: require }\nemail: { action: require }");
    assert!(matches!(
        import_claims(&required, &unverified),
        Err(ClaimsError::MissingRequired { attribute: "email" })
    ));
}

#[test]
fn userinfo_claims_override_id_token_claims() {
    let provider = provider("displayname: { action: force }");
    let both = identity(
        json!({"sub": "x", "name": "From the ID token"}),
        Some(json!({"sub": "x", "name": "From userinfo"})),
    );
    let claims = import_claims(&provider, &both).unwrap();
    assert_eq!(claims.displayname.value.as_deref(), Some("From userinfo"));
}

#[test]
fn templates_have_filters_methods_and_every_claim_set() {
    let provider = provider(
        "
localpart: { action: force, template: \"{{ user.email.split('@')[0].lower() }}\" }
displayname: { action: force, template: '{{ (user.profile | from_json).nick }} {{ user.sub | b64encode }}' }
email: { action: force, template: '{{ userinfo_claims.email }}' }
account_name: { template: '{{ id_token_claims.sub }} {{ user.count | string }} {{ user.encoded | b64decode }}' }
",
    );
    let identity = identity(
        json!({"sub": "x", "count": 3, "encoded": "aGk=", "profile": "{\"nick\": \"Ali\"}"}),
        Some(json!({"sub": "x", "email": "Alice.L@Example.org", "email_verified": "true"})),
    );
    let claims = import_claims(&provider, &identity).unwrap();
    assert_eq!(claims.localpart.value.as_deref(), Some("alice.l"));
    assert_eq!(claims.displayname.value.as_deref(), Some("Ali eA=="));
    assert_eq!(claims.email.value.as_deref(), Some("Alice.L@Example.org"));
    assert_eq!(claims.account_name.as_deref(), Some("x 3 hi"));
}

#[test]
fn a_failing_template_is_a_template_error() {
    let provider = provider("displayname: { action: force, template: '{{ user.sub + 1 }}' }");
    let error = import_claims(&provider, &alice()).unwrap_err();
    assert!(
        matches!(
            &error,
            ClaimsError::Template {
                attribute: "displayname",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.reason(), "claims_template_failed");
}

#[test]
fn on_conflict_and_actions_are_exposed() {
    let provider = provider(
        "localpart: { action: suggest, on_conflict: replace }\nemail: { action: require }",
    );
    let imports = provider.claims();
    assert_eq!(imports.on_conflict, OnConflict::Replace);
    assert_eq!(imports.localpart, ImportAction::Suggest);
    assert_eq!(imports.displayname, ImportAction::Ignore);
    assert_eq!(imports.email, ImportAction::Require);
    assert!(!imports.skip_confirmation);
}
