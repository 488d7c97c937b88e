//! The rate limiter's arithmetic, in tokio's paused (virtual) time: no wall-clock timing.

use std::time::Duration;

use crate::config::parse_rate;
use crate::rate::{grid_point, RateLimit, BURST, WAKE_GRID};

fn virtual_time<F: std::future::Future>(f: F) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        f.await;
        start.elapsed()
    })
}

#[test]
fn a_capped_sender_never_beats_the_rate() {
    // 50 chunks of 100 KiB at 1 MB/s: 5.12 MB, so at least 5.12 s less the starting burst.
    let took = virtual_time(async {
        let limit = RateLimit::new(1_000_000);
        for _ in 0..50 {
            limit.acquire(102_400).await;
        }
    });
    let floor = Duration::from_secs_f64(5.12) - BURST;
    assert!(took >= floor, "{took:?} < {floor:?}");
    assert!(
        took <= Duration::from_secs_f64(5.2),
        "no needless waiting: {took:?}"
    );
}

/// What the download side uses with requests in flight: take only what the bucket holds
/// now, never go into debt, never wait.
#[test]
fn try_acquire_takes_only_what_is_there() {
    virtual_time(async {
        let limit = RateLimit::new(1_000_000); // a 50 ms burst: 50,000 bytes
        assert!(limit.try_acquire(40_000), "within the burst");
        assert!(!limit.try_acquire(40_000), "past what is left");
        assert!(limit.try_acquire(10_000), "what is left");
        assert!(!limit.try_acquire(1), "empty");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(limit.try_acquire(20_000), "refilled at the rate");
        assert!(!limit.try_acquire(1_000), "and no more");
    });
}

#[test]
fn concurrent_senders_share_one_budget() {
    let took = virtual_time(async {
        let limit = std::sync::Arc::new(RateLimit::new(500_000));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let limit = std::sync::Arc::clone(&limit);
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    limit.acquire(50_000).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    // 40 × 50 kB = 2 MB at 0.5 MB/s: 4 s.
    assert!(took >= Duration::from_secs(4) - BURST, "{took:?}");
    assert!(took <= Duration::from_secs_f64(4.1), "{took:?}");
}

#[test]
fn rates_parse_with_units() {
    assert_eq!(parse_rate("10MB"), Ok(10_000_000));
    assert_eq!(parse_rate("500KiB/s"), Ok(512_000));
    assert_eq!(parse_rate("1000"), Ok(1000));
    assert!(parse_rate("0").is_err());
    assert!(parse_rate("fast").is_err());
}

#[test]
fn senders_waiting_at_once_share_wake_ups_on_the_grid() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    let wakes = Arc::new(Mutex::new(Vec::new()));
    let took = virtual_time({
        let wakes = Arc::clone(&wakes);
        async move {
            let start = tokio::time::Instant::now();
            let limit = Arc::new(RateLimit::new(10_000_000));
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let (limit, wakes) = (Arc::clone(&limit), Arc::clone(&wakes));
                tasks.push(tokio::spawn(async move {
                    for _ in 0..10 {
                        let before = tokio::time::Instant::now();
                        limit.acquire(102_400).await;
                        if before.elapsed() > Duration::ZERO {
                            wakes.lock().unwrap().push(start.elapsed());
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        }
    });
    let wakes = wakes.lock().unwrap();
    assert!(wakes.len() >= 30, "most acquires waited: {}", wakes.len());
    for w in wakes.iter() {
        let apart = w.abs_diff(wakes[0]);
        assert_eq!(apart.as_nanos() % WAKE_GRID.as_nanos(), 0, "{w:?} is on the grid");
    }
    // 40 chunks of 10.24 ms each: about two per grid step, so about half as many wake-ups.
    let distinct: BTreeSet<_> = wakes.iter().collect();
    assert!(
        distinct.len() <= 21,
        "{} wake-ups for {} waits",
        distinct.len(),
        wakes.len()
    );
    // And still never faster than the rate.
    let floor = Duration::from_secs_f64(40.0 * 102_400.0 / 10_000_000.0) - BURST;
    assert!(took >= floor, "{took:?} < {floor:?}");
}

/// Buckets made at different moments (two nodes started apart) wake on the same grid, set
/// by the system clock.
#[test]
fn nodes_started_apart_share_the_grid() {
    let t0 = tokio::time::Instant::now();
    let unix0 = Duration::from_secs(1_765_000_000) + Duration::from_micros(12_345);
    let a = grid_point(t0, unix0);
    assert!(a <= t0 && t0 - a < WAKE_GRID);
    for later in [1, 7_000, 19_999, 20_000, 1_234_567] {
        let d = Duration::from_micros(later);
        let b = grid_point(t0 + d, unix0 + d);
        assert!(b <= t0 + d && t0 + d - b < WAKE_GRID);
        assert_eq!(
            (b - a).as_nanos() % WAKE_GRID.as_nanos(),
            0,
            "{d:?} later: off the grid"
        );
    }
}
