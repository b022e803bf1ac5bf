//! Errors of the simulated cluster.

/// Why a cluster snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The snapshot is not JSON.
    #[error(
        "line {line}, column {column}: not JSON ({source}); expected the output of `kubectl get pods,replicasets,deployments,statefulsets,daemonsets,poddisruptionbudgets -A -o json`"
    )]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is not a Kubernetes `List` (nor a single object).
    #[error(
        "expected a Kubernetes List with `items` (kind: List), found kind {kind:?}; run `kubectl get pods,replicasets,deployments,statefulsets,daemonsets,poddisruptionbudgets -A -o json`"
    )]
    NotAList {
        /// The `kind` found (empty when none).
        kind: String,
    },
    /// One item does not have the shape of its kind.
    #[error("items[{index}] ({kind} {name:?}): {source}")]
    Item {
        /// 0-based index in `items`.
        index: usize,
        /// The item's kind.
        kind: String,
        /// Its name, when it has one.
        name: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// An item has no `metadata.name`.
    #[error("items[{index}] ({kind}): metadata.name is missing")]
    MissingName {
        /// 0-based index in `items`.
        index: usize,
        /// The item's kind.
        kind: String,
    },
}

/// `Result` with [`SimError`].
pub type Result<T, E = SimError> = std::result::Result<T, E>;
