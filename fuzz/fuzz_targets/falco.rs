//! Any bytes through every Falco entry point: no panic, and whatever parses writes back to
//! Falco JSON that parses to the same alert.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = teflon_falco::parse_batch(data);
    for alert in teflon_falco::alerts_from_reader(data).flatten() {
        let json = teflon_falco::to_falco_json(&alert);
        let back = teflon_falco::parse_alert(json.as_bytes());
        // NaN / infinite floats cannot be JSON; every other alert must round-trip.
        let has_non_finite = alert
            .fields
            .iter()
            .any(|(_, v)| matches!(v, teflon_core::FieldValue::F64(x) if !x.is_finite()));
        if !has_non_finite {
            assert_eq!(back.as_ref().ok(), Some(&alert), "{json}");
        }
    }
    let _ = teflon_falco::alerts_from_slice(data).count();
    let _ = teflon_falco::parse_alert(data);
});
