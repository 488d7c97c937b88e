//! The encrypted handshake and tickets from arbitrary bytes: see
//! `swarmshare::fuzzing::secure_handshake`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| swarmshare::fuzzing::secure_handshake(data));
