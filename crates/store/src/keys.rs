//! The master key: where it comes from (`WARDEN_MASTER_KEY` or a 0600 key file), its
//! fingerprint, and the keys derived from it. Data keys are wrapped by it; backups are
//! encrypted under a key derived from it. It never leaves this process and is never logged.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The environment variable that holds the master key as 64 hexadecimal characters.
pub const MASTER_KEY_ENV: &str = "WARDEN_MASTER_KEY";

/// The key file's name inside a data directory, when no other path is given.
pub const KEY_FILE: &str = "master.key";

/// A 256-bit master key. Zeroed when dropped; its `Debug` shows the fingerprint only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

/// Where the master key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// From `WARDEN_MASTER_KEY`.
    Environment,
    /// Read from an existing key file.
    File(PathBuf),
    /// A new key, written to this file (mode 0600) because none existed.
    Created(PathBuf),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::Environment => write!(f, "the master key from {MASTER_KEY_ENV}"),
            KeyOrigin::File(path) => write!(f, "the master key in {}", path.display()),
            KeyOrigin::Created(path) => write!(
                f,
                "a new master key, written to {} (mode 0600): keep a copy apart from the data \
                 and its backups; without it neither can be read",
                path.display()
            ),
        }
    }
}

/// Why a master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{source_name} must be 64 hexadecimal characters (32 bytes)")]
    Malformed { source_name: String },
    #[error("cannot read or create the key file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("the key file {path} can be read by others (mode {mode:o}); make it 0600 (chmod 600)")]
    Permissions { path: PathBuf, mode: u32 },
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> MasterKey {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// Parses 64 hexadecimal characters (surrounding whitespace ignored). `source_name` says
    /// where they came from, for the error message (the value itself is never echoed).
    pub fn from_hex(text: &str, source_name: &str) -> Result<MasterKey, KeyError> {
        let malformed = || KeyError::Malformed {
            source_name: source_name.to_owned(),
        };
        let mut bytes = hex::decode(text.trim()).map_err(|_| malformed())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
        bytes.zeroize();
        Ok(MasterKey(key))
    }

    /// The key as 64 lowercase hexadecimal characters (for writing the key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw key, for wrapping data keys.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short public name of the key (16 hex characters): which key wrapped a data key or
    /// encrypted a backup, so that a wrong key is told apart from a corrupt file. Derived
    /// one-way; it reveals nothing of the key.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.derive("warden fingerprint v1")[..8])
    }

    /// A 256-bit key for one purpose, derived with HKDF-SHA256: keys for different purposes
    /// are independent, so a backup key tells nothing of the key that wraps data keys.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let hkdf = Hkdf::<Sha256>::new(Some(b"warden master key"), &self.0);
        let mut out = [0u8; 32];
        hkdf.expand(purpose.as_bytes(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The master key from `WARDEN_MASTER_KEY` when set, or else from `key_file`, created with
    /// a new random key (mode 0600) when it does not exist.
    pub fn load(key_file: &Path) -> Result<(MasterKey, KeyOrigin), KeyError> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(text) if !text.trim().is_empty() => Ok((
                MasterKey::from_hex(&text, MASTER_KEY_ENV)?,
                KeyOrigin::Environment,
            )),
            _ => MasterKey::load_file(key_file),
        }
    }

    /// The key in `path`, or a new one written there (mode 0600) when the file does not exist.
    pub fn load_file(path: &Path) -> Result<(MasterKey, KeyOrigin), KeyError> {
        let file_error = |e: std::io::Error| KeyError::File {
            path: path.to_owned(),
            message: e.to_string(),
        };
        match std::fs::read_to_string(path) {
            Ok(mut text) => {
                check_private(path)?;
                let key = MasterKey::from_hex(&text, &path.display().to_string());
                text.zeroize();
                Ok((key?, KeyOrigin::File(path.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate();
                write_key_file(path, &key).map_err(file_error)?;
                Ok((key, KeyOrigin::Created(path.to_owned())))
            }
            Err(e) => Err(file_error(e)),
        }
    }
}

/// Writes `key` to a new file at `path` with mode 0600, refusing to overwrite an existing one.
pub fn write_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut text = key.to_hex();
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    text.zeroize();
    written
}

/// Refuses a key file that others can read or write.
fn check_private(path: &Path) -> Result<(), KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| KeyError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_malformed_keys() {
        let key = MasterKey::generate();
        let again = MasterKey::from_hex(&key.to_hex(), "test").unwrap();
        assert_eq!(key.bytes(), again.bytes());
        for bad in [
            "",
            "abc",
            &"0".repeat(62),
            &"zz".repeat(32),
            &"0".repeat(66),
        ] {
            let err = MasterKey::from_hex(bad, "WARDEN_MASTER_KEY").unwrap_err();
            assert!(err.to_string().contains("64 hexadecimal"), "{err}");
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_key() {
        let a = MasterKey::from_hex(&"11".repeat(32), "a").unwrap();
        let b = MasterKey::from_hex(&"22".repeat(32), "b").unwrap();
        assert_ne!(a.derive("backup"), a.derive("wrap"));
        assert_ne!(a.derive("backup"), b.derive("backup"));
        assert_eq!(a.derive("backup"), a.derive("backup"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(!format!("{a:?}").contains(&a.to_hex()));
    }

    #[test]
    fn key_file_is_created_private_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(KEY_FILE);
        let (created, origin) = MasterKey::load_file(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (read, origin) = MasterKey::load_file(&path).unwrap();
        assert_eq!(origin, KeyOrigin::File(path.clone()));
        assert_eq!(created.bytes(), read.bytes());
        assert!(write_key_file(&path, &read).is_err(), "never overwritten");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        MasterKey::load_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_file(&path).unwrap_err();
        assert!(matches!(err, KeyError::Permissions { .. }), "{err}");
    }
}
