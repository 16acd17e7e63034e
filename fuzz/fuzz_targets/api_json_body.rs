//! Fuzz target: bytes as the JSON body of every API operation (and of every record object).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_server::fuzzing::body_bytes(data);
});
