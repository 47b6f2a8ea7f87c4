// The cfgserve page: a form over the native API (POST /generate with "stream": true: its
// Server-Sent Events are read with fetch, so the API key can be sent), a
// progress bar with queue position and step previews, cancel (DELETE /jobs/{id}), and a
// gallery of results with their parameters and a copy-as-curl button. No framework, no
// network access beyond this server (the Content-Security-Policy allows 'self' only).
'use strict';
const $ = (id) => document.getElementById(id);
let current = null; // the job being followed: {id} (null until its first event)

function headers(extra) {
  const h = Object.assign({}, extra);
  const key = $('key').value.trim();
  if (key) h.Authorization = 'Bearer ' + key;
  return h;
}

function setStatus(text) { $('status').textContent = text; }

async function loadModel() {
  const res = await fetch('/v1/models', { headers: headers() });
  if (!res.ok) { setStatus('cannot read /v1/models: ' + res.status + ' (API key?)'); return; }
  const m = (await res.json()).data[0];
  $('model').textContent = m.id + ' · ' + m.width + '×' + m.height;
  if (!$('width').value) $('width').value = m.width;
  if (!$('height').value) $('height').value = m.height;
  // min and step together: the browser accepts min + k * step only.
  $('width').min = $('height').min = $('width').step = $('height').step = m.size_multiple || 8;
  $('count').max = m.max_images || 8;
  $('steps').max = m.max_steps || 150;
  const sel = $('sampler');
  sel.textContent = '';
  sel.append(new Option('default', ''));
  for (const s of m.samplers || []) sel.append(new Option(s, s));
  const box = $('loras');
  box.textContent = '';
  for (const name of m.loras || []) {
    const row = document.createElement('label');
    row.className = 'lora';
    row.innerHTML = '<input type="checkbox"><span></span><input type="number" step="0.05" value="1" aria-label="weight">';
    row.querySelector('span').textContent = name;
    row.dataset.name = name;
    box.append(row);
  }
  $('lora-box').hidden = !(m.loras && m.loras.length);
}

function request() {
  const body = {
    prompt: $('prompt').value,
    negative_prompt: $('negative').value,
    guidance_scale: Number($('guidance').value),
    steps: Number($('steps').value),
    width: Number($('width').value),
    height: Number($('height').value),
    num_images: Number($('count').value),
  };
  if ($('sampler').value) body.sampler = $('sampler').value;
  const seed = $('seed').value.trim();
  if (seed && seed !== '-1') body.seed = Number(seed);
  const loras = [...document.querySelectorAll('.lora')]
    .filter((l) => l.querySelector('input[type=checkbox]').checked)
    .map((l) => ({ name: l.dataset.name, weight: Number(l.querySelector('input[type=number]').value) }));
  if (loras.length) body.loras = loras;
  return body;
}

// The raw text of the done event keeps 64-bit seeds exact (JSON.parse would round them).
function rawParts(raw) {
  const seeds = (/"seeds":\[([^\]]*)\]/.exec(raw) || [, ''])[1].split(',').filter(Boolean);
  const at = raw.indexOf('"parameters":');
  const params = at < 0 ? '{}' : raw.slice(at + 13, raw.lastIndexOf('}'));
  return { seeds, params };
}

function curlFor(params, seed) {
  const body = params.replace(/"seed":\d+/, '"seed":' + seed).replace(/"num_images":\d+/, '"num_images":1');
  const key = $('key').value.trim() ? " -H 'Authorization: Bearer $CFGSERVE_KEY'" : '';
  return "curl -s " + location.origin + "/generate -H 'Content-Type: application/json'" + key +
    " -d '" + body.replace(/'/g, "'\\''") + "' -o image.png";
}

function addResults(data, raw) {
  const { seeds, params } = rawParts(raw);
  data.images.map((b64, i) => [b64, i]).reverse().forEach(([b64, i]) => {
    const card = document.createElement('figure');
    card.className = 'card';
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    img.alt = data.parameters.prompt;
    const pre = document.createElement('pre');
    const p = data.parameters;
    pre.textContent = `${p.prompt}\nseed ${seeds[i]} · ${p.steps} steps · ${p.sampler || 'default sampler'} · cfg ${p.guidance_scale} · ${p.width}×${p.height}`;
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.textContent = 'Copy curl';
    const cmd = curlFor(params, seeds[i]);
    copy.addEventListener('click', async () => {
      try { await navigator.clipboard.writeText(cmd); copy.textContent = 'Copied'; }
      catch { window.prompt('curl command', cmd); }
    });
    card.append(img, pre, copy);
    $('gallery').prepend(card);
  });
}

function onEvent(type, raw) {
  let d = {};
  try { d = JSON.parse(raw); } catch { return; }
  if (type === 'queued') setStatus(d.position > 0 ? `queued: ${d.position} job(s) ahead` : 'queued: next');
  else if (type === 'started') setStatus('started');
  else if (type === 'progress') {
    $('bar').max = d.steps; $('bar').value = d.step;
    setStatus(`step ${d.step} / ${d.steps}` + (d.eta_ms ? ` · ${(d.eta_ms / 1000).toFixed(1)} s left` : ''));
  } else if (type === 'preview' && d.image) {
    let card = document.querySelector('#gallery .preview');
    if (!card) {
      card = document.createElement('figure');
      card.className = 'card preview';
      card.append(new Image());
      $('gallery').prepend(card);
    }
    card.querySelector('img').src = 'data:image/png;base64,' + d.image;
  } else if (type === 'done') {
    document.querySelectorAll('#gallery .preview').forEach((c) => c.remove());
    $('bar').value = $('bar').max;
    setStatus(`done: ${d.images.length} image(s)`);
    addResults(d, raw);
  } else if (type === 'error') {
    document.querySelectorAll('#gallery .preview').forEach((c) => c.remove());
    const err = d.error || d; // {"id", "error": {"code", "message"}}
    setStatus(err.code === 'cancelled' ? 'cancelled' : `error (${err.code}): ${err.message}`);
  }
}

// Reads a Server-Sent Events body; the first event names the job (for cancel).
async function follow(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      let type = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (!data) continue;
      if (current && !current.id) {
        try { current.id = JSON.parse(data).id; $('cancel').disabled = false; } catch { /* keep going */ }
      }
      onEvent(type, data);
      if (type === 'done' || type === 'error') return;
    }
  }
}

async function generate(ev) {
  ev.preventDefault();
  if (current) return;
  localStorage.setItem('cfgserve-key', $('key').value.trim());
  $('go').disabled = true;
  $('bar').value = 0;
  setStatus('submitting');
  try {
    current = { id: null };
    const res = await fetch('/generate', { method: 'POST',
      headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
      body: JSON.stringify(Object.assign(request(), { stream: true })) });
    if (!res.ok) {
      const answer = await res.json().catch(() => ({}));
      throw new Error(answer.error ? answer.error.message : 'HTTP ' + res.status);
    }
    await follow(res);
  } catch (e) {
    setStatus('error: ' + e.message);
  } finally {
    current = null;
    $('go').disabled = false;
    $('cancel').disabled = true;
  }
}

async function cancel() {
  if (!current || !current.id) return;
  $('cancel').disabled = true;
  const res = await fetch(`/jobs/${current.id}`, { method: 'DELETE', headers: headers() });
  if (!res.ok && res.status !== 409) setStatus('cancel failed: HTTP ' + res.status);
}

document.addEventListener('DOMContentLoaded', () => {
  $('form').addEventListener('submit', generate);
  $('cancel').addEventListener('click', cancel);
  $('dice').addEventListener('click', () => { $('seed').value = Math.floor(Math.random() * 2 ** 32); });
  $('guidance').addEventListener('input', () => { $('guidance-out').value = $('guidance').value; });
  $('key').value = localStorage.getItem('cfgserve-key') || '';
  $('key').addEventListener('change', () => {
    localStorage.setItem('cfgserve-key', $('key').value.trim());
    loadModel().catch((e) => setStatus('error: ' + e.message));
  });
  loadModel().catch((e) => setStatus('error: ' + e.message));
});
