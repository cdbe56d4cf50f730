//! The PostgreSQL pre-flight: reachable within `APPLIANCE_DB_WAIT` (bounded retry), and the
//! database's collation and ctype are exactly `C`, which Synapse requires (Synapse's "Using
//! Postgres" documentation). Read-only: it creates nothing.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::env::Postgres;

/// Why the database cannot be used. `Display` is one line naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{var}: cannot reach PostgreSQL at {address} (gave up after {waited}s): {reason}")]
    Unreachable {
        var: &'static str,
        address: String,
        waited: u64,
        reason: String,
    },
    #[error("{var}: PostgreSQL at {address} refused the connection: {reason}")]
    Refused {
        var: &'static str,
        address: String,
        reason: String,
    },
    #[error(
        "{var}: database {database:?} has collation {collate:?} and ctype {ctype:?}, but Synapse \
         needs exactly 'C'; create it with LC_COLLATE='C' LC_CTYPE='C' TEMPLATE=template0 \
         (on Cloudron: the postgresql addon's locale option \"C\")"
    )]
    Collation {
        var: &'static str,
        database: String,
        collate: String,
        ctype: String,
    },
}

/// How the supervisor connects to the appliance's database, naming itself `application` to
/// the server (`pg_stat_activity`); statements are not logged.
pub fn connect_options(pg: &Postgres, application: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(&pg.host)
        .port(pg.port)
        .username(&pg.user)
        .password(&pg.password)
        .database(&pg.database)
        .application_name(application)
        .disable_statement_logging()
}

/// Connects (retrying while the server is unreachable, up to `wait`), then checks the locale.
pub async fn check(pg: &Postgres, wait: Duration) -> Result<(), DatabaseError> {
    let var = pg.variable;
    let options = connect_options(pg, "appliance-preflight");
    let start = Instant::now();
    let mut delay = Duration::from_millis(250);
    let mut conn = loop {
        let attempt = tokio::time::timeout(Duration::from_secs(5), options.connect()).await;
        let err = match attempt {
            Ok(Ok(conn)) => break conn,
            Ok(Err(e)) => e,
            Err(_) => sqlx::Error::PoolTimedOut,
        };
        if !is_transient(&err) {
            return Err(DatabaseError::Refused {
                var,
                address: pg.address(),
                reason: describe(&err),
            });
        }
        if start.elapsed() + delay > wait {
            return Err(DatabaseError::Unreachable {
                var,
                address: pg.address(),
                waited: start.elapsed().as_secs(),
                reason: describe(&err),
            });
        }
        tracing::info!(address = %pg.address(), reason = %describe(&err), "waiting for PostgreSQL");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(3));
    };
    let (collate, ctype): (String, String) = sqlx::query_as(
        "SELECT datcollate::text, datctype::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| DatabaseError::Refused { var, address: pg.address(), reason: describe(&e) })?;
    let _ = conn.close().await;
    if collate != "C" || ctype != "C" {
        return Err(DatabaseError::Collation {
            var,
            database: pg.database.clone(),
            collate,
            ctype,
        });
    }
    Ok(())
}

/// Network trouble is worth waiting out; a wrong password or a missing database is not.
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // 57P03: the server is starting up.
        sqlx::Error::Database(db) => db.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}
