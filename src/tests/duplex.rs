//! Two-way links (`connection::duplex`): both sides ask and answer on one connection, each
//! direction in order and neither held up by the other; what the other side may leave
//! waiting is bounded, and an answer nobody asked for is a violation.

use std::time::Duration;

use bytes::Bytes;

use super::connection::pair;
use crate::chunk_store::ChunkBody;
use crate::connection::{Connection, Duplex};
use crate::error::PeerError;
use crate::wire::Message;

const WAIT: Duration = Duration::from_secs(10);

/// One end of a two-way link.
struct Sides {
    serving: Connection,
    fetching: Connection,
}

/// Both ends of a connected pair, split, their pumps running.
async fn linked() -> (Sides, Sides) {
    let (dialer, listener) = pair().await;
    let start = |conn: Connection| {
        let Duplex {
            serving,
            fetching,
            pump,
        } = conn.into_duplex(1 << 20).unwrap();
        tokio::spawn(pump.run());
        Sides { serving, fetching }
    };
    (start(dialer), start(listener))
}

async fn next(conn: &mut Connection) -> Result<Option<Message>, PeerError> {
    conn.read_message(WAIT, "test").await
}

#[tokio::test]
async fn both_sides_ask_and_answer_on_one_connection() {
    let (mut a, mut b) = linked().await;
    // Each asks the other at once.
    a.fetching.write_message(&Message::Request(3)).await.unwrap();
    b.fetching.write_message(&Message::ListRequest).await.unwrap();
    assert!(matches!(
        next(&mut b.serving).await,
        Ok(Some(Message::Request(3)))
    ));
    assert!(matches!(
        next(&mut a.serving).await,
        Ok(Some(Message::ListRequest))
    ));
    // A chunk one way while a list goes the other.
    let bytes = Bytes::from(vec![9u8; 102_400]);
    b.serving
        .write_chunk(3, &ChunkBody::Memory(bytes.clone()))
        .await
        .unwrap();
    a.serving.write_message(&Message::NotHave(1)).await.unwrap();
    match next(&mut a.fetching).await {
        Ok(Some(Message::Chunk { id: 3, data })) => assert_eq!(data, bytes),
        other => panic!("expected chunk 3, got {other:?}"),
    }
    assert!(matches!(
        next(&mut b.fetching).await,
        Ok(Some(Message::NotHave(1)))
    ));
}

#[tokio::test]
async fn a_side_that_is_done_leaves_the_other_working() {
    let (mut a, mut b) = linked().await;
    // A's download is done: its fetching side goes; B still asks and A still answers.
    drop(a.fetching);
    drop(b.serving);
    for id in 0..5 {
        b.fetching.write_message(&Message::Request(id)).await.unwrap();
        assert!(matches!(next(&mut a.serving).await, Ok(Some(Message::Request(got))) if got == id));
        a.serving.write_message(&Message::NotHave(id)).await.unwrap();
        assert!(matches!(next(&mut b.fetching).await, Ok(Some(Message::NotHave(got))) if got == id));
    }
    // B is done too: A's serving side hears the close.
    drop(b.fetching);
    assert!(matches!(next(&mut a.serving).await, Ok(None)));
}

#[tokio::test]
async fn an_answer_to_nothing_is_a_violation() {
    let (mut a, mut b) = linked().await;
    b.serving.write_message(&Message::NotHave(7)).await.unwrap();
    let got = next(&mut a.fetching).await;
    assert!(matches!(&got, Err(e) if e.is_violation()), "{got:?}");
    // The link is over for both sides.
    assert!(matches!(next(&mut a.serving).await, Ok(None)));
}

#[tokio::test]
async fn more_than_64_requests_unanswered_is_a_violation() {
    let (mut a, mut b) = linked().await;
    // B never reads its requests; A floods.
    for id in 0..65 {
        a.fetching.queue_message(&Message::Request(id));
    }
    a.fetching.flush().await.unwrap();
    // B's pump closed the link: A's pump hears the close, and B's serving side, which
    // read nothing, finds the 64 requests it holds and then the end.
    let mut held = 0;
    while let Ok(Some(Message::Request(_))) = next(&mut b.serving).await {
        held += 1;
    }
    assert_eq!(held, 64);
    assert!(matches!(next(&mut a.fetching).await, Ok(None) | Err(_)));
}

#[tokio::test]
async fn a_manifest_on_a_two_way_link_is_a_violation() {
    let (mut a, mut b) = linked().await;
    a.fetching.write_message(&Message::ListRequest).await.unwrap();
    b.serving
        .write_message(&Message::BatchEnd { count: 0 })
        .await
        .unwrap();
    let got = next(&mut a.fetching).await;
    assert!(matches!(&got, Err(e) if e.is_violation()), "{got:?}");
}

#[tokio::test]
async fn a_side_that_finds_the_other_hostile_ends_the_whole_link() {
    let (a, mut b) = linked().await;
    // A's fetching side judged B hostile: A's serving side goes too, and B hears the end
    // on both of its sides.
    a.fetching.abort();
    let mut a_serving = a.serving;
    assert!(matches!(next(&mut a_serving).await, Ok(None)));
    assert!(matches!(next(&mut b.serving).await, Ok(None)));
    assert!(matches!(next(&mut b.fetching).await, Ok(None)));
}

#[tokio::test]
async fn a_violation_found_while_no_answer_is_due_waits_for_the_fetching_side() {
    let (mut a, mut b) = linked().await;
    // A asks nothing; B answers anyway. A's fetching side, not reading, finds out when it
    // next looks (its link then strikes B rather than taking it for a plain close).
    b.serving.write_message(&Message::NotHave(1)).await.unwrap();
    assert!(matches!(next(&mut a.serving).await, Ok(None)), "the link is over");
    let found = a.fetching.failure();
    assert!(found.as_ref().is_some_and(PeerError::is_violation), "{found:?}");
}
