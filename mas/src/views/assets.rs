//! `GET /assets/*` (the `assets` resource, docs/protocol.md#pages): static files from the
//! resource's `path`, with a content type from the extension, an `ETag` (so revalidation is a 304),
//! and a short public cache lifetime (the file names carry no version, so an upgrade must show
//! within the hour).
//!
//! No directory traversal: every path segment must be a plain name (letters, digits, `-`, `_`
//! and non-leading `.`), and the file found must still be inside the directory after symlinks
//! are resolved. Anything else is a plain 404.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};

use crate::app::AppState;
use crate::routes;

/// How long browsers may use a file without asking again.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// The `assets` resource: files under `root`.
pub(crate) fn router(root: &Utf8Path) -> Router<AppState> {
    let root = root.to_owned();
    Router::new().route(
        routes::ASSETS,
        get(move |Path(path): Path<String>, headers: HeaderMap| {
            let root = root.clone();
            async move { serve(&root, &path, &headers).await }
        }),
    )
}

/// The content type of a file name.
fn content_type(path: &Utf8Path) -> &'static str {
    match path.extension().map(str::to_ascii_lowercase).as_deref() {
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Whether `segment` is a plain file or directory name.
fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The file for the (percent-decoded) request path, if it is a plain path to a file inside
/// `root`.
async fn resolve(root: &Utf8Path, path: &str) -> Option<Utf8PathBuf> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > 8 || !segments.iter().all(|segment| is_plain_segment(segment)) {
        return None;
    }
    let candidate = segments.iter().fold(root.to_owned(), |dir, s| dir.join(s));
    let real_root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(&candidate).await.ok()?;
    if !real.starts_with(&real_root) {
        return None;
    }
    let metadata = tokio::fs::metadata(&real).await.ok()?;
    metadata.is_file().then_some(candidate)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

async fn serve(root: &Utf8Path, path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = resolve(root, path).await else {
        return not_found();
    };
    let body = match tokio::fs::read(&file).await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(path = %file, error = %error, "cannot read an asset");
            return not_found();
        }
    };
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&file)),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        for (name, expected) in [
            ("app.css", "text/css; charset=utf-8"),
            ("logo.SVG", "image/svg+xml"),
            ("font.woff2", "font/woff2"),
            ("README", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Utf8Path::new(name)), expected, "{name}");
        }
    }

    #[test]
    fn only_plain_segments_are_accepted() {
        for good in ["app.css", "fonts", "a-b_c.1.woff2"] {
            assert!(is_plain_segment(good), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a\\b", "a%2f", "a\0b", "é"] {
            assert!(!is_plain_segment(bad), "{bad:?}");
        }
    }
}
