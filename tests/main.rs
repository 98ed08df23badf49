//! portstat's integration tests: one binary, a module per command. End-to-end tests run the
//! built binary against real sockets on loopback and, as root, in private network namespaces
//! they create (root-only tests are `#[ignore = "needs root"]` and named `root_*`: `cargo
//! xtask test` runs them when it can). Golden tests run whole commands against a fake OS.

mod common;
#[cfg(target_os = "linux")]
mod golden;

#[cfg(target_os = "linux")]
mod audit;
#[cfg(target_os = "linux")]
mod backends;
#[cfg(target_os = "linux")]
mod churn;
#[cfg(target_os = "linux")]
mod cli;
#[cfg(target_os = "linux")]
mod conventions;
#[cfg(target_os = "linux")]
mod escapes;
#[cfg(target_os = "linux")]
mod filters;
#[cfg(target_os = "linux")]
mod hostile;
#[cfg(target_os = "linux")]
mod info;
#[cfg(target_os = "linux")]
mod lab;
#[cfg(target_os = "linux")]
mod limits;
#[cfg(target_os = "linux")]
mod list;
#[cfg(target_os = "linux")]
mod metrics;
#[cfg(target_os = "linux")]
mod netns;
#[cfg(target_os = "linux")]
mod nfnl;
#[cfg(target_os = "linux")]
mod probe;
#[cfg(target_os = "linux")]
mod props;
#[cfg(target_os = "linux")]
mod reach;
#[cfg(target_os = "linux")]
mod root;
#[cfg(target_os = "linux")]
mod stop;
#[cfg(target_os = "linux")]
mod summary;
#[cfg(target_os = "linux")]
mod top;
#[cfg(target_os = "linux")]
mod watch;
#[cfg(target_os = "linux")]
mod who;
#[cfg(target_os = "linux")]
mod zones;
