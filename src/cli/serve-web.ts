import type { CommandModule, Options } from 'yargs';
import { serveWeb } from '../web/serve.js';

const options = {
  model: { type: 'string', requiresArg: true, describe: 'converted model folder, served at /model/ (the page\'s default model URL)' },
  port: { type: 'number', default: 8080, requiresArg: true, describe: 'port (0: any free one)' },
  host: { type: 'string', default: '127.0.0.1', requiresArg: true, describe: 'address to listen on (0.0.0.0 lets other machines in)' },
  root: { type: 'string', requiresArg: true, describe: 'the built page (default dist/web, made by npm run build:web)' },
} as const satisfies Record<string, Options>;

/** `t2v serve-web [--model DIR] [--port 8080] [--host 127.0.0.1] [--root DIR]`: serves the page until stopped. */
export const command: CommandModule<object, { model?: string; port: number; host: string; root?: string }> = {
  command: 'serve-web',
  describe: 'serve the browser page (npm run build:web builds it), with a converted model at /model/',
  builder: (y) => y.options(options),
  handler: async (args) => {
    const s = await serveWeb({ model: args.model, port: args.port, host: args.host, root: args.root });
    console.log(`t2v: serving the page at ${s.url}${args.model ? `, the model at ${s.url}model/` : ''} (Ctrl-C stops)`);
    await new Promise<void>((res) => {
      const stop = () => { void s.close().then(res); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
};
