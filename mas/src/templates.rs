//! The web pages (docs/architecture.md#pages-and-templates): [`Templates`], a minijinja environment
//! loaded at run time from `templates.path` (operators may point it at a customised copy), with one
//! typed render method per page and a `Serialize` context per page in [`context`].
//!
//! Undefined variables are errors (strict mode) and `.html` output is HTML-escaped. Loading
//! renders every page's `sample()` once, so a broken template is found at start-up or reload,
//! not by a user. [`Templates::reload`] (wired to SIGHUP by [`Templates::reload_on_sighup`])
//! swaps in a new set atomically; a set that fails to load is refused and the old one stays.

pub mod context;

use std::sync::Arc;

use arc_swap::ArcSwap;
use camino::{Utf8Path, Utf8PathBuf};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

pub use self::context::{
    AccountContext, AccountManageView, AuthorizeErrorView, ClientView, CompatSsoContext,
    ConsentContext, CrossSigningResetContext, DeactivateContext, DeviceConsentContext,
    DeviceDoneContext, DeviceLinkContext, EmailVerifyContext, EmailView, ErrorContext, FormError,
    FormPostContext, FormPostParam, IndexContext, LinkView, LoginContext, NoticeContext,
    PasswordChangeContext, PostAuthAction, ProviderLink, RecoverCompleteContext, RecoverContext,
    RegisterContext, RegisterDisplayNameContext, ScopeView, SessionEndContext, SessionView,
    StrengthView, UpstreamLinkContext, UpstreamResubmitContext, UserView, describe_scopes,
    device_id_of, time_ago,
};
pub use self::context::{RecoveryMail, RenderedMail, VerificationMail};

/// Why templates could not be loaded or a page not rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The templates directory is missing or not a directory.
    #[error("templates.path: {path} is not a readable directory")]
    Directory {
        /// The configured path.
        path: Utf8PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A template is missing, does not parse, or failed to render its context.
    #[error("template {name}")]
    Render {
        /// The page template (`pages/login.html`).
        name: &'static str,
        /// minijinja's error, with the file and line.
        #[source]
        source: minijinja::Error,
    },
}

/// The page templates, by file name under `templates.path`.
mod page {
    pub(super) const LOGIN: &str = "pages/login.html";
    pub(super) const CONSENT: &str = "pages/consent.html";
    pub(super) const ERROR: &str = "pages/error.html";
    pub(super) const INDEX: &str = "pages/index.html";
    pub(super) const FORM_POST: &str = "pages/form_post.html";
    pub(super) const COMPAT_SSO: &str = "pages/compat_sso.html";
    pub(super) const UPSTREAM_LINK: &str = "pages/upstream_link.html";
    pub(super) const UPSTREAM_RESUBMIT: &str = "pages/upstream_resubmit.html";
    pub(super) const ACCOUNT: &str = "pages/account.html";
    pub(super) const ACCOUNT_SESSION_END: &str = "pages/account_session_end.html";
    pub(super) const ACCOUNT_CROSS_SIGNING_RESET: &str = "pages/account_cross_signing_reset.html";
    pub(super) const ACCOUNT_DEACTIVATE: &str = "pages/account_deactivate.html";
    pub(super) const DEVICE_LINK: &str = "pages/device_link.html";
    pub(super) const DEVICE_CONSENT: &str = "pages/device_consent.html";
    pub(super) const DEVICE_DONE: &str = "pages/device_done.html";
    pub(super) const ACCOUNT_PASSWORD: &str = "pages/account_password.html";
    pub(super) const RECOVER: &str = "pages/recover.html";
    pub(super) const RECOVER_COMPLETE: &str = "pages/recover_complete.html";
    pub(super) const NOTICE: &str = "pages/notice.html";
    pub(super) const REGISTER: &str = "pages/register.html";
    pub(super) const REGISTER_DISPLAY_NAME: &str = "pages/register_display_name.html";
    pub(super) const EMAIL_VERIFY: &str = "pages/email_verify.html";
}

/// The mail templates: subject, plain text and HTML of each message, under `emails/`.
mod mail {
    /// One message's three templates.
    pub(super) struct MailTemplates {
        pub(super) subject: &'static str,
        pub(super) text: &'static str,
        pub(super) html: &'static str,
    }

    pub(super) const VERIFICATION: MailTemplates = MailTemplates {
        subject: "emails/verification.subject.txt",
        text: "emails/verification.txt",
        html: "emails/verification.html",
    };

    pub(super) const RECOVERY: MailTemplates = MailTemplates {
        subject: "emails/recovery.subject.txt",
        text: "emails/recovery.txt",
        html: "emails/recovery.html",
    };
}

/// The loaded templates; cheap to clone, shared by all handlers. Renders with whichever set
/// was current when the call began.
#[derive(Clone)]
pub struct Templates {
    path: Utf8PathBuf,
    current: Arc<ArcSwap<Environment<'static>>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Loads the templates in `path` and checks every page by rendering its sample.
    pub fn load(path: &Utf8Path) -> Result<Self, TemplateError> {
        let environment = load_environment(path)?;
        Ok(Self {
            path: path.to_owned(),
            current: Arc::new(ArcSwap::from_pointee(environment)),
        })
    }

    /// Re-reads the directory; on any error the current templates stay in use.
    pub fn reload(&self) -> Result<(), TemplateError> {
        let environment = load_environment(&self.path)?;
        self.current.store(Arc::new(environment));
        Ok(())
    }

    /// Reloads on every SIGHUP until the runtime stops (errors are logged, the old templates
    /// stay). Must be called within a Tokio runtime.
    pub fn reload_on_sighup(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        let templates = self.clone();
        Ok(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match templates.reload() {
                    Ok(()) => tracing::info!(path = %templates.path, "templates reloaded"),
                    Err(error) => tracing::error!(
                        error = &error as &dyn std::error::Error,
                        "templates not reloaded; keeping the previous ones"
                    ),
                }
            }
        }))
    }

    /// The login page.
    pub fn render_login(&self, context: &LoginContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::LOGIN, context)
    }

    /// The registration form.
    pub fn render_register(&self, context: &RegisterContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::REGISTER, context)
    }

    /// The display-name step of a registration.
    pub fn render_register_display_name(
        &self,
        context: &RegisterDisplayNameContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::REGISTER_DISPLAY_NAME, context)
    }

    /// The consent page of an authorization grant.
    pub fn render_consent(&self, context: &ConsentContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::CONSENT, context)
    }

    /// An error page.
    pub fn render_error(&self, context: &ErrorContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::ERROR, context)
    }

    /// The index page (the signed-in user and a logout form).
    pub fn render_index(&self, context: &IndexContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::INDEX, context)
    }

    /// The "continue to the application" page of a legacy SSO login.
    pub fn render_compat_sso(&self, context: &CompatSsoContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::COMPAT_SSO, context)
    }

    /// The confirmation page of a login through an upstream provider.
    pub fn render_upstream_link(
        &self,
        context: &UpstreamLinkContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::UPSTREAM_LINK, context)
    }

    /// The page re-posting an upstream provider's `form_post` answer from our origin.
    pub fn render_upstream_resubmit(
        &self,
        context: &UpstreamResubmitContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::UPSTREAM_RESUBMIT, context)
    }

    /// The account page (the user, their addresses and sessions).
    pub fn render_account(&self, context: &AccountContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::ACCOUNT, context)
    }

    /// The confirmation of ending a device's session (a client's deep link).
    pub fn render_account_session_end(
        &self,
        context: &SessionEndContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::ACCOUNT_SESSION_END, context)
    }

    /// The cross-signing reset page.
    pub fn render_account_cross_signing_reset(
        &self,
        context: &CrossSigningResetContext,
    ) -> Result<String, TemplateError> {
        render(
            &self.current.load(),
            page::ACCOUNT_CROSS_SIGNING_RESET,
            context,
        )
    }

    /// The deactivation page (the confirmation form, or "your account is closed").
    pub fn render_account_deactivate(
        &self,
        context: &DeactivateContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::ACCOUNT_DEACTIVATE, context)
    }

    /// The device authorization grant's code entry page.
    pub fn render_device_link(&self, context: &DeviceLinkContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::DEVICE_LINK, context)
    }

    /// The approval page of a device authorization grant.
    pub fn render_device_consent(
        &self,
        context: &DeviceConsentContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::DEVICE_CONSENT, context)
    }

    /// The page after a device was allowed in or denied.
    pub fn render_device_done(&self, context: &DeviceDoneContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::DEVICE_DONE, context)
    }

    /// The password change form.
    pub fn render_account_password(
        &self,
        context: &PasswordChangeContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::ACCOUNT_PASSWORD, context)
    }

    /// The password recovery request form, or its answer.
    pub fn render_recover(&self, context: &RecoverContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::RECOVER, context)
    }

    /// The recovery link's new-password form.
    pub fn render_recover_complete(
        &self,
        context: &RecoverCompleteContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::RECOVER_COMPLETE, context)
    }

    /// A notice that ends or refuses a flow (password changed, recovery unavailable).
    pub fn render_notice(&self, context: &NoticeContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::NOTICE, context)
    }

    /// The code entry page of an email authentication.
    pub fn render_email_verify(
        &self,
        context: &EmailVerifyContext,
    ) -> Result<String, TemplateError> {
        render(&self.current.load(), page::EMAIL_VERIFY, context)
    }

    /// The mail carrying an email verification code.
    pub fn render_mail_verification(
        &self,
        context: &VerificationMail,
    ) -> Result<RenderedMail, TemplateError> {
        render_mail(&self.current.load(), &mail::VERIFICATION, context)
    }

    /// The mail carrying a password recovery link.
    pub fn render_mail_recovery(
        &self,
        context: &RecoveryMail,
    ) -> Result<RenderedMail, TemplateError> {
        render_mail(&self.current.load(), &mail::RECOVERY, context)
    }

    /// The `form_post` authorization response (a form posting to the client).
    pub fn render_form_post(&self, context: &FormPostContext) -> Result<String, TemplateError> {
        render(&self.current.load(), page::FORM_POST, context)
    }
}

fn render(
    environment: &Environment<'static>,
    name: &'static str,
    context: &impl Serialize,
) -> Result<String, TemplateError> {
    environment
        .get_template(name)
        .and_then(|template| template.render(context))
        .map_err(|source| TemplateError::Render { name, source })
}

/// Renders one message's subject, text and HTML. The subject is made one line (no header can be
/// smuggled in through a template or a value in it).
fn render_mail(
    environment: &Environment<'static>,
    templates: &mail::MailTemplates,
    context: &impl Serialize,
) -> Result<RenderedMail, TemplateError> {
    let subject = render(environment, templates.subject, context)?;
    Ok(RenderedMail {
        subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
        text: render(environment, templates.text, context)?,
        html: render(environment, templates.html, context)?,
    })
}

/// A fresh environment for `path`, checked by rendering every page's sample.
fn load_environment(path: &Utf8Path) -> Result<Environment<'static>, TemplateError> {
    let directory_error = |source| TemplateError::Directory {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(directory_error)?.is_dir() {
        return Err(directory_error(std::io::Error::other("not a directory")));
    }
    let mut environment = Environment::new();
    environment.set_loader(minijinja::path_loader(path));
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    environment.set_trim_blocks(true);
    environment.set_lstrip_blocks(true);
    render(&environment, page::LOGIN, &LoginContext::sample())?;
    render(&environment, page::CONSENT, &ConsentContext::sample())?;
    render(&environment, page::ERROR, &ErrorContext::sample())?;
    render(&environment, page::INDEX, &IndexContext::sample())?;
    render(&environment, page::FORM_POST, &FormPostContext::sample())?;
    render(
        &environment,
        page::FORM_POST,
        &FormPostContext::error_sample(),
    )?;
    render(&environment, page::COMPAT_SSO, &CompatSsoContext::sample())?;
    render(
        &environment,
        page::UPSTREAM_LINK,
        &UpstreamLinkContext::sample(),
    )?;
    render(
        &environment,
        page::UPSTREAM_RESUBMIT,
        &UpstreamResubmitContext::sample(),
    )?;
    render(&environment, page::ACCOUNT, &AccountContext::sample())?;
    render(
        &environment,
        page::ACCOUNT_SESSION_END,
        &SessionEndContext::sample(),
    )?;
    render(
        &environment,
        page::ACCOUNT_CROSS_SIGNING_RESET,
        &CrossSigningResetContext::sample(),
    )?;
    render(
        &environment,
        page::ACCOUNT_DEACTIVATE,
        &DeactivateContext::sample(),
    )?;
    render(
        &environment,
        page::DEVICE_LINK,
        &DeviceLinkContext::sample(),
    )?;
    render(
        &environment,
        page::DEVICE_CONSENT,
        &DeviceConsentContext::sample(),
    )?;
    render(
        &environment,
        page::DEVICE_DONE,
        &DeviceDoneContext::sample(),
    )?;
    render(&environment, page::REGISTER, &RegisterContext::sample())?;
    render(
        &environment,
        page::REGISTER_DISPLAY_NAME,
        &RegisterDisplayNameContext::sample(),
    )?;
    render(
        &environment,
        page::ACCOUNT_PASSWORD,
        &PasswordChangeContext::sample(),
    )?;
    render(&environment, page::RECOVER, &RecoverContext::sample())?;
    render(&environment, page::RECOVER, &RecoverContext::sent_sample())?;
    render(
        &environment,
        page::RECOVER_COMPLETE,
        &RecoverCompleteContext::sample(),
    )?;
    render(&environment, page::NOTICE, &NoticeContext::sample())?;
    render(
        &environment,
        page::EMAIL_VERIFY,
        &EmailVerifyContext::sample(),
    )?;
    render_mail(
        &environment,
        &mail::VERIFICATION,
        &VerificationMail::sample(),
    )?;
    render_mail(&environment, &mail::RECOVERY, &RecoveryMail::sample())?;
    Ok(environment)
}

#[cfg(test)]
mod tests;
