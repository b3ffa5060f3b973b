// The record formats of the three InstructGPT stages and of pretraining text (PPO-ptx), as zod schemas.
// Extra fields are allowed (datasets carry ids, sources, scores) and passed through untouched.
//
// Empty strings: a prompt may be empty everywhere (unconditional generation: BOS alone is the context),
// but every text the model is trained to produce or rank must be non-empty: an empty SFT completion, RM
// completion or pretraining text is almost always a broken export, and would train nothing but EOS.
import { z } from 'zod';

const prompt = z.string();
const nonEmptyText = z.string().min(1, 'must be a non-empty string');

/** SFT: `{prompt, completion}`; the loss covers the completion (and EOS) only. */
export const sftRecordSchema = z.looseObject({ prompt, completion: nonEmptyText });
export type SftRecord = z.output<typeof sftRecordSchema>;

/** Ranked RM form: K ≥ 2 distinct completions, `ranking` a permutation of 0..K-1, best first. */
export const rankedRewardRecordSchema = z
  .looseObject({ prompt, completions: z.array(nonEmptyText).min(2, 'must hold at least 2 completions'), ranking: z.array(z.number().int()) })
  .superRefine((record, ctx) => {
    const seen = new Map<string, number>();
    record.completions.forEach((text, i) => {
      const first = seen.get(text);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['completions', i], message: `duplicates completions[${first}] (completions must be distinct)` });
      else seen.set(text, i);
    });
    const k = record.completions.length;
    const isPermutation = record.ranking.length === k && new Set(record.ranking).size === k && record.ranking.every((r) => r >= 0 && r < k);
    if (!isPermutation)
      ctx.addIssue({ code: 'custom', path: ['ranking'], message: `must be a permutation of 0..${k - 1} (best first), got [${record.ranking.join(', ')}]` });
  });

/** Pairwise RM form: `{prompt, chosen, rejected}` (distinct). */
export const pairwiseRewardRecordSchema = z
  .looseObject({ prompt, chosen: nonEmptyText, rejected: nonEmptyText })
  .refine((record) => record.chosen !== record.rejected, { path: ['rejected'], message: 'must differ from chosen' });

/** A reward-model record in its one normalised form: completions[ranking[0]] is the best. */
export interface RewardRecord {
  prompt: string;
  completions: string[];
  ranking: number[];
}

/**
 * Either RM form, normalised to `{prompt, completions, ranking}` (pairwise becomes completions
 * [chosen, rejected], ranking [0, 1]). A line with `chosen` or `rejected` is read as pairwise, any other
 * as ranked, so errors name the fields of the form the line meant. Extra fields are dropped.
 */
export const rewardRecordSchema: z.ZodType<RewardRecord> = z.unknown().transform((value, ctx): RewardRecord => {
  const pairwise = value !== null && typeof value === 'object' && ('chosen' in value || 'rejected' in value);
  const fail = (error: z.ZodError): never => {
    for (const issue of error.issues) ctx.issues.push({ ...issue, input: value } as (typeof ctx.issues)[number]);
    return z.NEVER;
  };
  if (pairwise) {
    const result = pairwiseRewardRecordSchema.safeParse(value);
    if (!result.success) return fail(result.error);
    return { prompt: result.data.prompt, completions: [result.data.chosen, result.data.rejected], ranking: [0, 1] };
  }
  const result = rankedRewardRecordSchema.safeParse(value);
  if (!result.success) return fail(result.error);
  return { prompt: result.data.prompt, completions: result.data.completions, ranking: result.data.ranking };
});

/** PPO: a prompt to roll out from (may be empty). */
export const ppoRecordSchema = z.looseObject({ prompt });
export type PpoRecord = z.output<typeof ppoRecordSchema>;

/** Pretraining text (PPO-ptx mix, language-model warm-up). */
export const pretrainingRecordSchema = z.looseObject({ text: nonEmptyText });
export type PretrainingRecord = z.output<typeof pretrainingRecordSchema>;
