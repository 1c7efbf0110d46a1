//! Config scalars that are parsed while deserializing, so a bad value is reported with its line.

use sentinel_dataflows::detect::{Direction, Metric, Strategy};
use sentinel_dataflows::time::parse_duration_ms;
use sentinel_dataflows::window::Dimension;
use serde::de::{Deserializer, Error};
use serde::Deserialize;

/// A duration such as `5m`, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationValue(pub u64);

/// A season: `auto`, or a duration such as `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodValue {
    /// Found per key.
    Auto,
    /// Fixed.
    Every(DurationValue),
}

impl<'de> Deserialize<'de> for PeriodValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |text: &str| match text {
            "auto" => Some(PeriodValue::Auto),
            _ => parse_duration_ms(text).map(|ms| PeriodValue::Every(DurationValue(ms))),
        };
        parse_with(d, parse, "`auto` or a duration like 1h or 1d")
    }
}

/// A metric name such as `cost_per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricName(pub Metric);

/// `zscore`, `ewma` or `mad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrategyName(pub Strategy);

/// `up`, `down` or `both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectionName(pub Direction);

/// `application`, `model`, `tenant` or `user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DimensionName(pub Dimension);

fn parse_with<'de, D, T>(d: D, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text).ok_or_else(|| D::Error::custom(format!("`{text}` is not {expected}")))
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_with(d, parse_duration_ms, "a duration like 500ms, 30s, 5m, 1h or 1d").map(DurationValue)
    }
}

impl<'de> Deserialize<'de> for MetricName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names: Vec<&str> = Metric::NAMES.iter().map(|(n, _)| *n).collect();
        parse_with(d, Metric::parse, &format!("a metric (one of {})", names.join(", "))).map(MetricName)
    }
}

impl<'de> Deserialize<'de> for StrategyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_with(d, Strategy::parse, "a strategy (zscore, ewma or mad)").map(StrategyName)
    }
}

impl<'de> Deserialize<'de> for DirectionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_with(d, Direction::parse, "a direction (up, down or both)").map(DirectionName)
    }
}

impl<'de> Deserialize<'de> for DimensionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_with(
            d,
            Dimension::parse,
            "an entity kind (application, model, tenant or user)",
        )
        .map(DimensionName)
    }
}
