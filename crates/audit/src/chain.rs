//! The tamper-evident hash chain over stored audit entries.
//!
//! The `store` crate keeps rows `(seq INTEGER, entry_json TEXT, hash TEXT)`. At insert it computes
//! `hash = chain_hash(previous row's hash, or GENESIS for the first row, entry_json)`, where `entry_json` is
//! [`canonical_bytes`] of the entry, and never updates or deletes a row. [`verify`] walks the rows in `seq` order and
//! reports the first one that breaks the chain, which catches an edited `entry_json`, an edited `hash`, a row deleted
//! from the middle (a gap in `seq`, or a link mismatch if the rows were renumbered) and reordered rows.
//!
//! What the chain cannot catch on its own: removal of the newest rows (truncation) or a rewrite of the whole chain
//! from some point on. Keep the head hash of [`VerifyReport`] somewhere the attacker cannot write to (print it, ship it)
//! and compare.

use std::collections::VecDeque;
use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::entry::LogEntry;

/// The `prev_hash` of the first row: 64 hex zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How many recent hashes [`verify`] remembers to tell "rows were removed or reordered" from "a row was altered".
const LINK_WINDOW: usize = 1024;

/// The bytes that are stored and hashed: the entry serialized with `serde_json`, compact, fields in declaration order.
pub fn canonical_bytes(entry: &LogEntry) -> Vec<u8> {
    // INVARIANT: a LogEntry only holds strings, integers, booleans, string-keyed maps and `serde_json::Value`s (which
    // cannot hold non-finite numbers), so serialization cannot fail.
    serde_json::to_vec(entry).expect("a LogEntry always serializes")
}

/// `hex(sha256(prev_hash_hex || 0x0a || entry_json))`, lowercase.
pub fn chain_hash(prev_hash_hex: &str, entry_json: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash_hex.as_bytes());
    hasher.update(b"\n");
    hasher.update(entry_json);
    hex::encode(hasher.finalize())
}

/// One stored row, borrowed from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredEntry<'a> {
    pub seq: i64,
    pub entry_json: &'a [u8],
    pub hash: &'a str,
}

/// The outcome of a successful [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many rows were checked.
    pub entries: u64,
    /// The hash of the last row ([`GENESIS`] for an empty chain). Record it elsewhere to detect truncation later.
    pub head: String,
}

/// Why a row's hash check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MismatchReason {
    /// The stored hash is not the hash of the stored contents over the previous row's hash, and the contents do not
    /// hash to it over any nearby row either: the row (its JSON or its hash) was altered, or the row before it was
    /// removed and the rest renumbered (the two look the same to a hash chain).
    Altered,
    /// The row is intact but was hashed over a different predecessor than the row before it now: rows were removed or
    /// reordered.
    Unlinked,
}

impl MismatchReason {
    fn explanation(self) -> &'static str {
        match self {
            MismatchReason::Altered => {
                "its hash does not match its contents — it was altered after it was written, \
                 or the entry before it was removed"
            }
            MismatchReason::Unlinked => {
                "it does not link to the previous entry — entries before it were removed or reordered"
            }
        }
    }
}

impl fmt::Display for MismatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MismatchReason::Altered => "entry hash does not match its contents",
            MismatchReason::Unlinked => "entry does not link to the previous entry",
        })
    }
}

/// The first break found by [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    /// A row's hash does not follow from its contents and the previous row's hash.
    #[error("audit chain broken at entry {seq} (insertId `{insert_id}`): {}", reason.explanation())]
    Mismatch {
        seq: i64,
        /// Read from the row's JSON if possible, else `?`.
        insert_id: String,
        reason: MismatchReason,
    },
    /// Rows are missing: `seq` jumped forward.
    #[error(
        "audit chain broken at entry {found_seq}: entries {expected_seq} to {} are missing — they were deleted",
        found_seq - 1
    )]
    Gap { expected_seq: i64, found_seq: i64 },
    /// `seq` went backwards or repeated: rows were duplicated or reordered.
    #[error("audit chain broken at entry {found_seq}: expected entry {expected_seq} next — entries were duplicated or reordered")]
    OutOfOrder { expected_seq: i64, found_seq: i64 },
    /// The row's hash is right but its JSON is not a log entry: the writer stored something it should not have.
    #[error("audit entry {seq} is intact but is not a JSON log entry")]
    Unparseable { seq: i64 },
}

/// Walks rows in the order given (the store must yield them by ascending `seq`) and checks that the first one links
/// to [`GENESIS`], that every row's hash is `chain_hash(previous hash, entry_json)`, and that `seq` increases by one.
/// Stops at the first break. Memory use is bounded; rows are not kept.
pub fn verify<'a>(entries: impl IntoIterator<Item = StoredEntry<'a>>) -> Result<VerifyReport, ChainError> {
    let mut rows = entries.into_iter().peekable();
    let mut prev_hash = GENESIS.to_owned();
    let mut expected_seq: Option<i64> = None;
    let mut count: u64 = 0;
    // Recent hashes (GENESIS included), to recognise a row that links to some other row than its predecessor.
    let mut recent: VecDeque<String> = VecDeque::from([GENESIS.to_owned()]);

    while let Some(row) = rows.next() {
        if let Some(expected) = expected_seq {
            if row.seq > expected {
                return Err(ChainError::Gap { expected_seq: expected, found_seq: row.seq });
            }
            if row.seq < expected {
                return Err(ChainError::OutOfOrder { expected_seq: expected, found_seq: row.seq });
            }
        }
        if chain_hash(&prev_hash, row.entry_json) != row.hash {
            let links_elsewhere = recent.iter().any(|h| chain_hash(h, row.entry_json) == row.hash)
                || rows.peek().is_some_and(|next| chain_hash(next.hash, row.entry_json) == row.hash);
            let reason = if links_elsewhere { MismatchReason::Unlinked } else { MismatchReason::Altered };
            return Err(ChainError::Mismatch { seq: row.seq, insert_id: insert_id_of(row.entry_json), reason });
        }
        if !is_log_entry(row.entry_json) {
            return Err(ChainError::Unparseable { seq: row.seq });
        }
        prev_hash = row.hash.to_owned();
        if recent.len() == LINK_WINDOW {
            recent.pop_front();
        }
        recent.push_back(prev_hash.clone());
        expected_seq = Some(row.seq.saturating_add(1));
        count += 1;
    }
    Ok(VerifyReport { entries: count, head: prev_hash })
}

fn is_log_entry(json: &[u8]) -> bool {
    matches!(serde_json::from_slice::<serde_json::Value>(json), Ok(serde_json::Value::Object(m)) if m.get("insertId").is_some_and(|v| v.is_string()))
}

fn insert_id_of(json: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Partial {
        #[serde(rename = "insertId")]
        insert_id: String,
    }
    serde_json::from_slice::<Partial>(json).map(|p| p.insert_id).unwrap_or_else(|_| "?".to_owned())
}
