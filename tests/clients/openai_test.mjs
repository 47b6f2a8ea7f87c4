// The official OpenAI SDK (the `openai` npm package, pinned in package.json) against a
// running cfgserve: images.generate (b64_json and url), images.edit with a mask, and the
// SDK's error classes for a bad request, an unknown model and a wrong API key.
// Usage: CS_URL=http://127.0.0.1:PORT CS_KEY=key CS_SIZE=64 node openai_test.mjs
// Prints "ok: ..." / "FAIL: ..." lines and "N passed, N failed"; exits non-zero on failure.
import OpenAI, { toFile } from 'openai';
import { deflateSync } from 'node:zlib';

const base = process.env.CS_URL, key = process.env.CS_KEY, side = Number(process.env.CS_SIZE || 64);
const size = `${side}x${side}`;
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 120000 });
let passed = 0, failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++; else failed++;
  console.log(`${ok ? 'ok' : 'FAIL'}: ${name}${detail ? ' (' + detail + ')' : ''}`);
}
async function step(name, fn) {
  try { await fn(); } catch (e) { check(name, false, `${e.constructor.name}: ${e.message}`); }
}

// Width and height of a PNG, or null when the bytes are not one.
function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (buf.length < 24 || !buf.subarray(0, 8).equals(sig) || buf.toString('latin1', 12, 16) !== 'IHDR') return null;
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}
const isPngOf = (buf, w, h) => { const s = pngSize(buf); return !!s && s[0] === w && s[1] === h; };

// An RGBA PNG: opaque, with a transparent left half when `hole` (OpenAI's mask convention).
function makePng(w, h, hole) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (b) => { let c = 0xffffffff; for (const x of b) c = crcTable[(c ^ x) & 255] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 6;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + 4 * w);
    for (let x = 0; x < w; x++) {
      row.set([200, 40, 40, hole && x < w / 2 ? 0 : 255], 1 + 4 * x);
    }
    rows.push(row);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}

await step('generate b64_json', async () => {
  // The SDK's default call plus cfgserve's extension fields (steps, seed, negative_prompt).
  const r = await client.images.generate({ prompt: 'a red circle', n: 2, size, steps: 4, seed: 7,
    negative_prompt: 'blue', guidance_scale: 7 });
  const pngs = r.data.map((d) => Buffer.from(d.b64_json, 'base64'));
  check('generate b64_json: 2 PNGs of the requested size, created is unix seconds',
    pngs.length === 2 && pngs.every((p) => isPngOf(p, side, side)) &&
    Math.abs(r.created - Date.now() / 1000) < 600, `${pngs.length} images, created ${r.created}`);
});

await step('generate with the defaults only', async () => {
  // n, size and response_format left to their defaults (steps kept short for slow builds).
  const r = await client.images.generate({ prompt: 'a green square', model: 'dall-e-2', quality: 'standard', user: 'test', steps: 4 });
  check('generate with default n/size/format (model dall-e-2 as an alias): one PNG of the native size',
    r.data.length === 1 && isPngOf(Buffer.from(r.data[0].b64_json, 'base64'), side, side));
});

await step('generate url', async () => {
  const r = await client.images.generate({ prompt: 'a blue square', size, response_format: 'url', steps: 4 });
  const url = r.data[0].url;
  const res = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
  const buf = Buffer.from(await res.arrayBuffer());
  check('generate url: an absolute URL that serves the PNG', url.startsWith(base + '/v1/images/files/') &&
    res.status === 200 && isPngOf(buf, side, side), `${url} -> ${res.status}`);
});

await step('edit with mask', async () => {
  const image = await toFile(makePng(side, side, false), 'image.png', { type: 'image/png' });
  const mask = await toFile(makePng(side, side, true), 'mask.png', { type: 'image/png' });
  const r = await client.images.edit({ image, mask, prompt: 'a blue circle', size, n: 1, steps: 4 });
  check('edit with a mask: a PNG of the image size', r.data.length === 1 &&
    isPngOf(Buffer.from(r.data[0].b64_json, 'base64'), side, side));
  const plain = await toFile(makePng(side, side, false), 'image.png', { type: 'image/png' });
  const r2 = await client.images.edit({ image: [plain], prompt: 'a blue circle', steps: 4, response_format: 'url' });
  check('edit without a mask (image[] array, url answer): img2img', r2.data.length === 1 && r2.data[0].url.endsWith('/0.png'));
});

await step('bad request', async () => {
  try {
    await client.images.generate({ prompt: 'x', size: '4096x4096' });
    check('a too large size raises BadRequestError', false, 'no error');
  } catch (e) {
    check('a too large size raises BadRequestError with our message and param',
      e instanceof OpenAI.BadRequestError && e.status === 400 && /largest size/.test(e.message) &&
      e.param === 'size' && e.type === 'invalid_request_error', `${e.constructor.name}: ${e.message}`);
  }
  try {
    await client.images.generate({ prompt: 'x', colour: 'red' });
    check('an unknown field raises BadRequestError', false, 'no error');
  } catch (e) {
    check('an unknown field raises BadRequestError code unknown_parameter',
      e instanceof OpenAI.BadRequestError && e.code === 'unknown_parameter' && e.param === 'colour', e.message);
  }
  try {
    await client.images.generate({ prompt: 'x', model: 'not-this-one' });
    check('an unknown model raises NotFoundError', false, 'no error');
  } catch (e) {
    check('an unknown model raises NotFoundError code model_not_found',
      e instanceof OpenAI.NotFoundError && e.code === 'model_not_found', e.message);
  }
});

await step('bad key', async () => {
  const wrong = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
  try {
    await wrong.images.generate({ prompt: 'x' });
    check('a wrong API key raises AuthenticationError', false, 'no error');
  } catch (e) {
    check('a wrong API key raises AuthenticationError code invalid_api_key',
      e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key', e.message);
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
