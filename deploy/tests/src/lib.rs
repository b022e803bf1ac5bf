//! Tests of Teflon's deploy kit, nothing else: this crate has no code of its own.
//!
//! `tests/manifests.rs` checks every file of `deploy/manifests/` and every object of each
//! rendered kustomize overlay (`deploy/kustomize/`): it deserializes into its k8s-openapi type
//! without unknown fields, RBAC has no wildcards and matches `deploy/rbac.yaml`, the Deployment
//! is hardened, the starter policies parse, and the server config is the SPEC §6 shape; the
//! Falco/Tetragon kit, the Grafana dashboard and the Prometheus rules use the real endpoints
//! and exported metric names.
