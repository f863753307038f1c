use std::time::Duration;

use super::{Histogram, StatusCounts, LATENCY_BUCKETS_MS};

/// The cumulative count of the bucket whose bound is `le_ms`.
fn bucket(histogram: &Histogram, le_ms: f64) -> u64 {
    histogram
        .snapshot()
        .buckets
        .iter()
        .find(|(bound, _)| *bound == le_ms)
        .map(|(_, count)| *count)
        .expect("a bucket with that bound")
}

#[test]
fn observations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
    let check = |elapsed: Duration, le_ms: f64| {
        let histogram = Histogram::default();
        histogram.record(elapsed);
        let snapshot = histogram.snapshot();
        for (bound, count) in &snapshot.buckets {
            let expected = u64::from(*bound >= le_ms);
            assert_eq!(*count, expected, "{elapsed:?} in the bucket le={bound}");
        }
        assert_eq!(snapshot.count, 1);
    };
    check(Duration::ZERO, 0.5);
    check(Duration::from_micros(500), 0.5);
    check(Duration::from_micros(501), 1.0);
    check(Duration::from_millis(1), 1.0);
    check(Duration::from_millis(3), 5.0);
    check(Duration::from_millis(100), 100.0);
    check(Duration::from_millis(9_999), 10_000.0);
    check(Duration::from_secs(10), 10_000.0);
}

#[test]
fn observations_above_the_last_bound_are_only_in_the_count() {
    let histogram = Histogram::default();
    histogram.record(Duration::from_secs(11));
    histogram.record(Duration::MAX);
    let snapshot = histogram.snapshot();
    assert!(snapshot.buckets.iter().all(|(_, count)| *count == 0));
    assert_eq!(snapshot.count, 2);
}

#[test]
fn snapshots_are_cumulative_with_a_sum_in_milliseconds() {
    let histogram = Histogram::default();
    for ms in [1, 2, 2, 40, 300] {
        histogram.record(Duration::from_millis(ms));
    }
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.buckets.len(), LATENCY_BUCKETS_MS.len());
    assert_eq!(bucket(&histogram, 1.0), 1);
    assert_eq!(bucket(&histogram, 2.5), 3);
    assert_eq!(bucket(&histogram, 50.0), 4);
    assert_eq!(bucket(&histogram, 250.0), 4);
    assert_eq!(bucket(&histogram, 500.0), 5);
    assert_eq!(bucket(&histogram, 10_000.0), 5);
    assert_eq!(snapshot.count, 5);
    assert_eq!(snapshot.sum_ms, 345.0);
}

#[test]
fn status_codes_are_counted_each_apart_and_out_of_range_codes_ignored() {
    let statuses = StatusCounts::default();
    for code in [200, 200, 503, 100, 999, 99, 1000, 0] {
        statuses.inc(code);
    }
    assert_eq!(statuses.get(200), 2);
    assert_eq!(statuses.get(404), 0);
    assert_eq!(statuses.get(1000), 0);
    let snapshot: Vec<(u16, u64)> = statuses.snapshot().into_iter().collect();
    assert_eq!(snapshot, [(100, 1), (200, 2), (503, 1), (999, 1)]);
}
