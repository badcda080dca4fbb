//! The bcfl client library (placeholder).
