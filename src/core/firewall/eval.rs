//! Walking a new inbound packet through a [`Ruleset`](super::Ruleset): where it ends up, and
//! which rule decided.
