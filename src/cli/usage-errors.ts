import type { CommandModule } from 'yargs';

const quote = (names: string[]) => names.map((n) => `'${n}'`).join(', ');
const plural = (word: string, n: number) => (n === 1 ? word : `${word}s`);

/** `<a> [b]` names of a command string such as `convert <source> <out>`. */
function positionals(command: string): string[] {
  return [...command.matchAll(/<([^>]+)>/g)].map((m) => m[1]);
}

/**
 * Rewrites yargs' own usage errors (English: the CLI sets its locale) into the one-line form of the rest of the
 * CLI, naming the argument or option: `missing required argument 'out'`, `unknown option '--bogus'`.
 */
export function usageMessage(message: string, argv: readonly string[], commands: readonly CommandModule<any, any>[]): string {
  const names = commands.map((c) => String(c.command).split(' ')[0]);
  const first = argv.find((a) => !a.startsWith('-'));
  const cmd = commands.find((c) => String(c.command).split(' ')[0] === first);

  let m = /^Not enough non-option arguments: got (\d+), need at least (\d+)$/.exec(message);
  if (m && cmd) {
    const missing = positionals(String(cmd.command)).slice(Number(m[1]));
    if (missing.length > 0) return `missing required ${plural('argument', missing.length)} ${quote(missing)}`;
  }
  m = /^Unknown (?:argument|command)s?: (.+)$/.exec(message);
  if (m) {
    const parts = m[1].split(', ').map((n) => {
      const dashed = n.length === 1 ? `-${n}` : `--${n}`;
      const asOption = argv.some((a) => a === dashed || a.startsWith(`${dashed}=`) || a === `--no-${n}`);
      if (asOption) return `unknown option '${dashed}'`;
      if (!cmd) return `unknown command '${n}' (commands: ${names.join(', ')})`;
      return `unexpected argument '${n}'`;
    });
    return parts.join('; ');
  }
  m = /^Missing required arguments?: (.+)$/.exec(message);
  if (m) {
    const opts = m[1].split(', ').map((n) => `--${n}`);
    return `missing required ${plural('option', opts.length)} ${quote(opts)}`;
  }
  m = /^Not enough arguments following: (.+)$/.exec(message);
  if (m) return `option '--${m[1]}' needs a value`;
  return message;
}
