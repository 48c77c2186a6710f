// The t2v page: load a converted model from a URL (or a local folder), generate on WebGPU, show each step's x0
// estimate, play the video, offer it as webm and gif. window.t2vPage is what test/browser.test.ts drives.
import * as tf from '@tensorflow/tfjs';
import {
  checkWebGPU, describeGpuError, filesSource, TextToVideo, watchGpuErrors, type LoadProgress, type ModelSource, type VideoResult,
} from '../src/browser.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  url: $<HTMLInputElement>('model-url'), load: $<HTMLButtonElement>('load'), folder: $<HTMLInputElement>('model-folder'),
  drop: $('drop'), gpu: $('gpu'), prompt: $<HTMLTextAreaElement>('prompt'), negative: $<HTMLInputElement>('negative'),
  steps: $<HTMLInputElement>('steps'), guidance: $<HTMLInputElement>('guidance'), seed: $<HTMLInputElement>('seed'),
  width: $<HTMLInputElement>('width'), height: $<HTMLInputElement>('height'), frames: $<HTMLInputElement>('frames'),
  fps: $<HTMLInputElement>('fps'), previews: $<HTMLInputElement>('previews'), generate: $<HTMLButtonElement>('generate'),
  cancel: $<HTMLButtonElement>('cancel'), progress: $<HTMLProgressElement>('progress'), status: $('status'), error: $('error'),
  preview: $<HTMLCanvasElement>('preview'), video: $<HTMLVideoElement>('video'), gif: $<HTMLImageElement>('gif'),
  webm: $<HTMLAnchorElement>('download-webm'), gifLink: $<HTMLAnchorElement>('download-gif'), timings: $('timings'),
};

interface PageState {
  phase: 'idle' | 'loading' | 'ready' | 'generating' | 'done' | 'error';
  error: string | null;
  loadMs: number | null;
  /** Milliseconds from Generate to the first step's preview, and to the finished video. */
  firstFrameMs: number | null;
  totalMs: number | null;
  steps: number;
}

const state: PageState = { phase: 'idle', error: null, loadMs: null, firstFrameMs: null, totalMs: null, steps: 0 };
let t2v: TextToVideo | null = null;
let result: VideoResult | null = null;
let noise: Float32Array | null = null;
let abort: AbortController | null = null;
let stopWatching: () => void = () => undefined;
const urls: string[] = [];
const params = new URLSearchParams(location.search);

const mb = (n: number) => (n / 2 ** 20).toFixed(1);

function setStatus(text: string): void {
  ui.status.textContent = text;
}

function showError(message: string | null): void {
  ui.error.hidden = message === null;
  ui.error.textContent = message ?? '';
  if (message !== null) {
    state.phase = 'error';
    state.error = message;
  }
}

function busy(on: boolean): void {
  ui.load.disabled = on;
  ui.folder.disabled = on;
  ui.generate.disabled = on || t2v === null;
  ui.cancel.disabled = !on;
}

function message(err: unknown): string {
  return describeGpuError(err).replace(/^t2v: /, '');
}

async function load(location: string | ModelSource, halfWeights?: boolean): Promise<void> {
  showError(null);
  busy(true);
  state.phase = 'loading';
  abort = new AbortController();
  const t0 = performance.now();
  try {
    const gpu = await checkWebGPU();
    if (!gpu.ok) throw new Error(gpu.message);
    t2v?.dispose();
    t2v = null;
    ui.progress.value = 0;
    const name = typeof location === 'string' ? location : location.location;
    setStatus(`loading ${name} ...`);
    t2v = await TextToVideo.load(location, {
      backend: 'webgpu', signal: abort.signal,
      // ?half=1 / ?half=0 forces float16-resident weights on or off (default: on where the device has shader-f16)
      halfWeights: halfWeights ?? (params.has('half') ? params.get('half') === '1' : undefined),
      onProgress: (p: LoadProgress) => {
        ui.progress.value = p.modelTotalBytes > 0 ? p.modelLoadedBytes / p.modelTotalBytes : 0;
        setStatus(`${p.cached ? 'from the cache' : 'downloading'}: ${p.file} (${mb(p.modelLoadedBytes)} of ${mb(p.modelTotalBytes)} MB)`);
      },
    });
    stopWatching();
    stopWatching = watchGpuErrors((m) => { showError(m); abort?.abort(new Error(m)); });
    const d = t2v.defaults;
    ui.width.value = String(d.width);
    ui.height.value = String(d.height);
    ui.frames.value = String(d.frames);
    ui.fps.value = String(d.fps);
    ui.guidance.value = String(d.guidance);
    ui.width.step = ui.height.step = String(8 * t2v.latentMultiple());
    state.loadMs = performance.now() - t0;
    state.phase = 'ready';
    ui.progress.value = 1;
    const details = t2v.backend?.details ?? {};
    setStatus(`model loaded in ${(state.loadMs / 1000).toFixed(1)} s on ${details.adapter ?? 'WebGPU'}, weights ${t2v.halfWeights ? 'float16' : 'float32'} on the GPU`);
  } catch (err) {
    t2v = null;
    showError(abort.signal.aborted ? 'loading cancelled' : message(err));
    setStatus('no model loaded');
  } finally {
    busy(false);
  }
}

function settings() {
  const int = (el: HTMLInputElement) => Number.parseInt(el.value, 10);
  return {
    prompt: ui.prompt.value, negativePrompt: ui.negative.value || undefined, steps: int(ui.steps),
    guidance: Number(ui.guidance.value), width: int(ui.width), height: int(ui.height), frames: int(ui.frames),
    fps: int(ui.fps), seed: ui.seed.value === '' ? undefined : int(ui.seed),
  };
}

function drawRgb(canvas: HTMLCanvasElement, rgb: Uint8Array, width: number, height: number): void {
  canvas.width = width;
  canvas.height = height;
  const img = new ImageData(width, height);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    img.data[j] = rgb[i];
    img.data[j + 1] = rgb[i + 1];
    img.data[j + 2] = rgb[i + 2];
    img.data[j + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(img, 0, 0);
}

async function generate(): Promise<void> {
  if (!t2v) return;
  showError(null);
  busy(true);
  for (const u of urls.splice(0)) URL.revokeObjectURL(u);
  ui.webm.hidden = ui.gifLink.hidden = true;
  state.phase = 'generating';
  state.firstFrameMs = state.totalMs = null;
  state.steps = 0;
  result = null;
  abort = new AbortController();
  const s = settings();
  const t0 = performance.now();
  ui.progress.value = 0;
  setStatus('encoding the prompt ...');
  try {
    result = await t2v.generate({
      ...s, noise: noise ?? undefined, signal: abort.signal,
      onStep: async (step, timestep, preview) => {
        state.steps = step;
        ui.progress.value = step / s.steps;
        setStatus(`step ${step} of ${s.steps} (t = ${timestep})`);
        if (ui.previews.checked) {
          const f = await preview.frame(0);
          drawRgb(ui.preview, f.rgb, f.width, f.height);
        }
        state.firstFrameMs ??= performance.now() - t0;
      },
    });
    state.totalMs = performance.now() - t0;
    setStatus('making the video ...');
    drawRgb(ui.preview, result.frame(0), result.width, result.height);
    await show(result);
    state.phase = 'done';
    const tm = result.timings;
    setStatus(`done: ${result.numFrames} frames ${result.width}x${result.height}, ${s.steps} steps${result.seed !== null ? `, seed ${result.seed}` : ''}`);
    ui.timings.textContent = `first step preview ${(state.firstFrameMs! / 1000).toFixed(2)} s; text ${(tm.text / 1000).toFixed(2)} s, `
      + `denoise ${(tm.denoise / 1000).toFixed(2)} s, decode ${(tm.decode / 1000).toFixed(2)} s, total ${(state.totalMs / 1000).toFixed(2)} s`;
  } catch (err) {
    showError(abort.signal.aborted && !(abort.signal.reason instanceof Error && abort.signal.reason.message !== 'cancelled')
      ? 'generation cancelled' : message(err));
    setStatus('stopped');
  } finally {
    busy(false);
  }
}

/** GIF always (gifenc); webm through MediaRecorder on a canvas stream where the browser has it. */
async function show(r: VideoResult): Promise<void> {
  const gif = new Blob([r.toGif() as Uint8Array<ArrayBuffer>], { type: 'image/gif' });
  const gifUrl = URL.createObjectURL(gif);
  urls.push(gifUrl);
  ui.gifLink.href = gifUrl;
  ui.gifLink.hidden = false;
  const webm = await recordWebm(r).catch(() => null);
  if (webm) {
    const u = URL.createObjectURL(webm);
    urls.push(u);
    ui.webm.href = u;
    ui.webm.hidden = false;
    ui.video.hidden = false;
    ui.gif.hidden = true;
    ui.video.src = u;
    void ui.video.play().catch(() => undefined);
  } else {
    ui.video.hidden = true;
    ui.gif.hidden = false;
    ui.gif.src = gifUrl;
  }
}

async function recordWebm(r: VideoResult): Promise<Blob | null> {
  if (typeof MediaRecorder === 'undefined') return null;
  const type = ['video/webm;codecs=vp9', 'video/webm;codecs=vp8', 'video/webm'].find((t) => MediaRecorder.isTypeSupported(t));
  if (!type) return null;
  const canvas = document.createElement('canvas');
  drawRgb(canvas, r.frame(0), r.width, r.height);
  const stream = canvas.captureStream(0);
  const track = stream.getVideoTracks()[0] as CanvasCaptureMediaStreamTrack;
  const rec = new MediaRecorder(stream, { mimeType: type, videoBitsPerSecond: 4e6 });
  const chunks: Blob[] = [];
  rec.ondataavailable = (e) => { if (e.data.size > 0) chunks.push(e.data); };
  const stopped = new Promise<void>((res) => { rec.onstop = () => res(); });
  rec.start();
  for (let i = 0; i < r.numFrames; i++) {
    drawRgb(canvas, r.frame(i), r.width, r.height);
    track.requestFrame();
    await new Promise((res) => setTimeout(res, 1000 / r.fps));
  }
  rec.stop();
  await stopped;
  return chunks.length > 0 ? new Blob(chunks, { type: 'video/webm' }) : null;
}

/** Every file under a dropped directory, by its path inside it. */
async function droppedFiles(entry: FileSystemEntry, prefix = ''): Promise<Array<[string, File]>> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    return [[prefix + entry.name, file]];
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: Array<[string, File]> = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
    if (batch.length === 0) break;
    for (const e of batch) out.push(...await droppedFiles(e, `${prefix}${entry.name}/`));
  }
  return out;
}

ui.load.addEventListener('click', () => void load(ui.url.value.trim()));
ui.generate.addEventListener('click', () => void generate());
ui.cancel.addEventListener('click', () => abort?.abort(new Error('cancelled')));
ui.folder.addEventListener('change', () => {
  const files = [...(ui.folder.files ?? [])];
  if (files.length === 0) return;
  const name = files[0].webkitRelativePath.split('/')[0] || 'folder';
  void load(filesSource(name, files.map((f) => [f.webkitRelativePath || f.name, f] as [string, Blob])));
});
ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const entry = e.dataTransfer?.items[0]?.webkitGetAsEntry();
  if (!entry || !entry.isDirectory) {
    showError('drop a folder (the one `t2v convert` wrote), not a file');
    return;
  }
  void droppedFiles(entry).then((files) => load(filesSource(entry.name, files)), (err) => showError(message(err)));
});

void checkWebGPU().then((g) => {
  if (!g.ok) {
    showError(g.message ?? 'no WebGPU');
    ui.load.disabled = true;
    ui.folder.disabled = true;
    return;
  }
  const a = g.adapter!;
  ui.gpu.textContent = `WebGPU: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'adapter'}`
    + `; shader-f16 ${g.f16 ? 'yes' : 'no'}, subgroups ${g.features.includes('subgroups') ? 'yes' : 'no'}`;
});

if (params.has('model')) ui.url.value = params.get('model')!;

/** For tests and the console. */
(window as unknown as { t2vPage: unknown }).t2vPage = {
  state,
  /** Loads a model as the Load button does; `half` forces float16-resident weights on or off. */
  load: (url?: string, half?: boolean) => load(url ?? ui.url.value.trim(), half),
  generate,
  /** Initial noise for the next generations, float32 [1, 4, frames, h/8, w/8]; null for the seed again. */
  setNoise: (values: number[] | null) => { noise = values === null ? null : Float32Array.from(values); },
  latents: () => (result ? Array.from(result.latents) : null),
  latentsShape: () => result?.latentsShape ?? null,
  halfWeights: () => t2v?.halfWeights ?? null,
  /** Bytes of every tensor tfjs holds (the weights, between generations). */
  tensorBytes: () => tf.memory().numBytes,
};
