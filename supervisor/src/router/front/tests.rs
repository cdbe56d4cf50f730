use http::{Method, StatusCode};
use http_body_util::BodyExt;

use super::*;

fn context(registration: bool, token_required: bool) -> FrontContext {
    FrontContext {
        server_name: "example.com".to_owned(),
        registration,
        token_required,
    }
}

async fn body(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_built_in_page_names_the_server_and_how_to_sign_in() {
    let page = FrontPage::render(&context(false, false)).unwrap();
    let html = body(page.respond(&Method::GET)).await;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains(r#"<html lang="en">"#), "{html}");
    assert!(
        html.contains("<title>example.com · Matrix server</title>"),
        "{html}"
    );
    assert!(html.contains(r#"<link rel="stylesheet" href="/auth/assets/app.css">"#));
    assert!(html.contains(r#"name="viewport""#), "works on a phone");
    assert!(
        html.contains("Element X") && html.contains("Element Web"),
        "{html}"
    );
    assert!(html.contains("<code>example.com</code>"), "{html}");
    assert!(html.contains(r#"href="/auth/account/""#), "{html}");
    assert!(html.contains("<code>appliance doctor</code>"), "{html}");
    assert!(
        !html.contains("/auth/register"),
        "registration off: no link"
    );
    assert!(!html.contains("registration token"), "{html}");
}

#[tokio::test]
async fn the_register_link_shows_when_registration_is_on() {
    let open = body(
        FrontPage::render(&context(true, false))
            .unwrap()
            .respond(&Method::GET),
    )
    .await;
    assert!(
        open.contains(
            r#"<a class="button button-primary" href="/auth/register">Create an account</a>"#
        ),
        "{open}"
    );
    assert!(!open.contains("registration token"), "{open}");
    let token = body(
        FrontPage::render(&context(true, true))
            .unwrap()
            .respond(&Method::GET),
    )
    .await;
    assert!(token.contains("/auth/register"), "{token}");
    assert!(token.contains("needs a registration token"), "{token}");
}

#[tokio::test]
async fn the_server_name_is_escaped() {
    let page = FrontPage::render(&FrontContext {
        server_name: "<script>x</script>".to_owned(),
        registration: false,
        token_required: false,
    })
    .unwrap();
    let html = body(page.respond(&Method::GET)).await;
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
}

#[test]
fn the_built_in_page_has_the_mas_pages_security_headers() {
    let response = FrontPage::render(&context(true, false))
        .unwrap()
        .respond(&Method::GET);
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
}

#[tokio::test]
async fn the_operators_page_is_served_as_it_is_without_our_csp() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("index.html");
    std::fs::write(
        &path,
        "<!DOCTYPE html><p>Welcome to {{ not a template }}</p>",
    )
    .unwrap();
    let page = FrontPage::at_start(&context(true, false), &path).unwrap();
    assert!(page.is_operator());
    let response = page.respond(&Method::GET);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(response.headers().get("content-security-policy").is_none());
    assert_eq!(
        body(response).await,
        "<!DOCTYPE html><p>Welcome to {{ not a template }}</p>"
    );
}

#[tokio::test]
async fn without_an_override_or_with_an_unreadable_one_the_built_in_page_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = FrontPage::at_start(&context(false, false), &tmp.path().join("index.html"));
    assert!(!missing.unwrap().is_operator());
    // A directory where the file should be cannot be read as one.
    let unreadable = tmp.path().join("dir");
    std::fs::create_dir(&unreadable).unwrap();
    let page = FrontPage::at_start(&context(false, false), &unreadable).unwrap();
    assert!(!page.is_operator());
    assert!(
        body(page.respond(&Method::GET))
            .await
            .contains("example.com")
    );
}

#[test]
fn other_methods_get_405_with_allow() {
    let page = FrontPage::render(&context(false, false)).unwrap();
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let response = page.respond(&method);
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "GET, HEAD", "{method}");
    }
    assert_eq!(page.respond(&Method::HEAD).status(), StatusCode::OK);
}

#[test]
fn change_password_redirects_to_the_password_form() {
    for method in [Method::GET, Method::HEAD] {
        let response = change_password(&method);
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()["location"], "/auth/account/password");
    }
    let post = change_password(&Method::POST);
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
}
