/**
 * The test's side of the gate plugin (fixtures/gate-plugin.ts): a unix socket that labelled noops
 * running in an agent connect to. `entered(label)` is the event "that op is running now"; the op
 * stays in the agent until the test calls `release()`.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Args, OpType, type Session } from '@vaccel/core';
import { GATE_ENV } from './fixtures/gate-plugin.js';
import { tempDir } from './helpers.js';

/** The plugin module to name in `--plugins` (with `gate.env` in the agent's environment). */
export const GATE_PLUGIN = fileURLToPath(new URL('./fixtures/gate-plugin.ts', import.meta.url));

/** One op held at the gate. */
export interface HeldOp {
  readonly label: string;
  /** Lets the op finish (successfully). */
  release(): void;
  /** Resolves when the op's side hung up while held: its call was aborted or its agent died. */
  readonly hungUp: Promise<void>;
}

export interface Gate extends AsyncDisposable {
  /** Environment for the agent: where its gate plugin finds this gate. */
  readonly env: Record<string, string>;
  /** Resolves once the op labelled `label` has entered the gate (it is running in the agent). */
  entered(label: string): Promise<HeldOp>;
  /** Labels of the ops that have entered so far, in the order they entered. */
  readonly arrivals: readonly string[];
  /** Stops listening; ops still held fail with EIO. Idempotent. */
  close(): Promise<void>;
}

/** Opens a gate on a fresh unix socket. */
export async function openGate(): Promise<Gate> {
  const path = join(tempDir(), 'gate.sock');
  const arrived = new Map<string, HeldOp>();
  const arrivals: string[] = [];
  const waiting = new Map<string, (op: HeldOp) => void>();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let text = '';
    let released = false;
    // Not events.once: that would reject on the socket's 'error' (a reset when the agent dies).
    const hungUp = new Promise<void>((resolve) => socket.once('close', () => resolve())).then(() => {
      sockets.delete(socket);
    });
    socket.setEncoding('utf8');
    socket.on('data', function onData(chunk: string) {
      text += chunk;
      const end = text.indexOf('\n');
      if (end < 0) return;
      socket.off('data', onData);
      const label = text.slice(0, end);
      const op: HeldOp = {
        label,
        release() {
          if (released) return;
          released = true;
          socket.end('go\n');
        },
        hungUp: hungUp.then(() => {
          if (released) return new Promise<void>(() => {}); // released: it never hung up
        }),
      };
      if (arrived.has(label)) throw new Error(`gate: label ${label} entered twice`);
      arrived.set(label, op);
      arrivals.push(label);
      waiting.get(label)?.(op);
      waiting.delete(label);
    });
  });
  server.listen(path);
  await once(server, 'listening');
  const close = async (): Promise<void> => {
    if (!server.listening) return;
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  };
  return {
    env: { [GATE_ENV]: path },
    arrivals,
    entered(label) {
      const op = arrived.get(label);
      if (op) return Promise.resolve(op);
      if (waiting.has(label)) throw new Error(`gate: already waiting for ${label}`);
      return new Promise((resolve) => waiting.set(label, resolve));
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** An op settled into a value at once, so its rejection is never "unhandled" while a test waits. */
export type Outcome = { ok: true } | { ok: false; error: unknown };

/** Starts a noop that enters the agent's gate as `label`; resolves with how it ended. */
export function gatedNoop(session: Session, label: string, options: { signal?: AbortSignal } = {}) {
  return session.doOperation(OpType.Noop, [Args.string(label)], [], options).then(
    (): Outcome => ({ ok: true }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
}

/**
 * Starts a compute op (the gate plugin's image_depth, which the agent schedules into a compute
 * slot) that enters the gate as `label` once it runs; resolves with how it ended.
 */
export function gatedCompute(session: Session, label: string, options: { signal?: AbortSignal } = {}) {
  return session.doOperation(OpType.ImageDepth, [Args.string(label)], [], options).then(
    (): Outcome => ({ ok: true }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
}
