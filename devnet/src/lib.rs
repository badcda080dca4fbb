//! bcfl-devnet (placeholder).
