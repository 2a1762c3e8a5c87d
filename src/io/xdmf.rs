//! XDMF sidecar: a small XML file that tells ParaView (and VisIt) how to read the HDF5 datasets.
//!
//! The grid is a `3DCoRectMesh` (also in 2D, see [`render`]) whose *nodes* are the cell corners, so the
//! topology has one more point than cells per axis and fields are attached with
//! `Center="Cell"`. All dimensions, origins and spacings are listed slowest axis first
//! (z y x), matching the C-order `[z][y][x]` datasets. Data items name the HDF5 file by its
//! bare file name, so the pair can be moved together. A time series becomes a temporal
//! collection whose every step also carries the static `/fields` (a step field shadows a
//! static field of the same name).

use super::{Field, Output};
use std::fmt::Write;

fn join<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
    v.into_iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The XDMF document for `output`, whose HDF5 file is `h5_name` (relative to the .xmf).
pub fn render(output: &Output, h5_name: &str) -> String {
    let grid = output.file_grid();
    // 2D grids are written as a flat 3D mesh: two node layers at the same z (spacing 0) and
    // one cell layer, with data items given a leading 1. ParaView reads a 2DCoRectMesh into
    // the y–z plane, and the legacy XDMF reader misreads 2D data items on a 3D mesh, so
    // this is the form both of ParaView's readers place correctly in the x–y plane.
    let (cells_zyx, origin_zyx, spacing_zyx, lead) = if grid.dim() == 3 {
        (
            grid.storage_shape(),
            grid.lower().into_iter().rev().collect::<Vec<_>>(),
            grid.spacing().into_iter().rev().collect::<Vec<_>>(),
            "",
        )
    } else {
        let mut c = vec![1];
        c.extend(grid.storage_shape());
        let mut o = vec![0.0];
        o.extend(grid.lower().into_iter().rev());
        let mut h = vec![0.0];
        h.extend(grid.spacing().into_iter().rev());
        (c, o, h, "1 ")
    };
    let nodes = join(cells_zyx.iter().map(|n| n + 1));
    let origin = join(origin_zyx.iter().map(|x| format!("{x:e}")));
    let spacing = join(spacing_zyx.iter().map(|x| format!("{x:e}")));
    let h5 = xml_escape(h5_name);

    let mesh = |ind: &str| -> String {
        format!(
            "{ind}<Topology TopologyType=\"3DCoRectMesh\" Dimensions=\"{nodes}\"/>\n\
             {ind}<Geometry GeometryType=\"ORIGIN_DXDYDZ\">\n\
             {ind}  <DataItem Name=\"Origin\" Dimensions=\"3\" NumberType=\"Float\" Precision=\"8\" Format=\"XML\">{origin}</DataItem>\n\
             {ind}  <DataItem Name=\"Spacing\" Dimensions=\"3\" NumberType=\"Float\" Precision=\"8\" Format=\"XML\">{spacing}</DataItem>\n\
             {ind}</Geometry>\n"
        )
    };
    let attribute = |ind: &str, name: &str, field: &Field, h5path: &str| -> String {
        // (The file's array: the whole grid, also for one rank's part of a distributed run.)
        let (kind, components) = match field {
            Field::Scalar(_) => ("Scalar", None),
            Field::Vector(_) => ("Vector", Some(grid.dim())),
        };
        let dims = join(grid.storage_shape().into_iter().chain(components));
        let dims = format!("{lead}{dims}");
        format!(
            "{ind}<Attribute Name=\"{name}\" AttributeType=\"{kind}\" Center=\"Cell\">\n\
             {ind}  <DataItem Dimensions=\"{dims}\" NumberType=\"Float\" Precision=\"8\" Format=\"HDF\">{h5}:{h5path}</DataItem>\n\
             {ind}</Attribute>\n"
        )
    };
    // Static fields, except those shadowed by a same-named field of the step being written.
    let static_fields = |ind: &str, shadowed: &dyn Fn(&str) -> bool| -> String {
        output
            .fields()
            .iter()
            .filter(|(name, _)| !shadowed(name))
            .map(|(name, f)| attribute(ind, name, f, &format!("/fields/{name}")))
            .collect()
    };

    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" ?>\n<!DOCTYPE Xdmf SYSTEM \"Xdmf.dtd\" []>\n");
    x.push_str("<Xdmf Version=\"3.0\" xmlns:xi=\"http://www.w3.org/2001/XInclude\">\n  <Domain>\n");
    if output.steps().is_empty() {
        x.push_str("    <Grid Name=\"fields\" GridType=\"Uniform\">\n");
        x.push_str(&mesh("      "));
        x.push_str(&static_fields("      ", &|_| false));
        x.push_str("    </Grid>\n");
    } else {
        x.push_str(
            "    <Grid Name=\"steps\" GridType=\"Collection\" CollectionType=\"Temporal\">\n",
        );
        for (k, step) in output.steps().iter().enumerate() {
            let _ = writeln!(x, "      <Grid Name=\"step_{k}\" GridType=\"Uniform\">");
            let _ = writeln!(x, "        <Time Value=\"{:e}\"/>", step.time);
            x.push_str(&mesh("        "));
            for (name, f) in &step.fields {
                x.push_str(&attribute("        ", name, f, &format!("/steps/{k}/{name}")));
            }
            x.push_str(&static_fields("        ", &|n| step.fields.contains_key(n)));
            x.push_str("      </Grid>\n");
        }
        x.push_str("    </Grid>\n");
    }
    x.push_str("  </Domain>\n</Xdmf>\n");
    x
}
