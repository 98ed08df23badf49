//! /proc/net/{tcp,udp}{,6} tables: never a panic, at most one socket or warning a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for proto in [
        portstat::core::model::Proto::Tcp,
        portstat::core::model::Proto::Udp,
    ] {
        let (mut sockets, mut warnings) = (Vec::new(), Vec::new());
        portstat::os::procfs::parse_table(
            &*text,
            proto,
            "/proc/net/tcp",
            &mut sockets,
            &mut warnings,
        );
        // Every socket comes from a line of its own.
        assert!(sockets.len() <= text.lines().count());
    }
});
