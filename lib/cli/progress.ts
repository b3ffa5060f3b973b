// Progress for long runs (training steps, rollouts, tokens). On a terminal: a cli-progress bar with
// throughput and ETA, redrawn in place. Anywhere else (CI, a pipe, `tee`): a plain line at most every
// intervalMs and a final line, because a redrawn bar turns a log file into megabytes of carriage returns.
import cliProgress from 'cli-progress';
import { describeValue } from '../data/describe.js';
import { TalariaError } from '../native.js';

/** Values shown after the counts, e.g. { loss: 2.31, kl: 0.02 } → "loss=2.31 kl=0.02". */
export type ProgressValues = Record<string, number | string>;

/** The part of a writable stream progress uses (process.stderr, or a test's recorder). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** What is being done ("sft", "rollouts"). */
  label: string;
  /** Units in the whole job (a positive integer). */
  total: number;
  /** Name of one unit (default 'steps'). */
  unit?: string;
  /** Units already done when the job starts (a resumed run); throughput counts only new ones. */
  initial?: number;
  /** Print nothing. */
  silent?: boolean;
  /** Where to write (default process.stderr); a bar is drawn only when stream.isTTY is true. */
  stream?: ProgressStream;
  /** Least time between two plain lines when not a TTY (default 5000 ms). */
  intervalMs?: number;
  /** Clock in milliseconds (tests inject one); default Date.now. */
  now?: () => number;
}

export interface Progress {
  /** `n` more units done (default 1). */
  tick(n?: number, values?: ProgressValues): void;
  /** `done` units done in total. */
  update(done: number, values?: ProgressValues): void;
  /** Ends the display (the final line when not a TTY). Later calls do nothing. */
  stop(): void;
}

/**
 * A progress display on stderr.
 *
 * @example
 * const progress = createProgress({ label: 'sft', total: steps, unit: 'steps' });
 * for (let step = 0; step < steps; step++) { const loss = trainStep(); progress.tick(1, { loss }); }
 * progress.stop();
 */
export function createProgress(options: ProgressOptions): Progress {
  const fn = 'createProgress';
  if (options === null || typeof options !== 'object') throw new TalariaError(`${fn}: options must be an object, got ${describeValue(options)}`, 'ERR_TALARIA_DTYPE');
  const { label, total, unit = 'steps', initial = 0, silent = false, stream = process.stderr, intervalMs = 5000, now = Date.now } = options;
  if (typeof label !== 'string' || label === '') throw new TalariaError(`${fn}: options.label must be a non-empty string, got ${describeValue(label)}`, 'ERR_TALARIA_DTYPE');
  if (typeof unit !== 'string' || unit === '') throw new TalariaError(`${fn}: options.unit must be a non-empty string, got ${describeValue(unit)}`, 'ERR_TALARIA_DTYPE');
  checkNumber(fn, 'options.total', total, (x) => Number.isSafeInteger(x) && x > 0, 'a positive integer');
  checkNumber(fn, 'options.initial', initial, (x) => Number.isFinite(x) && x >= 0 && x <= total, `a number in [0, total ${total}]`);
  checkNumber(fn, 'options.intervalMs', intervalMs, (x) => Number.isFinite(x) && x >= 0, 'a non-negative number');
  if (typeof silent !== 'boolean') throw new TalariaError(`${fn}: options.silent must be a boolean, got ${describeValue(silent)}`, 'ERR_TALARIA_DTYPE');
  if (stream === null || typeof stream !== 'object' || typeof stream.write !== 'function')
    throw new TalariaError(`${fn}: options.stream must be a writable stream, got ${describeValue(stream)}`, 'ERR_TALARIA_DTYPE');
  if (typeof now !== 'function') throw new TalariaError(`${fn}: options.now must be a function, got ${describeValue(now)}`, 'ERR_TALARIA_DTYPE');

  const started = now();
  let done = initial;
  let values = '';
  let stopped = false;
  const rate = () => {
    const seconds = (now() - started) / 1000;
    return seconds > 0 ? (done - initial) / seconds : 0;
  };

  let draw: () => void;
  let finish: () => void;
  if (silent) {
    draw = finish = () => {};
  } else if (stream.isTTY === true) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {speed} ${unit}/s | ETA {eta_formatted} {values}`, stream: stream as NodeJS.WritableStream, hideCursor: false, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, done, { speed: '0', values });
    draw = () => bar.update(done, { speed: formatNumber(rate()), values });
    finish = () => {
      draw();
      bar.stop();
    };
  } else {
    let lastLine = started;
    draw = () => {
      if (now() - lastLine < intervalMs) return;
      lastLine = now();
      const speed = rate();
      const eta = speed > 0 ? ` ETA ${formatDuration((total - done) / speed)}` : '';
      stream.write(`${label}: ${formatNumber(done)}/${total} ${unit} (${Math.floor((100 * done) / total)}%) ${formatNumber(speed)} ${unit}/s${eta}${values ? ` ${values}` : ''}\n`);
    };
    finish = () => {
      const elapsed = (now() - started) / 1000;
      stream.write(`${label}: ${formatNumber(done)}/${total} ${unit} in ${formatDuration(elapsed)} (${formatNumber(rate())} ${unit}/s)${values ? ` ${values}` : ''}\n`);
    };
  }

  const setValues = (given: ProgressValues | undefined, name: string) => {
    if (given === undefined) return;
    if (given === null || typeof given !== 'object' || Array.isArray(given))
      throw new TalariaError(`${name}: values must be an object of name → number | string, got ${describeValue(given)}`, 'ERR_TALARIA_DTYPE');
    values = Object.entries(given).map(([key, value]) => `${key}=${typeof value === 'number' ? formatNumber(value) : String(value)}`).join(' ');
  };

  return {
    tick(n = 1, given) {
      checkNumber('Progress.tick', 'n', n, (x) => Number.isFinite(x) && x >= 0, 'a non-negative number');
      if (stopped) return;
      setValues(given, 'Progress.tick');
      done = Math.min(total, done + n);
      draw();
    },
    update(value, given) {
      checkNumber('Progress.update', 'done', value, (x) => Number.isFinite(x) && x >= 0, 'a non-negative number');
      if (stopped) return;
      setValues(given, 'Progress.update');
      done = Math.min(total, value);
      draw();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      finish();
    },
  };
}

function checkNumber(fn: string, name: string, value: unknown, ok: (x: number) => boolean, expected: string): void {
  if (typeof value !== 'number') throw new TalariaError(`${fn}: ${name} must be a number, got ${describeValue(value)}`, 'ERR_TALARIA_DTYPE');
  if (!ok(value)) throw new TalariaError(`${fn}: ${name} must be ${expected}, got ${value}`, 'ERR_TALARIA_RANGE');
}

/** 4 significant digits for fractions, integers as they are. */
function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(4)));
}

/** 75 → "1m15s", 3725 → "1h02m05s". */
function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (x: number) => String(x).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m${pad(r)}s`;
  if (m > 0) return `${m}m${pad(r)}s`;
  return `${r}s`;
}
