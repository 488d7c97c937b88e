//! Manifests and summary files from arbitrary bytes: see `swarmshare::fuzzing::manifest_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| swarmshare::fuzzing::manifest_parser(data));
