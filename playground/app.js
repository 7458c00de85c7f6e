// The Flamingo playground: builds an interleaved few-shot prompt from cards (image or video + text),
// streams the answer from POST /v1/playground/generate (Server-Sent Events) and draws, for every
// generated token, how its gated cross-attention spread over the prompt's images.

const $ = (sel) => document.querySelector(sel);

const TEMPLATES = {
  captioning: {
    example: [{ key: 'caption', label: 'Caption', value: 'A picture of a dress' }],
    query: [],
    build: (examples, _query) => examples.map((e) => `<image>Output:${e.caption}<|endofchunk|>`).join('') + '<image>Output:',
  },
  vqa: {
    example: [{ key: 'question', label: 'Question', value: 'What is it?' }, { key: 'answer', label: 'Answer', value: 'dress' }],
    query: [{ key: 'question', label: 'Question', value: 'What is it?' }],
    build: (examples, query) => examples.map((e) => `<image>Question:${e.question} Short answer:${e.answer}<|endofchunk|>`).join('')
      + `<image>Question:${query.question} Short answer:`,
  },
  naming: {
    // Fast binding (Flamingo Fig. 1): names hold only inside this prompt.
    example: [{ key: 'name', label: 'Name', value: 'dax' }],
    query: [],
    build: (examples) => {
      const parts = examples.map((e, i) => `This is a${i > 0 ? '<|endofchunk|>' : ''}<image> ${e.name}.`);
      return `${parts.join(' ')}${parts.length ? ' ' : ''}This is a${parts.length ? '<|endofchunk|>' : ''}<image>`;
    },
  },
};
const DEFAULT_TEXT = { caption: ['A picture of a t-shirt/top', 'A picture of a trouser', 'A picture of a pullover'], name: ['dax', 'blicket', 'wug'], answer: ['t-shirt', 'trouser', 'pullover'] };

/** Cards: { media: {url, kind, element} | null, fields: {key: value} }; the last card is the query. */
const state = { template: 'captioning', cards: [], samples: [], run: null };

function newCard(isQuery, index) {
  const t = TEMPLATES[state.template];
  const fields = {};
  for (const f of isQuery ? t.query : t.example) fields[f.key] = (DEFAULT_TEXT[f.key] || [])[index] ?? f.value;
  return { media: null, fields };
}

function resetCards(examples) {
  const old = state.cards;
  state.cards = [];
  for (let i = 0; i < examples; i++) state.cards.push({ ...newCard(false, i), media: old[i] && old[i] !== old[old.length - 1] ? old[i].media : null });
  state.cards.push({ ...newCard(true, 0), media: old.length ? old[old.length - 1].media : null });
  render();
}

function mediaElement(m) {
  const el = document.createElement(m.kind === 'video' ? 'video' : 'img');
  el.src = m.url;
  if (m.kind === 'video') { el.muted = true; el.loop = true; el.autoplay = true; el.playsInline = true; }
  return el;
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

const isVideoType = (type) => type.startsWith('video/') || type === 'image/gif';

async function setCardFile(i, file) {
  const url = await readFile(file);
  setCardMedia(i, { url, kind: isVideoType(file.type) ? 'video' : 'image', name: file.name });
}

function setCardMedia(i, m) {
  state.cards[i].media = m;
  render();
}

function render() {
  const box = $('#cards');
  box.replaceChildren();
  const t = TEMPLATES[state.template];
  state.cards.forEach((card, i) => {
    const isQuery = i === state.cards.length - 1;
    const el = document.createElement('div');
    el.className = `card${isQuery ? ' query' : ''}`;
    el.id = isQuery ? 'card-query' : `card-${i}`;
    const title = document.createElement('div');
    title.className = 'title';
    title.textContent = isQuery ? 'Query' : `Example ${i + 1}`;
    const drop = document.createElement('div');
    drop.className = 'drop';
    drop.tabIndex = 0;
    if (card.media) drop.append(mediaElement(card.media));
    else drop.textContent = 'drop an image or video, or click';
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = 'image/png,image/jpeg,image/gif,video/mp4,video/webm,video/x-msvideo,video/quicktime';
    input.hidden = true;
    input.addEventListener('change', () => { if (input.files && input.files[0]) setCardFile(i, input.files[0]); });
    drop.addEventListener('click', () => input.click());
    drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') input.click(); });
    drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const sample = e.dataTransfer.getData('text/x-flamingo-sample');
      if (sample !== '') { setCardMedia(i, { url: state.samples[Number(sample)].url, kind: 'image', name: state.samples[Number(sample)].label }); return; }
      const f = e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) setCardFile(i, f);
    });
    el.append(title, drop, input);
    for (const f of isQuery ? t.query : t.example) {
      const label = document.createElement('label');
      label.textContent = f.label;
      const inp = document.createElement('input');
      inp.type = 'text';
      inp.value = card.fields[f.key] ?? '';
      inp.dataset.field = f.key;
      inp.addEventListener('input', () => { card.fields[f.key] = inp.value; showPrompt(); });
      label.append(inp);
      el.append(label);
    }
    box.append(el);
  });
  showPrompt();
}

function promptText() {
  const cards = state.cards;
  return TEMPLATES[state.template].build(cards.slice(0, -1).map((c) => c.fields), cards[cards.length - 1].fields);
}

function showPrompt() {
  $('#prompt').textContent = promptText();
  $('#run').disabled = state.cards.some((c) => !c.media) || state.run !== null;
}

function setStatus(text, error = false) {
  const s = $('#status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

// ---- running and streaming ----

/** Parse a text/event-stream body into JSON events (OpenAI-style `data:` blocks, `[DONE]` at the end). */
async function* events(response) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
      if (data === '[DONE]') return;
      if (data) yield JSON.parse(data);
    }
  }
}

async function run() {
  const body = {
    prompt: promptText(),
    media: state.cards.map((c) => c.media.url),
    max_new_tokens: Number($('#max-tokens').value),
    temperature: Number($('#temperature').value),
  };
  const r = { header: null, tokens: [], prompt: null, text: '', finish: null };
  state.run = r;
  $('#run').disabled = true;
  $('#answer').replaceChildren();
  setStatus('running…');
  draw();
  try {
    const res = await fetch('/v1/playground/generate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) {
      const err = await res.json().catch(() => ({ error: { message: res.statusText } }));
      throw new Error(err.error ? err.error.message : `HTTP ${res.status}`);
    }
    for await (const ev of events(res)) {
      if (ev.error) throw new Error(ev.error.message);
      if (ev.type === 'header') { r.header = ev; fillLayers(ev.layers); }
      else if (ev.type === 'token') { r.tokens.push(ev); addToken(ev); }
      else if (ev.type === 'prompt') r.prompt = ev.attention;
      else if (ev.type === 'done') { r.text = ev.text; r.finish = ev.finish; }
      draw();
    }
    setStatus(`done: ${r.tokens.length} token(s), ${r.finish === 'stop' ? 'stopped at <|endofchunk|>' : 'length limit'}`);
    document.body.dataset.done = 'true';
  } catch (e) {
    setStatus(`error: ${e.message}`, true);
  } finally {
    state.run = null;
    showPrompt();
  }
}

function addToken(ev) {
  const span = document.createElement('span');
  span.className = 'tok';
  span.textContent = ev.text;
  span.title = `token ${ev.index}: ${JSON.stringify(ev.label)}`;
  $('#answer').append(span);
}

function fillLayers(layers) {
  const sel = $('#layer');
  const keep = sel.value;
  sel.replaceChildren(new Option('mean of all gated layers', 'mean'), ...layers.map((l, i) => new Option(`gated block before LM layer ${l}`, String(i))));
  sel.value = [...sel.options].some((o) => o.value === keep) ? keep : 'mean';
}

// ---- the picture ----

/** White → blue for 0 → 1. */
function shade(v) {
  const x = Math.max(0, Math.min(1, v));
  const r = Math.round(255 - x * (255 - 31));
  const g = Math.round(255 - x * (255 - 94));
  const b = Math.round(255 - x * (255 - 201));
  return `rgb(${r},${g},${b})`;
}

function weightsOf(att, layer, m) {
  if (layer === 'mean') return att.weights.reduce((s, w) => s + (w[m] ?? 0), 0) / att.weights.length;
  return att.weights[Number(layer)][m] ?? 0;
}

function draw() {
  const cv = $('#attention');
  const ctx = cv.getContext('2d');
  const r = state.run ?? state.last;
  if (state.run) state.last = state.run;
  const media = state.cards.map((c) => c.media);
  const tokens = r ? r.tokens : [];
  const layers = r && r.header ? r.header.layers : [];
  const cell = 46;
  const left = 110;
  const top = 64;
  const gatesW = 250;
  const cols = Math.max(tokens.length, 1);
  const width = left + cols * cell + 40 + gatesW;
  const stripTop = top + media.length * cell + 34;
  const height = Math.max(stripTop + Math.max(layers.length, 1) * 22 + 40, top + 60 + layers.length * 44);
  if (cv.width !== width || cv.height !== height) { cv.width = width; cv.height = height; }
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.font = '12px system-ui, sans-serif';
  ctx.textBaseline = 'middle';
  ctx.fillStyle = '#1d2330';
  ctx.fillText('image ↓  token →', 8, 20);
  const layer = $('#layer').value;
  // rows: the prompt's media, with their thumbnails
  media.forEach((m, i) => {
    const y = top + i * cell;
    ctx.fillStyle = '#667085';
    ctx.fillText(i === media.length - 1 ? 'query' : `ex ${i + 1}`, 8, y + cell / 2);
    const el = document.querySelectorAll('#cards .drop')[i]?.firstElementChild;
    if (el && (el.tagName === 'IMG' || el.tagName === 'VIDEO')) {
      try { ctx.drawImage(el, 52, y + 3, cell - 6, cell - 6); } catch { /* not loaded yet */ }
      if (m && m.kind === 'video') { ctx.fillStyle = '#2f6fdb'; ctx.fillText('▶', 54, y + 12); }
    }
  });
  // columns: generated tokens
  tokens.forEach((t, j) => {
    const x = left + j * cell;
    ctx.save();
    ctx.translate(x + cell / 2, top - 8);
    ctx.rotate(-Math.PI / 5);
    ctx.fillStyle = '#1d2330';
    ctx.fillText(t.label.length > 8 ? `${t.label.slice(0, 7)}…` : t.label, 0, 0);
    ctx.restore();
    media.forEach((_, i) => {
      const v = weightsOf(t.attention, layer, i);
      const y = top + i * cell;
      ctx.fillStyle = shade(v);
      ctx.fillRect(x + 1, y + 1, cell - 2, cell - 2);
      ctx.fillStyle = v > 0.55 ? '#fff' : '#1d2330';
      ctx.textAlign = 'center';
      ctx.fillText(v.toFixed(2), x + cell / 2, y + cell / 2);
      ctx.textAlign = 'start';
    });
  });
  if (tokens.length === 0) {
    ctx.fillStyle = '#667085';
    ctx.fillText(state.run ? 'waiting for the first token…' : 'run the model to see its attention', left, top + 16);
  }
  // strength strip: layers × tokens
  ctx.fillStyle = '#1d2330';
  ctx.fillText('strength ‖tanh(α)·xattn‖/‖x‖', 8, stripTop - 14);
  const maxS = Math.max(1e-9, ...tokens.flatMap((t) => t.attention.strength));
  layers.forEach((l, k) => {
    const y = stripTop + k * 22;
    ctx.fillStyle = '#667085';
    ctx.fillText(`layer ${l}`, 8, y + 10);
    tokens.forEach((t, j) => {
      const s = t.attention.strength[k];
      ctx.fillStyle = shade(s / maxS);
      ctx.fillRect(left + j * cell + 1, y + 1, cell - 2, 20);
      ctx.fillStyle = s / maxS > 0.55 ? '#fff' : '#1d2330';
      ctx.textAlign = 'center';
      ctx.fillText(s.toFixed(2), left + j * cell + cell / 2, y + 11);
      ctx.textAlign = 'start';
    });
  });
  // gates per layer
  const gx = left + cols * cell + 40;
  ctx.fillStyle = '#1d2330';
  ctx.fillText('gates per layer', gx, top - 30);
  if (r && r.header) {
    r.header.layers.forEach((l, k) => {
      const y = top + k * 44;
      ctx.fillStyle = '#667085';
      ctx.fillText(`layer ${l}`, gx, y + 8);
      const bars = [['attn', r.header.attn_gates[k], '#2f6fdb'], ['ff', r.header.ff_gates[k], '#e07b39']];
      bars.forEach(([name, v, colour], b) => {
        const by = y + 18 + b * 12;
        const mid = gx + 120;
        ctx.fillStyle = '#eaecf0';
        ctx.fillRect(gx + 60, by, 120, 10);
        ctx.fillStyle = colour;
        const w = Math.max(1, Math.abs(v) * 60);
        ctx.fillRect(v >= 0 ? mid : mid - w, by, w, 10);
        ctx.fillStyle = '#1d2330';
        ctx.fillText(`${name}`, gx + 30, by + 5);
        ctx.fillText(v.toFixed(2), gx + 186, by + 5);
      });
    });
  }
}

// ---- samples, template, controls ----

async function loadSamples() {
  try {
    const res = await fetch('/v1/playground/samples');
    const data = await res.json();
    $('#model').textContent = `model: ${data.model}`;
    state.samples = data.samples;
    const list = $('#sample-list');
    data.samples.forEach((s, i) => {
      const img = new Image();
      img.src = s.url;
      img.alt = s.label;
      img.title = s.label;
      img.draggable = true;
      img.addEventListener('dragstart', (e) => e.dataTransfer.setData('text/x-flamingo-sample', String(i)));
      img.addEventListener('click', () => {
        const k = state.cards.findIndex((c) => !c.media);
        setCardMedia(k >= 0 ? k : state.cards.length - 1, { url: s.url, kind: 'image', name: s.label });
      });
      list.append(img);
    });
    $('#samples').hidden = data.samples.length === 0;
  } catch {
    $('#samples').hidden = true;
  }
}

$('#template').addEventListener('change', () => {
  state.template = $('#template').value;
  resetCards(state.cards.length - 1);
});
$('#add-example').addEventListener('click', () => {
  state.cards.splice(state.cards.length - 1, 0, newCard(false, state.cards.length - 1));
  render();
});
$('#remove-example').addEventListener('click', () => {
  if (state.cards.length > 1) state.cards.splice(state.cards.length - 2, 1);
  render();
});
$('#run').addEventListener('click', run);
$('#layer').addEventListener('change', draw);

resetCards(2);
draw();
loadSamples();
