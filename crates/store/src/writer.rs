//! The single writer and its group commit.
//!
//! One thread owns the only write connection. Writes arrive as commands on a channel; the
//! thread blocks for one, drains whatever else is already queued (up to `max_batch`), and runs
//! them all in ONE transaction, each inside its own SAVEPOINT so a failing command undoes only
//! itself. Then it COMMITs once (one fsync for the whole group) and only then answers every
//! caller: nothing is acknowledged before it is durable. If the COMMIT fails, every command of
//! the group is told `Unavailable` (their work was rolled back together).
//!
//! Every command is taken to change the catalog unless queued with [`Writer::call_metering`];
//! after a group with any such command the catalog cache is emptied, before any caller hears
//! back (see [`crate::catalog_cache`]).

use crate::catalog_cache::CatalogCache;
use crate::rows::db_err;
use marketmeter_domain::store::{CommitObserverRef, StoreError, StoreResult};
use r2d2_sqlite::rusqlite::Connection;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Counters that let tests (and metrics) see the batching.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub commands: AtomicU64,
}

/// A unit of work for the writer, type-erased so one channel carries every kind of write.
trait Command: Send {
    /// Runs the work on the connection (inside this command's savepoint); true when it
    /// succeeded and its savepoint should be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Replaces the outcome with an error (savepoint or commit failure).
    fn fail(&mut self, e: StoreError);
    /// Sends the outcome to the waiting caller.
    fn reply(self: Box<Self>);
    /// Whether the work may change catalog rows (the cache is then emptied).
    fn touches_catalog(&self) -> bool;
}

struct Job<T, F> {
    work: Option<F>,
    catalog: bool,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Command for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A bug in one command must not take the writer (and every later write) down.
        let out = catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            tracing::error!("store write command panicked");
            Err(StoreError::Unavailable(
                "internal error in the store writer".into(),
            ))
        });
        let ok = out.is_ok();
        self.outcome = Some(out);
        ok
    }

    fn fail(&mut self, e: StoreError) {
        self.outcome = Some(Err(e));
    }

    fn reply(self: Box<Self>) {
        let out = self
            .outcome
            .unwrap_or_else(|| Err(StoreError::Unavailable("write was not run".into())));
        // The caller may have gone away (request cancelled); the write stands regardless.
        let _ = self.reply.send(out);
    }

    fn touches_catalog(&self) -> bool {
        self.catalog
    }
}

type Boxed = Box<dyn Command>;

pub(crate) struct Writer {
    tx: mpsc::Sender<Boxed>,
    thread: JoinHandle<()>,
}

impl Writer {
    pub fn spawn(
        conn: Connection,
        max_batch: usize,
        counters: Arc<Counters>,
        observer: Option<CommitObserverRef>,
        cache: Arc<CatalogCache>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Boxed>();
        let thread = std::thread::Builder::new()
            .name("marketmeter-sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1), &counters, observer, &cache))?;
        Ok(Self { tx, thread })
    }

    /// Queues `work` for the next group and waits until its group has committed. The work
    /// may change the catalog: the catalog cache is emptied before the answer.
    pub async fn call<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.queue(work, true).await
    }

    /// [`Writer::call`] for work that writes metering state only (usage records, client
    /// tokens, registration tokens, container sessions), never a catalog row.
    pub async fn call_metering<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.queue(work, false).await
    }

    async fn queue<T, F>(&self, work: F, catalog: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Boxed = Box::new(Job {
            work: Some(work),
            catalog,
            outcome: None,
            reply,
        });
        self.tx.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    pub fn is_alive(&self) -> bool {
        !self.thread.is_finished()
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store writer has stopped".into())
}

/// The writer loop: ends when every sender (the store) is gone.
fn run(
    conn: Connection,
    rx: mpsc::Receiver<Boxed>,
    max_batch: usize,
    counters: &Counters,
    observer: Option<CommitObserverRef>,
    cache: &CatalogCache,
) {
    let mut group: Vec<Boxed> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < max_batch {
            match rx.try_recv() {
                Ok(c) => group.push(c),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = run_group(&conn, &mut group);
        // Before anyone is answered; committed or not (a needless reload only costs time).
        if group.iter().any(|c| c.touches_catalog()) {
            cache.invalidate();
        }
        if let Some(o) = &observer {
            o.0.committed(group.len(), started.elapsed(), committed);
        }
        counters
            .commands
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        if committed {
            counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        for c in group.drain(..) {
            c.reply();
        }
    }
}

/// Runs one group in one transaction; returns whether it committed. On failure every command
/// already carries its error.
fn run_group(conn: &Connection, group: &mut [Boxed]) -> bool {
    // IMMEDIATE takes the write lock up front, so a busy database fails here (after
    // busy_timeout) instead of half-way through the group.
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        if !conn.is_autocommit() {
            // A transaction left open by an earlier failure: clear it so the next group can run.
            let _ = exec(conn, "ROLLBACK");
        }
        fail_all(group, &e);
        return false;
    }
    for i in 0..group.len() {
        let c = &mut group[i];
        // Only a failing command is undone (ROLLBACK TO), then the savepoint is released so
        // the next command nests at the same depth. A failing savepoint statement itself means
        // the transaction is in doubt: the group fails below.
        let control = exec(conn, "SAVEPOINT cmd").and_then(|()| {
            if c.run(conn) {
                exec(conn, "RELEASE cmd")
            } else {
                exec(conn, "ROLLBACK TO cmd").and_then(|()| exec(conn, "RELEASE cmd"))
            }
        });
        // Some errors (I/O, disk full) make SQLite roll the whole transaction back on its own.
        // The group's earlier work is then gone, whatever those commands returned, and a later
        // SAVEPOINT would silently open a new transaction: stop and fail the whole group.
        if control.is_err() || conn.is_autocommit() {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            tracing::error!(commands = group.len(), "group transaction was lost");
            fail_all(
                group,
                &StoreError::Unavailable("the transaction was rolled back; retry".into()),
            );
            return false;
        }
    }
    match exec(conn, "COMMIT") {
        Ok(()) => true,
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            tracing::error!(error = %e, commands = group.len(), "group commit failed");
            fail_all(group, &e);
            false
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(db_err)
}

fn fail_all(group: &mut [Boxed], e: &StoreError) {
    let msg = match e {
        StoreError::Unavailable(m) | StoreError::Invalid(m) => m.clone(),
    };
    for c in group.iter_mut() {
        c.fail(StoreError::Unavailable(msg.clone()));
    }
}
