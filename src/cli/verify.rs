//! `otgrid verify`: the OT solvers against closed forms and reference values — the classic
//! suite (every method, orders of convergence) and the problem zoo (default settings over
//! the density pairs users bring) — and the gradient-flow zoo (`--suite flows`).

use otgrid::error::{Error, Result};
use otgrid::ot::flow::zoo::{FlowCase, FLOW_ZOO};
use otgrid::ot::verify::Suite;
use otgrid::ot::{verify_case, Case, Method, VerifyRow};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Which suite: classic (closed-form cases, each with the methods meant for it), zoo
    /// (every ordinary kind of density pair, `otgrid ot`'s default method and settings) or
    /// flows (gradient flows over the densities and energies users bring, `otgrid flow`'s
    /// defaults: mass, positivity, energy descent and each step's marginal error checked).
    #[arg(long, default_value = "classic", value_name = "SUITE")]
    pub suite: String,
    /// Case(s) to run (repeatable; `--list` names them). Default: the suite's cases.
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// List the suite's cases and exit.
    #[arg(long)]
    pub list: bool,
    /// Only this method (bfm, newton, parabolic, sinkhorn or auto). Default: classic — each
    /// case's methods (Newton only where the densities are bounded away from zero); zoo —
    /// auto.
    #[arg(long)]
    pub method: Option<String>,
    /// Cells per axis, comma-separated (e.g. 32,64,128). Default: each case's own.
    #[arg(long, value_name = "N,N,…")]
    pub sizes: Option<String>,
    /// The flows suite's time scheme: jko (default) or bdf2 (its energy is not checked to
    /// fall at every step: BDF2 does not guarantee it).
    #[arg(long, value_name = "SCHEME")]
    pub scheme: Option<otgrid::ot::flow::TimeScheme>,
    /// Print one JSON object on stdout: status, solved and not_solved counts, rows.
    #[arg(long)]
    pub json: bool,
}

fn parse_sizes(text: &str) -> Result<Vec<usize>> {
    let sizes: Vec<usize> =
        text.split(',')
            .map(|t| {
                t.trim().parse::<usize>().ok().filter(|&n| n >= 4).ok_or_else(|| {
                    Error::invalid(format!("--sizes: '{t}' is not a cell count ≥ 4"))
                })
            })
            .collect::<Result<_>>()?;
    if sizes.is_empty() {
        return Err(Error::invalid("--sizes: no sizes given"));
    }
    Ok(sizes)
}

fn sci(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3e}"))
}

fn print_row(r: &VerifyRow) {
    if let Some(reason) = &r.refused {
        println!("{:<21} {:<6} {:>4} refused: {reason}", r.case, r.method, r.cells);
        return;
    }
    println!(
        "{:<21} {:<6} {:>4} {:<20} {:>5} {:>8.3} {:>10} {:>10} {:>10} {:>10} {:>6}",
        r.case,
        r.method,
        r.cells,
        r.outcome,
        r.iterations,
        r.seconds,
        sci(r.error.map(|e| e.l2)),
        sci(r.error.map(|e| e.l2_all)),
        sci(r.w2_relative_error),
        format!("{:+.2e}", r.cost_gap),
        r.order.map_or("-".to_string(), |o| format!("{o:.2}"))
    );
}

/// `otgrid verify --suite flows`: the gradient-flow zoo ([`FLOW_ZOO`]).
fn run_flows(args: &VerifyArgs, report: &mut super::Report) -> Result<()> {
    if args.list {
        for case in &FLOW_ZOO {
            println!("{:<20} {}D  {}", case.name, case.dim, case.description);
        }
        return Ok(());
    }
    if args.method.is_some() {
        return Err(Error::invalid("--method: the flows suite runs `otgrid flow`'s JKO steps"));
    }
    let cases: Vec<FlowCase> = if args.cases.is_empty() {
        FLOW_ZOO.to_vec()
    } else {
        args.cases.iter().map(|c| FlowCase::from_name(c)).collect::<Result<_>>()?
    };
    let sizes = args.sizes.as_deref().map(parse_sizes).transpose()?;
    for case in &cases {
        let largest = sizes.as_deref().map_or(case.cells, |s| s.iter().copied().max().unwrap_or(4));
        let grid = otgrid::grid::Grid::unit(case.dim, largest, case.boundary)?;
        otgrid::resources::MemoryEstimate::fields(&grid, 50.0, 0, &format!("verify {}", case.name))
            .check(report.memory_limit)?;
    }
    if !args.json {
        println!(
            "{:<20} {:>4} {:>5} {:>6} {:>6} {:>8} {:>10} {:>10}  result",
            "case", "n", "steps", "iters", "CG", "time[s]", "H⁻¹ first", "H⁻¹ worst"
        );
    }
    let mut rows = Vec::new();
    for case in cases {
        for cells in sizes.clone().unwrap_or_else(|| vec![case.cells]) {
            let row = case.run(cells, args.scheme.unwrap_or_default())?;
            if !args.json {
                println!(
                    "{:<20} {:>4} {:>5} {:>6} {:>6} {:>8.3} {:>10.3e} {:>10.3e}  {}",
                    row.case,
                    row.cells,
                    row.steps,
                    row.iterations,
                    row.cg_iterations,
                    row.seconds,
                    row.first_error,
                    row.worst_error,
                    match (&row.reason, case.known_issue) {
                        (None, None) if row.entropic_steps > 0 => format!(
                            "solved ({} of them entropic steps: the dual ascent stalled against a \
                             far target)",
                            row.entropic_steps
                        ),
                        (None, None) if row.refined_steps > 0 => format!(
                            "solved ({} of them solved again on the grid refined twice per axis: \
                             their floor was above half a cell)",
                            row.refined_steps
                        ),
                        (None, None) => "solved".to_string(),
                        (None, Some(_)) => "solved (a known issue no longer seen)".to_string(),
                        (Some(r), None) => r.clone(),
                        (Some(r), Some(issue)) => format!("known issue: {r} — {issue}"),
                    }
                );
            }
            rows.push((row, case.known_issue.is_some()));
        }
    }
    let known = rows.iter().filter(|(r, k)| !r.solved && *k).count();
    let failed = rows.iter().filter(|(r, k)| !r.solved && !*k).count();
    let solved = rows.len() - known - failed;
    report.put("solved", solved);
    report.put("not_solved", failed);
    report.put("known_issues", known);
    report.put("rows", rows.iter().map(|(r, _)| r).collect::<Vec<_>>());
    if !args.json {
        println!("{solved} solved, {failed} not solved, {known} known issues");
    }
    if failed > 0 {
        return Err(Error::Numerical(format!(
            "{failed} of {} flows were not solved (not counting known issues)",
            rows.len()
        )));
    }
    Ok(())
}

pub fn run(args: &VerifyArgs, report: &mut super::Report) -> Result<()> {
    if args.scheme.is_some() && args.suite != "flows" {
        return Err(Error::invalid("--scheme is for the flows suite (--suite flows)"));
    }
    let suite = match args.suite.as_str() {
        "classic" => Suite::Classic,
        "zoo" => Suite::Zoo,
        "flows" => return run_flows(args, report),
        other => {
            return Err(Error::invalid(format!(
                "unknown suite '{other}' (expected classic, zoo or flows)"
            )))
        }
    };
    let members: &[Case] = if suite == Suite::Zoo { &Case::ZOO } else { &Case::CLASSIC };
    if args.list {
        for case in members {
            println!("{:<21} {}D  {}", case.name(), case.dim(), case.description());
        }
        return Ok(());
    }
    let cases: Vec<Case> = if args.cases.is_empty() {
        members.to_vec()
    } else {
        args.cases.iter().map(|c| Case::from_name(c)).collect::<Result<_>>()?
    };
    let only = match args.method.as_deref() {
        None | Some("auto") => None,
        Some(name) => Some(Method::from_name(name)?),
    };
    let sizes = args.sizes.as_deref().map(parse_sizes).transpose()?;
    let mut rows = Vec::new();
    if !args.json {
        println!(
            "{:<21} {:<6} {:>4} {:<20} {:>5} {:>8} {:>10} {:>10} {:>10} {:>10} {:>6}",
            "case",
            "method",
            "n",
            "outcome",
            "iters",
            "time[s]",
            "L2 bulk",
            "L2 all",
            "W2² rel",
            "cost gap",
            "order"
        );
    }
    // Every run's memory before the first: the largest grid of each case.
    for case in &cases {
        let largest = sizes.as_deref().unwrap_or(case.sizes()).iter().copied().max().unwrap_or(4);
        let grid = case.grid(largest)?;
        otgrid::resources::MemoryEstimate::ot(&grid, only, &format!("verify {}", case.name()))
            .check(report.memory_limit)?;
    }
    for case in cases {
        let methods: Vec<Option<Method>> = match (only, suite) {
            (Some(m), _) => vec![Some(m)],
            (None, Suite::Zoo) => vec![None],
            (None, Suite::Classic) => case.methods().iter().copied().map(Some).collect(),
        };
        for method in methods {
            let sizes = sizes.as_deref().unwrap_or(case.sizes());
            for r in verify_case(case, method, sizes, suite)? {
                if !args.json {
                    print_row(&r);
                }
                rows.push(r);
            }
        }
    }
    let refused = rows.iter().filter(|r| r.refused.is_some()).count();
    let failed = rows.iter().filter(|r| !r.solved && r.refused.is_none()).count();
    report.put("solved", rows.len() - failed - refused);
    report.put("not_solved", failed);
    report.put("refused", refused);
    report.put("rows", &rows);
    if !args.json {
        println!(
            "{} solved, {failed} not solved, {refused} refused",
            rows.len() - failed - refused
        );
    }
    if failed > 0 {
        return Err(Error::Numerical(format!("{failed} of {} runs were not solved", rows.len())));
    }
    Ok(())
}
