//! Frames, messages and hellos from arbitrary bytes: see `swarmshare::fuzzing::wire_decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| swarmshare::fuzzing::wire_decoder(data));
