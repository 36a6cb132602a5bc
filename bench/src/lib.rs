//! reel's benchmarks: the library behind the `load` and `report` binaries.
//!
//! - [`server`]: a real `reel serve` child process on loopback, for the HTTP scenarios;
//! - [`monitor`]: CPU and RSS of a process over time (sysinfo);
//! - [`tally`]: latency percentiles, throughput and error rates of timed operations;
//! - [`http_load`]: the `api`, `burst` and `generate` scenarios over HTTP;
//! - [`scenario`]: the scenarios' names, shared by the `load` and `report` binaries;
//! - [`storage_load`]: the `storage` scenario against the sled store directly;
//! - [`soak`]: tasks over a long time with RSS, CPU and latency sampled every second;
//! - [`report`]: runs a bounded set of scenarios, judges the original targets, draws SVG plots,
//!   writes the Markdown report, and gates against a stored baseline.
//!
//! The other binaries (`denoiser_throughput`, `post_throughput`, `evaluate`) measure the
//! kernels and the pipeline in-process and need none of this.

#![warn(missing_docs)]

pub mod http_load;
pub mod monitor;
pub mod report;
pub mod scenario;
pub mod server;
pub mod soak;
pub mod storage_load;
pub mod tally;
