import type { CommandModule } from 'yargs';
import { serveWeb } from '../web/serve.js';

interface Args { model?: string; port: number; host: string; root?: string }

/** `t2v serve-web [--model DIR] [--port 8080] [--host 127.0.0.1]`: serves the page built by `npm run build:web`. */
export const command: CommandModule<object, Args> = {
  command: 'serve-web',
  describe: 'serve the browser page (npm run build:web builds it), with a converted model at /model/',
  builder: (y) => y
    .option('model', { type: 'string', describe: 'converted model folder, served at /model/ (the page\'s default URL)' })
    .option('port', { type: 'number', default: 8080, describe: 'port (0: any free one)' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0 for other machines)' })
    .option('root', { type: 'string', describe: 'the built page (default dist/web)' }) as never,
  handler: async (args) => {
    const s = await serveWeb({ model: args.model, port: args.port, host: args.host, root: args.root });
    console.log(`t2v: serving the page at ${s.url}${args.model ? ` with ${args.model} at ${s.url}model/` : ''} (Ctrl-C stops)`);
    await new Promise<void>((res) => {
      const stop = () => { void s.close().then(res); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
};
