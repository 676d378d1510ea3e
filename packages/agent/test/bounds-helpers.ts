/**
 * Helpers of the bounds tests (issue 22): a raw guest speaking hand-built ttRPC frames, and the
 * agent's metrics summed over their label sets.
 */
import { connect as netConnect } from 'node:net';
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { OpType } from '@vaccel/core';
import { encodeHeader, FrameDecoder, FrameType, RequestSchema, ResponseSchema } from '@vaccel/ttrpc';
import type { RunningAgent } from './helpers.js';

export const MiB = 1024 ** 2;

/**
 * Every sample of a metric (all its label sets) added up; `labels` keeps only lines that contain
 * it. (walls-helpers.ts's `metric` reads one exact sample instead.)
 */
export async function metricTotal(port: number, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || !(line[name.length] === ' ' || line[name.length] === '{')) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A request frame, built by hand. */
export function requestFrame<D extends DescMessage>(
  id: number,
  service: string,
  method: string,
  schema: D,
  value: MessageInitShape<D>,
  flags = 0,
): Buffer {
  const payload = toBinary(schema, create(schema, value));
  const request = toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
  return Buffer.concat([encodeHeader(request.byteLength, id, FrameType.Request, flags), request]);
}

/** A raw guest: writes frames, collects the responses it reads (by stream id). */
export async function rawGuest(path: string) {
  const socket = netConnect(path);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  const responses = new Map<number, { code: number; message: string; payload: Uint8Array }>();
  const waiters = new Map<number, () => void>();
  const decoder = new FrameDecoder(
    1 << 30,
    (frame) => {
      const response = fromBinary(ResponseSchema, frame.payload);
      responses.set(frame.streamId, {
        code: response.status?.code ?? 0,
        message: response.status?.message ?? '',
        payload: response.payload,
      });
      waiters.get(frame.streamId)?.();
    },
    () => {},
  );
  socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    responses,
    response(id: number) {
      const got = responses.get(id);
      if (got) return Promise.resolve(got);
      return new Promise<{ code: number; message: string; payload: Uint8Array }>((resolve) =>
        waiters.set(id, () => resolve(responses.get(id)!)),
      );
    },
  };
}

/** A genop request running noop in `sessionId`. */
export const noopGenop = (sessionId: bigint) => ({
  sessionId,
  readArgs: [{ buf: new Uint8Array([OpType.Noop]), size: 1, argType: 9 }],
  writeArgs: [],
});

/** How many of the agent's log lines so far have the message `msg`. */
export const count = (agent: RunningAgent, msg: string) => agent.logs.filter((l) => l.msg === msg).length;
