"""Orchestration (scheduler service, executors, analyzer kernels). Imports core, never torch."""
