#!/usr/bin/env node
// The test suite on a busy machine: two CPU-burning processes run beside it (VACCEL_BUSY_BURNERS
// changes how many), so a test that hopes an op is still running, or finished, after some time
// shows itself. Runs scripts/run-tests.mjs with the same arguments as `npm test`; the burners die
// whatever happens (tied to this process: killed when it exits, and by the kernel if it is killed).
// Usage: node scripts/test-busy.mjs [path-filter …] [-- extra node --test flags]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const runTests = fileURLToPath(new URL('./run-tests.mjs', import.meta.url));
const count = Number(process.env.VACCEL_BUSY_BURNERS ?? 2);
if (!Number.isSafeInteger(count) || count < 0) {
  console.error(`VACCEL_BUSY_BURNERS must be a whole number, got ${process.env.VACCEL_BUSY_BURNERS}`);
  process.exit(2);
}

// @vaccel/process ties children to us even through a SIGKILL (parent-death signal); it loads from
// its build (npm install builds it). Without the build, a plain spawn killed on exit does.
let spawnBurner = (args) => spawn(process.execPath, args, { stdio: 'ignore' });
try {
  const { spawnTied } = await import('@vaccel/process');
  spawnBurner = (args) => spawnTied(process.execPath, args, { stdio: 'ignore' });
} catch {
  // not built: the exit hook below is the tie
}
const burners = Array.from({ length: count }, () => spawnBurner(['-e', 'for (;;) {}']));
const stopBurners = () => {
  for (const burner of burners)
    if (burner.exitCode === null && burner.signalCode === null) burner.kill('SIGKILL');
};
process.on('exit', stopBurners);
console.log(
  `# test:busy: ${count} CPU burners beside the suite (pids ${burners.map((b) => b.pid).join(', ')})`,
);

const suite = spawn(process.execPath, [runTests, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    suite.kill(signal);
    stopBurners();
  });
}
suite.on('exit', (code, signal) => {
  stopBurners();
  process.exit(code ?? (signal ? 1 : 0));
});
