//! The HDF5 side of the results format (see `docs/file-format.md`).

use super::{AttrValue, Field, Output, Provenance, Step, FORMAT_VERSION, RESERVED_ATTRIBUTES};
use crate::error::{Error, Result};
use crate::field::{ScalarField, VectorField};
use crate::grid::{Axis, BoundaryKind, Grid};
use hdf5::types::VarLenUnicode;
use hdf5::{Group, Location};
use ndarray::ArrayD;
use std::collections::BTreeMap;
use std::path::Path;

/// Value of the root `format` attribute that marks an otgrid file.
const FORMAT_NAME: &str = "otgrid";

fn text(s: &str) -> VarLenUnicode {
    // VarLenUnicode rejects interior NULs only; strip them rather than fail.
    s.replace('\0', "").parse().expect("no interior NUL")
}

pub(super) fn put_text(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    loc.new_attr::<VarLenUnicode>().shape(()).create(name)?.write_scalar(&text(value))
}

fn put_texts(loc: &Location, name: &str, values: &[&str]) -> hdf5::Result<()> {
    let v: Vec<VarLenUnicode> = values.iter().map(|s| text(s)).collect();
    loc.new_attr::<VarLenUnicode>().shape(v.len()).create(name)?.write_raw(&v)
}

fn put_f64s(loc: &Location, name: &str, values: &[f64]) -> hdf5::Result<()> {
    loc.new_attr::<f64>().shape(values.len()).create(name)?.write_raw(values)
}

fn put_attr(loc: &Location, name: &str, value: &AttrValue) -> hdf5::Result<()> {
    match value {
        AttrValue::Text(s) => put_text(loc, name, s),
        AttrValue::Number(x) => loc.new_attr::<f64>().shape(()).create(name)?.write_scalar(x),
        AttrValue::Integer(i) => loc.new_attr::<i64>().shape(()).create(name)?.write_scalar(i),
    }
}

/// Where field data goes: the whole array, or (one rank of a distributed output) this
/// rank's planes of the file's array. In the latter every rank creates every object (HDF5's
/// metadata operations are collective) and replicated raw data — diagnostics — is written
/// by the lead rank alone.
#[derive(Clone, Copy)]
enum Sink {
    Whole,
    #[cfg(feature = "distributed")]
    Planes {
        /// The part's first index along the two slowest storage axes (plane; row — 0 but
        /// on pencils).
        first: [usize; 2],
        /// The file's counts along those axes.
        whole: [usize; 2],
        lead: bool,
        comm: mpi::ffi::MPI_Comm,
    },
}

/// `result` of one step of a write, agreed over the ranks of a collective write: an error on
/// any rank fails that step on every rank, so that no rank goes on to a collective the
/// others never reach (a full disk may fail some ranks' part of a collective write only).
/// Every rank then returns the error of the lowest failing rank — its own message, not a
/// bare "another rank failed" — so that the lead rank, which reports, names the cause.
fn agreed<T>(sink: Sink, result: hdf5::Result<T>) -> hdf5::Result<T> {
    match sink {
        Sink::Whole => result,
        #[cfg(feature = "distributed")]
        Sink::Planes { comm, .. } => {
            let mut rank = 0i32;
            let mut size = 0i32;
            // SAFETY: `comm` is the valid communicator of the write, which every rank reaches
            // at the same step; each call passes buffers of the count and type it names.
            unsafe {
                mpi::ffi::MPI_Comm_rank(comm, &mut rank);
                mpi::ffi::MPI_Comm_size(comm, &mut size);
            }
            let mine = if result.is_err() { rank } else { size };
            let mut first = size;
            // SAFETY: as above; one i32 each way.
            unsafe {
                mpi::ffi::MPI_Allreduce(
                    (&mine as *const i32).cast(),
                    (&mut first as *mut i32).cast(),
                    1,
                    mpi::ffi::RSMPI_INT32_T,
                    mpi::ffi::RSMPI_MIN,
                    comm,
                );
            }
            if first == size {
                return result;
            }
            let mut message = match &result {
                Err(e) if rank == first => e.to_string().into_bytes(),
                _ => Vec::new(),
            };
            let mut len = message.len() as u64;
            // SAFETY: as above; the length, then that many bytes, from the failing rank.
            unsafe {
                mpi::ffi::MPI_Bcast(
                    (&mut len as *mut u64).cast(),
                    1,
                    mpi::ffi::RSMPI_UINT64_T,
                    first,
                    comm,
                );
                message.resize(len as usize, 0);
                mpi::ffi::MPI_Bcast(
                    message.as_mut_ptr().cast(),
                    len as i32,
                    mpi::ffi::RSMPI_UINT8_T,
                    first,
                    comm,
                );
            }
            let message = String::from_utf8_lossy(&message).into_owned();
            Err(hdf5::Error::from(if first == 0 {
                message
            } else {
                format!("{message} (on rank {first})")
            }))
        }
    }
}

fn write_field(group: &Group, name: &str, field: &Field, sink: Sink) -> hdf5::Result<()> {
    let data = field.data();
    let ds = match sink {
        Sink::Whole => group.new_dataset_builder().with_data(data).create(name)?,
        #[cfg(feature = "distributed")]
        Sink::Planes { first, whole, .. } => {
            let mut shape = data.shape().to_vec();
            let local = [shape[0], shape[1]];
            shape[..2].copy_from_slice(&whole);
            let ds = group.new_dataset::<f64>().shape(shape.as_slice()).create(name)?;
            let mut slab: Vec<hdf5::SliceOrIndex> =
                (0..2).map(|k| (first[k]..first[k] + local[k]).into()).collect();
            slab.extend((2..shape.len()).map(|_| hdf5::SliceOrIndex::from(..)));
            agreed(sink, ds.write_slice(data.view(), hdf5::Hyperslab::from(slab)))?;
            ds
        }
    };
    put_text(&ds, "kind", field.kind())?;
    put_text(&ds, "centering", "cell")?;
    Ok(())
}

/// Writes `output` to `tmp` (an HDF5 file created there); `shown` names it in errors.
pub(super) fn write(output: &Output, prov: &Provenance, tmp: &Path, shown: &Path) -> Result<()> {
    let create = || hdf5::File::with_options().with_fapl(|p| p.libver_v18()).create(tmp);
    create()
        .and_then(|file| {
            write_into(&file, output, prov, Sink::Whole)?;
            // Close explicitly: the file must be complete and unlocked before it is renamed.
            file.close()
        })
        .map_err(|e| Error::hdf5(shown, e))
}

/// Writes this rank's part of a distributed `output` into `tmp`, collectively with every
/// rank of `comm` (MPI-IO): the file is the one [`write`] makes of the whole grid. Every rank
/// must pass the same path, provenance and names.
#[cfg(feature = "distributed")]
pub(crate) fn write_collective(
    output: &Output,
    prov: &Provenance,
    tmp: &Path,
    shown: &Path,
    comm: mpi::ffi::MPI_Comm,
    lead: bool,
) -> Result<()> {
    let part = output.part().ok_or_else(|| {
        Error::invalid("a collective write needs one rank's part of a distributed output")
    })?;
    let whole = part.global.storage_shape();
    let sink = Sink::Planes {
        first: [part.first_plane, part.first_row],
        whole: [whole[0], whole[1]],
        lead,
        comm,
    };
    let create =
        || hdf5::File::with_options().with_fapl(|p| p.libver_v18().mpio(comm, None)).create(tmp);
    let file = create().map_err(|e| Error::hdf5(shown, e))?;
    let written = write_into(&file, output, prov, sink);
    if written.is_ok() {
        return file.close().map_err(|e| Error::hdf5(shown, e));
    }
    // A write that failed (a full disk) cannot flush the file when it closes, which leaves
    // it open in libhdf5, and libhdf5 then crashes closing it again inside MPI_Finalize.
    // The temporary is discarded anyway: the lead rank empties it, which frees the space,
    // and every rank closes the file after that.
    if lead {
        let emptied = std::fs::OpenOptions::new().write(true).open(tmp).and_then(|f| f.set_len(0));
        if let Err(e) = emptied {
            tracing::warn!("emptying {} after a failed write: {e}", tmp.display());
        }
    }
    // SAFETY: `comm` is the valid communicator every rank passed; the barrier orders every
    // rank's close after the lead's truncation.
    unsafe {
        mpi::ffi::MPI_Barrier(comm);
    }
    drop(file);
    written.map_err(|e| Error::hdf5(shown, e))
}

fn write_into(
    file: &hdf5::File,
    output: &Output,
    prov: &Provenance,
    sink: Sink,
) -> hdf5::Result<()> {
    // (The 1.8 object format — superblock v2, v2 object headers — checksums the metadata, so
    // a reader detects corrupted metadata instead of interpreting it: libhdf5 can crash on
    // corrupted v0 metadata.)
    put_text(file, "format", FORMAT_NAME)?;
    file.new_attr::<u32>()
        .shape(())
        .create("format_version")?
        .write_scalar(&prov.format_version)?;
    put_text(file, "otgrid_version", &prov.otgrid_version)?;
    put_text(file, "command_line", &prov.command_line)?;
    put_text(file, "created", &prov.created)?;
    for (name, value) in output.attributes() {
        put_attr(file, name, value)?;
    }

    let grid = output.file_grid();
    let g = file.create_group("grid")?;
    g.new_attr::<u32>().shape(()).create("dim")?.write_scalar(&(grid.dim() as u32))?;
    let shape: Vec<u64> = grid.shape().iter().map(|&n| n as u64).collect();
    g.new_attr::<u64>().shape(shape.len()).create("shape")?.write_raw(&shape)?;
    put_f64s(&g, "lower", &grid.lower())?;
    put_f64s(&g, "upper", &grid.upper())?;
    put_f64s(&g, "spacing", &grid.spacing())?;
    let bc: Vec<&str> = grid.boundaries().iter().map(|b| b.name()).collect();
    put_texts(&g, "boundary", &bc)?;
    put_text(&g, "axis_order", "x,y,z")?;
    put_text(&g, "storage_order", if grid.dim() == 3 { "[z][y][x]" } else { "[y][x]" })?;
    put_text(&g, "centering", "cell")?;

    let fields = file.create_group("fields")?;
    for (name, field) in output.fields() {
        write_field(&fields, name, field, sink)?;
    }
    if !output.steps().is_empty() {
        let steps = file.create_group("steps")?;
        for (k, step) in output.steps().iter().enumerate() {
            let s = steps.create_group(&k.to_string())?;
            s.new_attr::<f64>().shape(()).create("time")?.write_scalar(&step.time)?;
            for (name, field) in &step.fields {
                write_field(&s, name, field, sink)?;
            }
        }
    }
    if !output.diagnostics().is_empty() {
        let d = file.create_group("diagnostics")?;
        for (name, values) in output.diagnostics() {
            match sink {
                Sink::Whole => {
                    d.new_dataset_builder().with_data(values.as_slice()).create(name.as_str())?;
                }
                #[cfg(feature = "distributed")]
                Sink::Planes { lead, .. } => {
                    let ds = d.new_dataset::<f64>().shape(values.len()).create(name.as_str())?;
                    agreed(sink, if lead { ds.write_raw(values) } else { Ok(()) })?;
                }
            }
        }
    }
    agreed(sink, file.flush())
}

fn get_text(loc: &Location, name: &str) -> hdf5::Result<String> {
    Ok(loc.attr(name)?.read_scalar::<VarLenUnicode>()?.as_str().to_string())
}

fn get_texts(loc: &Location, name: &str) -> hdf5::Result<Vec<String>> {
    Ok(loc
        .attr(name)?
        .read_raw::<VarLenUnicode>()?
        .iter()
        .map(|s| s.as_str().to_string())
        .collect())
}

fn read_attr(loc: &Location, name: &str) -> hdf5::Result<AttrValue> {
    let attr = loc.attr(name)?;
    let dtype = attr.dtype()?;
    if dtype.is::<f64>() || dtype.is::<f32>() {
        Ok(AttrValue::Number(attr.read_scalar::<f64>()?))
    } else if dtype.is::<i64>() || dtype.is::<i32>() || dtype.is::<u32>() || dtype.is::<u64>() {
        Ok(AttrValue::Integer(attr.read_scalar::<i64>()?))
    } else {
        Ok(AttrValue::Text(attr.read_scalar::<VarLenUnicode>()?.as_str().to_string()))
    }
}

/// Opens an HDF5 file for reading; a missing file or a non-HDF5 file is a one-line error.
pub(super) fn open(path: &Path) -> Result<hdf5::File> {
    if !path.exists() {
        return Err(Error::invalid(format!("{}: no such file", path.display())));
    }
    hdf5::File::open(path).map_err(|_| Error::format(path, "not an HDF5 file (or not readable)"))
}

/// Whether `file` carries the root attribute `format = "otgrid"`.
pub(super) fn is_otgrid(file: &hdf5::File) -> bool {
    get_text(file, "format").is_ok_and(|f| f == FORMAT_NAME)
}

/// The format version of an otgrid file, refusing one newer than this build reads.
pub(super) fn checked_version(file: &hdf5::File, path: &Path) -> Result<u32> {
    let bad = |m: String| Error::format(path, m);
    match get_text(file, "format") {
        Ok(f) if f == FORMAT_NAME => {}
        _ => {
            return Err(bad(
                "not an otgrid results file (no root attribute format=\"otgrid\")".into()
            ))
        }
    }
    let version: u32 = file
        .attr("format_version")
        .and_then(|a| a.read_scalar())
        .map_err(|_| bad("missing root attribute 'format_version'".into()))?;
    if version > FORMAT_VERSION {
        return Err(bad(format!(
            "file format version {version} is newer than this otgrid supports ({FORMAT_VERSION}); upgrade otgrid"
        )));
    }
    Ok(version)
}

/// The grid stored in `/grid` of an otgrid file.
pub(super) fn read_grid(file: &hdf5::File, path: &Path) -> Result<Grid> {
    let bad = |m: String| Error::format(path, m);
    let h5err = |e: hdf5::Error| Error::hdf5(path, e);
    let g = file.group("grid").map_err(h5err)?;
    (|| -> hdf5::Result<std::result::Result<Grid, String>> {
        let shape = g.attr("shape")?.read_raw::<u64>()?;
        let lower = g.attr("lower")?.read_raw::<f64>()?;
        let upper = g.attr("upper")?.read_raw::<f64>()?;
        let bc = get_texts(&g, "boundary")?;
        let d = shape.len();
        if lower.len() != d || upper.len() != d || bc.len() != d {
            return Ok(Err(
                "/grid attributes shape, lower, upper, boundary differ in length".into()
            ));
        }
        let mut axes = Vec::with_capacity(d);
        for a in 0..d {
            let boundary: BoundaryKind = match bc[a].parse() {
                Ok(b) => b,
                Err(e) => return Ok(Err(format!("/grid: {e}"))),
            };
            axes.push(Axis {
                cells: shape[a] as usize,
                lower: lower[a],
                upper: upper[a],
                boundary,
            });
        }
        Ok(Grid::new(axes).map_err(|e| format!("/grid: {e}")))
    })()
    .map_err(|e| {
        bad(format!("unreadable /grid group: {}", crate::error::one_line(&e.to_string())))
    })?
    .map_err(bad)
}

/// Reads an otgrid HDF5 file.
pub(super) fn read(path: &Path) -> Result<Output> {
    let file = open(path)?;
    let bad = |m: String| Error::format(path, m);
    let h5err = |e: hdf5::Error| Error::hdf5(path, e);
    let version = checked_version(&file, path)?;
    let provenance = Provenance {
        format_version: version,
        otgrid_version: get_text(&file, "otgrid_version").unwrap_or_default(),
        command_line: get_text(&file, "command_line").unwrap_or_default(),
        created: get_text(&file, "created").unwrap_or_default(),
    };
    let mut attributes = BTreeMap::new();
    for name in file.attr_names().map_err(h5err)? {
        if !RESERVED_ATTRIBUTES.contains(&name.as_str()) {
            attributes.insert(name.clone(), read_attr(&file, &name).map_err(h5err)?);
        }
    }

    for group in ["grid", "fields"] {
        if !file.link_exists(group) {
            return Err(bad(format!("missing group /{group}: not a complete otgrid results file")));
        }
    }
    let grid = read_grid(&file, path)?;

    let read_group_fields = |group: &Group, where_: &str| -> Result<BTreeMap<String, Field>> {
        let mut out = BTreeMap::new();
        for ds in group.datasets().map_err(h5err)? {
            let full = ds.name();
            let name = full.rsplit('/').next().unwrap_or(&full).to_string();
            let data: ArrayD<f64> = ds.read_dyn().map_err(h5err)?;
            let kind = get_text(&ds, "kind").unwrap_or_else(|_| "scalar".into());
            let field = match kind.as_str() {
                "scalar" => ScalarField::new(grid.clone(), data).map(Field::Scalar),
                "vector" => VectorField::new(grid.clone(), data).map(Field::Vector),
                other => return Err(bad(format!("{where_}/{name}: unknown field kind '{other}'"))),
            }
            .map_err(|e| bad(format!("{where_}/{name}: {e}")))?;
            out.insert(name, field);
        }
        Ok(out)
    };

    let fields = read_group_fields(&file.group("fields").map_err(h5err)?, "/fields")?;
    let mut steps = Vec::new();
    if file.link_exists("steps") {
        let sg = file.group("steps").map_err(h5err)?;
        let mut indexed: Vec<(usize, Group)> = Vec::new();
        for s in sg.groups().map_err(h5err)? {
            let n = s.name();
            let k = n.rsplit('/').next().unwrap_or("").parse::<usize>();
            match k {
                Ok(k) => indexed.push((k, s)),
                Err(_) => {
                    return Err(bad(format!("{n}: step groups must be named by their index")))
                }
            }
        }
        indexed.sort_by_key(|(k, _)| *k);
        for (k, s) in indexed {
            let time: f64 = s
                .attr("time")
                .and_then(|a| a.read_scalar())
                .map_err(|_| bad(format!("/steps/{k}: missing attribute 'time'")))?;
            steps.push(Step { time, fields: read_group_fields(&s, &format!("/steps/{k}"))? });
        }
    }
    let mut diagnostics = BTreeMap::new();
    if file.link_exists("diagnostics") {
        for ds in file.group("diagnostics").map_err(h5err)?.datasets().map_err(h5err)? {
            let full = ds.name();
            let name = full.rsplit('/').next().unwrap_or(&full).to_string();
            diagnostics.insert(name, ds.read_raw::<f64>().map_err(h5err)?);
        }
    }
    Ok(Output {
        grid,
        part: None,
        fields,
        steps,
        diagnostics,
        attributes,
        provenance: Some(provenance),
    })
}
