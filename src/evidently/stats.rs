//! Statistics behind GetExperimentResults (spec 5.3): mergeable per-bucket [`Moments`], Welch's t-test with
//! a confidence interval of the relative effect ([`welch`]), a deterministic Bayesian report ([`bayes`]) and
//! the sample-ratio-mismatch check ([`srm_p_value`]). Pure and synchronous, and free of crates: the special
//! functions they need (log-gamma, regularized incomplete beta and gamma, normal and Student-t distributions)
//! are implemented at the bottom of this file and checked against scipy in the tests.
//!
//! Every public function returns `None` rather than a NaN, an infinity or a panic when its result is not
//! defined: fewer than two observations in an arm, no variance in either arm, a control mean of 0 (the
//! relative effect is undefined), non-finite inputs, or a numerical routine that did not converge.
//!
//! # Notation
//! Per arm: `n` observations, mean `m = Σx / n`, sample variance `v = (Σx² − m·Σx) / (n − 1)`. Subscript `c` is
//! the control (the default treatment), `t` the treatment compared with it.
//!
//! # Welch's t-test ([`welch`])
//! * `se² = v_t/n_t + v_c/n_c`, statistic `T = (m_t − m_c) / se`.
//! * Welch–Satterthwaite degrees of freedom `ν = se⁴ / ((v_t/n_t)²/(n_t − 1) + (v_c/n_c)²/(n_c − 1))`.
//! * The p-value is that of the **difference of means**, two-sided: `p = 2·P(T_ν ≥ |T|) = I_{ν/(ν+T²)}(ν/2, 1/2)`
//!   (`I` the regularized incomplete beta function).
//! * The treatment effect is **relative**: `R = (m_t − m_c) / m_c`, a fraction (0.06 means +6 %), not a
//!   percentage. Spec 5.3 calls TreatmentEffect "the difference of the mean" without saying absolute or
//!   relative; this module reports the relative difference, and `None` when `m_c = 0` leaves it undefined.
//! * Its 95 % confidence interval comes from the delta method on the ratio of the two means:
//!   `Var(R) = (m_t/m_c)² · (v_t/(n_t·m_t²) + v_c/(n_c·m_c²))`, evaluated in the algebraically equal form
//!   `v_t/(n_t·m_c²) + m_t²·v_c/(n_c·m_c⁴)`, which stays defined when `m_t = 0`. The interval is
//!   `R ± t_{0.975, ν} · √Var(R)`, with Student's t quantile at the same Welch `ν`.
//! * The p-value (difference) and the interval (delta-method ratio) are different approximations, so near the
//!   5 % boundary they can disagree: an interval that just excludes 0 with p slightly above 0.05, or the reverse.
//! * This is the classical fixed-horizon test. AWS documents sequential testing instead (anytime-valid p-values
//!   and confidence sequences, Howard et al. 2021); the p-value here is only valid when read once, at a planned
//!   end, not when watched repeatedly while the experiment runs.
//!
//! # Bayesian report ([`bayes`])
//! The model: each arm's values are normal with the variance fixed at its sample variance, and the mean has a
//! flat (improper uniform) prior — the limit of the conjugate normal prior. The posterior of each mean is then
//! `μ ~ N(m, v/n)`, the two arms independent. The lift `L = (μ_t − μ_c) / μ_c` is approximated by the delta
//! method as normal, `L ~ N(R, Var(R))` with the same `R` and `Var(R)` as above, and the three probabilities
//! are read from that normal, with `s = √Var(R)` and `Φ` the standard normal CDF:
//! * `p_increase = P(L ≥ +0.03) = 1 − Φ((0.03 − R)/s)`,
//! * `p_decrease = P(L ≤ −0.03) = Φ((−0.03 − R)/s)`,
//! * `p_within = P(−0.03 < L < +0.03) = Φ((0.03 − R)/s) − Φ((−0.03 − R)/s)`.
//!
//! The result is deterministic (no Monte Carlo). The approximation is good when the control mean is many
//! standard errors away from 0 (`√(v_c/n_c) ≪ |m_c|`); when it is not, the true ratio is heavy-tailed and
//! these probabilities are overconfident. With a flat prior they agree numerically with a z-interval on `R`.
//!
//! # Sample-ratio mismatch ([`srm_p_value`])
//! Pearson's chi-square goodness of fit: with `N = Σ o_i` and expected counts `e_i = N·w_i / Σw`,
//! `χ² = Σ (o_i − e_i)² / e_i` on `k − 1` degrees of freedom (`k` arms), and `p = Q((k − 1)/2, χ²/2)`, the
//! regularized upper incomplete gamma function. An arm with weight 0 and no observations is left out (it
//! contributes no degree of freedom); an arm with weight 0 and observations is a certain mismatch (`p = 0`).
//! The chi-square approximation wants every expected count to be at least about 5.
//!
//! # Numerical notes
//! [`Moments`] keeps `Σx` and `Σx²` so that buckets merge by addition. The variance then loses about
//! `log10((m/sd)²)` digits to cancellation, harmless for metrics whose mean is not many orders of magnitude
//! above their spread; a residue below `n·ε·Σx²` counts as no variance (see [`Moments::variance`]).
//!
//! The special functions follow Numerical Recipes (3rd ed.): Lanczos log-gamma (`g = 671/128`, 14 terms), the
//! incomplete beta continued fraction by modified Lentz (`betacf`), the incomplete gamma series and continued
//! fraction (`gser`/`gcf`); `ln B(a, b)` uses Stirling's series for large arguments so that the large-`ν` t
//! distribution does not lose digits to `ln Γ(a) − ln Γ(a + b)`. The normal CDF is `erfc` through
//! `Q(1/2, z²/2)`; its quantile is Acklam's rational approximation refined by one Halley step; the t quantile is
//! a bracketed Newton iteration on the t survival function.

use std::f64::consts::PI;

/// Mergeable sufficient statistics of one metric for one treatment in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    /// Adds one observation.
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Adds every observation of `other` (another bucket, another instance).
    pub fn merge(&mut self, other: &Moments) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    /// The mean; `None` without observations or when the sums are not finite.
    pub fn mean(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        finite(self.sum / self.n as f64)
    }

    /// The sample variance (divisor `n − 1`); `None` below two observations or when the sums are not finite.
    ///
    /// Constant data such as ten times 0.1 leave `Σx² − m·Σx` at a rounding residue (of either sign) rather
    /// than 0. A residue within `n·ε·Σx²`, the worst-case rounding error of the two sums, cannot be told apart
    /// from no spread at all and is reported as exactly 0, so that "no variance" is recognised.
    pub(crate) fn variance(&self) -> Option<f64> {
        if self.n < 2 || !self.sum_sq.is_finite() {
            return None;
        }
        let mean = self.mean()?;
        let n = self.n as f64;
        let ss = self.sum_sq - mean * self.sum;
        let ss = if ss <= n * EPS * self.sum_sq { 0.0 } else { ss };
        finite(ss / (n - 1.0))
    }
}

/// The comparison of one treatment with the control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Comparison {
    /// The mean of the treatment.
    pub mean: f64,
    /// The relative effect `(mean_t − mean_c) / mean_c`, as a fraction (0.06 is +6 %). A control mean of 0
    /// leaves it undefined, and [`welch`] then returns `None` rather than inventing a number.
    pub treatment_effect: f64,
    /// Lower bound of the 95 % confidence interval of the relative effect (delta method, Welch df).
    pub ci_lower: f64,
    /// Upper bound of the 95 % confidence interval of the relative effect.
    pub ci_upper: f64,
    /// Two-sided p-value of Welch's t-test of the difference of means.
    pub p_value: f64,
}

/// Welch's t-test of treatment against control (both need n >= 2 and some variance); None if not computable.
///
/// "Some variance" means at least one arm with a positive variance; one constant arm is fine. `None` also
/// when the control mean is 0 (the relative effect is undefined). Formulas in the module documentation.
pub(crate) fn welch(control: &Moments, treatment: &Moments) -> Option<Comparison> {
    let arms = Arms::of(control, treatment)?;
    let (t, df) = arms.welch_t()?;
    let p_value = (2.0 * t_sf(t.abs(), df)?).min(1.0);
    let (effect, var_effect) = arms.relative_effect()?;
    let half_width = t_ppf(0.975, df)? * var_effect.sqrt();
    let comparison = Comparison {
        mean: arms.m_t,
        treatment_effect: effect,
        ci_lower: effect - half_width,
        ci_upper: effect + half_width,
        p_value,
    };
    let Comparison { mean, treatment_effect, ci_lower, ci_upper, p_value } = comparison;
    [mean, treatment_effect, ci_lower, ci_upper, p_value].iter().all(|x| x.is_finite()).then_some(comparison)
}

/// Bayesian report under a documented conjugate model: P(relative lift >= +3 %), P(<= -3 %), P(within ±3 %).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bayes {
    pub p_increase: f64,
    pub p_decrease: f64,
    pub p_within: f64,
}

/// The half-width of the "within" band of [`Bayes`]: a relative lift of 3 %.
pub(crate) const BAYES_THRESHOLD: f64 = 0.03;

/// The Bayesian report of treatment against control; model and formulas in the module documentation.
/// `None` under the same conditions as [`welch`].
pub(crate) fn bayes(control: &Moments, treatment: &Moments) -> Option<Bayes> {
    let arms = Arms::of(control, treatment)?;
    let (effect, var_effect) = arms.relative_effect()?;
    let s = var_effect.sqrt();
    let z_hi = (BAYES_THRESHOLD - effect) / s;
    let z_lo = (-BAYES_THRESHOLD - effect) / s;
    let p_increase = norm_sf(z_hi)?;
    let p_decrease = norm_cdf(z_lo)?;
    // Subtract the two tails on the side where they are small, so a tiny band keeps its digits.
    let p_within = if z_lo > 0.0 { norm_sf(z_lo)? - p_increase } else { norm_cdf(z_hi)? - p_decrease };
    let bayes = Bayes { p_increase, p_decrease, p_within: p_within.clamp(0.0, 1.0) };
    [bayes.p_increase, bayes.p_decrease, bayes.p_within].iter().all(|x| x.is_finite()).then_some(bayes)
}

/// Sample-ratio mismatch: chi-square goodness of fit of observed counts against expected weights; returns the p-value.
///
/// `None` when the slices differ in length, a weight is negative or not finite, nothing was observed, or
/// fewer than two arms have a positive weight. See the module documentation for zero weights.
pub(crate) fn srm_p_value(observed: &[u64], weights: &[f64]) -> Option<f64> {
    if observed.len() != weights.len() || weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return None;
    }
    let total_weight: f64 = weights.iter().sum();
    let total: u128 = observed.iter().map(|&o| u128::from(o)).sum();
    if total_weight.is_nan() || total_weight <= 0.0 || total == 0 {
        return None;
    }
    let total = total as f64;
    let mut chi2 = 0.0;
    let mut arms = 0u32;
    for (&o, &w) in observed.iter().zip(weights) {
        if w == 0.0 {
            if o > 0 {
                return Some(0.0);
            }
            continue;
        }
        let expected = total * w / total_weight;
        let diff = o as f64 - expected;
        chi2 += diff * diff / expected;
        arms += 1;
    }
    if arms < 2 {
        return None;
    }
    finite(gamma_q(f64::from(arms - 1) / 2.0, chi2 / 2.0)?.clamp(0.0, 1.0))
}

/// Mean, variance and count of both arms, validated once for [`welch`] and [`bayes`].
struct Arms {
    n_c: f64,
    m_c: f64,
    v_c: f64,
    n_t: f64,
    m_t: f64,
    v_t: f64,
}

impl Arms {
    fn of(control: &Moments, treatment: &Moments) -> Option<Arms> {
        let arms = Arms {
            n_c: control.n as f64,
            m_c: control.mean()?,
            v_c: control.variance()?,
            n_t: treatment.n as f64,
            m_t: treatment.mean()?,
            v_t: treatment.variance()?,
        };
        // variance() is Some only for n >= 2; at least one arm must vary.
        (arms.v_c > 0.0 || arms.v_t > 0.0).then_some(arms)
    }

    /// Welch's statistic `T` and the Welch–Satterthwaite degrees of freedom.
    fn welch_t(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.v_t / self.n_t, self.v_c / self.n_c);
        let se2 = a + b;
        let t = (self.m_t - self.m_c) / se2.sqrt();
        let df = se2 * se2 / (a * a / (self.n_t - 1.0) + b * b / (self.n_c - 1.0));
        (se2 > 0.0 && t.is_finite() && df.is_finite() && df > 0.0).then_some((t, df))
    }

    /// The relative effect `R` and its delta-method variance; `None` when the control mean is 0.
    fn relative_effect(&self) -> Option<(f64, f64)> {
        if self.m_c == 0.0 {
            return None;
        }
        let effect = (self.m_t - self.m_c) / self.m_c;
        let m_c2 = self.m_c * self.m_c;
        let var = self.v_t / (self.n_t * m_c2) + self.m_t * self.m_t * self.v_c / (self.n_c * m_c2 * m_c2);
        (effect.is_finite() && var.is_finite() && var > 0.0).then_some((effect, var))
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

// ---------------------------------------------------------------------------------------------------------
// Special functions. Private: the tests check them against scipy.

const EPS: f64 = f64::EPSILON;
/// Floor for the Lentz denominators (Numerical Recipes' FPMIN).
const FPMIN: f64 = f64::MIN_POSITIVE / f64::EPSILON;
const MAX_ITER: usize = 100_000;

/// `ln Γ(x)` for `x > 0`: Lanczos approximation, Numerical Recipes 3rd ed. `gammln` (about 1e-15 relative).
#[allow(clippy::excessive_precision, reason = "the coefficients as published, to compare them with the book")]
fn ln_gamma(x: f64) -> f64 {
    const COF: [f64; 14] = [
        57.156_235_665_862_923_5,
        -59.597_960_355_475_491_2,
        14.136_097_974_741_747_1,
        -0.491_913_816_097_620_199,
        0.339_946_499_848_118_887e-4,
        0.465_236_289_270_485_756e-4,
        -0.983_744_753_048_795_646e-4,
        0.158_088_703_224_912_494e-3,
        -0.210_264_441_724_104_883e-3,
        0.217_439_618_115_212_643e-3,
        -0.164_318_106_536_763_890e-3,
        0.844_182_239_838_527_433e-4,
        -0.261_908_384_015_814_087e-4,
        0.368_991_826_595_316_234e-5,
    ];
    let tmp = x + 671.0 / 128.0;
    let tmp = (x + 0.5) * tmp.ln() - tmp;
    let mut ser = 0.999_999_999_999_997_092;
    let mut y = x;
    for c in COF {
        y += 1.0;
        ser += c / y;
    }
    tmp + (2.506_628_274_631_000_5 * ser / x).ln()
}

/// Stirling's correction `ln Γ(x) − ((x − ½)·ln x − x + ½·ln 2π)`, for `x >= 10`.
fn stirling_correction(x: f64) -> f64 {
    // B_2k / (2k (2k − 1)), k = 1..8.
    const C: [f64; 8] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
        -3617.0 / 122_400.0,
    ];
    let x2 = 1.0 / (x * x);
    let mut sum = 0.0;
    for c in C.iter().rev() {
        sum = sum * x2 + c;
    }
    sum / x
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)` for `a, b > 0`. When an argument is large the
/// difference of log-gammas is taken from Stirling's series, so it does not cancel catastrophically.
fn ln_beta(a: f64, b: f64) -> f64 {
    let (big, small) = if a >= b { (a, b) } else { (b, a) };
    if big < 10.0 {
        return ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
    }
    let sum = big + small;
    let corr = stirling_correction(big) - stirling_correction(sum);
    // (big − ½)·ln(big/sum), written with ln_1p for accuracy when small ≪ big.
    let ratio_term = -(big - 0.5) * (small / big).ln_1p();
    if small < 10.0 {
        // ln Γ(big) − ln Γ(sum) = (big − ½)·ln(big/sum) − small·ln(sum) + small + corr.
        ln_gamma(small) + ratio_term - small * sum.ln() + small + corr
    } else {
        0.5 * (2.0 * PI).ln() + ratio_term + small * (small / sum).ln() - 0.5 * small.ln()
            + corr
            + stirling_correction(small)
    }
}

/// Regularized incomplete beta `I_x(a, b)`.
#[cfg(test)]
fn beta_inc(a: f64, b: f64, x: f64) -> Option<f64> {
    beta_inc_xy(a, b, x, 1.0 - x)
}

/// Regularized incomplete beta `I_x(a, b)` with `y = 1 − x` supplied by the caller, who can often compute it
/// without cancellation. Numerical Recipes `betai`, continued fraction by modified Lentz.
fn beta_inc_xy(a: f64, b: f64, x: f64, y: f64) -> Option<f64> {
    if !(a > 0.0 && b > 0.0 && (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y)) {
        return None;
    }
    if x == 0.0 {
        return Some(0.0);
    }
    if y == 0.0 {
        return Some(1.0);
    }
    let ln_x = if y < 0.5 { (-y).ln_1p() } else { x.ln() };
    let ln_y = if x < 0.5 { (-x).ln_1p() } else { y.ln() };
    let front = (a * ln_x + b * ln_y - ln_beta(a, b)).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        Some(front * beta_cf(a, b, x, y)? / a)
    } else {
        Some(1.0 - front * beta_cf(b, a, y, x)? / b)
    }
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes `betacf`, modified Lentz); `y = 1 − x`.
fn beta_cf(a: f64, b: f64, x: f64, y: f64) -> Option<f64> {
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let lentz = |v: f64| if v.abs() < FPMIN { FPMIN } else { v };
    let mut c = 1.0;
    // 1 − qab·x/qap = ((a + 1)·y + (1 − b)·x) / (a + 1): no cancellation when x is close to 1.
    let mut d = 1.0 / lentz((qap * y + (1.0 - b) * x) / qap);
    let mut h = d;
    for m in 1..MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / lentz(1.0 + aa * d);
        c = lentz(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / lentz(1.0 + aa * d);
        c = lentz(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() <= EPS {
            return finite(h);
        }
    }
    None
}

/// Regularized upper incomplete gamma `Q(a, x) = Γ(a, x) / Γ(a)`: Numerical Recipes `gammq`, the series
/// for `x < a + 1` (as `1 − P`) and the Lentz continued fraction otherwise.
fn gamma_q(a: f64, x: f64) -> Option<f64> {
    if !(a > 0.0 && a.is_finite() && x >= 0.0) {
        return None;
    }
    if x == f64::INFINITY {
        return Some(0.0);
    }
    if x == 0.0 {
        return Some(1.0);
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series for P(a, x).
        let mut ap = a;
        let mut del = 1.0 / a;
        let mut sum = del;
        for _ in 0..MAX_ITER {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                return finite(1.0 - sum * front);
            }
        }
        None
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / FPMIN;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_ITER {
            let i = i as f64;
            let an = -i * (i - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < FPMIN {
                d = FPMIN;
            }
            c = b + an / c;
            if c.abs() < FPMIN {
                c = FPMIN;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() <= EPS {
                return finite(front * h);
            }
        }
        None
    }
}

/// Standard normal CDF `Φ(z) = ½·erfc(−z/√2)`, with `erfc(u) = Q(½, u²)` for `u >= 0`.
fn norm_cdf(z: f64) -> Option<f64> {
    if z.is_nan() {
        return None;
    }
    let half_tail = 0.5 * gamma_q(0.5, 0.5 * z * z)?;
    Some(if z < 0.0 { half_tail } else { 1.0 - half_tail })
}

/// Standard normal survival function `1 − Φ(z) = Φ(−z)`.
pub(crate) fn norm_sf(z: f64) -> Option<f64> {
    norm_cdf(-z)
}

/// Standard normal quantile for `0 < p < 1`: P. J. Acklam's rational approximation (relative error
/// 1.15e-9) refined by one Halley step on [`norm_cdf`].
#[allow(clippy::excessive_precision, reason = "the coefficients as published, to compare them with the source")]
pub(crate) fn norm_ppf(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    if p > 0.5 {
        // 1 − p is exact for p in [0.5, 1).
        return Some(-norm_ppf(1.0 - p)?);
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_690e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    const P_LOW: f64 = 0.024_25;
    let x = if p < P_LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // Halley: e = Φ(x) − p, u = e·√(2π)·exp(x²/2), x ← x − u / (1 + x·u/2).
    let e = norm_cdf(x)? - p;
    let u = e * (2.0 * PI).sqrt() * (0.5 * x * x).exp();
    finite(x - u / (1.0 + 0.5 * x * u))
}

/// Survival function of Student's t, `P(T_ν > t)`, for any real `t` and `ν > 0`.
fn t_sf(t: f64, df: f64) -> Option<f64> {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return None;
    }
    if t < 0.0 {
        return Some(1.0 - t_sf(-t, df)?);
    }
    // P(T > t) = ½·I_x(ν/2, ½) with x = ν/(ν + t²); y = 1 − x = t²/(ν + t²), both formed without cancellation.
    let (x, y) = if t * t > df {
        let u = df / (t * t);
        (u / (1.0 + u), 1.0 / (1.0 + u))
    } else {
        let r = t * t / df;
        (1.0 / (1.0 + r), r / (1.0 + r))
    };
    Some(0.5 * beta_inc_xy(0.5 * df, 0.5, x, y)?)
}

/// CDF of Student's t.
#[cfg(test)]
fn t_cdf(t: f64, df: f64) -> Option<f64> {
    t_sf(-t, df)
}

/// Density of Student's t: `(1 + t²/ν)^(−(ν+1)/2) / (√ν · B(ν/2, ½))`.
fn t_pdf(t: f64, df: f64) -> f64 {
    (-0.5 * (df + 1.0) * (t * t / df).ln_1p() - 0.5 * df.ln() - ln_beta(0.5 * df, 0.5)).exp()
}

/// Quantile of Student's t for `0 < p < 1`, `ν > 0`: Newton's method on [`t_sf`], kept inside a bracket
/// that bisection shrinks whenever a Newton step would leave it.
fn t_ppf(p: f64, df: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0 && df > 0.0) || df.is_infinite() {
        return None;
    }
    if p == 0.5 {
        return Some(0.0);
    }
    // Solve sf(t) = q for t > 0, q < ½, and put the sign back.
    let (q, sign) = if p > 0.5 { (1.0 - p, 1.0) } else { (p, -1.0) };
    let mut lo = 0.0;
    let mut hi = (-norm_ppf(q)?).max(1.0);
    let mut doublings = 0;
    while t_sf(hi, df)? > q {
        lo = hi;
        hi *= 2.0;
        doublings += 1;
        if doublings > 1100 || !hi.is_finite() {
            return None;
        }
    }
    // The normal quantile is a good start for moderate ν; keep it only if it lies in the bracket.
    let start = -norm_ppf(q)?;
    let mut t = if start > lo && start < hi { start } else { 0.5 * (lo + hi) };
    for _ in 0..400 {
        let f = t_sf(t, df)? - q;
        if f == 0.0 {
            return Some(sign * t);
        }
        if f > 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let newton = t + f / t_pdf(t, df);
        let next = if newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
        if (next - t).abs() <= 2.0 * EPS * next.abs() || hi - lo <= 2.0 * EPS * hi {
            return finite(sign * next);
        }
        t = next;
    }
    finite(sign * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Golden values, frozen. They were computed independently of this file with scipy (not with the formulas'
    // Rust code): `python3 -m venv /tmp/scipyvenv && /tmp/scipyvenv/bin/pip install scipy numpy`, then this
    // script, verbatim:
    //
    // # Golden values for src/evidently/stats.rs: scipy 1.17.1, numpy 2, Python 3.
    // import numpy as np
    // from scipy import special, stats
    //
    // # name, control (n, mean, sd), treatment (n, mean, sd)
    // DATASETS = [
    //     ("basic", (200, 10.0, 2.0), (180, 10.6, 2.5)),
    //     ("equal_means", (50, 5.0, 1.0), (60, 5.0, 1.5)),
    //     ("tiny", (3, 1.0, 0.5), (3, 1.4, 0.3)),
    //     ("large_conversion", (100000, 0.05, 0.2), (100000, 0.052, 0.21)),
    //     ("large_decrease", (100000, 100.0, 15.0), (100000, 99.5, 15.0)),
    // ]
    // for name, (nc, mc, sc), (nt, mt, st) in DATASETS:
    //     t, p = stats.ttest_ind_from_stats(mt, st, nt, mc, sc, nc, equal_var=False)
    //     a, b = st**2 / nt, sc**2 / nc
    //     df = (a + b) ** 2 / (a**2 / (nt - 1) + b**2 / (nc - 1))
    //     effect = (mt - mc) / mc
    //     var = (mt / mc) ** 2 * (st**2 / (nt * mt**2) + sc**2 / (nc * mc**2))
    //     half = stats.t.ppf(0.975, df) * np.sqrt(var)
    //     s = np.sqrt(var)
    //     z_hi, z_lo = (0.03 - effect) / s, (-0.03 - effect) / s
    //     p_inc = stats.norm.sf(z_hi)
    //     p_dec = stats.norm.cdf(z_lo)
    //     if z_lo > 0:
    //         p_within = stats.norm.sf(z_lo) - stats.norm.sf(z_hi)
    //     else:
    //         p_within = stats.norm.cdf(z_hi) - stats.norm.cdf(z_lo)
    //     row = (t, df, p, mt, effect, effect - half, effect + half, p_inc, p_dec, p_within)
    //     print(name, [float(v) for v in row])
    //
    // # observed, weights
    // SRM = [
    //     ([50123, 49877], [0.5, 0.5]),
    //     ([10200, 9800, 20500], [1.0, 1.0, 2.0]),
    //     ([30, 70], [0.3, 0.7]),
    //     ([1000, 1200], [1.0, 1.0]),
    //     ([1000, 2000], [1.0, 1.0]),
    //     ([9000, 10200, 9900, 10050, 10100], [1.0, 1.0, 1.0, 1.0, 1.0]),
    // ]
    // for observed, weights in SRM:
    //     obs = np.array(observed, dtype=float)
    //     w = np.array(weights)
    //     expected = obs.sum() * w / w.sum()
    //     print("srm", observed, weights, float(stats.chisquare(obs, f_exp=expected).pvalue))
    //
    // BETAINC = [(2, 3, 0.4), (0.5, 0.5, 0.2), (5, 10, 0.9), (50, 0.5, 0.99), (1e5, 0.5, 0.99999),
    //            (0.5, 1e5, 2e-5), (300, 400, 0.45)]
    // GAMMAINCC = [(0.5, 0.1), (0.5, 3.0), (1.0, 2.0), (2.5, 10.0), (10.0, 3.0), (1.5, 50.0), (2.0, 0.5)]
    // GAMMALN = [0.5, 1.0, 3.7e-3, 10.3, 1e5, 123.456]
    // T_CDF = [(2.0, 3.0), (-1.5, 2.5), (0.3, 10.0), (4.0, 1000.0), (-8.0, 5.0), (2.0, 1e5), (1.96, 1.0),
    //          (-30.0, 7.3)]
    // T_PPF = [(0.975, 2.1), (0.975, 10.0), (0.975, 377.3), (0.975, 199998.0), (0.001, 4.0), (0.6, 7.0),
    //          (1e-12, 3.0), (0.975, 0.7)]
    // NORM_PPF = [0.975, 0.5, 1e-10, 0.02, 0.9999, 0.3, 1e-300]
    // NORM_CDF = [-1.96, 0.0, -10.0, 3.0, -38.0, 0.5]
    // print("betainc", [float(special.betainc(a, b, x)) for a, b, x in BETAINC])
    // print("gammaincc", [float(special.gammaincc(a, x)) for a, x in GAMMAINCC])
    // print("gammaln", [float(special.gammaln(x)) for x in GAMMALN])
    // print("t.cdf", [float(stats.t.cdf(t, df)) for t, df in T_CDF])
    // print("t.ppf", [float(stats.t.ppf(p, df)) for p, df in T_PPF])
    // print("norm.ppf", [float(stats.norm.ppf(p)) for p in NORM_PPF])
    // print("norm.cdf", [float(stats.norm.cdf(z)) for z in NORM_CDF])
    //
    // Its output is frozen in the tables below. Tolerance: 1e-9 relative; p-values and probabilities also get
    // 1e-12 absolute, for those near 0. The Rust side rebuilds each arm's sums from (n, mean, sd) with `moments`.

    /// Moments of `n` observations with this mean and sample standard deviation.
    fn moments(n: u64, mean: f64, sd: f64) -> Moments {
        let n_f = n as f64;
        Moments { n, sum: n_f * mean, sum_sq: (n_f - 1.0) * sd * sd + n_f * mean * mean }
    }

    fn of(values: &[f64]) -> Moments {
        let mut m = Moments::default();
        for &x in values {
            m.add(x);
        }
        m
    }

    /// `|got − want| <= 1e-9·|want| + abs`.
    #[track_caller]
    fn close(got: f64, want: f64, abs: f64) {
        assert!((got - want).abs() <= 1e-9 * want.abs() + abs, "got {got:e}, want {want:e}");
    }

    /// Absolute floor for p-values and probabilities near 0.
    const P_ABS: f64 = 1e-12;

    type Arm = (u64, f64, f64);
    /// t, df, p, mean, effect, ci_lower, ci_upper, p_increase, p_decrease, p_within.
    const WELCH: [(&str, Arm, Arm, [f64; 10]); 5] = [
        (
            "basic",
            (200, 10.0, 2.0),
            (180, 10.6, 2.5),
            [
                2.5648937995647456,
                342.40993299748277,
                0.010746349554444682,
                10.6,
                0.05999999999999996,
                0.012960580360210874,
                0.10703941963978905,
                0.8951564639001043,
                8.384992610566923e-05,
                0.10475968617379004,
            ],
        ),
        (
            "equal_means",
            (50, 5.0, 1.0),
            (60, 5.0, 1.5),
            [
                0.0,
                103.32673468008916,
                1.0,
                5.0,
                0.0,
                -0.09511043261211835,
                0.09511043261211835,
                0.26580728844080614,
                0.26580728844080614,
                0.4683854231183877,
            ],
        ),
        (
            "tiny",
            (3, 1.0, 0.5),
            (3, 1.4, 0.3),
            [
                1.188177051572009,
                3.274787535410765,
                0.31373809924936646,
                1.4,
                0.3999999999999999,
                -0.9351759720798851,
                1.735175972079885,
                0.7999629295205148,
                0.16405039845703168,
                0.035986672022453425,
            ],
        ),
        (
            "large_conversion",
            (100000, 0.05, 0.2),
            (100000, 0.052, 0.21),
            [
                2.1808811449437044,
                199523.79032726723,
                0.029193372394472596,
                0.052,
                0.0399999999999999,
                0.003360716153846012,
                0.07663928384615379,
                0.7036537623453152,
                9.035200599948795e-05,
                0.2962558856486854,
            ],
        ),
        (
            "large_decrease",
            (100000, 100.0, 15.0),
            (100000, 99.5, 15.0),
            [
                -7.453559924999299,
                199998.0,
                9.121840442450991e-14,
                99.5,
                -0.005,
                -0.006311508907427157,
                -0.003688491092572843,
                0.0,
                8.376314468627277e-306,
                1.0,
            ],
        ),
    ];

    #[test]
    fn welch_matches_scipy() {
        for (name, (nc, mc, sc), (nt, mt, st), want) in WELCH {
            let (c, t) = (moments(nc, mc, sc), moments(nt, mt, st));
            let Some(arms) = Arms::of(&c, &t) else { panic!("{name}: arms") };
            let Some((stat, df)) = arms.welch_t() else { panic!("{name}: welch_t") };
            let Some(cmp) = welch(&c, &t) else { panic!("{name}: welch") };
            println!("{name}: {stat} {df} {cmp:?}");
            close(stat, want[0], 0.0);
            close(df, want[1], 0.0);
            close(cmp.p_value, want[2], P_ABS);
            close(cmp.mean, want[3], 0.0);
            close(cmp.treatment_effect, want[4], 1e-15);
            close(cmp.ci_lower, want[5], 0.0);
            close(cmp.ci_upper, want[6], 0.0);
        }
    }

    #[test]
    fn bayes_matches_scipy() {
        for (name, (nc, mc, sc), (nt, mt, st), want) in WELCH {
            let Some(b) = bayes(&moments(nc, mc, sc), &moments(nt, mt, st)) else { panic!("{name}: bayes") };
            println!("{name}: {b:?}");
            close(b.p_increase, want[7], P_ABS);
            close(b.p_decrease, want[8], P_ABS);
            close(b.p_within, want[9], P_ABS);
            close(b.p_increase + b.p_decrease + b.p_within, 1.0, 1e-15);
        }
    }

    #[test]
    fn srm_matches_scipy() {
        let cases: [(&[u64], &[f64], f64); 6] = [
            (&[50123, 49877], &[0.5, 0.5], 0.43661599744396395),
            (&[10200, 9800, 20500], &[1.0, 1.0, 2.0], 0.000878726342437285),
            (&[30, 70], &[0.3, 0.7], 1.0),
            (&[1000, 1200], &[1.0, 1.0], 2.007865612426481e-05),
            (&[1000, 2000], &[1.0, 1.0], 1.80631623309412e-74),
            (&[9000, 10200, 9900, 10050, 10100], &[1.0; 5], 5.610948148267752e-20),
        ];
        for (observed, weights, want) in cases {
            let Some(p) = srm_p_value(observed, weights) else { panic!("{observed:?}") };
            println!("{observed:?}: {p:e}");
            close(p, want, P_ABS);
        }
    }

    #[test]
    fn srm_edge_cases() {
        assert_eq!(srm_p_value(&[], &[]), None);
        assert_eq!(srm_p_value(&[10], &[1.0]), None);
        assert_eq!(srm_p_value(&[10, 10], &[1.0]), None);
        assert_eq!(srm_p_value(&[0, 0], &[1.0, 1.0]), None);
        assert_eq!(srm_p_value(&[10, 10], &[0.0, 0.0]), None);
        assert_eq!(srm_p_value(&[10, 10], &[1.0, -1.0]), None);
        assert_eq!(srm_p_value(&[10, 10], &[1.0, f64::NAN]), None);
        assert_eq!(srm_p_value(&[10, 10], &[1.0, f64::INFINITY]), None);
        // A zero-weight arm without observations drops out; with observations it is a certain mismatch.
        assert_eq!(srm_p_value(&[10, 0], &[1.0, 0.0]), None);
        assert_eq!(srm_p_value(&[10, 10, 0], &[1.0, 1.0, 0.0]), Some(1.0));
        assert_eq!(srm_p_value(&[10, 10, 1], &[1.0, 1.0, 0.0]), Some(0.0));
        // u64 counts do not overflow the total.
        let Some(p) = srm_p_value(&[u64::MAX, u64::MAX], &[1.0, 1.0]) else { panic!("huge counts") };
        close(p, 1.0, 0.0);
    }

    #[test]
    fn special_functions_match_scipy() {
        let betainc: [(f64, f64, f64, f64); 7] = [
            (2.0, 3.0, 0.4, 0.5247999999999999),
            (0.5, 0.5, 0.2, 0.2951672353008665),
            (5.0, 10.0, 0.9, 0.99999993159585),
            (50.0, 0.5, 0.99, 0.3173043978741973),
            (1e5, 0.5, 0.99999, 0.15729868816242573),
            (0.5, 1e5, 2e-5, 0.9545005459730322),
            (300.0, 400.0, 0.45, 0.8738250286734268),
        ];
        for (a, b, x, want) in betainc {
            let Some(got) = beta_inc(a, b, x) else { panic!("betainc({a}, {b}, {x})") };
            close(got, want, 0.0);
        }
        let gammaincc: [(f64, f64, f64); 7] = [
            (0.5, 0.1, 0.6547208460185768),
            (0.5, 3.0, 0.014305878435429641),
            (1.0, 2.0, 0.1353352832366127),
            (2.5, 10.0, 0.0012497305630313773),
            (10.0, 3.0, 0.9988975118698845),
            (1.5, 50.0, 1.5541594313896026e-21),
            (2.0, 0.5, 0.9097959895689501),
        ];
        for (a, x, want) in gammaincc {
            let Some(got) = gamma_q(a, x) else { panic!("gammaincc({a}, {x})") };
            close(got, want, 0.0);
        }
        let gammaln: [(f64, f64); 6] = [
            (0.5, 0.5723649429247),
            (1.0, 0.0),
            (3.7e-3, 5.597298000700149),
            (10.3, 13.482036786138359),
            (1e5, 1051287.7089736569),
            (123.456, 469.6055471299295),
        ];
        for (x, want) in gammaln {
            close(ln_gamma(x), want, 1e-15);
        }
        let t_cdfs: [(f64, f64, f64); 8] = [
            (2.0, 3.0, 0.9303370157205785),
            (-1.5, 2.5, 0.12391822654314809),
            (0.3, 10.0, 0.6148396962171008),
            (4.0, 1000.0, 0.9999659950403956),
            (-8.0, 5.0, 0.0002464533302862221),
            (2.0, 1e5, 0.9772485182712467),
            (1.96, 1.0, 0.8498285541119834),
            (-30.0, 7.3, 3.2444026595639815e-09),
        ];
        for (t, df, want) in t_cdfs {
            let Some(got) = t_cdf(t, df) else { panic!("t.cdf({t}, {df})") };
            close(got, want, 0.0);
        }
        let t_ppfs: [(f64, f64, f64); 8] = [
            (0.975, 2.1, 4.112152758173878),
            (0.975, 10.0, 2.228138851986274),
            (0.975, 377.3, 1.966271352668338),
            (0.975, 199998.0, 1.959975846085384),
            (0.001, 4.0, -7.1731822197823085),
            (0.6, 7.0, 0.2631668613520229),
            (1e-12, 3.0, -10331.108244292487),
            (0.975, 0.7, 36.611415031588656),
        ];
        for (p, df, want) in t_ppfs {
            let Some(got) = t_ppf(p, df) else { panic!("t.ppf({p}, {df})") };
            close(got, want, 0.0);
        }
        let norm_ppfs: [(f64, f64); 7] = [
            (0.975, 1.959963984540054),
            (0.5, 0.0),
            (1e-10, -6.361340902404056),
            (0.02, -2.053748910631823),
            (0.9999, 3.719016485455709),
            (0.3, -0.5244005127080409),
            (1e-300, -37.0470962993612),
        ];
        for (p, want) in norm_ppfs {
            let Some(got) = norm_ppf(p) else { panic!("norm.ppf({p})") };
            close(got, want, 1e-15);
        }
        let norm_cdfs: [(f64, f64); 6] = [
            (-1.96, 0.024997895148220435),
            (0.0, 0.5),
            (-10.0, 7.61985302416047e-24),
            (3.0, 0.9986501019683699),
            (-38.0, 0.0),
            (0.5, 0.6914624612740131),
        ];
        for (z, want) in norm_cdfs {
            let Some(got) = norm_cdf(z) else { panic!("norm.cdf({z})") };
            close(got, want, P_ABS);
        }
    }

    #[test]
    fn special_functions_reject_bad_arguments() {
        assert_eq!(beta_inc(0.0, 1.0, 0.5), None);
        assert_eq!(beta_inc(1.0, 1.0, 1.5), None);
        assert_eq!(beta_inc(1.0, 1.0, f64::NAN), None);
        assert_eq!(gamma_q(0.0, 1.0), None);
        assert_eq!(gamma_q(1.0, -1.0), None);
        assert_eq!(gamma_q(1.0, f64::INFINITY), Some(0.0));
        assert_eq!(norm_ppf(0.0), None);
        assert_eq!(norm_ppf(1.0), None);
        assert_eq!(t_ppf(0.975, 0.0), None);
        assert_eq!(t_ppf(1.0, 3.0), None);
        assert_eq!(t_sf(f64::NAN, 3.0), None);
        assert_eq!(t_sf(f64::INFINITY, 3.0), Some(0.0));
    }

    #[test]
    fn merge_equals_adding_every_value() {
        // Quarters are exact in binary, so both orders of summation give the same bits.
        let values: Vec<f64> = (0..40).map(|i| f64::from(i * 7 % 13) / 4.0 - 1.0).collect();
        let whole = of(&values);
        let mut merged = of(&values[..17]);
        merged.merge(&of(&values[17..30]));
        merged.merge(&of(&values[30..]));
        merged.merge(&Moments::default());
        assert_eq!(merged, whole);
        // Arbitrary values: equal up to rounding.
        let values: Vec<f64> = (1..=1000).map(|i| (f64::from(i) * 0.37).sin() * 10.0 + 3.0).collect();
        let whole = of(&values);
        let mut merged = of(&values[..333]);
        merged.merge(&of(&values[333..]));
        assert_eq!(merged.n, whole.n);
        let (Some(a), Some(b)) = (merged.variance(), whole.variance()) else { panic!("variance") };
        close(a, b, 0.0);
    }

    #[test]
    fn moments_mean_and_variance() {
        let m = of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(m.mean(), Some(5.0));
        assert_eq!(m.variance(), Some(32.0 / 7.0));
        assert_eq!(of(&[]).mean(), None);
        assert_eq!(of(&[3.0]).mean(), Some(3.0));
        assert_eq!(of(&[3.0]).variance(), None);
        // Constant data whose sums round: the residue is recognised as no spread.
        assert_eq!(of(&[0.1; 10]).variance(), Some(0.0));
        assert_eq!(of(&[1e6 + 0.3; 1000]).variance(), Some(0.0));
        assert_eq!(of(&[1.0, f64::NAN]).mean(), None);
        assert_eq!(of(&[1.0, f64::INFINITY]).variance(), None);
        // Round trip through serde, as stored per bucket.
        let Ok(json) = serde_json::to_string(&m) else { panic!("serialize") };
        assert_eq!(serde_json::from_str::<Moments>(&json).ok(), Some(m));
    }

    #[test]
    fn undefined_results_are_none() {
        let ok = of(&[1.0, 2.0, 3.0]);
        let constant = of(&[0.1; 10]);
        let cases: [(&str, Moments, Moments); 9] = [
            ("empty control", Moments::default(), ok),
            ("empty treatment", ok, Moments::default()),
            ("one control value", of(&[1.0]), ok),
            ("one treatment value", ok, of(&[1.0])),
            ("no variance in either arm", constant, of(&[0.2; 7])),
            ("control mean 0", of(&[-1.0, 1.0, -2.0, 2.0]), ok),
            ("NaN", of(&[1.0, f64::NAN]), ok),
            ("infinity", ok, of(&[1.0, f64::INFINITY])),
            ("overflowing squares", of(&[1e200, 2e200]), ok),
        ];
        for (name, c, t) in cases {
            assert_eq!(welch(&c, &t), None, "welch: {name}");
            assert_eq!(bayes(&c, &t), None, "bayes: {name}");
        }
        // One constant arm is enough variance; a treatment mean of 0 is a defined effect of −100 %.
        assert!(welch(&constant, &ok).is_some());
        let Some(cmp) = welch(&ok, &of(&[-1.0, 1.0, -2.0, 2.0])) else { panic!("treatment mean 0") };
        assert_eq!(cmp.treatment_effect, -1.0);
        assert!(bayes(&ok, &of(&[-1.0, 1.0, -2.0, 2.0])).is_some());
    }

    /// Whatever the moments, the public functions return None or finite numbers, and never panic.
    #[test]
    fn never_nan_over_a_grid() {
        let ns = [0u64, 1, 2, 3, 10, 1_000_000, u64::MAX];
        let means = [0.0, 1e-300, -1.0, 1.0, 3.5, 1e150, -1e300, f64::MIN_POSITIVE];
        let sds = [0.0, 1e-300, 1e-8, 1.0, 1e100, 1e300];
        let mut grid = Vec::new();
        for &n in &ns {
            for &mean in &means {
                for &sd in &sds {
                    grid.push(moments(n, mean, sd));
                }
            }
        }
        grid.push(Moments { n: 5, sum: 1.0, sum_sq: -1.0 });
        grid.push(Moments { n: 5, sum: f64::NAN, sum_sq: 1.0 });
        grid.push(Moments { n: 5, sum: 1.0, sum_sq: f64::INFINITY });
        let mut computed = 0;
        for c in &grid {
            for t in grid.iter().step_by(7) {
                if let Some(cmp) = welch(c, t) {
                    computed += 1;
                    for x in [cmp.mean, cmp.treatment_effect, cmp.ci_lower, cmp.ci_upper, cmp.p_value] {
                        assert!(x.is_finite(), "{c:?} {t:?} {cmp:?}");
                    }
                    assert!((0.0..=1.0).contains(&cmp.p_value), "{c:?} {t:?} {cmp:?}");
                    assert!(cmp.ci_lower <= cmp.ci_upper, "{c:?} {t:?} {cmp:?}");
                }
                if let Some(b) = bayes(c, t) {
                    for x in [b.p_increase, b.p_decrease, b.p_within] {
                        assert!((0.0..=1.0).contains(&x), "{c:?} {t:?} {b:?}");
                    }
                }
            }
        }
        assert!(computed > 100, "the grid should exercise the computable path too ({computed})");
    }
}
