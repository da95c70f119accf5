//! Writing the outputs so that none is ever half-written: each file goes to a
//! temporary file in the same folder, is flushed to disk, then renamed over its
//! name (atomic on one file system). Everything is computed before the first file
//! is written, so bad input writes nothing at all.

use std::io::Write;
use std::path::Path;

use crate::ReportError;

/// Writes `files` (name, contents) into `dir`, creating it if needed.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), ReportError> {
    let io = |path: &Path, source: std::io::Error| ReportError::Io { path: path.display().to_string(), source };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        let mut tmp =
            tempfile::Builder::new().prefix(".streetscope-report-").tempfile_in(dir).map_err(|e| io(dir, e))?;
        tmp.write_all(bytes).map_err(|e| io(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| io(&path, e))?;
        tmp.persist(&path).map_err(|e| io(&path, e.error))?;
    }
    Ok(())
}
