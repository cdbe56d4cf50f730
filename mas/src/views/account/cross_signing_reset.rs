//! `POST /account/cross-signing-reset` (MSC4191's `org.matrix.cross_signing_reset` deep link;
//! docs/protocol.md#pages): asks the homeserver to let the user replace their cross-signing keys
//! without interactive auth for the next 10 minutes, then says so. A refusal or an unreachable
//! homeserver is an error page (502), never a 500.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::to_login;
use crate::error::HtmlError;
use crate::extract::session::load_session;
use crate::homeserver::HomeserverConnection;
use crate::pages::{CsrfForm, PageState, user_view};
use crate::routes;
use crate::storage::Database;
use crate::templates::CrossSigningResetContext;

/// `POST /account/cross-signing-reset`.
#[tracing::instrument(name = "handlers.views.account.cross_signing_reset.post", skip_all)]
pub(super) async fn post(
    State(page): State<PageState>,
    State(db): State<Database>,
    State(homeserver): State<Arc<dyn HomeserverConnection>>,
    CsrfForm { mut jar, .. }: CsrfForm,
) -> Result<Response, HtmlError> {
    let mut conn = db.acquire().await?;
    let Some(session) = load_session(&mut conn, &jar).await? else {
        let action = Some("org.matrix.cross_signing_reset".to_owned());
        return Ok(to_login(&page.urls, action, None));
    };
    drop(conn);
    let user = session.user;
    if let Err(error) = homeserver.allow_cross_signing_reset(&user.username).await {
        tracing::warn!(
            user.id = %user.id,
            error = &error as &dyn std::error::Error,
            "the homeserver did not allow the cross-signing reset"
        );
        return Err(HtmlError::new(
            StatusCode::BAD_GATEWAY,
            "Identity reset not available",
            "The homeserver did not accept the request. Try again in a few minutes.",
        ));
    }
    tracing::info!(user.id = %user.id, "cross-signing reset allowed for 10 minutes");
    let csrf = page.csrf_token(&mut jar);
    let context = CrossSigningResetContext {
        prefix: page.urls.prefix().to_owned(),
        csrf_token: csrf.form_value().to_owned(),
        user: user_view(homeserver.as_ref(), &user).await,
        form_action: page.urls.relative(routes::ACCOUNT_CROSS_SIGNING_RESET),
        allowed: true,
        account_url: page.urls.relative(routes::ACCOUNT),
    };
    let html = page
        .templates
        .render_account_cross_signing_reset(&context)?;
    Ok((jar, Html(html)).into_response())
}
