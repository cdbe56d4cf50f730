//! The notice page (`pages/notice.html`): how the password pages end (password changed) or
//! refuse (passwords off, recovery unavailable, an expired link), with a link onwards. Unlike
//! the error page, it names where to go next.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::error::HtmlError;
use crate::pages::PageState;
use crate::templates::{LinkView, NoticeContext};

/// A notice with `status`, a heading, a message and an optional link (`(url, label)`).
pub(super) fn notice(
    page: &PageState,
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(String, &str)>,
) -> Result<Response, HtmlError> {
    let context = NoticeContext {
        prefix: page.urls.prefix().to_owned(),
        title: title.to_owned(),
        message: message.to_owned(),
        link: link.map(|(url, label)| LinkView {
            url,
            label: label.to_owned(),
        }),
    };
    let html = page.templates.render_notice(&context)?;
    Ok((status, Html(html)).into_response())
}
