//! One results file from a distributed run: every rank writes its planes of each field into
//! one HDF5 file collectively (MPI-IO, parallel HDF5), in the layout the serial writer gives
//! the whole grid, with the same XDMF sidecar — so ParaView, h5py and `Output::read` open it
//! unchanged. Atomic like the serial writer: rank 0 reserves the temporary names, every rank
//! writes, and rank 0 renames both files only once every rank has closed the HDF5 file
//! without error; a failure on any rank fails every rank and leaves no file behind.

use super::exchange::{agree, Exchange};
use super::mpi::MpiExchange;
use crate::error::{Error, Result};
use crate::io::{render_xdmf, sidecar_path, AtomicFile, Output, Provenance, Written};
use mpi::raw::AsRaw;
use mpi::traits::*;
use std::path::Path;

/// What rank 0 tells the others before the write: the temporary's path and the provenance
/// every rank stores (the same attributes must be written by all), or its error.
#[derive(serde::Serialize, serde::Deserialize)]
enum Plan {
    Write { temporary: String, otgrid_version: String, command_line: String, created: String },
    Refused(String),
}

/// Sends rank 0's bytes to every rank.
fn broadcast(ex: &MpiExchange, bytes: Vec<u8>) -> Vec<u8> {
    let root = ex.communicator().process_at_rank(0);
    let mut len = bytes.len() as u64;
    root.broadcast_into(&mut len);
    let mut buf = if ex.rank() == 0 { bytes } else { vec![0u8; len as usize] };
    root.broadcast_into(&mut buf[..]);
    buf
}

/// Writes `output` (this rank's part, from [`Output::slab`]) to `path` and its XDMF sidecar,
/// collectively over `ex`'s communicator: call on every rank with the same path and the
/// same field names, attributes and diagnostics.
pub fn write_collective(output: &Output, path: &Path, ex: &MpiExchange) -> Result<Written> {
    if output.part().is_none() {
        return agree(
            ex,
            Err(Error::invalid("write_collective needs one rank's part (Output::slab)")),
            "the collective write",
        );
    }
    let xdmf_path = sidecar_path(path);
    // Rank 0 reserves the temporaries (and keeps them: dropped uncommitted, they vanish).
    let mut reserved: Option<(AtomicFile, AtomicFile)> = None;
    let plan = if ex.rank() == 0 {
        let reserve = || -> Result<(AtomicFile, AtomicFile)> {
            let xdmf = xdmf_path.as_ref().map_err(|e| Error::invalid(e.to_string()))?;
            Ok((AtomicFile::new(path)?, AtomicFile::new(xdmf)?))
        };
        let plan = match reserve() {
            Ok(files) => {
                let prov = output.provenance.clone().unwrap_or_else(Provenance::current);
                let plan = Plan::Write {
                    temporary: files.0.path().display().to_string(),
                    otgrid_version: prov.otgrid_version,
                    command_line: prov.command_line,
                    created: prov.created,
                };
                reserved = Some(files);
                plan
            }
            Err(e) => Plan::Refused(e.to_string()),
        };
        serde_json::to_vec(&plan).map_err(|e| Error::invalid(e.to_string()))?
    } else {
        Vec::new()
    };
    let plan: Plan = serde_json::from_slice(&broadcast(ex, plan))
        .map_err(|e| Error::invalid(format!("collective write: a garbled plan ({e})")))?;
    let (temporary, prov) = match plan {
        Plan::Refused(message) => return Err(Error::invalid(message)),
        Plan::Write { temporary, otgrid_version, command_line, created } => (
            temporary,
            Provenance {
                format_version: crate::io::FORMAT_VERSION,
                otgrid_version,
                command_line,
                created,
            },
        ),
    };
    let comm = ex.communicator().as_raw();
    let written = crate::io::h5::write_collective(
        output,
        &prov,
        Path::new(&temporary),
        path,
        comm,
        ex.rank() == 0,
    );
    agree(ex, written, &format!("writing {}", path.display()))?;
    // Every rank has closed the file: rank 0 adds the sidecar and renames both.
    let committed = match reserved {
        Some((h5, xmf)) => (|| -> Result<Written> {
            let xdmf = xdmf_path?;
            let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                Error::invalid(format!("output path {} has no file name", path.display()))
            })?;
            std::fs::write(xmf.path(), render_xdmf(output, name))
                .map_err(|e| Error::io(&xdmf, e))?;
            h5.commit()?;
            xmf.commit()?;
            Ok(Written { hdf5: path.to_path_buf(), xdmf })
        })(),
        None => Ok(Written { hdf5: path.to_path_buf(), xdmf: sidecar_path(path)? }),
    };
    agree(ex, committed, &format!("renaming {} into place", path.display()))
}
