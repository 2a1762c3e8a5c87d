use ndarray::Array2;
use otgrid::sample::{sinkhorn_divergence, w2_assignment};
fn cloud(n: usize, d: usize, seed: u64, shift: f64) -> Array2<f64> {
    let mut state = seed;
    Array2::from_shape_fn((n, d), |_| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        shift + (state >> 11) as f64 / (1u64 << 53) as f64
    })
}
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let a = cloud(n, 2, 3, 0.0);
    let b = cloud(n, 2, 4, 0.05);
    let t = std::time::Instant::now();
    let w2 = if n <= 3000 { w2_assignment(a.view(), b.view()).unwrap().powi(2) } else { f64::NAN };
    println!("assignment {w2:.6e} {:.2}s", t.elapsed().as_secs_f64());
    for eps in [1e-2, 1e-3, 2e-4, 5e-5] {
        let t = std::time::Instant::now();
        let s = sinkhorn_divergence(a.view(), b.view(), Some(eps)).unwrap();
        println!(
            "eps {eps:e}: S {:.6e} gap {:.3e} passes {} conv {} {:.2}s",
            s.value,
            (s.value - w2) / w2,
            s.passes,
            s.converged,
            t.elapsed().as_secs_f64()
        );
    }
}
