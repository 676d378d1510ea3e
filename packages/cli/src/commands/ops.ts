import { parse, printJson, println } from '../io.js';
import { openRuntime } from '../runtime.js';
import { COMMON_HELP, type Command } from './command.js';

export const opsCommand: Command = {
  name: 'ops',
  summary: 'list the operations the loaded plugins provide',
  help: `Usage: vaccel ops [options]

Lists every operation the loaded plugins provide (upstream's vaccel_get_operations), with the
plugin chosen by default and any others that also implement it.

${COMMON_HELP}`,
  async run(args, io) {
    const { values } = parse(args, {});
    await using vaccel = await openRuntime(io, values);
    const ops = await vaccel.listOperations();
    if (values.json) {
      printJson(io, {
        plugins: vaccel.plugins().map(({ name, version }) => ({ name, version })),
        operations: ops,
      });
      return 0;
    }
    println(io, `${'op'.padStart(3)}  ${'name'.padEnd(22)} plugins`);
    for (const { op, name, plugins, extension } of ops) {
      println(
        io,
        `${String(op).padStart(3)}  ${(name + (extension ? '*' : '')).padEnd(22)} ${plugins.join(', ')}`,
      );
    }
    println(io, '\n* vaccel-ts extension op (not in upstream vAccel)');
    return 0;
  },
};
