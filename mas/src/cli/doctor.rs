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

fn how_to_enable() -> &'static str {
    "to enable it on the appliance set CLOUDRON_MAIL_SMTP_SERVER, CLOUDRON_MAIL_SMTP_PORT (or \
     CLOUDRON_MAIL_SMTPS_PORT), CLOUDRON_MAIL_FROM and, if the relay needs them, \
     CLOUDRON_MAIL_SMTP_USERNAME and CLOUDRON_MAIL_SMTP_PASSWORD (the sendmail addon sets them \
     on Cloudron); elsewhere set email.transport: smtp"
}
