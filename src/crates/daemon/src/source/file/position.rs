//! Where reading of each file stands, kept in the state directory (written only by the
//! daemon, after a batch is processed).

#[allow(unused_imports)]
use super::*;

/// Where reading of one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct PositionDoc {
    pub(super) files: Vec<Position>,
}

/// The position file in the state directory (JSON, replaced atomically).
#[derive(Debug, Clone)]
pub struct PositionFile {
    pub(super) path: PathBuf,
}

impl PositionFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PositionFile { path: path.into() }
    }

    /// Saved positions; none when the file does not exist. A corrupt file is an error naming
    /// it (the operator decides; starting over would re-read or skip lines).
    pub fn load(&self) -> Result<Vec<Position>, SourceError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SourceError::CursorIo {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let doc: PositionDoc =
            serde_json::from_slice(&bytes).map_err(|e| SourceError::CursorInvalid {
                path: self.path.clone(),
                reason: format!("not a position file: {e}"),
            })?;
        Ok(doc.files)
    }

    pub fn store(&self, files: &[Position]) -> Result<(), SourceError> {
        let doc = PositionDoc {
            files: files.to_vec(),
        };
        let mut text = serde_json::to_vec(&doc).map_err(|e| SourceError::CursorInvalid {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        Ok(write_atomic(&self.path, &text)?)
    }
}
