// The file writers VideoResult.save and saveLatents use: Node only (browser builds get result-files.browser.ts).
export { writeVideo } from './video-writer.js';
export { writeNpy } from '../io/npy.js';
