//! The attack autoscaler's pure decision logic (SPEC §6 `autoscale`, §8).
//!
//! Filled by the attack-as-load work: given a workload's stats, its bounds and the time of
//! the last change, choose the replica count. The loop that applies it lives in teflon-server.
