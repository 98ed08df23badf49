//! Watch intervals: never a panic, never shorter than 10ms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(duration) = portstat::cli::parse::interval(&text) {
        assert!(duration >= std::time::Duration::from_millis(10));
    }
});
