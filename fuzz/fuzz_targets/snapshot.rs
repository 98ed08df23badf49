//! JSON snapshots as audit reads them: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let services = portstat::core::services::Services::with_system_services(None);
    let _ = portstat::core::audit::listener::from_snapshot_text(&text, &services);
});
