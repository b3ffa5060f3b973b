import { describe, expect, it } from 'vitest';
import { Rng } from '../lib/util/rng.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const draw = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 8 }, () => r.nextUint32());
    };
    const a = new Rng(7), b = new Rng(7), c = new Rng(8);
    const xs = Array.from({ length: 16 }, () => a.nextUint32());
    expect(Array.from({ length: 16 }, () => b.nextUint32())).toEqual(xs);
    expect(Array.from({ length: 16 }, () => c.nextUint32())).not.toEqual(xs);
    expect(draw(2 ** 40)).not.toEqual(draw(0)); // high seed bits matter
  });

  it('resumes exactly from a saved state', () => {
    const rng = new Rng(123);
    for (let i = 0; i < 100; i++) rng.uniform();
    const state = JSON.parse(JSON.stringify(rng.state()));
    const expected = Array.from({ length: 50 }, () => rng.normal());
    const resumed = Rng.fromState(state);
    expect(Array.from({ length: 50 }, () => resumed.normal())).toEqual(expected);
  });

  it('draws the distributions it promises', () => {
    const rng = new Rng(1);
    const n = 200_000;
    let sum = 0, sumSq = 0, uMin = 1, uMax = 0;
    const counts = new Array(7).fill(0);
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      uMin = Math.min(uMin, u);
      uMax = Math.max(uMax, u);
      counts[rng.int(7)]++;
      const z = rng.normal();
      sum += z;
      sumSq += z * z;
    }
    expect(uMin).toBeGreaterThanOrEqual(0);
    expect(uMax).toBeLessThan(1);
    for (const c of counts) expect(Math.abs(c / n - 1 / 7)).toBeLessThan(0.005);
    expect(Math.abs(sum / n)).toBeLessThan(0.01);
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(0.02);
    const seen = new Set(Array.from({ length: 1000 }, () => rng.intBetween(3, 5)));
    expect([...seen].sort()).toEqual([3, 4, 5]);
  });

  it('shuffles into a permutation', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const shuffled = new Rng(5).shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((x, y) => x - y)).toEqual(items);
  });

  it('rejects bad seeds, bounds and states', () => {
    expect(() => new Rng(1.5)).toThrow(/seed/);
    expect(() => new Rng(Number.NaN)).toThrow(/seed/);
    const rng = new Rng(0);
    expect(() => rng.int(0)).toThrow(/positive integer/);
    expect(() => rng.int(2.5)).toThrow(/positive integer/);
    expect(() => rng.restore([1, 2, 3] as never)).toThrow(/four/);
    expect(() => rng.restore([1, 2, 3, -1])).toThrow(/four/);
  });
});
