//! The payload rules of `AddSecretVersion`: at most 64 KiB, and a client-sent CRC32C (`dataCrc32c`) must match.
//!
//! Owns: the size limit and the checksum. Must not: parse JSON (the API turns the int64 decimal string into a number
//! first), or put payload bytes or their checksum into an error — the CRC32C of a short secret narrows it down.

/// Largest secret payload, in bytes (Secret Manager's 64 KiB).
pub const MAX_PAYLOAD: usize = 65_536;

/// Why a payload was refused. Messages never include payload bytes or checksums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("secret payload is {len} bytes; the limit is 65536")]
    TooLarge { len: usize },
    #[error(
        "checksum mismatch: the `dataCrc32c` sent does not match the payload's CRC32C; compute CRC32C (Castagnoli) \
         over exactly the bytes sent in `data`, or leave `dataCrc32c` out"
    )]
    Checksum,
}

/// CRC32C (Castagnoli), the checksum Secret Manager stores as `dataCrc32c`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Checks the size and, when `claimed` is given, that it equals [`crc32c()`] of `data`. A claimed value outside
/// `0..=u32::MAX` can never match and is a mismatch. Returns the checksum (claimed or computed).
pub fn check_payload(data: &[u8], claimed: Option<i64>) -> Result<u32, PayloadError> {
    if data.len() > MAX_PAYLOAD {
        return Err(PayloadError::TooLarge { len: data.len() });
    }
    let actual = crc32c(data);
    match claimed {
        None => Ok(actual),
        Some(c) if u32::try_from(c) == Ok(actual) => Ok(actual),
        Some(_) => Err(PayloadError::Checksum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_vectors() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn size_limit() {
        assert_eq!(check_payload(&vec![0u8; MAX_PAYLOAD], None), Ok(crc32c(&vec![0u8; MAX_PAYLOAD])));
        let err = check_payload(&vec![0u8; MAX_PAYLOAD + 1], None).unwrap_err();
        assert_eq!(err, PayloadError::TooLarge { len: 65_537 });
        assert_eq!(err.to_string(), "secret payload is 65537 bytes; the limit is 65536");
        // The size is checked before the checksum.
        assert_eq!(check_payload(&vec![0u8; MAX_PAYLOAD + 1], Some(0)), Err(PayloadError::TooLarge { len: 65_537 }));
    }

    #[test]
    fn claimed_checksum() {
        let good = i64::from(0xE306_9283_u32);
        assert_eq!(check_payload(b"123456789", Some(good)), Ok(0xE306_9283));
        assert_eq!(check_payload(b"123456789", None), Ok(0xE306_9283));
        for bad in [good - 1, good + (1 << 32), -1, i64::MIN, i64::MAX, -(1 << 32) + good] {
            assert_eq!(check_payload(b"123456789", Some(bad)), Err(PayloadError::Checksum), "{bad}");
        }
        let msg = PayloadError::Checksum.to_string();
        assert!(msg.contains("`dataCrc32c`") && !msg.contains("3809") && !msg.contains("e306"), "{msg}");
    }
}
