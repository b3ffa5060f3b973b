// The "world" plug-in interface: everything the InstructGPT-in-miniature pipeline (pretrain → SFT → RM →
// PPO → eval) needs to know about a task. The pipeline never looks inside a world: it draws prompts,
// demonstrations and pretraining documents from it, and asks its hidden labeler to judge responses.
// Built-in: world A (./task-a.ts). Custom worlds are plain JS modules loaded by ./load.ts.
import type { Rng } from '../util/rng.js';

export type Split = 'train' | 'eval';

/** A prompt and its reference answer. `prompt` is the full prompt text, e.g. `"rev abc>"`. */
export interface PromptSample {
  prompt: string;
  answer: string;
}

/** A demonstration for SFT: the response text without EOS; `ended` says whether EOS follows it. */
export interface Demonstration {
  prompt: string;
  response: string;
  ended: boolean;
}

/** The labeler's noise-free verdict on one response. World A's flags: correct, toxic, ramble, noend. */
export interface Judgement {
  score: number;
  flags: Record<string, boolean>;
}

/** A sampled completion as the labeler sees it: response text (no EOS) and whether EOS was emitted. */
export interface Completion {
  response: string;
  ended: boolean;
}

export interface World {
  readonly name: string;
  /** Max response tokens including EOS (world A: 16). */
  readonly responseBudget: number;
  /** Max sequence tokens including BOS (world A: 64; pretraining docs are 65 = 64 inputs + 1 target). */
  readonly contextLength: number;
  /** Std of the Gaussian noise the labeler adds per completion when ranking (world A: 0.9). */
  readonly rankingNoise: number;
  /** Flags reported as rates in the evaluation table, with display names, e.g. {correct: 'accuracy'}. */
  readonly reportedFlags: Record<string, string>;
  /** True iff `prompt` belongs to the held-out evaluation split. */
  isEvalPrompt(prompt: string): boolean;
  /** A prompt of `split`: training samplers never yield eval prompts, eval samplers only eval prompts. */
  samplePrompt(rng: Rng, split: Split): PromptSample;
  /** A demonstration for a train prompt (flawed as the world's demonstrators are). */
  sampleDemonstration(rng: Rng): Demonstration;
  /** One pretraining document: the text after BOS (world A: exactly 64 characters). */
  samplePretrainingDocument(rng: Rng, split: Split): string;
  /** The hidden labeler, noise-free. `ended` says whether EOS was emitted after `response`. */
  judge(answer: string, response: string, ended: boolean): Judgement;
  /**
   * Optional, for the leakage check: the prompts whose facts a pretraining document states (world A
   * turns each fact record "{task} {x}=..." back into "{task} {x}>").
   */
  promptsInDocument?(document: string): string[];
}
