//! NAB's windowed-Gaussian reference detector, to score next to Sentinel's own detector on the
//! same files in the same run.

/// NAB's "windowed Gaussian" reference detector, reimplemented so that it can be scored on the
/// same data in the same run: mean and standard deviation over the last 6,400 rows, refreshed
/// every 100 rows, and a score of `1 − tail probability` of the row's deviation.
pub fn windowed_gaussian(values: &[f64]) -> Vec<f64> {
    const WINDOW: usize = 6400;
    const STEP: usize = 100;
    let mut window: Vec<f64> = Vec::new();
    let mut step: Vec<f64> = Vec::new();
    let (mut mean, mut std) = (0.0, 1e-6);
    let refresh = |w: &[f64]| {
        let m = w.iter().sum::<f64>() / w.len() as f64;
        let s = (w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        (m, if s == 0.0 { 1e-6 } else { s })
    };
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        let score = if window.is_empty() {
            0.0
        } else {
            1.0 - 0.5 * erfc(((v - mean).abs() / std) / std::f64::consts::SQRT_2)
        };
        out.push(score);
        if window.len() < WINDOW {
            window.push(v);
            (mean, std) = refresh(&window);
        } else {
            step.push(v);
            if step.len() == STEP {
                window.drain(..STEP);
                window.append(&mut step);
                (mean, std) = refresh(&window);
            }
        }
    }
    out
}

/// Complementary error function (W. J. Cody's rational approximations via `erf`, |error| < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    // Numerical Recipes erfcc: fractional error below 1.2e-7 everywhere.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-6, "erfc({x}) = {} not {want}", erfc(x));
        }
    }

    #[test]
    fn a_spike_outscores_the_noise() {
        let mut values: Vec<f64> = (0..2000).map(|i| 10.0 + ((i * 7919) % 13) as f64 * 0.1).collect();
        values[1500] = 50.0;
        let scores = windowed_gaussian(&values);
        let top = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(top, 1500);
    }
}
