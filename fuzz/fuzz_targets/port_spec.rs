//! Port specs (`22,80,8000-9000`): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = text.parse::<portstat::core::query::PortSpec>();
});
