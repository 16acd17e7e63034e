//! Fuzz target: bytes as a policy file (TOML), a grant and a condition.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        warden_service::fuzzing::policy_file(text);
    }
});
