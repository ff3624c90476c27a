"""Helpers for the test suite and the benchmarks (a throwaway PostgreSQL server)."""
