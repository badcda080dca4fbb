//! The `bcfl` transaction family (placeholder until the processor lands).
