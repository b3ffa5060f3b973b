// Public API of the talaria package.
export { info, TalariaError, talariaError } from './native.js';
export type { CudaDevice, DType, ErrorCode, TalariaInfo } from './native.js';
export { Tensor } from './tensor.js';
export type { SupportedTypedArray } from './tensor.js';
export { gae, gaeAsync, whiten, whitenAsync } from './ops/rl.js';
export type { F32, GaeInput, GaeOutput, I32, U8, WhitenOptions } from './ops/rl.js';
export { fmaPeak, streamTriad, streamTriadAsync } from './ops/roofline.js';
export { pack, packedLayout, unpack } from './ops/packing.js';
export type { PackedLayout } from './ops/packing.js';
export { ppoLoss, ppoLossAsync, valueLoss, valueLossAsync } from './ops/rl-loss.js';
export type {
  KlEstimator, LossAggregation, PpoLossInput, PpoLossOutput, PpoLossStats, ValueLossInput, ValueLossOutput,
} from './ops/rl-loss.js';
export {
  groupAdvantages, groupAdvantagesAsync, RewardNormalizer, shapeRewards, shapeRewardsAsync,
} from './ops/rewards.js';
export type {
  GroupAdvantagesInput, GroupAdvantagesOutput, GroupEstimator, RewardNormalizerOptions, RewardNormalizerState,
  ShapeRewardsInput, ShapeRewardsOutput, ShapeRewardsStats,
} from './ops/rewards.js';
export { dpoLoss, dpoLossAsync, rankingLoss, rankingLossAsync } from './ops/preference.js';
export type { DpoLossInput, DpoLossOutput, RankingLossInput, RankingLossOutput } from './ops/preference.js';
export { matmul, matmulAsync } from './ops/matmul.js';
export { adamw, adamwAsync, clipGradNorm, clipGradNormAsync } from './ops/optimizer.js';
export type { AdamwInput, AdamwOutput, ClipGradNormInput, ClipGradNormOutput } from './ops/optimizer.js';
export type { MatmulInput } from './ops/matmul.js';
export { sample, sampleAsync } from './ops/sampling.js';
export type { SampleInput, SampleMode, SampleOutput } from './ops/sampling.js';
export {
  crossEntropy, crossEntropyAsync, klDivergence, klDivergenceAsync, klDivergenceBackward, klDivergenceBackwardAsync,
  logprobEntropy, logprobEntropyAsync, logprobEntropyBackward, logprobEntropyBackwardAsync,
} from './ops/logits.js';
export type {
  CrossEntropyInput, CrossEntropyOutput, KlDivergenceBackwardInput, KlDivergenceInput, KlDivergenceOutput, LogitsGradient,
  LogprobEntropyBackwardInput, LogprobEntropyInput, LogprobEntropyOutput,
} from './ops/logits.js';
export {
  attentionBackward, attentionBackwardAsync, attentionDecode, attentionDecodeAsync, attentionForward,
  attentionForwardAsync, kvCacheAppend, kvCacheAppendAsync, ropeBackward, ropeBackwardAsync, ropeForward,
  ropeForwardAsync,
} from './ops/attention.js';
export type {
  AttentionBackwardInput, AttentionBackwardOutput, AttentionDecodeInput, AttentionForwardInput, AttentionForwardOutput,
  KvCache, KvCacheAppendInput, RopeInput,
} from './ops/attention.js';
export { worldA } from './world/task-a.js';
export { checkWorldSplit, loadWorld, rankCompletions, selectDistinct, validateWorld } from './world/load.js';
export type { Completion, Demonstration, Judgement, PromptSample, Split, World } from './world/types.js';
export { ByteTokenizer } from './tokenizer/byte.js';
export type { Tokenizer } from './tokenizer/tokenizer.js';
export { readJsonl, streamJsonl } from './data/jsonl.js';
export type { JsonlOptions } from './data/jsonl.js';
export {
  pairwiseRewardRecordSchema, ppoRecordSchema, pretrainingRecordSchema, rankedRewardRecordSchema, rewardRecordSchema,
  sftRecordSchema,
} from './data/records.js';
export type { PpoRecord, PretrainingRecord, RewardRecord, SftRecord } from './data/records.js';
export { encodePretraining, encodeSft, packBatch, TokenBudgetBatcher } from './data/batches.js';
export type {
  BatcherBatch, BatcherPosition, EncodedExample, PackedBatch, TokenBudgetBatcherOptions,
} from './data/batches.js';
export { MetricsWriter, readMetrics } from './train/metrics.js';
export type { MetricsRecord, MetricValue, MetricsWriterOptions } from './train/metrics.js';
export {
  AdaptiveKlController, instructgptPreset, instructgptPtx, PpoTrainer, ppoAdvantages, sequenceLogprobs, taskAPreset, taskAPtx,
} from './train/ppo.js';
export type {
  AdaptiveKlOptions, PolicyGradientReport, PpoRollouts, PpoSequences, PpoTrainerOptions, PtxOptions,
} from './train/ppo.js';
export { createProgress } from './cli/progress.js';
export type { Progress, ProgressOptions, ProgressStream, ProgressValues } from './cli/progress.js';
export { modelConfigToHf, parseModelConfig, readModelConfig, SUPPORTED_HEAD_DIMS, validateModelConfig } from './nn/config.js';
export type { ModelConfig, ModelType } from './nn/config.js';
export { PARAM_ALIGNMENT, parameterCount, parameterLayout, validateHeads } from './nn/params.js';
export type { ModelHeads, ParamEntry, ParamLayout } from './nn/params.js';
export { openSafetensors, readSafetensors, writeSafetensors } from './nn/safetensors.js';
export type {
  NamedTensor, SafetensorsDType, SafetensorsReader, SafetensorsTensor, SafetensorsTensorInfo,
} from './nn/safetensors.js';
export { loadModelFiles, MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE, saveModelFiles } from './nn/checkpoint-tensors.js';
export type { LoadedModel, LoadModelOptions } from './nn/checkpoint-tensors.js';
export {
  axpby, axpbyAsync, embedding, embeddingAsync, embeddingBackward, embeddingBackwardAsync, rmsnorm, rmsnormAsync,
  rmsnormBackward, rmsnormBackwardAsync, swiglu, swigluAsync, swigluBackward, swigluBackwardAsync,
} from './ops/layers.js';
export type {
  AxpbyInput, EmbeddingBackwardInput, EmbeddingInput, RmsnormBackwardInput, RmsnormBackwardOutput, RmsnormInput,
  RmsnormOutput, SwigluBackwardInput, SwigluInput,
} from './ops/layers.js';
export { initialParameters, ModelKvCache, TransformerModel } from './nn/model.js';
export type { BackwardGradients, ForwardOptions, ForwardResult, ModelOptions, PackedTokens } from './nn/model.js';
export { generate } from './nn/generate.js';
export type { GenerateOptions, GenerateResult } from './nn/generate.js';
export { AdamW, learningRate, WeightEma } from './nn/optim.js';
export type { AdamWOptions, AdamWState, LrSchedule, StepReport } from './nn/optim.js';
export { estimateMemory } from './nn/memory.js';
export type { MemoryEstimate, MemoryOptions } from './nn/memory.js';
export { Rng } from './util/rng.js';
export type { RngState } from './util/rng.js';
export { nonFiniteLoss } from './train/trainer.js';
export type { RestoredCheckpoint, StepMetrics, Trainer, TrainerCheckpoint } from './train/trainer.js';
export { latestCheckpoint, runTrainer } from './train/runner.js';
export type { RunOptions, RunResult } from './train/runner.js';
export { encodePretrainingTexts, encodeSftRecords, SftTrainer } from './train/sft.js';
export type { OptimizationOptions, SftTrainerOptions } from './train/sft.js';
export { accumulateRankingGradient, encodeRewardRecords, RewardTrainer, scoreSequences } from './train/reward.js';
export type { RankingGradientOptions, RankingGradientReport, ReferenceCompletion, RewardExample, RewardTrainerOptions } from './train/reward.js';
export {
  evalPrompts, evaluatePolicy, judgeSamples, klToReference, POLICY_EVALUATION_FIELDS, pretrainingLoss, rankSamples,
  rmAccuracy, sampleResponses,
} from './pipeline/evaluate.js';
export type {
  EvaluatePolicyOptions, JudgedSample, PolicyEvaluation, RankedGroup, RewardScorer, RmAccuracy, Sample,
  SampleResponsesOptions,
} from './pipeline/evaluate.js';
export { barChart, formatResultsTable, lineChart, POLICY_NAMES, pytorchReferenceA, renderReport } from './pipeline/report.js';
export type {
  BarChartOptions, ChartSeries, LineChartOptions, PipelineResults, PolicyName, ReferenceNumbers, ReportInput,
} from './pipeline/report.js';
