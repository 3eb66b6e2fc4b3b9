//! The config file: model, defaults (the Exchange profile) and validation.
mod model;
pub use model::*;
