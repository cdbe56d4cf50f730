//! Import figures of `mas-cli syn2mas migrate` (issue 13's budget: 100,000 users at 5,000
//! users/s or more, in bounded memory). Builds a synthetic Synapse database with Synapse
//! 1.163.2's tables (src/syn2mas/testdata/): 100,000 users, each with a password hash, one
//! device, one access token and one email; then times the import into an empty MAS database
//! and prints users/s and the process's peak resident memory (VmHWM).
//!
//! Run with `cargo bench -p mas --bench syn2mas` (release build). SQLite always (Synapse and
//! MAS both on SQLite); PostgreSQL too when `DATABASE_URL` is set (two fresh databases,
//! dropped afterwards). Asserts no timing.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::HashMap;
use std::time::Instant;

use mas::clock::SystemClock;
use mas::config::DatabaseConfig;
use mas::rng::RngSource;
use mas::storage::Database;
use mas::syn2mas::progress::Silent;
use mas::syn2mas::{SynapseReader, Target, import};
use sqlx::{AnyConnection, Connection as _, Executor as _};

const USERS: usize = 100_000;
/// Users per INSERT while building Synapse's database.
const CHUNK: usize = 1_000;
const HASH: &str = "$2b$12$Csu3JMqnl78iD2FVNUON/eYc0Yg82fp6xmP97TobFEEBAxmL9hok6";

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        println!("syn2mas import benchmark: {USERS} users");
        let dir = tempfile::tempdir()?;
        let synapse = format!("sqlite://{}", dir.path().join("homeserver.db").display());
        let mas = format!("sqlite://{}", dir.path().join("mas.db").display());
        let schema = include_str!("../src/syn2mas/testdata/synapse_sqlite.sql");
        fill(&format!("{synapse}?mode=rwc"), schema).await?;
        run("SQLite", &synapse, &mas, None).await?;
        match std::env::var("DATABASE_URL") {
            Ok(admin_url) => postgres(&admin_url).await?,
            Err(_) => println!("\nPostgreSQL: skipped (DATABASE_URL not set)"),
        }
        println!("\npeak RSS of the process: {}", peak_rss());
        Ok(())
    })
}

async fn postgres(admin_url: &str) -> anyhow::Result<()> {
    let id = std::process::id();
    let names = [format!("synapse_bench_{id}"), format!("mas_bench_{id}")];
    let mut admin = AnyConnection::connect(admin_url).await?;
    let mut urls = Vec::new();
    for name in &names {
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let mut url = url::Url::parse(admin_url)?;
        url.set_path(name);
        urls.push(url.to_string());
    }
    let schema = include_str!("../src/syn2mas/testdata/synapse_postgres.sql");
    let outcome = async {
        fill(&urls[0], schema).await?;
        run("PostgreSQL", &urls[0], &urls[1], Some("mas")).await
    }
    .await;
    for name in &names {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await?;
    }
    outcome
}

/// Creates Synapse's tables and its users, devices, tokens and emails.
async fn fill(url: &str, schema: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut conn = AnyConnection::connect(url).await?;
    conn.execute(schema).await?;
    conn.execute("BEGIN").await?;
    for chunk in 0..USERS / CHUNK {
        let range = chunk * CHUNK..(chunk + 1) * CHUNK;
        let rows =
            |row: &dyn Fn(usize) -> String| range.clone().map(row).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO users (name, password_hash, creation_ts) VALUES {};
             INSERT INTO devices (user_id, device_id, display_name, last_seen, ip, user_agent) \
             VALUES {};
             INSERT INTO access_tokens (id, user_id, device_id, token, last_validated) VALUES {};
             INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) \
             VALUES {};",
            rows(&|i| format!("('@user{i}:example.com', '{HASH}', {})", 1_600_000_000 + i)),
            rows(&|i| format!(
                "('@user{i}:example.com', 'DEVICE{i}', 'Phone', 1700000000000, '192.0.2.1', \
                 'Element')"
            )),
            rows(&|i| format!(
                "({i}, '@user{i}:example.com', 'DEVICE{i}', 'syt_dXNlcg_{i:020}_token', \
                 1700000000000)"
            )),
            rows(&|i| format!("('@user{i}:example.com', 'email', 'user{i}@example.com', 1, 1)")),
        );
        conn.execute(sql.as_str()).await?;
    }
    conn.execute("COMMIT").await?;
    conn.close().await?;
    println!(
        "  (Synapse database built in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run(label: &str, synapse: &str, mas: &str, schema: Option<&str>) -> anyhow::Result<()> {
    println!("\n{label}");
    let config = DatabaseConfig {
        uri: Some(mas.to_owned()),
        schema: schema.map(str::to_owned),
        ..DatabaseConfig::default()
    };
    let db = Database::connect(&config).await?;
    mas::storage::migrate(&db).await?;
    let providers = HashMap::new();
    let mut rng = RngSource::from_entropy().fork();
    let started = Instant::now();
    let mut reader = SynapseReader::open(synapse).await?;
    let target = Target {
        db: &db,
        clock: &SystemClock,
        rng: &mut rng,
        server_name: "example.com",
        providers: &providers,
        dry_run: false,
    };
    let summary = import::import(&mut reader, target, &mut Silent).await?;
    reader.close().await?;
    let seconds = started.elapsed().as_secs_f64();
    db.close().await;
    #[expect(clippy::cast_precision_loss, reason = "a rate for people to read")]
    let rate = summary.users as f64 / seconds;
    println!(
        "  migrate: {} users, {} emails, {} sessions, {} tokens in {seconds:.2} s: \
         {rate:.0} users/s",
        summary.users, summary.emails, summary.compat_sessions, summary.access_tokens
    );
    println!("  peak RSS so far: {}", peak_rss());
    Ok(())
}

/// `VmHWM` of this process (Linux), as `/proc/self/status` writes it.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .map(|value| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
