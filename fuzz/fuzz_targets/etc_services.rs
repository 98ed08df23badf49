//! /etc/services text: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let services = portstat::core::services::Services::with_system_services(Some(&text));
    let _ = services.name(22, portstat::core::model::Proto::Tcp);
});
