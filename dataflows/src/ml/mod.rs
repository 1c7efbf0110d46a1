//! Learned detectors: hashed n-gram features, logistic regression, and the model file. Plain
//! structs with no timely types; the guard calls them per prompt.

mod features;
mod logistic;
mod model_file;

pub use features::{FeatureCounts, FeatureSpec, SparseVector};
pub use logistic::{sigmoid, Example, LinearModel, TrainConfig};
pub use model_file::ModelFile;
