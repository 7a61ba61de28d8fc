//! The library half of the `marketmeter` binary: configuration and seed-file parsing, a library
//! so that the fuzz targets in `fuzz/` (and tests) can call them.

pub mod config;
