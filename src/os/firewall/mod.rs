//! Readers of the firewall tools' output into `core::firewall`'s model.

pub mod iptables;
