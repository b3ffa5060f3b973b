// Goodness-of-fit statistics for the sampling suites.

// ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms: ~15 digits).
function lnGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

// The regularised upper incomplete gamma Q(a, x): a series below a + 1, a continued fraction above
// (Numerical Recipes' gammq).
function upperGamma(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a, sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > Math.abs(sum) * 1e-15; n++) sum += (term *= x / (a + n));
    return 1 - sum * front;
  }
  let b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    c = b + an / c;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return front * h;
}

export interface ChiSquare {
  statistic: number;
  degreesOfFreedom: number;
  /** P(chi^2 >= statistic) under the null hypothesis. */
  pValue: number;
}

/** Pearson's chi-square of observed counts against probabilities (cells with probability 0 are left out). */
export function chiSquare(observed: ArrayLike<number>, probabilities: ArrayLike<number>): ChiSquare {
  let draws = 0, statistic = 0, cells = 0;
  for (let i = 0; i < observed.length; i++) draws += observed[i];
  for (let i = 0; i < observed.length; i++) {
    if (probabilities[i] === 0) continue;
    const expected = draws * probabilities[i];
    statistic += (observed[i] - expected) ** 2 / expected;
    cells++;
  }
  const degreesOfFreedom = cells - 1;
  return { statistic, degreesOfFreedom, pValue: degreesOfFreedom > 0 ? upperGamma(degreesOfFreedom / 2, statistic / 2) : 1 };
}
