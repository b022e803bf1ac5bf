//! Any bytes through every Tetragon entry point (and the per-item format sniffer and the mixed
//! Falco + Tetragon reader the CLI and the server use): no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = teflon_tetragon::parse_event(data);
    let _ = teflon_tetragon::parse_batch(data);
    let _ = teflon_tetragon::events_from_slice(data).count();
    let _ = teflon_tetragon::events_from_reader(data).count();
    let _ = teflon_tetragon::any::sniff(data);
    let _ = teflon_tetragon::any::parse_batch(data);
    let _ = teflon_tetragon::any::events_from_slice(data).count();
    let _ = teflon_tetragon::any::events_from_reader(data).count();
});
