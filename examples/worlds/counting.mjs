// A tiny custom Talaria world, in plain JS and self-contained (it imports nothing from talaria), to
// show the plug-in interface. Run the pipeline with it by passing this file's path as the world.
//
// Task: count a letter. The prompt "cnt {c} {x}>" asks how many times the letter c occurs in x; the
// answer is the count in decimal. Pretraining text states the same facts as "cnt {c} {x}={count}".
// A quarter of the demonstrations are off by one; the labeler wants the exact count and an end.
//
// The Rng passed in is Talaria's seeded generator: use only rng.int(n), rng.intBetween(lo, hi),
// rng.bernoulli(p), rng.pick(items), rng.uniform(), rng.normal(), rng.shuffle(items) for randomness.
import { crc32 } from 'node:zlib';

const LETTERS = 'abc';
const RESPONSE_BUDGET = 4;
const CONTEXT = 32;

function isEvalPrompt(prompt) {
  return crc32(prompt) % 10 === 0;
}

function drawPrompt(rng, split) {
  for (;;) {
    const letter = rng.pick(LETTERS);
    const length = rng.intBetween(1, 9);
    let x = '';
    for (let i = 0; i < length; i++) x += rng.pick(LETTERS);
    const prompt = `cnt ${letter} ${x}>`;
    if (isEvalPrompt(prompt) === (split === 'eval')) {
      const answer = String([...x].filter((ch) => ch === letter).length);
      return { prompt, answer, fact: `cnt ${letter} ${x}=${answer}` };
    }
  }
}

/** @type {import('../../lib/world/types.js').World} */
const world = {
  name: 'counting',
  responseBudget: RESPONSE_BUDGET,
  contextLength: CONTEXT,
  rankingNoise: 0.5,
  reportedFlags: { correct: 'accuracy', noend: 'noEndRate' },
  isEvalPrompt,
  samplePrompt(rng, split) {
    const { prompt, answer } = drawPrompt(rng, split);
    return { prompt, answer };
  },
  sampleDemonstration(rng) {
    const { prompt, answer } = drawPrompt(rng, 'train');
    const offByOne = rng.bernoulli(0.25);
    return { prompt, response: offByOne ? String(Number(answer) + 1) : answer, ended: true };
  },
  samplePretrainingDocument(rng, split) {
    let document = '';
    while (document.length < CONTEXT) document += `${drawPrompt(rng, split).fact}\n`;
    return document.slice(0, CONTEXT);
  },
  judge(answer, response, ended) {
    const correct = response === answer;
    return { score: (correct ? 1 : 0) - (ended ? 0 : 1), flags: { correct, noend: !ended } };
  },
  promptsInDocument(document) {
    return document.split('\n').flatMap((line) => {
      const match = /^cnt ([a-z]) ([a-z]+)=/.exec(line);
      return match ? [`cnt ${match[1]} ${match[2]}>`] : [];
    });
  },
};

export default world;
