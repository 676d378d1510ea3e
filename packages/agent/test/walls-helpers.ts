/**
 * Helpers of the walls tests (issue 21): agent log events, metrics, hand-built ttRPC frames.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { Vaccel } from '@vaccel/core';
import { remotePlugin } from '@vaccel/remote';
import { encodeHeader, FrameFlag, FrameType, RequestSchema } from '@vaccel/ttrpc';
import { type RunningAgent, startAgent } from './helpers.js';

/** Resolves with the first agent log line (seen so far or later) that `match` accepts. */
export function logEvent(
  agent: RunningAgent,
  match: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    let seen = 0;
    const check = (): boolean => {
      for (; seen < agent.logs.length; seen++) {
        const line = agent.logs[seen]!;
        if (match(line)) {
          agent.process.stdout!.off('data', onData);
          resolve(line);
          return true;
        }
      }
      return false;
    };
    // helpers.ts parses lines in its own 'data' listener, registered first: ours runs after it.
    const onData = (): void => {
      check();
    };
    if (!check()) agent.process.stdout!.on('data', onData);
  });
}

/** Starts an agent and waits for its 'ready' line (logged once its metrics endpoint listens too). */
export async function startReadyAgent(
  args: string[],
  env: Record<string, string> = {},
): Promise<RunningAgent> {
  const agent = await startAgent(args, env);
  await logEvent(agent, (line) => line.msg === 'ready');
  return agent;
}

/** A metric's value (`name` with its labels, e.g. `x_total{reason="a"}`), NaN when absent. */
export async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? Number.NaN);
}

/** Polls a metric until `ok` accepts it (an event the agent publishes, not a duration). */
export async function metricReaches(
  port: number,
  name: string,
  ok: (value: number) => boolean,
): Promise<number> {
  for (;;) {
    const value = await metric(port, name);
    if (ok(value)) return value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A guest on the public API through the RPC plugin. */
export async function guest(address: string, options: Parameters<typeof remotePlugin>[0] = {}) {
  const vaccel = await Vaccel.open({ plugins: [remotePlugin({ ...options, address })] });
  return { vaccel, session: await vaccel.createSession() };
}

/** A raw socket speaking hand-built ttRPC frames. */
export class RawPeer {
  readonly socket: Socket;
  #received = Buffer.alloc(0);
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      for (const waiter of this.#waiters.splice(0)) waiter();
    });
    socket.on('error', () => {});
  }

  static open(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(path, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a Request frame whose envelope names `service`/`method`. */
  request(streamId: number, service: string, method: string, payload: Uint8Array, flags = 0): void {
    const envelope = toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
    this.frame(streamId, FrameType.Request, flags, envelope);
  }

  frame(streamId: number, type: number, flags: number, payload: Uint8Array): void {
    this.socket.write(Buffer.concat([encodeHeader(payload.byteLength, streamId, type, flags), payload]));
  }

  /** Ends a client stream: the closing Data frame. */
  closeStream(streamId: number): void {
    this.frame(streamId, FrameType.Data, FrameFlag.RemoteClosed | FrameFlag.NoData, new Uint8Array(0));
  }

  /** Resolves once a whole frame for `streamId` came back. */
  async response(streamId: number): Promise<Uint8Array> {
    for (;;) {
      let at = 0;
      while (this.#received.byteLength - at >= 10) {
        const length = this.#received.readUInt32BE(at);
        const id = this.#received.readUInt32BE(at + 4);
        if (this.#received.byteLength - at - 10 < length) break;
        if (id === streamId) return this.#received.subarray(at + 10, at + 10 + length);
        at += 10 + length;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
