//! `otgrid verify`: the OT solvers against closed forms and reference values — the classic
//! suite (every method, orders of convergence) and the problem zoo (default settings over
//! the density pairs users bring).

use otgrid::error::{Error, Result};
use otgrid::ot::verify::Suite;
use otgrid::ot::{verify_case, Case, Method, VerifyRow};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Which suite: classic (closed-form cases, each with the methods meant for it) or zoo
    /// (every ordinary kind of density pair, `otgrid ot`'s default method and settings).
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

pub fn run(args: &VerifyArgs, report: &mut super::Report) -> Result<()> {
    let suite = match args.suite.as_str() {
        "classic" => Suite::Classic,
        "zoo" => Suite::Zoo,
        other => {
            return Err(Error::invalid(format!(
                "unknown suite '{other}' (expected classic or zoo)"
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
