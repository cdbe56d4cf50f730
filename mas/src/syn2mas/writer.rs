//! Multi-row inserts for the import: rows are buffered per table and written as one
//! `INSERT … VALUES (…), (…)` per batch, within the bind-parameter limits of both backends
//! (SQLite allows 32,766 since 3.32; PostgreSQL 65,535).

use sqlx::AnyConnection;

/// Bind parameters per statement: SQLite's historical limit (999). Far below what either backend
/// allows, on purpose: SQLite finds each `$N` by walking the statement's parameter list
/// (`sqlite3_bind_parameter_name`), so binding costs grow with the square of the parameters per
/// statement; with 8,000 per statement that walk took 70% of an import's time (perf, 100,000
/// users). PostgreSQL is as fast with these smaller statements.
const MAX_PARAMETERS: usize = 999;
/// Rows per statement at most (longer statements stop paying off).
const MAX_ROWS: usize = 1_000;

/// One value of a row.
#[derive(Debug, Clone)]
pub(super) enum Cell {
    /// Text or NULL.
    Text(Option<String>),
    /// An integer or NULL.
    Int(Option<i64>),
    /// A boolean.
    Bool(bool),
}

impl From<String> for Cell {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}

impl From<Option<String>> for Cell {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Cell {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// The buffered rows of one table.
#[derive(Debug)]
pub(super) struct Batch {
    table: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Cell>>,
    max_rows: usize,
    written: u64,
}

impl Batch {
    pub(super) fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        let max_rows = (MAX_PARAMETERS / columns.len()).min(MAX_ROWS);
        Self {
            table,
            columns,
            rows: Vec::with_capacity(max_rows),
            max_rows,
            written: 0,
        }
    }

    /// Rows written so far (flushed or buffered).
    pub(super) fn count(&self) -> u64 {
        self.written
    }

    /// Whether the next [`push`](Self::push) writes the batch (so a parent table's batch
    /// can be written first).
    pub(super) fn full_after_push(&self) -> bool {
        self.rows.len() + 1 >= self.max_rows
    }

    /// Buffers a row, writing the batch when it is full.
    pub(super) async fn push(
        &mut self,
        conn: &mut AnyConnection,
        row: Vec<Cell>,
    ) -> Result<(), sqlx::Error> {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
        self.written += 1;
        if self.rows.len() >= self.max_rows {
            self.flush(conn).await?;
        }
        Ok(())
    }

    /// Writes what is buffered.
    pub(super) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = insert_statement(self.table, self.columns, self.rows.len());
        let mut query = sqlx::query(&sql);
        for row in self.rows.drain(..) {
            for cell in row {
                query = match cell {
                    Cell::Text(value) => query.bind(value),
                    Cell::Int(value) => query.bind(value),
                    Cell::Bool(value) => query.bind(value),
                };
            }
        }
        query.execute(conn).await?;
        Ok(())
    }
}

/// `INSERT INTO table (a, b) VALUES ($1, $2), ($3, $4)…` for `rows` rows.
fn insert_statement(table: &str, columns: &[&str], rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns.len() {
            n += 1;
            let _ = write!(sql, "{}${n}", if column == 0 { "" } else { ", " });
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_number_parameters_row_by_row() {
        assert_eq!(
            insert_statement("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }

    /// More rows than one statement may carry (11 columns: 90 rows a statement) go out in several
    /// statements of at most 999 parameters, and every row arrives, in full.
    #[tokio::test]
    async fn many_rows_are_written_in_statements_sqlite_accepts() {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (a, b, c, d, e, f, g, h, i, j, k)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut batch = Batch::new(
            "t",
            &["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"],
        );
        for n in 0..1_000_i64 {
            let row = (0..11).map(|c| Cell::from(n * 11 + c)).collect();
            batch.push(&mut conn, row).await.unwrap();
        }
        batch.flush(&mut conn).await.unwrap();
        assert_eq!(batch.count(), 1_000);
        let (rows, sum): (i64, i64) = sqlx::query_as("SELECT COUNT(*), SUM(k) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, 1_000);
        assert_eq!(sum, (0..1_000_i64).map(|n| n * 11 + 10).sum::<i64>());
        let statement = insert_statement("t", batch.columns, batch.max_rows);
        assert!(
            statement.matches('$').count() <= 999,
            "{} parameters in one statement",
            statement.matches('$').count()
        );
    }
}
