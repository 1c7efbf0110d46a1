//! The model file: a small binary format with a magic, a version, the feature spec, the
//! recommended threshold, a JSON description (sources, licenses, metrics) and the weights,
//! ending in a checksum, so a truncated or corrupt file fails to load with a clear error.
//!
//! Layout (little-endian): `SNTLPAC\0`, u32 version, u8 × 5 feature spec, f32 threshold,
//! f32 bias, u32 weight count, u32 description length, description bytes, f32 × weights,
//! u64 FNV-1a checksum of everything before it.

use std::path::Path;

use super::features::FeatureSpec;
use super::logistic::LinearModel;

const MAGIC: &[u8; 8] = b"SNTLPAC\0";
const VERSION: u32 = 2;

/// A model with what it was saved with.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFile {
    /// The model.
    pub model: LinearModel,
    /// The threshold its training chose (a configuration may override it).
    pub threshold: f32,
    /// Free-form JSON: sources and licenses, training command, metrics.
    pub description: String,
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl ModelFile {
    /// Serialises to bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let m = &self.model;
        let mut out = Vec::with_capacity(40 + self.description.len() + m.weights.len() * 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[
            m.spec.buckets_log2,
            m.spec.char_min,
            m.spec.char_max,
            m.spec.word_max,
            u8::from(m.spec.rule_features),
        ]);
        out.extend_from_slice(&self.threshold.to_le_bytes());
        out.extend_from_slice(&m.bias.to_le_bytes());
        out.extend_from_slice(&(m.weights.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.description.len() as u32).to_le_bytes());
        out.extend_from_slice(self.description.as_bytes());
        for w in &m.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses bytes written by [`ModelFile::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<ModelFile, String> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a Sentinel prompt classifier (bad magic bytes)".into());
        }
        if bytes.len() < 8 + 29 + 8 {
            return Err(format!("truncated: {} bytes", bytes.len()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().map_err(|_| "truncated checksum")?);
        if checksum(body) != stored {
            return Err("checksum mismatch: the file is corrupt or truncated".into());
        }
        let mut r = Reader { bytes: body, at: 8 };
        let version = r.u32()?;
        if version != VERSION {
            return Err(format!(
                "format version {version} is not supported (this build reads {VERSION})"
            ));
        }
        let spec = FeatureSpec {
            buckets_log2: r.u8()?,
            char_min: r.u8()?,
            char_max: r.u8()?,
            word_max: r.u8()?,
            rule_features: match r.u8()? {
                0 => false,
                1 => true,
                other => return Err(format!("rule_features flag {other} is not 0 or 1")),
            },
        };
        spec.validate()?;
        let threshold = r.f32()?;
        let bias = r.f32()?;
        let count = r.u32()? as usize;
        if count != spec.buckets() {
            return Err(format!("{count} weights for {} buckets", spec.buckets()));
        }
        let len = r.u32()? as usize;
        let description = String::from_utf8(r.take(len)?.to_vec()).map_err(|_| "description is not UTF-8")?;
        let weights = r
            .take(count * 4)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if r.at != body.len() {
            return Err(format!("{} unexpected bytes after the weights", body.len() - r.at));
        }
        if !(0.0..=1.0).contains(&threshold) {
            return Err(format!("threshold {threshold} is outside 0..=1"));
        }
        Ok(ModelFile {
            model: LinearModel { spec, weights, bias },
            threshold,
            description,
        })
    }

    /// Writes the file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        std::fs::write(path, self.to_bytes()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads and checks the file; errors name the path.
    pub fn load(path: &Path) -> Result<ModelFile, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("model {}: {e}", path.display()))?;
        ModelFile::from_bytes(&bytes).map_err(|e| format!("model {}: {e}", path.display()))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "truncated")?))
    }
    fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "truncated")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelFile {
        let spec = FeatureSpec {
            buckets_log2: 10,
            ..FeatureSpec::default()
        };
        ModelFile {
            model: LinearModel {
                spec,
                weights: (0..spec.buckets()).map(|i| i as f32 * 0.01 - 3.0).collect(),
                bias: -1.25,
            },
            threshold: 0.7,
            description: r#"{"sources":["a"]}"#.into(),
        }
    }

    #[test]
    fn round_trips() {
        let m = sample();
        assert_eq!(ModelFile::from_bytes(&m.to_bytes()).unwrap(), m);
        let dir = std::env::temp_dir().join(format!("sentinel-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.bin");
        m.save(&path).unwrap();
        assert_eq!(ModelFile::load(&path).unwrap(), m);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_refused() {
        let bytes = sample().to_bytes();
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        assert!(ModelFile::from_bytes(&flipped).unwrap_err().contains("checksum"));
        assert!(ModelFile::from_bytes(&bytes[..bytes.len() - 10])
            .unwrap_err()
            .contains("checksum"));
        assert!(ModelFile::from_bytes(b"{\"weights\": []}")
            .unwrap_err()
            .contains("magic"));
        let missing = ModelFile::load(Path::new("/nonexistent/model.bin")).unwrap_err();
        assert!(missing.contains("/nonexistent/model.bin"), "{missing}");
    }
}
