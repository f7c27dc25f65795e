//! Statements a caller may stop waiting for: a search that ran out of `SEARCH_TIMEOUT_MS`,
//! or whose request was dropped. Dropped unfinished, the statement is cancelled in
//! Postgres too, so it stops holding a connection and a core for the rest of its
//! statement timeout.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::error::Result;

/// A connection of the pool whose statement is cancelled if this is dropped before `done`.
pub struct Cancellable {
    pool: PgPool,
    pid: i32,
    conn: Option<PoolConnection<Postgres>>,
}

impl Cancellable {
    pub async fn acquire(pool: &PgPool) -> Result<Self> {
        let mut conn = pool.acquire().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Self {
            pool: pool.clone(),
            pid,
            conn: Some(conn),
        })
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("the connection is taken only by done and drop"))
    }

    /// The statements finished: the connection goes back to the pool.
    pub fn done(mut self) {
        self.conn.take();
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Out of the pool for good, so that the cancel can reach no later statement.
        let conn = conn.detach();
        let (pool, pid) = (self.pool.clone(), self.pid);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let cancelled = sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&pool)
                    .await;
                if let Err(e) = cancelled {
                    tracing::warn!(error = %e, pid, "could not cancel an abandoned search");
                }
                let _ = sqlx::Connection::close(conn).await;
            });
        }
    }
}
