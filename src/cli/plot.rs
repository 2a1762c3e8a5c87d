//! PNG plots of the CLI's studies (plotters, labels in DejaVu Sans from the system's fonts).

use otgrid::error::{Error, Result};
use otgrid::io::AtomicFile;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where Debian's fonts-dejavu-core puts DejaVu Sans (`make deps` installs it).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers DejaVu Sans as plotters' sans-serif; false if the font file is missing.
fn font() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| match std::fs::read(FONT) {
        Ok(bytes) => {
            let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok()
        }
        Err(_) => false,
    })
}

/// One panel: series of (x, y) points; x logarithmic, y logarithmic when every value is
/// positive, else linear. A legend names the series when there are several.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub series: Vec<Series>,
}

/// One labelled line of a [`Panel`].
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl<'a> Panel<'a> {
    /// A panel with one unlabelled series.
    pub fn single(title: &'a str, x_label: &'a str, points: Vec<(f64, f64)>) -> Panel<'a> {
        Panel { title, x_label, series: vec![Series { label: String::new(), points }] }
    }
}

/// Line colours of a panel's series, in order.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

/// Draws `panels` side by side into the PNG `path` (written atomically). Returns
/// the path, or `None` with the reason when the system has no font to label the axes.
pub fn log_log_panels(
    path: &Path,
    panels: &[Panel],
) -> Result<std::result::Result<PathBuf, String>> {
    if !font() {
        return Ok(Err(format!("no plot: the font {FONT} is missing (Debian: fonts-dejavu-core)")));
    }
    let file = AtomicFile::new(path)?;
    // (The backend picks the format by the extension: draw beside the temporary file.)
    let png = file.path().with_extension("png");
    let drawn = draw(&png, panels);
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&png);
        return Err(Error::invalid(format!("plot {}: {e}", path.display())));
    }
    std::fs::rename(&png, file.path()).map_err(|e| Error::io(file.path(), e))?;
    Ok(Ok(file.commit()?))
}

/// Draws the panels into the PNG file `png`.
fn draw(png: &Path, panels: &[Panel]) -> std::result::Result<(), String> {
    {
        let width = 480 * panels.len().max(1) as u32;
        let root = BitMapBackend::new(png, (width, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (panel, area) in panels.iter().zip(areas) {
            let series: Vec<(&str, Vec<(f64, f64)>)> = panel
                .series
                .iter()
                .map(|s| {
                    let points =
                        s.points.iter().copied().filter(|(x, y)| *x > 0.0 && y.is_finite());
                    (s.label.as_str(), points.collect::<Vec<_>>())
                })
                .filter(|(_, p)| !p.is_empty())
                .collect();
            if series.is_empty() {
                continue;
            }
            let all = || series.iter().flat_map(|(_, p)| p.iter());
            let (xlo, xhi) = bounds(all().map(|p| p.0));
            let (ylo, yhi) = bounds(all().map(|p| p.1));
            let xs = (xlo / 1.5)..(xhi * 1.5);
            macro_rules! finish {
                ($chart:expr) => {{
                    let mut chart = $chart.map_err(|e| e.to_string())?;
                    chart
                        .configure_mesh()
                        .x_desc(panel.x_label)
                        .x_label_formatter(&|v| format!("{v:.0e}"))
                        .y_label_formatter(&|v| format!("{v:.2e}"))
                        .draw()
                        .map_err(|e| e.to_string())?;
                    for (i, (label, points)) in series.iter().enumerate() {
                        let colour = COLOURS[i % COLOURS.len()];
                        let drawn = chart
                            .draw_series(LineSeries::new(points.clone(), &colour))
                            .map_err(|e| e.to_string())?;
                        if !label.is_empty() {
                            drawn.label(*label).legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 16, y)], colour)
                            });
                        }
                        if points.len() <= 40 {
                            chart
                                .draw_series(
                                    points.iter().map(|&p| Circle::new(p, 3, colour.filled())),
                                )
                                .map_err(|e| e.to_string())?;
                        }
                    }
                    if series.iter().any(|(label, _)| !label.is_empty()) {
                        chart
                            .configure_series_labels()
                            .background_style(WHITE.mix(0.8))
                            .border_style(BLACK)
                            .label_font(("sans-serif", 13))
                            .draw()
                            .map_err(|e| e.to_string())?;
                    }
                }};
            }
            let mut builder = ChartBuilder::on(&area);
            builder
                .caption(panel.title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(80);
            if ylo > 0.0 {
                finish!(builder
                    .build_cartesian_2d(xs.log_scale(), ((ylo / 1.5)..(yhi * 1.5)).log_scale()));
            } else {
                let pad = 0.1 * (yhi - ylo).max(1e-300);
                finish!(builder.build_cartesian_2d(xs.log_scale(), (ylo - pad)..(yhi + pad)));
            }
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The least and largest of `values`.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}
