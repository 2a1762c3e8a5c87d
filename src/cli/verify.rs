//! `otgrid verify`: the OT solvers against closed-form Brenier maps at several resolutions.

use otgrid::error::{Error, Result};
use otgrid::ot::{verify_case, Case, Method, VerifyRow};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Case(s) to run (repeatable): gaussian-2d, gaussian-3d, separable-2d, periodic-2d,
    /// periodic-3d. Default: all.
    #[arg(long = "case", value_name = "NAME")]
    pub cases: Vec<String>,
    /// Only this method (bfm, newton or parabolic). Default: each case's methods (Newton only where the
    /// densities are bounded away from zero).
    #[arg(long)]
    pub method: Option<String>,
    /// Cells per axis, comma-separated (e.g. 32,64,128). Default: each case's own.
    #[arg(long, value_name = "N,N,…")]
    pub sizes: Option<String>,
    /// Print the rows as JSON on stdout.
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

fn json_row(r: &VerifyRow) -> String {
    let order = r.order.map_or("null".to_string(), |o| format!("{o:.3}"));
    format!(
        "  {{\"case\": \"{}\", \"method\": \"{}\", \"cells\": {}, \"converged\": {}, \
         \"iterations\": {}, \"seconds\": {:.3}, \"map_error_l2\": {:.4e}, \
         \"map_error_max_bulk\": {:.4e}, \"w2_relative_error\": {:.4e}, \"order\": {order}}}",
        r.case.name(),
        r.method.name(),
        r.cells,
        r.converged,
        r.iterations,
        r.seconds,
        r.error.l2,
        r.error.max,
        r.w2_relative_error
    )
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let cases: Vec<Case> = if args.cases.is_empty() {
        Case::ALL.to_vec()
    } else {
        args.cases.iter().map(|c| Case::from_name(c)).collect::<Result<_>>()?
    };
    let only = args.method.as_deref().map(Method::from_name).transpose()?;
    let sizes = args.sizes.as_deref().map(parse_sizes).transpose()?;
    let mut rows = Vec::new();
    if !args.json {
        println!(
            "{:<13} {:<7} {:>5} {:>5} {:>6} {:>9} {:>10} {:>10} {:>10} {:>6}",
            "case",
            "method",
            "n",
            "conv",
            "iters",
            "time[s]",
            "L2(mu)",
            "max bulk",
            "W2² rel",
            "order"
        );
    }
    for case in cases {
        let methods: Vec<Method> = match only {
            Some(m) => vec![m],
            None => case.methods().to_vec(),
        };
        for method in methods {
            let sizes = sizes.as_deref().unwrap_or(case.sizes());
            for r in verify_case(case, method, sizes)? {
                if !args.json {
                    println!(
                        "{:<13} {:<7} {:>5} {:>5} {:>6} {:>9.3} {:>10.3e} {:>10.3e} {:>10.3e} {:>6}",
                        case.name(),
                        method.name(),
                        r.cells,
                        if r.converged { "yes" } else { "NO" },
                        r.iterations,
                        r.seconds,
                        r.error.l2,
                        r.error.max,
                        r.w2_relative_error,
                        r.order.map_or("-".to_string(), |o| format!("{o:.2}"))
                    );
                }
                rows.push(r);
            }
        }
    }
    if args.json {
        let body: Vec<String> = rows.iter().map(json_row).collect();
        println!("[\n{}\n]", body.join(",\n"));
    }
    Ok(())
}
