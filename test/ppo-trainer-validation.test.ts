// Bad input for every PpoTrainer option, for a rewardFn's result and for restore(): each is a TalariaError
// with the right code and a message naming the option.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TransformerModel } from '../lib/nn/model.js';
import { AdaptiveKlController, PpoTrainer, ppoAdvantages, sequenceLogprobs, type PpoTrainerOptions } from '../lib/train/ppo.js';
import type { ErrorCode } from '../lib/native.js';
import { disposeTensors } from './helpers/backends.js';
import { expectThrows } from './helpers/assert.js';
import { disposeModels, tinyDocuments, tinyModels, tinyOptions, tinyTokenizer } from './helpers/ppo-world.js';

afterEach(disposeTensors);

const models = tinyModels(1);
// Models that are wrong for a role: frozen copies and an unsuppressed policy.
const frozenValue = new TransformerModel(models.value.config, { lm: false, score: true }, { params: models.value.parametersToArray(), trainable: false });
const unsuppressed = new TransformerModel(models.policy.config, { lm: true, score: false }, { seed: 4 });
const otherSuppress = new TransformerModel(models.policy.config, { lm: true, score: false }, { seed: 4, trainable: false, suppressTokens: [0] });
const bigVocab = new TransformerModel({ ...models.policy.config, vocabSize: 13 }, { lm: true, score: false }, { seed: 4, trainable: false, suppressTokens: [0, 1] });
afterAll(() => {
  disposeModels(models);
  for (const m of [frozenValue, unsuppressed, otherSuppress, bigVocab]) m.dispose();
});

type Case = [string, Record<string, unknown>, ErrorCode, string];

const cases: Case[] = [
  ['an unknown option', { klcoef: 0.1 }, 'ERR_TALARIA_RANGE', 'klcoef'],
  ['policy not a model', { policy: {} }, 'ERR_TALARIA_DTYPE', 'policy'],
  ['policy without an LM head', { policy: models.value }, 'ERR_TALARIA_RANGE', 'policy'],
  ['policy frozen', { policy: models.reference, reference: unsuppressed }, 'ERR_TALARIA_RANGE', 'policy'],
  ['policy without suppressTokens', { policy: unsuppressed }, 'ERR_TALARIA_RANGE', 'policy.suppressTokens'],
  ['reference not a model', { reference: 'sft' }, 'ERR_TALARIA_DTYPE', 'reference'],
  ['reference without an LM head', { reference: models.reward }, 'ERR_TALARIA_RANGE', 'reference'],
  ['reference with other suppressTokens', { reference: otherSuppress }, 'ERR_TALARIA_RANGE', 'reference.suppressTokens'],
  ['reference with another vocabulary', { reference: bigVocab }, 'ERR_TALARIA_SHAPE', 'reference'],
  ['reference = policy', { reference: models.policy }, 'ERR_TALARIA_RANGE', 'distinct'],
  ['value not a model', { value: null }, 'ERR_TALARIA_DTYPE', 'value'],
  ['value without a score head', { value: models.policy }, 'ERR_TALARIA_RANGE', 'value'],
  ['value frozen', { value: frozenValue }, 'ERR_TALARIA_RANGE', 'value'],
  ['reward not a model', { rewardFn: undefined, reward: 3 }, 'ERR_TALARIA_DTYPE', 'reward'],
  ['reward without a score head', { rewardFn: undefined, reward: models.reference }, 'ERR_TALARIA_RANGE', 'reward'],
  ['both reward and rewardFn', { reward: models.reward }, 'ERR_TALARIA_RANGE', 'rewardFn'],
  ['neither reward nor rewardFn', { rewardFn: undefined }, 'ERR_TALARIA_RANGE', 'reward'],
  ['rewardFn not a function', { rewardFn: 5 }, 'ERR_TALARIA_DTYPE', 'rewardFn'],
  ['tokenizer missing', { tokenizer: null }, 'ERR_TALARIA_DTYPE', 'tokenizer'],
  ['tokenizer of another vocabulary', { tokenizer: { ...tinyTokenizer, vocabSize: 300 } }, 'ERR_TALARIA_SHAPE', 'vocabSize'],
  ['prompts not an array', { prompts: new Int32Array([1, 3]) }, 'ERR_TALARIA_DTYPE', 'prompts'],
  ['prompts empty', { prompts: [] }, 'ERR_TALARIA_SHAPE', 'prompts'],
  ['a prompt not an Int32Array', { prompts: [[1, 3]] }, 'ERR_TALARIA_DTYPE', 'prompts[0]'],
  ['an empty prompt', { prompts: [new Int32Array([1]), new Int32Array(0)] }, 'ERR_TALARIA_SHAPE', 'prompts[1]'],
  ['a prompt token out of range', { prompts: [new Int32Array([1, 12])] }, 'ERR_TALARIA_RANGE', 'prompts[0]'],
  ['a prompt too long for the context', { prompts: [new Int32Array(60).fill(3)] }, 'ERR_TALARIA_RANGE', 'max_position_embeddings'],
  ['iterations 0', { iterations: 0 }, 'ERR_TALARIA_RANGE', 'iterations'],
  ['iterations fractional', { iterations: 2.5 }, 'ERR_TALARIA_RANGE', 'iterations'],
  ['iterations a string', { iterations: '3' }, 'ERR_TALARIA_DTYPE', 'iterations'],
  ['rolloutsPerIteration 0', { rolloutsPerIteration: 0 }, 'ERR_TALARIA_RANGE', 'rolloutsPerIteration'],
  ['minibatchSize over rolloutsPerIteration', { minibatchSize: 17 }, 'ERR_TALARIA_RANGE', 'minibatchSize'],
  ['minibatchSize 0', { minibatchSize: 0 }, 'ERR_TALARIA_RANGE', 'minibatchSize'],
  ['epochs 0', { epochs: 0 }, 'ERR_TALARIA_RANGE', 'epochs'],
  ['temperature 0', { temperature: 0 }, 'ERR_TALARIA_RANGE', 'temperature'],
  ['temperature a string', { temperature: 'hot' }, 'ERR_TALARIA_DTYPE', 'temperature'],
  ['maxNewTokens missing', { maxNewTokens: undefined }, 'ERR_TALARIA_DTYPE', 'maxNewTokens'],
  ['maxNewTokens 0', { maxNewTokens: 0 }, 'ERR_TALARIA_RANGE', 'maxNewTokens'],
  ['klCoef negative', { klCoef: -0.1 }, 'ERR_TALARIA_RANGE', 'klCoef'],
  ['klCoef NaN', { klCoef: NaN }, 'ERR_TALARIA_RANGE', 'klCoef'],
  ['adaptiveKl not an object', { adaptiveKl: 6 }, 'ERR_TALARIA_DTYPE', 'adaptiveKl'],
  ['adaptiveKl.target 0', { adaptiveKl: { target: 0, horizon: 100 } }, 'ERR_TALARIA_RANGE', 'adaptiveKl.target'],
  ['adaptiveKl.horizon missing', { adaptiveKl: { target: 6 } }, 'ERR_TALARIA_DTYPE', 'adaptiveKl.horizon'],
  ['gamma over 1', { gamma: 1.5 }, 'ERR_TALARIA_RANGE', 'gamma'],
  ['lambda negative', { lambda: -0.1 }, 'ERR_TALARIA_RANGE', 'lambda'],
  ['clip 0', { clip: 0 }, 'ERR_TALARIA_RANGE', 'clip'],
  ['clip 1', { clip: 1 }, 'ERR_TALARIA_RANGE', 'clip'],
  ['dualClip 1', { dualClip: 1 }, 'ERR_TALARIA_RANGE', 'dualClip'],
  ['valueClip 0', { valueClip: 0 }, 'ERR_TALARIA_RANGE', 'valueClip'],
  ['missingEosPenalty negative', { missingEosPenalty: -1 }, 'ERR_TALARIA_RANGE', 'missingEosPenalty'],
  ['whiten a string', { whiten: 'yes' }, 'ERR_TALARIA_DTYPE', 'whiten'],
  ['lr missing', { lr: undefined }, 'ERR_TALARIA_DTYPE', 'lr'],
  ['lr 0', { lr: 0 }, 'ERR_TALARIA_RANGE', 'lr'],
  ['valueLr negative', { valueLr: -1e-3 }, 'ERR_TALARIA_RANGE', 'valueLr'],
  ['weightDecay negative', { weightDecay: -0.1 }, 'ERR_TALARIA_RANGE', 'weightDecay'],
  ['maxGradNorm 0', { maxGradNorm: 0 }, 'ERR_TALARIA_RANGE', 'maxGradNorm'],
  ['emaDecay 1', { emaDecay: 1 }, 'ERR_TALARIA_RANGE', 'emaDecay'],
  ['ptx not an object', { ptx: null }, 'ERR_TALARIA_DTYPE', 'ptx'],
  ['ptx.examples empty', { ptx: { examples: [] } }, 'ERR_TALARIA_SHAPE', 'ptx.examples'],
  ['ptx.examples[0].ids not an Int32Array', { ptx: { examples: [{ ids: [1, 3, 4] }] } }, 'ERR_TALARIA_DTYPE', 'ptx.examples[0]'],
  ['a ptx document of one token', { ptx: { examples: [{ ids: new Int32Array([1]) }] } }, 'ERR_TALARIA_SHAPE', 'ptx.examples[0]'],
  ['a ptx document longer than the context + 1', { ptx: { examples: [{ ids: new Int32Array(66).fill(3) }] } }, 'ERR_TALARIA_SHAPE', 'ptx.examples[0]'],
  ['a ptx token out of range', { ptx: { examples: [{ ids: new Int32Array([1, 99]) }] } }, 'ERR_TALARIA_RANGE', 'ptx.examples[0]'],
  ['a ptx lossMask of the wrong length', { ptx: { examples: [{ ids: new Int32Array([1, 3]), lossMask: new Uint8Array(3) }] } }, 'ERR_TALARIA_SHAPE', 'lossMask'],
  ['ptx.coef negative', { ptx: { examples: tinyDocuments(2, 1), coef: -1 } }, 'ERR_TALARIA_RANGE', 'ptx.coef'],
  ['ptx.docsPerMinibatch 0', { ptx: { examples: tinyDocuments(2, 1), docsPerMinibatch: 0 } }, 'ERR_TALARIA_RANGE', 'ptx.docsPerMinibatch'],
  ['seed negative', { seed: -1 }, 'ERR_TALARIA_RANGE', 'seed'],
  ['seed fractional', { seed: 0.5 }, 'ERR_TALARIA_RANGE', 'seed'],
];

describe('PpoTrainer rejects bad options', () => {
  it('options not an object', () => {
    expectThrows(() => new PpoTrainer(null as unknown as PpoTrainerOptions), 'ERR_TALARIA_DTYPE', 'options');
  });

  it.each(cases)('%s', (_what, overrides, code, name) => {
    const options = { ...tinyOptions(models), ...overrides } as Record<string, unknown>;
    for (const key of Object.keys(options)) if (options[key] === undefined) delete options[key];
    expectThrows(() => new PpoTrainer(options as unknown as PpoTrainerOptions), code, name);
  });

  it('accepts the same options without the bad one (the base case is valid)', () => {
    new PpoTrainer(tinyOptions(models)).dispose();
  });
});

describe('PpoTrainer rejects a bad rewardFn result and a bad checkpoint', () => {
  it.each([
    ['too few scores', () => new Float32Array(3), 'ERR_TALARIA_SHAPE'],
    ['not an array', () => 7, 'ERR_TALARIA_SHAPE'],
    ['an infinite score', (s: { responses: unknown[] }) => Float32Array.from(s.responses, () => Infinity), 'ERR_TALARIA_RANGE'],
  ] as const)('rewardFn returning %s', (_what, rewardFn, code) => {
    const trainer = new PpoTrainer(tinyOptions(models, { rewardFn: rewardFn as unknown as PpoTrainerOptions['rewardFn'] }));
    expectThrows(() => trainer.trainStep(), code as ErrorCode, code === 'ERR_TALARIA_SHAPE' ? 'rewardFn' : 'reward');
    trainer.dispose();
  });

  it('restore() refuses a checkpoint that does not fit, naming the field, and changes nothing', () => {
    const trainer = new PpoTrainer(tinyOptions(models, { emaDecay: 0.9 }));
    const saved = trainer.checkpoint();
    const good = {
      state: JSON.parse(JSON.stringify(saved.state)) as Record<string, unknown>,
      tensors: saved.tensors,
      models: { policy: models.policy.parametersToArray(), value: models.value.parametersToArray() },
    };
    const bad: [string, (c: typeof good) => void][] = [
      ['stepsDone', (c) => (c.state.stepsDone = 99)],
      ['philoxOffset', (c) => (c.state.philoxOffset = -1)],
      ['klCoef', (c) => (c.state.klCoef = 'x')],
      ['promptOrder', (c) => (c.state.promptOrder = { epoch: 0, index: 999, rngState: [1, 2, 3, 4] })],
      ['minibatchRng', (c) => (c.state.minibatchRng = [1, 2])],
      ['policy.adam.m', (c) => (c.tensors = { ...c.tensors, 'policy.adam.m': undefined as unknown as Float32Array })],
      ['policy.ema', (c) => (c.tensors = { ...c.tensors, 'policy.ema': undefined as unknown as Float32Array })],
      ['models.value', (c) => (c.models = { ...c.models, value: new Float32Array(3) })],
    ];
    const before = models.policy.parametersToArray();
    for (const [field, spoil] of bad) {
      const copy = { state: { ...good.state }, tensors: { ...good.tensors }, models: { ...good.models } };
      spoil(copy);
      expectThrows(() => trainer.restore(copy), 'ERR_TALARIA_FORMAT', field);
    }
    expect(models.policy.parametersToArray()).toEqual(before);
    expect(trainer.stepsDone).toBe(0);
    trainer.restore(good);
    trainer.dispose();
  });
});

describe('the public PPO helpers reject bad input', () => {
  const ids = new Int32Array([1, 4, 5, 1, 6]);
  const cuSeqlens = new Int32Array([0, 3, 5]);

  it.each([
    ['value negative', () => new AdaptiveKlController(-1, { target: 1, horizon: 10 }), 'ERR_TALARIA_RANGE', 'value'],
    ['value a string', () => new AdaptiveKlController('0.1' as unknown as number, { target: 1, horizon: 10 }), 'ERR_TALARIA_DTYPE', 'value'],
    ['options null', () => new AdaptiveKlController(0.1, null as unknown as { target: number; horizon: number }), 'ERR_TALARIA_DTYPE', 'options'],
    ['target 0', () => new AdaptiveKlController(0.1, { target: 0, horizon: 10 }), 'ERR_TALARIA_RANGE', 'options.target'],
    ['horizon Infinity', () => new AdaptiveKlController(0.1, { target: 1, horizon: Infinity }), 'ERR_TALARIA_RANGE', 'options.horizon'],
    ['update kl a string', () => new AdaptiveKlController(0.1, { target: 1, horizon: 10 }).update('1' as unknown as number, 4), 'ERR_TALARIA_DTYPE', 'kl'],
    ['update episodes -1', () => new AdaptiveKlController(0.1, { target: 1, horizon: 10 }).update(1, -1), 'ERR_TALARIA_RANGE', 'episodes'],
  ] as const)('AdaptiveKlController: %s', (_what, call, code, name) => expectThrows(call, code, name));

  it.each([
    ['tokens null', null, {}, 'ERR_TALARIA_DTYPE', 'tokens'],
    ['ids not an Int32Array', { ids: [1, 2], cuSeqlens }, {}, 'ERR_TALARIA_DTYPE', 'ids'],
    ['cuSeqlens not an Int32Array', { ids, cuSeqlens: [0, 5] }, {}, 'ERR_TALARIA_DTYPE', 'cuSeqlens'],
    ['cuSeqlens not ending at N', { ids, cuSeqlens: new Int32Array([0, 3, 4]) }, {}, 'ERR_TALARIA_SHAPE', 'cuSeqlens'],
    ['an empty sequence', { ids, cuSeqlens: new Int32Array([0, 3, 3, 5]) }, {}, 'ERR_TALARIA_SHAPE', 'cuSeqlens'],
    ['options null', { ids, cuSeqlens }, null, 'ERR_TALARIA_DTYPE', 'options'],
    ['batchSequences 0', { ids, cuSeqlens }, { batchSequences: 0 }, 'ERR_TALARIA_RANGE', 'batchSequences'],
    ['temperature 0', { ids, cuSeqlens }, { temperature: 0 }, 'ERR_TALARIA_RANGE', 'temperature'],
  ] as const)('sequenceLogprobs: %s', (_what, tokens, options, code, name) => {
    expectThrows(() => sequenceLogprobs(models.policy, tokens as never, options as never), code, name);
  });

  it('sequenceLogprobs: a model without an LM head', () => {
    expectThrows(() => sequenceLogprobs(models.value, { ids, cuSeqlens }), 'ERR_TALARIA_RANGE', 'lm');
  });

  it.each([
    ['whiten missing', { whiten: undefined }, 'ERR_TALARIA_DTYPE', 'whiten'],
    ['rewards of the wrong length', { rewards: new Float32Array(4) }, 'ERR_TALARIA_SHAPE', 'rewards'],
    ['values not f32', { values: new Int32Array(5) }, 'ERR_TALARIA_DTYPE', 'values'],
    ['actionMask of the wrong length', { actionMask: new Uint8Array(2) }, 'ERR_TALARIA_SHAPE', 'actionMask'],
    ['cuSeqlens not ending at N', { cuSeqlens: new Int32Array([0, 4]) }, 'ERR_TALARIA_SHAPE', 'cuSeqlens'],
    ['gamma 2', { gamma: 2 }, 'ERR_TALARIA_RANGE', 'gamma'],
    ['lambda -1', { lambda: -1 }, 'ERR_TALARIA_RANGE', 'lambda'],
  ] as const)('ppoAdvantages: %s', (_what, spoil, code, name) => {
    const input = {
      rewards: new Float32Array([0, 0.3, -1, 0, 2]), values: new Float32Array([0, 0.1, 0.2, 0, 0.4]), cuSeqlens,
      actionMask: new Uint8Array([0, 1, 1, 0, 1]), gamma: 1, lambda: 0.95, whiten: true, ...spoil,
    };
    expectThrows(() => ppoAdvantages(input as never), code, name);
  });

  it('computePolicyGradients: bad sequences, include or rollouts', () => {
    const trainer = new PpoTrainer(tinyOptions(models));
    const r = trainer.collectRollouts();
    expectThrows(() => trainer.computePolicyGradients(r, { sequences: [0, 16] }), 'ERR_TALARIA_RANGE', 'sequences');
    expectThrows(() => trainer.computePolicyGradients(r, { sequences: [] }), 'ERR_TALARIA_RANGE', 'sequences');
    expectThrows(() => trainer.computePolicyGradients(r, { sequences: 3 as unknown as number[] }), 'ERR_TALARIA_RANGE', 'sequences');
    expectThrows(() => trainer.computePolicyGradients(r, { include: 'all' as 'both' }), 'ERR_TALARIA_RANGE', 'include');
    expectThrows(() => trainer.computePolicyGradients({ ...r, cuSeqlens: new Int32Array([0, 3]) }), 'ERR_TALARIA_SHAPE', 'cuSeqlens');
    expectThrows(() => trainer.computePolicyGradients(r, { ptxDocuments: [{ ids: [1, 2] as unknown as Int32Array }] }), 'ERR_TALARIA_DTYPE', 'ids');
    trainer.dispose();
  });
});
