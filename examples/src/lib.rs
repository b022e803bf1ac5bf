//! Examples of embedding Teflon's engine in your own Rust program; the code is in `examples/`.
//!
//! - `cargo run -p teflon-examples --example pager [-- FILE]`: another controller embeds
//!   `teflon-core` with its own `ClusterView` (its inventory of pods) and its own `Actuator`,
//!   which pages a human (a JSON line on stdout or in `FILE`) instead of reaping the pod.
//! - `cargo run -p teflon-examples --example replay_in_process`: saved Falco alerts, parsed by
//!   `teflon-falco`, run through the engine in-process against a toy cluster; prints the
//!   decisions in the `teflon replay --format jsonl` shape.
//!
//! Both run under `cargo test` (`test = true` in `Cargo.toml`). This library is empty.
