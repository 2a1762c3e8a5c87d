//! The planned spectral solver's `solve` performs no heap allocation (plan once, solve many),
//! nor does the pencil-decomposed one's on one rank (its transposes planned, their buffers
//! held: what is left per solve is the exchange's own).
//!
//! The solves run inside a one-thread rayon pool so that only the solver's own allocations
//! are counted: rayon itself allocates now and then — its global injector one 1520-byte
//! block per 63 jobs sent from outside the pool, its work-stealing deques when they grow or
//! shrink with the stealing pattern (both seen with this test). With one worker the deques
//! stay below their minimum capacity and the injector is not used.

use otgrid::spectral::{MeanPolicy, PoissonSolver, Symbol};
use otgrid::{BoundaryKind, Grid};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn solve_does_not_allocate() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(check_solves);
}

fn check_solves() {
    for (dim, n, kinds) in [
        (2, 96, vec![BoundaryKind::Periodic, BoundaryKind::Neumann]),
        (3, 24, vec![BoundaryKind::Dirichlet, BoundaryKind::Periodic, BoundaryKind::Neumann]),
    ] {
        let axes = kinds
            .iter()
            .map(|&k| otgrid::grid::Axis { cells: n, lower: 0.0, upper: 1.0, boundary: k })
            .collect();
        let grid = Grid::new(axes).unwrap();
        assert_eq!(grid.dim(), dim);
        let mut solver = PoissonSolver::new(&grid, 0.0, Symbol::Discrete)
            .unwrap()
            .with_mean_policy(MeanPolicy::Project);
        let f: Vec<f64> = (0..grid.num_cells()).map(|i| (i % 17) as f64).collect();
        let mut u = vec![0.0; f.len()];
        // Warm-up: rayon starts its thread pool and grows its work-stealing deques (amortised,
        // a one-off) during the first solves.
        for _ in 0..3 {
            solver.solve(&f, &mut u).unwrap();
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..20 {
            solver.solve(&f, &mut u).unwrap();
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(after - before, 0, "{dim}D solve allocated {} times", after - before);
        if dim == 3 {
            check_pencil_solves(&grid, &f, &u);
        }
    }
}

/// The pencil solver on one rank (its four transposes run through the planned moves) solves
/// as the serial solver does, allocating nothing.
fn check_pencil_solves(grid: &Grid, f: &[f64], serial: &[f64]) {
    use otgrid::distributed::{PencilPoissonSolver, Single};
    let mut solver = PencilPoissonSolver::new(grid, 0.0, Symbol::Discrete, &Single)
        .unwrap()
        .with_mean_policy(MeanPolicy::Project);
    let mut u = vec![0.0; f.len()];
    for _ in 0..3 {
        solver.solve(&Single, f, &mut u).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..20 {
        solver.solve(&Single, f, &mut u).unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(after - before, 0, "pencil solve allocated {} times", after - before);
    assert!(u == serial, "the pencil solve is the serial one to the bit");
}
