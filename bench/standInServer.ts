/** Runs the stand-in engine in its own process (so it does not share a CPU with the client) and prints its address. */
import { startStandInEngine } from '../test/helpers/standInEngine.ts';

const latencyMs = Number(process.argv[2] ?? 25);
const server = await startStandInEngine({ latencyMs });
process.stdout.write(
  `${JSON.stringify({ baseUrl: server.baseUrl, apiKey: server.apiKey, modelName: server.modelName })}\n`,
);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
