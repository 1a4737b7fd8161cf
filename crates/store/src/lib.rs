//! Persistence behind one small interface; SQLite (bundled, WAL, `synchronous=FULL`) is the embedded default.
//!
//! The store keeps JSON documents by `(kind, name)`, hashes of opaque tokens, and the append-only audit chain.
//! It holds no business rules: which documents exist and what they mean is the API's business.
//!
//! Durability: every [`Store::write`] is one `BEGIN IMMEDIATE … COMMIT` transaction, and SQLite in WAL mode with
//! `synchronous=FULL` fsyncs the log before `COMMIT` returns, so a write the caller acknowledges survives `kill -9`.
//!
//! Concurrency: one connection writes; reads of a file-backed store go through a few read-only connections, which in
//! WAL mode see the last commit without waiting for a write (and its fsync) in progress.

#![forbid(unsafe_code)]

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored document `{kind}/{name}` is not valid JSON: {source}")]
    Corrupt { kind: String, name: String, source: serde_json::Error },
    #[error("could not encode document: {0}")]
    Encode(serde_json::Error),
    #[error("cannot make the database `{path}` private to its owner: {source}")]
    Permissions { path: String, source: std::io::Error },
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_by_principal ON tokens (principal, kind);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    entry TEXT NOT NULL,
    hash TEXT NOT NULL
);
"#;

/// A stored opaque token: only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub kind: String,
    pub principal: String,
    /// Unix seconds; `i64::MAX` for tokens that do not expire (refresh tokens until revoked).
    pub expires_at: i64,
}

/// One row of the audit chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub seq: i64,
    pub entry: String,
    pub hash: String,
}

pub struct Store {
    /// The one connection that writes (SQLite allows one writer at a time anyway).
    conn: Mutex<Connection>,
    /// Read-only connections: in WAL mode readers see the last commit and never wait for the writer's fsync.
    /// Empty for an in-memory store, which reads through `conn`.
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// `path` with `suffix` added to its file name (`state.db` → `state.db-wal`).
fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Read connections of a file-backed store: enough for the blocking pool's concurrent readers on a small machine.
const READERS: usize = 4;

impl Store {
    /// Opens (creating if needed) the database at `path`, readable by its owner only (SQLite gives the `-wal` and
    /// `-shm` files the database's mode).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let private = |e| StoreError::Permissions { path: path.display().to_string(), source: e };
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(private)?;
        // Also those of an older home, made before this rule (only where needed: a home of another owner, or on a
        // read-only disk, still opens as SQLite allows).
        for file in [path.to_path_buf(), sibling(path, "-wal"), sibling(path, "-shm")] {
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            if meta.permissions().mode() & 0o077 != 0 {
                if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                    tracing::warn!(file = %file.display(), error = %e, "cannot make the database private to its owner");
                }
            }
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Deleted content is overwritten with zeros instead of lingering in free pages (a destroyed secret version's
        // sealed data, a revoked token's hash).
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            r.busy_timeout(std::time::Duration::from_secs(10))?;
            readers.push(Mutex::new(r));
        }
        Ok(Store { conn: Mutex::new(conn), readers, next_reader: AtomicUsize::new(0) })
    }

    /// An in-memory store, for tests of the layers above.
    pub fn in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store { conn: Mutex::new(conn), readers: Vec::new(), next_reader: AtomicUsize::new(0) })
    }

    /// Runs `f` in a read transaction: a consistent view of the last commit, on a read connection, so it does not
    /// wait for a write in progress.
    pub fn read<T, E: From<StoreError>>(&self, f: impl FnOnce(&Tx) -> Result<T, E>) -> Result<T, E> {
        if self.readers.is_empty() {
            return self.run(TransactionBehavior::Deferred, f);
        }
        // A free reader if there is one, else wait for one in turn.
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        let conn = (0..n)
            .find_map(|i| match self.readers[(start + i) % n].try_lock() {
                Ok(c) => Some(c),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            })
            .unwrap_or_else(|| self.readers[start % n].lock().unwrap_or_else(|p| p.into_inner()));
        if !conn.is_autocommit() {
            // A reader whose user panicked mid-read still holds its snapshot: release it.
            conn.execute_batch("ROLLBACK").map_err(StoreError::from)?;
        }
        conn.prepare_cached("BEGIN").and_then(|mut s| s.execute([])).map_err(StoreError::from)?;
        let out = f(&Tx { conn: &conn });
        // Nothing was written: ending the transaction only releases the snapshot.
        let end = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        let out = out?;
        end.map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` in a write transaction. The changes are durable when this returns `Ok`; on `Err` nothing is written.
    pub fn write<T, E: From<StoreError>>(&self, f: impl FnOnce(&Tx) -> Result<T, E>) -> Result<T, E> {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// As [`Store::write`], but the commit is not flushed to the disk before this returns: it is in the WAL, in the
    /// operating system's hands, so it survives a crash (even `kill -9`) of this process, and the next durable
    /// [`Store::write`] or checkpoint flushes it. Only a crash of the whole machine can lose it. For records whose
    /// volume makes an fsync each too dear (Data Access audit entries); never for state.
    pub fn write_unflushed<T, E: From<StoreError>>(&self, f: impl FnOnce(&Tx) -> Result<T, E>) -> Result<T, E> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        // synchronous=NORMAL in WAL mode: commits are written to the WAL without an fsync.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(StoreError::from)?;
        let out = Self::transact(&mut conn, TransactionBehavior::Immediate, f);
        let restored = conn.pragma_update(None, "synchronous", "FULL").map_err(StoreError::from);
        let out = out?;
        restored?;
        Ok(out)
    }

    fn run<T, E: From<StoreError>>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        // A poisoned lock only means another thread panicked mid-call; SQLite rolled its transaction back.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Self::transact(&mut conn, behavior, f)
    }

    fn transact<T, E: From<StoreError>>(
        conn: &mut Connection,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = conn.transaction_with_behavior(behavior).map_err(StoreError::from)?;
        let out = f(&Tx { conn: &tx })?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// A transaction. Dropped without commit (an `Err` from the closure) it rolls back.
pub struct Tx<'a> {
    conn: &'a Connection,
}

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Result<Option<T>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM documents WHERE kind = ?1 AND name = ?2")?
            .query_row(params![kind, name], |r| r.get(0))
            .optional()?;
        body.map(|b| decode(kind, name, &b)).transpose()
    }

    pub fn put<T: Serialize>(&self, kind: &str, name: &str, doc: &T) -> Result<(), StoreError> {
        let body = serde_json::to_string(doc).map_err(StoreError::Encode)?;
        self.conn
            .prepare_cached(
                "INSERT INTO documents (kind, name, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![kind, name, body])?;
        Ok(())
    }

    /// Deletes a document; returns whether it existed.
    pub fn delete(&self, kind: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM documents WHERE kind = ?1 AND name = ?2")?
            .execute(params![kind, name])?
            > 0)
    }

    /// Every document of `kind` whose name starts with `prefix`, ordered by name.
    pub fn list<T: DeserializeOwned>(&self, kind: &str, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, body FROM documents WHERE kind = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
        )?;
        let rows = stmt.query_map(params![kind, prefix], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, body) = row?;
            let doc = decode(kind, &name, &body)?;
            out.push((name, doc));
        }
        Ok(out)
    }

    pub fn put_token(&self, hash: &str, row: &TokenRow) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT INTO tokens (hash, kind, principal, expires_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![hash, row.kind, row.principal, row.expires_at])?;
        Ok(())
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT kind, principal, expires_at FROM tokens WHERE hash = ?1")?
            .query_row(params![hash], |r| Ok(TokenRow { kind: r.get(0)?, principal: r.get(1)?, expires_at: r.get(2)? }))
            .optional()?)
    }

    pub fn delete_token(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(self.conn.prepare_cached("DELETE FROM tokens WHERE hash = ?1")?.execute(params![hash])? > 0)
    }

    /// Deletes every token held by `principal` (all kinds); returns how many.
    pub fn delete_tokens_of(&self, principal: &str) -> Result<usize, StoreError> {
        Ok(self.conn.prepare_cached("DELETE FROM tokens WHERE principal = ?1")?.execute(params![principal])?)
    }

    /// Drops tokens that expired before `now` (unix seconds).
    pub fn purge_expired_tokens(&self, now: i64) -> Result<usize, StoreError> {
        Ok(self.conn.prepare_cached("DELETE FROM tokens WHERE expires_at < ?1")?.execute(params![now])?)
    }

    /// Appends one entry to the audit chain, linking it to the previous entry's hash. Returns its sequence number.
    pub fn append_audit(&self, entry_json: &str) -> Result<i64, StoreError> {
        let prev: Option<String> = self
            .conn
            .prepare_cached("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let hash = audit::chain_hash(prev.as_deref().unwrap_or(audit::GENESIS), entry_json.as_bytes());
        self.conn
            .prepare_cached("INSERT INTO audit (entry, hash) VALUES (?1, ?2)")?
            .execute(params![entry_json, hash])?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Appends entries in order, each linked to the one before; the chain's last hash is read once.
    pub fn append_audit_all<'e>(&self, entries: impl IntoIterator<Item = &'e str>) -> Result<(), StoreError> {
        let mut prev: String = self
            .conn
            .prepare_cached("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or_else(|| audit::GENESIS.to_owned());
        let mut insert = self.conn.prepare_cached("INSERT INTO audit (entry, hash) VALUES (?1, ?2)")?;
        for entry in entries {
            let hash = audit::chain_hash(&prev, entry.as_bytes());
            insert.execute(params![entry, hash])?;
            prev = hash;
        }
        Ok(())
    }

    /// Visits the audit rows oldest first (or newest first), from just past `from` when given (a `seq`: later rows
    /// oldest first, earlier ones newest first), until `visit` returns `false`: one row in memory at a time, however
    /// long the log.
    pub fn scan_audit(
        &self,
        newest_first: bool,
        from: Option<i64>,
        mut visit: impl FnMut(AuditRow) -> bool,
    ) -> Result<(), StoreError> {
        let sql = if newest_first {
            "SELECT seq, entry, hash FROM audit WHERE seq < ?1 ORDER BY seq DESC"
        } else {
            "SELECT seq, entry, hash FROM audit WHERE seq > ?1 ORDER BY seq"
        };
        let from = from.unwrap_or(if newest_first { i64::MAX } else { 0 });
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query([from])?;
        while let Some(r) = rows.next()? {
            if !visit(AuditRow { seq: r.get(0)?, entry: r.get(1)?, hash: r.get(2)? }) {
                break;
            }
        }
        Ok(())
    }

    /// Audit rows with `seq > after`, oldest first, at most `limit`.
    pub fn audit_rows(&self, after: i64, limit: usize) -> Result<Vec<AuditRow>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT seq, entry, hash FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![after, limit], |r| Ok(AuditRow { seq: r.get(0)?, entry: r.get(1)?, hash: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn decode<T: DeserializeOwned>(kind: &str, name: &str, body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt { kind: kind.into(), name: name.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn the_database_and_its_journal_are_private_to_the_owner_even_in_an_older_home() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        {
            let store = Store::open(&path).unwrap();
            store.write(|tx| tx.put("policy", "projects/a", &json!({"etag": "x"}))).unwrap();
            for file in [path.clone(), sibling(&path, "-wal"), sibling(&path, "-shm")] {
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
        // A home from before: world-readable files are made private again at the next open.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = Store::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn documents_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = Store::open(&path).unwrap();
            store
                .write(|tx| {
                    tx.put("policy", "projects/a", &json!({"etag": "x"}))?;
                    tx.put("policy", "projects/b", &json!({"etag": "y"}))?;
                    tx.put("role", "projects/a", &json!(1))
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let docs: Vec<(String, Value)> = store.read(|tx| tx.list("policy", "projects/")).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].1["etag"], "y");
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let store = Store::in_memory().unwrap();
        let r: Result<(), StoreError> = store.write(|tx| {
            tx.put("k", "n", &json!(1))?;
            tx.append_audit("{}")?;
            Err(StoreError::Encode(serde_json::from_str::<Value>("{").unwrap_err()))
        });
        assert!(r.is_err());
        let (doc, rows) =
            store.read(|tx| Ok::<_, StoreError>((tx.get::<Value>("k", "n")?, tx.audit_rows(0, 10)?))).unwrap();
        assert_eq!(doc, None);
        assert!(rows.is_empty());
    }

    #[test]
    fn audit_rows_chain_and_verify() {
        let store = Store::in_memory().unwrap();
        store
            .write(|tx| {
                tx.append_audit(r#"{"insertId":"a"}"#)?;
                tx.append_audit(r#"{"insertId":"b"}"#)
            })
            .unwrap();
        let rows = store.read(|tx| tx.audit_rows(0, 10)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].hash, audit::chain_hash(&rows[0].hash, rows[1].entry.as_bytes()));
    }

    #[test]
    fn reads_see_every_acknowledged_write_and_never_an_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        for i in 0..20 {
            store.write(|tx| tx.put("k", &format!("n{i}"), &json!(i))).unwrap();
            // Every read connection sees the commit that just returned.
            for _ in 0..READERS {
                assert_eq!(store.read(|tx| tx.get::<Value>("k", &format!("n{i}"))).unwrap(), Some(json!(i)));
            }
        }
        // A write in progress is invisible to readers until it commits.
        let r: Result<(), StoreError> = store.write(|tx| {
            tx.put("k", "pending", &json!(1))?;
            assert_eq!(store.read(|r| r.get::<Value>("k", "pending"))?, None);
            Ok(())
        });
        r.unwrap();
        assert_eq!(store.read(|tx| tx.get::<Value>("k", "pending")).unwrap(), Some(json!(1)));
        // A reader whose closure failed is usable again.
        let failed: Result<(), StoreError> =
            store.read(|_| Err(StoreError::Encode(serde_json::from_str::<Value>("{").unwrap_err())));
        assert!(failed.is_err());
        assert_eq!(store.read(|tx| tx.list::<Value>("k", "")).unwrap().len(), 21);
    }

    #[test]
    fn tokens_are_found_by_hash_and_revocable() {
        let store = Store::in_memory().unwrap();
        let row = TokenRow { kind: "access".into(), principal: "user:a@example.com".into(), expires_at: 10 };
        store.write(|tx| tx.put_token("h1", &row)).unwrap();
        assert_eq!(store.read(|tx| tx.token("h1")).unwrap(), Some(row));
        assert_eq!(store.write(|tx| tx.purge_expired_tokens(11)).unwrap(), 1);
        assert_eq!(store.read(|tx| tx.token("h1")).unwrap(), None);
    }
}
