//! Envelope encryption of secret versions: AES-256-GCM with a fresh random data key per version, the data key
//! wrapped (AES-256-GCM again) by the platform's master key, and the version's full name as associated data on both,
//! so a ciphertext moved to another version, or a wrapped key moved to another ciphertext of a different version,
//! fails to open.
//!
//! Owns: the master key (its file, its id) and the [`Sealed`] form stored for each version.
//!
//! Must not: log, keep plaintext outside [`Zeroizing`] buffers, or put plaintext or key bytes into `Debug` output or
//! an error (a file that is not a key is reported by path and reason, never by content). The file functions are the
//! only I/O; sealing and opening are pure apart from the random generator.
//!
//! Why these defaults:
//! * **A data key per version.** A master key encrypts only 32-byte data keys, so it stays far below the
//!   AES-GCM limit of 2^32 random nonces per key however many versions exist, and rotating the master key later
//!   means rewrapping keys, not re-encrypting payloads.
//! * **Random 96-bit nonces** (drawn by aws-lc): each data key seals exactly one payload, so its nonce never repeats.
//! * **The master key id** (a SHA-256 fingerprint, not the key) is stored with each version, so opening with another
//!   key is reported as [`CryptoError::WrongKey`] naming both ids instead of as corruption.
//! * **The key file is never overwritten.** A lost or replaced master key makes every stored secret unreadable, so
//!   creation links a fully written 0600 temporary file into place and gives up if a key appeared meanwhile.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// AES-256 key length, for the master key and every data key.
const KEY_LEN: usize = 32;
/// AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Largest key file read, whitespace included; a key file is 45 bytes.
const MAX_KEY_FILE: usize = 1024;
/// The master key file's name under `$GATEHOUSE_HOME`.
const KEY_FILE_NAME: &str = "master.key";
/// Domain separation for the key id, so the id is not a hash of the bare key.
const ID_CONTEXT: &[u8] = b"gatehouse-master-key";

/// The platform's master key. `Debug` shows only its id.
pub struct MasterKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    /// INVARIANT: built from `bytes`; built once because building an AES key schedule costs as much as sealing a
    /// small payload.
    aead: RandomizedNonceKey,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A sealed secret version as stored: the master key's id, the wrapped data key and the ciphertext, both
/// `base64(nonce || ciphertext || tag)`. `Debug` shows the key id and lengths only.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sealed {
    pub key_id: String,
    pub wrapped_key: String,
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Why the master key could not be loaded or created. Messages name the path, never the file's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the master key `{}`: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot create the master key `{}`: {error}", path.display())]
    Create { path: PathBuf, error: io::Error },
    #[error(
        "`{}` is not a master key: {reason}; a key file holds the standard base64 of 32 random bytes",
        path.display()
    )]
    Format { path: PathBuf, reason: String },
    #[error(
        "`GATEHOUSE_MASTER_KEY_FILE` names `{}`, which does not exist; put the key file there, or unset the variable \
         to use `$GATEHOUSE_HOME/master.key`",
        path.display()
    )]
    EnvFileMissing { path: PathBuf },
    #[error("`GATEHOUSE_MASTER_KEY_FILE` is set but empty; set it to the path of a key file, or unset it")]
    EnvEmpty,
}

/// Why sealing or opening failed. Messages never include data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the secret was sealed with master key `{found}`, but the loaded master key is `{expected}`; start the \
         platform with the master key that sealed it (`GATEHOUSE_MASTER_KEY_FILE` or `$GATEHOUSE_HOME/master.key`)"
    )]
    WrongKey { expected: String, found: String },
    #[error("the sealed secret does not authenticate: it was altered, or it belongs to another secret version")]
    Corrupt,
    #[error("the system random number generator failed")]
    Random,
    #[error("aes-256-gcm encryption failed")]
    Seal,
}

impl MasterKey {
    /// The variable naming an existing key file to use instead of `$GATEHOUSE_HOME/master.key`.
    pub const ENV: &'static str = "GATEHOUSE_MASTER_KEY_FILE";

    /// `$GATEHOUSE_MASTER_KEY_FILE` when set (the file must exist; it is never created), else `home/master.key`,
    /// created on first use with 32 random bytes (standard base64 and a newline, mode 0600). An existing key file is
    /// never truncated or replaced. `home` must exist.
    pub fn load_or_create(home: &Path) -> Result<MasterKey, KeyError> {
        resolve(home, std::env::var_os(Self::ENV))
    }

    /// Reads a key file: the standard base64 of exactly 32 bytes, surrounding whitespace allowed.
    pub fn from_file(path: &Path) -> Result<MasterKey, KeyError> {
        let read_err = |error| KeyError::Read { path: path.to_owned(), error };
        let mut file = fs::File::open(path).map_err(read_err)?;
        // A fixed buffer, so no copy of the key is left behind by a growing Vec.
        let mut text = Zeroizing::new([0u8; MAX_KEY_FILE]);
        let mut len = 0;
        loop {
            if len == MAX_KEY_FILE {
                return Err(format_err(path, format!("it is larger than {MAX_KEY_FILE} bytes")));
            }
            match file.read(&mut text[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        let encoded = text[..len].trim_ascii();
        if encoded.is_empty() {
            return Err(format_err(path, "it is empty".into()));
        }
        let mut decoded = Zeroizing::new([0u8; MAX_KEY_FILE]);
        let n = STANDARD
            .decode_slice(encoded, &mut decoded[..])
            .map_err(|_| format_err(path, "it is not standard base64".into()))?;
        if n != KEY_LEN {
            return Err(format_err(path, format!("it decodes to {n} bytes")));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded[..KEY_LEN]);
        Ok(Self::from_bytes(bytes))
    }

    /// A new key of 32 bytes from the operating system's generator.
    pub fn generate() -> MasterKey {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
        Self::from_bytes(bytes)
    }

    /// Short stable fingerprint: hex of the first 8 bytes of SHA-256(`gatehouse-master-key` || key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext` under a fresh random data key, and the data key under the master key; `aad` (the
    /// version's full name) is authenticated by both.
    pub fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.try_fill_bytes(&mut data_key[..]).map_err(|_| CryptoError::Random)?;
        let data_aead = RandomizedNonceKey::new(&AES_256_GCM, &data_key[..]).map_err(|_| CryptoError::Seal)?;

        // INVARIANT: sealed in place at its final size, so the plaintext copy is never reallocated unzeroized.
        let mut body = Zeroizing::new(plaintext.to_vec());
        let (nonce, tag) = data_aead
            .seal_in_place_separate_tag(Aad::from(aad.as_bytes()), &mut body[..])
            .map_err(|_| CryptoError::Seal)?;
        let ciphertext = encode_parts(nonce.as_ref(), &body, tag.as_ref());

        let mut wrapped = Zeroizing::new([0u8; KEY_LEN]);
        wrapped.copy_from_slice(&data_key[..]);
        let (nonce, tag) = self
            .aead
            .seal_in_place_separate_tag(Aad::from(aad.as_bytes()), &mut wrapped[..])
            .map_err(|_| CryptoError::Seal)?;
        let wrapped_key = encode_parts(nonce.as_ref(), &wrapped[..], tag.as_ref());

        Ok(Sealed { key_id: self.id.clone(), wrapped_key, ciphertext })
    }

    /// Opens what [`MasterKey::seal`] sealed with the same `aad`. [`CryptoError::WrongKey`] when the key id differs;
    /// [`CryptoError::Corrupt`] when the associated data, the wrapped key or the ciphertext does not authenticate.
    pub fn open(&self, aad: &str, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.key_id != self.id {
            return Err(CryptoError::WrongKey { expected: self.id.clone(), found: sealed.key_id.clone() });
        }

        let mut wrapped = Zeroizing::new(STANDARD.decode(&sealed.wrapped_key).map_err(|_| CryptoError::Corrupt)?);
        if wrapped.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, key_and_tag) = wrapped.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Corrupt)?;
        let data_key =
            self.aead.open_in_place(nonce, Aad::from(aad.as_bytes()), key_and_tag).map_err(|_| CryptoError::Corrupt)?;
        let data_aead = RandomizedNonceKey::new(&AES_256_GCM, data_key).map_err(|_| CryptoError::Corrupt)?;

        let mut body = Zeroizing::new(STANDARD.decode(&sealed.ciphertext).map_err(|_| CryptoError::Corrupt)?);
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Corrupt);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&body[..NONCE_LEN]);
        // Moves the ciphertext to the front within the same allocation.
        body.drain(..NONCE_LEN);
        let len = data_aead
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut body[..])
            .map_err(|_| CryptoError::Corrupt)?
            .len();
        body.truncate(len);
        Ok(body)
    }

    fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> MasterKey {
        // INVARIANT: aws-lc rejects only keys of the wrong length, and this one is 32 bytes.
        let aead = RandomizedNonceKey::new(&AES_256_GCM, &bytes[..]).expect("a 32-byte key is an AES-256 key");
        let digest = Sha256::new().chain_update(ID_CONTEXT).chain_update(&bytes[..]).finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey { bytes, aead, id }
    }

    /// The key file's content: standard base64 and a newline.
    fn file_text(&self) -> Zeroizing<String> {
        // Sized up front so the String never reallocates (and frees an unzeroized copy).
        let mut text = Zeroizing::new(String::with_capacity(KEY_LEN.div_ceil(3) * 4 + 1));
        STANDARD.encode_string(&self.bytes[..], &mut text);
        text.push('\n');
        text
    }
}

/// `load_or_create` with the environment passed in, so tests need not set variables.
fn resolve(home: &Path, env_value: Option<OsString>) -> Result<MasterKey, KeyError> {
    match env_value {
        Some(value) if value.is_empty() => Err(KeyError::EnvEmpty),
        Some(value) => {
            let path = PathBuf::from(value);
            MasterKey::from_file(&path).map_err(|e| match e {
                KeyError::Read { path, error } if error.kind() == io::ErrorKind::NotFound => {
                    KeyError::EnvFileMissing { path }
                }
                other => other,
            })
        }
        None => load_or_create_at(&home.join(KEY_FILE_NAME)),
    }
}

/// Loads `path`, or creates it with a new key when it does not exist.
fn load_or_create_at(path: &Path) -> Result<MasterKey, KeyError> {
    match MasterKey::from_file(path) {
        Err(KeyError::Read { error, .. }) if error.kind() == io::ErrorKind::NotFound => {}
        loaded => return loaded,
    }
    let key = MasterKey::generate();
    let create_err = |error| KeyError::Create { path: path.to_owned(), error };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{KEY_FILE_NAME}.{}.{:016x}.tmp", std::process::id(), rand::random::<u64>()));
    let written = write_new_private(&tmp, key.file_text().as_bytes());
    if let Err(error) = written {
        let _ = fs::remove_file(&tmp);
        return Err(create_err(error));
    }
    // A hard link, unlike a rename, fails when the target exists: a key created by another process since the check
    // above is kept, never replaced.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return MasterKey::from_file(path),
        Err(link_error) => {
            // A filesystem without hard links: write the key in place, still refusing to replace an existing file.
            match write_new_private(path, key.file_text().as_bytes()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return MasterKey::from_file(path),
                Err(_) => return Err(create_err(link_error)),
            }
        }
    }
    // Durability of the new directory entry; a failure here leaves a complete key file, so it is not fatal.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(key)
}

/// Creates `path` (which must not exist) with mode 0600, writes `bytes` and syncs them to disk.
fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn format_err(path: &Path, reason: String) -> KeyError {
    KeyError::Format { path: path.to_owned(), reason }
}

/// `base64(nonce || ciphertext || tag)`.
fn encode_parts(nonce: &[u8; NONCE_LEN], ciphertext: &[u8], tag: &[u8]) -> String {
    let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len() + tag.len());
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(ciphertext);
    raw.extend_from_slice(tag);
    STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    const V1: &str = "projects/123/secrets/db-password/versions/1";
    const V2: &str = "projects/123/secrets/db-password/versions/2";

    #[test]
    fn master_key_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<MasterKey>();
    }

    #[test]
    fn round_trip() {
        let key = MasterKey::generate();
        let sealed = key.seal(V1, b"hunter2").unwrap();
        assert_eq!(sealed.key_id, key.id());
        assert_eq!(&key.open(V1, &sealed).unwrap()[..], b"hunter2");
        // Empty payloads are payloads too.
        let empty = key.seal(V1, b"").unwrap();
        assert!(key.open(V1, &empty).unwrap().is_empty());
    }

    #[test]
    fn each_seal_uses_a_fresh_data_key_and_nonce() {
        let key = MasterKey::generate();
        let a = key.seal(V1, b"same").unwrap();
        let b = key.seal(V1, b"same").unwrap();
        assert_ne!(a.wrapped_key, b.wrapped_key);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn another_version_name_does_not_open() {
        let key = MasterKey::generate();
        let sealed = key.seal(V1, b"hunter2").unwrap();
        assert_eq!(key.open(V2, &sealed), Err(CryptoError::Corrupt));
    }

    #[test]
    fn ciphertext_moved_to_another_version_does_not_open() {
        let key = MasterKey::generate();
        let one = key.seal(V1, b"first").unwrap();
        let two = key.seal(V2, b"second").unwrap();
        // The ciphertext of version 1 under version 2's wrapped key, opened as either version.
        let swapped = Sealed { ciphertext: one.ciphertext.clone(), ..two.clone() };
        assert_eq!(key.open(V2, &swapped), Err(CryptoError::Corrupt));
        assert_eq!(key.open(V1, &swapped), Err(CryptoError::Corrupt));
        // And the wrapped key of version 1 moved to version 2.
        let swapped = Sealed { wrapped_key: one.wrapped_key, ..two };
        assert_eq!(key.open(V2, &swapped), Err(CryptoError::Corrupt));
    }

    #[test]
    fn any_flipped_bit_does_not_open() {
        let key = MasterKey::generate();
        let sealed = key.seal(V1, b"hunter2").unwrap();
        for field in [0, 1] {
            let text = if field == 0 { &sealed.wrapped_key } else { &sealed.ciphertext };
            let raw = STANDARD.decode(text).unwrap();
            for i in 0..raw.len() {
                let mut bad = raw.clone();
                bad[i] ^= 0x01;
                let mut tampered = sealed.clone();
                *(if field == 0 { &mut tampered.wrapped_key } else { &mut tampered.ciphertext }) = STANDARD.encode(bad);
                assert_eq!(key.open(V1, &tampered), Err(CryptoError::Corrupt), "field {field}, byte {i}");
            }
        }
        let truncated = Sealed { ciphertext: STANDARD.encode([0u8; 27]), ..sealed.clone() };
        assert_eq!(key.open(V1, &truncated), Err(CryptoError::Corrupt));
        let not_base64 = Sealed { wrapped_key: "%%%".into(), ..sealed };
        assert_eq!(key.open(V1, &not_base64), Err(CryptoError::Corrupt));
    }

    #[test]
    fn another_master_key_is_named_not_called_corruption() {
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        let sealed = key.seal(V1, b"hunter2").unwrap();
        let err = other.open(V1, &sealed).unwrap_err();
        assert_eq!(err, CryptoError::WrongKey { expected: other.id().into(), found: key.id().into() });
        let msg = err.to_string();
        assert!(msg.contains(key.id()) && msg.contains(other.id()), "{msg}");
        // Same id but different bytes (a forged id) still fails to authenticate.
        let forged = Sealed { key_id: other.id().into(), ..sealed };
        assert_eq!(other.open(V1, &forged), Err(CryptoError::Corrupt));
    }

    #[test]
    fn id_is_a_stable_16_hex_digit_fingerprint() {
        let key = MasterKey::generate();
        assert_eq!(key.id().len(), 16);
        assert!(key.id().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let zero = MasterKey::from_bytes(Zeroizing::new([0u8; KEY_LEN]));
        let mut h = Sha256::new();
        h.update(b"gatehouse-master-key");
        h.update([0u8; 32]);
        let want: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(zero.id(), want);
    }

    #[test]
    fn debug_shows_ids_and_lengths_only() {
        let key = MasterKey::from_bytes(Zeroizing::new([0xAB; KEY_LEN]));
        let shown = format!("{key:?}");
        assert!(shown.contains(key.id()), "{shown}");
        assert!(!shown.to_lowercase().contains("abab") && !shown.contains("171"), "{shown}");
        let sealed = key.seal(V1, b"hunter2").unwrap();
        let shown = format!("{sealed:?}");
        assert!(!shown.contains(&sealed.ciphertext) && !shown.contains(&sealed.wrapped_key), "{shown}");
        assert!(shown.contains("ciphertext_len"), "{shown}");
    }

    #[test]
    fn sealed_serializes_in_camel_case() {
        let sealed = Sealed { key_id: "k".into(), wrapped_key: "w".into(), ciphertext: "c".into() };
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(json, r#"{"keyId":"k","wrappedKey":"w","ciphertext":"c"}"#);
        assert_eq!(serde_json::from_str::<Sealed>(&json).unwrap(), sealed);
    }

    #[test]
    fn first_start_creates_a_0600_key_and_later_starts_reload_it() {
        let home = tempfile::tempdir().unwrap();
        let created = resolve(home.path(), None).unwrap();
        let path = home.path().join("master.key");
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 45, "44 base64 characters and a newline");
        assert!(text.ends_with('\n'));
        assert_eq!(STANDARD.decode(text.trim_end()).unwrap().len(), 32);

        let reloaded = resolve(home.path(), None).unwrap();
        assert_eq!(reloaded.id(), created.id());
        assert_eq!(fs::read_to_string(&path).unwrap(), text, "an existing key is never rewritten");
        let sealed = created.seal(V1, b"x").unwrap();
        assert_eq!(&reloaded.open(V1, &sealed).unwrap()[..], b"x");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(home.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["master.key"]);
    }

    #[test]
    fn an_unreadable_key_is_an_error_not_a_new_key() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("master.key");
        fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(resolve(home.path(), None), Err(KeyError::Format { .. })));
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a key\n");
    }

    #[test]
    fn from_file_accepts_surrounding_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, format!("  \n{}\r\n\n", STANDARD.encode([7u8; 32]))).unwrap();
        let key = MasterKey::from_file(&path).unwrap();
        assert_eq!(key.id(), MasterKey::from_bytes(Zeroizing::new([7u8; 32])).id());
    }

    #[test]
    fn from_file_rejects_wrong_lengths_and_never_echoes_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let cases: [(String, &str); 5] = [
            (STANDARD.encode([1u8; 16]), "decodes to 16 bytes"),
            (STANDARD.encode([1u8; 33]), "decodes to 33 bytes"),
            ("c3VwZXJzZWNyZXRwYXNzd29yZA==!!".into(), "not standard base64"),
            ("   \n".into(), "empty"),
            ("A".repeat(2000), "larger than 1024 bytes"),
        ];
        for (content, reason) in cases {
            fs::write(&path, &content).unwrap();
            let msg = MasterKey::from_file(&path).unwrap_err().to_string();
            assert!(msg.contains(reason), "{msg}");
            assert!(msg.contains(&path.display().to_string()), "{msg}");
            assert!(content.trim().is_empty() || !msg.contains(content.trim()), "{msg}");
            assert!(!msg.contains("c3VwZXJz") && !msg.contains("AQEB"), "{msg}");
        }
    }

    #[test]
    fn env_var_names_a_file_that_must_exist() {
        let home = tempfile::tempdir().unwrap();
        let missing = home.path().join("elsewhere.key");
        let err = resolve(home.path(), Some(missing.clone().into_os_string())).unwrap_err();
        assert!(matches!(&err, KeyError::EnvFileMissing { path } if *path == missing), "{err}");
        assert!(err.to_string().contains("GATEHOUSE_MASTER_KEY_FILE"), "{err}");
        assert!(!missing.exists() && !home.path().join("master.key").exists(), "nothing is created");

        assert!(matches!(resolve(home.path(), Some(OsString::new())), Err(KeyError::EnvEmpty)));

        let key = MasterKey::generate();
        fs::write(&missing, key.file_text().as_bytes()).unwrap();
        assert_eq!(resolve(home.path(), Some(missing.into_os_string())).unwrap().id(), key.id());
        assert!(!home.path().join("master.key").exists());
    }

    #[test]
    fn a_missing_home_is_reported_with_its_path() {
        let home = tempfile::tempdir().unwrap();
        let gone = home.path().join("no-such-dir");
        let err = resolve(&gone, None).unwrap_err();
        assert!(matches!(err, KeyError::Create { .. }), "{err}");
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn open_inverts_seal(data in proptest::collection::vec(any::<u8>(), 0..=65_536), aad in "[a-z0-9/]{0,60}") {
            let key = MasterKey::from_bytes(Zeroizing::new([3u8; KEY_LEN]));
            let sealed = key.seal(&aad, &data).unwrap();
            prop_assert_eq!(&key.open(&aad, &sealed).unwrap()[..], &data[..]);
        }
    }
}
