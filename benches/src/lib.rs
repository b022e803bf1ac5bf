//! Criterion benchmarks of Teflon's hot paths (`benches/`): alert parsing and `Engine::decide`.
//! Run them with `cargo bench -p teflon-benches`; figures are recorded in BENCHMARKS.md.
