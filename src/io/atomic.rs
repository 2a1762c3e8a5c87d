//! Safe outputs: write-then-rename, so an output file appears under its final name only once
//! it is complete; refusal of paths that are not (or must not become) regular files; removal
//! of temporaries on SIGINT/SIGTERM and of stale ones left by a killed run.
//!
//! Temporaries are named `.NAME.PID.RANDOM.tmp` next to the target `NAME`, so a later run can
//! tell its own stale ones (those of a process that no longer exists) from a live run's.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporaries of this process not yet committed; removed by the signal handler.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs a SIGINT/SIGTERM handler (a thread) that deletes this process's uncommitted
/// temporaries and then ends the process as the signal would (exit status 128 + signal).
pub fn remove_temporaries_on_signal() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Error::invalid(format!("cannot install the signal handler: {e}")))?;
    std::thread::Builder::new()
        .name("otgrid-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                for path in live().iter() {
                    let _ = std::fs::remove_file(path);
                }
                // Die of the signal itself, so the parent sees how the run ended.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map_err(|e| Error::invalid(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// A temporary file next to `target`, renamed onto `target` by [`AtomicFile::commit`] and
/// deleted if dropped uncommitted (an error, a panic) or on SIGINT/SIGTERM (see
/// [`remove_temporaries_on_signal`]), so no half-written output survives. A symbolic link
/// at `target` is written through: its target file is replaced and the link kept.
pub struct AtomicFile {
    temp: Option<tempfile::TempPath>,
    target: PathBuf,
}

impl AtomicFile {
    /// Reserves a temporary name in the (resolved) target's directory, created if missing;
    /// refuses a target that is a directory, device, FIFO or socket, and removes stale
    /// temporaries of the same name left by processes that no longer exist.
    pub fn new(target: &Path) -> Result<AtomicFile> {
        let target = resolve_output(target)?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        remove_stale_temporaries(&dir, name);
        let mut builder = tempfile::Builder::new();
        // Ordinary file permissions (0666 less the umask), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder
            .prefix(&format!(".{name}.{}.", std::process::id()))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&target, e))?
            .into_temp_path();
        live().push(temp.to_path_buf());
        Ok(AtomicFile { temp: Some(temp), target })
    }

    /// Where to write the content.
    pub fn path(&self) -> &Path {
        self.temp.as_deref().expect("present until commit or drop")
    }

    /// The file the content will replace (a symbolic link's target, resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temporary file onto the target.
    pub fn commit(mut self) -> Result<PathBuf> {
        let temp = self.temp.take().expect("present until commit or drop");
        let path = temp.to_path_buf();
        let result = temp.persist(&self.target).map_err(|e| Error::io(&self.target, e.error));
        live().retain(|p| p != &path);
        result.map(|()| self.target.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let path = temp.to_path_buf();
            drop(temp); // deletes the file
            live().retain(|p| p != &path);
        }
    }
}

/// The file an output at `path` will replace: `path` itself, or, for a symbolic link, the
/// file it finally points to. Refuses a directory, a device, a FIFO or a socket, since
/// otgrid writes regular files only.
pub fn resolve_output(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&current).map_err(|e| Error::io(&current, e))?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(meta) => {
                if let Some(kind) = not_a_regular_file(&meta.file_type()) {
                    return Err(Error::invalid(format!(
                        "output path {} is {kind}; otgrid writes regular files only (give a file name)",
                        path.display()
                    )));
                }
                return Ok(current);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(Error::io(&current, e)),
        }
    }
    Err(Error::invalid(format!(
        "output path {}: too many levels of symbolic links",
        path.display()
    )))
}

fn not_a_regular_file(kind: &std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_block_device() || kind.is_char_device() {
            return Some("a device");
        }
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    None
}

/// Refuses an output `path` that is (or links to) one of `inputs` (name: path pairs).
pub fn refuse_input_as_output(path: &Path, inputs: &[(String, PathBuf)]) -> Result<()> {
    let Ok(out) = std::fs::metadata(path) else { return Ok(()) };
    for (what, input) in inputs {
        if let Ok(meta) = std::fs::metadata(input) {
            if same_file(&out, &meta) {
                return Err(Error::invalid(format!(
                    "output {} is the {what} {}; writing it would destroy one of the run's inputs (choose another output)",
                    path.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// Deletes `.NAME.PID.*.tmp` files in `dir` whose process no longer exists (Linux /proc).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        let Some(pid) = rest.split_once('.').and_then(|(p, _)| p.parse::<u32>().ok()) else {
            continue;
        };
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        let dead = pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        if regular && dead && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!("removed stale temporary {}", entry.path().display());
        }
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
            assert!(live().contains(&f.path().to_path_buf()));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let f = AtomicFile::new(&target).unwrap();
        let temp = f.path().to_path_buf();
        std::fs::write(f.path(), "whole").unwrap();
        f.commit().unwrap();
        assert!(!live().contains(&temp));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        assert!(AtomicFile::new(Path::new("/proc/otgrid-no/x.h5")).is_err());
    }

    #[test]
    fn symlinks_are_written_through_and_special_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.h5");
        std::fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.h5");
        std::os::unix::fs::symlink("real.h5", &link).unwrap();
        let f = AtomicFile::new(&link).unwrap();
        std::fs::write(f.path(), "new").unwrap();
        f.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        for (path, kind) in
            [(dir.path().to_path_buf(), "a directory"), ("/dev/null".into(), "a device")]
        {
            let msg = AtomicFile::new(&path).err().unwrap().to_string();
            assert!(msg.contains(kind), "{msg}");
        }
        let msg = refuse_input_as_output(&link, &[("source".into(), real.clone())]).unwrap_err();
        assert!(msg.to_string().contains("is the source"), "{msg}");
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A PID above the kernel's pid_max cannot be alive.
        let stale = dir.path().join(".out.h5.4999999.abcdef.tmp");
        let mine = dir.path().join(format!(".out.h5.{}.ghijkl.tmp", std::process::id()));
        let other = dir.path().join(".other.h5.4999999.abcdef.tmp");
        for p in [&stale, &mine, &other] {
            std::fs::write(p, "x").unwrap();
        }
        drop(AtomicFile::new(&dir.path().join("out.h5")).unwrap());
        assert!(!stale.exists() && mine.exists() && other.exists());
    }
}
