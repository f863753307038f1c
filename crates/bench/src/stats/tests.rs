use super::*;

#[test]
fn percentile_nearest_rank() {
    let v: Vec<u64> = (1..=100).collect();
    assert_eq!(percentile(&v, 50.0), Some(50));
    assert_eq!(percentile(&v, 99.0), Some(99));
    assert_eq!(percentile(&v, 99.5), Some(100));
    assert_eq!(percentile(&v, 100.0), Some(100));
    assert_eq!(percentile(&v, 0.0), Some(1));
}

#[test]
fn percentile_small_and_empty() {
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&[7], 0.0), Some(7));
    assert_eq!(percentile(&[7], 99.0), Some(7));
    assert_eq!(percentile(&[1, 2], 50.0), Some(1));
    assert_eq!(percentile(&[1, 2], 51.0), Some(2));
    assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
    assert_eq!(percentile(&[1, 2, 3, 1000], 99.0), Some(1000));
}

#[test]
fn median_odd_even_empty() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0]), Some(3.0));
    assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[1.0, 1000.0, 2.0]), Some(2.0));
}
