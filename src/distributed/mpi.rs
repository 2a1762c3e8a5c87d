//! The MPI transport: [`Exchange`] over an rsmpi communicator (the `distributed` feature,
//! linked against the system MPI — Open MPI on Debian, `make deps`).
//!
//! ```text
//! let universe = mpi::initialize().expect("MPI initialised once");
//! let exchange = MpiExchange::new(universe.world());
//! ```

use super::exchange::Exchange;
use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

/// One rank of an MPI communicator.
pub struct MpiExchange {
    comm: SimpleCommunicator,
}

impl MpiExchange {
    /// Wraps `comm` (usually `universe.world()`).
    pub fn new(comm: SimpleCommunicator) -> MpiExchange {
        MpiExchange { comm }
    }

    /// The communicator.
    pub fn communicator(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

/// MPI counts are C ints; the solvers refuse blocks beyond them when they are planned
/// ([`super::poisson::SlabPoissonSolver::new`]), so this conversion cannot fail there.
fn counts(values: &[usize]) -> Vec<Count> {
    values.iter().map(|&v| Count::try_from(v).expect("block within MPI's count range")).collect()
}

impl Exchange for MpiExchange {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
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
        let send = Partition::new(send, counts(send_counts), counts(send_displs));
        let mut recv = PartitionMut::new(recv, counts(recv_counts), counts(recv_displs));
        self.comm.all_to_all_varcount_into(&send, &mut recv);
    }

    fn sum(&self, value: f64) -> f64 {
        let mut out = 0.0;
        self.comm.all_reduce_into(&value, &mut out, SystemOperation::sum());
        out
    }

    fn max(&self, value: f64) -> f64 {
        let mut out = 0.0;
        self.comm.all_reduce_into(&value, &mut out, SystemOperation::max());
        out
    }
}
