import { SIM_ERRORS, SimUsageError } from './errors.ts';
import { HELP, parseSimArgs } from './options.ts';
import { Progress } from './progress.ts';

/** `fleetgate-sim`: returns the exit code (0 ok, 1 errors above the limit or failure, 2 usage). */
export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseSimArgs(argv);
  } catch (error) {
    if (error instanceof SimUsageError) {
      process.stderr.write(`fleetgate-sim: ${error.code}: ${error.message}\n\n${HELP}\n`);
      return SIM_ERRORS[error.code];
    }
    throw error;
  }
  if (!options) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const progress = new Progress(process.stderr, false);
  let stopping = false;
  process.on('SIGINT', () => {
    if (stopping) process.exit(130);
    stopping = true;
    progress.note('interrupted: finishing the report (Ctrl-C again to quit at once)');
  });
  try {
    // The fleet machinery (the SDK, MQTT.js, the report) is loaded to run one, not for --help.
    const { simulate, summaryText } = await import('./simulate.ts');
    const outcome = await simulate(options, progress);
    process.stdout.write(options.json ? `${JSON.stringify(outcome.report, null, 2)}\n` : `${summaryText(outcome, options.maxErrorRate)}\n`);
    return outcome.passed ? 0 : 1;
  } catch (error) {
    process.stderr.write(`fleetgate-sim: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}
