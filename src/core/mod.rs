//! Plain data and pure logic: no I/O happens here. What the OS says comes in as data.

pub mod audit;
pub mod cgroup;
pub mod counters;
pub mod error;
pub mod filter;
pub mod firewall;
pub mod meaning;
pub mod model;
pub mod probe;
pub mod query;
pub mod services;
pub mod snapshot;
pub mod stop;
pub mod summary;
pub mod target;
pub mod text;
pub mod top;
pub mod verdict;
pub mod watch;
