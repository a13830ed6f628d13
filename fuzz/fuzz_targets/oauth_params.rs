#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idbridge_fuzz::oauth_params(data));
