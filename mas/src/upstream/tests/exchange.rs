//! The code exchange (client authentication, token endpoint errors) and userinfo.

use super::*;

#[tokio::test]
async fn a_login_returns_the_id_token_and_userinfo_claims() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs
            .userinfo_patch
            .insert("name".to_owned(), json!("Alice from userinfo"));
    });
    let provider = provider(&fake, |_| {});
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.sub(), "alice");
    assert_eq!(identity.id_token_claims["name"], "Alice Liddell");
    let userinfo = identity.userinfo.as_ref().unwrap();
    assert_eq!(userinfo["name"], "Alice from userinfo");
    assert_eq!(identity.merged()["name"], "Alice from userinfo");
    assert_eq!(identity.merged()["iss"], json!(fake.issuer));
    assert_eq!(fake.log().userinfo, 1);
    assert!(!format!("{identity:?}").contains(&identity.id_token));
}

#[tokio::test]
async fn each_login_reports_the_person_who_logged_in() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    assert_eq!(login(&provider, &fake).await.unwrap().sub(), "alice");
    fake.set_user(json!({"sub": "bob", "preferred_username": "bob"}));
    let identity = login(&provider, &fake).await.unwrap();
    assert_eq!(identity.sub(), "bob");
    assert_eq!(identity.merged()["preferred_username"], "bob");
}

#[tokio::test]
async fn client_secret_basic_sends_credentials_in_the_header() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    login(&provider, &fake).await.unwrap();
    let request = &fake.log().token[0];
    // The secret has a space and a colon: form-urlencoded before Basic, decoded back.
    assert_eq!(
        request.basic,
        Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned()))
    );
    assert!(!request.form.contains_key("client_secret"));
    assert_eq!(request.form["grant_type"], "authorization_code");
    assert_eq!(request.form["redirect_uri"], REDIRECT_URI);
}

#[tokio::test]
async fn client_secret_post_sends_credentials_in_the_form() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.token_endpoint_auth_method = TokenAuthMethod::ClientSecretPost;
    });
    login(&provider, &fake).await.unwrap();
    let request = &fake.log().token[0];
    assert_eq!(request.basic, None);
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert_eq!(request.form["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn auth_method_none_sends_only_the_client_id() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| {
        config.token_endpoint_auth_method = TokenAuthMethod::None;
        config.client_secret = None;
    });
    // The fake wants a secret: its refusal comes back as a token error.
    let error = login(&provider, &fake).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::TokenEndpoint { error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    let request = &fake.log().token[0];
    assert_eq!(request.basic, None);
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert!(!request.form.contains_key("client_secret"));
}

#[tokio::test]
async fn token_endpoint_errors_carry_the_oauth_error() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| knobs.token_error = Some("invalid_grant".to_owned()));
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    assert_eq!(error.reason(), "token_error");
    let UpstreamError::TokenEndpoint { error, description } = error else {
        panic!("{error:?}")
    };
    assert_eq!(error, "invalid_grant");
    assert_eq!(description.as_deref(), Some("refused by the fake provider"));
}

#[tokio::test]
async fn token_endpoint_error_text_is_one_short_line() {
    let fake = FakeProvider::start().await;
    let code = format!("invalid_grant\nFORGED LOG LINE{}", "x".repeat(100));
    fake.set(|knobs| knobs.token_error = Some(code));
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    let text = error.to_string();
    assert!(!text.contains('\n'), "{text}");
    let UpstreamError::TokenEndpoint { error, .. } = error else {
        panic!("{error:?}")
    };
    assert!(
        error.starts_with("invalid_grantFORGED") && error.len() == 64,
        "{error}"
    );
}

#[tokio::test]
async fn a_code_is_exchanged_once() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |_| {});
    let code = approved_code(&provider, &fake).await;
    let callback = callback_with(&code);
    provider.complete(callback).await.unwrap();
    let error = provider.complete(callback).await.unwrap_err();
    assert!(
        matches!(&error, UpstreamError::TokenEndpoint { error, .. } if error == "invalid_grant"),
        "{error:?}"
    );
}

// --- userinfo --------------------------------------------------------------------------

#[tokio::test]
async fn a_userinfo_subject_mismatch_is_refused() {
    let fake = FakeProvider::start().await;
    fake.set(|knobs| {
        knobs.userinfo_patch.insert("sub".to_owned(), json!("bob"));
    });
    let error = login(&provider(&fake, |_| {}), &fake).await.unwrap_err();
    assert_eq!(error.reason(), "userinfo_failed");
    assert!(
        matches!(
            error,
            UpstreamError::Userinfo(UserinfoError::SubjectMismatch)
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn userinfo_is_not_fetched_unless_configured() {
    let fake = FakeProvider::start().await;
    let provider = provider(&fake, |config| config.fetch_userinfo = false);
    let identity = login(&provider, &fake).await.unwrap();
    assert!(identity.userinfo.is_none());
    assert_eq!(fake.log().userinfo, 0);
    assert_eq!(identity.merged(), identity.id_token_claims);
}
