//! Replays the committed fuzz corpus (`fuzz/corpus/`) through the fuzz targets' bodies, so
//! every input the fuzzer kept, and every crash it once found, is checked by `cargo test`.

use std::path::Path;

use swarmshare::fuzzing;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        body(&std::fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(
        inputs >= 5,
        "{target}: only {inputs} corpus inputs in {}",
        dir.display()
    );
}

#[test]
fn wire_decoder_corpus() {
    replay("wire_decoder", fuzzing::wire_decoder);
}

#[test]
fn manifest_parser_corpus() {
    replay("manifest_parser", fuzzing::manifest_parser);
}

#[test]
fn secure_handshake_corpus() {
    replay("secure_handshake", fuzzing::secure_handshake);
}
