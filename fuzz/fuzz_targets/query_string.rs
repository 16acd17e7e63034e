//! Fuzz target: bytes as the query string of every list and filter endpoint.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_server::fuzzing::every_query(&String::from_utf8_lossy(data));
});
