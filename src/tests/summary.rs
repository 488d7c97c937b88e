//! The summary file's text: round trip and refusals.

use crate::chunk_set::ChunkSet;
use crate::manifest::SwarmId;
use crate::summary::{parse, render, SummaryError};

#[test]
fn round_trip() {
    for ids in [vec![], vec![0], vec![0, 3, 17, 40], (0..41).collect::<Vec<u32>>()] {
        let mut set = ChunkSet::empty(41);
        for &id in &ids {
            set.insert(id);
        }
        let text = render(SwarmId([9; 32]), &set);
        assert!(text.starts_with("# swarmshare summary"));
        assert!(text.contains(&format!("# {} of 41 chunks", ids.len())));
        assert_eq!(parse(&text, 41).unwrap(), set);
    }
}

#[test]
fn refuses_garbage_and_out_of_range() {
    assert_eq!(
        parse("# x\n1\nfoo\n", 10),
        Err(SummaryError::NotAnId {
            line: 3,
            text: "foo".into()
        })
    );
    assert_eq!(
        parse("10\n", 10),
        Err(SummaryError::OutOfRange {
            line: 1,
            id: 10,
            count: 10
        })
    );
    assert!(parse("-1\n", 10).is_err());
    assert!(parse("99999999999\n", 10).is_err());
}
