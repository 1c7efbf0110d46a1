//! The anomaly lifecycle, from the model: the job writes resolutions, the API people's changes.

pub use sentinel_dataflows::model::lifecycle::*;
