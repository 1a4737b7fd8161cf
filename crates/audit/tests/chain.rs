//! The hash chain: a clean chain verifies, and every kind of tampering is reported at the right row.

use std::time::{Duration, UNIX_EPOCH};

use audit::{
    canonical_bytes, chain_hash, new_insert_id, verify, ChainError, EntryBuilder, MismatchReason, PermissionType,
    StoredEntry, VerifyReport, GENESIS,
};

/// A row as the store keeps it.
#[derive(Clone, Debug)]
struct Row {
    seq: i64,
    json: Vec<u8>,
    hash: String,
}

fn insert_id(i: u64) -> String {
    new_insert_id(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i + 1))
}

/// Ten rows, seq 1..=10, hashed the way the store does at insert.
fn chain() -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for i in 0..10u64 {
        let entry = EntryBuilder::new(
            "p",
            "secretmanager.googleapis.com",
            "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion",
            format!("projects/p/secrets/s{i}/versions/1"),
            UNIX_EPOCH + Duration::from_secs(1_800_000_000 + i),
        )
        .principal("alice@example.com")
        .authorization(
            format!("projects/p/secrets/s{i}"),
            "secretmanager.versions.access",
            true,
            PermissionType::DataRead,
        )
        .build(insert_id(i));
        let json = canonical_bytes(&entry);
        let prev = rows.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
        let hash = chain_hash(&prev, &json);
        rows.push(Row { seq: i as i64 + 1, json, hash });
    }
    rows
}

fn check(rows: &[Row]) -> Result<VerifyReport, ChainError> {
    verify(rows.iter().map(|r| StoredEntry { seq: r.seq, entry_json: &r.json, hash: &r.hash }))
}

fn mismatch(seq: i64, entry_index: u64, reason: MismatchReason) -> ChainError {
    ChainError::Mismatch { seq, insert_id: insert_id(entry_index), reason }
}

#[test]
fn chain_hash_is_sha256_of_prev_newline_json() {
    // sha256("0"*64 + "\n" + "{}"), computed with Python's hashlib.
    let h = chain_hash(GENESIS, b"{}");
    assert_eq!(h, "5649d09ed68c17156095d175eef152856c5b1a81c117c409c1e00f096aa6838e");
    assert_ne!(h, chain_hash(GENESIS, b"{} "));
    assert_ne!(h, chain_hash(&h, b"{}"));
    assert!(h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(GENESIS.len(), 64);
    assert!(GENESIS.bytes().all(|b| b == b'0'));
}

#[test]
fn intact_chain_verifies() {
    let rows = chain();
    let report = check(&rows).unwrap();
    assert_eq!(report, VerifyReport { entries: 10, head: rows[9].hash.clone() });
    assert_eq!(check(&[]).unwrap(), VerifyReport { entries: 0, head: GENESIS.to_owned() });
    // Rows need not start at 1 as long as the first one links to GENESIS.
    let mut shifted = rows.clone();
    shifted.iter_mut().for_each(|r| r.seq += 100);
    assert_eq!(check(&shifted).unwrap().entries, 10);
}

#[test]
fn canonical_bytes_are_stable() {
    let rows = chain();
    let entry: audit::LogEntry = serde_json::from_slice(&rows[3].json).unwrap();
    assert_eq!(canonical_bytes(&entry), rows[3].json);
}

#[test]
fn edited_entry_json_is_caught_at_that_entry() {
    for k in 0..10 {
        let mut rows = chain();
        let text = String::from_utf8(rows[k].json.clone()).unwrap().replace("alice@example.com", "bob@example.com");
        rows[k].json = text.into_bytes();
        assert_eq!(check(&rows), Err(mismatch(k as i64 + 1, k as u64, MismatchReason::Altered)), "row {k}");
    }
}

#[test]
fn edited_hash_is_caught_at_that_entry() {
    for k in 0..10 {
        let mut rows = chain();
        rows[k].hash = chain_hash(GENESIS, b"forged");
        assert_eq!(check(&rows), Err(mismatch(k as i64 + 1, k as u64, MismatchReason::Altered)), "row {k}");
    }
}

#[test]
fn rehashing_an_edited_entry_breaks_the_next_link() {
    // The attacker edits row 5 and recomputes its hash: row 6 no longer links.
    let mut rows = chain();
    rows[4].json = String::from_utf8(rows[4].json.clone()).unwrap().replace("alice", "bob").into_bytes();
    rows[4].hash = chain_hash(&rows[3].hash, &rows[4].json);
    assert_eq!(check(&rows), Err(mismatch(6, 5, MismatchReason::Altered)));
}

#[test]
fn deleted_row_is_a_gap() {
    let mut rows = chain();
    rows.remove(4);
    assert_eq!(check(&rows), Err(ChainError::Gap { expected_seq: 5, found_seq: 6 }));
}

#[test]
fn deleted_row_with_renumbering_breaks_the_link() {
    let mut rows = chain();
    rows.remove(4);
    rows.iter_mut().skip(4).for_each(|r| r.seq -= 1);
    // Row 5 now holds the sixth entry, which was hashed over the (deleted) fifth.
    assert_eq!(check(&rows), Err(mismatch(5, 5, MismatchReason::Altered)));

    let mut rows = chain();
    rows.remove(0);
    rows.iter_mut().for_each(|r| r.seq -= 1);
    assert_eq!(check(&rows), Err(mismatch(1, 1, MismatchReason::Altered)));
}

#[test]
fn duplicated_entry_is_unlinked() {
    // Row 6 is replaced by a copy of row 3 (contents and hash): intact, but linked to row 2.
    let mut rows = chain();
    rows[5].json = rows[2].json.clone();
    rows[5].hash = rows[2].hash.clone();
    assert_eq!(check(&rows), Err(mismatch(6, 2, MismatchReason::Unlinked)));
}

#[test]
fn swapped_rows_are_unlinked() {
    // Contents and hashes of rows 4 and 5 swapped, seq numbers left in place.
    let mut rows = chain();
    let (a, b) = (rows[3].clone(), rows[4].clone());
    rows[3] = Row { seq: 4, ..b };
    rows[4] = Row { seq: 5, ..a };
    assert_eq!(check(&rows), Err(mismatch(4, 4, MismatchReason::Unlinked)));
}

#[test]
fn rows_out_of_seq_order_are_reported() {
    let mut rows = chain();
    rows.swap(3, 4);
    assert_eq!(check(&rows), Err(ChainError::Gap { expected_seq: 4, found_seq: 5 }));

    let mut rows = chain();
    let dup = rows[4].clone();
    rows.insert(5, dup);
    assert_eq!(check(&rows), Err(ChainError::OutOfOrder { expected_seq: 6, found_seq: 5 }));
}

#[test]
fn garbage_with_a_valid_hash_is_unparseable() {
    let mut rows = chain();
    rows[6].json = b"not json".to_vec();
    rows[6].hash = chain_hash(&rows[5].hash, &rows[6].json);
    rows.truncate(7);
    assert_eq!(check(&rows), Err(ChainError::Unparseable { seq: 7 }));
}

#[test]
fn unreadable_insert_id_is_a_question_mark() {
    let mut rows = chain();
    rows[2].json = b"{\"insertId\": 12".to_vec();
    assert_eq!(
        check(&rows),
        Err(ChainError::Mismatch { seq: 3, insert_id: "?".to_owned(), reason: MismatchReason::Altered })
    );
}

#[test]
fn messages_name_the_entry_and_the_cause() {
    let err = ChainError::Mismatch { seq: 17, insert_id: "j5g83weee2ya".to_owned(), reason: MismatchReason::Altered };
    assert_eq!(
        err.to_string(),
        "audit chain broken at entry 17 (insertId `j5g83weee2ya`): its hash does not match its contents — \
         it was altered after it was written, or the entry before it was removed"
    );
    let err = ChainError::Mismatch { seq: 4, insert_id: "abc".to_owned(), reason: MismatchReason::Unlinked };
    assert_eq!(
        err.to_string(),
        "audit chain broken at entry 4 (insertId `abc`): it does not link to the previous entry — \
         entries before it were removed or reordered"
    );
    assert_eq!(MismatchReason::Altered.to_string(), "entry hash does not match its contents");
    assert_eq!(MismatchReason::Unlinked.to_string(), "entry does not link to the previous entry");
    assert_eq!(
        ChainError::Gap { expected_seq: 5, found_seq: 8 }.to_string(),
        "audit chain broken at entry 8: entries 5 to 7 are missing — they were deleted"
    );
    assert_eq!(
        ChainError::OutOfOrder { expected_seq: 6, found_seq: 5 }.to_string(),
        "audit chain broken at entry 5: expected entry 6 next — entries were duplicated or reordered"
    );
}
