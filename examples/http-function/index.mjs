#!/usr/bin/env node
// An HTTP function (node:http): POST an image, get what is in it.
//
//   node examples/http-function/index.mjs                 # ops run in this process (embedded)
//   VACCEL_RPC_ADDRESS=unix:///run/vaccel.sock node …     # ops run on a vaccel-agent
//
//   curl --data-binary @examples/images/dog.jpg localhost:8080/detect
//   curl --data-binary @examples/images/dog.jpg 'localhost:8080/detect?annotate=1' -o dog.jpg
//   curl --data-binary @examples/images/cat.jpg 'localhost:8080/classify?top=3'
//
// PORT (default 8080; 0 picks a free one) and HOST (default 127.0.0.1) choose where it listens;
// it prints `listening on http://HOST:PORT` once ready. GET /healthz answers `ok`.
import { createServer } from 'node:http';

const remote = Boolean(process.env.VACCEL_RPC_ADDRESS || process.env.VACCEL_RPC_ADDR);
// Offloaded, the slim bundled guest library is all it needs; embedded, the ONNX plugin runs here.
const { Vaccel, isVaccelError } = await import(remote ? '@vaccel/remote/guest' : '@vaccel/core');
const plugins = remote ? undefined : (await import('@vaccel/plugin-onnx')).hostPlugins();
const vaccel = await Vaccel.open(plugins ? { plugins } : {});

const MAX_BODY = 32 << 20;
const STATUS = { EINVAL: 400, E2BIG: 413, ENOTSUP: 501, ECONNRESET: 503, ETIMEDOUT: 504, EACCES: 502 };

/** The request body, up to MAX_BODY bytes. */
async function body(request) {
  const chunks = [];
  let size = 0;
  for await (const chunk of request) {
    size += chunk.byteLength;
    if (size > MAX_BODY)
      throw Object.assign(new Error(`the body is over ${MAX_BODY} bytes`), { status: 413 });
    chunks.push(chunk);
  }
  if (size === 0) throw Object.assign(new Error('POST the image as the request body'), { status: 400 });
  return new Uint8Array(Buffer.concat(chunks));
}

function reply(response, status, value) {
  response.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(value)}\n`);
}

async function handle(request, response) {
  const url = new URL(request.url ?? '/', 'http://function');
  if (request.method === 'GET' && url.pathname === '/healthz') return response.end('ok\n');
  if (request.method !== 'POST' || !['/detect', '/classify'].includes(url.pathname))
    return reply(response, 404, { error: 'ENOENT', message: 'POST an image to /detect or /classify' });
  const image = await body(request);
  const started = performance.now();
  // One session per request (Node 20 has no `await using` in plain JS: release it in finally).
  const session = await vaccel.createSession();
  try {
    if (url.pathname === '/classify') {
      const classes = await session.imageClassify(image, { topK: Number(url.searchParams.get('top') ?? 5) });
      return reply(response, 200, { ms: performance.now() - started, classes });
    }
    const annotate = url.searchParams.get('annotate') === '1';
    const minScore = url.searchParams.has('minScore') ? Number(url.searchParams.get('minScore')) : undefined;
    const { result, annotated } = await session.imageDetect(image, {
      annotate,
      ...(minScore === undefined ? {} : { minScore }),
    });
    if (annotate) return response.writeHead(200, { 'content-type': 'image/jpeg' }).end(annotated);
    return reply(response, 200, { ms: performance.now() - started, objects: result });
  } finally {
    await session.release();
  }
}

const server = createServer((request, response) => {
  handle(request, response).catch((error) => {
    const status = error.status ?? (isVaccelError(error) ? (STATUS[error.code] ?? 500) : 500);
    reply(response, status, { error: error.code ?? 'EIO', message: error.message });
  });
});
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  const { address, port } = server.address();
  console.log(
    `listening on http://${address}:${port} (${remote ? `offloaded to ${process.env.VACCEL_RPC_ADDRESS}` : 'embedded'})`,
  );
});

for (const signal of ['SIGTERM', 'SIGINT'])
  process.once(signal, () => {
    server.close();
    vaccel.close().finally(() => process.exit(0));
  });
