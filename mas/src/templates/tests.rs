use camino::Utf8PathBuf;

use super::*;

/// The repository's templates.
fn templates_dir() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../templates/mas")
}

fn templates() -> Templates {
    Templates::load(&templates_dir()).unwrap()
}

/// minijinja escapes `/` as `&#x2f;` (valid in HTML); the assertions read better with `/`.
fn readable(html: &str) -> String {
    html.replace("&#x2f;", "/")
}

fn login(templates: &Templates, context: &LoginContext) -> String {
    readable(&templates.render_login(context).unwrap())
}

fn consent(templates: &Templates, context: &ConsentContext) -> String {
    readable(&templates.render_consent(context).unwrap())
}

fn error(templates: &Templates, context: &ErrorContext) -> String {
    readable(&templates.render_error(context).unwrap())
}

fn index(templates: &Templates, context: &IndexContext) -> String {
    readable(&templates.render_index(context).unwrap())
}

fn compat_sso(templates: &Templates, context: &CompatSsoContext) -> String {
    readable(&templates.render_compat_sso(context).unwrap())
}

fn upstream_link(templates: &Templates, context: &UpstreamLinkContext) -> String {
    readable(&templates.render_upstream_link(context).unwrap())
}

fn account(templates: &Templates, context: &AccountContext) -> String {
    readable(&templates.render_account(context).unwrap())
}

fn account_session_end(templates: &Templates, context: &SessionEndContext) -> String {
    readable(&templates.render_account_session_end(context).unwrap())
}

fn account_cross_signing_reset(
    templates: &Templates,
    context: &CrossSigningResetContext,
) -> String {
    readable(
        &templates
            .render_account_cross_signing_reset(context)
            .unwrap(),
    )
}

fn device_link(templates: &Templates, context: &DeviceLinkContext) -> String {
    readable(&templates.render_device_link(context).unwrap())
}

fn device_consent(templates: &Templates, context: &DeviceConsentContext) -> String {
    readable(&templates.render_device_consent(context).unwrap())
}

fn device_done(templates: &Templates, context: &DeviceDoneContext) -> String {
    readable(&templates.render_device_done(context).unwrap())
}

fn register(templates: &Templates, context: &RegisterContext) -> String {
    readable(&templates.render_register(context).unwrap())
}

fn register_display_name(templates: &Templates, context: &RegisterDisplayNameContext) -> String {
    readable(&templates.render_register_display_name(context).unwrap())
}

/// Every sample, rendered, with its name.
fn rendered_samples(templates: &Templates) -> Vec<(&'static str, String)> {
    vec![
        ("login", login(templates, &LoginContext::sample())),
        ("consent", consent(templates, &ConsentContext::sample())),
        ("error", error(templates, &ErrorContext::sample())),
        ("index", index(templates, &IndexContext::sample())),
        (
            "compat_sso",
            compat_sso(templates, &CompatSsoContext::sample()),
        ),
        (
            "upstream_link",
            upstream_link(templates, &UpstreamLinkContext::sample()),
        ),
        ("account", account(templates, &AccountContext::sample())),
        (
            "account_deactivate",
            readable(
                &templates
                    .render_account_deactivate(&DeactivateContext::sample())
                    .unwrap(),
            ),
        ),
        (
            "account_closed",
            readable(
                &templates
                    .render_account_deactivate(&DeactivateContext {
                        closed: true,
                        ..DeactivateContext::sample()
                    })
                    .unwrap(),
            ),
        ),
        (
            "account_session_end",
            account_session_end(templates, &SessionEndContext::sample()),
        ),
        (
            "account_cross_signing_reset",
            account_cross_signing_reset(templates, &CrossSigningResetContext::sample()),
        ),
        (
            "device_link",
            device_link(templates, &DeviceLinkContext::sample()),
        ),
        (
            "device_consent",
            device_consent(templates, &DeviceConsentContext::sample()),
        ),
        (
            "device_done",
            device_done(templates, &DeviceDoneContext::sample()),
        ),
        ("register", register(templates, &RegisterContext::sample())),
        (
            "register_display_name",
            register_display_name(templates, &RegisterDisplayNameContext::sample()),
        ),
        (
            "device_denied",
            device_done(
                templates,
                &DeviceDoneContext {
                    approved: false,
                    ..DeviceDoneContext::sample()
                },
            ),
        ),
        (
            "account_password",
            readable(
                &templates
                    .render_account_password(&PasswordChangeContext::sample())
                    .unwrap(),
            ),
        ),
        (
            "recover",
            readable(&templates.render_recover(&RecoverContext::sample()).unwrap()),
        ),
        (
            "recover_sent",
            readable(
                &templates
                    .render_recover(&RecoverContext::sent_sample())
                    .unwrap(),
            ),
        ),
        (
            "recover_complete",
            readable(
                &templates
                    .render_recover_complete(&RecoverCompleteContext::sample())
                    .unwrap(),
            ),
        ),
        (
            "notice",
            readable(&templates.render_notice(&NoticeContext::sample()).unwrap()),
        ),
    ]
}

/// Whether an attribute like ` onclick=` appears.
fn has_event_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(at, _)| {
        let rest = &html[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    })
}

#[test]
fn every_sample_renders_a_complete_accessible_page_without_javascript() {
    for (name, html) in rendered_samples(&templates()) {
        assert!(html.starts_with("<!DOCTYPE html>"), "{name}");
        assert!(html.contains(r#"<html lang="en">"#), "{name}");
        assert!(html.contains(r#"name="viewport""#), "{name}");
        assert!(html.contains(r#"href="/auth/assets/app.css""#), "{name}");
        assert_eq!(html.matches("<h1").count(), 1, "{name}: one heading");
        assert!(!html.contains("<script"), "{name}: no JavaScript");
        assert!(
            !has_event_handler(&html),
            "{name}: no event handler attributes"
        );
    }
}

#[test]
fn every_form_carries_the_csrf_token() {
    let mut forms = 0;
    for (name, html) in rendered_samples(&templates()) {
        let count = html.matches("<form").count();
        let csrf = r#"<input type="hidden" name="csrf" value="sample-csrf-token">"#;
        assert_eq!(html.matches(csrf).count(), count, "{name}: {html}");
        assert_eq!(html.matches(r#"method="post""#).count(), count, "{name}");
        forms += count;
    }
    assert_eq!(
        forms, 26,
        "login, consent approve and deny, logout, compat SSO continue, upstream link, the \
         account page's display name, one make-primary, three email removals and email add, \
         the deactivation form, the \
         account page's two session sign-outs and logout, the device sign-out, the \
         cross-signing reset, the device code entry, device allow and deny, the password \
         change, the recovery request and the recovery's new password, registration and \
         its display-name step"
    );
}

#[test]
fn the_password_pages_label_their_fields_and_show_the_strength() {
    let templates = templates();
    let change = readable(
        &templates
            .render_account_password(&PasswordChangeContext::sample())
            .unwrap(),
    );
    assert!(change.contains(r#"<label for="current_password">Current password</label>"#));
    assert!(change.contains(r#"autocomplete="current-password""#));
    assert!(change.contains(r#"autocomplete="new-password""#));
    assert!(change.contains(r#"aria-describedby="new_password-hint new_password-error""#));
    assert!(change.contains("Strength of this password: <strong>weak</strong>"));
    assert!(change.contains("Add more words that are less common."));
    assert!(change.contains(r#"name="sign_out_others" type="checkbox" value="on" checked"#));
    let complete = readable(
        &templates
            .render_recover_complete(&RecoverCompleteContext::sample())
            .unwrap(),
    );
    assert!(complete.contains(r#"<input type="hidden" name="ticket" value="sample-ticket">"#));
    let sent = readable(
        &templates
            .render_recover(&RecoverContext::sent_sample())
            .unwrap(),
    );
    assert!(sent.contains("If an account has the address <strong>alice@example.com</strong>"));
    assert!(!sent.contains("<form"));
    let login = login(&templates, &LoginContext::sample());
    assert!(login.contains(r#"<a href="/auth/recover">Forgot password?</a>"#));
}

#[test]
fn the_login_page_has_labelled_autocompleting_fields_and_the_post_auth_action() {
    let html = login(&templates(), &LoginContext::sample());
    assert!(
        html.contains(
            r#"<form method="post" action="/auth/login" aria-describedby="error-summary">"#
        )
    );
    assert!(html.contains(r#"<label for="username">Username</label>"#));
    assert!(html.contains(
        r#"id="username" name="username" type="text" value="alice" autocomplete="username""#
    ));
    assert!(html.contains(r#"type="password" autocomplete="current-password""#));
    assert!(
        html.contains(r#"<input type="hidden" name="kind" value="continue_authorization_grant">"#)
    );
    assert!(html.contains(r#"<input type="hidden" name="id" value="01J0000000000000000000GRNT">"#));
    assert!(html.contains(r#"role="alert""#));
    assert!(html.contains("Invalid username or password."));
    assert!(html.contains(">Continue with Example SSO</a>"));
    assert!(html.contains(r#"href="/auth/upstream/authorize/01J00000000000000000PR0V1D""#));
}

#[test]
fn field_errors_are_tied_to_their_field_and_linked_from_the_summary() {
    let context = LoginContext {
        errors: vec![
            FormError::field("username", "Enter your username."),
            FormError::form("Too many attempts."),
        ],
        post_auth_action: None,
        providers: Vec::new(),
        ..LoginContext::sample()
    };
    let html = login(&templates(), &context);
    assert!(html.contains(r##"<li><a href="#username">Enter your username.</a></li>"##));
    assert!(html.contains("<li>Too many attempts.</li>"));
    assert!(html.contains(r#"<p class="field-error" id="username-error">"#));
    assert!(html.contains(r#"aria-invalid="true" aria-describedby="username-error">"#));
    assert_eq!(
        html.matches("aria-invalid").count(),
        1,
        "the password is fine"
    );
    assert!(!html.contains(r#"name="kind""#));
    assert!(!html.contains("Continue with"));
}

#[test]
fn the_registration_form_shows_the_strength_meter_and_ties_the_terms_error() {
    let mut context = RegisterContext::sample();
    context.errors.push(FormError::field(
        "accept_terms",
        "Accept the terms of service to continue.",
    ));
    let html = register(&templates(), &context);
    assert!(html.contains(
        "Strength of this password: <strong>weak</strong> (score 1 of 4; this server needs at \
         least <strong>strong</strong>)."
    ));
    assert!(html.contains("<li>Add more words that are less common.</li>"));
    assert!(html.contains(r#"id="password-strength""#));
    assert!(html.contains(r#"aria-invalid="true" aria-describedby="accept_terms-error">"#));
    assert!(html.contains(r#"<a href="https://example.com/terms""#));
    assert!(html.contains(r#"name="token""#) && html.contains(r#"name="email""#));
    let plain = RegisterContext {
        email_required: false,
        token_required: false,
        tos_uri: None,
        strength: None,
        errors: Vec::new(),
        ..RegisterContext::sample()
    };
    let html = register(&templates(), &plain);
    for absent in [
        r#"name="token""#,
        r#"name="email""#,
        "accept_terms",
        "strength",
    ] {
        assert!(!html.contains(absent), "{absent}");
    }
}

#[test]
fn the_login_page_links_registration_only_when_open() {
    let html = login(&templates(), &LoginContext::sample());
    assert!(html.contains(r#"<a href="/auth/register">Create an account</a>"#));
    let closed = LoginContext {
        register_url: None,
        ..LoginContext::sample()
    };
    assert!(!login(&templates(), &closed).contains("Create an account"));
}

#[test]
fn login_without_any_method_says_so() {
    let context = LoginContext {
        password_enabled: false,
        providers: Vec::new(),
        errors: Vec::new(),
        ..LoginContext::sample()
    };
    let html = login(&templates(), &context);
    assert!(!html.contains("<form"));
    assert!(html.contains("No way to sign in is available."));
}

#[test]
fn a_malicious_client_is_escaped_and_its_script_urls_dropped() {
    let mut context = ConsentContext::sample();
    context.client.name = r#"<script>alert("x")</script>"#.to_owned();
    context.client.logo_uri = Some("javascript:alert(1)".to_owned());
    context.client.client_uri = Some("data:text/html,<b>x</b>".to_owned());
    context.client.tos_uri = Some("http://example.com/tos".to_owned());
    context.user.display_name = Some("<b>Mallory</b>".to_owned());
    let html = consent(&templates(), &context);
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"));
    assert!(!html.contains("javascript:"), "{html}");
    assert!(!html.contains("data:"), "{html}");
    assert!(!html.contains("<img"), "no logo without a web URL");
    assert!(html.contains("&lt;b&gt;Mallory&lt;/b&gt;"));
    assert!(html.contains("http://example.com/tos"));
}

#[test]
fn the_consent_page_names_the_client_scopes_device_and_user() {
    let html = consent(&templates(), &ConsentContext::sample());
    assert!(
        html.contains(r#"<span class="client-name">Element X</span> wants to access your account"#)
    );
    assert!(html.contains(r#"src="https://element.io/mobile-icon.png" alt="""#));
    assert!(html.contains("See your Matrix user ID"));
    assert!(html.contains("read and send messages"));
    assert!(html.contains("Add a new session (a device) to your account"));
    assert!(html.contains("Device ID of the new session: <code>ABCDEFGHIJ</code>"));
    assert!(html.contains("<strong>Alice</strong> (@alice:example.com)"));
    let action = r#"<form method="post" action="/auth/consent/01J0000000000000000000GRNT">"#;
    assert_eq!(html.matches(action).count(), 2);
    assert!(html.contains(r#"name="action" value="approve""#));
    assert!(html.contains(r#"name="action" value="deny""#));
}

#[test]
fn the_device_link_page_has_one_labelled_code_field_with_its_error_beside_it() {
    let templates = templates();
    let html = device_link(&templates, &DeviceLinkContext::sample());
    assert!(html.contains("<h1>Link a device</h1>"));
    assert!(
        html.contains(
            r#"<form method="post" action="/auth/link" aria-describedby="error-summary">"#
        )
    );
    assert!(html.contains(r#"<label for="code">Code</label>"#));
    assert!(html.contains(
        r#"id="code" name="code" type="text" value="ABCD-EFGX" autocomplete="off" autocapitalize="characters" spellcheck="false" inputmode="text" maxlength="16" required aria-invalid="true" aria-describedby="code-hint code-error">"#
    ), "{html}");
    assert!(html.contains(r#"<p class="field-error" id="code-error">"#));
    assert!(html.contains(
        r##"<li><a href="#code">No sign-in request has this code. Check the code shown on your device.</a></li>"##
    ));
    assert!(html.contains(">Continue</button>"));
    let blank = DeviceLinkContext {
        code: String::new(),
        errors: Vec::new(),
        ..DeviceLinkContext::sample()
    };
    let html = device_link(&templates, &blank);
    assert!(!html.contains("aria-invalid") && !html.contains("error-summary"));
    assert!(html.contains(r#"value="" autocomplete="off""#));
}

#[test]
fn the_device_consent_page_names_the_client_device_code_origin_and_user() {
    let html = device_consent(&templates(), &DeviceConsentContext::sample());
    assert!(html.contains("<h1>Sign in on a new device?</h1>"));
    assert!(html.contains(r#"<span class="client-name">Element X</span> on a new device"#));
    assert!(html.contains(r#"src="https://element.io/mobile-icon.png" alt="""#));
    assert!(html.contains(r#"<p class="user-code"><code>ABCD-EFGH</code></p>"#));
    assert!(html.contains("Check that your new device shows this code"));
    assert!(html.contains("IP address: <code>192.0.2.7</code>"));
    assert!(html.contains("Device: Element X/25.01 (Android 15)"));
    assert!(html.contains("Requested 2 minutes ago"));
    assert!(html.contains("Device ID of the new session: <code>ABCDEFGHIJ</code>"));
    assert!(html.contains("read and send messages"));
    assert!(html.contains("<strong>Alice</strong> (@alice:example.com)"));
    assert!(html.contains(
        "Only continue if you started this yourself: whoever holds the device gets access to \
         your account."
    ));
    let action = r#"<form method="post" action="/auth/device/01J0000000000000000000GRNT">"#;
    assert_eq!(html.matches(action).count(), 2);
    assert!(html.contains(r#"name="action" value="allow""#) && html.contains(">Allow</button>"));
    assert!(html.contains(r#"name="action" value="deny""#) && html.contains(">Deny</button>"));
}

#[test]
fn the_device_consent_page_escapes_what_the_device_sent() {
    let context = DeviceConsentContext {
        user_agent: Some(r#"<script>alert("ua")</script>"#.to_owned()),
        ip_address: None,
        ..DeviceConsentContext::sample()
    };
    let html = device_consent(&templates(), &context);
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("IP address: unknown"));
}

#[test]
fn the_device_done_page_says_whether_the_device_was_signed_in() {
    let templates = templates();
    let html = device_done(&templates, &DeviceDoneContext::sample());
    assert!(html.contains("<h1>Device signed in</h1>"));
    assert!(html.contains("You can return to your device; it will finish signing in by itself."));
    let denied = DeviceDoneContext {
        approved: false,
        ..DeviceDoneContext::sample()
    };
    let html = device_done(&templates, &denied);
    assert!(html.contains("<title>Sign-in denied · Matrix account</title>"));
    assert!(html.contains("<h1>Sign-in denied</h1>"));
    assert!(html.contains("The device was not signed in."));
}

#[test]
fn the_index_shows_the_user_or_a_sign_in_link() {
    let templates = templates();
    let html = index(&templates, &IndexContext::sample());
    assert!(html.contains(r#"<form method="post" action="/auth/logout">"#));
    assert!(html.contains("<strong>Alice</strong> (@alice:example.com)"));
    let anonymous = IndexContext {
        user: None,
        ..IndexContext::sample()
    };
    let html = index(&templates, &anonymous);
    assert!(!html.contains("<form"));
    assert!(html.contains(r#"href="/auth/login">Sign in</a>"#));
}

#[test]
fn the_account_pages_show_the_user_sessions_and_what_comes_next() {
    let templates = templates();
    let html = account(&templates, &AccountContext::sample());
    assert!(html.contains("(@alice:example.com)"));
    assert!(html.contains("alice@example.com"));
    assert!(html.contains("<code>ABCDEFGHIJ</code>") && html.contains("<code>KLMNOPQRST</code>"));
    assert!(html.contains("(legacy login)"));
    assert!(html.contains(r#"action="/auth/account/sessions/01J00000000000000000SESS00/end""#));
    assert_eq!(html.matches(r#"aria-current="true""#).count(), 1);
    assert!(html.contains(r#"<form method="post" action="/auth/logout">"#));
    assert!(html.contains("?action=org.matrix.cross_signing_reset"));
    let html = account_session_end(&templates, &SessionEndContext::sample());
    assert!(html.contains("Sign out device <code>ABCDEFGHIJ</code>?"));
    let before = CrossSigningResetContext::sample();
    let html = account_cross_signing_reset(&templates, &before);
    assert!(html.contains(r#"action="/auth/account/cross-signing-reset""#));
    let after = CrossSigningResetContext {
        allowed: true,
        ..before
    };
    let html = account_cross_signing_reset(&templates, &after);
    assert!(!html.contains("<form"));
    assert!(html.contains("within 10 minutes"));
}

#[test]
fn the_error_page_shows_the_code_and_back_link_only_when_given() {
    let templates = templates();
    let html = error(&templates, &ErrorContext::sample());
    assert!(html.contains("<title>Unknown application · Matrix account</title>"));
    assert!(html.contains("<code>invalid_client</code>"));
    assert!(html.contains(r#"<a href="/auth/">Go back</a>"#));
    let bare = ErrorContext {
        details: None,
        back_url: None,
        prefix: String::new(),
        ..ErrorContext::sample()
    };
    let html = error(&templates, &bare);
    assert!(!html.contains("Error code") && !html.contains("Go back</a>"));
    assert!(
        html.contains(r#"href="/assets/app.css""#),
        "the prefix is not hard-coded"
    );
}

#[test]
fn scopes_are_described_once_each_with_sensitive_ones_marked() {
    let scopes = describe_scopes(
        "openid urn:matrix:client:api:* urn:matrix:org.matrix.msc2967.client:api:* \
         urn:matrix:org.matrix.msc2967.client:device:DEVICE1234  urn:synapse:admin:* email \
         urn:mas:admin x-custom",
    );
    let texts: Vec<(&str, Option<&str>, bool)> = scopes
        .iter()
        .map(|s| (s.text.as_str(), s.detail.as_deref(), s.sensitive))
        .collect();
    assert_eq!(texts.len(), 7, "{texts:#?}");
    assert_eq!(texts[0], ("See your Matrix user ID", None, false));
    assert!(texts[1].0.starts_with("Use your account"));
    assert_eq!(texts[2].0, "Add a new session (a device) to your account");
    assert!(texts[3].2 && texts[3].0.starts_with("Administer the homeserver"));
    assert_eq!(texts[4].0, "See your email address");
    assert!(texts[5].2);
    assert_eq!(texts[6], ("Other access", Some("x-custom"), false));
}

/// A copy of the templates in a temporary directory.
fn copy_templates() -> (tempfile::TempDir, Utf8PathBuf) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().join("mas")).unwrap();
    copy(templates_dir().as_std_path(), path.as_std_path());
    (dir, path)
}

#[test]
fn reload_swaps_in_edits_and_keeps_the_old_set_when_the_new_one_is_broken() {
    let (_dir, path) = copy_templates();
    let templates = Templates::load(&path).unwrap();
    let error_page = path.join("pages/error.html");
    let original = std::fs::read_to_string(&error_page).unwrap();

    std::fs::write(&error_page, original.replace("Go back", "Return")).unwrap();
    let before = error(&templates, &ErrorContext::sample());
    assert!(before.contains("Go back"), "no change before the reload");
    templates.reload().unwrap();
    let after = error(&templates, &ErrorContext::sample());
    assert!(after.contains("Return"));

    // An undefined variable is an error (strict mode), found at load time.
    std::fs::write(
        &error_page,
        original.replace("{{ title }}</h1>", "{{ nope }}</h1>"),
    )
    .unwrap();
    let failure = templates.reload().unwrap_err();
    assert!(
        matches!(
            failure,
            TemplateError::Render {
                name: "pages/error.html",
                ..
            }
        ),
        "{failure}"
    );
    let kept = error(&templates, &ErrorContext::sample());
    assert!(kept.contains("Return"), "the previous set stays");
    assert!(Templates::load(&path).is_err());
}

#[test]
fn a_missing_directory_is_reported_with_its_path() {
    let error = Templates::load(camino::Utf8Path::new("/nonexistent/templates")).unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/templates"),
        "{error}"
    );
}

/// With `MAS_WRITE_SAMPLES=<dir>`, writes every rendered sample there (to look at them in a
/// browser); otherwise does nothing.
#[test]
fn write_samples_when_asked() {
    let Some(dir) = std::env::var_os("MAS_WRITE_SAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, html) in rendered_samples(&templates()) {
        std::fs::write(dir.join(format!("{name}.html")), html).unwrap();
    }
}

#[test]
fn form_post_page_posts_the_response_to_the_client_with_a_visible_button() {
    let html = readable(
        &templates()
            .render_form_post(&FormPostContext::sample())
            .unwrap(),
    );
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(r#"<form method="post" action="https://app.example.com/callback">"#));
    assert!(html.contains(r#"<input type="hidden" name="state" value="xyz">"#));
    assert!(html.contains(r#"<button type="submit""#), "{html}");
    assert!(!html.contains("<script"));
    assert!(!html.contains("<noscript"));
    assert!(
        !html.contains(r#"name="csrf""#),
        "the form goes to the client"
    );
    assert!(!has_event_handler(&html));
}

#[test]
fn form_post_page_reports_a_refused_request_with_a_link_back() {
    let html = readable(
        &templates()
            .render_form_post(&FormPostContext::error_sample())
            .unwrap(),
    );
    assert_eq!(html.matches("<h1").count(), 1);
    assert!(
        html.contains("sent a request that cannot be handled"),
        "{html}"
    );
    assert!(html.contains("<code>invalid_scope</code>"), "{html}");
    assert!(
        html.contains(
            r#"href="https://app.example.com/callback?error=invalid_scope&amp;state=xyz""#
        ),
        "{html}"
    );
    assert!(!html.contains("<form"), "a link, not a form: {html}");
    assert!(!html.contains("<script"));
}

#[test]
fn the_upstream_link_page_offers_only_the_choices_left_to_the_person() {
    let sample = UpstreamLinkContext::sample();
    let html = upstream_link(&templates(), &sample);
    assert!(html.contains(r#"name="username""#), "{html}");
    assert!(html.contains("This username is taken."), "{html}");
    assert!(html.contains(r#"name="import_email""#), "suggested: {html}");
    assert!(
        !html.contains(r#"name="import_display_name""#),
        "forced: {html}"
    );
    assert!(html.contains("Alice Liddell"), "{html}");

    let fixed = UpstreamLinkContext {
        username_editable: false,
        mxid: Some("@alice:example.com".to_owned()),
        display_name_optional: true,
        email: None,
        errors: Vec::new(),
        ..sample
    };
    let html = upstream_link(&templates(), &fixed);
    assert!(!html.contains(r#"name="username""#), "{html}");
    assert!(html.contains("@alice:example.com"), "{html}");
    assert!(html.contains(r#"name="import_display_name""#), "{html}");
    assert!(!html.contains("alice@example.com"), "{html}");
}

#[test]
fn the_upstream_resubmit_page_posts_the_answer_back_to_the_callback() {
    let html = readable(
        &templates()
            .render_upstream_resubmit(&UpstreamResubmitContext::sample())
            .unwrap(),
    );
    assert!(
        html.contains(
            r#"<form method="post" action="/auth/upstream/callback/01J00000000000000000PR0V1D">"#
        ),
        "{html}"
    );
    for field in [
        r#"name="code" value="sample-code""#,
        r#"name="state" value="sample-state""#,
        r#"name="mas_resubmitted" value="1""#,
    ] {
        assert!(html.contains(field), "{field}: {html}");
    }
    assert!(html.contains("Example SSO"), "{html}");
    assert!(!html.contains("<script"), "{html}");
}
