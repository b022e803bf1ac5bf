//! Placeholder: written by the custom-metrics/autoscaler engineer.
