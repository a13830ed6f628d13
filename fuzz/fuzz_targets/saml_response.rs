#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| idbridge_fuzz::saml_response(data));
