//! The one quantile every latency figure of the project uses (the origin's per-layer
//! windows, the worker's metrics, the benchmarks and the reliability runs), so their
//! p50s and p99s mean the same thing.

/// The `q` quantile (0 to 1) of `sorted` by nearest rank; `None` when there are no samples.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (last as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted.get(rank.min(last)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_ranks_of_the_samples() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&samples, 0.0), Some(1));
        assert_eq!(quantile(&samples, 0.5), Some(51));
        assert_eq!(quantile(&samples, 0.99), Some(99));
        assert_eq!(quantile(&samples, 1.0), Some(100));
        assert_eq!(quantile(&[7.5], 0.99), Some(7.5));
        assert_eq!(quantile::<f64>(&[], 0.5), None);
    }
}
