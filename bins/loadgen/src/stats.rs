//! Latency percentiles (HDR histogram) and the time series behind the chart.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenarios::Sample;

/// Highest latency the histogram resolves (one hour, in microseconds); larger values
/// are clamped to it.
const HIGHEST_US: u64 = 3_600_000_000;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct LatencyMs {
    pub(crate) p50: f64,
    pub(crate) p95: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

/// Percentiles of latencies given in microseconds (3 significant digits); all zero when
/// there is none.
pub(crate) fn latency(latencies_us: impl IntoIterator<Item = u64>) -> LatencyMs {
    let Ok(mut histogram) = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3) else {
        return LatencyMs::default();
    };
    for value in latencies_us {
        histogram.saturating_record(value.clamp(1, HIGHEST_US));
    }
    if histogram.is_empty() {
        return LatencyMs::default();
    }
    LatencyMs {
        p50: us_to_ms(histogram.value_at_quantile(0.50)),
        p95: us_to_ms(histogram.value_at_quantile(0.95)),
        p99: us_to_ms(histogram.value_at_quantile(0.99)),
        max: us_to_ms(histogram.max()),
        mean: round3(histogram.mean() / 1000.0),
    }
}

/// Microseconds as milliseconds, to the microsecond.
pub(crate) fn us_to_ms(micros: u64) -> f64 {
    round3(micros as f64 / 1000.0)
}

/// Rounded to three decimals (keeps the JSON report readable).
pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// `count` per `micros` as a rate per second (0 for an empty span).
pub(crate) fn per_second(count: u64, micros: u64) -> f64 {
    if micros == 0 {
        0.0
    } else {
        round3(count as f64 * 1_000_000.0 / micros as f64)
    }
}

/// One slice of the run by completion time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Start of the slice, in ms since the run's start.
    pub(crate) start_ms: f64,
    pub(crate) responses_per_sec: f64,
    pub(crate) accepted_per_sec: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Slice width for `count` answers over `span_us`: about 40 slices, but wide enough to
/// hold some 20 answers on average (narrow slices of few answers only show quantisation
/// noise), and at least 10 ms.
pub(crate) fn bucket_width_us(span_us: u64, count: usize) -> u64 {
    let for_counts = span_us.saturating_mul(20) / (count.max(1) as u64);
    (span_us / 40).max(for_counts).max(10_000)
}

/// Splits `samples` by completion time into slices of `width_us` (empty slices included,
/// so the throughput line drops to zero where nothing completed).
pub(crate) fn buckets(samples: &[Sample], width_us: u64) -> Vec<Bucket> {
    let width = width_us.max(1);
    let last = samples.iter().map(|sample| sample.done_us / width).max();
    let Some(last) = last else { return Vec::new() };
    let mut slices: Vec<Vec<&Sample>> = vec![Vec::new(); usize::try_from(last + 1).unwrap_or(0)];
    for sample in samples {
        if let Some(slice) = usize::try_from(sample.done_us / width)
            .ok()
            .and_then(|i| slices.get_mut(i))
        {
            slice.push(sample);
        }
    }
    slices
        .iter()
        .enumerate()
        .map(|(index, slice)| bucket(index as u64 * width, width, slice))
        .collect()
}

fn bucket(start_us: u64, width_us: u64, slice: &[&Sample]) -> Bucket {
    let mut latencies: Vec<u64> = slice.iter().map(|sample| sample.latency_us()).collect();
    latencies.sort_unstable();
    let accepted = slice.iter().filter(|sample| sample.is_accepted()).count() as u64;
    Bucket {
        start_ms: us_to_ms(start_us),
        responses_per_sec: per_second(slice.len() as u64, width_us),
        accepted_per_sec: per_second(accepted, width_us),
        p50_ms: us_to_ms(nearest_rank(&latencies, 0.50)),
        p99_ms: us_to_ms(nearest_rank(&latencies, 0.99)),
        max_ms: us_to_ms(latencies.last().copied().unwrap_or(0)),
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn nearest_rank(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Status;

    fn sample(sent_us: u64, done_us: u64, code: u16) -> Sample {
        Sample {
            seq: 0,
            product: 0,
            quantity: 1,
            sent_us,
            done_us,
            status: Status::Code(code),
            purchase_id: None,
        }
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_ms() {
        let summary = latency((1..=1000).map(|ms| ms * 1000));
        assert!((summary.p50 - 500.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p95 - 950.0).abs() < 1.0, "{summary:?}");
        assert!((summary.p99 - 990.0).abs() < 1.0, "{summary:?}");
        assert!((summary.max - 1000.0).abs() < 1.0, "{summary:?}");
        assert!((summary.mean - 500.5).abs() < 1.0, "{summary:?}");
    }

    #[test]
    fn no_latency_is_all_zero_and_huge_ones_are_clamped() {
        assert_eq!(latency([]), LatencyMs::default());
        assert!(latency([u64::MAX]).max >= 3_599_000_000.0 / 1000.0);
    }

    #[test]
    fn rates_and_rounding() {
        assert_eq!(per_second(100, 1_000_000), 100.0);
        assert_eq!(per_second(1, 3_000_000), 0.333);
        assert_eq!(per_second(5, 0), 0.0);
        assert_eq!(us_to_ms(1_234), 1.234);
    }

    #[test]
    fn buckets_cover_the_run_by_completion_time() {
        let samples = [
            sample(0, 5_000, 201),
            sample(0, 15_000, 409),
            sample(1_000, 35_000, 201),
        ];
        let slices = buckets(&samples, 10_000);
        assert_eq!(slices.len(), 4);
        assert_eq!(slices[0].accepted_per_sec, 100.0);
        assert_eq!(slices[1].responses_per_sec, 100.0);
        assert_eq!(slices[1].accepted_per_sec, 0.0);
        assert_eq!(slices[2].responses_per_sec, 0.0);
        assert_eq!(slices[3].max_ms, 34.0);
        assert_eq!(slices[3].start_ms, 30.0);
        assert!(buckets(&[], 10).is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.99), 4);
        assert_eq!(nearest_rank(&[7], 0.0), 7);
        assert_eq!(bucket_width_us(1_000_000, 100_000), 25_000);
        assert_eq!(bucket_width_us(1_000_000, 200), 100_000);
        assert_eq!(bucket_width_us(1_000, 5), 10_000);
    }
}
