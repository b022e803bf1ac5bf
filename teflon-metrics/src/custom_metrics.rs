//! Values and response bodies of the `custom.metrics.k8s.io` API (SPEC §8).
