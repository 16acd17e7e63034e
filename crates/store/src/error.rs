//! The store's error type.

/// What can go wrong in the store. Constraint violations are told apart so the service can
/// answer 409 or 422 instead of 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (a name already taken).
    #[error("{0} already exists")]
    Duplicate(String),
    /// A foreign key was violated (a reference to something missing or still referenced).
    #[error("reference violated: {0}")]
    Reference(String),
    /// The row was not found.
    #[error("not found")]
    NotFound,
    /// The row's version is not the one expected (someone changed it meanwhile).
    #[error("version conflict")]
    Conflict,
    /// A value in the database does not decode (corruption or a bug).
    #[error("corrupt value in {table}.{column}: {message}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        message: String,
    },
    /// An encrypted value does not decrypt: a wrong or missing data key, or a value altered
    /// or moved from another row or field. Never answered as NULL.
    #[error("cannot decrypt {table}.{column} of row {id}: {reason}")]
    Decrypt {
        table: &'static str,
        column: &'static str,
        id: i64,
        reason: &'static str,
    },
    /// The master key given is not the one that wrapped the database's data keys.
    #[error(
        "the master key given does not open this database (its fingerprint is {found}, the \
         database expects {expected}): give the key this database was created or last \
         rotated with"
    )]
    WrongMasterKey { found: String, expected: String },
    /// The master key could not be had.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// A key file could not be written, renamed or found.
    #[error("key file: {0}")]
    KeyFile(String),
    /// The database URL or data directory is unusable.
    #[error("cannot open the database: {0}")]
    Open(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = error {
            return StoreError::NotFound;
        }
        if let Some(db) = error.as_database_error() {
            let message = db.message().to_owned();
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => return StoreError::Duplicate(message),
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return StoreError::Reference(message)
                }
                _ => {}
            }
        }
        StoreError::Database(error)
    }
}
