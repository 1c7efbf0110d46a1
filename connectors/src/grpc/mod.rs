//! gRPC transports, generated from `proto/` with tonic and prost (compiled by protox, so no
//! `protoc` is needed).

pub mod shield;
