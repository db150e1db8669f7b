//! Shared pieces of alf's benchmarks and load binaries (loopback servers, counters, reports).

pub mod load;
