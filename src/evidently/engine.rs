//! Bucketing and evaluation (being written).
