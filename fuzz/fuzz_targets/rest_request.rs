//! libFuzzer entry point of [`bcfl_fuzz::rest_request`]; see `scripts/fuzz.sh`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bcfl_fuzz::rest_request(data));
