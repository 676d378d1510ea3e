/** Entry used by tests and `tsx` runs of the sources; `bin/vaccel-crypto-backend.js` is the installed one. */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
