//! `validate()` of the `upstream_oauth2` section: every problem of every provider as
//! `(dotted.path, message)`, including what we refuse rather than ignore (see the parent
//! module). The types and their serde are in the parent module.

use std::collections::BTreeSet;

use url::Url;

use super::{
    BackchannelLogout, ClaimsImportsConfig, DiscoveryMode, ImportAction, ProviderConfig,
    ProviderSecretError, UpstreamOAuth2Config,
};
use crate::config::Problems;

impl ProviderConfig {
    /// Checks this provider, reporting under `path` (`upstream_oauth2.providers[0]`).
    fn validate(&self, path: &str, problems: &mut Problems) {
        if self.ulid().is_none() {
            problems.push(format!("{path}.id"), format!("{:?} is not a ULID", self.id));
        }
        match self.issuer.as_deref().map(Url::parse) {
            None => problems.push(
                format!("{path}.issuer"),
                "required (ID tokens are checked against it)",
            ),
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            Some(_) => problems.push(format!("{path}.issuer"), "must be an http(s) URL"),
        }
        if self.client_id.is_empty() {
            problems.push(format!("{path}.client_id"), "must not be empty");
        }
        if self.token_endpoint_auth_method.is_supported() {
            match self.load_client_secret() {
                Ok(_) => {}
                Err(ProviderSecretError::Secret(error)) => {
                    error.report(problems, path, "client_secret");
                }
                Err(error) => problems.push(format!("{path}.client_secret"), error.to_string()),
            }
        } else {
            problems.push(
                format!("{path}.token_endpoint_auth_method"),
                format!(
                    "{} is not supported (use client_secret_basic, client_secret_post or none)",
                    self.token_endpoint_auth_method.as_str()
                ),
            );
        }
        self.validate_unsupported(path, problems);
        if !matches!(
            self.id_token_signed_response_alg.as_str(),
            "RS256" | "ES256"
        ) {
            problems.push(
                format!("{path}.id_token_signed_response_alg"),
                format!(
                    "{:?} is not supported (RS256 or ES256)",
                    self.id_token_signed_response_alg
                ),
            );
        }
        if !self.scope.split(' ').any(|scope| scope == "openid") {
            problems.push(format!("{path}.scope"), "must contain openid");
        }
        self.validate_endpoints(path, problems);
        for (name, template) in &self.additional_authorization_parameters {
            check_template(
                problems,
                &format!("{path}.additional_authorization_parameters.{name}"),
                Some(template),
            );
        }
        self.claims_imports
            .validate(&format!("{path}.claims_imports"), problems);
    }

    fn validate_unsupported(&self, path: &str, problems: &mut Problems) {
        if self.token_endpoint_auth_signing_alg.is_some() {
            problems.push(
                format!("{path}.token_endpoint_auth_signing_alg"),
                "not supported (JWT client authentication is not implemented)",
            );
        }
        if self.userinfo_signed_response_alg.is_some() {
            problems.push(
                format!("{path}.userinfo_signed_response_alg"),
                "not supported (userinfo must be plain JSON)",
            );
        }
        if self.on_backchannel_logout != BackchannelLogout::DoNothing {
            problems.push(
                format!("{path}.on_backchannel_logout"),
                "not supported (only do_nothing)",
            );
        }
        if self.registration_token_required {
            problems.push(
                format!("{path}.registration_token_required"),
                "not supported (must be false)",
            );
        }
    }

    fn validate_endpoints(&self, path: &str, problems: &mut Problems) {
        let endpoints = [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("userinfo_endpoint", &self.userinfo_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ];
        for (name, url) in endpoints {
            match url {
                Some(url) if !matches!(url.scheme(), "http" | "https") => {
                    problems.push(format!("{path}.{name}"), "must be an http(s) URL");
                }
                None if self.discovery_mode == DiscoveryMode::Disabled
                    && (name != "userinfo_endpoint" || self.fetch_userinfo) =>
                {
                    problems.push(
                        format!("{path}.{name}"),
                        "required when discovery_mode is disabled",
                    );
                }
                _ => {}
            }
        }
    }
}

impl ClaimsImportsConfig {
    fn validate(&self, path: &str, problems: &mut Problems) {
        check_template(
            problems,
            &format!("{path}.subject.template"),
            self.subject.template.as_deref(),
        );
        check_template(
            problems,
            &format!("{path}.localpart.template"),
            self.localpart.template.as_deref(),
        );
        check_template(
            problems,
            &format!("{path}.displayname.template"),
            self.displayname.template.as_deref(),
        );
        check_template(
            problems,
            &format!("{path}.email.template"),
            self.email.template.as_deref(),
        );
        check_template(
            problems,
            &format!("{path}.account_name.template"),
            self.account_name.template.as_deref(),
        );
        if self.skip_confirmation {
            if self.localpart.action != ImportAction::Require {
                problems.push(
                    format!("{path}.skip_confirmation"),
                    "needs localpart.action: require",
                );
            }
            let suggests = [
                ("localpart", self.localpart.action),
                ("displayname", self.displayname.action),
                ("email", self.email.action),
            ]
            .into_iter()
            .filter(|(_, action)| *action == ImportAction::Suggest);
            for (name, _) in suggests {
                problems.push(
                    format!("{path}.{name}.action"),
                    "suggest needs the confirmation page (skip_confirmation is true)",
                );
            }
        }
    }
}

/// Reports a template that does not compile.
fn check_template(problems: &mut Problems, path: &str, template: Option<&str>) {
    if let Some(template) = template
        && let Err(error) = minijinja::Environment::new().template_from_str(template)
    {
        problems.push(path, format!("invalid template: {error}"));
    }
}

/// Checks every provider; duplicated ids are reported too.
pub(crate) fn validate(config: &UpstreamOAuth2Config, problems: &mut Problems) {
    let mut seen = BTreeSet::new();
    for (index, provider) in config.providers.iter().enumerate() {
        let path = format!("upstream_oauth2.providers[{index}]");
        if !seen.insert(provider.id.as_str()) {
            problems.push(format!("{path}.id"), "the same id is used twice");
        }
        provider.validate(&path, problems);
    }
}
