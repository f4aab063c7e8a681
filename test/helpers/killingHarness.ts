/**
 * A harness process that dies by SIGKILL the moment a given phase starts: `ptb trial resume` built
 * the same way as the CLI builds it (createContext + trialEnvFor), with one hook that kills this very
 * process once the phase is marked started. Crash tests use it for phases too short to hit from outside.
 *
 *   node --import tsx test/helpers/killingHarness.ts <trial-id> <phase>
 */
import { openContext } from '../../src/cli/context.ts';
import { trialEnvFor } from '../../src/cli/trialEnv.ts';
import { runTrial } from '../../src/trial/runTrial.ts';

const [trialId, killAt] = process.argv.slice(2);
if (!trialId || !killAt) throw new Error('usage: killingHarness.ts <trial-id> <phase>');
const ctx = await openContext(process.env);
const env = trialEnvFor(ctx, { offline: true, quiet: true });
await runTrial(
  {
    ...env,
    // runTrial announces a phase right after marking it started in the database.
    onLine: (line) => {
      process.stderr.write(`${line}\n`);
      if (line.startsWith(`phase ${killAt}`)) process.kill(process.pid, 'SIGKILL');
    },
  },
  trialId,
);
process.stderr.write(`killingHarness: the trial ended before phase ${killAt} started\n`);
process.exitCode = 3;
