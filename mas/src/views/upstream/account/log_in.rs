//! [`log_in`]: the end of a successful upstream login.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::BrowserInfo;
use crate::auth::post_auth::PostAuthAction;
use crate::error::HtmlError;
use crate::extract::CookieJar;
use crate::extract::session::load_session;
use crate::model::{AuthenticationMethod, UpstreamSession, User};
use crate::storage::{browser_sessions, upstream_sessions};
use crate::views::upstream::{UpstreamState, failure};

/// Ends a successful login: consumes the authorization session (once), starts a browser session for
/// `user` (or re-authenticates the browser's current one of the same user), records the
/// upstream authentication, commits, and sends the browser on to the post-auth action.
pub(in crate::views::upstream) async fn log_in(
    state: &UpstreamState,
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    mut jar: CookieJar,
    session: &UpstreamSession,
    user: &User,
    browser: &BrowserInfo,
    queued_job: bool,
) -> Result<Response, HtmlError> {
    let clock = state.clock.as_ref();
    let mut rng = state.rng.fork();
    if !upstream_sessions::consume_upstream_session(&mut tx, clock, session.id).await? {
        return Err(failure::replayed(
            &session.provider_id,
            "the authorization session was used already",
        ));
    }
    let current = load_session(&mut tx, &jar).await?;
    let browser_session = match current {
        Some(current) if current.user.id == user.id => current,
        _ => {
            browser_sessions::start_browser_session(
                &mut tx,
                clock,
                &mut rng,
                user,
                browser.user_agent.as_deref(),
                browser.ip.as_deref(),
            )
            .await?
        }
    };
    browser_sessions::record_authentication(
        &mut tx,
        clock,
        &mut rng,
        browser_session.id,
        AuthenticationMethod::Upstream {
            upstream_oauth_authorization_session_id: session.id,
        },
    )
    .await?;
    tx.commit().await?;
    if queued_job {
        state.jobs.wake();
    }
    tracing::info!(
        provider = %session.provider_id,
        user.id = %user.id,
        user_session.id = %browser_session.id,
        "logged in through an upstream provider"
    );
    // The session stays listed in the `upstream-oauth2-sessions` cookie until it expires, so
    // that a replay of the provider's answer (the back button) is told apart as `replayed`.
    jar.set_session(&mut rng, browser_session.id)
        .map_err(HtmlError::internal)?;
    let action = session
        .post_auth_action
        .as_ref()
        .and_then(PostAuthAction::from_json);
    let destination = PostAuthAction::destination(action.as_ref(), &state.urls);
    Ok((StatusCode::SEE_OTHER, jar, Redirect::to(&destination)).into_response())
}
