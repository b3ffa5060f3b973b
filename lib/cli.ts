// The `talaria` command line: parses, validates, prints progress and summaries; no math. Each
// subcommand lives in lib/cli/<command>.ts and returns an exit code.
//
//   talaria info
//   talaria bench [--filter s] [--json file] [--quick] [--backend cpu|cuda|all]
//   talaria sft|rm|ppo --config file.json [--field value ...]
//   talaria pipeline [--world a|./my-world.mjs] [--config file.json] [--out dir] [--seed n] [--backend cpu|cuda] [--quick]
import { isUserFacing } from './cli/config.js';
import { info } from './native.js';

const USAGE = `usage: talaria <command> [options]

commands:
  info                       version, backends, devices, SIMD level and threads
  bench [options]            benchmark the kernels against this machine's roofline (--filter, --json, --quick, --backend)
  sft --config file.json     supervised fine-tuning
  rm --config file.json      reward model (K-wise rankings, InstructGPT style)
  ppo --config file.json     PPO / PPO-ptx against a reward model
  pipeline [options]         InstructGPT in miniature: pretrain -> SFT -> RM -> PPO -> PPO-ptx -> evaluation

Any config field can be overridden on the command line: --lr 1e-4 --optimizer.maxGradNorm 1.
Run a command with --help for its options.`;

type Command = (argv: string[]) => Promise<number> | number;

const COMMANDS: Record<string, () => Promise<Command>> = {
  info: async () => () => {
    console.log(JSON.stringify(info(), null, 2));
    return 0;
  },
  bench: async () => {
    // Imported only when asked for: it pulls in benchmark.js.
    const { runBench } = await import('../bench/run.js');
    return runBench;
  },
  sft: async () => (await import('./cli/train.js')).sftCommand,
  rm: async () => (await import('./cli/train.js')).rmCommand,
  ppo: async () => (await import('./cli/train.js')).ppoCommand,
  pipeline: async () => (await import('./cli/pipeline.js')).pipelineCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`talaria: unknown command '${name}'\n\n${USAGE}`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (error) {
    if (isUserFacing(error)) {
      console.error(`talaria ${name}: ${error.code}: ${error.message}`);
      return 1;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
