/**
 * Cleanups to run when the process is interrupted (SIGINT, SIGTERM) while an output is being written: kill an
 * ffmpeg child, remove a temporary file. Without this, Node dies at once and ffmpeg, reading what was piped to it
 * so far, finishes a truncated `.v.mp4.<pid>.<ts>.tmp` that nobody removes.
 */
type Cleanup = () => void;

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
const cleanups: Cleanup[] = [];

function onSignal(sig: NodeJS.Signals): void {
  // newest first: the ffmpeg child dies before its output file is removed
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      // best effort: the other cleanups still run
    }
  }
  for (const s of SIGNALS) process.off(s, onSignal);
  // die of the signal, as without us, unless the program handles it itself
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

/** Runs `cleanup` if SIGINT or SIGTERM arrives before the returned function is called. */
export function onInterrupt(cleanup: Cleanup): () => void {
  if (cleanups.length === 0) for (const s of SIGNALS) process.on(s, onSignal);
  cleanups.push(cleanup);
  return () => {
    const i = cleanups.indexOf(cleanup);
    if (i >= 0) cleanups.splice(i, 1);
    if (cleanups.length === 0) for (const s of SIGNALS) process.off(s, onSignal);
  };
}
