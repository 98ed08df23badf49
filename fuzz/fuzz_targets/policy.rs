//! Audit policies (TOML): never a panic, errors included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(error) = portstat::core::audit::policy::parse(&text) {
        let _ = error.in_file("portstat.toml");
    }
});
