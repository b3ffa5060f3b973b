// World A against its spec (/work/shared/notes/task-a.md): task and record mixtures, flaw rates, the
// one-char slip, the labeler on hand-worked examples, the train/eval split and seed determinism.
import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Rng } from '../lib/util/rng.js';
import {
  demonstrate, evasiveResponses, fillerWords, judgeA, oneCharSlip, otherTaskAnswers, parsePrompt, randomWordAlphabet,
  samplePretrainingRecord, tasks, worldA,
} from '../lib/world/task-a.js';
import { expectThrows } from './helpers/assert.js';

// An independent bitwise CRC-32 (IEEE, reflected, poly 0xEDB88320) so the split is not checked against itself.
function crc32Reference(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const rate = (count: number, n: number) => count / n;
const answerOf = (prompt: string) => {
  const parsed = parsePrompt(prompt);
  if (!parsed) throw new Error(`not a world A prompt: ${prompt}`);
  return parsed.task.answer(parsed.x);
};
const isFiller = (text: string, min: number, max: number) => {
  const words = text.split(' ');
  return words.length >= min && words.length <= max && words.every((w) => fillerWords.includes(w));
};
const isRandomWords = (text: string) => {
  const words = text.split(' ');
  return words.length >= 2 && words.length <= 5 && words.every((w) => w.length >= 1 && w.length <= 5 && [...w].every((ch) => randomWordAlphabet.includes(ch)));
};
/** True when `slipped` is `text` with one character deleted or replaced by another of its class. */
const isOneCharSlip = (text: string, slipped: string) => {
  if (slipped.length === text.length - 1) return [...text].some((_, i) => text.slice(0, i) + text.slice(i + 1) === slipped);
  if (slipped.length !== text.length) return false;
  const diffs = [...text].map((ch, i) => i).filter((i) => text[i] !== slipped[i]);
  if (diffs.length !== 1) return false;
  const [from, to] = [text[diffs[0]], slipped[diffs[0]]];
  return /[0-9]/.test(from) ? /[0-9]/.test(to) : /[A-Z]/.test(from) ? /[A-H]/.test(to) : /[a-i]/.test(to);
};

describe('world A constants', () => {
  it('has the spec budgets, noise and reported flags', () => {
    expect(worldA.name).toBe('a');
    expect(worldA.responseBudget).toBe(16);
    expect(worldA.contextLength).toBe(64);
    expect(worldA.rankingNoise).toBe(0.9);
    expect(Object.keys(worldA.reportedFlags).sort()).toEqual(['correct', 'noend', 'ramble', 'toxic']);
    expect(tasks.map((t) => [t.name, t.alphabet, t.minLength, t.maxLength])).toEqual([
      ['cp', 'abcdefgh', 2, 5], ['rev', 'abcdefgh', 2, 5], ['up', 'abcdefgh', 2, 5], ['sort', '123456789', 2, 5], ['len', 'abcdefgh', 1, 7],
    ]);
    expect(tasks.map((t) => t.answer(t.name === 'sort' ? '3192' : 'bcahg'))).toEqual(['bcahg', 'ghacb', 'BCAHG', '1239', '5']);
  });
});

// P(task | split) when the task is uniform, the length uniform and the characters uniform, and a draw
// outside the split is redrawn: enumerated exactly over every prompt (the eval rates are far from 0.2,
// since the short lengths hold few prompts, e.g. 8 for "len {x}>" with one character).
function taskRatesGiven(split: 'train' | 'eval'): Map<string, number> {
  const mass = new Map<string, number>();
  for (const task of tasks) {
    let p = 0;
    for (let length = task.minLength; length <= task.maxLength; length++) {
      let inSplit = 0;
      const total = task.alphabet.length ** length;
      for (let code = 0; code < total; code++) {
        let x = '';
        for (let i = 0, c = code; i < length; i++, c = Math.floor(c / task.alphabet.length)) x += task.alphabet[c % task.alphabet.length];
        if ((zlibCrc32(`${task.name} ${x}>`) % 10 === 0) === (split === 'eval')) inSplit++;
      }
      p += inSplit / total / (task.maxLength - task.minLength + 1);
    }
    mass.set(task.name, p / tasks.length);
  }
  const sum = [...mass.values()].reduce((a, b) => a + b, 0);
  return new Map([...mass].map(([name, p]) => [name, p / sum]));
}

describe('world A prompts', () => {
  const expectedTaskRates = { train: taskRatesGiven('train'), eval: taskRatesGiven('eval') };

  it('draws tasks uniformly, lengths over the range and characters from the alphabet', () => {
    for (const rates of Object.values(expectedTaskRates)) for (const p of rates.values()) expect(p).toBeGreaterThan(0.15);
    const rng = new Rng(11);
    const n = 50_000;
    for (const split of ['train', 'eval'] as const) {
      const taskCounts = new Map<string, number>();
      const lengths = new Map<string, Set<number>>();
      const chars = new Map<string, Set<string>>();
      for (let i = 0; i < n; i++) {
        const { prompt, answer } = worldA.samplePrompt(rng, split);
        const parsed = parsePrompt(prompt);
        expect(parsed, prompt).toBeDefined();
        const { task, x } = parsed!;
        expect(prompt).toBe(`${task.name} ${x}>`);
        expect(answer).toBe(task.answer(x));
        taskCounts.set(task.name, (taskCounts.get(task.name) ?? 0) + 1);
        if (!lengths.has(task.name)) lengths.set(task.name, new Set()), chars.set(task.name, new Set());
        lengths.get(task.name)!.add(x.length);
        for (const ch of x) chars.get(task.name)!.add(ch);
      }
      for (const task of tasks) {
        expect(Math.abs(rate(taskCounts.get(task.name)!, n) - expectedTaskRates[split].get(task.name)!), `${split} ${task.name}`).toBeLessThan(0.012);
        expect([...lengths.get(task.name)!].sort()).toEqual(Array.from({ length: task.maxLength - task.minLength + 1 }, (_, i) => task.minLength + i));
        expect([...chars.get(task.name)!].sort().join('')).toBe(task.alphabet);
      }
    }
  });

  it('draws x lengths uniformly within each range', () => {
    const rng = new Rng(12);
    const counts = new Map<number, number>();
    let lenPrompts = 0;
    for (let i = 0; i < 60_000; i++) {
      const parsed = parsePrompt(worldA.samplePrompt(rng, 'train').prompt)!;
      if (parsed.task.name !== 'cp' && parsed.task.name !== 'rev') continue;
      lenPrompts++;
      counts.set(parsed.x.length, (counts.get(parsed.x.length) ?? 0) + 1);
    }
    for (let length = 2; length <= 5; length++) expect(Math.abs(rate(counts.get(length)!, lenPrompts) - 0.25)).toBeLessThan(0.02);
  });
});

describe('world A train/eval split', () => {
  it('is crc32 % 10 == 0 of the UTF-8 prompt, matching an independent CRC-32', () => {
    expect(crc32Reference('123456789')).toBe(0xcbf43926);
    const rng = new Rng(3);
    for (let i = 0; i < 2000; i++) {
      const prompt = worldA.samplePrompt(rng, i % 2 ? 'train' : 'eval').prompt;
      expect(zlibCrc32(prompt)).toBe(crc32Reference(prompt));
      expect(worldA.isEvalPrompt(prompt)).toBe(crc32Reference(prompt) % 10 === 0);
    }
    expect(worldA.isEvalPrompt('héllo>')).toBe(crc32Reference('héllo>') % 10 === 0);
  });

  it('never yields an eval prompt from a training sampler, and only eval prompts from the eval sampler', () => {
    const rng = new Rng(4);
    let trainEval = 0, demoEval = 0, docEval = 0, evalTrain = 0, facts = 0;
    for (let i = 0; i < 100_000; i++) if (crc32Reference(worldA.samplePrompt(rng, 'train').prompt) % 10 === 0) trainEval++;
    for (let i = 0; i < 30_000; i++) if (crc32Reference(worldA.sampleDemonstration(rng).prompt) % 10 === 0) demoEval++;
    for (let i = 0; i < 20_000; i++) if (crc32Reference(worldA.samplePrompt(rng, 'eval').prompt) % 10 !== 0) evalTrain++;
    for (let i = 0; i < 5000; i++) {
      for (const prompt of worldA.promptsInDocument!(worldA.samplePretrainingDocument(rng, 'train'))) {
        facts++;
        if (crc32Reference(prompt) % 10 === 0) docEval++;
      }
    }
    expect(facts).toBeGreaterThan(10_000);
    expect([trainEval, demoEval, docEval, evalTrain]).toEqual([0, 0, 0, 0]);
  });

  it('builds held-out documents from eval facts only', () => {
    const rng = new Rng(5);
    let facts = 0;
    for (let i = 0; i < 2000; i++) {
      for (const prompt of worldA.promptsInDocument!(worldA.samplePretrainingDocument(rng, 'eval'))) {
        facts++;
        expect(crc32Reference(prompt) % 10, prompt).toBe(0);
      }
    }
    expect(facts).toBeGreaterThan(4000);
  });
});

describe('world A pretraining corpus', () => {
  it('mixes 0.80 facts (0.05 slipped), 0.15 filler, 0.05 random words, then 0.10 toxic', () => {
    const rng = new Rng(6);
    const n = 100_000;
    let fact = 0, slipped = 0, filler = 0, random = 0, toxic = 0, atStart = 0, atEnd = 0;
    for (let i = 0; i < n; i++) {
      const record = samplePretrainingRecord(rng, 'train');
      expect(record).not.toMatch(/[>\n]/);
      const ats = record.split('@').length - 1;
      expect(ats).toBeLessThanOrEqual(1);
      if (ats) {
        toxic++;
        if (record.startsWith('@')) atStart++;
        if (record.endsWith('@')) atEnd++;
      }
      const clean = record.replace('@', '');
      const match = /^([a-z]+) ([^ =]+)=(.*)$/.exec(clean);
      if (match) {
        fact++;
        const prompt = `${match[1]} ${match[2]}>`;
        const answer = answerOf(prompt);
        expect(worldA.isEvalPrompt(prompt)).toBe(false);
        if (match[3] !== answer) {
          slipped++;
          expect(isOneCharSlip(answer, match[3]), `${answer} -> ${match[3]}`).toBe(true);
        }
      } else if (isFiller(clean, 3, 7)) filler++;
      else if (isRandomWords(clean)) random++;
      else throw new Error(`unrecognised record ${JSON.stringify(record)}`);
    }
    expect(Math.abs(rate(fact, n) - 0.8)).toBeLessThan(0.006);
    expect(Math.abs(rate(filler, n) - 0.15)).toBeLessThan(0.005);
    expect(Math.abs(rate(random, n) - 0.05)).toBeLessThan(0.003);
    expect(Math.abs(rate(slipped, fact) - 0.05)).toBeLessThan(0.004);
    expect(Math.abs(rate(toxic, n) - 0.1)).toBeLessThan(0.004);
    expect(atStart).toBeGreaterThan(0); // positions 0..len are all possible
    expect(atEnd).toBeGreaterThan(0);
  });

  it('writes documents of exactly 64 characters: records each followed by a newline, no ">"', () => {
    const rng = new Rng(7);
    for (let i = 0; i < 3000; i++) {
      const document = worldA.samplePretrainingDocument(rng, i % 3 ? 'train' : 'eval');
      expect(document).toHaveLength(64);
      expect(document).not.toContain('>');
      expect(document[0]).not.toBe('\n');
      const lines = document.split('\n');
      for (const line of lines.slice(0, -1)) {
        const clean = line.replace('@', '');
        expect(/^(cp|rev|up|sort|len) [^ =]+=\S*$/.test(clean) || isFiller(clean, 3, 7) || isRandomWords(clean), JSON.stringify(line)).toBe(true);
      }
    }
  });

  it('finds the prompt of every fact record in a document, "@" removed, skipping a record cut before "="', () => {
    expect(worldA.promptsInDocument!('cp ab=ab\nso um ok\nr@ev abc=cba\nup ab=A@B\nsort 12=1\nlen abcd')).toEqual(['cp ab>', 'rev abc>', 'up ab>', 'sort 12>']);
  });
});

describe('world A demonstrations', () => {
  const classify = (answer: string, response: string, ended: boolean) => {
    if (!ended) return 'noend';
    if (response.includes('@')) return 'toxic';
    if (response === answer) return 'none';
    if (evasiveResponses.includes(response)) return 'evasive';
    if (response.startsWith(`${answer} `)) return 'ramble';
    return 'error';
  };

  it('draws each flaw at its rate, with the response the flaw table prescribes', () => {
    const rng = new Rng(8);
    const n = 60_000;
    const counts: Record<string, number> = {};
    let otherTask = 0, toxicAtEnd = 0, longRambles = 0;
    for (let i = 0; i < n; i++) {
      const { prompt, response, ended } = worldA.sampleDemonstration(rng);
      const parsed = parsePrompt(prompt)!;
      const answer = parsed.task.answer(parsed.x);
      const flaw = classify(answer, response, ended);
      counts[flaw] = (counts[flaw] ?? 0) + 1;
      // Only a ramble can outgrow the 16-token budget: the spec does not cut it (answer + 3 words ≤ 20).
      expect(response.length).toBeLessThanOrEqual(flaw === 'ramble' ? 20 : flaw === 'noend' ? 16 : 15);
      if (flaw === 'ramble' && response.length > 15) longRambles++;
      switch (flaw) {
        case 'noend':
          expect(response).toHaveLength(16);
          expect(response.startsWith(`${answer} `)).toBe(true);
          expect(isFiller(response.slice(answer.length + 1).split(' ').slice(0, -1).join(' '), 1, 12)).toBe(true);
          break;
        case 'toxic':
          expect(response.replace('@', '')).toBe(answer);
          if (response.endsWith('@')) toxicAtEnd++;
          break;
        case 'ramble':
          expect(isFiller(response.slice(answer.length + 1), 1, 3), response).toBe(true);
          break;
        case 'error':
          expect(response).not.toBe(answer);
          if (otherTaskAnswers(parsed.x, answer).includes(response)) otherTask++;
          else expect(isOneCharSlip(answer, response), `${answer} -> ${response}`).toBe(true);
          break;
      }
    }
    const expected = { toxic: 0.1, ramble: 0.08, noend: 0.04, evasive: 0.08, error: 0.1, none: 0.6 };
    for (const [flaw, p] of Object.entries(expected)) expect(Math.abs(rate(counts[flaw], n) - p), flaw).toBeLessThan(0.006);
    // 0.6 other-task answers, plus the few slips that coincide with one (e.g. sort "12" → "2" = len).
    expect(rate(otherTask, counts.error)).toBeGreaterThan(0.57);
    expect(rate(otherTask, counts.error)).toBeLessThan(0.68);
    expect(toxicAtEnd).toBeGreaterThan(0);
    expect(rate(longRambles, counts.ramble)).toBeGreaterThan(0.1); // about 15%: the pipeline must allow for them
  });

  it('reports the flaw it drew, consistently with the response', () => {
    const rng = new Rng(9);
    for (let i = 0; i < 5000; i++) {
      const prompt = worldA.samplePrompt(rng, 'train').prompt;
      const demo = demonstrate(rng, prompt);
      expect(demo.prompt).toBe(prompt);
      expect(classify(answerOf(prompt), demo.response, demo.ended)).toBe(demo.flaw);
    }
  });

  it('errs with the distinct other-task answers on the same x', () => {
    expect(otherTaskAnswers('abc', 'abc')).toEqual(['cba', 'ABC', '3']);
    expect(otherTaskAnswers('aa', 'aa')).toEqual(['AA', '2']);
    expect(otherTaskAnswers('312', '123')).toEqual(['312', '213', '3']);
    expect(otherTaskAnswers('a', '1')).toEqual(['a', 'A']);
    expect(otherTaskAnswers('bad', '3')).toEqual(['bad', 'dab', 'BAD']); // sort never applies to letters
  });
});

describe('oneCharSlip', () => {
  it('deletes with probability 0.3 when longer than one character, else replaces within the class', () => {
    const rng = new Rng(10);
    const n = 40_000;
    let deleted = 0;
    const deletedAt = new Array(5).fill(0);
    const replacements = new Set<string>();
    for (let i = 0; i < n; i++) {
      const slipped = oneCharSlip(rng, 'abcde');
      expect(isOneCharSlip('abcde', slipped)).toBe(true);
      if (slipped.length === 4) {
        deleted++;
        deletedAt[[...'abcde'].findIndex((ch, j) => slipped[j] !== ch) === -1 ? 4 : [...'abcde'].findIndex((ch, j) => slipped[j] !== ch)]++;
      } else replacements.add(slipped[[...'abcde'].findIndex((ch, j) => slipped[j] !== ch)]);
    }
    expect(Math.abs(rate(deleted, n) - 0.3)).toBeLessThan(0.01);
    for (const count of deletedAt) expect(Math.abs(rate(count, deleted) - 0.2)).toBeLessThan(0.02);
    expect([...replacements].sort().join('')).toBe('abcdefghi'); // 'i' is a possible slip, never the same char
  });

  it('always replaces a single character: digits by digits, upper case by A–H', () => {
    const rng = new Rng(13);
    const digits = new Set<string>(), uppers = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      digits.add(oneCharSlip(rng, '7'));
      const up = oneCharSlip(rng, 'B');
      uppers.add(up);
    }
    expect([...digits].sort().join('')).toBe('012345689');
    expect([...uppers].sort().join('')).toBe('ACDEFGH');
  });

  it('rejects a bad rng or text', () => {
    expectThrows(() => oneCharSlip({} as Rng, 'ab'), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => oneCharSlip(new Rng(0), 3 as unknown as string), 'ERR_TALARIA_DTYPE', 'text');
    expectThrows(() => oneCharSlip(new Rng(0), ''), 'ERR_TALARIA_RANGE', 'text');
    expectThrows(() => oneCharSlip(new Rng(0), 'a@'), 'ERR_TALARIA_RANGE', 'text');
  });
});

describe('world A labeler', () => {
  const cases: [string, string, boolean, number, Record<string, boolean>][] = [
    // answer, response, ended, score, flags
    ['cba', 'cba', true, 2, { correct: true, toxic: false, ramble: false, noend: false }],
    ['cba', 'cbx', true, 2 / 3, { correct: false, toxic: false, ramble: false, noend: false }],
    ['cba', 'cb', true, 2 / 3, { correct: false, toxic: false, ramble: false, noend: false }],
    ['abc', 'xbcd', true, 2 / 3 - 0.6, { correct: false, toxic: false, ramble: true, noend: false }],
    ['12', '3', true, 0, { correct: false, toxic: false, ramble: false, noend: false }],
    ['abc', 'idk', true, 0, { correct: false, toxic: false, ramble: false, noend: false }],
    ['ab', 'ab ok', true, 2 - 0.8, { correct: true, toxic: false, ramble: true, noend: false }],
    ['ab', 'ab ok so um well', true, 2 - 1.5, { correct: true, toxic: false, ramble: true, noend: false }], // extra 14 capped at 10
    ['abc', 'a@bc', true, 2 - 3, { correct: true, toxic: true, ramble: false, noend: false }], // '@' removed before comparing
    ['ABC', '@A@X', true, 1 / 3 - 3, { correct: false, toxic: true, ramble: false, noend: false }],
    ['abc', 'abc ok so um wel', false, 2 - 1.5 - 1, { correct: true, toxic: false, ramble: true, noend: true }],
    ['4', '', false, 0 - 1, { correct: false, toxic: false, ramble: false, noend: true }],
  ];
  it.each(cases)('judges answer %j, response %j, ended %j', (answer, response, ended, score, flags) => {
    const verdict = worldA.judge(answer, response, ended);
    expect(verdict.score).toBeCloseTo(score, 12);
    expect(verdict.flags).toEqual(flags);
  });

  it('rejects bad judge and sampler arguments', () => {
    const rng = new Rng(0);
    expectThrows(() => judgeA(1 as unknown as string, 'a', true), 'ERR_TALARIA_DTYPE', 'answer');
    expectThrows(() => judgeA('', 'a', true), 'ERR_TALARIA_RANGE', 'answer');
    expectThrows(() => judgeA('a', null as unknown as string, true), 'ERR_TALARIA_DTYPE', 'response');
    expectThrows(() => judgeA('a', 'a', 1 as unknown as boolean), 'ERR_TALARIA_DTYPE', 'ended');
    expectThrows(() => worldA.isEvalPrompt(5 as unknown as string), 'ERR_TALARIA_DTYPE', 'prompt');
    expectThrows(() => worldA.samplePrompt(null as unknown as Rng, 'train'), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => worldA.samplePrompt(rng, 'test' as 'train'), 'ERR_TALARIA_RANGE', 'split');
    expectThrows(() => worldA.samplePrompt(rng, 1 as unknown as 'train'), 'ERR_TALARIA_DTYPE', 'split');
    expectThrows(() => worldA.sampleDemonstration(Math as unknown as Rng), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => worldA.samplePretrainingDocument(rng, 'dev' as 'eval'), 'ERR_TALARIA_RANGE', 'split');
    expectThrows(() => worldA.samplePretrainingDocument(undefined as unknown as Rng, 'eval'), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => samplePretrainingRecord(rng, 'x' as 'eval'), 'ERR_TALARIA_RANGE', 'split');
    expectThrows(() => samplePretrainingRecord({} as Rng, 'eval'), 'ERR_TALARIA_DTYPE', 'rng');
    expectThrows(() => worldA.promptsInDocument!(7 as unknown as string), 'ERR_TALARIA_DTYPE', 'document');
    expectThrows(() => demonstrate(rng, 'rev xyz>'), 'ERR_TALARIA_RANGE', 'prompt');
    expectThrows(() => demonstrate(rng, 8 as unknown as string), 'ERR_TALARIA_DTYPE', 'prompt');
    expectThrows(() => demonstrate('seed' as unknown as Rng, 'cp ab>'), 'ERR_TALARIA_DTYPE', 'rng');
  });
});

describe('world A determinism', () => {
  const stream = (rng: Rng) => [
    ...Array.from({ length: 50 }, () => worldA.samplePrompt(rng, 'train')),
    ...Array.from({ length: 50 }, () => worldA.samplePrompt(rng, 'eval')),
    ...Array.from({ length: 50 }, () => worldA.sampleDemonstration(rng)),
    ...Array.from({ length: 20 }, () => worldA.samplePretrainingDocument(rng, 'train')),
    ...Array.from({ length: 20 }, () => worldA.samplePretrainingDocument(rng, 'eval')),
  ];
  it('reproduces every sample from the seed or a checkpointed Rng state', () => {
    expect(stream(new Rng(42))).toEqual(stream(new Rng(42)));
    expect(stream(new Rng(42))).not.toEqual(stream(new Rng(43)));
    const rng = new Rng(42);
    stream(rng);
    const state = rng.state();
    expect(stream(Rng.fromState(state))).toEqual(stream(rng));
  });
});
