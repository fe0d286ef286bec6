//! Large synthetic policies (many keys, many destinations) for benchmarks and load tests.
