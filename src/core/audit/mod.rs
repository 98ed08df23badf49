//! The audit's judging, pure: `exposure` classifies addresses, `rules` finds risks, `policy`
//! checks an allow-list, `drift` compares with a baseline, `outcome` decides pass or fail.

pub mod drift;
pub mod exposure;
pub mod listener;
pub mod outcome;
pub mod policy;
pub mod rules;
