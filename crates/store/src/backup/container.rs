//! The backup container: a fixed header, the payload deflated then sealed with AES-256-GCM in
//! STREAM chunks (the header as associated data of every chunk), and a SHA-256 of every byte
//! before it. The layout is described in the parent module's documentation.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use aead::stream::{DecryptorBE32, EncryptorBE32};
use aead::Payload;
use aes_gcm::{Aes256Gcm, KeyInit};
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;
use sha2::{Digest, Sha256};

use super::BackupError;

/// The first eight bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"WARDENBK";
/// The only format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The header's length in bytes.
pub const HEADER_LEN: usize = 95;
/// The trailer: the SHA-256 of every byte before it.
pub const TRAILER_LEN: usize = 32;
/// Plaintext bytes (of the deflated stream) per sealed chunk.
const CHUNK_SIZE: u32 = 64 * 1024;
/// AES-GCM's tag.
const TAG_LEN: u32 = 16;
/// The bit of a chunk's length word that marks the last chunk.
const LAST_CHUNK: u32 = 1 << 31;
/// The compression code of deflate (the only one).
const DEFLATE: u8 = 1;

/// What a backup file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// A SQLite database image (`VACUUM INTO`), restorable with `warden restore --data`.
    SqliteImage,
    /// A logical export of a PostgreSQL database: one JSON object per row.
    PostgresExport,
}

impl BackupKind {
    fn code(self) -> u8 {
        match self {
            BackupKind::SqliteImage => 1,
            BackupKind::PostgresExport => 2,
        }
    }

    fn from_code(code: u8) -> Option<BackupKind> {
        match code {
            1 => Some(BackupKind::SqliteImage),
            2 => Some(BackupKind::PostgresExport),
            _ => None,
        }
    }
}

impl std::fmt::Display for BackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupKind::SqliteImage => "SQLite database",
            BackupKind::PostgresExport => "PostgreSQL export",
        })
    }
}

/// The fixed header of a backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: BackupKind,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The fingerprint of the master key the backup key was derived from (16 hex characters).
    pub key_fingerprint: String,
    /// The latest migration applied to the database that was backed up.
    pub schema_version: i64,
    /// The size of the payload before compression (the database image or the export).
    pub plaintext_size: u64,
    /// The SHA-256 of the payload before compression.
    pub plaintext_sha256: [u8; 32],
    /// The random nonce prefix of the STREAM construction (7 bytes for AES-GCM's 12).
    pub nonce_prefix: [u8; 7],
}

impl Header {
    /// The header's bytes, as written and as bound into every chunk.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w: &mut [u8] = &mut out;
        let mut fingerprint = [b'0'; 16];
        for (slot, byte) in fingerprint.iter_mut().zip(self.key_fingerprint.bytes()) {
            *slot = byte;
        }
        // Writing into a slice of exactly HEADER_LEN bytes cannot fail: the sizes add up.
        let written = (|| -> io::Result<()> {
            w.write_all(MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_be_bytes())?;
            w.write_all(&[self.kind.code(), DEFLATE])?;
            w.write_all(&self.created_at_ms.to_be_bytes())?;
            w.write_all(&fingerprint)?;
            w.write_all(&self.schema_version.to_be_bytes())?;
            w.write_all(&self.plaintext_size.to_be_bytes())?;
            w.write_all(&self.plaintext_sha256)?;
            w.write_all(&self.nonce_prefix)?;
            w.write_all(&CHUNK_SIZE.to_be_bytes())?;
            Ok(())
        })();
        debug_assert!(written.is_ok() && w.is_empty(), "the header layout adds up");
        out
    }

    /// Reads a header: a wrong magic is "not a backup", another version is named, anything
    /// else malformed is corruption.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, BackupError> {
        let mut r: &[u8] = bytes;
        let mut magic = [0u8; 8];
        let mut u16b = [0u8; 2];
        let mut codes = [0u8; 2];
        let mut i64b = [0u8; 8];
        let mut fingerprint = [0u8; 16];
        let mut schema = [0u8; 8];
        let mut size = [0u8; 8];
        let mut sha = [0u8; 32];
        let mut nonce_prefix = [0u8; 7];
        let mut chunk = [0u8; 4];
        for field in [
            &mut magic[..],
            &mut u16b,
            &mut codes,
            &mut i64b,
            &mut fingerprint,
            &mut schema,
            &mut size,
            &mut sha,
            &mut nonce_prefix,
            &mut chunk,
        ] {
            r.read_exact(field)
                .map_err(|_| BackupError::Corrupt("the header is short".into()))?;
        }
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let version = u16::from_be_bytes(u16b);
        if version != FORMAT_VERSION {
            return Err(BackupError::UnsupportedVersion(version));
        }
        let [kind, compression] = codes;
        let kind = BackupKind::from_code(kind)
            .ok_or_else(|| BackupError::Corrupt(format!("unknown content kind {kind}")))?;
        if compression != DEFLATE {
            return Err(BackupError::Corrupt(format!(
                "unknown compression {compression}"
            )));
        }
        if u32::from_be_bytes(chunk) != CHUNK_SIZE {
            return Err(BackupError::Corrupt("unexpected chunk size".into()));
        }
        if !fingerprint.iter().all(u8::is_ascii_hexdigit) {
            return Err(BackupError::Corrupt(
                "the key fingerprint is not hexadecimal".into(),
            ));
        }
        Ok(Header {
            kind,
            created_at_ms: i64::from_be_bytes(i64b),
            key_fingerprint: String::from_utf8_lossy(&fingerprint).into_owned(),
            schema_version: i64::from_be_bytes(schema),
            plaintext_size: u64::from_be_bytes(size),
            plaintext_sha256: sha,
            nonce_prefix,
        })
    }
}

fn corrupt(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// A writer that hashes everything it passes on.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(written) = buf.get(..n) {
            self.hasher.update(written);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that seals what it is given into STREAM chunks.
struct Sealer<W: Write> {
    out: W,
    encryptor: EncryptorBE32<Aes256Gcm>,
    aad: [u8; HEADER_LEN],
    buffer: Vec<u8>,
}

impl<W: Write> Sealer<W> {
    fn write_chunk(out: &mut W, sealed: &[u8], last: bool) -> io::Result<()> {
        let len = u32::try_from(sealed.len()).map_err(|_| io::Error::other("chunk too large"))?;
        out.write_all(&(len | if last { LAST_CHUNK } else { 0 }).to_be_bytes())?;
        out.write_all(sealed)
    }

    /// Seals the rest as the last chunk (possibly empty) and returns the writer.
    fn finish(mut self) -> io::Result<W> {
        let sealed = self
            .encryptor
            .encrypt_last(Payload {
                msg: &self.buffer,
                aad: &self.aad,
            })
            .map_err(|_| io::Error::other("encryption failed"))?;
        Self::write_chunk(&mut self.out, &sealed, true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        // Only chunks followed by more data are sealed here: the last one (1..=CHUNK_SIZE
        // bytes, or empty for an empty payload) is sealed by `finish` with the last flag.
        while self.buffer.len() > CHUNK_SIZE as usize {
            let rest = self.buffer.split_off(CHUNK_SIZE as usize);
            let chunk = std::mem::replace(&mut self.buffer, rest);
            let sealed = self
                .encryptor
                .encrypt_next(Payload {
                    msg: &chunk,
                    aad: &self.aad,
                })
                .map_err(|_| io::Error::other("encryption failed"))?;
            Self::write_chunk(&mut self.out, &sealed, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes a whole backup file to `out`: the header, `plain` deflated and sealed under `key`,
/// and the trailer.
pub fn seal(
    plain: &mut impl Read,
    header: &Header,
    key: &[u8; 32],
    out: impl Write,
) -> io::Result<()> {
    let header_bytes = header.encode();
    let mut hashing = Hashing::new(BufWriter::new(out));
    hashing.write_all(&header_bytes)?;
    let cipher = Aes256Gcm::new(key.into());
    let sealer = Sealer {
        out: hashing,
        encryptor: EncryptorBE32::from_aead(cipher, (&header.nonce_prefix).into()),
        aad: header_bytes,
        buffer: Vec::with_capacity(CHUNK_SIZE as usize * 2),
    };
    let mut deflate = DeflateEncoder::new(sealer, flate2::Compression::default());
    io::copy(plain, &mut deflate)?;
    let hashing = deflate.finish()?.finish()?;
    let digest = hashing.hasher.finalize();
    let mut out = hashing.inner;
    out.write_all(&digest)?;
    out.flush()
}

/// A reader that opens STREAM chunks and hands out their plaintext.
struct Opener<R: Read> {
    input: R,
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    aad: [u8; HEADER_LEN],
    plain: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Opener<R> {
    fn next_chunk(&mut self) -> io::Result<()> {
        let mut word = [0u8; 4];
        self.input
            .read_exact(&mut word)
            .map_err(|_| corrupt("the file is truncated: its last chunk is missing"))?;
        let word = u32::from_be_bytes(word);
        let last = word & LAST_CHUNK != 0;
        let len = word & !LAST_CHUNK;
        if !(TAG_LEN..=CHUNK_SIZE + TAG_LEN).contains(&len) {
            return Err(corrupt("a chunk has an impossible length"));
        }
        let mut sealed = vec![0u8; len as usize];
        self.input
            .read_exact(&mut sealed)
            .map_err(|_| corrupt("the file is truncated inside a chunk"))?;
        let payload = Payload {
            msg: &sealed,
            aad: &self.aad,
        };
        let failed = || corrupt("a chunk fails authentication: the file was altered");
        self.plain = if last {
            let decryptor = self.decryptor.take().ok_or_else(failed)?;
            self.done = true;
            decryptor.decrypt_last(payload).map_err(|_| failed())?
        } else {
            self.decryptor
                .as_mut()
                .ok_or_else(failed)?
                .decrypt_next(payload)
                .map_err(|_| failed())?
        };
        self.at = 0;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let rest = self.plain.get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(to), Some(from)) = (buf.get_mut(..n), rest.get(..n)) {
            to.copy_from_slice(from);
        }
        self.at += n;
        Ok(n)
    }
}

/// A backup file whose header was read and whose trailer checksum matched.
pub struct Checked {
    pub header: Header,
    header_bytes: [u8; HEADER_LEN],
    /// The length of the sealed chunks between header and trailer.
    body_len: u64,
    pub file_len: u64,
}

/// Reads the header and checks the trailer's SHA-256 over the whole file: finds damage and
/// truncation without the key.
pub fn check(path: &Path) -> Result<Checked, BackupError> {
    let io_error = |e: io::Error| BackupError::io(format!("cannot read {}", path.display()), e);
    let mut file = File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut reader = BufReader::new(&mut file);
    if let Err(e) = reader.read_exact(&mut header_bytes) {
        if e.kind() != io::ErrorKind::UnexpectedEof {
            return Err(io_error(e));
        }
        let n = usize::try_from(file_len).unwrap_or(HEADER_LEN).min(8);
        return Err(
            if header_bytes.get(..n) == MAGIC.get(..n) && file_len >= 8 {
                BackupError::Corrupt("the file is truncated inside its header".into())
            } else {
                BackupError::NotABackup
            },
        );
    }
    let header = Header::decode(&header_bytes)?;
    let body_len = file_len
        .checked_sub((HEADER_LEN + TRAILER_LEN) as u64)
        .ok_or_else(|| BackupError::Corrupt("the file is truncated after its header".into()))?;
    let mut hasher = Sha256::new();
    hasher.update(header_bytes);
    let mut body = (&mut reader).take(body_len);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(buffer.get(..n).unwrap_or_default());
    }
    let mut trailer = [0u8; TRAILER_LEN];
    reader.read_exact(&mut trailer).map_err(io_error)?;
    if hasher.finalize().as_slice() != trailer {
        return Err(BackupError::Corrupt(
            "the file's checksum does not match: it was damaged or truncated".into(),
        ));
    }
    Ok(Checked {
        header,
        header_bytes,
        body_len,
        file_len,
    })
}

/// Decrypts and inflates the payload of a checked file into `out`, and checks its size and
/// SHA-256 against the header.
pub fn open(
    path: &Path,
    checked: &Checked,
    key: &[u8; 32],
    out: impl Write,
) -> Result<(), BackupError> {
    let io_error = |e: io::Error| BackupError::io(format!("cannot read {}", path.display()), e);
    let mut file = File::open(path).map_err(io_error)?;
    file.seek(SeekFrom::Start(HEADER_LEN as u64))
        .map_err(io_error)?;
    let cipher = Aes256Gcm::new(key.into());
    let opener = Opener {
        input: BufReader::new(file).take(checked.body_len),
        decryptor: Some(DecryptorBE32::from_aead(
            cipher,
            (&checked.header.nonce_prefix).into(),
        )),
        aad: checked.header_bytes,
        plain: Vec::new(),
        at: 0,
        done: false,
    };
    let mut inflate = DeflateDecoder::new(opener);
    let mut sink = Hashing::new(BufWriter::new(out));
    io::copy(&mut inflate, &mut sink).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => BackupError::Corrupt(e.to_string()),
        _ => BackupError::io("cannot write the decrypted contents".into(), e),
    })?;
    sink.flush()
        .map_err(|e| BackupError::io("cannot write the decrypted contents".into(), e))?;
    let mut opener = inflate.into_inner();
    // The deflate stream ended: whatever follows must be nothing but the last chunk's end.
    let mut rest = [0u8; 1];
    let extra = opener
        .read(&mut rest)
        .map_err(|e| BackupError::Corrupt(e.to_string()))?;
    if extra != 0 || !opener.done || opener.input.limit() != 0 {
        return Err(BackupError::Corrupt(
            "data follows the end of the compressed contents".into(),
        ));
    }
    if sink.count != checked.header.plaintext_size
        || sink.hasher.finalize().as_slice() != checked.header.plaintext_sha256
    {
        return Err(BackupError::Corrupt(
            "the decrypted contents do not match the SHA-256 in the header".into(),
        ));
    }
    Ok(())
}

/// Hashes a file: its size and SHA-256.
pub fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut sink = Hashing::new(io::sink());
    io::copy(&mut BufReader::new(File::open(path)?), &mut sink)?;
    Ok((sink.count, sink.hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: u64, sha: [u8; 32]) -> Header {
        Header {
            kind: BackupKind::SqliteImage,
            created_at_ms: 1_700_000_000_000,
            key_fingerprint: "0123456789abcdef".into(),
            schema_version: 2,
            plaintext_size: size,
            plaintext_sha256: sha,
            nonce_prefix: [7; 7],
        }
    }

    /// Seals `payload` into a file, returns its path (in `dir`).
    fn sealed(dir: &Path, payload: &[u8], key: &[u8; 32]) -> std::path::PathBuf {
        let path = dir.join("b.wbk");
        let sha: [u8; 32] = Sha256::digest(payload).into();
        let file = File::create(&path).unwrap();
        seal(
            &mut &payload[..],
            &header(payload.len() as u64, sha),
            key,
            file,
        )
        .unwrap();
        path
    }

    fn payload() -> Vec<u8> {
        // Several chunks even after compression: pseudo-random bytes.
        let mut x: u32 = 1;
        (0..300_000)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn header_round_trips() {
        let h = header(42, [9; 32]);
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn seal_then_open_gives_the_payload_back() {
        let dir = tempfile::tempdir().unwrap();
        for data in [Vec::new(), b"hello".to_vec(), payload()] {
            let path = sealed(dir.path(), &data, &[1; 32]);
            let checked = check(&path).unwrap();
            let mut out = Vec::new();
            open(&path, &checked, &[1; 32], &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    /// Re-seals the trailer so that only the inner checks can find the change.
    fn fix_trailer(bytes: &mut Vec<u8>) {
        let body = bytes.len() - TRAILER_LEN;
        let digest = Sha256::digest(&bytes[..body]);
        bytes.truncate(body);
        bytes.extend_from_slice(&digest);
    }

    fn open_bytes(dir: &Path, bytes: &[u8], key: &[u8; 32]) -> Result<Vec<u8>, BackupError> {
        let path = dir.join("altered.wbk");
        std::fs::write(&path, bytes).unwrap();
        let checked = check(&path)?;
        let mut out = Vec::new();
        open(&path, &checked, key, &mut out)?;
        Ok(out)
    }

    #[test]
    fn damage_truncation_and_reordering_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let key = [1; 32];
        let good = std::fs::read(sealed(dir.path(), &payload(), &key)).unwrap();

        // Any flipped byte: the trailer checksum.
        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        let err = open_bytes(dir.path(), &flipped, &key).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");

        // Flipped with a recomputed trailer: authentication.
        fix_trailer(&mut flipped);
        let err = open_bytes(dir.path(), &flipped, &key).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");

        // A header field changed (the created-at time), trailer recomputed: the header is
        // bound into every chunk.
        let mut dated = good.clone();
        dated[13] ^= 1;
        fix_trailer(&mut dated);
        let err = open_bytes(dir.path(), &dated, &key).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");

        // Truncated at the end of the first chunk, trailer recomputed: the last chunk is missing.
        let first_len = u32::from_be_bytes(good[HEADER_LEN..HEADER_LEN + 4].try_into().unwrap());
        assert_eq!(
            first_len & LAST_CHUNK,
            0,
            "the test payload spans several chunks"
        );
        let mut cut = good[..HEADER_LEN + 4 + first_len as usize].to_vec();
        cut.extend_from_slice(&[0; TRAILER_LEN]);
        fix_trailer(&mut cut);
        let err = open_bytes(dir.path(), &cut, &key).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");

        // The first chunk marked as last, trailer recomputed: authentication.
        let mut marked = good.clone();
        marked[HEADER_LEN] |= 0x80;
        marked.truncate(HEADER_LEN + 4 + first_len as usize);
        marked.extend_from_slice(&[0; TRAILER_LEN]);
        fix_trailer(&mut marked);
        let err = open_bytes(dir.path(), &marked, &key).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");

        // Two chunks swapped, trailer recomputed: authentication (the counter is in the nonce).
        let start2 = HEADER_LEN + 4 + first_len as usize;
        let second_len = u32::from_be_bytes(good[start2..start2 + 4].try_into().unwrap());
        let end2 = start2 + 4 + (second_len & !LAST_CHUNK) as usize;
        if second_len & LAST_CHUNK == 0 {
            let mut swapped = good[..HEADER_LEN].to_vec();
            swapped.extend_from_slice(&good[start2..end2]);
            swapped.extend_from_slice(&good[HEADER_LEN..start2]);
            swapped.extend_from_slice(&good[end2..]);
            fix_trailer(&mut swapped);
            let err = open_bytes(dir.path(), &swapped, &key).unwrap_err();
            assert!(err.to_string().contains("authentication"), "{err}");
        }

        // Another key: authentication.
        let err = open_bytes(dir.path(), &good, &[2; 32]).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");

        // Wrong magic: not a backup.
        let mut magic = good.clone();
        magic[0] = b'X';
        let err = open_bytes(dir.path(), &magic, &key).unwrap_err();
        assert!(matches!(err, BackupError::NotABackup), "{err}");
        let err = open_bytes(dir.path(), b"short", &key).unwrap_err();
        assert!(matches!(err, BackupError::NotABackup), "{err}");

        // Cut in the middle: the checksum.
        let err = open_bytes(dir.path(), &good[..good.len() / 2], &key).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
