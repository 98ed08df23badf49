//! The audit's judging, pure: `exposure` classifies addresses, `rules` finds risks, `policy`
//! checks an allow-list, `drift` compares with a baseline, `probe_rules` judges what `--probe` heard, `outcome` decides pass or fail.

pub mod drift;
pub mod exposure;
pub mod finding;
pub mod listener;
pub mod outcome;
pub mod policy;
pub mod probe_rules;
pub mod rules;
