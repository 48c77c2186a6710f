import type { CommandModule } from 'yargs';
import { startServer } from '../queue/server.js';
import { redisOption, untilSignal } from './queue-options.js';

interface Args {
  redis: string;
  port: number;
  host: string;
  token?: string;
  results: string;
}

/** `t2v serve`: the HTTP API over the `t2v` queue and its web page. */
export const command: CommandModule<object, Args> = {
  command: 'serve',
  describe: 'HTTP API and web page for the t2v queue',
  builder: (y) => redisOption(y)
    .option('port', { type: 'number', default: 8080, describe: 'TCP port' })
    .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (0.0.0.0: every interface)' })
    .option('token', { type: 'string', default: process.env.T2V_TOKEN, describe: 'bearer token the API requires ($T2V_TOKEN)' })
    .option('results', { type: 'string', default: 'results', describe: 'the workers\' --results folder (shared with them)' }),
  handler: async (a) => {
    const s = await startServer({ redis: a.redis, port: a.port, host: a.host, token: a.token || undefined, results: a.results });
    console.log(`serving the t2v queue at ${s.url}/${a.token ? ' (bearer token required)' : ''}`);
    await untilSignal();
    await s.close();
  },
};
