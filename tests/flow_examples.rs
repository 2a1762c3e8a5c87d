//! Every gradient-flow example in `examples/flows/` runs from its problem file and writes a
//! ParaView-ready time series: the XDMF temporal collection lists `rho` at t = 0 and at each
//! kept step, the HDF5 file holds the same steps and per-step diagnostics, the mass is kept
//! and the energy falls.

use otgrid::io::Output;
use std::path::Path;
use std::process::Command;

#[test]
fn every_flow_example_writes_a_time_series() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flows");
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let out = dir.path().join(format!("{name}.h5"));
        let o = Command::new(env!("CARGO_BIN_EXE_otgrid"))
            .args(["flow", "--problem"])
            .arg(file)
            .arg("--out")
            .arg(&out)
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["relative_mass_drift"].as_f64().unwrap() < 1e-12, "{name}: {v}");
        assert!(v["min_density"].as_f64().unwrap() >= 0.0, "{name}: {v}");
        assert!(v["energy"]["last"].as_f64() < v["energy"]["first"].as_f64(), "{name}: {v}");
        let written = Output::read(&out).unwrap();
        let steps = written.steps();
        assert!(steps.len() >= 3, "{name}: {} steps", steps.len());
        let xmf = std::fs::read_to_string(out.with_extension("xmf")).unwrap();
        assert!(xmf.contains("CollectionType=\"Temporal\""), "{name}");
        assert_eq!(xmf.matches("<Time ").count(), steps.len(), "{name}");
        assert_eq!(xmf.matches("Attribute Name=\"rho\"").count(), steps.len(), "{name}");
        let energy = &written.diagnostics()["energy"];
        assert_eq!(energy.len() as u64, v["steps"].as_u64().unwrap(), "{name}");
    }
}
