// Entry point of the single-file bundle `scripts/deviceKit.sh` builds for machines without npm.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv);
