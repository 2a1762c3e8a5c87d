//! The collective operations a distributed solver needs from its transport.
//!
//! [`Exchange`] is one SPMD process group: every rank calls each operation in the same order.
//! Implementations: [`Single`] (one rank, no transport), [`LocalWorld`] (P threads in one
//! process — the decomposed algorithms' tests run on it without an MPI installation) and, with
//! the `distributed` feature, [`super::mpi::MpiExchange`] over a real MPI communicator.

use crate::error::{Error, Result};
use std::sync::{Arc, Barrier, Mutex};

/// Collective operations of one group of ranks.
pub trait Exchange {
    /// This process' rank, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// `MPI_Alltoallv` on `f64`: rank q receives `send[send_displs[q]..][..send_counts[q]]`
    /// into its `recv[recv_displs[r]..][..recv_counts[r]]`, r this rank.
    fn all_to_all_v(
        &self,
        send: &[f64],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [f64],
        recv_counts: &[usize],
        recv_displs: &[usize],
    );
    /// The sum of `value` over the ranks, the same on every rank.
    fn sum(&self, value: f64) -> f64;
    /// The largest `value` over the ranks, the same on every rank.
    fn max(&self, value: f64) -> f64;
}

/// One rank: every collective is local.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Exchange for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_to_all_v(
        &self,
        send: &[f64],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [f64],
        _recv_counts: &[usize],
        recv_displs: &[usize],
    ) {
        let n = send_counts[0];
        recv[recv_displs[0]..recv_displs[0] + n]
            .copy_from_slice(&send[send_displs[0]..send_displs[0] + n]);
    }
    fn sum(&self, value: f64) -> f64 {
        value
    }
    fn max(&self, value: f64) -> f64 {
        value
    }
}

/// What the threads of a [`LocalWorld`] share: a mailbox per (sender, receiver) pair, a slot
/// per rank for reductions, and a barrier.
struct Shared {
    size: usize,
    mail: Mutex<Vec<Vec<f64>>>,
    slots: Mutex<Vec<f64>>,
    barrier: Barrier,
}

/// P ranks as P threads of this process, for tests of the decomposed algorithms: the same
/// collectives as MPI, deterministic (reductions in rank order).
pub struct LocalWorld;

impl LocalWorld {
    /// Runs `body` on `size` ranks (threads) and returns their results in rank order.
    pub fn run<T: Send>(size: usize, body: impl Fn(&LocalExchange) -> T + Sync) -> Vec<T> {
        let shared = Arc::new(Shared {
            size,
            mail: Mutex::new(vec![Vec::new(); size * size]),
            slots: Mutex::new(vec![0.0; size]),
            barrier: Barrier::new(size),
        });
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let exchange = LocalExchange { rank, shared: shared.clone() };
                    let body = &body;
                    scope.spawn(move || body(&exchange))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a rank panicked")).collect()
        })
    }
}

/// One rank of a [`LocalWorld`].
pub struct LocalExchange {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalExchange {
    fn reduce(&self, value: f64, op: impl Fn(f64, f64) -> f64) -> f64 {
        let s = &self.shared;
        s.slots.lock().expect("slots")[self.rank] = value;
        s.barrier.wait();
        let out = s.slots.lock().expect("slots").iter().copied().reduce(op).expect("ranks");
        s.barrier.wait();
        out
    }
}

impl Exchange for LocalExchange {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn all_to_all_v(
        &self,
        send: &[f64],
        send_counts: &[usize],
        send_displs: &[usize],
        recv: &mut [f64],
        recv_counts: &[usize],
        recv_displs: &[usize],
    ) {
        let s = &self.shared;
        let p = s.size;
        {
            let mut mail = s.mail.lock().expect("mail");
            for q in 0..p {
                let block = &send[send_displs[q]..send_displs[q] + send_counts[q]];
                mail[self.rank * p + q] = block.to_vec();
            }
        }
        s.barrier.wait();
        {
            let mail = s.mail.lock().expect("mail");
            for r in 0..p {
                let block = &mail[r * p + self.rank];
                assert_eq!(block.len(), recv_counts[r], "all_to_all_v: counts disagree");
                recv[recv_displs[r]..recv_displs[r] + block.len()].copy_from_slice(block);
            }
        }
        s.barrier.wait();
    }
    fn sum(&self, value: f64) -> f64 {
        self.reduce(value, |a, b| a + b)
    }
    fn max(&self, value: f64) -> f64 {
        self.reduce(value, f64::max)
    }
}

/// Whether `result` failed on any rank: every rank gets the same verdict — its own error
/// where it failed, else the error of the lowest failing rank (its message sent to every
/// rank), so that whichever rank reports says what went wrong. A collective.
pub fn agree<T>(ex: &impl Exchange, result: Result<T>, what: &str) -> Result<T> {
    let rank = ex.rank();
    let first = -ex.max(if result.is_err() { -(rank as f64) } else { f64::NEG_INFINITY });
    if !first.is_finite() {
        return result;
    }
    let first = first as usize;
    // The lowest failing rank's message, one byte per value, to every rank.
    let bytes: Vec<f64> = match (&result, rank == first) {
        (Err(e), true) => e.to_string().bytes().map(f64::from).collect(),
        _ => Vec::new(),
    };
    let len = ex.max(bytes.len() as f64) as usize;
    let ranks = ex.size();
    let send: Vec<f64> = (0..ranks).flat_map(|_| bytes.iter().copied()).collect();
    let recv_counts: Vec<usize> = (0..ranks).map(|r| if r == first { len } else { 0 }).collect();
    let message = super::exchange_blocks(ex, &send, &vec![bytes.len(); ranks], &recv_counts);
    match result {
        Err(e) => Err(e),
        Ok(_) => {
            let text: Vec<u8> = message.iter().map(|&b| b as u8).collect();
            Err(Error::invalid(format!(
                "{} (rank {first} of {ranks}, {what})",
                String::from_utf8_lossy(&text)
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rank receives from every other exactly the block addressed to it, in rank order;
    /// reductions agree on every rank.
    #[test]
    fn local_world_moves_blocks_like_alltoallv() {
        let p = 3;
        let results = LocalWorld::run(p, |ex| {
            let r = ex.rank();
            // Rank r sends q + 1 copies of 10r + q to rank q.
            let counts: Vec<usize> = (0..p).map(|q| q + 1).collect();
            let displs: Vec<usize> = (0..p).map(|q| q * (q + 1) / 2).collect();
            let send: Vec<f64> = (0..p).flat_map(|q| vec![(10 * r + q) as f64; q + 1]).collect();
            let recv_counts = vec![r + 1; p];
            let recv_displs: Vec<usize> = (0..p).map(|q| q * (r + 1)).collect();
            let mut recv = vec![0.0; p * (r + 1)];
            ex.all_to_all_v(&send, &counts, &displs, &mut recv, &recv_counts, &recv_displs);
            (recv, ex.sum(r as f64), ex.max(r as f64))
        });
        for (r, (recv, sum, max)) in results.into_iter().enumerate() {
            let expected: Vec<f64> =
                (0..p).flat_map(|q| vec![(10 * q + r) as f64; r + 1]).collect();
            assert_eq!(recv, expected);
            assert_eq!(sum, 3.0);
            assert_eq!(max, 2.0);
        }
    }

    /// Ranks that failed keep their errors; the others get the lowest failing rank's message
    /// (UTF-8 intact); without a failure every rank keeps its value.
    #[test]
    fn agree_sends_the_first_failure_to_every_rank() {
        let verdicts = LocalWorld::run(4, |ex| {
            let r = ex.rank();
            let result = if r == 1 || r == 2 {
                Err(Error::invalid(format!("rank {r}: ν ≤ 0 ✗")))
            } else {
                Ok(r)
            };
            agree(ex, result, "reading").map_err(|e| e.to_string())
        });
        assert_eq!(verdicts[1], Err("rank 1: ν ≤ 0 ✗".to_string()));
        assert_eq!(verdicts[2], Err("rank 2: ν ≤ 0 ✗".to_string()));
        for r in [0, 3] {
            assert_eq!(verdicts[r], Err("rank 1: ν ≤ 0 ✗ (rank 1 of 4, reading)".to_string()));
        }
        let fine = LocalWorld::run(3, |ex| agree(ex, Ok(ex.rank()), "x").unwrap());
        assert_eq!(fine, vec![0, 1, 2]);
    }
}
