import { describe, expect, it } from 'vitest';
import { createProgress } from '../lib/cli/progress.js';
import { expectThrows } from './helpers/assert.js';

/** A stream that records what is written; isTTY decides between the bar and plain lines. */
function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  return { isTTY, columns: 120, chunks, write(chunk: string | Uint8Array) { chunks.push(String(chunk)); return true; } };
}

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

describe('createProgress', () => {
  it('not a TTY: a plain line at most every interval, with rate, ETA and values, and a final line', () => {
    const stream = fakeStream(false);
    const clock = fakeClock();
    const progress = createProgress({ label: 'sft', total: 100, unit: 'steps', stream, now: clock.now });
    for (let step = 1; step <= 37; step++) {
      clock.advance(1000); // one step per second
      progress.tick(1, { loss: 3 / step });
    }
    // Lines at t = 5, 10, …, 35 s: seven, none sooner than 5 s after the previous.
    expect(stream.chunks).toHaveLength(7);
    expect(stream.chunks[0]).toBe('sft: 5/100 steps (5%) 1 steps/s ETA 1m35s loss=0.6\n');
    expect(stream.chunks[6]).toBe('sft: 35/100 steps (35%) 1 steps/s ETA 1m05s loss=0.08571\n');
    progress.update(50, { loss: 0.05, phase: 'warm' });
    progress.stop();
    progress.stop(); // idempotent
    progress.tick(5); // ignored after stop
    expect(stream.chunks).toHaveLength(8);
    expect(stream.chunks[7]).toBe('sft: 50/100 steps in 37s (1.351 steps/s) loss=0.05 phase=warm\n');
    expect(stream.chunks.join('')).not.toMatch(/\x1b|\r/); // no terminal control codes in logs
  });

  it('counts throughput from `initial` on a resumed run and caps at total', () => {
    const stream = fakeStream(false);
    const clock = fakeClock();
    const progress = createProgress({ label: 'ppo', total: 40, unit: 'rollouts', initial: 20, stream, now: clock.now, intervalMs: 0 });
    clock.advance(2000);
    progress.tick(8);
    expect(stream.chunks[0]).toBe('ppo: 28/40 rollouts (70%) 4 rollouts/s ETA 3s\n');
    clock.advance(60_000);
    progress.tick(100);
    progress.stop();
    expect(stream.chunks[2]).toBe('ppo: 40/40 rollouts in 1m02s (0.3226 rollouts/s)\n');
  });

  it('a TTY gets a cli-progress bar with throughput', () => {
    const stream = fakeStream(true);
    const clock = fakeClock();
    const progress = createProgress({ label: 'rm', total: 10, unit: 'pairs', stream, now: clock.now });
    for (let i = 0; i < 10; i++) {
      clock.advance(500);
      progress.tick(1, { acc: 0.75 });
    }
    progress.stop();
    const output = stream.chunks.join('');
    expect(output).toContain('rm [');
    expect(output).toContain('10/10 pairs');
    expect(output).toContain('2 pairs/s');
    expect(output).toContain('acc=0.75');
  });

  it('silent prints nothing', () => {
    for (const isTTY of [false, true]) {
      const stream = fakeStream(isTTY);
      const progress = createProgress({ label: 'x', total: 3, stream, silent: true, intervalMs: 0 });
      progress.tick();
      progress.update(3, { a: 1 });
      progress.stop();
      expect(stream.chunks).toEqual([]);
    }
  });

  it('rejects bad arguments', () => {
    const stream = fakeStream(false);
    const good = { label: 'sft', total: 10, stream };
    expectThrows(() => createProgress(null as never), 'ERR_TALARIA_DTYPE', 'options');
    expectThrows(() => createProgress({ ...good, label: '' }), 'ERR_TALARIA_DTYPE', 'label');
    expectThrows(() => createProgress({ ...good, unit: 4 as never }), 'ERR_TALARIA_DTYPE', 'unit');
    expectThrows(() => createProgress({ ...good, total: 0 }), 'ERR_TALARIA_RANGE', 'total');
    expectThrows(() => createProgress({ ...good, total: 2.5 }), 'ERR_TALARIA_RANGE', 'total');
    expectThrows(() => createProgress({ ...good, total: '10' as never }), 'ERR_TALARIA_DTYPE', 'total');
    expectThrows(() => createProgress({ ...good, initial: 11 }), 'ERR_TALARIA_RANGE', 'initial');
    expectThrows(() => createProgress({ ...good, intervalMs: -1 }), 'ERR_TALARIA_RANGE', 'intervalMs');
    expectThrows(() => createProgress({ ...good, silent: 1 as never }), 'ERR_TALARIA_DTYPE', 'silent');
    expectThrows(() => createProgress({ ...good, stream: {} as never }), 'ERR_TALARIA_DTYPE', 'stream');
    expectThrows(() => createProgress({ ...good, now: 3 as never }), 'ERR_TALARIA_DTYPE', 'now');
    const progress = createProgress(good);
    expectThrows(() => progress.tick(-1), 'ERR_TALARIA_RANGE', 'n');
    expectThrows(() => progress.tick(Number.NaN), 'ERR_TALARIA_RANGE', 'n');
    expectThrows(() => progress.tick('1' as never), 'ERR_TALARIA_DTYPE', 'n');
    expectThrows(() => progress.update(Infinity), 'ERR_TALARIA_RANGE', 'done');
    expectThrows(() => progress.update(null as never), 'ERR_TALARIA_DTYPE', 'done');
    expectThrows(() => progress.tick(1, 'loss' as never), 'ERR_TALARIA_DTYPE', 'values');
    expectThrows(() => progress.update(1, [1] as never), 'ERR_TALARIA_DTYPE', 'values');
    progress.stop();
  });
});
