//! `who` targets: never a panic, and what parses is shown as text that parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(target) = text.parse::<portstat::core::target::Target>() {
        // What parses is shown as text that parses to the same target.
        let shown = target.to_string();
        let again: portstat::core::target::Target = shown.parse().expect("a shown target parses");
        assert_eq!(again.to_string(), shown);
    }
});
