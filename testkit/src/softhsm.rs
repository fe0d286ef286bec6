//! Throwaway SoftHSM2 tokens in a temporary directory, for PKCS#11 tests and benchmarks.
