// ShuffledOrder (lib/data/shuffled-order.ts): permutations per epoch, batches within or across epochs,
// and exact continuation from a saved position.
import { describe, expect, it } from 'vitest';
import { ShuffledOrder } from '../lib/data/shuffled-order.js';
import { expectThrows } from './helpers/assert.js';

describe('ShuffledOrder', () => {
  it('gives a new permutation every epoch; take() crosses epochs, nextInEpoch() never does', () => {
    const order = new ShuffledOrder(7, 3);
    const first = order.take(7);
    const second = order.take(7);
    expect([...first].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([...second].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(second).not.toEqual(first);
    const batches = new ShuffledOrder(7, 3);
    expect(batches.nextInEpoch(5)).toEqual({ epoch: 0, indices: first.slice(0, 5) });
    expect(batches.nextInEpoch(5)).toEqual({ epoch: 0, indices: first.slice(5) });
    expect(batches.nextInEpoch(5)).toEqual({ epoch: 1, indices: second.slice(0, 5) });
    const crossing = new ShuffledOrder(7, 3);
    crossing.take(5);
    expect(crossing.take(4)).toEqual([...first.slice(5), ...second.slice(0, 2)]);
  });

  it('continues exactly from a saved position, and rejects one that is not', () => {
    const order = new ShuffledOrder(10, 9);
    order.take(13);
    const saved = JSON.parse(JSON.stringify(order.position()));
    const expected = order.take(25);
    const resumed = new ShuffledOrder(10, 0);
    resumed.restore(resumed.check(saved, 'state.order'));
    expect(resumed.take(25)).toEqual(expected);
    expectThrows(() => resumed.check(null, 'state.order'), 'ERR_TALARIA_FORMAT', 'state.order');
    expectThrows(() => resumed.check({ ...saved, index: 11 }, 'state.order'), 'ERR_TALARIA_FORMAT', 'index in [0, 10]');
    expectThrows(() => resumed.check({ ...saved, epoch: -1 }, 'state.order'), 'ERR_TALARIA_FORMAT', 'state.order');
    expectThrows(() => resumed.check({ ...saved, rngState: [1, 2, 3] }, 'state.order'), 'ERR_TALARIA_FORMAT', 'state.order.rngState');
  });
});
