//! The pages for people (docs/protocol.md#pages): the index, login and logout, the account page
//! ([`account`]) and login through upstream providers ([`upstream`]), the part of the `human`
//! route group this area owns (`app` adds `/authorize` and the consent page from `oauth2` and
//! the legacy SSO page from `compat`). Static files (`assets` resource) are served by
//! [`assets`].
//!
//! Every form POST checks its CSRF token first (docs/protocol.md#cookies-and-csrf): its handler
//! takes [`CsrfForm`](crate::pages::CsrfForm), which answers a bad or missing one with a 403
//! page. Pages answer errors as
//! [`HtmlError`](crate::error::HtmlError)s, rendered by the human group's layer; the security
//! headers come from `crate::csp`.

mod account;
pub(crate) mod assets;
mod index;
mod login;
mod logout;
mod notice;
mod password_form;
mod recover;
mod upstream;

use axum::Router;
use axum::routing::get;

use crate::app::AppState;
use crate::routes;

/// This area's routes of the `human` resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(routes::INDEX, get(index::get))
        .route(routes::LOGIN, get(login::get).post(login::post))
        .route(routes::LOGOUT, axum::routing::post(logout::post))
        .route(routes::RECOVER, get(recover::get).post(recover::post))
        .route(
            routes::RECOVER_COMPLETE,
            get(recover::complete::get).post(recover::complete::post),
        )
        .merge(account::router())
        .merge(upstream::router())
}

#[cfg(test)]
mod tests;
