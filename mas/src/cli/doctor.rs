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
    let mut lines = Vec::new();
    let mut ok = true;
    let problems = config.validate();
    if problems.is_empty() {
        lines.push("✅ configuration is valid".to_owned());
    } else {
        ok = false;
        for problem in &problems {
            lines.push(format!(
                "❌ configuration: {problem} (fix the key in the config file; \
                 `mas-cli config check` lists every problem)"
            ));
        }
    }
    let mailer = match crate::email::Mailer::from_config(&config.email) {
        Ok(mailer) => Some(mailer),
        Err(error) => {
            ok = false;
            lines.push(format!("❌ mail: {error}"));
            None
        }
    };
    if let Some(mailer) = &mailer {
        if mailer.is_enabled() {
            lines.push(format!(
                "✅ mail: {} from {}",
                mailer.describe(),
                mailer.from()
            ));
        } else {
            // Mail off is a valid choice, unless the operator asked to prove delivery.
            let mark = if args.send_test_email.is_some() {
                "❌"
            } else {
                "✅"
            };
            lines.push(format!(
                "{mark} mail is off (email.transport: blackhole): email verification and \
                 password recovery are unavailable; {}",
                how_to_enable()
            ));
        }
    }
    if let (Some(address), Some(mailer)) = (&args.send_test_email, &mailer) {
        if mailer.is_enabled() {
            match mailer.send_test(address, &config.matrix.homeserver).await {
                Ok(delivered) => {
                    let answer = delivered
                        .response
                        .map(|r| format!(", server answered {r}"))
                        .unwrap_or_default();
                    lines.push(format!(
                        "✅ test email to {address} handed to {}{answer}",
                        delivered.via
                    ));
                }
                Err(error) => {
                    ok = false;
                    lines.push(format!(
                        "❌ test email to {address} not sent: {error} (check the relay host, \
                         port, credentials and the From address)"
                    ));
                }
            }
        } else {
            ok = false;
            lines.push(format!(
                "❌ test email to {address} not sent: mail is not configured"
            ));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    super::print(&text)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn how_to_enable() -> &'static str {
    "to enable it on the appliance set CLOUDRON_MAIL_SMTP_SERVER, CLOUDRON_MAIL_SMTP_PORT (or \
     CLOUDRON_MAIL_SMTPS_PORT), CLOUDRON_MAIL_FROM and, if the relay needs them, \
     CLOUDRON_MAIL_SMTP_USERNAME and CLOUDRON_MAIL_SMTP_PASSWORD (the sendmail addon sets them \
     on Cloudron); elsewhere set email.transport: smtp"
}
