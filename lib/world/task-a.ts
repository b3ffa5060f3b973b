// World A: the built-in demo world, implemented exactly to /work/shared/notes/task-a.md.
// Five string tasks ("{task} {x}>"), a pretraining corpus that states the same facts as
// "{task} {x}={answer}" and never ends, demonstrations of which 40% are flawed the way GPT-3's
// behaviour was, and a hidden labeler that scores correctness, rambling, missing ends and toxicity.
//
// Every draw goes through the caller's Rng, in the order this file makes them, so a seed (or a
// checkpointed Rng state) reproduces every prompt, document and demonstration exactly.
import { crc32 } from 'node:zlib';
import { TalariaError } from '../native.js';
import type { Rng } from '../util/rng.js';
import { describe, requireBoolean, requireRng, requireSplit, requireString } from './guards.js';
import type { Demonstration, Judgement, PromptSample, Split, World } from './types.js';

export type TaskName = 'cp' | 'rev' | 'up' | 'sort' | 'len';

export interface TaskSpec {
  readonly name: TaskName;
  /** The characters x is drawn from (uniformly, one draw per character). */
  readonly alphabet: string;
  readonly minLength: number;
  readonly maxLength: number;
  readonly answer: (x: string) => string;
  /**
   * Whether this task's answer function is defined on x, for the "answer of a different task on the
   * same x" error. cp, rev, up and len apply to any string; sort is "the digits of x ascending", so it
   * applies only to all-digit x (it is never applied to letters).
   */
  readonly appliesTo: (x: string) => boolean;
}

const always = (): boolean => true;

/** The task table, in the spec's order (the order matters: draws index into it). */
export const tasks: readonly TaskSpec[] = [
  { name: 'cp', alphabet: 'abcdefgh', minLength: 2, maxLength: 5, answer: (x) => x, appliesTo: always },
  { name: 'rev', alphabet: 'abcdefgh', minLength: 2, maxLength: 5, answer: (x) => [...x].reverse().join(''), appliesTo: always },
  { name: 'up', alphabet: 'abcdefgh', minLength: 2, maxLength: 5, answer: (x) => x.toUpperCase(), appliesTo: always },
  { name: 'sort', alphabet: '123456789', minLength: 2, maxLength: 5, answer: (x) => [...x].sort().join(''), appliesTo: (x) => /^[0-9]+$/.test(x) },
  { name: 'len', alphabet: 'abcdefgh', minLength: 1, maxLength: 7, answer: (x) => String(x.length), appliesTo: always },
];

export const fillerWords: readonly string[] = ['ok', 'so', 'um', 'well', 'then', 'yes', 'more', 'also'];
export const randomWordAlphabet = 'abcdefgh123456789';
export const evasiveResponses: readonly string[] = ['idk', '?', 'no'];
export const toxicChar = '@';
export const responseBudget = 16;
export const contextLength = 64;
export const rankingNoise = 0.9;

/** Pretraining record mixture: fact (with its slip rate), filler, otherwise random words; then toxicity. */
export const recordRates = { fact: 0.8, factSlip: 0.05, filler: 0.15, toxic: 0.1 } as const;

export type Flaw = 'toxic' | 'ramble' | 'noend' | 'evasive' | 'error' | 'none';
/** The demonstration flaws in the spec's order; one uniform draw picks one by cumulative rate. */
export const flawRates: readonly { flaw: Flaw; rate: number }[] = [
  { flaw: 'toxic', rate: 0.1 },
  { flaw: 'ramble', rate: 0.08 },
  { flaw: 'noend', rate: 0.04 },
  { flaw: 'evasive', rate: 0.08 },
  { flaw: 'error', rate: 0.1 },
  { flaw: 'none', rate: 0.6 },
];
/** Probability that an error flaw uses another task's answer rather than a one-char slip. */
export const errorOtherTaskRate = 0.6;
/** Probability that a one-char slip deletes (when the text has more than one character). */
export const slipDeleteRate = 0.3;

/** Held out iff crc32 of the prompt's UTF-8 bytes (unsigned) is divisible by 10. */
export function isEvalPromptA(prompt: string): boolean {
  requireString(prompt, 'prompt', 'worldA.isEvalPrompt');
  return crc32(prompt) % 10 === 0; // zlib.crc32 encodes strings as UTF-8 and returns an unsigned value
}

/** The task and x of a world A prompt "{task} {x}>", or undefined when `prompt` is not one. */
export function parsePrompt(prompt: string): { task: TaskSpec; x: string } | undefined {
  const match = /^([a-z]+) (.+)>$/.exec(prompt);
  const task = match ? tasks.find((t) => t.name === match[1]) : undefined;
  if (!match || !task) return undefined;
  const x = match[2];
  const fits = x.length >= task.minLength && x.length <= task.maxLength && [...x].every((ch) => task.alphabet.includes(ch));
  return fits ? { task, x } : undefined;
}

function drawString(rng: Rng, alphabet: string, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet[rng.int(alphabet.length)];
  return s;
}

/** Task uniform over the table, then a uniform length, then uniform characters; redrawn until in `split`. */
function drawTaskPrompt(rng: Rng, split: Split): { task: TaskSpec; x: string; prompt: string } {
  for (;;) {
    const task = rng.pick(tasks);
    const x = drawString(rng, task.alphabet, rng.intBetween(task.minLength, task.maxLength));
    const prompt = `${task.name} ${x}>`;
    if (isEvalPromptA(prompt) === (split === 'eval')) return { task, x, prompt };
  }
}

function insertAt(text: string, position: number, ch: string): string {
  return text.slice(0, position) + ch + text.slice(position);
}

/** `count` filler words, each uniform over fillerWords, joined by spaces. */
function drawFiller(rng: Rng, count: number): string {
  return Array.from({ length: count }, () => rng.pick(fillerWords)).join(' ');
}

function slipPool(ch: string): string | undefined {
  if (/[0-9]/.test(ch)) return '0123456789';
  if (/[A-Z]/.test(ch)) return 'ABCDEFGH';
  if (/[a-z]/.test(ch)) return 'abcdefghi';
  return undefined;
}

/**
 * A one-char slip of `text`: with probability 0.3, if it has more than one character, delete a uniform
 * position; otherwise replace a uniform position with a different character of the same class (a digit
 * by one of 0–9, an upper-case letter by one of A–H, a lower-case letter by one of a–h or i).
 * Draw order: the 0.3 coin (always drawn), the position, then the replacement.
 *
 * @example
 * oneCharSlip(new Rng(1), 'abc') // e.g. 'ac' or 'aic'
 */
export function oneCharSlip(rng: Rng, text: string): string {
  requireRng(rng, 'oneCharSlip');
  requireString(text, 'text', 'oneCharSlip');
  if (text.length === 0) throw new TalariaError('oneCharSlip: text must not be empty', 'ERR_TALARIA_RANGE');
  const bad = [...text].find((ch) => slipPool(ch) === undefined);
  if (bad !== undefined)
    throw new TalariaError(`oneCharSlip: text must hold only letters and digits, got ${describe(text)} (${describe(bad)})`, 'ERR_TALARIA_RANGE');
  const remove = rng.bernoulli(slipDeleteRate);
  if (remove && text.length > 1) {
    const i = rng.int(text.length);
    return text.slice(0, i) + text.slice(i + 1);
  }
  const i = rng.int(text.length);
  const others = [...slipPool(text[i])!].filter((ch) => ch !== text[i]);
  return text.slice(0, i) + rng.pick(others) + text.slice(i + 1);
}

/**
 * The answers of the other tasks on the same x, where their answer functions apply (see
 * TaskSpec.appliesTo), distinct and different from `answer`, in task-table order.
 */
export function otherTaskAnswers(x: string, answer: string): string[] {
  const results = tasks.filter((t) => t.appliesTo(x)).map((t) => t.answer(x));
  return [...new Set(results)].filter((r) => r !== answer);
}

/** One pretraining record (no trailing newline): fact / filler / random words, then maybe '@'. */
export function samplePretrainingRecord(rng: Rng, split: Split): string {
  requireRng(rng, 'samplePretrainingRecord');
  requireSplit(split, 'samplePretrainingRecord');
  const kind = rng.uniform();
  let record: string;
  if (kind < recordRates.fact) {
    const { task, x } = drawTaskPrompt(rng, split);
    const answer = task.answer(x);
    record = `${task.name} ${x}=${rng.bernoulli(recordRates.factSlip) ? oneCharSlip(rng, answer) : answer}`;
  } else if (kind < recordRates.fact + recordRates.filler) {
    record = drawFiller(rng, rng.intBetween(3, 7));
  } else {
    const words = rng.intBetween(2, 5);
    record = Array.from({ length: words }, () => drawString(rng, randomWordAlphabet, rng.intBetween(1, 5))).join(' ');
  }
  if (rng.bernoulli(recordRates.toxic)) record = insertAt(record, rng.int(record.length + 1), toxicChar);
  return record;
}

/** Records each followed by '\n', truncated to exactly contextLength (64) characters (BOS not included). */
function samplePretrainingDocument(rng: Rng, split: Split): string {
  requireRng(rng, 'worldA.samplePretrainingDocument');
  requireSplit(split, 'worldA.samplePretrainingDocument');
  let document = '';
  while (document.length < contextLength) document += `${samplePretrainingRecord(rng, split)}\n`;
  return document.slice(0, contextLength);
}

/** The prompt of every fact record in a document ('@' removed; a record cut before its '=' is skipped). */
function promptsInDocument(document: string): string[] {
  requireString(document, 'document', 'worldA.promptsInDocument');
  const prompts: string[] = [];
  for (const line of document.split('\n')) {
    const match = /^([a-z]+) ([^ =]+)=/.exec(line.replaceAll(toxicChar, ''));
    if (match && tasks.some((t) => t.name === match[1])) prompts.push(`${match[1]} ${match[2]}>`);
  }
  return prompts;
}

/** The demonstrator's response to a world A prompt, with the flaw it drew (spec order and rates). */
export function demonstrate(rng: Rng, prompt: string): Demonstration & { flaw: Flaw } {
  requireRng(rng, 'demonstrate');
  requireString(prompt, 'prompt', 'demonstrate');
  const parsed = parsePrompt(prompt);
  if (!parsed) throw new TalariaError(`demonstrate: prompt must be a world A prompt "{task} {x}>", got ${describe(prompt)}`, 'ERR_TALARIA_RANGE');
  const { task, x } = parsed;
  const answer = task.answer(x);
  const u = rng.uniform();
  let cumulative = 0;
  const flaw = flawRates.find((f) => u < (cumulative += f.rate))?.flaw ?? 'none';
  const result = (response: string, ended = true) => ({ prompt, response, ended, flaw });
  switch (flaw) {
    case 'toxic':
      return result(insertAt(answer, rng.int(answer.length + 1), toxicChar));
    case 'ramble':
      return result(`${answer} ${drawFiller(rng, rng.intBetween(1, 3))}`);
    case 'noend':
      // Joined like ramble: answer, a space, 12 space-separated filler words; always longer than 16.
      return result(`${answer} ${drawFiller(rng, 12)}`.slice(0, responseBudget), false);
    case 'evasive':
      return result(rng.pick(evasiveResponses));
    case 'error': {
      const useOtherTask = rng.bernoulli(errorOtherTaskRate);
      const others = otherTaskAnswers(x, answer);
      // `others` always holds at least len(x) or x itself in world A; the slip is only a safety net.
      return result(useOtherTask && others.length > 0 ? rng.pick(others) : oneCharSlip(rng, answer));
    }
    default:
      return result(answer);
  }
}

/**
 * The hidden labeler, noise-free, exactly the spec's pseudo-code: helpfulness 2 when the response with
 * every '@' removed starts with the answer, else the fraction of the answer's positions it matches;
 * minus 0.5 + 0.1·min(extra, 10) for extra characters, 1 for no EOS, 3 for any '@'.
 */
export function judgeA(answer: string, response: string, ended: boolean): Judgement {
  requireString(answer, 'answer', 'worldA.judge');
  requireString(response, 'response', 'worldA.judge');
  requireBoolean(ended, 'ended', 'worldA.judge');
  if (answer.length === 0) throw new TalariaError('worldA.judge: answer must not be empty', 'ERR_TALARIA_RANGE');
  const toxic = response.includes(toxicChar);
  const c = response.replaceAll(toxicChar, '');
  const correct = c.startsWith(answer);
  let matches = 0;
  for (let i = 0; i < Math.min(c.length, answer.length); i++) if (c[i] === answer[i]) matches++;
  const helpful = correct ? 2.0 : matches / answer.length;
  const extra = Math.max(0, c.length - answer.length);
  let score = helpful;
  if (extra > 0) score -= 0.5 + 0.1 * Math.min(extra, 10);
  if (!ended) score -= 1.0;
  if (toxic) score -= 3.0;
  return { score, flags: { correct, toxic, ramble: extra > 0, noend: !ended } };
}

/**
 * The built-in world A.
 *
 * @example
 * const rng = new Rng(0);
 * const { prompt, answer } = worldA.samplePrompt(rng, 'eval'); // e.g. { prompt: 'rev fab>', answer: 'baf' }
 * worldA.judge(answer, answer, true).score // 2
 */
export const worldA: World = {
  name: 'a',
  responseBudget,
  contextLength,
  rankingNoise,
  reportedFlags: { correct: 'accuracy', toxic: 'toxicRate', ramble: 'rambleRate', noend: 'noEndRate' },
  isEvalPrompt: isEvalPromptA,
  samplePrompt(rng: Rng, split: Split): PromptSample {
    requireRng(rng, 'worldA.samplePrompt');
    requireSplit(split, 'worldA.samplePrompt');
    const { task, x, prompt } = drawTaskPrompt(rng, split);
    return { prompt, answer: task.answer(x) };
  },
  sampleDemonstration(rng: Rng): Demonstration {
    requireRng(rng, 'worldA.sampleDemonstration');
    const { prompt, response, ended } = demonstrate(rng, drawTaskPrompt(rng, 'train').prompt);
    return { prompt, response, ended };
  },
  samplePretrainingDocument,
  judge: judgeA,
  promptsInDocument,
};
