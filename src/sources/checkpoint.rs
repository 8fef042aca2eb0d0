//! Checkpoints: how far each file has been delivered, persisted so that a
//! restarted agent resumes where the acknowledged data ends.
//!
//! A file is identified by device + inode *and* a fingerprint of its first
//! bytes: inodes are reused after deletion, and a new file on an old inode
//! must not resume at the old file's offset. Writes are atomic (write a
//! temporary file, fsync, rename, fsync the directory): a `kill -9` at any
//! moment leaves either the old or the new checkpoint, never a torn one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes of a file's start that make its fingerprint.
pub const FINGERPRINT_BYTES: u64 = 256;

/// Identity of a file's content stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A fingerprint: hash of the first `len` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub sha256: String,
}

impl Fingerprint {
    /// Fingerprint of the first `min(size, FINGERPRINT_BYTES)` bytes.
    pub fn of(file: &mut File, size: u64) -> io::Result<Fingerprint> {
        Self::of_len(file, size.min(FINGERPRINT_BYTES))
    }

    /// Fingerprint of exactly the first `len` bytes (fewer if the file is
    /// shorter now).
    pub fn of_len(file: &mut File, len: u64) -> io::Result<Fingerprint> {
        use std::io::Seek;
        let pos = file.stream_position()?;
        file.seek(io::SeekFrom::Start(0))?;
        let mut buf = vec![0u8; len as usize];
        let mut got = 0;
        while got < buf.len() {
            let n = file.read(&mut buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        file.seek(io::SeekFrom::Start(pos))?;
        buf.truncate(got);
        let digest = Sha256::digest(&buf);
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Fingerprint {
            len: got as u64,
            sha256,
        })
    }
}

/// One file's delivered position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub source: String,
    /// Last known path (informational).
    pub path: PathBuf,
    pub id: FileId,
    pub fingerprint: Fingerprint,
    /// Bytes delivered (always at a line boundary).
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

/// The checkpoint file of one agent.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    entries: HashMap<(String, FileId), Entry>,
}

impl Store {
    /// Opens (creating the data dir, mode 0700) and loads the checkpoints.
    /// A corrupt checkpoint file is an error, not a silent restart from
    /// zero: the caller decides.
    pub fn open(data_dir: &Path) -> io::Result<Store> {
        crate::fsutil::private_dir(data_dir)?;
        let path = data_dir.join("checkpoints.json");
        let mut entries = HashMap::new();
        match fs::read(&path) {
            Ok(bytes) => {
                let d: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: corrupt checkpoint file: {e}", path.display()),
                    )
                })?;
                for e in d.files {
                    entries.insert((e.source.clone(), e.id), e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Store { path, entries })
    }

    /// The saved entry for a file of `source`, if its identity matches.
    pub fn get(&self, source: &str, id: FileId) -> Option<&Entry> {
        self.entries.get(&(source.to_string(), id))
    }

    pub fn set(&mut self, e: Entry) {
        self.entries.insert((e.source.clone(), e.id), e);
    }

    pub fn remove(&mut self, source: &str, id: FileId) {
        self.entries.remove(&(source.to_string(), id));
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Writes all entries atomically (mode 0600).
    pub fn save(&self) -> io::Result<()> {
        let mut files: Vec<Entry> = self.entries.values().cloned().collect();
        files.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
        let body = serde_json::to_vec_pretty(&OnDisk { version: 1, files })?;
        crate::fsutil::write_atomic(&self.path, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically_with_private_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        let id = FileId { dev: 1, ino: 2 };
        s.set(Entry {
            source: "app".into(),
            path: "/x.log".into(),
            id,
            fingerprint: Fingerprint {
                len: 3,
                sha256: "ab".into(),
            },
            offset: 42,
        });
        s.save().unwrap();
        let mode = fs::metadata(dir.path().join("checkpoints.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let s2 = Store::open(dir.path()).unwrap();
        assert_eq!(s2.get("app", id).unwrap().offset, 42);
        assert!(s2.get("other", id).is_none());
    }

    #[test]
    fn a_corrupt_checkpoint_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("checkpoints.json"), b"{not json").unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("corrupt checkpoint"));
    }
}
