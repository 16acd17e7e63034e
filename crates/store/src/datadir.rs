//! The data directory's lock file: a serving process holds an exclusive lock on
//! `<data>/warden.lock` for as long as it runs, and a restore takes the same lock, so a
//! database is never replaced under a running server (nor served by two processes at once).
//! The lock is the operating system's (`flock` on Unix, `LockFileEx` on Windows): it dies
//! with its process, so a crash leaves no stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::backup::BackupError;

/// The lock file's name inside a data directory.
pub const LOCK_FILE: &str = "warden.lock";

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Takes the lock of `dir` (created if needed) without waiting; [`BackupError::InUse`]
    /// when another process holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, BackupError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackupError::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| BackupError::io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(BackupError::InUse(dir.to_owned())),
            Err(TryLockError::Error(e)) => Err(BackupError::io(
                format!("cannot lock {}", path.display()),
                e,
            )),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, BackupError::InUse(_)), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
