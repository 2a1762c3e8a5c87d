//! Write-then-rename: an output file appears under its final name only once it is complete.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A temporary file next to `target`, renamed onto `target` by [`AtomicFile::commit`] and
/// deleted if dropped uncommitted (an error, a panic), so no half-written output survives.
pub struct AtomicFile {
    temp: tempfile::TempPath,
    target: PathBuf,
}

impl AtomicFile {
    /// Reserves a temporary name in `target`'s directory (created if missing).
    pub fn new(target: &Path) -> Result<AtomicFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if target.is_dir() {
            return Err(Error::invalid(format!(
                "output path {} is a directory; give a file name",
                target.display()
            )));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        let mut builder = tempfile::Builder::new();
        // Ordinary file permissions (0666 less the umask), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(target, e))?
            .into_temp_path();
        Ok(AtomicFile { temp, target: target.to_path_buf() })
    }

    /// Where to write the content.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Renames the temporary file onto the target.
    pub fn commit(self) -> Result<PathBuf> {
        let target = self.target;
        self.temp.persist(&target).map_err(|e| Error::io(&target, e.error))?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncommitted_files_vanish_and_committed_ones_appear() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.txt");
        {
            let f = AtomicFile::new(&target).unwrap();
            std::fs::write(f.path(), "half").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let f = AtomicFile::new(&target).unwrap();
        std::fs::write(f.path(), "whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        assert!(AtomicFile::new(Path::new("/proc/otgrid-no/x.h5")).is_err());
    }
}
