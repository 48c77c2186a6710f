/** The queue's web page (GET /): submit a prompt, see the queue, watch progress, play results. No outside assets. */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>t2v queue</title>
<style>
  :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f4f5f8; }
  body { margin: 0 auto; max-width: 980px; padding: 16px 20px 40px; }
  h1 { font-size: 20px; margin: 4px 0 14px; }
  form { background: #fff; border: 1px solid #dde1ea; border-radius: 8px; padding: 14px; display: grid; gap: 10px; }
  textarea, input, select, button { font: inherit; }
  textarea { width: 100%; box-sizing: border-box; min-height: 54px; padding: 6px 8px; border: 1px solid #c8cdd8; border-radius: 6px; }
  .row { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #586074; gap: 2px; }
  .row input, .row select { width: 88px; padding: 4px 6px; border: 1px solid #c8cdd8; border-radius: 6px; }
  .row input.wide { width: 200px; }
  button { padding: 6px 14px; border-radius: 6px; border: 1px solid #3056d3; background: #3056d3; color: #fff; cursor: pointer; }
  button.small { padding: 2px 8px; font-size: 12px; background: #fff; color: #b3261e; border-color: #d9a3a0; }
  #message { font-size: 13px; min-height: 18px; }
  #message.error { color: #b3261e; }
  #counts { font-size: 13px; color: #586074; margin: 18px 0 6px; }
  table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid #dde1ea; border-radius: 8px; overflow: hidden; }
  th, td { text-align: left; padding: 7px 9px; border-bottom: 1px solid #eceef3; font-size: 13px; vertical-align: middle; }
  th { background: #f8f9fb; color: #586074; font-weight: 600; }
  td.prompt { max-width: 340px; overflow-wrap: anywhere; }
  .state { font-weight: 600; }
  .state.completed { color: #1e7b34; } .state.failed { color: #b3261e; } .state.active { color: #3056d3; }
  progress { width: 120px; }
  video, img.result { width: 128px; max-height: 160px; object-fit: contain; image-rendering: pixelated; border-radius: 4px; background: #000; display: block; }
</style>
</head>
<body>
<h1>t2v queue</h1>
<form id="submit">
  <textarea id="prompt" name="prompt" placeholder="a panda eating bamboo on a rock" required maxlength="2000"></textarea>
  <div class="row">
    <label>negative prompt<input id="negativePrompt" class="wide"></label>
    <label>steps<input id="steps" type="number" min="1" max="1000" placeholder="model"></label>
    <label>frames<input id="frames" type="number" min="1" max="256" placeholder="model"></label>
    <label>width<input id="width" type="number" min="8" step="8" placeholder="model"></label>
    <label>height<input id="height" type="number" min="8" step="8" placeholder="model"></label>
    <label>seed<input id="seed" type="number" min="0" placeholder="random"></label>
    <label>format<select id="format"><option>mp4</option><option>webm</option><option>gif</option></select></label>
    <label>token<input id="token" type="password" placeholder="if the server has one"></label>
    <button id="go" type="submit">Generate</button>
  </div>
  <div id="message"></div>
</form>
<div id="counts"></div>
<table>
  <thead><tr><th>id</th><th>prompt</th><th>state</th><th>progress</th><th>result</th><th></th></tr></thead>
  <tbody id="jobs"></tbody>
</table>
<script>
const $ = (id) => document.getElementById(id);
const tokenInput = $('token');
tokenInput.value = localStorage.getItem('t2v-token') || '';
tokenInput.addEventListener('change', () => { localStorage.setItem('t2v-token', tokenInput.value); refresh(); });
const token = () => tokenInput.value.trim();
const headers = (extra) => Object.assign(token() ? { authorization: 'Bearer ' + token() } : {}, extra || {});
const withToken = (url) => token() ? url + (url.includes('?') ? '&' : '?') + 'access_token=' + encodeURIComponent(token()) : url;
const watching = new Map();
const shown = new Map();

function say(text, error) { const m = $('message'); m.textContent = text; m.className = error ? 'error' : ''; }

async function api(path, opts) {
  const r = await fetch(path, Object.assign({}, opts, { headers: headers(opts && opts.headers) }));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
  return body;
}

function cell(text, cls) { const td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text; return td; }

function resultCell(job) {
  const td = document.createElement('td');
  if (job.state === 'completed' && job.result) {
    const src = withToken('/jobs/' + job.id + '/video');
    let el;
    if (job.result.format === 'gif') { el = document.createElement('img'); el.className = 'result'; }
    else { el = document.createElement('video'); el.controls = true; el.loop = true; el.muted = true; el.autoplay = true; el.playsInline = true; }
    el.src = src;
    el.dataset.job = job.id;
    td.appendChild(el);
  } else if (job.state === 'failed') {
    td.textContent = job.failedReason || 'failed';
  }
  return td;
}

function row(job) {
  const tr = document.createElement('tr');
  tr.id = 'job-' + job.id;
  tr.dataset.state = job.state;
  tr.appendChild(cell(job.id));
  tr.appendChild(cell(job.data.prompt, 'prompt'));
  tr.appendChild(cell(job.state, 'state ' + job.state));
  const p = document.createElement('td');
  const bar = document.createElement('progress');
  const prog = job.progress;
  bar.max = prog ? prog.steps : 1;
  bar.value = job.state === 'completed' ? bar.max : prog ? prog.step : 0;
  p.appendChild(bar);
  const label = document.createElement('span');
  label.className = 'steps';
  label.textContent = prog ? ' ' + prog.step + '/' + prog.steps : '';
  p.appendChild(label);
  tr.appendChild(p);
  tr.appendChild(resultCell(job));
  const act = document.createElement('td');
  if (job.state !== 'completed' && job.state !== 'failed') {
    const b = document.createElement('button');
    b.className = 'small'; b.type = 'button'; b.textContent = 'cancel';
    b.onclick = () => api('/jobs/' + job.id + '/cancel', { method: 'POST' }).then((r) => { say('job ' + job.id + ': ' + r.outcome); refresh(); }, (e) => say(e.message, true));
    act.appendChild(b);
  }
  tr.appendChild(act);
  return tr;
}

function render(jobs) {
  const body = $('jobs');
  const ids = new Set(jobs.map((j) => j.id));
  for (const [id, tr] of shown) if (!ids.has(id)) { tr.remove(); shown.delete(id); }
  let before = null;
  for (let i = jobs.length - 1; i >= 0; i--) {
    const j = jobs[i];
    const old = shown.get(j.id);
    const key = j.state + ':' + (j.progress ? j.progress.step : '');
    let tr = old;
    if (!old || old.dataset.key !== key) {
      tr = row(j);
      tr.dataset.key = key;
      if (old) old.replaceWith(tr);
      shown.set(j.id, tr);
    }
    body.insertBefore(tr, before ? before : body.firstChild);
    before = tr;
    if ((j.state === 'active' || j.state === 'waiting' || j.state === 'prioritized' || j.state === 'delayed') && !watching.has(j.id)) watch(j.id);
  }
}

function watch(id) {
  const es = new EventSource(withToken('/jobs/' + id + '/events'));
  watching.set(id, es);
  es.addEventListener('progress', (e) => {
    const p = JSON.parse(e.data);
    const tr = shown.get(id);
    if (!tr) return;
    const bar = tr.querySelector('progress');
    bar.max = p.steps; bar.value = p.step;
    tr.querySelector('.steps').textContent = ' ' + p.step + '/' + p.steps;
    const st = tr.querySelector('.state');
    if (st.textContent !== 'active') { st.textContent = 'active'; st.className = 'state active'; tr.dataset.state = 'active'; }
  });
  const end = () => { es.close(); watching.delete(id); refresh(); };
  es.addEventListener('state', (e) => { const s = JSON.parse(e.data); if (s.state === 'completed' || s.state === 'failed') end(); });
  es.addEventListener('removed', end);
  es.onerror = () => { es.close(); watching.delete(id); };
}

async function refresh() {
  try {
    const q = await api('/jobs?limit=50');
    const c = q.counts;
    $('counts').textContent = 'active ' + c.active + ' · waiting ' + (c.waiting + c.prioritized + c.delayed) + ' · completed ' + c.completed + ' · failed ' + c.failed;
    render(q.jobs);
  } catch (e) {
    say(e.message, true);
  }
}

$('submit').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const job = { prompt: $('prompt').value, format: $('format').value };
  if ($('negativePrompt').value) job.negativePrompt = $('negativePrompt').value;
  for (const k of ['steps', 'frames', 'width', 'height', 'seed']) if ($(k).value !== '') job[k] = Number($(k).value);
  try {
    const r = await api('/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(job) });
    say('queued job ' + r.id);
    await refresh();
    if (!watching.has(r.id)) watch(r.id);
  } catch (e) {
    say(e.message, true);
  }
});

refresh();
setInterval(refresh, 3000);
</script>
</body>
</html>
`;
