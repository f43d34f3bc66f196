//! The segment pattern language (being written).
