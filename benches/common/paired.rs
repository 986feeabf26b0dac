//! What the paired measurements share (the layer bench's paired mode and
//! scripts/ab_layer): three stacks measured in rotating order, medians, and
//! counts from the environment.

/// Measures stacks 0, 1 and 2 once each, in an order that rotates with
/// `round`, so that no stack always runs first or right after the same one.
pub fn rotated(round: usize, mut measure: impl FnMut(usize) -> f64) -> [f64; 3] {
    let mut measured = [0.0; 3];
    for k in 0..3 {
        let stack = (round + k) % 3;
        measured[stack] = measure(stack);
    }
    measured
}

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The positive counts listed (comma-separated) in the environment variable
/// `name`, or `default` if it is not set.
pub fn counts(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).filter(|&n| n > 0).collect(),
        Err(_) => default.to_vec(),
    }
}
