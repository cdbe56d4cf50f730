//! `mas-cli doctor [--send-test-email ADDRESS]`: checks what an operator gets wrong in MAS's
//! own configuration (does it validate, does mail go anywhere) and, on request, proves mail
//! delivery by sending one message through the configured transport. One line per check,
//! `✅` or `❌` with what to do; exit 1 when a check failed.
//!
//! The appliance-wide checks (delegation, reachability, disk, secrets) are `appliance doctor`,
//! which runs this with the rendered config for `--send-test-email`.

use std::process::ExitCode;

use camino::Utf8PathBuf;
use clap::Args;

use crate::config::RootConfig;
use crate::email::Mailer;

/// `doctor` options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Send one test message to ADDRESS through the configured mail transport and say where
    /// it went.
    #[arg(long, value_name = "ADDRESS")]
    pub send_test_email: Option<String>,
}

pub(super) async fn run(args: DoctorArgs, files: &[Utf8PathBuf]) -> anyhow::Result<ExitCode> {
    let config = super::load(files)?;
    let mut report = Report::default();
    check_config(&mut report, &config);
    let mailer = check_mail(&mut report, &config, args.send_test_email.is_some());
    check_registration(&mut report, &config);
    if let (Some(address), Some(mailer)) = (&args.send_test_email, &mailer) {
        send_test_email(&mut report, mailer, address, &config).await;
    }
    let mut text = report.lines.join("\n");
    text.push('\n');
    super::print(&text)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The lines so far, and whether every check passed.
struct Report {
    lines: Vec<String>,
    ok: bool,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            lines: Vec::new(),
            ok: true,
        }
    }
}

impl Report {
    /// A line that does not change the outcome (`✅`, or a `❌` that is advice only).
    fn line(&mut self, line: String) {
        self.lines.push(line);
    }

    /// A failed check's line.
    fn fail(&mut self, line: String) {
        self.ok = false;
        self.lines.push(line);
    }
}

/// Whether the configuration validates; every problem on its own line.
fn check_config(report: &mut Report, config: &RootConfig) {
    let problems = config.validate();
    if problems.is_empty() {
        report.line("✅ configuration is valid".to_owned());
    }
    for problem in &problems {
        report.fail(format!(
            "❌ configuration: {problem} (fix the key in the config file; \
             `mas-cli config check` lists every problem)"
        ));
    }
}

/// Whether the mail transport can be built, and what it is; the mailer when it can.
fn check_mail(report: &mut Report, config: &RootConfig, test_requested: bool) -> Option<Mailer> {
    let mailer = match Mailer::from_config(&config.email) {
        Ok(mailer) => mailer,
        Err(error) => {
            report.fail(format!("❌ mail: {error}"));
            return None;
        }
    };
    if mailer.is_enabled() {
        report.line(format!(
            "✅ mail: {} from {}",
            mailer.describe(),
            mailer.from()
        ));
    } else {
        // Mail off is a valid choice, unless the operator asked to prove delivery.
        let mark = if test_requested { "❌" } else { "✅" };
        report.line(format!(
            "{mark} mail is off (email.transport: blackhole): email verification and \
             password recovery are unavailable; {}",
            how_to_enable()
        ));
    }
    Some(mailer)
}

/// Sends one test message to `address` and says where it went.
async fn send_test_email(report: &mut Report, mailer: &Mailer, address: &str, config: &RootConfig) {
    if !mailer.is_enabled() {
        report.fail(format!(
            "❌ test email to {address} not sent: mail is not configured"
        ));
        return;
    }
    match mailer.send_test(address, &config.matrix.homeserver).await {
        Ok(delivered) => {
            let answer = delivered
                .response
                .map(|r| format!(", server answered {r}"))
                .unwrap_or_default();
            report.line(format!(
                "✅ test email to {address} handed to {}{answer}",
                delivered.via
            ));
        }
        Err(error) => report.fail(format!(
            "❌ test email to {address} not sent: {error} (check the relay host, \
             port, credentials and the From address)"
        )),
    }
}

/// Whether self-service registration is open, and what it asks for; a required email
/// address with mail off closes it (docs/protocol.md#registration).
fn check_registration(report: &mut Report, config: &RootConfig) {
    report.line(registration_line(config));
}

fn registration_line(config: &RootConfig) -> String {
    let account = &config.account;
    if !account.password_registration_enabled {
        return "✅ registration is off (account.password_registration_enabled: false)".to_owned();
    }
    if !config.passwords.enabled {
        return "❌ registration is unavailable: passwords are disabled (passwords.enabled:                 false), so account.password_registration_enabled has no effect"
            .to_owned();
    }
    if account.password_registration_email_required
        && config.email.transport == crate::config::EmailTransport::Blackhole
    {
        return format!(
            "❌ registration is unavailable: it requires an email address              (account.password_registration_email_required) but mail is off; {}, or turn the              email requirement off and require a registration token instead",
            how_to_enable()
        );
    }
    let mut asks = Vec::new();
    if account.password_registration_email_required {
        asks.push("a verified email address");
    }
    if account.registration_token_required() {
        asks.push("a registration token (mas-cli manage issue-user-registration-token)");
    }
    if config.branding.tos_uri.is_some() {
        asks.push("accepting the terms of service (branding.tos_uri)");
    }
    if asks.is_empty() {
        "✅ registration is open to anyone".to_owned()
    } else {
        format!("✅ registration is open, with {}", asks.join(" and "))
    }
}

fn how_to_enable() -> &'static str {
    "to enable it on the appliance set CLOUDRON_MAIL_SMTP_SERVER, CLOUDRON_MAIL_SMTP_PORT (or \
     CLOUDRON_MAIL_SMTPS_PORT), CLOUDRON_MAIL_FROM and, if the relay needs them, \
     CLOUDRON_MAIL_SMTP_USERNAME and CLOUDRON_MAIL_SMTP_PASSWORD (the sendmail addon sets them \
     on Cloudron); elsewhere set email.transport: smtp"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registration_line_says_whether_and_how_people_can_register() {
        let mut config = RootConfig::default();
        assert!(registration_line(&config).starts_with("✅ registration is off"));
        config.account.password_registration_enabled = true;
        let line = registration_line(&config);
        assert!(
            line.starts_with("❌ registration is unavailable: it requires an email address"),
            "{line}"
        );
        config.account.password_registration_email_required = false;
        assert_eq!(
            registration_line(&config),
            "✅ registration is open to anyone"
        );
        config.account.password_registration_token_required = true;
        config.branding.tos_uri = Some("https://example.com/tos".parse().unwrap());
        let line = registration_line(&config);
        assert!(line.contains("a registration token") && line.contains("terms of service"));
        config.passwords.enabled = false;
        assert!(registration_line(&config).contains("passwords are disabled"));
    }
}
