//! Readers of the host's firewall rules, one per tool, into [`crate::core::firewall`]'s model.

pub mod iptables;
pub mod nft;
